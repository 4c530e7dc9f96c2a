//! Generated secret values, kept across upgrades: a Secret `airlift-generated-<release>` of type
//! `airlift.dev/generated` in the release namespace, one data key per configuration key (e.g.
//! `db.password`). The installer reads it before resolving the configuration (so values generated
//! at install are reused) and writes newly generated values back before applying. It lives
//! outside the release records, which never hold secret values, and survives an uninstall that
//! keeps data, so a re-install over kept volumes gets the same passwords.

use std::collections::BTreeMap;

use airlift_render::Secret as SecretValue;
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use crate::object::{FIELD_MANAGER, LABEL_MANAGED_BY, LABEL_RELEASE, MANAGED_BY};

/// The Secret type holding generated values.
pub const GENERATED_SECRET_TYPE: &str = "airlift.dev/generated";
/// The Secret type holding the secret values a site gave (remembered for upgrades).
pub const SITE_SECRET_TYPE: &str = "airlift.dev/site-values";
/// The entry of the generated Secret holding the release's fingerprint key: the HMAC key of
/// the secret fingerprints in its records (no configuration key has a `-` in its item name,
/// so it never collides with a generated value).
pub const FINGERPRINT_KEY: &str = "airlift.fingerprint-key";
/// The type of the Secret holding a release's license (`airlift-license-<release>`).
pub const LICENSE_SECRET_TYPE: &str = "airlift.dev/license";

/// Errors from reading or writing generated values.
#[derive(Debug, thiserror::Error)]
pub enum GeneratedError {
    /// The API call failed.
    #[error("failed to {action} generated secret values `{secret}` in namespace `{namespace}`")]
    Api {
        /// What we tried.
        action: &'static str,
        /// The Secret.
        secret: String,
        /// The namespace.
        namespace: String,
        /// The server's answer.
        #[source]
        source: crate::status::ServerError,
    },
    /// The release namespace is being deleted and was still there after the wait.
    #[error(transparent)]
    NamespaceDeleting(#[from] crate::namespace::StillDeleting),
    /// A stored value is not UTF-8.
    #[error("generated value `{key}` in `{secret}` is not UTF-8 text")]
    NotText {
        /// The configuration key.
        key: String,
        /// The Secret.
        secret: String,
    },
}

impl GeneratedError {
    /// How the operator can fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::Api { source, .. } => crate::kubeconfig::api_hint(source.inner()),
            Self::NamespaceDeleting(e) => e.hint(),
            Self::NotText { secret, .. } => format!(
                "`{secret}` was edited by hand; restore the value or delete the key to generate \
                 a new one (the workloads using it must then be reset)"
            ),
        }
    }
}

/// The generated values of one release (or, with [`GeneratedValues::site`], the secret values
/// the site gave).
pub struct GeneratedValues {
    api: Api<Secret>,
    name: String,
    secret_type: &'static str,
    namespace: String,
    release: String,
}

