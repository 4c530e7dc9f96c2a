//! License checks for install, upgrade and `license update`, and the license stored with a
//! release (the Secret `airlift-license-<release>`).
//!
//! Every check runs before any change: the signature with the bundle's vendor key, the validity
//! window ([`GRACE_DAYS`] of grace after expiry, warnings from [`WARN_DAYS`] before), the
//! channel, the entitlements the chosen components need, and (in preflight) the node count.
//! Nothing ever phones home.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use airlift_bundle::license::{self, License, LicenseError, MAX_LICENSE_FILE};
use airlift_bundle::schema::license::{grants, EntitlementType, LicensePolicy};
use airlift_bundle::schema::manifest::{BundleManifest, Component};
use airlift_bundle::time::epoch_to_rfc3339;
use airlift_bundle::{escape, Diagnose, ExitKind, LimitError, PublicKey, Secret};
use airlift_cluster::generated::GeneratedValues;
use airlift_cluster::Cluster;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::DeployError;

/// Days a license keeps working after it expires, with a warning on every operation.
pub const GRACE_DAYS: u64 = 14;
/// Days before expiry from which every operation warns.
pub const WARN_DAYS: u64 = 30;
const DAY: u64 = 86_400;

/// Why a license is refused. Every variant is a preflight failure (exit 7): nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum LicenseCheckError {
    /// The license file could not be read.
    #[error("cannot read license file `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: LimitError,
    },
    /// The bundle requires a license and none was given or stored.
    #[error("{bundle} requires a license and none was given")]
    Required {
        /// The bundle, `name version`.
        bundle: String,
    },
    /// The bundle's signature was not checked, so a license cannot be.
    #[error("a license cannot be checked without the vendor's key")]
    NoVendorKey,
    /// The signature, the format or a field.
    #[error("license `{path}` is refused")]
    Signature {
        /// Where the license came from.
        path: String,
        /// Tampered, another vendor, malformed.
        #[source]
        source: LicenseError,
    },
    /// Expired, and past the grace period.
    #[error(
        "license {id} expired at {expires}; its {GRACE_DAYS}-day grace period ended at {grace_end}"
    )]
    Expired {
        /// The license id.
        id: String,
        /// Its expiry.
        expires: String,
        /// The end of the grace period.
        grace_end: String,
    },
    /// Not valid yet.
    #[error("license {id} is not valid before {valid_from}")]
    NotYetValid {
        /// The license id.
        id: String,
        /// When it becomes valid.
        valid_from: String,
    },
    /// Issued for another channel.
    #[error("license {id} is for channel `{license}`, but {bundle} is on channel `{channel}`")]
    WrongChannel {
        /// The license id.
        id: String,
        /// The license's channel.
        license: String,
        /// The bundle.
        bundle: String,
        /// The bundle's channel.
        channel: String,
    },
    /// More nodes than the license allows.
    #[error("license {id} allows at most {max} node(s), but the cluster has {nodes}")]
    TooManyNodes {
        /// The license id.
        id: String,
        /// The limit.
        max: u32,
        /// The nodes counted.
        nodes: usize,
    },
    /// A chosen component needs an entitlement the license does not grant.
    #[error(
        "component `{component}` needs entitlement `{entitlement}`, which {license} does not grant"
    )]
    NotEntitled {
        /// The component.
        component: String,
        /// The entitlement.
        entitlement: String,
        /// `license lic-…` or `no license`.
        license: String,
    },
    /// A granted entitlement is not of the type the bundle declares.
    #[error("entitlement `{key}` of license {id} is `{value}`, not a {kind}")]
    EntitlementType {
        /// The license id.
        id: String,
        /// The entitlement.
        key: String,
        /// Its text.
        value: String,
        /// The declared type.
        kind: &'static str,
    },
    /// `license update` on a release that stores no license.
    #[error("release `{release}` in namespace `{namespace}` has no license to update")]
    NotLicensed {
        /// The release.
        release: String,
        /// Its namespace.
        namespace: String,
    },
    /// The stored license record is unreadable.
    #[error("the stored license of release `{release}` is damaged: {reason}")]
    Stored {
        /// The release.
        release: String,
        /// What is wrong.
        reason: String,
    },
}

