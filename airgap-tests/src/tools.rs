//! What the suite needs from the machine, checked up front, and the binaries under test.
//!
//! A missing tool or a missing privilege is a test failure with a message naming what is
//! missing, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The registry binary (distribution 2.8).
pub const DOCKER_REGISTRY: &str = airlift_testkit::registry::REGISTRY_BIN;

/// Tools the suite runs, with the package that provides each.
const TOOLS: &[(&str, &str)] = &[
    ("unshare", "util-linux"),
    ("ip", "iproute2"),
    ("skopeo", "skopeo"),
    ("kubectl", "kubectl"),
];

/// Panics, naming everything that is missing, unless every tool is installed and this process
/// may create a network namespace. Checked once per test process.
pub fn require_prerequisites() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(msg) = CHECKED.get_or_init(check_prerequisites) {
        panic!("{msg}");
    }
}

fn check_prerequisites() -> Result<(), String> {
    let mut missing = Vec::new();
    for (tool, package) in TOOLS {
        if find_in_path(tool).is_none() {
            missing.push(format!(
                "`{tool}` is not on PATH (install the `{package}` package)"
            ));
        }
    }
    if !Path::new(DOCKER_REGISTRY).is_file() {
        missing.push(format!(
            "`{DOCKER_REGISTRY}` is missing (install the `docker-registry` package)"
        ));
    }
    if find_in_path("unshare").is_some() {
        match Command::new("unshare")
            .args(["--net", "--", "/bin/sh", "-c", "exit 0"])
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => missing.push(format!(
                "`unshare --net` failed ({}): this process may not create a network namespace; \
                 run the suite as root or with CAP_SYS_ADMIN (e.g. a privileged container). \
                 unshare said: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => missing.push(format!("cannot run `unshare --net`: {e}")),
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the air-gap suite cannot run on this machine:\n  - {}",
            missing.join("\n  - ")
        ))
    }
}

/// The first executable called `name` on `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The binaries under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `airlift-pack`.
    pub pack: PathBuf,
    /// `airlift-install`.
    pub install: PathBuf,
    /// `airgap-customer`, the customer-side runner of this crate.
    pub customer: PathBuf,
}

impl Binaries {
    /// Locates `airlift-pack` and `airlift-install` next to `customer` (the
    /// `CARGO_BIN_EXE_airgap-customer` of the calling test), building them first.
    ///
    /// Cargo cannot make another package's binaries a dependency of these tests, and
    /// `cargo test -p airlift-airgap-tests` alone does not build them. So when either binary is
    /// missing or older than any source it is built from (`*.rs` and `Cargo.toml` of the
    /// packages they depend on, and `Cargo.lock`), this runs `cargo build -p airlift-pack -p airlift-install` once per
    /// test process: the suite never runs a stale binary, and under `cargo test --workspace`
    /// (which already built them) it adds nothing.
    ///
    /// `AIRGAP_BIN_DIR=DIR` runs the `airlift-pack` and `airlift-install` found in `DIR`
    /// instead, without building (e.g. release builds).
    pub fn get(customer: &str) -> Binaries {
        static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
        let customer = PathBuf::from(customer);
        let profile_dir = customer
            .parent()
            .expect("the customer binary lives in the target profile folder")
            .to_path_buf();
        if let Some(dir) = std::env::var_os("AIRGAP_BIN_DIR") {
            let dir = PathBuf::from(dir);
            let bins = Binaries {
                pack: dir.join("airlift-pack"),
                install: dir.join("airlift-install"),
                customer,
            };
            for b in [&bins.pack, &bins.install] {
                assert!(b.is_file(), "AIRGAP_BIN_DIR: `{}` is missing", b.display());
            }
            return bins;
        }
        let wanted = [
            profile_dir.join("airlift-pack"),
            profile_dir.join("airlift-install"),
        ];
        if let Err(msg) = BUILT.get_or_init(|| {
            if wanted.iter().all(|b| is_fresh(b)) {
                Ok(())
            } else {
                build_binaries(&profile_dir)
            }
        }) {
            panic!("{msg}");
        }
        let bins = Binaries {
            pack: profile_dir.join("airlift-pack"),
            install: profile_dir.join("airlift-install"),
            customer,
        };
        for b in [&bins.pack, &bins.install, &bins.customer] {
            assert!(b.is_file(), "`{}` is missing after the build", b.display());
        }
        bins
    }
}

/// True when `bin` exists and is newer than every workspace source file.
fn is_fresh(bin: &Path) -> bool {
    let Ok(built) = fs_err::metadata(bin).and_then(|m| m.modified()) else {
        return false;
    };
    let root = workspace_root();
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for top in [
        "Cargo.toml",
        "Cargo.lock",
        "crates",
        "packager",
        "installer",
    ] {
        newest_source(&root.join(top), &mut newest);
    }
    newest <= built
}

fn newest_source(path: &Path, newest: &mut std::time::SystemTime) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let skip = path
            .file_name()
            .is_some_and(|n| n == "target" || n == "tests");
        if skip {
            return;
        }
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            newest_source(&entry.path(), newest);
        }
    } else if path.extension().is_some_and(|e| e == "rs")
        || path
            .file_name()
            .is_some_and(|n| n == "Cargo.toml" || n == "Cargo.lock")
    {
        if let Ok(m) = meta.modified() {
            *newest = (*newest).max(m);
        }
    }
}

fn build_binaries(profile_dir: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = workspace_root();
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&workspace)
        .args([
            "build",
            "--quiet",
            "-p",
            "airlift-pack",
            "-p",
            "airlift-install",
        ])
        .stdin(Stdio::null());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    // Build into the same target folder the tests were built in.
    if let Some(target) = profile_dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let out = cmd.output().map_err(|e| {
        format!(
            "cannot run `{}` to build the binaries: {e}",
            Path::new(&cargo).display()
        )
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo build -p airlift-pack -p airlift-install` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The workspace root (the folder holding `bundles/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("airgap-tests sits inside the workspace")
        .to_path_buf()
}

/// The fixture folder of this crate.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}
