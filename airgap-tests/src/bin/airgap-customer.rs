//! `airgap-customer INPUT.json`: the customer side of the air-gap suite. Run it inside a fresh
//! network namespace (`unshare --net -- airgap-customer INPUT.json`): it brings up loopback,
//! proves nothing else is reachable, starts the customer registry and the test cluster, runs
//! the scenario named in the input, and prints a JSON report on stdout.

use std::process::ExitCode;

use airlift_airgap_tests::customer::{scenarios, Site};
use airlift_airgap_tests::netns::isolate_and_prove;
use airlift_airgap_tests::protocol::{CustomerInput, CustomerReport};
use anyhow::Context;

fn main() -> ExitCode {
    match run() {
        Ok(report) => match serde_json::to_string_pretty(&report) {
            Ok(s) => {
                println!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot serialize the report: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<CustomerReport> {
    let path = std::env::args_os()
        .nth(1)
        .context("usage: airgap-customer INPUT.json (run inside `unshare --net`)")?;
    let input: CustomerInput = serde_json::from_slice(&fs_err::read(&path)?)
        .with_context(|| format!("`{}` is not a customer input", path.to_string_lossy()))?;
    let isolation = isolate_and_prove(&input.vendor_registry)?;
    anyhow::ensure!(
        isolation.interfaces == ["lo"] && isolation.vendor_registry_connect_error.is_some(),
        "not in an air gap (run me with `unshare --net`): {isolation:?}"
    );
    let scenario = input.scenario.clone();
    let mut site = Site::start(input)?;
    let result = scenarios::run(&mut site, &scenario);
    let report = CustomerReport {
        scenario: scenario.clone(),
        isolation,
        steps: std::mem::take(&mut site.steps),
    };
    result.with_context(|| {
        format!(
            "scenario `{scenario}` failed after steps {:?} (logs in `{}`)",
            report.steps.iter().map(|s| &s.name).collect::<Vec<_>>(),
            site.logs().display()
        )
    })?;
    Ok(report)
}