impl Diagnose for LicenseCheckError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            Self::Read { .. } => ExitKind::Usage,
            Self::NotLicensed { .. } | Self::Stored { .. } => ExitKind::Failure,
            _ => ExitKind::Preflight,
        }
    }

    fn fix(&self) -> Option<String> {
        Some(match self {
            Self::Read { path, .. } => format!("check that `{}` is the license file the vendor sent", path.display()),
            Self::Required { .. } => "pass the license file from the vendor with --license FILE".into(),
            Self::NoVendorKey => "verify the bundle with the vendor's key (--key vendor.pub) instead of --insecure-skip-verify".into(),
            Self::Signature { source, .. } => source.hint(),
            Self::Expired { .. } => "ask the vendor for a renewed license, then run `airlift-install license update RELEASE FILE` (or pass it with --license)".into(),
            Self::NotYetValid { .. } => "wait until the license becomes valid, or check the cluster machine's clock".into(),
            Self::WrongChannel { .. } => "install a bundle from the license's channel, or ask the vendor for a license for this channel".into(),
            Self::TooManyNodes { max, .. } => format!("run on a cluster of at most {max} node(s), or ask the vendor for a license with a higher --max-nodes"),
            Self::NotEntitled { component, .. } => format!("leave the component out with --disable {component}, or ask the vendor for a license that grants it"),
            Self::EntitlementType { .. } => "ask the vendor to reissue the license with a value of the declared type".into(),
            Self::NotLicensed { .. } => "install or upgrade with --license FILE first; `airlift-install status RELEASE` shows the release".into(),
            Self::Stored { .. } => "pass the license again with `airlift-install upgrade BUNDLE --license FILE`".into(),
        })
    }
}

/// What a license is checked against, from the bundle; stored with the license so that
/// `license update` applies the same checks without the bundle file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseContext {
    /// The bundle, `name version`.
    pub bundle: String,
    /// The bundle's channel.
    pub channel: String,
    /// The bundle's license policy.
    #[serde(default)]
    pub policy: Option<LicensePolicy>,
    /// The deployed components that need an entitlement: component → entitlement.
    #[serde(default)]
    pub gated: BTreeMap<String, String>,
}

impl LicenseContext {
    /// The context of `manifest` with `chosen` components.
    pub fn new(manifest: &BundleManifest, chosen: &[&Component]) -> Self {
        Self {
            bundle: format!("{} {}", manifest.metadata.name, manifest.metadata.version),
            channel: manifest.metadata.channel.clone(),
            policy: manifest.license.clone(),
            gated: chosen
                .iter()
                .filter_map(|c| Some((c.name.clone(), c.entitlement.clone()?)))
                .collect(),
        }
    }
}

/// A license that passed every offline check.
#[derive(Debug, Clone)]
pub struct Licensed {
    /// The license.
    pub license: License,
    /// The file's bytes, as signed.
    pub raw: String,
    /// The vendor key it verified with.
    pub vendor_key: PublicKey,
    /// The entitlements, typed by the bundle's schema, defaults filled in.
    pub entitlements: BTreeMap<String, Value>,
    /// Expiry warnings for the operator.
    pub warnings: Vec<String>,
}

/// Seconds since the epoch now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whole days from `now` to the license's expiry (negative once expired); `None` without one.
pub fn days_left(license: &License, now: u64) -> Option<i64> {
    let expires = i64::try_from(license.expires_epoch()?).ok()?;
    let now = i64::try_from(now).ok()?;
    Some((expires - now).div_euclid(DAY as i64))
}

