//! Fleet rollouts: one bundle to many clusters, in stages, on the `airlift-deploy` engine.
//!
//! ```text
//! Fleet::load(path)?.resolve(path)?          // named errors: unknown clusters, overlapping
//!                                            // stages, a cluster in no stage, passwords
//! inspect::plan(fleet, bundle, bound)        // per cluster: running → target, counts, preflight
//! Rollout::new(fleet, path, bundle, ..).run()// stages → Deployer per cluster → gates → bake
//! inspect::status(fleet, name, bundle, bound)// "N of M clusters at VERSION"
//! ```
//!
//! Nothing here applies, waits or records on its own: every change goes through
//! `airlift_deploy::Deployer` and `airlift_deploy::releases`, and each cluster's release records
//! are the truth a rollout resumes from.

// Errors from the deploy engine are carried whole; see airlift-deploy.
#![allow(clippy::result_large_err)]

pub mod duration;
pub mod error;
pub mod gates;
pub mod inspect;
pub mod model;
pub mod rollout;
pub mod schema;
pub mod validate;

pub use error::FleetError;
pub use model::Fleet;
pub use rollout::{Event, Reporter, Rollout, RolloutReport, Silent};
pub use validate::ResolvedFleet;
