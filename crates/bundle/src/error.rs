//! Errors from reading and verifying a bundle.

use std::io;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::escape::Escaped;
use crate::limits::LimitError;
use crate::tar_safety::TarError;
use crate::trust::TrustError;
use crate::walk::WalkError;

/// The bundle's content does not match what its manifest lists.
#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    /// The first member is not `airlift.yaml`.
    #[error("the first member is `{}`, not airlift.yaml", Escaped(found))]
    ManifestNotFirst {
        /// The first member's path (empty when the archive is empty).
        found: String,
    },
    /// `airlift.yaml.sig` is present but not the second member.
    #[error("airlift.yaml.sig is member #{position}; it must come right after airlift.yaml")]
    SignatureMisplaced {
        /// Its 1-based position.
        position: usize,
    },
    /// A blob in the tar that the manifest does not list.
    #[error(
        "blob {digest} (member `{}`) is in the bundle but not listed in the manifest",
        Escaped(member)
    )]
    ExtraBlob {
        /// The blob.
        digest: Digest,
        /// Its member path.
        member: String,
    },
    /// A member in the tar that the manifest does not list.
    #[error(
        "member `{}` is in the bundle but not listed in the manifest",
        Escaped(path)
    )]
    ExtraMember {
        /// The member path.
        path: String,
    },
    /// A blob the manifest lists that the tar lacks.
    #[error(
        "blob {digest} (member `{member}`) is listed in the manifest but missing from the bundle"
    )]
    MissingBlob {
        /// The blob.
        digest: Digest,
        /// Its member path.
        member: String,
    },
    /// A member the manifest lists that the tar lacks.
    #[error(
        "member `{}` is listed in the manifest but missing from the bundle",
        Escaped(path)
    )]
    MissingMember {
        /// The member path.
        path: String,
    },
    /// A blob's size differs from the listed one (truncated or extended).
    #[error("blob {digest} (member `{member}`) is {actual} bytes but the manifest lists {listed} (truncated or altered)")]
    BlobSize {
        /// The blob.
        digest: Digest,
        /// Its member path.
        member: String,
        /// The listed size.
        listed: u64,
        /// The size in the tar.
        actual: u64,
    },
    /// A member's size differs from the listed one.
    #[error(
        "member `{}` is {actual} bytes but the manifest lists {listed}",
        Escaped(path)
    )]
    MemberSize {
        /// The member path.
        path: String,
        /// The listed size.
        listed: u64,
        /// The size in the tar.
        actual: u64,
    },
    /// A blob's bytes do not hash to its digest.
    #[error("blob {digest} (member `{member}`) was tampered with: its content hashes to {actual}")]
    TamperedBlob {
        /// The blob.
        digest: Digest,
        /// Its member path.
        member: String,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A member's bytes do not hash to the listed digest.
    #[error(
        "member `{}` was tampered with: listed as {listed}, content hashes to {actual}",
        Escaped(path)
    )]
    TamperedMember {
        /// The member path.
        path: String,
        /// The listed digest.
        listed: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// An image listed in the manifest is incomplete or corrupt.
    #[error("an image of the bundle is incomplete")]
    Image(#[source] WalkError),
    /// The members are not in the order the writer puts them (manifest, signature, `oci-layout`,
    /// `index.json`, component files by path, blobs by digest).
    #[error(
        "member #{position} is `{}`, but the canonical order puts `{}` there",
        Escaped(found),
        Escaped(expected)
    )]
    MemberOrder {
        /// The 1-based position.
        position: usize,
        /// The member found there.
        found: String,
        /// The member the canonical order puts there.
        expected: String,
    },
    /// The tar headers' mtime is not the manifest's `build.created`.
    #[error(
        "the tar headers' mtime is {mtime}, but the manifest's build.created `{}` is {created}",
        Escaped(created_text)
    )]
    HeaderTime {
        /// The headers' mtime.
        mtime: u64,
        /// `build.created` in seconds since the epoch.
        created: u64,
        /// `build.created` as written.
        created_text: String,
    },
    /// `index.json` does not name an image the manifest lists, or names it with another digest.
    #[error("index.json does not list image `{}` at {digest}", Escaped(reference))]
    IndexMismatch {
        /// The image reference.
        reference: String,
        /// Its digest in the manifest.
        digest: Digest,
    },
}

