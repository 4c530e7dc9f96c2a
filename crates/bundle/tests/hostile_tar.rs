//! Hostile tar fixtures, each named for what it attacks. Every one is rejected by the header scan,
//! before any content is read, with its own named error.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::Write;
use std::path::{Path, PathBuf};

mod common;

use airlift_bundle::canonical::member_header;
use airlift_bundle::{Bundle, BundleError, PrivateKey, TarError, Trust};

/// Raw header writer: no path validation, so it can write what attackers write.
struct Fixture {
    out: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let mut f = Self { out: Vec::new() };
        f.file(
            "airlift.yaml",
            b"apiVersion: airlift.dev/v1alpha1\nkind: Bundle\n",
        );
        f
    }

    /// The canonical header the writer would emit, with the name, type and link overwritten
    /// (so only what the fixture attacks differs from a real bundle).
    fn header(&mut self, name: &[u8], kind: tar::EntryType, size: u64, link: &[u8]) {
        let canonical = member_header("x", size, 0).unwrap();
        let mut h = tar::Header::new_old();
        h.as_mut_bytes().copy_from_slice(&canonical);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name);
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
    }

    fn data(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.header(
            name.as_bytes(),
            tar::EntryType::Regular,
            data.len() as u64,
            b"",
        );
        self.data(data);
        self
    }

    fn special(&mut self, name: &str, kind: tar::EntryType, link: &str) -> &mut Self {
        self.header(name.as_bytes(), kind, 0, link.as_bytes());
        self
    }

    fn write(&mut self, dir: &Path, name: &str) -> PathBuf {
        self.out.extend_from_slice(&[0u8; 1024]);
        let p = dir.join(format!("{name}.tar"));
        std::fs::File::create(&p)
            .unwrap()
            .write_all(&self.out)
            .unwrap();
        common::export_fuzz_seed(&p, &format!("{name}.tar"));
        p
    }
}

/// Opens `path` both ways and returns the tar error (it must be the same both ways).
fn rejected(path: &Path) -> TarError {
    let key = PrivateKey::generate();
    let trusted = Bundle::open_trusted(path, &Trust::Key(key.public_key())).unwrap_err();
    assert!(trusted.is_trust_failure());
    let plain = Bundle::open(path).unwrap_err();
    assert_eq!(trusted.to_string(), plain.to_string());
    match plain {
        BundleError::Tar { source, .. } => source,
        other => panic!(
            "{}: expected a tar safety error, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn hostile_path_traversal_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let p = Fixture::new()
        .file("blobs/../../etc/cron.d/evil", b"* * * * * root sh")
        .write(d.path(), "hostile-path-traversal");
    assert!(
        matches!(rejected(&p), TarError::Traversal { path } if path == "blobs/../../etc/cron.d/evil")
    );
}

#[test]
fn hostile_absolute_path_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let p = Fixture::new()
        .file("/etc/passwd", b"root::0:0::/:/bin/sh")
        .write(d.path(), "hostile-absolute-path");
    assert!(matches!(rejected(&p), TarError::Absolute { .. }));
}

#[test]
fn hostile_dot_path_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let p = Fixture::new()
        .file("./index.json", b"{}")
        .write(d.path(), "hostile-dot-path");
    assert!(matches!(rejected(&p), TarError::NonCanonical { .. }));
}

#[test]
fn hostile_symlink_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let p = Fixture::new()
        .special("index.json", tar::EntryType::Symlink, "/etc/shadow")
        .write(d.path(), "hostile-symlink");
    assert!(matches!(rejected(&p), TarError::Symlink { target, .. } if target == "/etc/shadow"));
}

#[test]
fn hostile_hardlink_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let p = Fixture::new()
        .special("index.json", tar::EntryType::Link, "/etc/shadow")
        .write(d.path(), "hostile-hardlink");
    assert!(matches!(rejected(&p), TarError::HardLink { .. }));
}

#[test]
fn hostile_duplicate_manifest_is_rejected() {
    // The classic swap: a reader that trusts the first copy and uses the second.
    let d = tempfile::tempdir().unwrap();
    let p = Fixture::new()
        .file(
            "airlift.yaml",
            b"apiVersion: airlift.dev/v1alpha1\nkind: Evil\n",
        )
        .write(d.path(), "hostile-duplicate-member");
    assert!(matches!(rejected(&p), TarError::Duplicate { path } if path == "airlift.yaml"));
}

#[test]
fn hostile_character_device_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let p = Fixture::new()
        .special("dev-mem", tar::EntryType::Char, "")
        .write(d.path(), "hostile-char-device");
    assert!(matches!(
        rejected(&p),
        TarError::Device {
            kind: "character device",
            ..
        }
    ));
}

