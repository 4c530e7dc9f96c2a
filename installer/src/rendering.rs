//! From a verified bundle, a configuration and a relocation map to the objects to apply.
//!
//! Every image reference in every workload becomes `REGISTRY/…@sha256:…`; when the registry
//! needs credentials, each pod spec gets `imagePullSecrets` and each namespace the pull Secret.

use std::collections::BTreeMap;

use airlift_bundle::schema::common::ComponentMode;
use airlift_bundle::schema::manifest::Component;
use airlift_bundle::Bundle;
use airlift_cli::{CommandError, ExitKind};
use airlift_cluster::ManagedObject;
use airlift_render::images::{
    add_pull_secret, pod_namespaces, pull_secret_object, rewrite_images, Relocation,
};
use airlift_render::{
    render_manifests, BundleInfo, Config, K8sObject, ReleaseInfo, Renderer, Secret,
};

/// The largest manifest template read from a bundle.
const TEMPLATE_LIMIT: u64 = 8 * 1024 * 1024;

/// The name of the image pull Secret added to every namespace with pods.
pub const PULL_SECRET_NAME: &str = "airlift-registry";

/// Which optional components to install.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ComponentArgs {
    /// Install this optional component even if it is off by default. Repeatable.
    #[arg(long = "enable", value_name = "COMPONENT")]
    pub enable: Vec<String>,
    /// Leave out this optional component. Repeatable.
    #[arg(long = "disable", value_name = "COMPONENT")]
    pub disable: Vec<String>,
}

impl ComponentArgs {
    /// The components to install, in install order; refuses unknown names and required ones.
    pub fn select<'a>(
        &self,
        components: &'a [Component],
    ) -> Result<Vec<&'a Component>, CommandError> {
        let usage = |msg: String| {
            CommandError::new(ExitKind::Usage, anyhow::anyhow!(msg))
                .with_hint("`airlift-install inspect BUNDLE` lists the components")
        };
        for name in self.enable.iter().chain(&self.disable) {
            match components.iter().find(|c| &c.name == name) {
                None => return Err(usage(format!("the bundle has no component `{name}`"))),
                Some(c) if c.mode == ComponentMode::Required && self.disable.contains(name) => {
                    return Err(usage(format!(
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
                ComponentMode::OptionalOn => !self.disable.contains(&c.name),
                ComponentMode::OptionalOff => self.enable.contains(&c.name),
            })
            .collect();
        chosen.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
        Ok(chosen)
    }
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
/// the pull secret when `pull` is given.
pub fn render_bundle(
    bundle: &Bundle,
    components: &[&Component],
    config: &Config,
    relocation: &BTreeMap<String, String>,
    pull: Option<&PullCredentials>,
    release: &ReleaseInfo,
) -> Result<Vec<Rendered>, CommandError> {
    let m = bundle.manifest();
    let renderer = Renderer::new(
        config,
        &BundleInfo {
            name: m.metadata.name.clone(),
            version: m.metadata.version.clone(),
        },
        release,
    );
    let fail =
        |kind: ExitKind, e: anyhow::Error, hint: &str| CommandError::new(kind, e).with_hint(hint);
    // `owners[i]` is the component (name, order) of `objects[i]`.
    let mut owners: Vec<(String, i32)> = Vec::new();
    let mut objects: Vec<K8sObject> = Vec::new();
    for component in components {
        let mut files = Vec::new();
        for path in &component.manifests {
            let data = bundle.read_member(path, TEMPLATE_LIMIT).map_err(|e| {
                let hint = e.hint();
                CommandError::new(ExitKind::Trust, anyhow::Error::new(e)).with_hint(hint)
            })?;
            let text = String::from_utf8(data).map_err(|_| {
                fail(
                    ExitKind::Failure,
                    anyhow::anyhow!("manifest `{path}` in the bundle is not UTF-8 text"),
                    "the bundle is malformed: ask the vendor for a new build",
                )
            })?;
            files.push((path.clone(), text));
        }
        let rendered = render_manifests(
            &renderer,
            files.iter().map(|(p, t)| (p.as_str(), t.as_str())),
        )
        .map_err(|e| {
            fail(
                ExitKind::Config,
                anyhow::Error::new(e)
                    .context(format!("cannot render component `{}`", component.name)),
                "check the configuration values used by the template named above",
            )
        })?;
        owners.extend(
            rendered
                .iter()
                .map(|_| (component.name.clone(), component.order)),
        );
        objects.extend(rendered);
    }

    let relocation = Relocation::new(relocation).map_err(|e| {
        fail(
            ExitKind::Failure,
            anyhow::Error::new(e),
            "the relocation map is malformed: push again",
        )
    })?;
    rewrite_images(&mut objects, &relocation).map_err(|e| {
        fail(
            ExitKind::Config,
            anyhow::Error::new(e),
            "every image a manifest uses must be carried by the bundle and pushed: push the bundle first",
        )
    })?;
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
pub fn managed(rendered: &[Rendered]) -> Result<Vec<ManagedObject>, CommandError> {
    rendered
        .iter()
        .enumerate()
        .map(|(i, r)| {
            ManagedObject::new(&r.component, r.order, i, r.object.value.clone())
                .map_err(|e| CommandError::new(ExitKind::Config, anyhow::Error::new(e)))
        })
        .collect()
}
