//! The fleet file of the operator guide's "Fleet rollouts" section is a real file that parses
//! and validates, and the guide shows it as it is.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use airlift_fleet::model::OnFailure;
use airlift_fleet::Fleet;

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/fleet-three-clouds.yaml")
}

#[test]
fn the_three_cloud_example_parses_and_validates() {
    let path = example();
    let fleet = Fleet::load(&path).unwrap();
    let resolved = fleet.resolve(&path).unwrap();
    let stages: Vec<(&str, Vec<&str>)> = resolved
        .stages
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.clusters
                    .iter()
                    .map(|&i| resolved.clusters[i].name.as_str())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        vec![
            ("canary", vec!["aws-eu-canary"]),
            ("aws", vec!["aws-eu-1", "aws-us-1"]),
            (
                "everywhere-else",
                vec!["gcp-eu-1", "azure-eu-1", "onprem-dc1"]
            ),
        ]
    );
    assert_eq!(resolved.stages[2].on_failure, OnFailure::Continue);
    assert_eq!(resolved.stages[0].bake_time.as_secs(), 1800);
    let providers: std::collections::BTreeSet<&str> = resolved
        .clusters
        .iter()
        .filter_map(|c| c.labels.get("provider").map(String::as_str))
        .collect();
    assert!(["aws", "gcp", "azure"]
        .iter()
        .all(|p| providers.contains(p)));
}

#[test]
fn the_operator_guide_shows_the_example_file_as_it_is() {
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operator-guide.md"),
    )
    .unwrap();
    let file = std::fs::read_to_string(example()).unwrap();
    let body: String = file
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        guide.contains(&body),
        "docs/operator-guide.md must show docs/examples/fleet-three-clouds.yaml (without its \
         comment lines) in its \"Fleet rollouts\" section"
    );
}
