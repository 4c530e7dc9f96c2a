//! Image discovery in rendered objects, the check that the bundle carries every image, rewriting
//! images to their relocated references, and image pull secrets.
//!
//! A pod spec is found at `spec` of a Pod, `template.spec` of a PodTemplate,
//! `spec.jobTemplate.spec.template.spec` of a CronJob, and `spec.template.spec` of any other object
//! (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, ReplicationController, and custom
//! resources shaped like them). In each, `containers`, `initContainers` and
//! `ephemeralContainers` are scanned.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::objects::K8sObject;
use crate::reference::{ImageRef, ReferenceError};
use crate::secret::Secret;

/// The container lists of a pod spec.
pub const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// A manifest image the bundle does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncarried {
    /// The reference as written in the manifest.
    pub image: String,
    /// The manifest file.
    pub file: String,
    /// The object, `Kind/name`.
    pub object: String,
    /// The component whose manifest uses it.
    pub component: String,
}

/// Errors from image discovery and rewriting.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A container has no `image`, or it is not a string.
    #[error("`{file}` {object}: `{path}` is missing or not a string")]
    MissingImage {
        /// The manifest file.
        file: String,
        /// The object, `Kind/name`.
        object: String,
        /// The field, e.g. `spec.template.spec.containers[0].image`.
        path: String,
    },
    /// An image reference does not parse.
    #[error("`{file}` {object}: `{path}` holds an invalid image reference")]
    Invalid {
        /// The manifest file.
        file: String,
        /// The object, `Kind/name`.
        object: String,
        /// The field.
        path: String,
        /// Why it does not parse.
        #[source]
        source: Box<ReferenceError>,
    },
    /// Manifests use images the bundle does not carry.
    #[error("the bundle does not carry {} image(s) its manifests use, so the installer could not relocate them:\n{}\nadd each to the `images` of its component", .missing.len(), list_uncarried(.missing))]
    NotCarried {
        /// Every uncarried use.
        missing: Vec<Uncarried>,
    },
    /// A key or value of the relocation map is not an image reference.
    #[error("the relocation map holds an invalid reference")]
    BadRelocation(#[source] Box<ReferenceError>),
    /// An image has no entry in the relocation map.
    #[error("`{file}` {object}: image `{image}` has no relocated reference; was it pushed?")]
    NotRelocated {
        /// The reference as written.
        image: String,
        /// The manifest file.
        file: String,
        /// The object, `Kind/name`.
        object: String,
    },
}

