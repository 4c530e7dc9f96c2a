//! Writing a planned bundle blob by blob, in any order, from downloads: the same bytes as a
//! bundle written from one source, and nothing accepted that is not the blob.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use airlift_bundle::{
    plan_bundle, write_bundle, BlobSource, BundleContents, Digest, DirBlobStore, NoProgress,
    PrivateKey, WriteError,
};

/// Forwards to a store and records which blobs were read.
struct Recording<'a> {
    inner: &'a DirBlobStore,
    read: Mutex<BTreeSet<Digest>>,
}

impl BlobSource for Recording<'_> {
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.inner.blob_size(digest)
    }
    fn read_blob_at(&self, digest: &Digest, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.read.lock().unwrap().insert(digest.clone());
        self.inner.read_blob_at(digest, offset, buf)
    }
}

fn contents(f: &common::Fixture) -> BundleContents {
    BundleContents {
        manifest: f.manifest.clone(),
        files: f.files.clone(),
    }
}

/// The blobs a plan does not read (the layers: it needs their sizes only), as the packager's
/// planning source, which knows layers only by their size before they are downloaded.
fn layers(f: &common::Fixture) -> BTreeSet<Digest> {
    let recording = Recording {
        inner: &f.store,
        read: Mutex::default(),
    };
    let plan = plan_bundle(contents(f), &recording, None).unwrap();
    let read = recording.read.into_inner().unwrap();
    let unread: BTreeSet<Digest> = plan
        .blobs()
        .keys()
        .filter(|d| !read.contains(*d))
        .cloned()
        .collect();
    assert!(
        unread.contains(&f.shared_layer),
        "the plan read a layer: {read:?}"
    );
    unread
}

#[test]
fn blobs_written_in_any_order_and_chunking_give_the_same_bundle() {
    let f = common::fixture_with(2 << 20);
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate();
    let reference = dir.path().join("reference.airlift");
    write_bundle(contents(&f), &f.store, Some(&key), &reference, &NoProgress).unwrap();

    let big = layers(&f);
    assert!(big.len() >= 2, "{big:?}");
    let plan = plan_bundle(contents(&f), &f.store, Some(&key)).unwrap();
    let small: Vec<Digest> = plan
        .blobs()
        .keys()
        .filter(|d| !big.contains(*d))
        .cloned()
        .collect();
    let out = dir.path().join("slots.airlift");
    let file = plan.create(&out).unwrap();
    // The small blobs from the store, the layers as "downloads": last digest first, in odd
    // chunk sizes, the first one restarted halfway as a download without Range support is.
    file.fill_from(&small, &f.store, &NoProgress, "write", 2)
        .unwrap();
    for (n, digest) in big.iter().rev().enumerate() {
        let bytes = std::fs::read(f.store.path_of(digest)).unwrap();
        let mut w = file.slot_writer(digest).unwrap();
        if n == 0 {
            w.write_chunk(&bytes[..bytes.len() / 2]).unwrap();
            w.restart();
            assert_eq!(w.written(), 0);
        }
        for chunk in bytes.chunks(7919 + n * 300_007) {
            w.write_chunk(chunk).unwrap();
        }
        assert!(!file.is_filled(digest));
        assert!(file.blob_range(digest).is_none());
        assert_eq!(w.finish().unwrap(), bytes.len() as u64);
        assert!(file.is_filled(digest));
    }
    let written = file.finish().unwrap();
    assert_eq!(written.size, std::fs::metadata(&out).unwrap().len());
    assert!(
        std::fs::read(&reference).unwrap() == std::fs::read(&out).unwrap(),
        "the bundle written slot by slot differs from the one written from the store"
    );
}

