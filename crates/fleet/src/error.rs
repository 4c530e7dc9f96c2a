//! What can go wrong with a fleet file or a fleet operation, each a named error with a fix.

use std::path::PathBuf;

use airlift_bundle::{Diagnose, ExitKind};

/// Errors reading or validating a fleet file, and fleet operations that stop the whole run.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The file could not be read, or is too large or too deeply nested.
    #[error("cannot read the fleet file `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The YAML does not parse or has unknown or missing fields.
    #[error("the fleet file `{}` is invalid: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line and column included).
        message: String,
    },
    /// Not `apiVersion: airlift.dev/v1alpha1`, `kind: Fleet`.
    #[error(
        "`{}` is `{api_version}` `{kind}`, not an `airlift.dev/v1alpha1` `Fleet`",
        path.display()
    )]
    Kind {
        /// The file.
        path: PathBuf,
        /// The apiVersion found.
        api_version: String,
        /// The kind found.
        kind: String,
    },
    /// A password (or token) is written in the file.
    #[error("the fleet file `{}` holds a secret at `{at}`", path.display())]
    PasswordInFile {
        /// The file.
        path: PathBuf,
        /// Where: a dotted path such as `clusters[2].registry.credentials.password`.
        at: String,
    },
    /// No cluster, or no stage.
    #[error("the fleet has no {what}")]
    Empty {
        /// `clusters` or `rollout stages`.
        what: &'static str,
    },
    /// Two clusters (or two stages) share a name.
    #[error("two {what} are named `{name}`")]
    Duplicate {
        /// `clusters` or `stages`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A stage names a cluster the fleet does not list.
    #[error("stage `{stage}` names cluster `{cluster}`, which the fleet does not list")]
    UnknownCluster {
        /// The stage.
        stage: String,
        /// The name it gave.
        cluster: String,
        /// The clusters the fleet lists.
        known: Vec<String>,
    },
    /// A cluster is in two stages.
    #[error("cluster `{cluster}` is in stage `{first}` and in stage `{second}`")]
    OverlappingStages {
        /// The cluster.
        cluster: String,
        /// The first stage selecting it.
        first: String,
        /// The second.
        second: String,
    },
    /// A cluster no stage selects would never be updated.
    #[error("cluster `{cluster}` is in no stage: no rollout would ever update it")]
    Unstaged {
        /// The cluster.
        cluster: String,
    },
    /// A stage selects no cluster.
    #[error("stage `{stage}` selects no cluster")]
    EmptyStage {
        /// The stage.
        stage: String,
    },
    /// A field has a value that cannot work.
    #[error("{at}: {problem}")]
    Invalid {
        /// Where, e.g. `rollout.stages[0].maxParallel`.
        at: String,
        /// What is wrong.
        problem: String,
    },
    /// A credentials reference names an environment variable that is not set.
    #[error("cluster `{cluster}`: the registry password variable `{variable}` is not set")]
    MissingPassword {
        /// The cluster.
        cluster: String,
        /// The variable.
        variable: String,
    },
    /// A cluster's Kubernetes version is outside the bundle's range.
    #[error("the bundle needs Kubernetes {range}; outside it: {}", clusters.join(", "))]
    KubernetesRange {
        /// The bundle's range.
        range: String,
        /// `name (version)` of each cluster outside it.
        clusters: Vec<String>,
    },
    /// The rollout stopped because a cluster failed.
    #[error("the rollout halted in stage `{stage}`: cluster `{cluster}` failed: {reason}")]
    Halted {
        /// The stage.
        stage: String,
        /// The cluster that failed.
        cluster: String,
        /// Why.
        reason: String,
    },
    /// Clusters failed in stages that continue on failure.
    #[error("{} cluster(s) failed: {}", clusters.len(), clusters.join(", "))]
    Failed {
        /// The clusters that failed.
        clusters: Vec<String>,
    },
    /// Interrupted: running clusters reached a safe point, no new one started.
    #[error("the rollout was interrupted")]
    Interrupted,
}

impl Diagnose for FleetError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            Self::Read { .. } => ExitKind::Failure,
            Self::Parse { .. }
            | Self::Kind { .. }
            | Self::PasswordInFile { .. }
            | Self::Empty { .. }
            | Self::Duplicate { .. }
            | Self::UnknownCluster { .. }
            | Self::OverlappingStages { .. }
            | Self::Unstaged { .. }
            | Self::EmptyStage { .. }
            | Self::Invalid { .. }
            | Self::MissingPassword { .. } => ExitKind::Config,
            Self::KubernetesRange { .. } => ExitKind::Preflight,
            Self::Halted { .. } | Self::Failed { .. } => ExitKind::Fleet,
            Self::Interrupted => ExitKind::Interrupted,
        }
    }

    fn fix(&self) -> Option<String> {
        Some(match self {
            Self::Read { .. } => "check the path and that the file is a fleet file".into(),
            Self::Parse { .. } => {
                "fix the field named above; docs/schema/fleet.schema.json describes every field"
                    .into()
            }
            Self::Kind { .. } => "start the file with `apiVersion: airlift.dev/v1alpha1` and \
                                  `kind: Fleet`"
                .into(),
            Self::PasswordInFile { .. } => "reference it instead: `credentials: {username: U, \
                                            passwordEnv: VARIABLE}` or `authFile: FILE`"
                .into(),
            Self::Empty { what } => format!("add {what} to the fleet file"),
            Self::Duplicate { .. } => "give each one its own name".into(),
            Self::UnknownCluster { known, .. } => {
                format!("the fleet lists: {}", known.join(", "))
            }
            Self::OverlappingStages { .. } => {
                "narrow one stage's selector or list so each cluster is in exactly one stage".into()
            }
            Self::Unstaged { .. } => {
                "add it to a stage (by label or by name), or remove it from the fleet".into()
            }
            Self::EmptyStage { .. } => {
                "fix the stage's selector or cluster list, or remove the stage".into()
            }
            Self::Invalid { .. } => "fix the value named above".into(),
            Self::MissingPassword { variable, .. } => {
                format!("export {variable} before running the rollout")
            }
            Self::KubernetesRange { .. } => {
                "upgrade those clusters' Kubernetes first, or remove them from this rollout".into()
            }
            Self::Halted { .. } => "fix the cause, then run the same `fleet rollout` again: \
                                    clusters already at the target are skipped"
                .into(),
            Self::Failed { .. } => "fix the causes, then run the same `fleet rollout` again: \
                                    clusters already at the target are skipped"
                .into(),
            Self::Interrupted => "run the same `fleet rollout` again to continue where it \
                                  stopped"
                .into(),
        })
    }
}