fn list_uncarried(missing: &[Uncarried]) -> String {
    missing
        .iter()
        .map(|m| {
            format!(
                "  - `{}` in `{}` ({}) of component `{}`",
                m.image, m.file, m.object, m.component
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One image reference found in a rendered object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// The manifest file.
    pub file: String,
    /// The object, `Kind/name`.
    pub object: String,
    /// The field, e.g. `spec.template.spec.containers[0].image`.
    pub path: String,
    /// The reference as written.
    pub reference: String,
    /// The parsed, normalised reference.
    pub parsed: ImageRef,
}

/// JSON pointers to the pod specs of an object (usually zero or one).
pub fn pod_spec_pointers(obj: &Value) -> Vec<&'static str> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let candidates: &[&'static str] = match kind {
        "Pod" => &["/spec"],
        "PodTemplate" => &["/template/spec"],
        "CronJob" => &["/spec/jobTemplate/spec/template/spec"],
        _ => &["/spec/template/spec"],
    };
    candidates
        .iter()
        .copied()
        .filter(|p| obj.pointer(p).is_some_and(Value::is_object))
        .collect()
}

fn dotted(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

/// Every image reference in `objects`, parsed. Fails on the first container without an image or
/// with an unparsable one.
pub fn discover_images(objects: &[K8sObject]) -> Result<Vec<ImageUse>, ImageError> {
    let mut out = Vec::new();
    for obj in objects {
        for pointer in pod_spec_pointers(&obj.value) {
            let Some(spec) = obj.value.pointer(pointer) else {
                continue;
            };
            for list in CONTAINER_LISTS {
                let Some(containers) = spec.get(list).and_then(Value::as_array) else {
                    continue;
                };
                for (i, c) in containers.iter().enumerate() {
                    let path = format!("{}.{list}[{i}].image", dotted(pointer));
                    let Some(reference) = c.get("image").and_then(Value::as_str) else {
                        return Err(ImageError::MissingImage {
                            file: obj.file.clone(),
                            object: obj.describe(),
                            path,
                        });
                    };
                    let parsed =
                        ImageRef::parse(reference).map_err(|source| ImageError::Invalid {
                            file: obj.file.clone(),
                            object: obj.describe(),
                            path: path.clone(),
                            source: Box::new(source),
                        })?;
                    out.push(ImageUse {
                        file: obj.file.clone(),
                        object: obj.describe(),
                        path,
                        reference: reference.to_string(),
                        parsed,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The normalised references a bundle carries, for [`check_carried`].
pub fn carried_set<'a>(
    references: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeSet<ImageRef>, ReferenceError> {
    references.into_iter().map(ImageRef::parse).collect()
}

/// Checks that every used image (by `component`) is carried; lists every one that is not.
pub fn check_carried(
    uses: &[(String, ImageUse)],
    carried: &BTreeSet<ImageRef>,
) -> Result<(), ImageError> {
    let missing: Vec<Uncarried> = uses
        .iter()
        .filter(|(_, u)| !carried.contains(&u.parsed))
        .map(|(component, u)| Uncarried {
            image: u.reference.clone(),
            file: u.file.clone(),
            object: u.object.clone(),
            component: component.clone(),
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ImageError::NotCarried { missing })
    }
}

/// Original reference -> relocated reference (`REGISTRY/…@sha256:…`), matched after
/// normalisation, so `nginx:1.25` in a manifest finds `docker.io/library/nginx:1.25`.
#[derive(Debug, Clone, Default)]
pub struct Relocation {
    map: BTreeMap<ImageRef, String>,
}

impl Relocation {
    /// Builds the lookup from the map the push step produced; every key and value must parse.
    pub fn new(map: &BTreeMap<String, String>) -> Result<Self, ImageError> {
        let mut out = BTreeMap::new();
        for (from, to) in map {
            let key = ImageRef::parse(from).map_err(|e| ImageError::BadRelocation(Box::new(e)))?;
            ImageRef::parse(to).map_err(|e| ImageError::BadRelocation(Box::new(e)))?;
            out.insert(key, to.clone());
        }
        Ok(Self { map: out })
    }

    /// The relocated reference for `image`, if any.
    pub fn get(&self, image: &ImageRef) -> Option<&str> {
        self.map.get(image).map(String::as_str)
    }
}

/// Rewrites every image of every pod spec to its relocated reference; returns how many were
/// rewritten. Fails, naming the image, when one has no entry (nothing is half-rewritten then:
/// every lookup happens before any change).
pub fn rewrite_images(
    objects: &mut [K8sObject],
    relocation: &Relocation,
) -> Result<usize, ImageError> {
    let uses = discover_images(objects)?;
    for u in &uses {
        if relocation.get(&u.parsed).is_none() {
            return Err(ImageError::NotRelocated {
                image: u.reference.clone(),
                file: u.file.clone(),
                object: u.object.clone(),
            });
        }
    }
    let mut count = 0;
    for obj in objects.iter_mut() {
        for pointer in pod_spec_pointers(&obj.value) {
            let Some(spec) = obj.value.pointer_mut(pointer) else {
                continue;
            };
            for list in CONTAINER_LISTS {
                let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
                    continue;
                };
                for c in containers {
                    let Some(image) = c.get_mut("image") else {
                        continue;
                    };
                    let Some(parsed) = image.as_str().and_then(|s| ImageRef::parse(s).ok()) else {
                        continue;
                    };
                    if let Some(target) = relocation.get(&parsed) {
                        *image = Value::String(target.to_string());
                        count += 1;
                    }
                }
            }
        }
    }
    Ok(count)
}

/// Adds `imagePullSecrets: [{name}]` to every pod spec that lacks it; returns how many pod specs
/// were changed.
pub fn add_pull_secret(objects: &mut [K8sObject], secret_name: &str) -> usize {
    let mut changed = 0;
    for obj in objects.iter_mut() {
        for pointer in pod_spec_pointers(&obj.value) {
            let Some(Value::Object(spec)) = obj.value.pointer_mut(pointer) else {
                continue;
            };
            let list = spec
                .entry("imagePullSecrets")
                .or_insert_with(|| Value::Array(Vec::new()));
            if !list.is_array() {
                *list = Value::Array(Vec::new());
            }
            if let Value::Array(items) = list {
                let present = items
                    .iter()
                    .any(|i| i.get("name").and_then(Value::as_str) == Some(secret_name));
                if !present {
                    items.push(json!({ "name": secret_name }));
                    changed += 1;
                }
            }
        }
    }
    changed
}

/// The namespaces of every object with a pod spec (`default_namespace` for those without one):
/// each needs its own copy of the pull secret.
pub fn pod_namespaces(objects: &[K8sObject], default_namespace: &str) -> BTreeSet<String> {
    objects
        .iter()
        .filter(|o| !pod_spec_pointers(&o.value).is_empty())
        .map(|o| o.namespace().unwrap_or(default_namespace).to_string())
        .collect()
}

/// A `kubernetes.io/dockerconfigjson` Secret that lets pods pull from `registry`.
pub fn pull_secret_object(
    name: &str,
    namespace: &str,
    registry: &str,
    username: &str,
    password: &Secret,
) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let auth = b64.encode(format!("{username}:{}", password.expose()));
    let config = json!({
        "auths": {
            registry: { "username": username, "password": password.expose(), "auth": auth }
        }
    });
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": { "app.kubernetes.io/managed-by": "airlift" }
        },
        "type": "kubernetes.io/dockerconfigjson",
        "data": { ".dockerconfigjson": b64.encode(config.to_string()) }
    })
}

#[cfg(test)]
#[path = "images_tests.rs"]
mod tests;
