//! From a verified bundle, a configuration and a relocation map to the objects to apply.
//!
//! Every image reference in every workload becomes `REGISTRY/…@sha256:…`; when the registry
//! needs credentials, each pod spec gets `imagePullSecrets` and each namespace the pull Secret.
//! The relocation is computed by the same mapping rule the push uses, without contacting the
//! registry, so rendering and pushing always agree.

use std::collections::BTreeMap;

use airlift_bundle::schema::common::ComponentMode;
use airlift_bundle::schema::manifest::{BundleManifest, Component};
use airlift_bundle::Bundle;
use airlift_cluster::ManagedObject;
use airlift_registry::mapping::Destination;
use airlift_registry::push::{plan_repositories, PushImage};
use airlift_render::images::{
    add_pull_secret, pod_namespaces, pull_secret_object, rewrite_images, Relocation,
};
use airlift_render::{
    render_manifests, BundleInfo, Config, K8sObject, ReleaseInfo, Renderer, Secret,
};

use crate::error::DeployError;

/// The largest manifest template read from a bundle.
const TEMPLATE_LIMIT: u64 = 8 * 1024 * 1024;

/// The name of the image pull Secret added to every namespace with pods.
pub const PULL_SECRET_NAME: &str = "airlift-registry";

/// The components to install, in install order: required ones, optional-on ones unless
/// disabled, optional-off ones when enabled. Refuses unknown names and disabling required ones.
pub fn select_components<'a>(
    components: &'a [Component],
    enable: &[String],
    disable: &[String],
) -> Result<Vec<&'a Component>, DeployError> {
    for name in enable.iter().chain(disable) {
        match components.iter().find(|c| &c.name == name) {
            None => {
                return Err(DeployError::Component(format!(
                    "the bundle has no component `{name}`"
                )))
            }
            Some(c) if c.mode == ComponentMode::Required && disable.contains(name) => {
                return Err(DeployError::Component(format!(
                    "component `{name}` is required and cannot be disabled"
                )))
            }
            _ => {}
        }
    }
    let mut chosen: Vec<&Component> = components
        .iter()
        .filter(|c| match c.mode {
            ComponentMode::Required => true,
            ComponentMode::OptionalOn => !disable.contains(&c.name),
            ComponentMode::OptionalOff => enable.contains(&c.name),
        })
        .collect();
    chosen.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
    Ok(chosen)
}

/// Credentials the cluster's nodes use to pull from the customer registry.
pub struct PullCredentials {
    /// The registry `host[:port]`.
    pub registry: String,
    /// The user.
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// One rendered object with its component.
pub struct Rendered {
    /// The component that rendered it.
    pub component: String,
    /// The component's order.
    pub order: i32,
    /// The object.
    pub object: K8sObject,
}

/// Renders the chosen components with `config`, rewrites every image by `relocation` and adds
/// the pull secret when `pull` is given. With no cluster to detect, templates see the bundle's
/// platform needs resolved for a datacenter cluster that has what the table documents.
pub fn render_bundle(
    bundle: &Bundle,
    components: &[&Component],
    config: &Config,
    relocation: &BTreeMap<String, String>,
    pull: Option<&PullCredentials>,
    release: &ReleaseInfo,
    license: Option<&crate::license::Licensed>,
) -> Result<Vec<Rendered>, DeployError> {
    let platform = airlift_render::platform::resolve(
        &bundle.manifest().platform,
        &airlift_render::platform::ClusterFacts::documented(
            airlift_render::platform::FALLBACK_PROFILE,
        ),
        &Default::default(),
    );
    let target = RenderTarget {
        release,
        platform: &platform,
        license,
    };
    render_bundle_on(bundle, components, config, relocation, pull, &target)
}

/// What objects are rendered for, beside the configuration: the release, the platform the
/// cluster offers and the license.
#[derive(Debug, Clone, Copy)]
pub struct RenderTarget<'a> {
    /// The release (templates see it as `release`).
    pub release: &'a ReleaseInfo,
    /// The bundle's platform needs resolved on the cluster (templates see it as `platform`).
    pub platform: &'a airlift_render::platform::ResolvedPlatform,
    /// The checked license, if any (templates see it as `license`).
    pub license: Option<&'a crate::license::Licensed>,
}

