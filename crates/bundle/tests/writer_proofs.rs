//! A rebuild from a cache with blob proofs: byte-identical to a hashed build, reads no proven
//! blob, and trusts no proof once the blob's file changed.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Mutex;

use airlift_bundle::proof::ProofKey;
use airlift_bundle::{
    write_bundle, BlobSource, BundleContents, Digest, DirBlobStore, NoProgress, PrivateKey,
    WriteError, WrittenBundle,
};

/// Forwards to a store and counts the bytes read from each blob.
struct Counting<'a> {
    inner: &'a DirBlobStore,
    read: Mutex<HashMap<Digest, u64>>,
}

impl Counting<'_> {
    fn bytes_read(&self, d: &Digest) -> u64 {
        self.read.lock().unwrap().get(d).copied().unwrap_or(0)
    }
}

impl BlobSource for Counting<'_> {
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.inner.blob_size(digest)
    }
    fn read_blob_at(&self, digest: &Digest, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read_blob_at(digest, offset, buf)?;
        *self.read.lock().unwrap().entry(digest.clone()).or_default() += n as u64;
        Ok(n)
    }
    fn proven_range(&self, digest: &Digest) -> Option<airlift_bundle::ProvenRange> {
        self.inner.proven_range(digest)
    }
    fn proof_token(&self, digest: &Digest) -> Option<ProofKey> {
        self.inner.proof_token(digest)
    }
    fn record_proof(&self, digest: &Digest, token: &ProofKey) {
        self.inner.record_proof(digest, token)
    }
}

fn write(
    f: &common::Fixture,
    source: &dyn BlobSource,
    key: &PrivateKey,
    out: &std::path::Path,
) -> Result<WrittenBundle, WriteError> {
    write_bundle(
        BundleContents {
            manifest: f.manifest.clone(),
            files: f.files.clone(),
        },
        source,
        Some(key),
        out,
        &NoProgress,
    )
}

#[test]
fn a_rebuild_from_proven_blobs_is_identical_and_reads_none_of_them() {
    let f = common::fixture_with(3 << 20);
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate();
    // Hashed: a store without proofs.
    let hashed = write(&f, &f.store, &key, &dir.path().join("a.airlift")).unwrap();
    // The shared base layer and the large filler layer (the walker reads manifests, not layers).
    let mut layers: Vec<Digest> = hashed
        .manifest
        .blobs
        .iter()
        .filter(|b| b.size > 1_000_000)
        .map(|b| b.digest.clone())
        .collect();
    assert_eq!(layers.len(), 1);
    layers.push(f.shared_layer.clone());

    // The same cache with proofs on: its blobs were committed without proofs, so this build
    // hashes them, and proves each one it hashed.
    let store = DirBlobStore::open(f.store.root()).unwrap().with_proofs();
    assert!(layers.iter().all(|d| store.proven_range(d).is_none()));
    let first = Counting {
        inner: &store,
        read: Mutex::default(),
    };
    write(&f, &first, &key, &dir.path().join("b.airlift")).unwrap();
    for d in &layers {
        assert!(first.bytes_read(d) > 0, "{d} was not hashed");
        assert!(store.proven_range(d).is_some(), "{d} was not proven");
    }

    // The rebuild copies proven blobs without reading them, into the very same bytes.
    let second = Counting {
        inner: &store,
        read: Mutex::default(),
    };
    write(&f, &second, &key, &dir.path().join("c.airlift")).unwrap();
    for d in &layers {
        assert_eq!(second.bytes_read(d), 0, "{d} was read again");
    }
    let a = std::fs::read(dir.path().join("a.airlift")).unwrap();
    assert_eq!(a, std::fs::read(dir.path().join("b.airlift")).unwrap());
    assert_eq!(a, std::fs::read(dir.path().join("c.airlift")).unwrap());
}

#[test]
fn a_blob_changed_after_its_proof_is_hashed_and_refused() {
    let f = common::fixture_with(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate();
    let store = DirBlobStore::open(f.store.root()).unwrap().with_proofs();
    write(&f, &store, &key, &dir.path().join("a.airlift")).unwrap();
    let layer = &f.shared_layer;
    assert!(store.proven_range(layer).is_some());

    // Same size, other bytes: the proof no longer matches, the writer hashes and refuses it.
    let path = store.path_of(layer);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::write(&path, vec![0x5a; len as usize]).unwrap();
    assert!(store.proven_range(layer).is_none());
    let err = write(&f, &store, &key, &dir.path().join("b.airlift")).unwrap_err();
    assert!(
        matches!(&err, WriteError::SourceCorrupt { digest, .. } if digest == layer),
        "{err:?}"
    );
    assert!(!dir.path().join("b.airlift").exists());
}
