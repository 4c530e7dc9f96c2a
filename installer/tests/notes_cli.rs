//! The bundle's NOTES through the real binary: printed after install and upgrade, rendered with
//! the configuration in effect, secret items masked; a NOTES template that fails to render is a
//! warning after a deploy that succeeded.

#![allow(clippy::unwrap_used)]

mod releases_support;

use base64::Engine as _;
use releases_support::{ShopVersion, Site};

const NOTES: &str = "Shop {{ bundle.version }} runs as release {{ release.name }} (revision \
{{ release.revision }}).\nOpen https://{{ config.web.hostname }}/ ; database password: \
{{ config.db.password }}\n";

#[test]
fn notes_print_after_install_and_upgrade_with_secrets_masked() {
    let site = Site::start();
    let mut v1 = ShopVersion::new("1.0.0");
    v1.notes = Some(NOTES.into());
    let b1 = site.bundle(&v1);
    let out = site.install(&b1, &["--set", "web.hostname=shop.site.test"]);
    assert!(out.ok(), "{out}");
    let password = site.object("", "secrets", "shop", "db")["data"]["password"]
        .as_str()
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap())
        .map(|b| String::from_utf8(b).unwrap())
        .unwrap();
    assert!(
        out.stdout.contains(
            "\nNOTES:\nShop 1.0.0 runs as release shop (revision 1).\nOpen https://shop.site.test/ ; \
             database password: [hidden]\n"
        ),
        "{out}"
    );
    assert!(!out.stdout.contains(&password), "{out}");

    let mut v2 = ShopVersion::new("1.1.0");
    v2.notes = Some(NOTES.into());
    let up = site.run_deploy("upgrade", &site.bundle(&v2), &["--yes"], false);
    assert!(up.ok(), "{up}");
    assert!(
        up.stdout.contains(
            "Shop 1.1.0 runs as release shop (revision 2).\nOpen https://shop.site.test/"
        ),
        "{up}"
    );
    assert!(!up.stdout.contains(&password), "{up}");

    // A broken NOTES template warns; the upgrade itself succeeded.
    let mut v3 = ShopVersion::new("1.2.0");
    v3.notes = Some("{{ config.web.nope }}".into());
    let up = site.run_deploy("upgrade", &site.bundle(&v3), &["--yes"], false);
    assert!(up.ok(), "{up}");
    assert!(!up.stdout.contains("NOTES:"), "{up}");
    assert!(
        up.stderr
            .contains("warning: the bundle's NOTES did not render")
            && up.stderr.contains("config.web.nope"),
        "{up}"
    );
}
