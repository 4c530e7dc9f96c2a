//! The cluster apply engine: kubeconfig, preflight, ordered server-side apply, readiness,
//! releases, plan, upgrade, rollback and uninstall, on kube-rs.
//!
//! Start with [`Cluster::connect`], then use [`lifecycle`] (install, upgrade, rollback,
//! uninstall, status), [`plan`] and [`preflight`].

pub mod apply;
pub mod cancel;
pub mod generated;
pub mod kubeconfig;
pub mod lifecycle;
pub mod lock;
pub mod namespace;
pub mod object;
pub mod ownership;
pub mod plan;
pub mod platform;
pub mod preflight;
pub mod readiness;
pub mod release;
pub mod replace;
pub mod resolve;
pub mod status;

pub use kubeconfig::{Cluster, ClusterTarget, ConnectError, ConnectOptions};
pub use object::{ManagedObject, ObjectRef};
