//! Confirmation prompts, shown only when interactive.

use std::io::IsTerminal;

use airlift_cli::{CommandError, ExitKind};

/// Asks `question`; refuses when the answer is no, and when not interactive (pass `--yes`).
pub fn confirm(question: &str) -> Result<(), CommandError> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(CommandError::new(
            ExitKind::Usage,
            anyhow::anyhow!("confirmation needed: {question}"),
        )
        .with_hint("pass --yes to confirm when not running in a terminal"));
    }
    let yes = dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| CommandError::new(ExitKind::Interrupted, anyhow::Error::new(e)))?;
    if yes {
        Ok(())
    } else {
        Err(CommandError::new(
            ExitKind::Interrupted,
            anyhow::anyhow!("cancelled"),
        ))
    }
}
