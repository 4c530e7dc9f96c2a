//! Test support: real registries on loopback, a fault proxy and the test cluster.

pub mod about;
pub mod bundles;
pub mod cluster;
pub mod fault_proxy;
pub mod images;
pub mod registry;
pub mod test_app;
