//! `support-bundle` through the real binary against the test cluster: every kind of secret is
//! planted (configuration secret given by the site, generated secret, registry credential,
//! Secret data, a PEM private key, a bearer token, an AWS key, a password in a URL, a secret env
//! value, secrets in container logs), then the whole archive, unpacked by the real `tar`, is
//! searched for each. The analysis names the crash-looping workload and the previous run's log
//! is in the archive.

#![allow(clippy::unwrap_used)]

mod releases_support;

use std::path::Path;
use std::process::Command;

use airlift_testkit::cluster::FailureMode;
use base64::Engine as _;
use releases_support::{ShopVersion, Site};

const PEM: &str = "-----BEGIN PRIVATE KEY-----\\n      MIIPlantedPrivateKeyMaterial0001\\n      -----END PRIVATE KEY-----";

/// Manifests that carry each kind of secret somewhere a support bundle reads.
fn leaky() -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: leaky
data:
  note: \"value {{{{ config.db.password }}}} end\"
  key.pem: \"{PEM}\"
  header: \"Authorization: Bearer PlantedBearerToken0001\"
  aws: \"id AKIAPLANTEDAWSKEY123 in use\"
  dsn: \"postgres://app:PlantedUrlPassword0001@db:5432/shop\"
  mode: visible-mode
---
apiVersion: v1
kind: Secret
metadata:
  name: api-keys
stringData:
  blob: PlantedSecretData0001
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: worker
spec:
  replicas: 1
  selector:
    matchLabels: {{app: worker}}
  template:
    metadata:
      labels: {{app: worker}}
    spec:
      containers:
        - name: worker
          image: registry.example.com/acme/api:1.0
          args:
            - \"--dsn=postgres://app:PlantedUrlPassword0001@db/shop\"
            - \"--auth=Bearer PlantedBearerToken0001\"
            - \"--seed={{{{ config.db.password }}}}\"
          env:
            - name: ADMIN_PASSWORD
              value: PlantedEnvValue0001
            - name: MODE
              value: visible-env-mode
"
    )
}

/// Unpacks `archive` with the real `tar` into `dir` and returns every file's text.
fn unpack(archive: &Path, dir: &Path) -> Vec<(String, String)> {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                files.push((
                    rel,
                    String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned(),
                ));
            }
        }
    }
    files
}

fn assert_absent(files: &[(String, String)], secrets: &[&str]) {
    for secret in secrets {
        for (name, text) in files {
            assert!(
                !text.contains(secret),
                "`{secret}` leaked into {name}:\n{text}"
            );
        }
    }
}

fn file<'a>(files: &'a [(String, String)], suffix: &str) -> &'a str {
    files
        .iter()
        .find(|(n, _)| n.ends_with(suffix))
        .map(|(_, t)| t.as_str())
        .unwrap_or_else(|| {
            let names: Vec<&String> = files.iter().map(|(n, _)| n).collect();
            panic!("no {suffix} in {names:?}")
        })
}