/// Any failure to open, read or verify a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle file could not be opened or read.
    #[error("cannot read bundle `{path}`")]
    Io {
        /// The bundle file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The tar is malformed or hostile.
    #[error("bundle `{path}` is not a safe archive")]
    Tar {
        /// The bundle file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: TarError,
    },
    /// The signature check failed.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// Content does not match the manifest.
    #[error(transparent)]
    Integrity(#[from] IntegrityError),
    /// The manifest is not a valid `kind: Bundle` document.
    #[error("airlift.yaml is not a valid bundle manifest")]
    ManifestInvalid(#[source] serde_yaml::Error),
    /// The manifest's `apiVersion`/`kind` are not ones this version reads.
    #[error("airlift.yaml has apiVersion `{api_version}` and kind `{kind}`; this airlift reads airlift.dev/v1alpha1 Bundle")]
    ManifestVersion {
        /// The manifest's apiVersion.
        api_version: String,
        /// The manifest's kind.
        kind: String,
    },
    /// A member or blob is too large to read into memory.
    #[error(
        "`{}` is {size} bytes, over the {limit}-byte limit for reading into memory",
        Escaped(what)
    )]
    TooLarge {
        /// The member path or digest.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A member or blob that was asked for is not in the bundle.
    #[error("`{}` is not in the bundle", Escaped(what))]
    NotFound {
        /// The member path or digest.
        what: String,
    },
    /// `index.json` is not a valid OCI index.
    #[error("index.json is not a valid OCI image index")]
    IndexInvalid(#[source] serde_json::Error),
    /// A document of the bundle was refused before parsing (nested too deep).
    #[error("a document of the bundle is refused before it is parsed")]
    Limit(#[from] LimitError),
    /// The operation needs the whole bundle file, but this bundle's blobs stay in a registry
    /// (it was opened from `oci://…`; its blobs are verified as they stream).
    #[error(
        "bundle `{}` keeps its blobs in its registry: there is no bundle file to read whole",
        Escaped(origin)
    )]
    BlobsElsewhere {
        /// Where the blobs are.
        origin: String,
    },
}

impl BundleError {
    /// What the operator can do about it.
    pub fn hint(&self) -> String {
        match self {
            BundleError::Io { path, .. } => format!("check that `{}` exists and is readable", path.display()),
            BundleError::Tar { source, .. } => source.hint().to_string(),
            BundleError::Trust(e) => e.hint(),
            BundleError::Integrity(e) => e.hint().to_string(),
            BundleError::ManifestInvalid(_) | BundleError::IndexInvalid(_) => "the bundle is corrupt or was not written by airlift-pack: run `airlift-install verify BUNDLE --key vendor.pub` and get a fresh copy from the vendor".into(),
            BundleError::ManifestVersion { .. } => "use the airlift-install release that matches the bundle, or ask the vendor for a bundle built for this version".into(),
            BundleError::TooLarge { .. } => "this member is larger than any manifest or template should be: the bundle is likely corrupt".into(),
            BundleError::NotFound { .. } => "check the reference or digest against `airlift-install inspect BUNDLE`".into(),
            BundleError::Limit(e) => e.hint(),
            BundleError::BlobsElsewhere { origin } => format!("pull it into a file first (`airlift-install pull {} --out DIR`), then use the file", Escaped(origin)),
        }
    }

    /// True when the bundle file named on the command line does not exist (a wrong command
    /// line, exit 2, rather than a failure to read a file that is there).
    pub fn is_missing_file(&self) -> bool {
        matches!(self, BundleError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// True when the error means the bundle must not be trusted (signature, digest or tar
    /// safety); the installer maps these to its "verification failed" exit code.
    pub fn is_trust_failure(&self) -> bool {
        !matches!(
            self,
            BundleError::Io { .. }
                | BundleError::NotFound { .. }
                | BundleError::BlobsElsewhere { .. }
        )
    }
}

impl IntegrityError {
    /// What the operator can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            IntegrityError::BlobSize { .. } | IntegrityError::MissingBlob { .. } | IntegrityError::MissingMember { .. } => {
                "the bundle is incomplete (often an interrupted copy): copy it again and compare its sha256sum with the vendor's"
            }
            IntegrityError::MemberOrder { .. } | IntegrityError::HeaderTime { .. } => {
                "the bundle file was rearranged after it was built (any change is refused): get a fresh copy from the vendor and compare its sha256sum"
            }
            IntegrityError::Image(_) | IntegrityError::IndexMismatch { .. } => {
                "the vendor built an incomplete bundle: ask the vendor to rebuild it with `airlift-pack build`"
            }
            _ => "do not install this bundle: its content does not match its signed manifest. Get a fresh copy from the vendor",
        }
    }
}
