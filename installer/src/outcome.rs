//! Printing what an operation did: every object created, updated, deleted, kept and adopted.

use airlift_cluster::lifecycle::Outcome;

/// Prints the lines of `outcome` under a heading already printed.
pub fn print_outcome(outcome: &Outcome) {
    let groups = [
        ("created", &outcome.created),
        ("updated", &outcome.updated),
        ("deleted", &outcome.deleted),
    ];
    let counts: Vec<String> = groups
        .iter()
        .map(|(what, list)| format!("{} {what}", list.len()))
        .chain(std::iter::once(format!("{} kept", outcome.kept.len())))
        .collect();
    println!("  objects: {}", counts.join(", "));
    for (what, list) in [("created", &outcome.created), ("deleted", &outcome.deleted)] {
        for o in list.iter() {
            println!("    {what} {o}");
        }
    }
    for k in &outcome.kept {
        println!("    kept {}: {}", k.object, k.reason);
    }
    for a in &outcome.adopted {
        println!("    adopted {a}");
    }
}
