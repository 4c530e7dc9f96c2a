//! Reusing the layer of a local image whose files have not changed since it was built.
//!
//! Compressing a build context is the whole cost of a local image (gzip is single-threaded), so
//! a rebuild of an unchanged context must not do it again. After a build, the cache's proof store
//! records (authenticated, [`ProofStore::key_for_build`]) a digest of the build's inputs (every
//! entry's path, kind, mode, symlink target, and each file's identity: device, inode, size, mtime
//! and ctime in nanoseconds, in this boot of the kernel, and this builder's version) with the
//! layer it gave, and the layer's uncompressed digest ([`ProofStore::key_for_uncompressed`]). A
//! later build whose inputs digest the same, and whose cache still holds the layer, takes it.
//!
//! Any write to a file changes its ctime, which user space cannot set back; a file changed
//! within the same tick of the file's clock as the scan is the exception (the "racy" case git
//! knows: the kernel's coarse clock, or 2-second timestamps on FAT), so nothing is recorded while
//! any entry changed less than [`SETTLED`] before the build began, nor when the context changed
//! while it was being built. The layer itself is
//! hashed again when it is copied into a bundle unless its cache file is proven too.

use std::time::{Duration, SystemTime};

use airlift_bundle::proof::ProofKey;
use airlift_bundle::{BlobSource, Digest, DirBlobStore, Hasher, ProofStore};

use crate::local_image::Entry;

/// How long before a build an entry must have last changed for the build to be recorded: more
/// than the coarsest timestamps a build context may carry (FAT keeps 2-second mtimes and no
/// ctime), so a later same-size write always shows in the identity.
pub const SETTLED: Duration = Duration::from_secs(2);

/// What the layer builder is: a change to how layers are written changes every key.
const BUILDER: &str = concat!(
    "airlift-pack ",
    env!("CARGO_PKG_VERSION"),
    " tar-gnu gzip-6 mtime-0"
);

/// A build's inputs, as scanned when the build began.
pub(crate) struct Inputs {
    proofs: ProofStore,
    key: ProofKey,
    /// When the scan began.
    started: SystemTime,
}

impl Inputs {
    /// The inputs of building `entries`, scanned from `started` on, when `store` records proofs
    /// (a throwaway store does not) and the boot id can be read.
    pub(crate) fn of(store: &DirBlobStore, entries: &[Entry], started: SystemTime) -> Option<Self> {
        let proofs = store.proof_store()?.clone();
        let key = proofs.key_for_build(&inputs_digest(entries)).ok()?;
        Some(Self {
            proofs,
            key,
            started,
        })
    }

    /// The layer an earlier build of the same inputs made, with its size and uncompressed
    /// digest, when recorded and still in `store`.
    pub(crate) fn recorded(&self, store: &DirBlobStore) -> Option<(Digest, u64, Digest)> {
        let layer = self.proofs.lookup(&self.key).ok()??;
        let diff_id = self
            .proofs
            .lookup(&self.proofs.key_for_uncompressed(&layer))
            .ok()??;
        let size = store.blob_size(&layer)?;
        Some((layer, size, diff_id))
    }

    /// Records that these inputs gave `layer` (uncompressed `diff_id`), unless an entry had
    /// changed too recently to be sure of, or `after` (the context scanned again once the layer
    /// was written) differs. A record that cannot be written only costs a build later.
    pub(crate) fn record(&self, after: &[Entry], layer: &Digest, diff_id: &Digest) {
        let settled_since = self.started.checked_sub(SETTLED);
        let settled = after.iter().all(|e| match (e.changed_at(), settled_since) {
            (Some(changed), Some(since)) => changed < since,
            (None, _) => true,
            (Some(_), None) => false,
        });
        let unchanged = self
            .proofs
            .key_for_build(&inputs_digest(after))
            .is_ok_and(|k| k == self.key);
        if settled && unchanged {
            let _ = self
                .proofs
                .record(&self.proofs.key_for_uncompressed(layer), diff_id);
            let _ = self.proofs.record(&self.key, layer);
        }
    }
}

