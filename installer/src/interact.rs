//! Prompts and confirmations on a terminal, only when interactive; the library asks through
//! [`airlift_deploy::Interaction`].

use std::io::IsTerminal;

use airlift_bundle::schema::config::{ConfigItem, ConfigType};
use airlift_deploy::{DeployError, Interaction};

/// Asks on the terminal when stdin and stderr are terminals and `--yes` was not given.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    interactive: bool,
}

impl Terminal {
    /// Interactive unless `yes` or not on a terminal.
    pub fn new(yes: bool) -> Self {
        Self {
            interactive: !yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        }
    }

    /// Whether prompts are shown.
    pub fn interactive(&self) -> bool {
        self.interactive
    }
}

fn type_label(kind: ConfigType) -> &'static str {
    match kind {
        ConfigType::String => "string",
        ConfigType::Bool => "bool",
        ConfigType::Int => "int",
        ConfigType::Secret => "secret",
        ConfigType::Enum => "enum",
        ConfigType::Hostname => "hostname",
        ConfigType::List => "list, comma-separated",
    }
}

fn prompt_failed(key: &str) -> impl FnOnce(dialoguer::Error) -> DeployError + '_ {
    move |e| DeployError::Prompt {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

impl Interaction for Terminal {
    fn ask(&self, key: &str, item: &ConfigItem) -> Option<Result<String, DeployError>> {
        if !self.interactive {
            return None;
        }
        let mut label = format!("{key} ({}): {}", type_label(item.kind), item.description);
        if !item.validation.allowed.is_empty() {
            label.push_str(&format!(" [{}]", item.validation.allowed.join("|")));
        }
        if item.kind == ConfigType::Secret {
            return Some(
                dialoguer::Password::new()
                    .with_prompt(label)
                    .interact()
                    .map_err(prompt_failed(key)),
            );
        }
        let mut input = dialoguer::Input::<String>::new().with_prompt(label);
        if let Some(default) = &item.default {
            let text = match default {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            input = input.default(text);
        }
        Some(input.interact_text().map_err(prompt_failed(key)))
    }

    fn confirm(&self, question: &str) -> Result<bool, DeployError> {
        if !self.interactive {
            return Ok(true);
        }
        dialoguer::Confirm::new()
            .with_prompt(question)
            .default(false)
            .interact()
            .map_err(prompt_failed("confirmation"))
    }
}
