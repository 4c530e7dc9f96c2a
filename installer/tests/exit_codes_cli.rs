//! Every row of the exit-code table in docs/architecture.md, through the real binary, against
//! the test cluster and a real docker-registry. Each failure also checks that every flag its
//! hint names is a flag of the command that printed it.
#![allow(clippy::unwrap_used)]

mod releases_support;

use std::time::{Duration, Instant};

use airlift_testkit::cluster::{DenyRule, FailureMode};
use airlift_testkit::registry::TestRegistry;
use releases_support::{Run, ShopVersion, Site};

/// `run` exited with `code`, and its stderr says `needle`.
#[track_caller]
fn assert_exit(run: &Run, code: i32, needle: &str) {
    assert_eq!(run.code, code, "expected exit {code}\n{run}");
    assert!(
        run.stderr.contains(needle),
        "expected `{needle}` in stderr\n{run}"
    );
}

/// Every `--flag` on a `hint:` line of `run` is a flag of `airlift-install <command>`; flags
/// inside a quoted command of another tool (`kubectl …`, `skopeo …`) are that tool's.
#[track_caller]
fn assert_hint_flags_exist(site: &Site, command: &str, run: &Run) {
    let help = site.run(&[command, "--help"]).stdout;
    for line in run.stderr.lines().filter(|l| l.starts_with("hint:")) {
        let ours: String = line
            .split('`')
            .enumerate()
            .filter(|(i, part)| i % 2 == 0 || part.starts_with("airlift-install"))
            .map(|(_, part)| part)
            .collect::<Vec<_>>()
            .join(" ");
        for flag in flags_in(&ours) {
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "the hint names `{flag}`, which `airlift-install {command}` does not have:\n{line}"
            );
        }
    }
}

/// The `--long-flags` named in `text`.
fn flags_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("--") {
        let start = i + pos;
        let mut end = start + 2;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'-') {
            end += 1;
        }
        if end > start + 2 && bytes[start + 2].is_ascii_alphabetic() {
            out.push(text[start..end].to_string());
        }
        i = end;
    }
    out
}

/// The requests that changed something in the cluster: not reads, dry runs or access reviews.
fn writes(site: &Site) -> Vec<String> {
    site.cluster()
        .requests()
        .into_iter()
        .filter(|q| {
            q.method != "GET" && !q.query.contains("dryRun") && !q.path.contains("/selfsubject")
        })
        .map(|q| format!("{} {}", q.method, q.path))
        .collect()
}

fn key_args(site: &Site) -> [String; 2] {
    ["--key".into(), site.key().to_str().unwrap().into()]
}

