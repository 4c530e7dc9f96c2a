//! The bundle reader on arbitrary files: opening (header pass, signature check, manifest parse,
//! listing and order checks) and a full verification must never panic, hang or allocate without
//! bound, whatever the bytes.
#![no_main]

use std::io::Write;
use std::sync::OnceLock;

use airlift_bundle::{Bundle, NoProgress, PrivateKey, Trust};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(PrivateKey::generate)
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    let path = file.path();
    for trust in [
        Trust::Key(key().public_key()),
        Trust::NoKey,
        Trust::InsecureSkipVerify,
    ] {
        if let Ok(bundle) = Bundle::open_trusted(path, &trust) {
            let _ = bundle.verify(&trust, &NoProgress);
            let _ = bundle.index();
        }
    }
    if let Ok(bundle) = Bundle::open(path) {
        let _ = bundle.file_sha256(&NoProgress, "sha256");
    }
});
