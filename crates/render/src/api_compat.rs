//! Kubernetes API removals and deprecations, checked against the versions a bundle supports.
//!
//! The table is a data file (`crates/render/platforms/api-removals.yaml`, from the Kubernetes
//! deprecation guide), embedded at compile time. [`check`] reports each object whose
//! `apiVersion`/`kind` is removed in a version the range admits (an error) or deprecated there
//! (a warning), naming the object, the version and the replacement, as pluto and kubent do.

use std::sync::LazyLock;

use serde::Deserialize;

/// The embedded removals table.
pub const REMOVALS_TABLE: &str = include_str!("../platforms/api-removals.yaml");

/// The newest Kubernetes minor release the checks consider (`1.N`).
pub const NEWEST_MINOR: u64 = 40;

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Removal {
    /// The group/version, e.g. `policy/v1beta1`.
    pub api_version: String,
    /// The kinds it concerns.
    pub kinds: Vec<String>,
    /// The first minor release that deprecates it, e.g. `1.21`.
    pub deprecated: String,
    /// The first minor release that no longer serves it, e.g. `1.25`.
    pub removed: String,
    /// What to use instead.
    pub replacement: String,
}

static TABLE: LazyLock<Vec<Removal>> = LazyLock::new(|| {
    serde_yaml::from_str(REMOVALS_TABLE)
        .unwrap_or_else(|e| panic!("the embedded API removals table is invalid: {e}"))
});

/// Every row of the table.
pub fn removals() -> &'static [Removal] {
    &TABLE
}

/// Which Kubernetes versions to check against.
#[derive(Debug, Clone)]
pub enum Target {
    /// Every version a semver range (the bundle's `requirements.kubernetes`) admits.
    Range(semver::VersionReq),
    /// One release, e.g. `1.33` (`--kubernetes 1.33`).
    Version(u64),
}

impl Target {
    /// Parses `--kubernetes 1.33` (or `v1.33`, `1.33.2`).
    pub fn parse_version(text: &str) -> Option<Self> {
        let mut parts = text.trim().trim_start_matches('v').split('.');
        let major = parts.next()?.parse::<u64>().ok()?;
        let minor = parts.next()?.parse::<u64>().ok()?;
        (major == 1).then_some(Target::Version(minor))
    }

    /// Parses a semver range such as `>=1.28.0, <1.36.0`.
    pub fn parse_range(text: &str) -> Option<Self> {
        semver::VersionReq::parse(text).ok().map(Target::Range)
    }

    /// The lowest minor release `>= from` this target admits.
    fn first_at_or_after(&self, from: u64) -> Option<u64> {
        match self {
            Target::Version(m) => (*m >= from).then_some(*m),
            Target::Range(req) => (from..=NEWEST_MINOR).find(|m| {
                // A minor is admitted when any of its patch releases is.
                [0, 1, 5, 10, 99, 999]
                    .iter()
                    .any(|p| req.matches(&semver::Version::new(1, *m, *p)))
            }),
        }
    }

    /// How to name the target in messages.
    pub fn describe(&self) -> String {
        match self {
            Target::Version(m) => format!("Kubernetes 1.{m}"),
            Target::Range(req) => format!("the supported range `{req}`"),
        }
    }
}

/// An object that uses a removed or deprecated API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `Kind/name` and the file it came from.
    pub object: String,
    /// Its apiVersion.
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// `true` when removed inside the target (an error), `false` when only deprecated.
    pub removed: bool,
    /// The release that removes (or deprecates) it, e.g. `1.25`.
    pub version: String,
    /// What to use instead.
    pub replacement: String,
    /// The target, as named in messages.
    pub target: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.removed {
            write!(
                f,
                "{} uses {} {}, which Kubernetes {} removed (inside {}): use {}",
                self.object,
                self.api_version,
                self.kind,
                self.version,
                self.target,
                self.replacement
            )
        } else {
            write!(
                f,
                "{} uses {} {}, deprecated since Kubernetes {} (inside {}): move to {}",
                self.object,
                self.api_version,
                self.kind,
                self.version,
                self.target,
                self.replacement
            )
        }
    }
}