#[test]
fn offline_rows_success_usage_trust_config() {
    let site = Site::start();
    let b = site.bundle(&ShopVersion::new("0.1.0"));
    let bundle = b.to_str().unwrap();
    let [k, key] = key_args(&site);

    // 0: success.
    let ok = site.run(&["verify", bundle, &k, &key]);
    assert_eq!(ok.code, 0, "{ok}");

    // 2: a wrong command line, and files or contexts named on it that do not exist.
    let r = site.run(&["verify", bundle, "--no-such-flag"]);
    assert_exit(&r, 2, "--no-such-flag");
    let r = site.run(&["verify", "/nonexistent/shop.airlift", &k, &key]);
    assert_exit(&r, 2, "/nonexistent/shop.airlift");
    assert_hint_flags_exist(&site, "verify", &r);
    let r = site.run(&["verify", bundle, "--key", "/nonexistent/vendor.pub"]);
    assert_exit(&r, 2, "/nonexistent/vendor.pub");
    assert_hint_flags_exist(&site, "verify", &r);
    let r = site.run_deploy("install", &b, &["-f", "/nonexistent/site.yaml"], true);
    assert_exit(&r, 2, "/nonexistent/site.yaml");
    assert_hint_flags_exist(&site, "install", &r);
    let r = site.run(&["status", "shop", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_exit(&r, 2, "/nonexistent/kubeconfig");
    assert_hint_flags_exist(&site, "status", &r);
    let r = site.run(&["status", "shop", "--context", "no-such-context"]);
    assert_exit(&r, 2, "no-such-context");
    assert_hint_flags_exist(&site, "status", &r);
    let r = site.run(&["rollback", "shop", "--timeout", "5x"]);
    assert_exit(&r, 2, "5x");

    // 3: the bundle failed verification.
    let tampered = site.dir.path().join("tampered.airlift");
    let mut bytes = std::fs::read(&b).unwrap();
    let at = bytes.len() - 2048 - 100;
    bytes[at] ^= 1;
    std::fs::write(&tampered, bytes).unwrap();
    let r = site.run(&["verify", tampered.to_str().unwrap(), &k, &key]);
    assert_eq!(r.code, 3, "{r}");
    assert_hint_flags_exist(&site, "verify", &r);
    let r = site.run(&["verify", bundle]);
    assert_eq!(r.code, 3, "a signed bundle without --key\n{r}");
    assert_hint_flags_exist(&site, "verify", &r);

    // 6: the configuration is invalid.
    let r = site.run_deploy("install", &b, &["--set", "nosuch.item=1"], true);
    assert_exit(&r, 6, "nosuch.item");
    assert_hint_flags_exist(&site, "install", &r);
    assert_eq!(
        writes(&site),
        Vec::<String>::new(),
        "a config error writes nothing"
    );
}

#[test]
fn registry_failures_exit_4_for_push_and_install() {
    let site = Site::start();
    let b = site.bundle(&ShopVersion::new("0.1.0"));
    let bundle = b.to_str().unwrap();
    let [k, key] = key_args(&site);
    let dead = format!("127.0.0.1:{}", airlift_testkit::registry::free_port());

    // Unreachable, from push and from install's preflight.
    let r = site.run(&[
        "push",
        bundle,
        &k,
        &key,
        "--registry",
        &dead,
        "--insecure-registry",
        &dead,
    ]);
    assert_exit(&r, 4, &dead);
    assert_hint_flags_exist(&site, "push", &r);
    let mut args = vec!["install", bundle, "--key", key.as_str()];
    args.extend(["--registry", &dead, "--insecure-registry", &dead]);
    let r = site.run(&args);
    assert_exit(&r, 4, &dead);
    assert_hint_flags_exist(&site, "install", &r);

    // Untrusted TLS, then a bad login, against a real TLS + htpasswd registry.
    let tls = TestRegistry::tls_with_auth("alice", "right-password");
    let host = tls.host();
    let r = site.run(&["push", bundle, &k, &key, "--registry", &host]);
    assert_exit(&r, 4, &host);
    assert!(r.stderr.contains("--registry-ca"), "{r}");
    assert_hint_flags_exist(&site, "push", &r);
    let ca = tls.ca_pem().unwrap().to_str().unwrap().to_string();
    let out = site
        .command(&[
            "push",
            bundle,
            &k,
            &key,
            "--registry",
            &host,
            "--registry-ca",
            &ca,
            "--registry-user",
            "alice",
        ])
        .env("AIRLIFT_REGISTRY_PASSWORD", "wrong-password")
        .output()
        .unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_exit(&r, 4, "401");
    assert!(!r.stderr.contains("wrong-password"), "{r}");
    assert_hint_flags_exist(&site, "push", &r);
    assert_eq!(
        writes(&site),
        Vec::<String>::new(),
        "a registry failure in preflight writes nothing to the cluster"
    );
}

#[test]
fn cluster_rows_unreachable_preflight_rolled_back_locked() {
    let site = Site::start();
    let v1 = site.bundle(&ShopVersion::new("0.1.0"));
    let v2 = site.bundle(&ShopVersion::new("0.2.0"));

    // 5: the cluster cannot be reached.
    let dead = site.dir.path().join("dead-kubeconfig");
    let text = std::fs::read_to_string(site.cluster().kubeconfig_path()).unwrap();
    let port = airlift_testkit::registry::free_port();
    let text = text.replace(&site.cluster().addr().port().to_string(), &port.to_string());
    std::fs::write(&dead, text).unwrap();
    let r = site.run(&["status", "shop", "--kubeconfig", dead.to_str().unwrap()]);
    assert_exit(&r, 5, &port.to_string());
    assert_hint_flags_exist(&site, "status", &r);

    // 7: preflight (a right missing), nothing written.
    site.cluster()
        .deny(DenyRule::new("create", "apps", "deployments"));
    let r = site.install(&v1, &[]);
    assert_exit(&r, 7, "deployments");
    assert_hint_flags_exist(&site, "install", &r);
    site.cluster().clear_denials();

    let r = site.install(&v2, &[]);
    assert_eq!(r.code, 0, "{r}");

    // 7: a downgrade is refused before any plan is printed or the registry is contacted.
    let before = site.registry().log().len();
    let r = site.run_deploy("upgrade", &v1, &[], false);
    assert_exit(&r, 7, "0.1.0");
    assert!(r.stdout.is_empty(), "no plan before the refusal\n{r}");
    assert_eq!(
        site.registry().log().len(),
        before,
        "the registry is not contacted"
    );
    assert_hint_flags_exist(&site, "upgrade", &r);

    // 8: an upgrade that fails is rolled back.
    let mut broken = ShopVersion::new("0.3.0");
    broken.extra = WORKER.into();
    let v3 = site.bundle(&broken);
    site.cluster()
        .fail_workload_in("shop", "worker", FailureMode::ImagePullBackOff);
    let r = site.run_deploy("upgrade", &v3, &[], false);
    assert_exit(&r, 8, "ImagePullBackOff");
    assert_hint_flags_exist(&site, "upgrade", &r);
    site.cluster().clear_failures();

    // 9: another operation holds the lock.
    let lease = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "airlift-lock-shop", "namespace": "shop"},
        "spec": {
            "holderIdentity": "ops@elsewhere pid 1: upgrade",
            "leaseDurationSeconds": 600,
            "acquireTime": now_micro(),
            "renewTime": now_micro(),
        }
    });
    kubectl_apply(&site, &lease);
    let r = site.run_deploy("upgrade", &v2, &["--set", "web.replicas=3"], false);
    assert_exit(&r, 9, "ops@elsewhere");
    assert_hint_flags_exist(&site, "upgrade", &r);
    let r = site.run(&["rollback", "shop", "-y"]);
    assert_exit(&r, 9, "ops@elsewhere");
    assert_hint_flags_exist(&site, "rollback", &r);
}

