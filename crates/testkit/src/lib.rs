//! Test support: real registries on loopback, a fault proxy, the test cluster, and peak-memory
//! measurement of a command under an address-space bound.

pub mod about;
pub mod bundles;
pub mod canonical_tar;
pub mod cluster;
pub mod definitions;
pub mod e2e;
pub mod fault_proxy;
pub mod files;
pub mod images;
pub mod measure;
pub mod registry;
pub mod test_app;
