//! The platform step of `prepare`: detect the cluster's platform, read the customer's
//! overrides (the `platform:` key of values files, `--set platform.…`), and resolve the
//! bundle's platform needs against both. Reads only.

use airlift_bundle::schema::platform::PlatformNeeds;
use airlift_cluster::platform::{detect, PlatformReport};
use airlift_cluster::Cluster;
use airlift_render::platform::{resolve, PlatformOverrides, ResolvedPlatform, SET_PREFIX};

use crate::error::DeployError;
use crate::site::SiteRequest;

/// The customer's platform overrides from `request`: values files in order, then `--set`.
/// Overrides for needs the bundle does not declare are refused.
pub fn overrides(
    request: &SiteRequest,
    needs: &PlatformNeeds,
) -> Result<PlatformOverrides, DeployError> {
    let mut out = PlatformOverrides::default();
    for file in &request.values_files {
        let label = file.display().to_string();
        // The configuration step reads the same file with the same bound and reports its
        // errors first; here only its `platform:` key matters.
        let Ok(text) =
            airlift_bundle::read_bounded_string(file, airlift_bundle::limits::MAX_DOCUMENT)
        else {
            continue;
        };
        if let Some(o) =
            PlatformOverrides::from_values_yaml(&text, &label).map_err(DeployError::Platform)?
        {
            o.check_against(needs, &label)
                .map_err(DeployError::Platform)?;
            out.merge(o);
        }
    }
    for set in &request.set {
        let Some((key, value)) = set.split_once('=') else {
            continue;
        };
        if let Some(path) = key.trim().strip_prefix(SET_PREFIX) {
            let mut one = PlatformOverrides::default();
            one.apply_set(path, value).map_err(DeployError::Platform)?;
            one.check_against(needs, "--set")
                .map_err(DeployError::Platform)?;
            out.merge(one);
        }
    }
    Ok(out)
}

/// Detects the cluster's platform and resolves `needs` on it with the customer's overrides.
pub async fn resolve_on(
    cluster: &Cluster,
    needs: &PlatformNeeds,
    overrides: &PlatformOverrides,
) -> (PlatformReport, ResolvedPlatform) {
    let report = detect(cluster.client()).await;
    let resolved = resolve(needs, &report.facts(), overrides);
    (report, resolved)
}