/// [`render_bundle`] for a resolved platform and license.
pub fn render_bundle_on(
    bundle: &Bundle,
    components: &[&Component],
    config: &Config,
    relocation: &BTreeMap<String, String>,
    pull: Option<&PullCredentials>,
    target: &RenderTarget<'_>,
) -> Result<Vec<Rendered>, DeployError> {
    let RenderTarget {
        release,
        platform,
        license,
    } = *target;
    let m = bundle.manifest();
    let mut renderer = Renderer::new(
        config,
        &BundleInfo {
            name: m.metadata.name.clone(),
            version: m.metadata.version.clone(),
        },
        release,
    )
    .with_platform(platform.template_value());
    if let Some(ctx) = crate::license::template_context(m.license.as_ref(), license)? {
        renderer = renderer.with_license(ctx);
    }
    // `owners[i]` is the component (name, order) of `objects[i]`.
    let mut owners: Vec<(String, i32)> = Vec::new();
    let mut objects: Vec<K8sObject> = Vec::new();
    for component in components {
        let mut files = Vec::new();
        for path in &component.manifests {
            let data =
                bundle
                    .read_member(path, TEMPLATE_LIMIT)
                    .map_err(|source| DeployError::Bundle {
                        path: bundle.path().to_path_buf(),
                        source: Box::new(source),
                    })?;
            let text =
                String::from_utf8(data).map_err(|_| DeployError::NotText { path: path.clone() })?;
            files.push((path.clone(), text));
        }
        let rendered = render_manifests(
            &renderer,
            files.iter().map(|(p, t)| (p.as_str(), t.as_str())),
        )
        .map_err(|source| DeployError::Render {
            component: component.name.clone(),
            source,
        })?;
        owners.extend(
            rendered
                .iter()
                .map(|_| (component.name.clone(), component.order)),
        );
        objects.extend(rendered);
    }

    let relocation = Relocation::new(relocation).map_err(DeployError::Images)?;
    rewrite_images(&mut objects, &relocation).map_err(DeployError::Images)?;
    if let (Some(pull), Some(first)) = (pull, owners.first().cloned()) {
        add_pull_secret(&mut objects, PULL_SECRET_NAME);
        for ns in pod_namespaces(&objects, &release.namespace) {
            let value = pull_secret_object(
                PULL_SECRET_NAME,
                &ns,
                &pull.registry,
                &pull.username,
                &pull.password,
            );
            owners.push(first.clone());
            objects.push(K8sObject {
                file: "(image pull secret)".into(),
                index: 1,
                value,
            });
        }
    }
    Ok(owners
        .into_iter()
        .zip(objects)
        .map(|((component, order), object)| Rendered {
            component,
            order,
            object,
        })
        .collect())
}

/// Wraps rendered objects for the cluster engine.
pub fn managed(rendered: &[Rendered]) -> Result<Vec<ManagedObject>, DeployError> {
    rendered
        .iter()
        .enumerate()
        .map(|(i, r)| {
            ManagedObject::new(&r.component, r.order, i, r.object.value.clone())
                .map_err(DeployError::Object)
        })
        .collect()
}

/// Every image of the bundle, as the push engine takes them.
pub fn push_images(manifest: &BundleManifest) -> Vec<PushImage> {
    let mut images: Vec<PushImage> = manifest
        .components
        .iter()
        .flat_map(|c| &c.images)
        .map(PushImage::from)
        .collect();
    images.sort_by(|a, b| a.reference.cmp(&b.reference));
    images.dedup_by(|a, b| a.reference == b.reference);
    images
}

/// Original reference -> `REGISTRY/REPOSITORY@sha256:…`, computed by the same mapping rule the
/// push uses, without contacting the registry. The whole bundle's image set is mapped, so the
/// collision suffixes match the push exactly.
pub fn planned_relocation(
    manifest: &BundleManifest,
    destination: &Destination,
) -> Result<BTreeMap<String, String>, DeployError> {
    let images = push_images(manifest);
    let repos = plan_repositories(&images, destination).map_err(DeployError::Mapping)?;
    Ok(images
        .iter()
        .filter_map(|i| {
            repos
                .get(&i.reference)
                .map(|repo| (i.reference.clone(), format!("{repo}@{}", i.digest)))
        })
        .collect())
}