/// A second Deployment, new in the version whose upgrade fails.
const WORKER: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: worker
spec:
  replicas: 1
  selector:
    matchLabels: {app: worker}
  template:
    metadata:
      labels: {app: worker}
    spec:
      containers:
        - name: worker
          image: registry.example.com/acme/api:1.0
";

#[test]
fn interrupted_install_exits_130() {
    let site = Site::start();
    let b = site.bundle(&ShopVersion::new("0.1.0"));
    site.cluster()
        .fail_workload("web", FailureMode::Unschedulable);
    let child = site.spawn_install(&b);
    // Wait until the install is waiting for readiness (the Deployment exists), then SIGINT.
    let start = Instant::now();
    while site
        .cluster()
        .object("apps", "deployments", "shop", "web")
        .is_none()
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "install never applied"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
}

fn now_micro() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{secs}"),
            "+%Y-%m-%dT%H:%M:%S.000000Z",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn kubectl_apply(site: &Site, object: &serde_json::Value) {
    let file = site.dir.path().join("object.json");
    std::fs::write(&file, object.to_string()).unwrap();
    let out = std::process::Command::new("kubectl")
        .args(["apply", "--server-side", "-f"])
        .arg(&file)
        .env("KUBECONFIG", site.cluster().kubeconfig_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `airlift-install ARGS` on a pseudo-terminal (util-linux `script`), typing `keys`.
fn run_on_terminal(site: &Site, args: &[&str], keys: &str) -> Run {
    use std::io::Write;
    let bin = env!("CARGO_BIN_EXE_airlift-install");
    let line = std::iter::once(bin)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", site.cluster().kubeconfig_path())
        .env("AIRLIFT_STATE_DIR", site.dir.path().join("state"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Type once the question is up; `script` hands the keys to the terminal.
    std::thread::sleep(Duration::from_secs(2));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(keys.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: all.clone(),
        stderr: all,
    }
}

#[test]
fn a_confirmation_answered_no_exits_130_and_yes_skips_it() {
    let site = Site::start();
    let v1 = site.bundle(&ShopVersion::new("0.1.0"));
    let r = site.install(&v1, &[]);
    assert_eq!(r.code, 0, "{r}");
    let before = writes(&site).len();

    for args in [vec!["uninstall", "shop"], vec!["rollback", "shop"]] {
        let r = run_on_terminal(&site, &args, "n");
        assert_exit(&r, 130, "declined");
        assert!(r.stdout.contains('?'), "the question was asked\n{r}");
    }
    assert_eq!(
        writes(&site).len(),
        before,
        "a declined command writes nothing"
    );

    // Off a terminal, --delete-data without --yes is refused by name; with -y it runs.
    let r = site.run(&["uninstall", "shop", "--delete-data"]);
    assert_exit(&r, 2, "--yes");
    assert_hint_flags_exist(&site, "uninstall", &r);
    assert_eq!(writes(&site).len(), before);
    let r = site.run(&["uninstall", "shop", "--delete-data", "-y"]);
    assert_eq!(r.code, 0, "{r}");
}