#[test]
fn support_bundle_redacts_every_planted_secret_and_opens_with_tar() {
    let site = Site::start();
    let mut v1 = ShopVersion::new("1.0.0");
    v1.extra = leaky();
    let b1 = site.bundle(&v1);
    let mut args = site.deploy_args("install", &b1, &["--registry-user", "planted-user"], true);
    args.push("--yes".into());
    let out = site
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .env("AIRLIFT_REGISTRY_PASSWORD", "PlantedRegistryPw0001")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = site.object("", "secrets", "shop", "db")["data"]["password"]
        .as_str()
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap())
        .map(|b| String::from_utf8(b).unwrap())
        .unwrap();
    // The worker crash-loops from now on: its previous run's log must be collected.
    site.cluster()
        .fail_workload_in("shop", "worker", FailureMode::CrashLoopBackOff);
    let _ = site.run(&["status", "shop"]);

    let archive = site.dir.path().join("support.tar.gz");
    let run = site.run(&[
        "support-bundle",
        "shop",
        "-n",
        "shop",
        "--out",
        archive.to_str().unwrap(),
    ]);
    assert!(run.ok(), "{run}");
    eprintln!("{}", run.stdout);
    assert!(
        !run.stdout.contains("preflight"),
        "no preflight failure: {run}"
    );
    assert!(
        run.stdout
            .contains("namespace shop: 1 Warning event (see events/shop.json)"),
        "{run}"
    );
    assert!(run.stdout.contains("values redacted"), "{run}");
    assert!(
        run.stdout
            .contains("Deployment.apps shop/worker: 0/1 ready: CrashLoopBackOff"),
        "{run}"
    );
    let files = unpack(&archive, &site.dir.path().join("unpacked"));
    let planted = [
        generated.as_str(),
        "MIIPlantedPrivateKeyMaterial0001",
        "PlantedBearerToken0001",
        "AKIAPLANTEDAWSKEY123",
        "PlantedUrlPassword0001",
        "PlantedSecretData0001",
        "PlantedEnvValue0001",
        "PlantedRegistryPw0001",
    ];
    assert_absent(&files, &planted);
    // The base64 forms too (Secret data, docker config auth).
    let b64: Vec<String> = planted
        .iter()
        .map(|s| base64::engine::general_purpose::STANDARD.encode(s))
        .collect();
    assert_absent(&files, &b64.iter().map(String::as_str).collect::<Vec<_>>());
    // What is not secret stays readable.
    let cm = file(&files, "objects/ConfigMap/shop/leaky.json");
    assert!(
        cm.contains("visible-mode") && cm.contains("[REDACTED]"),
        "{cm}"
    );
    let worker = file(&files, "objects/Deployment.apps/shop/worker.json");
    assert!(worker.contains("visible-env-mode"), "{worker}");
    // Logs: current and previous run, redacted.
    let previous = file(&files, "/worker.previous.log");
    assert!(previous.contains("exited with code"), "{previous}");
    assert!(
        previous.contains("--dsn=postgres://app:[REDACTED]@db/shop"),
        "{previous}"
    );
    let readme = file(&files, "README.txt");
    assert!(readme.contains("shop/worker"), "{readme}");
    for part in [
        "release/history.json",
        "release/status.json",
        "versions.json",
        "cluster/nodes.json",
        "cluster/preflight.json",
        "events/shop.json",
        "pods/shop.json",
    ] {
        file(&files, part);
    }

    // --log-lines bounds every log.
    let short = site.dir.path().join("short.tar.gz");
    let run = site.run(&[
        "support-bundle",
        "shop",
        "--log-lines",
        "1",
        "--out",
        short.to_str().unwrap(),
    ]);
    assert!(run.ok(), "{run}");
    let files = unpack(&short, &site.dir.path().join("short"));
    let previous = file(&files, "/worker.previous.log");
    assert_eq!(previous.lines().count(), 1, "{previous}");

    // A secret the site gives later is redacted too.
    let mut v2 = ShopVersion::new("1.1.0");
    v2.extra = leaky();
    let b2 = site.bundle(&v2);
    site.cluster().clear_failures();
    let up = site.run_deploy(
        "upgrade",
        &b2,
        &["--set", "db.password=PlantedSiteSecret0001", "--yes"],
        false,
    );
    assert!(up.ok(), "{up}");
    let archive2 = site.dir.path().join("support2.tar.gz");
    // `--key` of the site's vendor key, as the deploy commands pass it.
    let key = site.deploy_args("plan", &b2, &[], false)[3].clone();
    let run = site.run(&[
        "support-bundle",
        "shop",
        "--out",
        archive2.to_str().unwrap(),
        "--output",
        "json",
        "--bundle",
        b2.to_str().unwrap(),
        "--key",
        &key,
    ]);
    assert!(run.ok(), "{run}");
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(summary["redactions"].as_u64().unwrap() > 0, "{summary}");
    let files = unpack(&archive2, &site.dir.path().join("unpacked2"));
    let manifest = file(&files, "bundle/manifest.json");
    assert!(
        manifest.contains("\"1.1.0\"") && manifest.contains("\"requirements\""),
        "{manifest}"
    );
    assert_absent(
        &files,
        &[
            "PlantedSiteSecret0001",
            generated.as_str(),
            "PlantedRegistryPw0001",
        ],
    );
}

#[test]
fn support_bundle_of_an_unknown_release_fails_and_writes_nothing() {
    let site = Site::start();
    let archive = site.dir.path().join("none.tar.gz");
    let run = site.run(&[
        "support-bundle",
        "ghost",
        "--out",
        archive.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("ghost"), "{run}");
    assert!(!archive.exists());
}
