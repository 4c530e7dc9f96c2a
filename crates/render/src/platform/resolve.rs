//! From needs, cluster facts and overrides to the resolved platform.

use std::collections::BTreeMap;

use airlift_bundle::schema::platform::{PlatformNeeds, StorageNeed};

use super::{
    profile, ClusterFacts, PlatformOverrides, Profile, ResolvedIdentity, ResolvedIngress,
    ResolvedLoadBalancer, ResolvedPlatform, ResolvedStorage, StorageRow,
};

/// Resolves every need for the cluster described by `facts`, the customer's `overrides`
/// winning over the profile of `facts.provider`. Never fails: a need nothing fits is resolved
/// with `found: false` and a reason, which preflight reports with its fix.
pub fn resolve(
    needs: &PlatformNeeds,
    facts: &ClusterFacts,
    overrides: &PlatformOverrides,
) -> ResolvedPlatform {
    let p = profile(&facts.provider);
    ResolvedPlatform {
        provider: facts.provider.clone(),
        profile: p.title.clone(),
        region: facts.region.clone(),
        zones: facts.zones.clone(),
        storage: needs
            .storage
            .iter()
            .map(|(role, need)| {
                let chosen = overrides
                    .storage
                    .get(role)
                    .and_then(|o| o.class_name.clone());
                (role.clone(), storage(p, facts, need, chosen))
            })
            .collect(),
        load_balancer: needs.load_balancer.as_ref().map(|need| {
            let o = overrides.load_balancer.clone().unwrap_or_default();
            let scope = o.scope.unwrap_or(need.scope);
            let row = match scope {
                airlift_bundle::schema::platform::LoadBalancerScope::Internal => {
                    &p.load_balancer.internal
                }
                airlift_bundle::schema::platform::LoadBalancerScope::Public => {
                    &p.load_balancer.public
                }
            };
            let (annotations, how) = match o.annotations {
                Some(a) => (a, "set in the values (platform.loadBalancer.annotations)".into()),
                None => (
                    row.annotations.clone(),
                    format!("{} {} load balancer ({})", p.provider, scope.as_str(), row.source),
                ),
            };
            ResolvedLoadBalancer {
                scope: scope.as_str().into(),
                annotations,
                how,
            }
        }),
        ingress: needs
            .ingress
            .as_ref()
            .map(|_| ingress(p, facts, overrides.ingress.clone().unwrap_or_default())),
        identity: needs
            .identity
            .iter()
            .map(|(name, need)| {
                let o = overrides.identity.get(name).cloned().unwrap_or_default();
                let pod_labels = p
                    .identity
                    .as_ref()
                    .map(|i| i.pod_labels.clone())
                    .unwrap_or_default();
                let resolved = match (o.annotations, o.value, &p.identity) {
                    (Some(annotations), _, _) => ResolvedIdentity {
                        service_account: need.service_account.clone(),
                        annotations,
                        pod_labels,
                        found: true,
                        how: format!("set in the values (platform.identity.{name}.annotations)"),
                    },
                    (None, Some(value), Some(row)) if !value.trim().is_empty() => {
                        ResolvedIdentity {
                            service_account: need.service_account.clone(),
                            annotations: BTreeMap::from([(row.annotation.clone(), value)]),
                            pod_labels,
                            found: true,
                            how: format!("{} ({})", row.annotation, row.source),
                        }
                    }
                    (None, _, Some(row)) => ResolvedIdentity {
                        service_account: need.service_account.clone(),
                        annotations: BTreeMap::new(),
                        pod_labels,
                        found: false,
                        how: format!(
                            "needs a value for {}: set `platform.identity.{name}.value` (e.g. `{}`)",
                            row.annotation, row.example
                        ),
                    },
                    (None, _, None) => ResolvedIdentity {
                        service_account: need.service_account.clone(),
                        annotations: BTreeMap::new(),
                        pod_labels,
                        found: false,
                        how: format!(
                            "{} has no workload-identity mapping: set \
                             `platform.identity.{name}.annotations` in a values file",
                            p.title
                        ),
                    },
                };
                (name.clone(), resolved)
            })
            .collect(),
    }
}

