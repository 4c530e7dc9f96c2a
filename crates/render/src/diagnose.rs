//! [`Diagnose`] for the render errors: every one is a configuration problem
//! ([`ExitKind::Config`], exit 6), of the definition (the vendor's) or of the values (the
//! operator's), and says how to fix it — a template stopped at a bound (fuel, output, memory,
//! time) included. Only a render worker that fails by itself is [`ExitKind::Failure`].

use airlift_bundle::{Diagnose, ExitKind};

use crate::definition::DefinitionError;
use crate::images::ImageError;
use crate::objects::ObjectError;
use crate::template::{TemplateError, TemplateLimit};
use crate::values::ConfigError;
use crate::RenderError;

impl Diagnose for ConfigError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            // A values file named on the command line that does not exist: a wrong command line.
            ConfigError::ReadValues { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                ExitKind::Usage
            }
            _ => ExitKind::Config,
        }
    }
    fn fix(&self) -> Option<String> {
        let hint = match self {
            ConfigError::Missing { .. } => {
                "run interactively to be prompted, or pass a values file (--values) or --set \
                 KEY=VALUE"
            }
            ConfigError::Invalid { .. } => {
                "fix each value named above; `airlift-install config BUNDLE` lists the items \
                 and their rules"
            }
            ConfigError::MalformedSet { .. } => "write --set group.item=value",
            ConfigError::Pattern { .. } => {
                "the bundle's configuration schema is broken: ask the vendor for a fixed build"
            }
            _ => "check the values files named above",
        };
        Some(hint.to_string())
    }
}

impl Diagnose for DefinitionError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Config
    }
    fn fix(&self) -> Option<String> {
        let hint = match self {
            DefinitionError::Read { .. } => "check that the path exists and is readable",
            _ => "fix airlift.yaml, then run `airlift-pack lint` to check every rule at once",
        };
        Some(hint.to_string())
    }
}

impl Diagnose for TemplateError {
    fn exit_kind(&self) -> ExitKind {
        if self.source.is_worker_failure() {
            // The render worker itself failed (could not start, died of something that is
            // no bound): not a problem of the configuration.
            ExitKind::Failure
        } else {
            ExitKind::Config
        }
    }
    fn fix(&self) -> Option<String> {
        if let Some(limit) = self.limit {
            let what = match limit {
                TemplateLimit::Memory { .. } | TemplateLimit::Output => "grows a value",
                TemplateLimit::Fuel | TemplateLimit::Time { .. } => "loops or recurses",
            };
            return Some(format!(
                "the template {what} without bound with this configuration: check the \
                 configuration values it uses, and report the template to its vendor (who \
                 checks it with `airlift-pack lint`); docs/bundle-format.md (Limits) lists \
                 the bounds"
            ));
        }
        if self.source.is_worker_failure() {
            return Some(
                "the render worker runs this same executable again: check that it can start \
                 (not deleted or replaced while running, enough memory and processes)"
                    .to_string(),
            );
        }
        Some(match &self.undefined {
            Some(_) => "check the name against the configuration schema (`airlift-install \
                        config BUNDLE` lists it), or give the template a `default`"
                .to_string(),
            None => "fix the template (minijinja syntax), then run `airlift-pack lint`".to_string(),
        })
    }
}

impl Diagnose for ObjectError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Config
    }
    fn fix(&self) -> Option<String> {
        Some(
            "render the bundle with `airlift-install render BUNDLE --out DIR` and check the \
             named document"
                .to_string(),
        )
    }
}

impl Diagnose for ImageError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Config
    }
    fn fix(&self) -> Option<String> {
        match self {
            // The message already says what to do.
            ImageError::NotCarried { .. } => None,
            _ => Some(
                "write image references as `registry[:port]/repository:tag` or \
                 `…@sha256:<64 hex>`"
                    .to_string(),
            ),
        }
    }
}

impl Diagnose for RenderError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            RenderError::Template(e) => e.exit_kind(),
            RenderError::Objects(e) => e.exit_kind(),
        }
    }
    fn fix(&self) -> Option<String> {
        match self {
            RenderError::Template(e) => e.fix(),
            RenderError::Objects(e) => e.fix(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_errors_are_config_errors_with_a_fix() {
        let e = ConfigError::MalformedSet { arg: "x".into() };
        assert_eq!(e.exit_kind(), ExitKind::Config);
        assert_eq!(e.fix().as_deref(), Some("write --set group.item=value"));
        let e = DefinitionError::Read {
            path: "/nope".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(e.exit_kind(), ExitKind::Config);
        assert!(e.fix().unwrap().contains("readable"));
    }

    fn template_error(
        limit: Option<TemplateLimit>,
        source: crate::template::TemplateCause,
    ) -> TemplateError {
        TemplateError {
            file: "components/web/cm.yaml".into(),
            line: None,
            undefined: None,
            limit,
            source,
        }
    }

    #[test]
    fn a_template_stopped_at_a_bound_is_a_config_error_and_a_failed_worker_is_not() {
        use crate::template::TemplateCause;
        let memory = template_error(
            Some(TemplateLimit::Memory { bytes: 512 << 20 }),
            TemplateCause::Stopped("memory allocation of 8 bytes failed".into()),
        );
        assert_eq!(memory.exit_kind(), ExitKind::Config);
        assert_eq!(
            memory.to_string(),
            "template `components/web/cm.yaml` failed to render: it needed more than the 512 MiB \
             memory limit (a value grown without bound, e.g. a string doubled in a loop or a \
             macro)"
        );
        assert!(memory
            .fix()
            .unwrap()
            .starts_with("the template grows a value without bound"));
        let time = template_error(
            Some(TemplateLimit::Time {
                limit: std::time::Duration::from_secs(10),
            }),
            TemplateCause::Stopped("no answer within 10 s".into()),
        );
        assert_eq!(time.exit_kind(), ExitKind::Config);
        assert!(time.to_string().ends_with(
            "it ran longer than the 10 s time limit (a loop or filter over huge values)"
        ));
        assert!(time.fix().unwrap().contains("loops or recurses"));
        let died = template_error(
            None,
            TemplateCause::Worker("it ended with signal: 11".into()),
        );
        assert_eq!(died.exit_kind(), ExitKind::Failure);
        assert!(died.fix().unwrap().contains("render worker"));
        let wrapped = RenderError::Template(died);
        assert_eq!(wrapped.exit_kind(), ExitKind::Failure);
    }
}