/// Reads a license file (bounded).
pub fn read(path: &Path) -> Result<String, LicenseCheckError> {
    airlift_bundle::read_bounded_string(path, MAX_LICENSE_FILE).map_err(|source| {
        LicenseCheckError::Read {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Every offline check of `raw` (from `origin`) against `context` at `now`: signature, window,
/// channel, entitlement types, and the entitlements of the gated components.
pub fn check(
    raw: &str,
    origin: &str,
    key: &PublicKey,
    context: &LicenseContext,
    now: u64,
) -> Result<Licensed, LicenseCheckError> {
    let l =
        license::verify(raw.as_bytes(), key).map_err(|source| LicenseCheckError::Signature {
            path: escape(origin).to_string(),
            source,
        })?;
    let mut warnings = Vec::new();
    if let Some(from) = l.valid_from_epoch() {
        if now < from {
            return Err(LicenseCheckError::NotYetValid {
                id: l.id.clone(),
                valid_from: epoch_to_rfc3339(from),
            });
        }
    }
    if let Some(expires) = l.expires_epoch() {
        let grace_end = expires + GRACE_DAYS * DAY;
        if now >= grace_end {
            return Err(LicenseCheckError::Expired {
                id: l.id.clone(),
                expires: epoch_to_rfc3339(expires),
                grace_end: epoch_to_rfc3339(grace_end),
            });
        }
        if now >= expires {
            warnings.push(format!(
                "license {} expired at {}; it keeps working until the grace period ends at {}: ask the vendor for a renewal",
                l.id,
                epoch_to_rfc3339(expires),
                epoch_to_rfc3339(grace_end)
            ));
        } else if now + WARN_DAYS * DAY > expires {
            warnings.push(format!(
                "license {} expires at {} ({} day(s) left): ask the vendor for a renewal",
                l.id,
                epoch_to_rfc3339(expires),
                (expires - now) / DAY
            ));
        }
    }
    if l.channel != context.channel {
        return Err(LicenseCheckError::WrongChannel {
            id: l.id.clone(),
            license: escape(&l.channel).to_string(),
            bundle: context.bundle.clone(),
            channel: context.channel.clone(),
        });
    }
    let entitlements = resolve(context.policy.as_ref(), Some(&l))?;
    entitled(context, &entitlements, &format!("license {}", l.id))?;
    Ok(Licensed {
        license: l,
        raw: raw.to_string(),
        vendor_key: key.clone(),
        entitlements,
        warnings,
    })
}

/// The typed entitlements of `license` (or the defaults alone without one).
fn resolve(
    policy: Option<&LicensePolicy>,
    license: Option<&License>,
) -> Result<BTreeMap<String, Value>, LicenseCheckError> {
    let Some(policy) = policy else {
        return Ok(BTreeMap::new());
    };
    let none = BTreeMap::new();
    policy
        .resolve(license.map_or(&none, |l| &l.entitlements))
        .map_err(|(key, value, kind)| LicenseCheckError::EntitlementType {
            id: license.map(|l| l.id.clone()).unwrap_or_default(),
            key,
            value: escape(&value).to_string(),
            kind: EntitlementType::name(kind),
        })
}

/// Refuses the first gated component whose entitlement is not granted.
fn entitled(
    context: &LicenseContext,
    entitlements: &BTreeMap<String, Value>,
    license: &str,
) -> Result<(), LicenseCheckError> {
    match context.gated.iter().find(|(_, e)| !grants(entitlements, e)) {
        Some((component, entitlement)) => Err(LicenseCheckError::NotEntitled {
            component: component.clone(),
            entitlement: entitlement.clone(),
            license: license.to_string(),
        }),
        None => Ok(()),
    }
}

/// The node limit, checked against the nodes counted in preflight.
pub fn check_nodes(licensed: &Licensed, nodes: usize) -> Result<(), LicenseCheckError> {
    match licensed.license.max_nodes {
        Some(max) if nodes > max as usize => Err(LicenseCheckError::TooManyNodes {
            id: licensed.license.id.clone(),
            max,
            nodes,
        }),
        _ => Ok(()),
    }
}

/// Counts the cluster's nodes.
pub async fn count_nodes(cluster: &Cluster) -> Result<usize, DeployError> {
    let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(cluster.client().clone());
    let nodes = api
        .list_metadata(&kube::api::ListParams::default())
        .await
        .map_err(|source| DeployError::Read {
            what: "the nodes (to count them for the license)".into(),
            source,
        })?;
    Ok(nodes.items.len())
}

/// What templates see as `license`: `customer`, `customerId`, `channel`, `id` and
/// `entitlements` (typed, with defaults). A bundle that declares a license policy always gets
/// one (empty strings without a license), so its templates render either way.
pub fn template_context(
    policy: Option<&LicensePolicy>,
    licensed: Option<&Licensed>,
) -> Result<Option<Value>, LicenseCheckError> {
    if policy.is_none() && licensed.is_none() {
        return Ok(None);
    }
    let entitlements = match licensed {
        Some(l) => l.entitlements.clone(),
        None => resolve(policy, None)?,
    };
    Ok(Some(license::template_context(
        licensed.map(|l| &l.license),
        &entitlements,
    )))
}

/// The license for a deploy: the `--license` file, else the one the release stores, checked
/// against the bundle and the chosen components. `None` when neither exists and the bundle
/// does not require one (its gated components are then refused).
pub async fn for_deploy(
    cluster: &Cluster,
    namespace: &str,
    release: &str,
    manifest: &BundleManifest,
    chosen: &[&Component],
    file: Option<&Path>,
    key: Option<&PublicKey>,
) -> Result<Option<Licensed>, DeployError> {
    let context = LicenseContext::new(manifest, chosen);
    let (raw, origin) = match file {
        Some(path) => (Some(read(path)?), path.display().to_string()),
        None => {
            let stored = Store::new(cluster, namespace, release).read().await?;
            (
                stored.map(|s| s.raw),
                format!("stored with release `{release}`"),
            )
        }
    };
    let Some(raw) = raw else {
        if manifest.license.as_ref().is_some_and(|p| p.required) {
            return Err(LicenseCheckError::Required {
                bundle: context.bundle,
            }
            .into());
        }
        let defaults = resolve(context.policy.as_ref(), None)?;
        entitled(&context, &defaults, "no license")?;
        return Ok(None);
    };
    let key = key.ok_or(LicenseCheckError::NoVendorKey)?;
    Ok(Some(check(&raw, &origin, key, &context, now())?))
}

/// A license as stored with a release.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The license file's text.
    pub raw: String,
    /// The vendor key it verified with at install.
    pub vendor_key: PublicKey,
    /// What it was checked against.
    pub context: LicenseContext,
}

/// What `status` and `license show` print about a stored license.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseSummary {
    /// The license id.
    pub id: String,
    /// The customer.
    pub customer: String,
    /// The customer id.
    pub customer_id: String,
    /// The channel.
    pub channel: String,
    /// When it was issued.
    pub issued_at: String,
    /// Expiry, if any.
    pub expires: Option<String>,
    /// Whole days left (negative once expired).
    pub days_left: Option<i64>,
    /// The node limit.
    pub max_nodes: Option<u32>,
    /// The entitlements as granted.
    pub entitlements: BTreeMap<String, String>,
    /// `valid`, `expiring`, `grace` or `expired`.
    pub state: &'static str,
}

impl LicenseSummary {
    /// The summary of `license` at `now`.
    pub fn of(license: &License, now: u64) -> Self {
        let days = days_left(license, now);
        let state = match days {
            Some(d) if d < -(GRACE_DAYS as i64) => "expired",
            Some(d) if d < 0 => "grace",
            Some(d) if d < WARN_DAYS as i64 => "expiring",
            _ => "valid",
        };
        Self {
            id: license.id.clone(),
            customer: escape(&license.customer).to_string(),
            customer_id: escape(&license.customer_id).to_string(),
            channel: escape(&license.channel).to_string(),
            issued_at: license.issued_at.clone(),
            expires: license.expires.clone(),
            days_left: days,
            max_nodes: license.max_nodes,
            entitlements: license.entitlements.clone(),
            state,
        }
    }
}

const RAW_KEY: &str = "license";
const KEY_KEY: &str = "vendor.pub";
const CONTEXT_KEY: &str = "context";

/// The license Secret of one release.
pub struct Store {
    values: GeneratedValues,
    release: String,
}

impl Store {
    /// The store of `release` in `namespace`.
    pub fn new(cluster: &Cluster, namespace: &str, release: &str) -> Self {
        Self {
            values: GeneratedValues::license(cluster.client().clone(), namespace, release),
            release: release.to_string(),
        }
    }

    /// The stored license, if any.
    pub async fn read(&self) -> Result<Option<Stored>, DeployError> {
        let mut data = self.values.read().await?;
        let Some(raw) = data.remove(RAW_KEY) else {
            return Ok(None);
        };
        let damaged = |reason: &str| LicenseCheckError::Stored {
            release: self.release.clone(),
            reason: reason.to_string(),
        };
        let key = data
            .get(KEY_KEY)
            .and_then(|k| PublicKey::from_pem(k.expose(), Path::new(KEY_KEY)).ok())
            .ok_or_else(|| damaged("no vendor key"))?;
        let context = data
            .get(CONTEXT_KEY)
            .and_then(|c| serde_json::from_str(c.expose()).ok())
            .ok_or_else(|| damaged("no context"))?;
        Ok(Some(Stored {
            raw: raw.expose().to_string(),
            vendor_key: key,
            context,
        }))
    }

    /// Stores `licensed` with the `context` it was checked against. The namespace must exist.
    pub async fn write(
        &self,
        licensed: &Licensed,
        context: &LicenseContext,
    ) -> Result<(), DeployError> {
        let pem = licensed
            .vendor_key
            .to_pem()
            .map_err(|_| LicenseCheckError::NoVendorKey)?;
        let context = serde_json::to_string(context).map_err(|e| LicenseCheckError::Stored {
            release: self.release.clone(),
            reason: e.to_string(),
        })?;
        let all = BTreeMap::from([
            (RAW_KEY.to_string(), Secret::new(licensed.raw.clone())),
            (KEY_KEY.to_string(), Secret::new(pem)),
            (CONTEXT_KEY.to_string(), Secret::new(context)),
        ]);
        Ok(self.values.replace(&all).await?)
    }
}

/// Replaces the license of a deployed release without a reinstall: the same checks as an
/// install (vendor key and context stored with the release, node count), then one write under
/// the release lock. Returns the new license's summary and its warnings.
pub async fn update(
    cluster: &Cluster,
    namespace: &str,
    release: &str,
    file: &Path,
    force_unlock: bool,
) -> Result<(LicenseSummary, Vec<String>), DeployError> {
    let store = Store::new(cluster, namespace, release);
    let stored = store
        .read()
        .await?
        .ok_or_else(|| LicenseCheckError::NotLicensed {
            release: release.to_string(),
            namespace: namespace.to_string(),
        })?;
    let raw = read(file)?;
    let now = now();
    let licensed = check(
        &raw,
        &file.display().to_string(),
        &stored.vendor_key,
        &stored.context,
        now,
    )?;
    check_nodes(&licensed, count_nodes(cluster).await?)?;
    let lock = airlift_cluster::lock::ReleaseLock::acquire(
        cluster.client().clone(),
        namespace,
        release,
        "license update",
        force_unlock,
    )
    .await?;
    let written = store.write(&licensed, &stored.context).await;
    let unlocked = lock.release().await;
    written?;
    unlocked?;
    Ok((
        LicenseSummary::of(&licensed.license, now),
        licensed.warnings,
    ))
}

/// The summary of the license stored with a release, if any.
pub async fn show(
    cluster: &Cluster,
    namespace: &str,
    release: &str,
) -> Result<Option<LicenseSummary>, DeployError> {
    let Some(stored) = Store::new(cluster, namespace, release).read().await? else {
        return Ok(None);
    };
    // What was stored verified at install; verify again so a changed Secret is not shown as
    // the vendor's word.
    let license = license::verify(stored.raw.as_bytes(), &stored.vendor_key).map_err(|source| {
        LicenseCheckError::Signature {
            path: format!("stored with release `{release}`"),
            source,
        }
    })?;
    Ok(Some(LicenseSummary::of(&license, now())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlift_bundle::license::{issue, LicenseRequest};
    use airlift_bundle::PrivateKey;

    const NOW: u64 = 1_800_000_000;

    fn context() -> LicenseContext {
        LicenseContext {
            bundle: "shop 1.0.0".into(),
            channel: "stable".into(),
            policy: serde_yaml::from_str(
                "required: true\nentitlements: [{name: reports, type: bool, description: r, default: false}]",
            )
            .unwrap(),
            gated: BTreeMap::new(),
        }
    }

    fn license(key: &PrivateKey, f: impl FnOnce(&mut LicenseRequest)) -> String {
        let mut r = LicenseRequest {
            customer: "Example".into(),
            customer_id: "c-1".into(),
            channel: "stable".into(),
            ..Default::default()
        };
        f(&mut r);
        String::from_utf8(issue(&r, key, NOW - 100 * DAY).unwrap().1).unwrap()
    }

    #[test]
    fn the_validity_window_has_warnings_and_a_grace_period() {
        let key = PrivateKey::generate();
        let pubkey = key.public_key();
        let at = |days: i64| (NOW as i64 + days * DAY as i64) as u64;
        let expiring = license(&key, |r| r.expires = Some(at(10)));
        let ok = check(&expiring, "f", &pubkey, &context(), NOW).unwrap();
        assert!(
            ok.warnings[0].contains("10 day(s) left"),
            "{:?}",
            ok.warnings
        );
        let grace = license(&key, |r| r.expires = Some(at(-3)));
        let ok = check(&grace, "f", &pubkey, &context(), NOW).unwrap();
        assert!(
            ok.warnings[0].contains("grace period ends"),
            "{:?}",
            ok.warnings
        );
        let expired = license(&key, |r| r.expires = Some(at(-15)));
        assert!(matches!(
            check(&expired, "f", &pubkey, &context(), NOW),
            Err(LicenseCheckError::Expired { .. })
        ));
        let later = license(&key, |r| r.valid_from = Some(at(2)));
        assert!(matches!(
            check(&later, "f", &pubkey, &context(), NOW),
            Err(LicenseCheckError::NotYetValid { .. })
        ));
        let far = license(&key, |r| r.expires = Some(at(400)));
        assert!(check(&far, "f", &pubkey, &context(), NOW)
            .unwrap()
            .warnings
            .is_empty());
    }

    #[test]
    fn channel_entitlements_and_nodes_are_checked() {
        let key = PrivateKey::generate();
        let pubkey = key.public_key();
        let beta = license(&key, |r| r.channel = "beta".into());
        assert!(matches!(
            check(&beta, "f", &pubkey, &context(), NOW),
            Err(LicenseCheckError::WrongChannel { .. })
        ));
        let mut gated = context();
        gated.gated.insert("reports".into(), "reports".into());
        let plain = license(&key, |r| r.max_nodes = Some(2));
        let err = check(&plain, "f", &pubkey, &gated, NOW).unwrap_err();
        assert!(
            err.to_string()
                .contains("component `reports` needs entitlement `reports`"),
            "{err}"
        );
        let granted = license(&key, |r| {
            r.max_nodes = Some(2);
            r.entitlements.insert("reports".into(), "true".into());
        });
        let ok = check(&granted, "f", &pubkey, &gated, NOW).unwrap();
        assert!(check_nodes(&ok, 2).is_ok());
        assert!(matches!(
            check_nodes(&ok, 3),
            Err(LicenseCheckError::TooManyNodes {
                max: 2,
                nodes: 3,
                ..
            })
        ));
        let typed = license(&key, |r| {
            r.entitlements.insert("reports".into(), "yes".into());
        });
        assert!(matches!(
            check(&typed, "f", &pubkey, &context(), NOW),
            Err(LicenseCheckError::EntitlementType { .. })
        ));
        let ctx = template_context(context().policy.as_ref(), Some(&ok))
            .unwrap()
            .unwrap();
        assert_eq!(ctx["customer"], "Example");
        assert_eq!(ctx["entitlements"]["reports"], true);
    }
}
