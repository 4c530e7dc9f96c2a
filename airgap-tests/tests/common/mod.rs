//! Shared start of every air-gap test: prerequisites, binaries, vendor side.

use airlift_airgap_tests::tools::{require_prerequisites, Binaries};
use airlift_airgap_tests::vendor::{VendorSide, Want};

/// Checks the machine, builds the binaries and prepares the vendor side with `want`.
pub fn setup(want: &[Want]) -> (Binaries, VendorSide) {
    let t = std::time::Instant::now();
    require_prerequisites();
    let bins = Binaries::get(env!("CARGO_BIN_EXE_airgap-customer"));
    eprintln!("airgap: binaries ready after {:?}", t.elapsed());
    let vendor = VendorSide::prepare(&bins, want);
    eprintln!("airgap: vendor side ready after {:?}", t.elapsed());
    (bins, vendor)
}
