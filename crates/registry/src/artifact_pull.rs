//! Pulling a published bundle back into one file, byte-identical to the one published.
//!
//! Order of work: the artifact manifest (bounded); the `airlift.yaml` and signature layers
//! (bounded, digest checked); the signature under the operator's trust policy, **before** the
//! manifest is parsed; the layer list against the members the signed manifest implies; only then
//! the other layers, streamed into a temporary file beside the output (each digest checked as it
//! arrives) in the canonical tar encoding. The file is renamed into place when complete, so an
//! interrupted pull leaves nothing that looks like a bundle.

use std::io::Write;
use std::path::{Path, PathBuf};

use airlift_bundle::canonical::{alignment_record, is_aligned, member_header, padding, TRAILER};
use airlift_bundle::reader::{parse_manifest, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES};
use airlift_bundle::schema::manifest::BundleManifest;
use airlift_bundle::{BundleError, Digest, Progress, SignatureStatus, Trust};

use crate::artifact::{
    check_layers, members, parse_artifact, ArtifactError, ArtifactManifest, Member, OciReference,
    MEDIA_TYPE_BLOB, MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_SIGNATURE,
};
use crate::client::RegistryClient;
use crate::fetch::BlobSink;

/// The progress label of a pull.
pub const PULL_LABEL: &str = "pull";

/// A published bundle whose signature and layer list were checked; nothing large read yet.
#[derive(Debug)]
pub struct Resolved {
    /// `registry/repository:tag` for messages.
    pub reference: String,
    /// The repository.
    pub repository: String,
    /// The artifact manifest's digest.
    pub artifact_digest: Digest,
    /// The artifact manifest.
    pub artifact: ArtifactManifest,
    /// The signed, parsed bundle manifest.
    pub manifest: BundleManifest,
    /// Its exact bytes.
    pub manifest_bytes: Vec<u8>,
    /// The signature, when signed.
    pub signature: Option<Vec<u8>>,
    /// What the trust policy decided.
    pub status: SignatureStatus,
}

/// What a pull wrote.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The bundle file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The artifact manifest's digest.
    pub artifact_digest: Digest,
}

/// Fetches the artifact at `oci` (its tag or digest: one is required), checks the signature
/// under `trust`, parses the signed manifest and checks the layer list against it.
pub async fn resolve(
    client: &RegistryClient,
    oci: &OciReference,
    trust: &Trust,
) -> Result<Resolved, ArtifactError> {
    let tag = oci
        .reference
        .clone()
        .ok_or_else(|| ArtifactError::BadReference {
            reference: format!("oci://{}/{}", oci.registry, oci.repository),
            problem: "it names no tag (list the versions with `airlift-install updates`)".into(),
        })?;
    let reference = oci.display_with(&tag);
    let repo = &oci.repository;
    let fetched = client
        .get_manifest(repo, &tag, MEDIA_TYPE_OCI_MANIFEST)
        .await?
        .ok_or_else(|| ArtifactError::NotFound {
            registry: oci.registry.clone(),
            reference: reference.clone(),
        })?;
    let artifact = parse_artifact(&reference, &fetched.bytes)?;
    let first = &artifact.layers[0];
    let manifest_bytes = client
        .get_blob_bytes(repo, &first.digest, first.size, MAX_MANIFEST_BYTES)
        .await?;
    let signature = match artifact.layers.get(1) {
        Some(l) if l.media_type == MEDIA_TYPE_SIGNATURE => Some(
            client
                .get_blob_bytes(repo, &l.digest, l.size, MAX_SIGNATURE_BYTES)
                .await?,
        ),
        _ => None,
    };
    let bundle_err = |source: BundleError| ArtifactError::Bundle {
        reference: reference.clone(),
        source: Box::new(source),
    };
    let status =
        airlift_bundle::trust::check_signature(&manifest_bytes, signature.as_deref(), trust)
            .map_err(|e| bundle_err(e.into()))?;
    let manifest = parse_manifest(&manifest_bytes).map_err(bundle_err)?;
    let expected = members(&manifest, &manifest_bytes, signature.as_deref());
    check_layers(&reference, &artifact, &expected)?;
    Ok(Resolved {
        reference,
        repository: repo.clone(),
        artifact_digest: fetched.digest,
        artifact,
        manifest,
        manifest_bytes,
        signature,
        status,
    })
}

/// Writes the bundle `resolved` describes to `out`: every layer streamed in archive order into
/// the canonical tar encoding, hashing the file as it is written.
pub async fn write_bundle_file(
    client: &RegistryClient,
    resolved: &Resolved,
    out: &Path,
    progress: &dyn Progress,
) -> Result<PullReport, ArtifactError> {
    let name = out.display().to_string();
    let io = io_error(&name);
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".airlift-pull-")
        .tempfile_in(&dir)
        .map_err(&io)?;
    let file = tmp.as_file().try_clone().map_err(&io)?;
    let expected = resolved.members();
    let bytes = write_canonical(client, resolved, &expected, file, &name, progress).await?;
    tmp.as_file().sync_all().map_err(&io)?;
    tmp.persist(out).map_err(|e| io(e.error))?;
    Ok(PullReport {
        path: out.to_path_buf(),
        bytes,
        artifact_digest: resolved.artifact_digest.clone(),
    })
}

