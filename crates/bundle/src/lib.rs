//! The Airlift bundle format and its trust chain.
//!
//! A bundle is one uncompressed tar that is also an OCI image layout. Its first member is the
//! bundle manifest ([`schema::manifest::BundleManifest`]), its second the manifest's ECDSA P-256
//! signature; the manifest lists the digest and size of every other member. This crate writes,
//! reads and verifies bundles. It does no network I/O.

pub mod canonical;
pub mod diagnose;
pub mod digest;
pub mod error;
pub mod escape;
pub mod held;
pub mod license;
pub mod limits;
pub mod oci;
pub mod progress;
pub mod proof;
pub mod reader;
pub mod reference;
pub mod schema;
pub mod secret;
pub mod sign;
pub mod source;
pub mod tar_safety;
pub mod time;
pub mod trust;
pub mod verify;
pub mod walk;
pub mod writer;

pub use diagnose::{error_chain, Diagnose, ExitKind};
pub use digest::{Digest, DigestError, Hasher, HashingReader, HashingWriter};
pub use error::{BundleError, IntegrityError};
pub use escape::{escape, Escaped};
pub use limits::{check_nesting, read_bounded, read_bounded_string, LimitError};
pub use progress::{NoProgress, Progress};
pub use proof::ProofStore;
pub use reader::Bundle;
pub use secret::Secret;
pub use sign::{keygen, KeyError, PrivateKey, PublicKey};
pub use source::{BlobSource, BlobSourceReader, DirBlobStore, ProvenRange, StoreError};
pub use tar_safety::TarError;
pub use trust::{SignatureStatus, Trust, TrustError};
pub use verify::VerifyReport;
pub use writer::{
    plan_bundle, write_bundle, BundleContents, BundleFile, BundlePlan, ComponentFile, SlotWriter,
    WriteError, WrittenBundle,
};
