//! `version`, `completion` and `man` through the real `airlift-install` binary, checked with the
//! real tools: bash completes with the generated script, `man` renders the pages
//! (`airlift_testkit::about`).

use airlift_testkit::about::About;

const ABOUT: About<'static> = About {
    bin: env!("CARGO_BIN_EXE_airlift-install"),
    name: "airlift-install",
    version: env!("CARGO_PKG_VERSION"),
    subcommand: "support-bundle",
    checkout: env!("CARGO_MANIFEST_DIR"),
};

#[test]
fn version_prints_build_facts_as_text_and_json() {
    ABOUT.check_version();
}

#[test]
fn bash_completes_subcommands_with_the_generated_script() {
    ABOUT.check_completion();
}

#[test]
fn man_pages_render_with_man() {
    ABOUT.check_man();
}
