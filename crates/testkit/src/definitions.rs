//! Bundle definition folders for packager tests: one component whose one Deployment runs every
//! image the definition carries.

use std::io;
use std::path::Path;

/// Writes `dir/airlift.yaml` (bundle `name` 1.0.0 for `platforms`) and
/// `dir/manifests/deploy.yaml`. Each image is its reference and the YAML of its `source` (empty:
/// pulled by its reference), e.g. `{ociLayout: {path: images/layout, tag: api}}`.
pub fn write_definition(
    dir: &Path,
    name: &str,
    platforms: &[&str],
    images: &[(&str, &str)],
) -> io::Result<()> {
    std::fs::create_dir_all(dir.join("manifests"))?;
    let platforms = platforms.join(", ");
    let list: String = images
        .iter()
        .map(|(reference, source)| match *source {
            "" => format!("      - reference: {reference}\n"),
            source => format!("      - reference: {reference}\n        source: {source}\n"),
        })
        .collect();
    std::fs::write(
        dir.join("airlift.yaml"),
        format!(
            "apiVersion: airlift.dev/v1alpha1
kind: BundleDefinition
metadata: {{name: {name}, version: 1.0.0, vendor: Acme}}
requirements:
  kubernetes: \">=1.28.0\"
  platforms: [{platforms}]
components:
  - name: app
    description: the app
    layer: workload
    manifests: [manifests]
    images:
{list}"
        ),
    )?;
    let containers: String = images
        .iter()
        .enumerate()
        .map(|(i, (reference, _))| format!("        - {{name: c{i}, image: \"{reference}\"}}\n"))
        .collect();
    std::fs::write(
        dir.join("manifests/deploy.yaml"),
        format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: app}}
spec:
  selector: {{matchLabels: {{app: app}}}}
  template:
    metadata: {{labels: {{app: app}}}}
    spec:
      containers:
{containers}"
        ),
    )
}