impl GeneratedValues {
    /// The store of `release` in `namespace`.
    pub fn new(client: Client, namespace: &str, release: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: format!("airlift-generated-{release}"),
            secret_type: GENERATED_SECRET_TYPE,
            namespace: namespace.to_string(),
            release: release.to_string(),
        }
    }

    /// The store of the secret values the site gave for `release`: `airlift-site-<release>`.
    pub fn site(client: Client, namespace: &str, release: &str) -> Self {
        Self {
            name: format!("airlift-site-{release}"),
            secret_type: SITE_SECRET_TYPE,
            ..Self::new(client, namespace, release)
        }
    }

    /// The store of the license of `release`: `airlift-license-<release>`.
    pub fn license(client: Client, namespace: &str, release: &str) -> Self {
        Self {
            name: format!("airlift-license-{release}"),
            secret_type: LICENSE_SECRET_TYPE,
            ..Self::new(client, namespace, release)
        }
    }

    /// The Secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn err(&self, action: &'static str) -> impl FnOnce(kube::Error) -> GeneratedError + '_ {
        move |source: kube::Error| GeneratedError::Api {
            action,
            secret: self.name.clone(),
            namespace: self.namespace.clone(),
            source: source.into(),
        }
    }

    /// The stored values, by configuration key (empty when none were stored yet).
    pub async fn read(&self) -> Result<BTreeMap<String, SecretValue>, GeneratedError> {
        let secret = match self.api.get_opt(&self.name).await {
            Ok(s) => s,
            // The namespace does not exist yet.
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(e) => return Err(self.err("read")(e)),
        };
        let mut out = BTreeMap::new();
        for (key, bytes) in secret.and_then(|s| s.data).unwrap_or_default() {
            let text = String::from_utf8(bytes.0).map_err(|_| GeneratedError::NotText {
                key: key.clone(),
                secret: self.name.clone(),
            })?;
            out.insert(key, SecretValue::new(text));
        }
        Ok(out)
    }

    /// Stores `values` in addition to those already stored (a key already stored keeps its
    /// stored value only if `values` lacks it). The namespace must exist.
    pub async fn write(
        &self,
        values: &BTreeMap<String, SecretValue>,
    ) -> Result<(), GeneratedError> {
        let mut all = self.read().await?;
        for (k, v) in values {
            all.insert(k.clone(), v.clone());
        }
        self.replace(&all).await
    }

    /// Stores exactly `all` (keys not in it are dropped). The namespace must exist.
    pub async fn replace(&self, all: &BTreeMap<String, SecretValue>) -> Result<(), GeneratedError> {
        let data: serde_json::Map<String, serde_json::Value> = all
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    base64::engine::general_purpose::STANDARD
                        .encode(v.expose())
                        .into(),
                )
            })
            .collect();
        let body = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": self.secret_type,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_RELEASE: self.release},
            },
            "data": data,
        });
        self.api
            .patch(
                &self.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(self.err("write"))?;
        Ok(())
    }

    /// Deletes the stored values (uninstall with data).
    pub async fn delete(&self) -> Result<(), GeneratedError> {
        match self.api.delete(&self.name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(self.err("delete")(e)),
        }
    }
}

/// Reads the generated values of `release` as plain strings, by configuration key.
pub async fn load(
    cluster: &crate::Cluster,
    namespace: &str,
    release: &str,
) -> Result<BTreeMap<String, String>, GeneratedError> {
    Ok(
        GeneratedValues::new(cluster.client().clone(), namespace, release)
            .read()
            .await?
            .into_iter()
            .map(|(k, v)| (k, v.expose().to_string()))
            .collect(),
    )
}

/// Stores generated values of `release` (merged with those already stored). Creates the
/// release namespace first when it does not exist yet.
pub async fn store(
    cluster: &crate::Cluster,
    namespace: &str,
    release: &str,
    values: &BTreeMap<String, String>,
) -> Result<(), GeneratedError> {
    ensure_namespace(cluster, namespace, release).await?;
    let values = values
        .iter()
        .map(|(k, v)| (k.clone(), SecretValue::new(v.clone())))
        .collect();
    GeneratedValues::new(cluster.client().clone(), namespace, release)
        .write(&values)
        .await
}

/// Deletes the generated values of `release`.
pub async fn delete(
    cluster: &crate::Cluster,
    namespace: &str,
    release: &str,
) -> Result<(), GeneratedError> {
    GeneratedValues::new(cluster.client().clone(), namespace, release)
        .delete()
        .await
}

/// Creates the release namespace, owned by the release, when it does not exist.
async fn ensure_namespace(
    cluster: &crate::Cluster,
    namespace: &str,
    release: &str,
) -> Result<(), GeneratedError> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(cluster.client().clone());
    let err = |action| {
        move |source: kube::Error| GeneratedError::Api {
            action,
            secret: format!("namespace {namespace}"),
            namespace: namespace.to_string(),
            source: source.into(),
        }
    };
    let exists = crate::namespace::settle(namespace, crate::namespace::DELETION_WAIT, || async {
        let found = api.get_opt(namespace).await.map_err(err("read"))?;
        let deleting = found.map(|ns| ns.metadata.deletion_timestamp.is_some());
        Ok::<_, GeneratedError>(crate::namespace::Found::of(deleting))
    })
    .await?;
    if !exists {
        let mut body =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        crate::ownership::stamp_value(&mut body, &crate::ownership::Owner::new(namespace, release));
        api.patch(
            namespace,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(err("create"))?;
    }
    Ok(())
}