#[test]
fn wrong_short_or_long_bytes_are_refused_and_leave_no_bundle() {
    let f = common::fixture_with(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let big = layers(&f);
    let layer = big.iter().next().unwrap().clone();
    let len = f.store.blob_size(&layer).unwrap() as usize;
    let out = dir.path().join("b.airlift");
    let file = plan_bundle(contents(&f), &f.store, None)
        .unwrap()
        .create(&out)
        .unwrap();

    // Same size, other bytes.
    let mut w = file.slot_writer(&layer).unwrap();
    w.write_chunk(&vec![0x5a; len]).unwrap();
    let err = w.finish().unwrap_err();
    assert!(
        matches!(&err, WriteError::Mismatch { digest, size, .. } if digest == &layer && *size == len as u64),
        "{err:?}"
    );
    // Short.
    let right = std::fs::read(f.store.path_of(&layer)).unwrap();
    let mut w = file.slot_writer(&layer).unwrap();
    w.write_chunk(&right[..len - 1]).unwrap();
    assert!(matches!(w.finish(), Err(WriteError::Mismatch { .. })));
    // One byte too many.
    let mut w = file.slot_writer(&layer).unwrap();
    w.write_chunk(&right).unwrap();
    let err = w.write_chunk(b"x").unwrap_err();
    assert!(matches!(err, WriteError::TooLong { .. }), "{err:?}");
    drop(w);
    // Not a blob of this bundle.
    let stranger = Digest::of_bytes(b"not in the bundle");
    assert!(matches!(
        file.slot_writer(&stranger),
        Err(WriteError::NotInBundle { .. })
    ));

    assert!(!file.is_filled(&layer));
    let err = file.finish().unwrap_err();
    assert!(matches!(err, WriteError::Unfilled { .. }), "{err:?}");
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

#[test]
fn a_stopped_bundle_takes_no_more_bytes_and_leaves_nothing() {
    let f = common::fixture_with(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let layer = f.shared_layer.clone();
    let right = std::fs::read(f.store.path_of(&layer)).unwrap();
    let half = right.len() / 2;
    assert!(half > 0);
    let stop = Arc::new(AtomicBool::new(false));
    let out = dir.path().join("b.airlift");
    let plan = plan_bundle(contents(&f), &f.store, None).unwrap();
    let all: Vec<Digest> = plan.blobs().keys().cloned().collect();
    let file = plan.stop_when(stop.clone()).create(&out).unwrap();

    // A download under way when the stop comes: its next chunk is refused.
    let mut w = file.slot_writer(&layer).unwrap();
    w.write_chunk(&right[..half]).unwrap();
    stop.store(true, Ordering::Relaxed);
    let err = w.write_chunk(&right[half..]).unwrap_err();
    assert!(
        matches!(&err, WriteError::Stopped { path } if path == &out),
        "{err:?}"
    );
    drop(w);
    // Copies from a source do not start another blob.
    let err = file
        .fill_from(&all, &f.store, &NoProgress, "write", 2)
        .unwrap_err();
    assert!(matches!(err, WriteError::Stopped { .. }), "{err:?}");
    assert!(all.iter().all(|d| !file.is_filled(d)));
    assert!(err.hint().contains("run the same command again"));

    drop(file);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn a_written_blob_is_adopted_into_a_store_proven_without_hashing_again() {
    let f = common::fixture_with(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let big = layers(&f);
    let layer = big.iter().next().unwrap().clone();
    let file = plan_bundle(contents(&f), &f.store, None)
        .unwrap()
        .create(&dir.path().join("c.airlift"))
        .unwrap();
    let bytes = std::fs::read(f.store.path_of(&layer)).unwrap();
    let mut w = file.slot_writer(&layer).unwrap();
    w.write_chunk(&bytes).unwrap();
    w.finish().unwrap();

    let cache = DirBlobStore::open(dir.path().join("cache"))
        .unwrap()
        .with_proofs();
    let (src, offset, size) = file.blob_range(&layer).unwrap();
    assert_eq!(size, bytes.len() as u64);
    cache.adopt(&layer, src, offset, size).unwrap();
    assert_eq!(std::fs::read(cache.path_of(&layer)).unwrap(), bytes);
    assert!(cache.proven_range(&layer).is_some());
}
