//! A blob store that holds bundles by hard link: a blob written into a bundle is kept as its
//! range of that file (no copy), read back and proven as a blob file would be, kept when the
//! build stops, and a held bundle is removed once nothing points at it and nothing else links it.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;

use airlift_bundle::held::HeldBundle;
use airlift_bundle::proof::ProofKey;
use airlift_bundle::{
    plan_bundle, BlobSource, BundleContents, BundleFile, Digest, DirBlobStore, NoProgress,
    ProvenRange, WriteError,
};

/// Blobs from the cache where it holds them, else from the fixture's store; counts the bytes
/// read from the cache.
struct CacheFirst<'a> {
    cache: &'a DirBlobStore,
    rest: &'a DirBlobStore,
    read: Mutex<HashMap<Digest, u64>>,
}

impl<'a> CacheFirst<'a> {
    fn new(cache: &'a DirBlobStore, rest: &'a DirBlobStore) -> Self {
        Self {
            cache,
            rest,
            read: Mutex::default(),
        }
    }

    fn of(&self, d: &Digest) -> &DirBlobStore {
        if self.cache.contains(d) {
            self.cache
        } else {
            self.rest
        }
    }

    fn bytes_read(&self, d: &Digest) -> u64 {
        self.read.lock().unwrap().get(d).copied().unwrap_or(0)
    }
}

impl BlobSource for CacheFirst<'_> {
    fn blob_size(&self, d: &Digest) -> Option<u64> {
        self.of(d).blob_size(d)
    }
    fn read_blob_at(&self, d: &Digest, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.of(d).read_blob_at(d, offset, buf)?;
        if self.cache.contains(d) {
            *self.read.lock().unwrap().entry(d.clone()).or_default() += n as u64;
        }
        Ok(n)
    }
    fn proven_range(&self, d: &Digest) -> Option<ProvenRange> {
        self.of(d).proven_range(d)
    }
    fn proof_token(&self, d: &Digest) -> Option<ProofKey> {
        self.of(d).proof_token(d)
    }
    fn record_proof(&self, d: &Digest, token: &ProofKey) {
        self.of(d).record_proof(d, token)
    }
}

fn contents(f: &common::Fixture) -> BundleContents {
    BundleContents {
        manifest: f.manifest.clone(),
        files: f.files.clone(),
    }
}

fn cache_at(dir: &Path) -> DirBlobStore {
    DirBlobStore::open(dir)
        .unwrap()
        .with_proofs()
        .with_held_bundles()
}

/// Lays out the fixture's bundle at `out`, its blobs not yet written.
fn create(f: &common::Fixture, out: &Path) -> BundleFile {
    plan_bundle(contents(f), &f.store, None)
        .unwrap()
        .create(out)
        .unwrap()
}

/// The fixture's blobs of 4 KiB or more (its large layer), which a build downloads.
fn layers(f: &common::Fixture) -> BTreeSet<Digest> {
    let plan = plan_bundle(contents(f), &f.store, None).unwrap();
    let layers: BTreeSet<Digest> = plan
        .blobs()
        .iter()
        .filter(|(_, size)| **size >= 4096)
        .map(|(d, _)| d.clone())
        .collect();
    assert!(!layers.is_empty(), "{:?}", plan.blobs());
    layers
}

/// Writes `layer` into its slot as a download would, and has `held` keep it.
fn download(file: &BundleFile, held: &HeldBundle, f: &common::Fixture, layer: &Digest) {
    let bytes = std::fs::read(f.store.path_of(layer)).unwrap();
    let mut w = file.slot_writer(layer).unwrap();
    w.write_chunk(&bytes).unwrap();
    w.finish().unwrap();
    let (_, offset, size) = file.blob_range(layer).unwrap();
    held.keep(layer, offset, size).unwrap();
}

fn read_blob(store: &DirBlobStore, d: &Digest) -> Vec<u8> {
    let mut v = Vec::new();
    store.blob_reader(d).unwrap().read_to_end(&mut v).unwrap();
    v
}

fn inode(p: &Path) -> (u64, u64, u64) {
    let m = std::fs::metadata(p).unwrap();
    (m.dev(), m.ino(), m.nlink())
}

/// How many proofs the cache has recorded.
fn proof_files(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("proofs"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "proof.key")
        .count()
}

