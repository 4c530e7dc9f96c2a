//! Delivery through registries: publish a verified bundle to `oci://HOST/REPO[:TAG]` (its images
//! as ordinary images under `HOST/REPO/…`, then the bundle as an OCI artifact tagged last), pull
//! it back byte-identical, and list the newer versions published on a channel.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use airlift_bundle::walk::walk_image;
use airlift_bundle::{Bundle, Digest, Progress, Trust};
use airlift_registry::artifact::{
    artifact_manifest, members, version_tag, ArtifactError, OciReference,
};
use airlift_registry::artifact_pull::{resolve, write_bundle_file, PullReport, Resolved};
use airlift_registry::artifact_push::{push_artifact, ArtifactPushReport, ArtifactUpload};
use airlift_registry::client::RegistryClient;
use airlift_registry::mapping::Destination;
use airlift_registry::push::{push, PushReport};
use airlift_registry::RegistryOptions;
use serde::Serialize;

use crate::error::DeployError;
use crate::render::push_images;

/// What `publish` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishReport {
    /// `HOST/REPO:TAG` of the artifact.
    pub reference: String,
    /// The tag.
    pub tag: String,
    /// The images (pushed under `HOST/REPO/…`).
    pub images: PushReport,
    /// The artifact's layers and tag.
    pub artifact: ArtifactPushReport,
}

fn client(registry: &str, options: &RegistryOptions) -> Result<RegistryClient, DeployError> {
    RegistryClient::new(registry, options).map_err(|source| DeployError::RegistryClient {
        registry: registry.to_string(),
        source,
    })
}

/// Publishes `bundle` (verified; `file_sha256` is its file's sha256) to `oci`: images first
/// (resumable, skipping what the registry holds), then the artifact's blobs, then its tag. A
/// tag that already names this exact artifact is left alone; one naming anything else is
/// refused.
pub async fn publish(
    bundle: Arc<Bundle>,
    file_sha256: &Digest,
    oci: &OciReference,
    flatten: bool,
    options: &RegistryOptions,
    progress: Arc<dyn Progress>,
) -> Result<PublishReport, DeployError> {
    let manifest = bundle.manifest().clone();
    let tag = match &oci.reference {
        Some(t) if t.starts_with("sha256:") => {
            return Err(ArtifactError::Unpublishable {
                problem: "a bundle is published under a tag, not a digest".into(),
            }
            .into())
        }
        Some(t) => t.clone(),
        None => version_tag(&manifest.metadata.version),
    };
    let client = client(&oci.registry, options)?;
    let destination = Destination {
        registry: oci.registry.clone(),
        prefix: Some(oci.repository.clone()),
        flatten,
    };
    let images = push_images(&manifest);
    let source: Arc<dyn airlift_bundle::BlobSource> = bundle.clone();
    let pushed = push(
        &client,
        source,
        &images,
        &destination,
        options.concurrency,
        progress.clone(),
    )
    .await
    .map_err(DeployError::Push)?;
    // Each blob can be mounted from an image repository that holds it; the tops are annotated
    // with where their image went.
    let mut mount_from: BTreeMap<Digest, String> = BTreeMap::new();
    let mut tops: BTreeMap<Digest, (String, String)> = BTreeMap::new();
    for image in &images {
        let Some(relocated) = pushed.relocation_map.images.get(&image.reference) else {
            continue;
        };
        tops.insert(
            image.digest.clone(),
            (image.reference.clone(), relocated.reference.clone()),
        );
        let repo = relocated
            .repository
            .split_once('/')
            .map_or(relocated.repository.clone(), |(_, r)| r.to_string());
        let graph = walk_image(&*bundle, &image.reference, &image.digest, &image.media_type)
            .map_err(|e| DeployError::Bundle {
                path: bundle.path().to_path_buf(),
                source: Box::new(airlift_bundle::IntegrityError::Image(e).into()),
            })?;
        for (d, _) in graph.blobs {
            mount_from.entry(d).or_insert_with(|| repo.clone());
        }
    }
    let list = members(&manifest, bundle.manifest_bytes(), bundle.signature());
    let artifact = artifact_manifest(&manifest, &list, &tops, file_sha256);
    let upload = ArtifactUpload {
        members: &list,
        artifact: &artifact,
        repo: &oci.repository,
        tag: &tag,
        mount_from: &mount_from,
    };
    let report = push_artifact(
        &client,
        bundle.clone(),
        upload,
        options.concurrency,
        progress,
    )
    .await?;
    Ok(PublishReport {
        reference: oci.display_with(&tag),
        tag,
        images: pushed,
        artifact: report,
    })
}