/// The digest of everything a build reads, and how it writes it.
fn inputs_digest(entries: &[Entry]) -> Digest {
    let mut h = Hasher::new();
    let mut field = |bytes: &[u8]| {
        // Length-prefixed, so no two listings run together into the same bytes.
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(BUILDER.as_bytes());
    for e in entries {
        match e {
            Entry::Dir { rel, mode } => {
                field(b"dir");
                field(rel.as_bytes());
                field(&mode.to_le_bytes());
            }
            Entry::File {
                rel,
                mode,
                identity,
                ..
            } => {
                field(b"file");
                field(rel.as_bytes());
                field(&mode.to_le_bytes());
                field(identity.as_bytes());
            }
            Entry::Symlink { rel, target } => {
                field(b"symlink");
                field(rel.as_bytes());
                field(target.as_os_str().as_encoded_bytes());
            }
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;
    use crate::local_image::scan_context;

    fn context() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app/static")).unwrap();
        std::fs::write(dir.path().join("app/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        std::fs::write(dir.path().join("app/static/index.html"), "<h1>a</h1>\n").unwrap();
        std::os::unix::fs::symlink("static/index.html", dir.path().join("app/index.html")).unwrap();
        dir
    }

    fn digest_of(dir: &Path) -> Digest {
        inputs_digest(&scan_context(dir).unwrap())
    }

    fn store() -> (tempfile::TempDir, DirBlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap().with_proofs();
        (dir, store)
    }

    /// A layer blob in `store`, with a made-up uncompressed digest.
    fn layer_in(store: &DirBlobStore, bytes: &[u8]) -> (Digest, Digest) {
        let d = Digest::of_bytes(bytes);
        store.put(&d, &mut &bytes[..]).unwrap();
        (d, Digest::of_bytes(b"uncompressed"))
    }

    /// Later than every file's change by more than [`SETTLED`]: as if the files were old.
    fn settled_start() -> SystemTime {
        SystemTime::now() + SETTLED + Duration::from_millis(100)
    }

    #[test]
    fn every_change_a_build_would_see_changes_the_inputs() {
        let dir = context();
        let p = dir.path();
        let mut seen = vec![digest_of(p)];
        assert_eq!(
            digest_of(p),
            seen[0],
            "a second scan of the same files differs"
        );
        let changes: [(&str, &dyn Fn()); 7] = [
            ("same size, new content", &|| {
                std::fs::write(p.join("app/run.sh"), "#!/bin/sh\necho ho\n").unwrap()
            }),
            ("mode", &|| {
                std::fs::set_permissions(
                    p.join("app/run.sh"),
                    std::fs::Permissions::from_mode(0o755),
                )
                .unwrap()
            }),
            ("folder mode", &|| {
                std::fs::set_permissions(p.join("app"), std::fs::Permissions::from_mode(0o700))
                    .unwrap()
            }),
            ("new file", &|| {
                std::fs::write(p.join("app/new"), "").unwrap()
            }),
            ("rename", &|| {
                std::fs::rename(p.join("app/new"), p.join("app/new2")).unwrap()
            }),
            ("symlink target", &|| {
                std::fs::remove_file(p.join("app/index.html")).unwrap();
                std::os::unix::fs::symlink("static/./index.html", p.join("app/index.html"))
                    .unwrap();
            }),
            ("file removed", &|| {
                std::fs::remove_file(p.join("app/new2")).unwrap()
            }),
        ];
        for (what, change) in changes {
            change();
            let now = digest_of(p);
            assert!(
                !seen.contains(&now),
                "{what}: the inputs digest did not change"
            );
            seen.push(now);
        }
    }

    #[test]
    fn settled_inputs_are_recorded_and_found_again() {
        let dir = context();
        let (_s, store) = store();
        let entries = scan_context(dir.path()).unwrap();
        let (layer, diff_id) = layer_in(&store, b"layer");
        let inputs = Inputs::of(&store, &entries, settled_start()).unwrap();
        assert_eq!(inputs.recorded(&store), None, "nothing recorded yet");
        inputs.record(&entries, &layer, &diff_id);
        let again = Inputs::of(
            &store,
            &scan_context(dir.path()).unwrap(),
            SystemTime::now(),
        );
        assert_eq!(
            again.unwrap().recorded(&store),
            Some((layer, 5, diff_id)),
            "the same files find the recorded layer"
        );
    }

    #[test]
    fn files_changed_just_before_the_build_are_not_recorded() {
        let dir = context();
        let (_s, store) = store();
        let entries = scan_context(dir.path()).unwrap();
        let (layer, diff_id) = layer_in(&store, b"layer");
        // The files were written a moment ago: a change in the same clock tick as the scan
        // would not show in their ctime.
        let inputs = Inputs::of(&store, &entries, SystemTime::now()).unwrap();
        inputs.record(&entries, &layer, &diff_id);
        assert_eq!(inputs.recorded(&store), None);
    }

    #[test]
    fn a_context_that_changed_during_the_build_is_not_recorded() {
        let dir = context();
        let (_s, store) = store();
        let entries = scan_context(dir.path()).unwrap();
        let (layer, diff_id) = layer_in(&store, b"layer");
        let inputs = Inputs::of(&store, &entries, settled_start()).unwrap();
        std::fs::write(dir.path().join("app/run.sh"), "changed while building").unwrap();
        inputs.record(&scan_context(dir.path()).unwrap(), &layer, &diff_id);
        assert_eq!(inputs.recorded(&store), None);
    }

    #[test]
    fn a_record_is_used_only_when_it_authenticates_and_the_layer_is_held() {
        let dir = context();
        let (s, store) = store();
        let entries = scan_context(dir.path()).unwrap();
        let (layer, diff_id) = layer_in(&store, b"layer");
        let inputs = Inputs::of(&store, &entries, settled_start()).unwrap();
        inputs.record(&entries, &layer, &diff_id);
        assert!(inputs.recorded(&store).is_some());

        // The layer left the cache: build again.
        let path = store.path_of(&layer);
        let held = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(inputs.recorded(&store), None);
        std::fs::write(&path, held).unwrap();
        assert!(inputs.recorded(&store).is_some());

        // Records another user's key wrote (or anyone who cannot read ours) are ignored.
        let key = s
            .path()
            .join(airlift_bundle::source::PROOFS_DIR)
            .join(airlift_bundle::proof::MAC_KEY_FILE);
        std::fs::write(&key, [7u8; 32]).unwrap();
        assert_eq!(inputs.recorded(&store), None);

        // A store that records no proofs (a throwaway one) neither records nor reuses.
        let plain = DirBlobStore::open(s.path()).unwrap();
        assert!(Inputs::of(&plain, &entries, settled_start()).is_none());
    }
}
