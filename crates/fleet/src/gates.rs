//! A stage's gates: workload readiness (always) and a clean drift, both read from the release's
//! live status (`airlift_deploy::releases::status`, the same report `status` and `drift`
//! print), and HTTP checks run from where the rollout runs.

use std::path::Path;
use std::time::Duration;

use airlift_cluster::release::ReleaseStatus;
use airlift_deploy::registry::chain;
use airlift_deploy::releases::StatusReport;
use airlift_registry::RegistryOptions;

use crate::error::FleetError;
use crate::model::{resolve_path, Gates, HttpGate};

/// What is wrong with a release by the readiness and (when `drift`) drift gates; empty when
/// healthy.
pub fn release_problems(report: &StatusReport, drift: bool) -> Vec<String> {
    let mut problems = Vec::new();
    // A failed upgrade that rolled itself back leaves a `failed` latest revision over the
    // deployed one; that is healthy if the live state says so. An operation that stopped
    // partway is not.
    if matches!(
        report.latest.status,
        ReleaseStatus::Pending | ReleaseStatus::Interrupted
    ) {
        problems.push(format!(
            "the last operation (revision {}) is {}",
            report.latest.revision, report.latest.status
        ));
    }
    if report.deployed.is_none() {
        problems.push("no revision is deployed".into());
    }
    for w in &report.workloads {
        if w.condition != "ready" {
            problems.push(format!(
                "{} not ready ({}/{}, {})",
                w.object, w.ready, w.desired, w.condition
            ));
        }
    }
    if drift {
        for m in &report.missing {
            problems.push(format!("drift: {m} is missing"));
        }
        for c in &report.changed {
            problems.push(format!(
                "drift: {} changed since applied ({})",
                c.object,
                c.fields.join(", ")
            ));
        }
    }
    problems
}

/// The HTTP checks of one stage, each with its client.
pub struct HttpGates {
    checks: Vec<(HttpGate, reqwest::Client)>,
}

impl HttpGates {
    /// Builds the clients for `gates` (CA files relative to the fleet file `file`). TLS is
    /// verified against the system roots plus the gate's CA.
    pub fn new(gates: &Gates, file: &Path) -> Result<Self, FleetError> {
        let mut checks = Vec::new();
        for g in &gates.http {
            let timeout = g.timeout.map_or(Duration::from_secs(10), |d| d.0);
            let options = RegistryOptions {
                ca_files: g.ca.iter().map(|p| resolve_path(file, p)).collect(),
                connect_timeout: timeout,
                read_timeout: timeout,
                ..RegistryOptions::default()
            };
            let client =
                airlift_registry::tls::http_client(&options).map_err(|e| FleetError::Invalid {
                    at: format!("gate {}", g.url),
                    problem: format!("cannot build an HTTP client: {e}"),
                })?;
            checks.push((g.clone(), client));
        }
        Ok(Self { checks })
    }

    /// Runs every check for `cluster`; the failures, one sentence each.
    pub async fn problems(&self, cluster: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (gate, client) in &self.checks {
            let url = gate.url.replace("{cluster}", cluster);
            let timeout = gate.timeout.map_or(Duration::from_secs(10), |d| d.0);
            match client.get(&url).timeout(timeout).send().await {
                Ok(resp) if resp.status().as_u16() == gate.expect_status => {}
                Ok(resp) => problems.push(format!(
                    "HTTP gate {url} answered {}, expected {}",
                    resp.status().as_u16(),
                    gate.expect_status
                )),
                Err(e) => problems.push(format!("HTTP gate {url} failed: {}", chain(&e))),
            }
        }
        problems
    }
}

/// Whether `e` says the release is not installed (which a fleet reads as "install it").
pub fn not_installed(e: &airlift_deploy::DeployError) -> bool {
    matches!(
        e.lifecycle(),
        Some(airlift_cluster::lifecycle::LifecycleError::NotInstalled { .. })
    )
}
