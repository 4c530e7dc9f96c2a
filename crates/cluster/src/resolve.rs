//! Discovery: which resource serves a kind, and whether it is namespaced. Resolved one
//! group-version at a time (`GET /apis/GROUP/VERSION`) and cached; [`Resolver::refresh`] forgets
//! the cache, e.g. after a CRD becomes Established.

use std::collections::HashMap;

use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use kube::Client;
use tokio::sync::Mutex;

use crate::object::ObjectRef;

/// Errors from discovery.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The API server does not serve the group-version at all.
    #[error("the cluster does not serve API `{api_version}` (needed for {kind})")]
    GroupNotServed {
        /// The apiVersion.
        api_version: String,
        /// The kind asked for.
        kind: String,
    },
    /// The group-version is served but has no such kind.
    #[error("the cluster serves `{api_version}` but not kind `{kind}`")]
    KindNotServed {
        /// The apiVersion.
        api_version: String,
        /// The kind asked for.
        kind: String,
    },
    /// Discovery itself failed.
    #[error("discovery of `{api_version}` failed")]
    Discovery {
        /// The apiVersion.
        api_version: String,
        /// What went wrong.
        #[source]
        source: crate::status::ServerError,
    },
}

impl airlift_bundle::Diagnose for ResolveError {
    fn exit_kind(&self) -> airlift_bundle::ExitKind {
        airlift_bundle::ExitKind::Cluster
    }

    fn fix(&self) -> Option<String> {
        Some(self.hint())
    }
}

impl ResolveError {
    /// How the operator can fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::GroupNotServed { .. } | Self::KindNotServed { .. } => {
                "install the CRD or enable the API that serves this kind, or check that the \
                 cluster's Kubernetes version supports it"
                    .into()
            }
            Self::Discovery { source, .. } => crate::kubeconfig::api_hint(source.inner()),
        }
    }
}

/// A kind resolved to its resource.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The resource, for building [`Api`]s.
    pub resource: ApiResource,
    /// Whether objects of this kind live in a namespace.
    pub namespaced: bool,
}

/// The kinds one group-version serves; `None` when it is not served.
type GroupVersionKinds = Option<Vec<(String, Resolved)>>;

/// Resolves kinds to resources, caching per group-version.
pub struct Resolver {
    client: Client,
    cache: Mutex<HashMap<String, GroupVersionKinds>>,
}

impl Resolver {
    /// A resolver with an empty cache.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets everything, so new CRDs are seen.
    pub async fn refresh(&self) {
        self.cache.lock().await.clear();
    }

    /// Resolves `api_version` + `kind`.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Resolved, ResolveError> {
        let mut cache = self.cache.lock().await;
        if !cache.contains_key(api_version) {
            let list = if api_version.contains('/') {
                self.client.list_api_group_resources(api_version).await
            } else {
                self.client.list_core_api_resources(api_version).await
            };
            let entry = match list {
                Ok(list) => {
                    let (group, version) = match api_version.split_once('/') {
                        Some((g, v)) => (g.to_string(), v.to_string()),
                        None => (String::new(), api_version.to_string()),
                    };
                    Some(
                        list.resources
                            .iter()
                            .filter(|r| !r.name.contains('/'))
                            .map(|r| {
                                let resource = ApiResource {
                                    group: group.clone(),
                                    version: version.clone(),
                                    api_version: api_version.to_string(),
                                    kind: r.kind.clone(),
                                    plural: r.name.clone(),
                                };
                                (
                                    r.kind.clone(),
                                    Resolved {
                                        resource,
                                        namespaced: r.namespaced,
                                    },
                                )
                            })
                            .collect(),
                    )
                }
                Err(kube::Error::Api(s)) if s.code == 404 => None,
                Err(source) => {
                    return Err(ResolveError::Discovery {
                        api_version: api_version.to_string(),
                        source: source.into(),
                    })
                }
            };
            cache.insert(api_version.to_string(), entry);
        }
        match cache.get(api_version) {
            Some(Some(kinds)) => kinds
                .iter()
                .find(|(k, _)| k == kind)
                .map(|(_, r)| r.clone())
                .ok_or_else(|| ResolveError::KindNotServed {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                }),
            _ => Err(ResolveError::GroupNotServed {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            }),
        }
    }

    /// An [`Api`] for the object `id`, namespaced when the kind is, with `default_ns` for
    /// namespaced objects that name none. Returns the api and the effective namespace.
    pub async fn api_for(
        &self,
        id: &ObjectRef,
        default_ns: &str,
    ) -> Result<(Api<DynamicObject>, Option<String>), ResolveError> {
        let r = self.resolve(&id.api_version(), &id.kind).await?;
        if r.namespaced {
            let ns = id
                .namespace
                .clone()
                .unwrap_or_else(|| default_ns.to_string());
            Ok((
                Api::namespaced_with(self.client.clone(), &ns, &r.resource),
                Some(ns),
            ))
        } else {
            Ok((Api::all_with(self.client.clone(), &r.resource), None))
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}