#[test]
fn hostile_block_device_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let p = Fixture::new()
        .special("sda", tar::EntryType::Block, "")
        .write(d.path(), "hostile-block-device");
    assert!(matches!(
        rejected(&p),
        TarError::Device {
            kind: "block device",
            ..
        }
    ));
}

#[test]
fn hostile_fifo_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let p = Fixture::new()
        .special("pipe", tar::EntryType::Fifo, "")
        .write(d.path(), "hostile-fifo");
    assert!(matches!(
        rejected(&p),
        TarError::Device { kind: "fifo", .. }
    ));
}

#[test]
fn hostile_directory_entry_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let p = Fixture::new()
        .special("blobs", tar::EntryType::Directory, "")
        .write(d.path(), "hostile-directory");
    assert!(matches!(
        rejected(&p),
        TarError::UnsupportedType { kind: '5', .. }
    ));
}

#[test]
fn hostile_oversize_member_past_eof_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let mut f = Fixture::new();
    // Declares 1 GiB, carries 512 bytes.
    f.header(b"blobs/sha256/aa", tar::EntryType::Regular, 1 << 30, b"");
    f.data(&[7u8; 512]);
    let p = f.write(d.path(), "hostile-oversize-member");
    match rejected(&p) {
        TarError::PastEof { size, file_len, .. } => {
            assert_eq!(size, 1 << 30);
            assert!(file_len < 1 << 30);
        }
        other => panic!("expected PastEof, got {other:?}"),
    }
}

#[test]
fn hostile_gnu_longname_traversal_is_rejected() {
    // The path hides in a GNU long-name extension record, not in the header's name field: the
    // record is refused by its type, before its content is read.
    let d = tempfile::tempdir().unwrap();
    let mut f = Fixture::new();
    let long = format!("{}/../../../../root/.ssh/authorized_keys", "a".repeat(120));
    f.header(
        b"././@LongLink",
        tar::EntryType::GNULongName,
        long.len() as u64 + 1,
        b"",
    );
    let mut data = long.clone().into_bytes();
    data.push(0);
    f.data(&data);
    f.file("innocent", b"ssh-ed25519 AAAA attacker");
    let p = f.write(d.path(), "hostile-gnu-longname-traversal");
    assert!(matches!(
        rejected(&p),
        TarError::Extension {
            kind: 'L',
            offset: 1024
        }
    ));
}

#[test]
fn hostile_pax_path_traversal_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let mut f = Fixture::new();
    let record = "31 path=../../../../etc/passwd\n";
    assert_eq!(record.len(), 31);
    f.header(
        b"PaxHeader",
        tar::EntryType::XHeader,
        record.len() as u64,
        b"",
    );
    f.data(record.as_bytes());
    f.file("innocent", b"root::0:0::/:/bin/sh");
    let p = f.write(d.path(), "hostile-pax-path-traversal");
    assert!(matches!(
        rejected(&p),
        TarError::Extension {
            kind: 'x',
            offset: 1024
        }
    ));
}

#[test]
fn corrupt_header_checksum_is_named() {
    let d = tempfile::tempdir().unwrap();
    let mut f = Fixture::new();
    f.file("index.json", b"{}");
    // Corrupt a byte of the second header's name after its checksum was computed.
    f.out[512 + 512 + 3] ^= 0x20;
    let p = f.write(d.path(), "corrupt-header-checksum");
    assert!(matches!(rejected(&p), TarError::Checksum { offset: 1024 }));
}

#[test]
fn hostile_huge_pax_header_is_rejected_before_it_is_read() {
    // A PAX record declaring 1 GiB would be read into memory by a naive reader.
    let d = tempfile::tempdir().unwrap();
    let mut f = Fixture::new();
    f.header(b"PaxHeader", tar::EntryType::XHeader, 1 << 30, b"");
    f.data(&[b'a'; 512]);
    let p = f.write(d.path(), "hostile-huge-pax-header");
    assert!(matches!(
        rejected(&p),
        TarError::Extension { kind: 'x', .. }
    ));
}

#[test]
fn hostile_huge_gnu_longname_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let mut f = Fixture::new();
    let long = vec![b'a'; 200 * 1024];
    f.header(
        b"././@LongLink",
        tar::EntryType::GNULongName,
        long.len() as u64,
        b"",
    );
    f.data(&long);
    f.file("innocent", b"x");
    let p = f.write(d.path(), "hostile-huge-gnu-longname");
    assert!(matches!(
        rejected(&p),
        TarError::Extension { kind: 'L', .. }
    ));
}