/// Writes the members of the bundle `resolved` describes that are not blobs (the manifest, the
/// signature, `oci-layout`, `index.json`, the component files) to `file` in the canonical tar
/// encoding, then the end of the archive: what [`airlift_bundle::Bundle::open_members_trusted`]
/// opens. Each member's digest is checked as it arrives. Returns the bytes written.
pub async fn write_members(
    client: &RegistryClient,
    resolved: &Resolved,
    file: std::fs::File,
    name: &str,
    progress: &dyn Progress,
) -> Result<u64, ArtifactError> {
    let mut expected = resolved.members();
    expected.retain(|m| m.media_type != MEDIA_TYPE_BLOB);
    write_canonical(client, resolved, &expected, file, name, progress).await
}

impl Resolved {
    /// The members the signed manifest implies, in archive order (what the layers were
    /// checked against).
    pub fn members(&self) -> Vec<Member> {
        members(
            &self.manifest,
            &self.manifest_bytes,
            self.signature.as_deref(),
        )
    }
}

fn io_error(name: &str) -> impl Fn(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: name.to_string(),
        source,
    }
}

/// Writes `expected` (a prefix of the bundle's members, in archive order) to `file` with their
/// canonical headers and padding, then the trailer. The manifest and signature come from
/// memory; every other member is streamed from the artifact's repository, its digest checked.
async fn write_canonical(
    client: &RegistryClient,
    resolved: &Resolved,
    expected: &[Member],
    file: std::fs::File,
    name: &str,
    progress: &dyn Progress,
) -> Result<u64, ArtifactError> {
    let io = io_error(name);
    let mut sink = FileSink {
        file: std::io::BufWriter::with_capacity(1 << 20, file),
        written: 0,
        member: None,
    };
    let mtime = airlift_bundle::time::rfc3339_to_epoch(&resolved.manifest.build.created);
    let total: u64 = expected.iter().map(|m| m.size).sum();
    progress.start(PULL_LABEL, Some(total));
    for (i, m) in expected.iter().enumerate() {
        if is_aligned(&m.path, m.size) {
            if let Some(record) = alignment_record(sink.written, mtime).map_err(&io)? {
                sink.append(&record).map_err(&io)?;
            }
        }
        let header = member_header(&m.path, m.size, mtime).map_err(&io)?;
        sink.append(&header).map_err(&io)?;
        // The manifest and signature were fetched (bounded) and checked first: the first two
        // members, as every bundle and artifact lists them.
        if i == 0 {
            sink.append(&resolved.manifest_bytes).map_err(&io)?;
        } else if let (1, Some(sig)) = (i, &resolved.signature) {
            sink.append(sig).map_err(&io)?;
        } else {
            sink.begin_member();
            client
                .get_blob(&resolved.repository, &m.digest, m.size, &mut sink)
                .await
                .map_err(|e| match e {
                    crate::error::RegistryError::Protocol { .. } => ArtifactError::LayerDigest {
                        reference: resolved.reference.clone(),
                        path: m.path.clone(),
                        digest: m.digest.clone(),
                    },
                    other => other.into(),
                })?;
            sink.end_member();
        }
        let pad = usize::try_from(padding(m.size)).unwrap_or(0);
        sink.append(&[0u8; 512][..pad]).map_err(&io)?;
        progress.advance(PULL_LABEL, m.size);
    }
    sink.append(&TRAILER).map_err(&io)?;
    progress.finish(PULL_LABEL);
    sink.file.flush().map_err(&io)?;
    Ok(sink.written)
}

/// The output file. A member download that restarts truncates the file back to the member's
/// start.
struct FileSink {
    file: std::io::BufWriter<std::fs::File>,
    written: u64,
    /// The file offset where the member being downloaded started, and its bytes so far.
    member: Option<(u64, u64)>,
}

impl FileSink {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn begin_member(&mut self) {
        self.member = Some((self.written, 0));
    }

    fn end_member(&mut self) {
        if let Some((_, n)) = self.member.take() {
            self.written += n;
        }
    }
}

impl BlobSink for FileSink {
    fn reset(&mut self) -> std::io::Result<()> {
        use std::io::Seek;
        let Some((start, n)) = self.member.as_mut() else {
            return Ok(());
        };
        if *n > 0 {
            self.file.flush()?;
            let f = self.file.get_mut();
            f.set_len(*start)?;
            f.seek(std::io::SeekFrom::Start(*start))?;
            *n = 0;
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        if let Some((_, n)) = self.member.as_mut() {
            *n += bytes.len() as u64;
        }
        Ok(())
    }
}
