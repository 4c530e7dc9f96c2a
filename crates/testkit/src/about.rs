//! The checks both binaries' `version`, `completion` and `man` tests make, through the real
//! binary and the real tools: bash completes with the generated script, `man` renders the pages.
//! Each function panics with the binary's output when a check fails.

use std::process::{Command, Output};

/// One binary under test.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    /// The binary's path (`env!("CARGO_BIN_EXE_…")`).
    pub bin: &'a str,
    /// Its name, e.g. `airlift-pack`.
    pub name: &'a str,
    /// The package version it must print.
    pub version: &'a str,
    /// A subcommand only this binary has, to complete and to find a man page for.
    pub subcommand: &'a str,
    /// A folder of the checkout it was built from (to compare the git commit it prints).
    pub checkout: &'a str,
}

impl About<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(self.bin)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("the binary runs");
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn text(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.run(args).stdout).into_owned()
    }

    /// The commit of the checkout, when it is a git checkout.
    fn head(&self) -> Option<String> {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(self.checkout)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `version` as text and as JSON: name, version, bundle format, rustc, target, commit.
    pub fn check_version(&self) {
        let plain = self.text(&["version"]);
        assert!(
            plain.starts_with(&format!("{} {}\n", self.name, self.version)),
            "{plain}"
        );
        assert!(
            plain.contains("bundle format: airlift.dev/v1alpha1"),
            "{plain}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&self.text(&["version", "--output", "json"]))
                .expect("version -o json prints JSON");
        assert_eq!(json["name"], self.name);
        assert_eq!(json["version"], self.version);
        assert_eq!(json["bundleFormat"], "airlift.dev/v1alpha1");
        assert!(
            json["rustc"]
                .as_str()
                .is_some_and(|r| r.starts_with("rustc ")),
            "{json}"
        );
        assert!(
            json["target"].as_str().is_some_and(|t| t.contains('-')),
            "{json}"
        );
        if let Some(head) = self.head() {
            assert_eq!(json["gitCommit"], head.as_str(), "built from this checkout");
        }
    }

    /// bash completes the subcommand from its first four letters with the generated script;
    /// the zsh and fish scripts name it; an unknown shell is a usage error (exit 2).
    pub fn check_completion(&self) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let script = dir.path().join("completion.bash");
        std::fs::write(&script, self.run(&["completion", "bash"]).stdout).expect("write");
        let (name, part) = (self.name, &self.subcommand[..4]);
        let probe = format!(
            "source {}; COMP_WORDS=({name} {part}); COMP_CWORD=1; COMP_LINE='{name} {part}'; \
             COMP_POINT=${{#COMP_LINE}}; f=$(complete -p {name} | sed -E 's/.* -F ([^ ]+) .*/\\1/'); \
             $f {name} {part} {name}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = Command::new("bash")
            .args(["-c", &probe])
            .output()
            .expect("bash runs");
        let words = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            words.lines().any(|w| w == self.subcommand),
            "completions: {words:?}"
        );
        for shell in ["zsh", "fish"] {
            let script = self.text(&["completion", shell]);
            assert!(script.contains(self.subcommand), "{shell}: {script}");
        }
        let bad = Command::new(self.bin)
            .args(["completion", "tcsh"])
            .output()
            .expect("the binary runs");
        assert_eq!(bad.status.code(), Some(2));
    }

    /// `man --out DIR` writes a page per command (none for clap's `help`) that `man -l` renders.
    pub fn check_man(&self) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let listed = self.text(&["man", "--out", &dir.path().display().to_string()]);
        let top = dir.path().join(format!("{}.1", self.name));
        let page_name = format!("{}-{}.1", self.name, self.subcommand);
        assert!(listed.contains(&page_name), "{listed}");
        assert!(!dir.path().join(format!("{}-help.1", self.name)).exists());
        let rendered = Command::new("man")
            .arg("-l")
            .arg(dir.path().join(&page_name))
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .output()
            .expect("man runs (apt-get install man-db groff-base)");
        let page = String::from_utf8_lossy(&rendered.stdout);
        assert!(
            rendered.status.success(),
            "{}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        assert!(page.contains("NAME") && page.contains("OPTIONS"), "{page}");
        assert!(page.contains("--help"), "{page}");
        let top = std::fs::read_to_string(&top).expect("the top page exists");
        assert!(top.contains(".TH"));
    }
}
