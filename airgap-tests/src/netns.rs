//! The air gap: running the customer side in a fresh network namespace (`unshare --net`) that
//! has only loopback, and proving from inside that nothing else is there.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::process::{label_of, run};
use crate::protocol::{CustomerInput, CustomerReport, Isolation};
use crate::tools::Binaries;

/// How long one customer-side scenario may take.
const CUSTOMER_LIMIT: Duration = Duration::from_secs(420);

/// Runs `airgap-customer` for `input` inside a new network namespace and returns its report.
/// Panics (a test failure) with the runner's output when it fails.
pub fn run_customer(bins: &Binaries, input: &CustomerInput) -> CustomerReport {
    // Positive control: from the vendor's namespace the SaaS registry answers, so its
    // unreachability inside the customer namespace is the namespace's doing.
    let vendor: SocketAddr = input
        .vendor_registry
        .parse()
        .expect("the vendor registry is an IP:PORT");
    TcpStream::connect_timeout(&vendor, Duration::from_secs(2))
        .expect("the SaaS registry must be reachable from the vendor side");

    fs_err::create_dir_all(&input.workdir).expect("create the customer workdir");
    let input_file = input.workdir.join("input.json");
    fs_err::write(
        &input_file,
        serde_json::to_vec_pretty(input).expect("serialize the customer input"),
    )
    .expect("write the customer input");
    let args = vec![
        "--net".to_string(),
        "--".to_string(),
        bins.customer.display().to_string(),
        input_file.display().to_string(),
    ];
    let mut cmd = Command::new("unshare");
    cmd.args(&args);
    let label = label_of(Path::new("unshare"), &args);
    let out = run(
        cmd,
        &label,
        &input.workdir.join("runner-logs"),
        CUSTOMER_LIMIT,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        out.success(),
        "the customer side (scenario `{}`) failed:\n{}",
        input.scenario,
        out.stderr.trim_end()
    );
    fs_err::write(input.workdir.join("report.json"), &out.stdout).expect("keep the report");
    let report: CustomerReport = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the customer report is not valid JSON ({e}):\n{}",
            out.describe()
        )
    });
    assert_isolated(&report.isolation);
    report
}

/// Asserts the namespace proof the runner recorded.
pub fn assert_isolated(iso: &Isolation) {
    assert_eq!(
        iso.interfaces,
        vec!["lo".to_string()],
        "the customer namespace has other interfaces"
    );
    assert!(
        iso.ipv4_routes.is_empty(),
        "the customer namespace has IPv4 routes: {:?}",
        iso.ipv4_routes
    );
    assert!(
        iso.ipv6_routes_off_loopback.is_empty(),
        "the customer namespace has IPv6 routes off loopback: {:?}",
        iso.ipv6_routes_off_loopback
    );
    assert!(
        iso.vendor_registry_connect_error.is_some(),
        "the SaaS registry was reachable from the customer namespace"
    );
}

/// Inside the namespace: brings `lo` up and records the proof that only loopback exists and
/// that the vendor registry's address does not answer.
pub fn isolate_and_prove(vendor_registry: &str) -> anyhow::Result<Isolation> {
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .output()
        .context("cannot run `ip link set lo up` (install iproute2)")?;
    anyhow::ensure!(
        up.status.success(),
        "`ip link set lo up` failed: {}",
        String::from_utf8_lossy(&up.stderr).trim()
    );
    // /proc/net is per network namespace (/sys/class/net shows the namespace sysfs was
    // mounted in).
    let mut interfaces: Vec<String> = fs_err::read_to_string("/proc/net/dev")?
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_string()))
        .collect();
    interfaces.sort();
    let ipv4_routes = fs_err::read_to_string("/proc/net/route")?
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 7).then(|| format!("{} {}/{}", f[0], f[1], f[7]))
        })
        .collect();
    let ipv6_routes_off_loopback = fs_err::read_to_string("/proc/net/ipv6_route")?
        .lines()
        .filter(|l| l.split_whitespace().last().is_some_and(|dev| dev != "lo"))
        .map(str::to_string)
        .collect();
    let vendor: SocketAddr = vendor_registry
        .parse()
        .with_context(|| format!("the vendor registry `{vendor_registry}` is not IP:PORT"))?;
    let vendor_registry_connect_error =
        match TcpStream::connect_timeout(&vendor, Duration::from_secs(2)) {
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
    Ok(Isolation {
        interfaces,
        ipv4_routes,
        ipv6_routes_off_loopback,
        vendor_registry_connect_error,
    })
}

/// Runs `scenario` on the customer side with everything `vendor` built; the customer's files
/// go under the vendor's temp folder.
pub fn run_scenario(
    bins: &Binaries,
    vendor: &crate::vendor::VendorSide,
    scenario: &str,
) -> CustomerReport {
    let input = CustomerInput {
        scenario: scenario.to_string(),
        workdir: vendor.dir().join(format!("customer-{scenario}")),
        install_bin: bins.install.clone(),
        vendor_registry: vendor.registry.host(),
        vendor_pub: vendor.vendor_pub.clone(),
        bundles: vendor.bundles.clone(),
    };
    run_customer(bins, &input)
}
