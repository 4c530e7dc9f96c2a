//! The air-gap end-to-end suite: the real `airlift-pack` and `airlift-install`, from the vendor
//! side (a seeded "SaaS registry", bundles built and signed) to the customer side, which runs
//! inside a network namespace with only loopback (`unshare --net`), against a TLS + htpasswd
//! registry and the test cluster. See `docs/airgap-tests.md`.
//!
//! The tests in `tests/` drive the vendor side ([`vendor`]) and then the customer side
//! ([`netns::run_customer`], which runs the `airgap-customer` binary and its
//! [`customer::scenarios`]).

pub mod customer;
pub mod netns;
pub mod process;
pub mod protocol;
pub mod tools;
pub mod vendor;
