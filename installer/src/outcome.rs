//! Printing plans and what an operation did: every object created, updated, deleted, kept and
//! adopted.

use airlift_cli::outln;

use airlift_cli::{CommandError, OutputFormat};
use airlift_cluster::lifecycle::Outcome;
use airlift_deploy::PlanReport;

/// Prints the lines of `outcome` under a heading already printed.
pub fn print_outcome(outcome: &Outcome) -> std::io::Result<()> {
    let counts = [
        ("created", outcome.created.len()),
        ("changed", outcome.changed.len()),
        ("unchanged", outcome.unchanged.len()),
        ("replaced", outcome.replaced.len()),
        ("deleted", outcome.deleted.len()),
        ("kept", outcome.kept.len()),
    ]
    .map(|(what, n)| format!("{n} {what}"));
    outln!("  objects: {}", counts.join(", "))?;
    for (what, list) in [
        ("created", &outcome.created),
        ("changed", &outcome.changed),
        ("deleted", &outcome.deleted),
    ] {
        for o in list.iter() {
            outln!("    {what} {o}")?;
        }
    }
    for r in &outcome.replaced {
        outln!("    replaced {}: {}", r.object, r.causes.join("; "))?;
    }
    for k in &outcome.kept {
        outln!("    kept {}: {}", k.object, k.reason)?;
    }
    for a in &outcome.adopted {
        outln!("    adopted {a}")?;
    }
    Ok(())
}

/// Prints a plan as text.
pub fn print_plan(plan: &PlanReport) -> std::io::Result<()> {
    match &plan.from {
        Some(from) => outln!(
            "Plan for release {} in namespace {}: {} {} -> {} {}",
            plan.release,
            plan.namespace,
            from.name,
            from.version,
            plan.to.name,
            plan.to.version
        )?,
        None => outln!(
            "Plan for release {} in namespace {} (not installed yet): {} {}",
            plan.release,
            plan.namespace,
            plan.to.name,
            plan.to.version
        )?,
    }
    outln!("{}", plan.objects)?;
    if !plan.values.is_empty() {
        outln!("Values that change:")?;
        for v in &plan.values {
            outln!(
                "  {}: {} -> {} ({})",
                v.key,
                v.from.as_deref().unwrap_or("(unset)"),
                v.to.as_deref().unwrap_or("(unset)"),
                v.reason
            )?;
        }
    }
    if !plan.defaults.is_empty() {
        outln!("SaaS defaults the vendor changed:")?;
        for d in &plan.defaults {
            outln!(
                "  {}: {} -> {}; the site {}",
                d.key,
                d.from.as_deref().unwrap_or("(none)"),
                d.to.as_deref().unwrap_or("(none)"),
                d.site
            )?;
        }
    }
    for key in &plan.dropped {
        outln!("  note: the site's value for `{key}` is dropped: the new bundle has no such key")?;
    }
    Ok(())
}

/// Prints a `--dry-run`: the plan, and that preflight passed and nothing changed.
pub fn print_dry_run(plan: &PlanReport, output: OutputFormat) -> Result<(), CommandError> {
    match output {
        f @ (OutputFormat::Json | OutputFormat::Yaml) => {
            airlift_cli::print_as(f, &serde_json::json!({"dryRun": true, "plan": plan}))?
        }
        OutputFormat::Text => {
            print_plan(plan)?;
            outln!("Dry run: preflight passed; nothing was changed.")?;
        }
    }
    Ok(())
}
