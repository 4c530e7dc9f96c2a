//! Test support: real registries on loopback, a fault proxy and the test cluster.
