//! SIGINT and SIGKILL at ten seeded moments across install and upgrade, through the real
//! binary: after each, `status` tells the truth, running the same command again converges to
//! the intended revision, and another release's objects are never touched.

#![allow(clippy::unwrap_used)]

mod releases_support;

use std::process::Command;
use std::time::Duration;

use releases_support::{Run, ShopVersion, Site};

/// A small deterministic generator, so a failing moment can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn snapshot(site: &Site, ns: &str) -> Vec<String> {
    [
        ("", "configmaps", "web-config"),
        ("", "secrets", "db"),
        ("apps", "deployments", "web"),
    ]
    .iter()
    .map(|(g, plural, name)| {
        let o = site.object(g, plural, ns, name);
        format!("{plural}/{name}@{}", o["metadata"]["resourceVersion"])
    })
    .collect()
}

/// Checks that `status` tells the truth about a release whose operation just stopped.
/// Returns the latest revision's status, or `not installed`.
fn status_is_truthful(site: &Site, release: &str, tag: &str) -> String {
    let status = site.run(&["status", release, "--output", "json"]);
    if status.code == 1 && status.stderr.contains("is not installed") {
        // Killed before anything was written: nothing to report, and nothing claimed.
        return "not installed".into();
    }
    assert!(status.ok(), "{tag}: {status}");
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let latest = json["latest"]["status"].as_str().unwrap();
    let summary = json["summary"].as_str().unwrap();
    match latest {
        "deployed" => assert!(summary.contains("deployed"), "{tag}: {summary}"),
        "interrupted" => assert!(summary.contains("interrupted"), "{tag}: {summary}"),
        "pending" => {
            assert!(
                json["lockedBy"].is_null(),
                "{tag}: the killed process holds no lock"
            );
            assert!(summary.contains("stopped partway"), "{tag}: {summary}");
        }
        other => panic!("{tag}: unexpected status {other}: {summary}"),
    }
    latest.to_string()
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
}

#[test]
fn kills_at_seeded_moments_leave_a_truthful_status_and_a_converging_rerun() {
    // Pods take 1.5 s to become ready, so the readiness wait is a phase a kill can land in.
    for site in Site::tiers(
        airlift_testkit::cluster::ClusterOptions::default()
            .with_ready_delay(Duration::from_millis(1500)),
    ) {
        eprintln!("[{}]", site.tier);
        let v1 = site.bundle(&ShopVersion::new("1.0.0"));
        let v2 = site.bundle(&ShopVersion::new("2.0.0"));
        assert!(site.install(&v1, &["--release", "other"]).ok());
        let other = snapshot(&site, "other");
        let mut rng = Lcg(0x5eed_a1f1);
        for i in 0..10u32 {
            let release = format!("k{i}");
            let upgrade = i >= 5;
            if upgrade {
                assert!(site.install(&v1, &["--release", &release]).ok());
            }
            let (cmd, bundle, version) = if upgrade {
                ("upgrade", &v2, "2.0.0")
            } else {
                ("install", &v1, "1.0.0")
            };
            let args = site.deploy_args(cmd, bundle, &["--release", &release, "--yes"], true);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            // Upgrades spend their first half second verifying and planning: aim past that.
            let delay = if upgrade {
                500 + rng.next(2500)
            } else {
                rng.next(3500)
            };
            let sig = if i % 2 == 0 { "-INT" } else { "-KILL" };
            let tag = format!("#{i} {cmd} {sig} after {delay} ms");
            let child = site
                .command(&refs)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay));
            signal(child.id(), sig);
            let out = child.wait_with_output().unwrap();
            let run = Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            };
            if run.code == 130 {
                assert!(
                    run.stderr.contains("run the same")
                        || run.stderr.contains("nothing was changed"),
                    "{tag}: an interrupted command says how to go on: {run}"
                );
            } else {
                assert!(matches!(run.code, 0 | -1), "{tag}: {run}");
            }
            let state = status_is_truthful(&site, &release, &tag);
            eprintln!("{tag}: exit {}, then status {state}", run.code);

            let again = site.run(&refs);
            assert!(again.ok(), "{tag}: the rerun converges: {again}");
            let status = site.run(&["status", &release, "--output", "json"]);
            let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
            assert_eq!(json["latest"]["status"], "deployed", "{tag}: {status}");
            assert_eq!(json["deployed"]["bundle"]["version"], version, "{tag}");
            assert_eq!(json["missing"].as_array().map(Vec::len), Some(0), "{tag}");
            assert_eq!(
                snapshot(&site, "other"),
                other,
                "{tag}: another release was touched"
            );
        }
    }
}