fn minor(version: &str) -> Option<u64> {
    version.split('.').nth(1)?.parse().ok()
}

/// The finding for one object (`api_version`, `kind`, described as `object`), if any.
pub fn check(api_version: &str, kind: &str, object: &str, target: &Target) -> Option<Finding> {
    let row = removals()
        .iter()
        .find(|r| r.api_version == api_version && r.kinds.iter().any(|k| k == kind))?;
    let finding = |removed: bool, version: &str| Finding {
        object: object.to_string(),
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        removed,
        version: version.to_string(),
        replacement: row.replacement.clone(),
        target: target.describe(),
    };
    if target.first_at_or_after(minor(&row.removed)?).is_some() {
        return Some(finding(true, &row.removed));
    }
    let deprecated = minor(&row.deprecated)?;
    let removed = minor(&row.removed)?;
    match target.first_at_or_after(deprecated) {
        Some(m) if m < removed => Some(finding(false, &row.deprecated)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(r: &str) -> Target {
        Target::Range(semver::VersionReq::parse(r).unwrap())
    }

    #[test]
    fn the_table_parses_and_names_the_issue_examples() {
        let t = removals();
        assert!(t.len() > 20);
        for (api, kind, removed) in [
            ("policy/v1beta1", "PodSecurityPolicy", "1.25"),
            ("flowcontrol.apiserver.k8s.io/v1beta2", "FlowSchema", "1.29"),
            ("autoscaling/v2beta2", "HorizontalPodAutoscaler", "1.26"),
        ] {
            let row = t
                .iter()
                .find(|r| r.api_version == api && r.kinds.iter().any(|k| k == kind))
                .unwrap();
            assert_eq!(row.removed, removed);
        }
    }

    #[test]
    fn removed_inside_the_range_is_an_error_naming_version_and_replacement() {
        let f = check(
            "policy/v1beta1",
            "PodSecurityPolicy",
            "PodSecurityPolicy/restricted",
            &range(">=1.24.0, <1.30.0"),
        )
        .unwrap();
        assert!(f.removed);
        assert_eq!(f.version, "1.25");
        let text = f.to_string();
        assert!(text.contains("PodSecurityPolicy/restricted"), "{text}");
        assert!(text.contains("Pod Security Admission"), "{text}");
        // Entirely before the removal: only deprecated.
        let f = check(
            "autoscaling/v2beta2",
            "HorizontalPodAutoscaler",
            "HPA/web",
            &range(">=1.23.0, <1.26.0"),
        )
        .unwrap();
        assert!(!f.removed);
        // Before the deprecation: nothing.
        assert!(check("batch/v1beta1", "CronJob", "x", &range(">=1.16.0, <1.20.0")).is_none());
        // A served API: nothing.
        assert!(check("apps/v1", "Deployment", "x", &range(">=1.28.0")).is_none());
    }

    #[test]
    fn one_target_version_is_checked_exactly() {
        let t = Target::parse_version("1.33").unwrap();
        let f = check(
            "flowcontrol.apiserver.k8s.io/v1beta3",
            "FlowSchema",
            "FlowSchema/x",
            &t,
        )
        .unwrap();
        assert!(f.removed);
        assert!(f.to_string().contains("Kubernetes 1.33"), "{f}");
        let t = Target::parse_version("v1.30.4").unwrap();
        assert!(
            !check(
                "flowcontrol.apiserver.k8s.io/v1beta3",
                "FlowSchema",
                "x",
                &t
            )
            .unwrap()
            .removed
        );
        assert!(Target::parse_version("2.1").is_none());
        assert!(Target::parse_version("latest").is_none());
    }
}
