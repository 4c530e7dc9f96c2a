//! [`Diagnose`] for the render errors: every one is a configuration problem
//! ([`ExitKind::Config`], exit 6), of the definition (the vendor's) or of the values (the
//! operator's), and says how to fix it.

use airlift_bundle::{Diagnose, ExitKind};

use crate::definition::DefinitionError;
use crate::images::ImageError;
use crate::objects::ObjectError;
use crate::template::TemplateError;
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
        ExitKind::Config
    }
    fn fix(&self) -> Option<String> {
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
        ExitKind::Config
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
}
