//! What the test (vendor side) hands the customer-side runner, and what the runner reports back.
//!
//! The test writes a [`CustomerInput`] as JSON, runs `unshare --net -- airgap-customer INPUT`,
//! and reads one [`CustomerReport`] from the runner's stdout.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A bundle built on the vendor side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleFile {
    /// The bundle file.
    pub path: PathBuf,
    /// The product name in the bundle.
    pub name: String,
    /// The product version in the bundle.
    pub version: String,
    /// Original image reference → manifest (or index) digest, as the vendor side saw it.
    pub images: BTreeMap<String, String>,
}

/// Everything the customer-side runner needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerInput {
    /// The scenario to run (see `customer::scenarios`).
    pub scenario: String,
    /// A writable folder for the runner's files and logs.
    pub workdir: PathBuf,
    /// `airlift-install`.
    pub install_bin: PathBuf,
    /// The vendor ("SaaS") registry, `127.0.0.1:PORT` in the vendor's network namespace. The
    /// runner proves it cannot reach it.
    pub vendor_registry: String,
    /// The vendor's public key.
    pub vendor_pub: PathBuf,
    /// Bundles by role: `demo`, `saas-v1`, `saas-v2`, `demo-other-key`, `demo-unsigned`.
    pub bundles: BTreeMap<String, BundleFile>,
}

/// What the runner found about its network namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Isolation {
    /// Network interfaces (`/proc/net/dev`).
    pub interfaces: Vec<String>,
    /// IPv4 routes of the main table (`/proc/net/route`), as `iface dest/mask`.
    pub ipv4_routes: Vec<String>,
    /// IPv6 routes whose device is not `lo` (`/proc/net/ipv6_route`).
    pub ipv6_routes_off_loopback: Vec<String>,
    /// The error connecting to the vendor registry's address (must be `Some`).
    pub vendor_registry_connect_error: Option<String>,
}

/// One step the runner completed, with what it observed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// What was done, e.g. `install saas-v1`.
    pub name: String,
    /// Observations for the test's assertions.
    pub detail: serde_json::Value,
}

/// The runner's report (stdout, one JSON document).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerReport {
    /// The scenario that ran.
    pub scenario: String,
    /// The namespace proof, taken before anything else.
    pub isolation: Isolation,
    /// Completed steps, in order.
    pub steps: Vec<Step>,
}

impl CustomerReport {
    /// The detail of the step called `name`; panics (a test failure) when there is none.
    pub fn step(&self, name: &str) -> &serde_json::Value {
        &self
            .steps
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "the customer run has no step `{name}`; steps: {:?}",
                    self.steps.iter().map(|s| &s.name).collect::<Vec<_>>()
                )
            })
            .detail
    }
}