fn storage(
    p: &Profile,
    facts: &ClusterFacts,
    need: &StorageNeed,
    chosen: Option<String>,
) -> ResolvedStorage {
    let mode = need.access_mode.as_str().to_string();
    let exists = |name: &str| facts.storage_classes.iter().any(|s| s.name == name);
    if let Some(name) = chosen {
        return ResolvedStorage {
            found: exists(&name),
            class_name: name,
            access_mode: mode,
            how: "set in the values (platform.storage.ROLE.className)".into(),
            suggestion: None,
        };
    }
    let exact: Vec<&StorageRow> = p
        .storage
        .iter()
        .filter(|r| r.access_mode == need.access_mode && r.tier == need.tier)
        .collect();
    let rows: Vec<&StorageRow> = if exact.is_empty() {
        p.storage
            .iter()
            .filter(|r| r.access_mode == need.access_mode)
            .collect()
    } else {
        exact
    };
    let found = |class_name: String, how: String| ResolvedStorage {
        class_name,
        access_mode: mode.clone(),
        found: true,
        how,
        suggestion: None,
    };
    for row in &rows {
        if !row.class_name.is_empty() && exists(&row.class_name) {
            return found(
                row.class_name.clone(),
                format!(
                    "{} table: class `{}` ({})",
                    p.provider, row.class_name, row.source
                ),
            );
        }
    }
    for row in &rows {
        let mut serving: Vec<_> = facts
            .storage_classes
            .iter()
            .filter(|s| row.provisioners.contains(&s.provisioner))
            .collect();
        serving.sort_by_key(|s| (!s.is_default, s.name.clone()));
        if let Some(s) = serving.first() {
            return found(
                s.name.clone(),
                format!(
                    "class `{}` uses provisioner `{}`, which serves {} {} ({})",
                    s.name,
                    s.provisioner,
                    need.tier.as_str(),
                    mode,
                    row.source
                ),
            );
        }
    }
    if need.access_mode == airlift_bundle::schema::platform::AccessMode::ReadWriteOnce {
        if let Some(d) = facts.storage_classes.iter().find(|s| s.is_default) {
            return found(
                d.name.clone(),
                format!("the cluster's default class `{}`", d.name),
            );
        }
    }
    let first = rows.first();
    ResolvedStorage {
        class_name: first.map(|r| r.class_name.clone()).unwrap_or_default(),
        access_mode: mode.clone(),
        found: false,
        how: if need.access_mode == airlift_bundle::schema::platform::AccessMode::ReadWriteOnce {
            format!("no storage class serves {mode} and the cluster has no default class")
        } else {
            format!("no storage class serves {mode}")
        },
        suggestion: first.map(|r| {
            let params = r
                .parameters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "provisioner {}{}",
                r.provisioners.join(" or "),
                if params.is_empty() {
                    String::new()
                } else {
                    format!(" with {params}")
                }
            )
        }),
    }
}

fn ingress(p: &Profile, facts: &ClusterFacts, o: super::IngressOverride) -> ResolvedIngress {
    let exists = |name: &str| facts.ingress_classes.iter().any(|c| c.name == name);
    if let Some(name) = o.class_name {
        return ResolvedIngress {
            found: exists(&name) || p.ingress.iter().any(|r| r.built_in && r.class_name == name),
            class_name: name,
            annotations: o.annotations.unwrap_or_default(),
            how: "set in the values (platform.ingress.className)".into(),
        };
    }
    let annotations = |row: Option<&super::IngressRow>| {
        o.annotations
            .clone()
            .or_else(|| row.map(|r| r.annotations.clone()))
            .unwrap_or_default()
    };
    for row in &p.ingress {
        if exists(&row.class_name) {
            return ResolvedIngress {
                class_name: row.class_name.clone(),
                annotations: annotations(Some(row)),
                found: true,
                how: format!(
                    "{} table: class `{}` ({})",
                    p.provider, row.class_name, row.source
                ),
            };
        }
        if let Some(c) = facts
            .ingress_classes
            .iter()
            .find(|c| c.controller == row.controller)
        {
            return ResolvedIngress {
                class_name: c.name.clone(),
                annotations: annotations(Some(row)),
                found: true,
                how: format!(
                    "class `{}` runs controller `{}` ({})",
                    c.name, c.controller, row.source
                ),
            };
        }
    }
    if let Some(c) = facts.ingress_classes.iter().find(|c| c.is_default) {
        return ResolvedIngress {
            class_name: c.name.clone(),
            annotations: annotations(None),
            found: true,
            how: format!("the cluster's default class `{}`", c.name),
        };
    }
    if let Some(row) = p.ingress.iter().find(|r| r.built_in) {
        return ResolvedIngress {
            // Selected by annotation: an `ingressClassName` naming no object would not match.
            class_name: String::new(),
            annotations: annotations(Some(row)),
            found: true,
            how: format!(
                "built into {}: class `{}` by annotation ({})",
                p.title, row.class_name, row.source
            ),
        };
    }
    if let [only] = facts.ingress_classes.as_slice() {
        return ResolvedIngress {
            class_name: only.name.clone(),
            annotations: annotations(None),
            found: true,
            how: format!("the cluster's only class `{}`", only.name),
        };
    }
    let have: Vec<&str> = facts
        .ingress_classes
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    ResolvedIngress {
        class_name: p
            .ingress
            .first()
            .map(|r| r.class_name.clone())
            .unwrap_or_default(),
        annotations: annotations(None),
        found: false,
        how: if have.is_empty() {
            "the cluster has no IngressClass and none is marked default".into()
        } else {
            format!(
                "none of the cluster's classes ({}) is in the {} table or marked default",
                have.join(", "),
                p.provider
            )
        },
    }
}