fn held_bundles(cache: &Path) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(cache.join("bundles")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_downloaded_blob_is_held_in_the_bundle_not_copied_and_proven_once_settled() {
    let f = common::fixture_with(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let cache = cache_at(&cache_dir);
    let layers = layers(&f);
    let out1 = dir.path().join("one.airlift");
    let file = create(&f, &out1);
    let held = file.hold_in(&cache).unwrap();
    for layer in &layers {
        download(&file, &held, &f, layer);
    }
    // Held before the bundle is complete: read back as the blob, up to its end and no further,
    // but not proven (the file is still being written) and never copied into a file of its own.
    for layer in &layers {
        let bytes = std::fs::read(f.store.path_of(layer)).unwrap();
        assert!(cache.contains(layer) && cache.is_held(layer));
        assert_eq!(cache.blob_size(layer), Some(bytes.len() as u64));
        assert_eq!(read_blob(&cache, layer), bytes);
        let mut tail = [0u8; 64];
        let at = bytes.len() as u64 - 10;
        assert_eq!(cache.read_blob_at(layer, at, &mut tail).unwrap(), 10);
        assert_eq!(tail[..10], bytes[bytes.len() - 10..]);
        assert!(cache.proven_range(layer).is_none());
        assert!(!cache.path_of(layer).exists());
    }
    let rest: Vec<Digest> = plan_bundle(contents(&f), &f.store, None)
        .unwrap()
        .blobs()
        .keys()
        .filter(|d| !layers.contains(*d))
        .cloned()
        .collect();
    file.fill_from(&rest, &f.store, &NoProgress, "write", 1)
        .unwrap();
    let ranges = file.blob_ranges();
    assert_eq!(ranges.len(), layers.len() + rest.len());
    file.finish().unwrap();
    held.settle(&ranges).unwrap();

    // The cache's link is the bundle itself, and every blob it holds is proven.
    let linked = held_bundles(&cache_dir);
    assert_eq!(linked.len(), 1);
    assert_eq!(inode(&linked[0]), inode(&out1));
    assert_eq!(inode(&out1).2, 2);
    for layer in &layers {
        let proven = cache.proven_range(layer).unwrap();
        assert_eq!(proven.size, cache.blob_size(layer).unwrap());
        let mut first = vec![0u8; 16];
        proven
            .file
            .read_exact_at(&mut first, proven.offset)
            .unwrap();
        assert_eq!(first, read_blob(&f.store, layer)[..16]);
    }

    // A rebuild into another file copies the held layers kernel-side without reading them.
    let out2 = dir.path().join("two.airlift");
    let file = create(&f, &out2);
    let held2 = file.hold_in(&cache).unwrap();
    let all: Vec<Digest> = ranges.iter().map(|(d, ..)| d.clone()).collect();
    let source = CacheFirst::new(&cache, &f.store);
    file.fill_from(&all, &source, &NoProgress, "write", 2)
        .unwrap();
    for layer in &layers {
        assert_eq!(source.bytes_read(layer), 0, "{layer} was read, not copied");
    }
    let ranges2 = file.blob_ranges();
    file.finish().unwrap();
    let proofs_before = proof_files(&cache_dir);
    held2.settle(&ranges2).unwrap();
    // Each blob's proof moved to the new bundle: as many proofs as before, none piling up.
    assert_eq!(proof_files(&cache_dir), proofs_before);
    assert!(std::fs::read(&out1).unwrap() == std::fs::read(&out2).unwrap());
    // The first bundle is still linked as one.airlift: holding it costs nothing, it stays.
    assert_eq!(held_bundles(&cache_dir).len(), 2);
    // Deleted there, nothing points at it any more: the next prune frees it.
    std::fs::remove_file(&out1).unwrap();
    assert_eq!(cache.prune_held().unwrap(), 1);
    let linked = held_bundles(&cache_dir);
    assert_eq!(linked.len(), 1);
    assert_eq!(inode(&linked[0]), inode(&out2));

    // The bundle moved by its user (its ctime changes, not its bytes): still proven.
    let moved = dir.path().join("moved.airlift");
    std::fs::rename(&out2, &moved).unwrap();
    for layer in &layers {
        assert!(
            cache.proven_range(layer).is_some(),
            "{layer} lost its proof"
        );
    }

    // A byte flipped in the held bundle: no longer proven, read and refused as corrupt. (Past
    // one tick of the kernel's coarse file clock since the bundle's last write, so the flip
    // moves its mtime on any kernel.)
    std::thread::sleep(std::time::Duration::from_millis(20));
    let layer = layers.iter().next().unwrap();
    let proven = cache.proven_range(layer).unwrap();
    let mut byte = [0u8; 1];
    proven
        .file
        .read_exact_at(&mut byte, proven.offset + 5)
        .unwrap();
    let rw = std::fs::OpenOptions::new()
        .write(true)
        .open(&moved)
        .unwrap();
    rw.write_all_at(&[byte[0] ^ 1], proven.offset + 5).unwrap();
    assert!(cache.proven_range(layer).is_none());
    let file = create(&f, &dir.path().join("three.airlift"));
    let err = file
        .fill_from(std::slice::from_ref(layer), &cache, &NoProgress, "write", 1)
        .unwrap_err();
    assert!(
        matches!(&err, WriteError::SourceCorrupt { digest, .. } if digest == layer),
        "{err:?}"
    );
}

#[test]
fn a_stopped_build_keeps_what_it_downloaded_until_the_cache_forgets_it() {
    let f = common::fixture_with(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let cache = cache_at(&cache_dir);
    let layer = layers(&f).into_iter().next().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let file = create(&f, &out.join("b.airlift"));
    let held = file.hold_in(&cache).unwrap();
    download(&file, &held, &f, &layer);
    drop(file);
    // The build's partial file is gone; the cache's link keeps the downloaded layer.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    assert_eq!(
        read_blob(&cache, &layer),
        std::fs::read(f.store.path_of(&layer)).unwrap()
    );
    assert_eq!(cache.prune_held().unwrap(), 0);
    assert_eq!(held_bundles(&cache_dir).len(), 1);
    // Forgotten (found damaged), nothing points at the bundle: pruned, its space freed.
    cache.forget(&layer);
    assert!(!cache.contains(&layer));
    assert_eq!(cache.prune_held().unwrap(), 1);
    assert!(held_bundles(&cache_dir).is_empty());
}

#[test]
fn a_cache_that_cannot_link_refuses_to_hold_and_a_plain_store_ignores_held_blobs() {
    let f = common::fixture_with(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let layer = layers(&f).into_iter().next().unwrap();
    let file = create(&f, &dir.path().join("b.airlift"));
    // `bundles` cannot be a folder here (as when the cache is on another filesystem, the link
    // cannot be made): holding fails and the caller copies instead.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("bundles"), b"").unwrap();
    assert!(file.hold_in(&cache_at(&blocked)).is_err());

    let cache_dir = dir.path().join("cache");
    let held = file.hold_in(&cache_at(&cache_dir)).unwrap();
    download(&file, &held, &f, &layer);
    assert!(cache_at(&cache_dir).contains(&layer));
    // A store that does not hold bundles (an OCI layout's blobs) never looks for held blobs.
    let plain = DirBlobStore::open(&cache_dir).unwrap().with_proofs();
    assert!(!plain.contains(&layer));
    assert_eq!(plain.blob_size(&layer), None);
    // An entry pointing past the end of the held file is no blob.
    let entry = cache_dir.join("held").join(layer.hex());
    let text = std::fs::read_to_string(&entry).unwrap();
    let (_, offset, _) = file.blob_range(&layer).unwrap();
    let bundle_len = std::fs::metadata(held.path()).unwrap().len();
    std::fs::write(
        &entry,
        text.replace(&format!("offset {offset}"), &format!("offset {bundle_len}")),
    )
    .unwrap();
    assert!(!cache_at(&cache_dir).contains(&layer));
}

#[test]
fn a_plan_the_held_bundle_already_is_is_delivered_without_a_write_and_a_changed_byte_is_found() {
    use airlift_bundle::writer::Reuse;
    let f = common::fixture_with(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let cache = cache_at(&cache_dir);
    let out1 = dir.path().join("one.airlift");
    let file = create(&f, &out1);
    let held = file.hold_in(&cache).unwrap();
    let all: Vec<Digest> = plan_bundle(contents(&f), &f.store, None)
        .unwrap()
        .blobs()
        .keys()
        .cloned()
        .collect();
    // Nothing is held before the bundle is complete and settled.
    let plan = || plan_bundle(contents(&f), &f.store, None).unwrap();
    assert!(plan().reuse_held(&out1, &cache).unwrap().is_none());
    file.fill_from(&all, &f.store, &NoProgress, "write", 1)
        .unwrap();
    let ranges = file.blob_ranges();
    file.finish().unwrap();
    held.settle(&ranges).unwrap();
    let bytes = std::fs::read(&out1).unwrap();

    let (written, how) = plan().reuse_held(&out1, &cache).unwrap().unwrap();
    assert_eq!(how, Reuse::Unchanged);
    assert_eq!(
        (written.path.as_path(), written.size),
        (out1.as_path(), bytes.len() as u64)
    );
    // Another output while the first exists: written, not shared.
    let out2 = dir.path().join("two.airlift");
    assert!(plan().reuse_held(&out2, &cache).unwrap().is_none());
    assert!(!out2.exists());
    // The first deleted: linked into place.
    std::fs::remove_file(&out1).unwrap();
    let (_, how) = plan().reuse_held(&out2, &cache).unwrap().unwrap();
    assert_eq!(how, Reuse::Linked);
    assert_eq!(inode(&out2).2, 2);
    assert_eq!(std::fs::read(&out2).unwrap(), bytes);
    // A plan of other contents (a component file changed) is not this bundle.
    let mut changed = contents(&f);
    changed.files[0].data.push(b'\n');
    let other = plan_bundle(changed, &f.store, None).unwrap();
    assert!(other.reuse_held(&out2, &cache).unwrap().is_none());

    // One byte of the manifest changed, the time put back: every layer's proof still holds, the
    // byte comparison finds it.
    std::fs::remove_file(&out2).unwrap();
    let linked = held_bundles(&cache_dir);
    assert_eq!(linked.len(), 1);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&linked[0])
        .unwrap();
    let modified = file.metadata().unwrap().modified().unwrap();
    let at = bytes.windows(4).position(|w| w == b"kind").unwrap() as u64;
    file.write_all_at(b"K", at).unwrap();
    file.set_modified(modified).unwrap();
    drop(file);
    for layer in layers(&f) {
        assert!(
            cache.proven_range(&layer).is_some(),
            "the layer's proof holds"
        );
    }
    let out3 = dir.path().join("three.airlift");
    assert!(plan().reuse_held(&out3, &cache).unwrap().is_none());
    assert!(!out3.exists());
}
