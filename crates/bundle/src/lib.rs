//! The Airlift bundle format and its trust chain.
//!
//! A bundle is one uncompressed tar that is also an OCI image layout. Its first member is the
//! bundle manifest ([`schema::manifest::BundleManifest`]), its second the manifest's ECDSA P-256
//! signature; the manifest lists the digest and size of every other member. This crate writes,
//! reads and verifies bundles. It does no network I/O.

pub mod digest;
pub mod progress;
pub mod schema;
pub mod source;

pub use digest::{Digest, DigestError, Hasher, HashingReader, HashingWriter};
pub use progress::{NoProgress, Progress};
pub use source::{BlobSource, BlobSourceReader, DirBlobStore, StoreError};
