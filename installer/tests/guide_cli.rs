//! Every `airlift-install` command of docs/operator-guide.md, run as written through the real
//! binary, in the guide's order, against the test cluster and a real `docker-registry` (TLS and
//! htpasswd). Only names are substituted: the guide's files, hosts and kubeconfig become this
//! test's (see [`Guide::substitute`]); flags and subcommands stay as printed. A command the
//! test does not know how to run fails the test, so a new example in the guide needs a line
//! here. The `airlift-pack` commands of the guide are run by `packager/tests/guide_cli.rs`.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlift_bundle::license::{issue, LicenseRequest};
use airlift_bundle::{NoProgress, Trust};
use airlift_registry::artifact::OciReference;
use airlift_registry::RegistryOptions;
use airlift_testkit::bundles::{ShopBundles, ShopVersion};
use airlift_testkit::cluster::{ClusterOptions, TestCluster};
use airlift_testkit::registry::{free_port, TestRegistry};

const USER: &str = "robot";
const PASSWORD: &str = "guide-pass-1";
const CONTEXT: &str = "airlift-test";

/// Everything the guide's commands name, made real.
struct Guide {
    dir: tempfile::TempDir,
    cluster: TestCluster,
    fleet_clusters: Vec<TestCluster>,
    registry: TestRegistry,
    key: PathBuf,
    bundles: ShopBundles,
    /// Guide file name -> this test's file.
    files: Vec<(&'static str, PathBuf)>,
    serve_port: u16,
}

fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Guide {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bundles = ShopBundles::new(dir.path()).unwrap();
        let key = bundles.public_key().unwrap();
        let registry = TestRegistry::tls_with_auth(USER, PASSWORD);
        let cluster = TestCluster::start(ClusterOptions::default()).unwrap();
        let fleet_clusters = (0..2)
            .map(|_| TestCluster::start(ClusterOptions::default()).unwrap())
            .collect();
        let mut g = Self {
            dir,
            cluster,
            fleet_clusters,
            registry,
            key,
            bundles,
            files: Vec::new(),
            serve_port: free_port(),
        };
        g.write_files();
        g
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_files(&mut self) {
        let demo = |v: &str| ShopVersion {
            name: "demo".into(),
            ..ShopVersion::new(v)
        };
        let files = vec![
            (
                "demo-0.1.0.airlift",
                self.bundles.write(&demo("0.1.0")).unwrap(),
            ),
            (
                "demo-0.2.0.airlift",
                self.bundles.write(&demo("0.2.0")).unwrap(),
            ),
            (
                "shop-1.0.0.airlift",
                self.bundles.write(&ShopVersion::new("1.0.0")).unwrap(),
            ),
            (
                "shop-0.2.0.airlift",
                self.bundles.write(&ShopVersion::new("0.2.0")).unwrap(),
            ),
        ];
        self.files.extend(files);
        // The guide's site values, as section 2 shows them.
        std::fs::create_dir_all(self.path("bundles")).unwrap();
        let site = self.path("site.yaml");
        std::fs::write(&site, "web:\n  hostname: app.corp.example\n  replicas: 3\n").unwrap();
        self.files.push(("site.yaml", site));
        // Credentials for the commands that name none: docker's config.json.
        let docker = self.path("docker");
        std::fs::create_dir_all(&docker).unwrap();
        let auth = base64(format!("{USER}:{PASSWORD}").as_bytes());
        std::fs::write(
            docker.join("config.json"),
            serde_json::json!({"auths": {self.registry.host(): {"auth": auth}}}).to_string(),
        )
        .unwrap();
        // The vendor's license, as `airlift-pack license issue` writes it.
        let request = LicenseRequest {
            customer: "Example Corp".into(),
            customer_id: "cust-42".into(),
            channel: "stable".into(),
            expires: Some(now() + 365 * 86_400),
            max_nodes: Some(5),
            entitlements: [("reports".to_string(), "true".to_string())].into(),
            ..LicenseRequest::default()
        };
        let (_, bytes) = issue(&request, self.bundles.private_key(), now()).unwrap();
        let license = self.path("example.lic");
        std::fs::write(&license, bytes).unwrap();
        self.files.push(("example.lic", license));
        // A fleet of two test clusters sharing the registry.
        let mut fleet = String::from(
            "apiVersion: airlift.dev/v1alpha1\nkind: Fleet\nmetadata:\n  name: guide\n\
             defaults:\n  release: shop\n  namespace: shop\nclusters:\n",
        );
        for (i, c) in self.fleet_clusters.iter().enumerate() {
            fleet.push_str(&format!(
                "  - name: site-{i}\n    kubeconfig: {}\n    labels: {{tier: {}}}\n    \
                 registry:\n      destination: {}/shop\n      ca: {}\n      \
                 credentials: {{username: {USER}, passwordEnv: GUIDE_REGISTRY_PASSWORD}}\n",
                c.kubeconfig_path().display(),
                if i == 0 { "canary" } else { "prod" },
                self.registry.host(),
                self.registry.ca_pem().unwrap().display(),
            ));
        }
        fleet.push_str(
            "rollout:\n  timeout: 30s\n  gateInterval: 1s\n  stages:\n    - name: canary\n      \
             selector: {tier: canary}\n    - name: prod\n      selector: {tier: prod}\n",
        );
        let fleet_file = self.path("fleet.yaml");
        std::fs::write(&fleet_file, fleet).unwrap();
        self.files.push(("fleet.yaml", fleet_file));
    }

    /// Publishes shop 1.2.0 as the vendor's `publish` commands of section 4c do (those commands
    /// themselves run in the packager's guide test).
    fn publish_shop(&self) {
        let path = self.bundles.write(&ShopVersion::new("1.2.0")).unwrap();
        let trust = Trust::from_flags(Some(&self.key), false).unwrap();
        let (bundle, report) =
            airlift_deploy::open_verified(&path, &trust, &NoProgress, true).unwrap();
        let options = RegistryOptions {
            ca_files: vec![self.registry.ca_pem().unwrap().to_path_buf()],
            auth_file: Some(self.path("docker/config.json")),
            ..RegistryOptions::default()
        };
        let bundle = Arc::new(bundle);
        // Where section 4c publishes it, and where the marketplace flow does (flattened).
        for (repository, flatten) in [("acme/shop", false), ("marketplace/shop", true)] {
            let oci = format!("oci://{}/{repository}", self.registry.host());
            let oci = OciReference::parse(&oci).unwrap();
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(airlift_deploy::publish::publish(
                    bundle.clone(),
                    &report.sha256,
                    &oci,
                    flatten,
                    &options,
                    Arc::new(NoProgress),
                ))
                .unwrap();
        }
    }

    /// The guide's names replaced by this test's: files, hosts, kubeconfig and context.
    fn substitute(&self, argv: &[String]) -> Vec<String> {
        let host = self.registry.host();
        let mut out: Vec<String> = Vec::new();
        for (i, word) in argv.iter().enumerate().skip(1) {
            let before = argv[i - 1].as_str();
            let file = self
                .files
                .iter()
                .find(|(name, _)| name == word)
                .map(|(_, p)| p.display().to_string());
            let new = match (before, word.as_str()) {
                _ if file.is_some() => file.unwrap_or_default(),
                ("--kubeconfig", _) => self.cluster.kubeconfig_path().display().to_string(),
                ("--context", _) => CONTEXT.to_string(),
                ("--registry-user", _) => USER.to_string(),
                ("--listen", _) => format!("127.0.0.1:{}", self.serve_port),
                ("--out", _) => self
                    .path(word.trim_start_matches("./").trim_start_matches('/'))
                    .display()
                    .to_string(),
                (_, "vendor.pub") => self.key.display().to_string(),
                (_, "corp-ca.pem") => self.registry.ca_pem().unwrap().display().to_string(),
                _ => word
                    .replace("registry.corp:5000", &host)
                    .replace("registry.vendor.io", &host),
            };
            out.push(new);
        }
        out
    }

    fn run(&self, args: &[String], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlift-install"))
            .args(args)
            .env("NO_COLOR", "1")
            .env("KUBECONFIG", self.cluster.kubeconfig_path())
            .env("SSL_CERT_FILE", self.registry.ca_pem().unwrap())
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("AIRLIFT_STATE_DIR", self.path("state"))
            .env("GUIDE_REGISTRY_PASSWORD", PASSWORD)
            .env_remove("AIRLIFT_REGISTRY_PASSWORD")
            .env_remove("REGISTRY_AUTH_FILE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    }

    /// `serve` runs until stopped: it must answer the OCI API on the guide's address.
    fn run_serve(&self, args: &[String]) -> String {
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlift-install"))
            .args(args)
            .env("NO_COLOR", "1")
            .env("AIRLIFT_STATE_DIR", self.path("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let address = format!("127.0.0.1:{}", self.serve_port);
        let answer = loop {
            if let Ok(mut s) = TcpStream::connect(&address) {
                use std::io::Read;
                s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n")
                    .unwrap();
                let mut text = String::new();
                let _ = s.read_to_string(&mut text);
                break text;
            }
            assert!(
                Instant::now() < deadline,
                "serve never listened on {address}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let _ = child.kill();
        let _ = child.wait();
        answer.lines().next().unwrap_or_default().to_string()
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_command_in_the_operator_guide_runs_as_written() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operator-guide.md"),
    )
    .unwrap();
    let mut commands = airlift_cli::docs::command_lines(&doc, "airlift-install");
    assert!(
        commands.len() > 30,
        "the guide shows {} commands",
        commands.len()
    );
    // Section 6 removes the demo release that the "Releases" section goes on to show: it runs
    // last.
    let uninstall = commands
        .iter()
        .position(|c| c[1..] == ["uninstall", "demo"])
        .expect("the guide uninstalls demo");
    let last = commands.remove(uninstall);
    commands.push(last);

    let guide = Guide::start();
    guide.publish_shop();
    let mut ran = Vec::new();
    for argv in &commands {
        let args = guide.substitute(argv);
        let line = argv.join(" ");
        let sub = argv[1].as_str();
        // The test's own steps between the guide's, and what each command must show.
        let mut stdin = "";
        let mut expect: Vec<String> = Vec::new();
        match sub {
            "serve" => {
                let status = guide.run_serve(&args);
                assert!(status.contains("200"), "{line}: /v2/ answered {status:?}");
                ran.push(line);
                continue;
            }
            "install" if args.iter().any(|a| a.ends_with("example.lic")) => {
                // The licensed installs (the marketplace flow, the "Licenses" section) come
                // after shop was installed from the registry in section 4c: remove it first.
                let out = guide.run(&["uninstall".into(), "shop".into(), "-y".into()], "");
                assert!(out.status.success(), "uninstall shop: {}", text(&out));
                expect.push("as release shop".into());
            }
            "install" if args.iter().any(|a| a == "--password-stdin") => {
                stdin = PASSWORD;
                expect.push("as release demo".into());
            }
            "status" if argv.get(2).map(String::as_str) == Some("shop") => {
                expect.push("Customer:  Example Corp (cust-42)".into());
            }
            "status" => expect.push("Release demo in namespace demo".into()),
            "pull" => expect.push("shop-1.2.0.airlift".into()),
            "upgrade" => expect.push("0.2.0".into()),
            "rollback" => expect.push("revision".into()),
            "uninstall" => expect.push("demo".into()),
            "platform" => expect.push("provider:".into()),
            "support-bundle" => expect.push("Wrote".into()),
            "drift" => expect.push("in step".into()),
            "completion" => expect.push("airlift-install".into()),
            "version" => expect.push(env!("CARGO_PKG_VERSION").into()),
            "fleet" if argv.get(2).map(String::as_str) == Some("status") => {
                expect.push("2 of 2 clusters at 0.2.0".into());
            }
            "verify" | "inspect" | "config" | "install" | "render" | "push" | "updates"
            | "plan" | "list" | "values" | "man" | "fleet" => {}
            other => panic!("the guide shows `{line}`: teach this test to run `{other}`"),
        }
        let out = guide.run(&args, stdin);
        assert_eq!(
            out.status.code(),
            Some(0),
            "`{line}` as `{args:?}`:\n{}",
            text(&out)
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for e in &expect {
            assert!(
                all.contains(e.as_str()),
                "`{line}` does not show {e:?}:\n{}",
                text(&out)
            );
        }
        ran.push(line);
    }
    assert_eq!(ran.len(), commands.len());
    // What the commands left behind is what the guide says they do.
    assert!(guide.path("demo-manifests").read_dir().unwrap().count() > 0);
    assert!(guide.path("bundles/shop-1.2.0.airlift").is_file());
    assert!(guide.path("shop-support.tar.gz").is_file());
    assert!(
        guide
            .cluster
            .object("", "namespaces", "", "demo")
            .and_then(|ns| ns.pointer("/metadata/name").cloned())
            .is_some(),
        "uninstall keeps the namespace holding the generated secrets"
    );
}