/// Resolves `oci` (signature checked under `trust`, layer list checked against the signed
/// manifest) and writes the bundle to `out` (a file, or a folder to hold `NAME-VERSION.airlift`). Nothing large is read before the checks pass.
pub async fn pull(
    oci: &OciReference,
    trust: &Trust,
    options: &RegistryOptions,
    out: &Path,
    progress: &dyn Progress,
) -> Result<(Resolved, PullReport), DeployError> {
    let client = client(&oci.registry, options)?;
    let resolved = resolve(&client, oci, trust).await?;
    let path = if out.is_dir() {
        let md = &resolved.manifest.metadata;
        out.join(file_name(&md.name, &md.version))
    } else {
        out.to_path_buf()
    };
    let report = write_bundle_file(&client, &resolved, &path, progress).await?;
    Ok((resolved, report))
}

/// `NAME-VERSION.airlift`, every character outside `[A-Za-z0-9._+-]` written as `_` (the
/// names come from a signed manifest, but a file name must never climb out of its folder).
fn file_name(name: &str, version: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{}-{}.airlift", clean(name), clean(version))
}

/// One published version.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// The tag.
    pub tag: String,
    /// The version, from the signed manifest.
    pub version: String,
    /// The channel, from the signed manifest.
    pub channel: String,
    /// The build time.
    pub created: String,
    /// The components and their images, from the signed manifest (what the version ships).
    pub components: Vec<String>,
    /// The artifact manifest's digest.
    pub digest: String,
}

/// What `updates` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Updates {
    /// The versions on `channel` newer than `current`, oldest first.
    pub newer: Vec<Published>,
    /// Tags skipped: not semver, not a bundle, or on another channel (tag and reason).
    pub skipped: Vec<(String, String)>,
}

/// Lists the versions published in `oci`'s repository that are on `channel` and newer than
/// `current`, in semver order. Each candidate's signature is checked under `trust`; its version
/// and channel come from the signed manifest, never from tags or annotations.
pub async fn updates(
    oci: &OciReference,
    channel: &str,
    current: &semver::Version,
    trust: &Trust,
    options: &RegistryOptions,
) -> Result<Updates, DeployError> {
    let client = client(&oci.registry, options)?;
    let tags = client
        .list_tags(&oci.repository)
        .await
        .map_err(ArtifactError::from)?;
    let mut newer = Vec::new();
    let mut skipped = Vec::new();
    for tag in tags {
        // `+` is published as `_`; the signed manifest is checked below in any case.
        let Ok(v) = semver::Version::parse(&tag.replace('_', "+")) else {
            skipped.push((tag, "not a version".into()));
            continue;
        };
        if &v <= current {
            continue;
        }
        let one = OciReference {
            reference: Some(tag.clone()),
            ..oci.clone()
        };
        let resolved = match resolve(&client, &one, trust).await {
            Ok(r) => r,
            Err(ArtifactError::NotABundle { .. }) => {
                skipped.push((tag, "not an Airlift bundle".into()));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let md = &resolved.manifest.metadata;
        let signed = semver::Version::parse(&md.version).ok();
        if signed.as_ref() != Some(&v) {
            skipped.push((
                tag,
                format!("the signed manifest says version {}", md.version),
            ));
            continue;
        }
        if md.channel != channel {
            skipped.push((tag, format!("channel {}", md.channel)));
            continue;
        }
        newer.push((
            v,
            Published {
                tag,
                version: md.version.clone(),
                channel: md.channel.clone(),
                created: resolved.manifest.build.created.clone(),
                components: resolved
                    .manifest
                    .components
                    .iter()
                    .map(|c| c.name.clone())
                    .collect(),
                digest: resolved.artifact_digest.to_string(),
            },
        ));
    }
    newer.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Updates {
        newer: newer.into_iter().map(|(_, p)| p).collect(),
        skipped,
    })
}
