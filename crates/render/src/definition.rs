//! Loading a bundle definition folder: `airlift.yaml`, validated, with every component's manifest
//! files found.
//!
//! A manifest entry is a file or a folder, relative to the definition's folder. A file is taken
//! whatever its name. A folder is walked recursively and contributes its `.yaml` and `.yml` files,
//! sorted by path; names starting with `.` are skipped. Every file is a template. A path (or a
//! symlink) that leads outside the definition's folder is rejected.

use std::path::{Path, PathBuf};

use airlift_bundle::schema::definition::{BundleDefinition, ImageSource};
use airlift_bundle::schema::validate::{validate_definition, DefinitionInvalid, Problem};

use crate::reference::ImageRef;

/// The definition's file name inside its folder.
pub const DEFINITION_FILE: &str = "airlift.yaml";

/// Errors from loading a definition folder.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// A file or folder could not be read.
    #[error("cannot read `{path}`")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The definition is over its size or nesting bound.
    #[error("`{path}` is refused before it is parsed")]
    Limit {
        /// The definition file.
        path: PathBuf,
        /// The bound it broke.
        #[source]
        source: airlift_bundle::LimitError,
    },
    /// `airlift.yaml` does not match the schema.
    #[error("`{path}` is not a valid bundle definition")]
    Parse {
        /// The definition file.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: serde_yaml::Error,
    },
    /// The definition parses but breaks rules.
    #[error("`{path}` is invalid")]
    Invalid {
        /// The definition file.
        path: PathBuf,
        /// Every problem.
        #[source]
        source: DefinitionInvalid,
    },
    /// A manifest entry names nothing.
    #[error("component `{component}`: manifest path `{path}` does not exist")]
    ManifestMissing {
        /// The component.
        component: String,
        /// The entry, relative to the definition's folder.
        path: PathBuf,
    },
    /// A manifest entry (or a symlink under it) leads outside the definition's folder.
    #[error(
        "component `{component}`: manifest path `{path}` leads outside the definition's folder"
    )]
    ManifestEscapes {
        /// The component.
        component: String,
        /// The offending path, relative to the definition's folder.
        path: PathBuf,
    },
    /// A manifest folder holds no `.yaml` or `.yml` file.
    #[error("component `{component}`: manifest folder `{path}` holds no .yaml or .yml file")]
    ManifestFolderEmpty {
        /// The component.
        component: String,
        /// The folder, relative to the definition's folder.
        path: PathBuf,
    },
}

/// One manifest template of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// The path relative to the definition's folder, `/`-separated: how errors name it.
    pub rel_path: String,
    /// The file on disk.
    pub path: PathBuf,
}

/// A component with its manifest files, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedComponent {
    /// The component's name.
    pub name: String,
    /// Its manifest templates: entries in definition order, folders expanded and sorted.
    pub manifests: Vec<ManifestFile>,
}

/// A validated definition and its manifest files.
#[derive(Debug, Clone)]
pub struct LoadedDefinition {
    /// The definition's folder.
    pub dir: PathBuf,
    /// The definition.
    pub definition: BundleDefinition,
    /// The components, in definition order, with their manifest files.
    pub components: Vec<LoadedComponent>,
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> DefinitionError + '_ {
    move |source| DefinitionError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Parses and validates `airlift.yaml` text; `path` names it in errors.
pub fn parse_definition(path: &Path, text: &str) -> Result<BundleDefinition, DefinitionError> {
    let label = path.display().to_string();
    airlift_bundle::check_nesting(text.as_bytes(), &label, airlift_bundle::limits::MAX_NESTING)
        .map_err(|source| DefinitionError::Limit {
            path: path.to_path_buf(),
            source,
        })?;
    let def: BundleDefinition =
        serde_yaml::from_str(text).map_err(|source| DefinitionError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    let mut problems = match validate_definition(&def) {
        Ok(()) => Vec::new(),
        Err(e) => e.problems,
    };
    problems.extend(reference_problems(&def));
    if !problems.is_empty() {
        return Err(DefinitionError::Invalid {
            path: path.to_path_buf(),
            source: DefinitionInvalid { problems },
        });
    }
    Ok(def)
}

/// Image references (and registry sources) that do not parse.
fn reference_problems(def: &BundleDefinition) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, c) in def.components.iter().enumerate() {
        for (j, img) in c.images.iter().enumerate() {
            let at = format!("components[{i}].images[{j}]");
            if let Err(e) = ImageRef::parse(&img.reference) {
                out.push(Problem {
                    path: format!("{at}.reference"),
                    message: e.to_string(),
                });
            }
            if let Some(ImageSource::Registry(r)) = &img.source {
                if let Err(e) = ImageRef::parse(r) {
                    out.push(Problem {
                        path: format!("{at}.source.registry"),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    out
}

/// Loads `DIR/airlift.yaml`, validates it and lists every component's manifest files.
pub fn load_definition(dir: &Path) -> Result<LoadedDefinition, DefinitionError> {
    let file = dir.join(DEFINITION_FILE);
    let text = airlift_bundle::read_bounded_string(&file, airlift_bundle::limits::MAX_DOCUMENT)
        .map_err(|e| match e {
            airlift_bundle::LimitError::Io { source, .. } => read_err(&file)(source),
            other => DefinitionError::Limit {
                path: file.clone(),
                source: other,
            },
        })?;
    let definition = parse_definition(&file, &text)?;
    let root = fs_err::canonicalize(dir).map_err(read_err(dir))?;
    let mut components = Vec::new();
    for c in &definition.components {
        let mut manifests = Vec::new();
        for entry in &c.manifests {
            expand_entry(&root, &c.name, entry, &mut manifests)?;
        }
        components.push(LoadedComponent {
            name: c.name.clone(),
            manifests,
        });
    }
    Ok(LoadedDefinition {
        dir: dir.to_path_buf(),
        definition,
        components,
    })
}

/// Resolves `rel` under `root`, following symlinks, and checks it stays inside.
fn inside(root: &Path, component: &str, rel: &Path) -> Result<PathBuf, DefinitionError> {
    let joined = root.join(rel);
    let real = match std::fs::canonicalize(&joined) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DefinitionError::ManifestMissing {
                component: component.to_string(),
                path: rel.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(DefinitionError::Read {
                path: joined,
                source,
            })
        }
    };
    if !real.starts_with(root) {
        return Err(DefinitionError::ManifestEscapes {
            component: component.to_string(),
            path: rel.to_path_buf(),
        });
    }
    Ok(real)
}

fn rel_string(rel: &Path) -> String {
    rel.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn expand_entry(
    root: &Path,
    component: &str,
    entry: &Path,
    out: &mut Vec<ManifestFile>,
) -> Result<(), DefinitionError> {
    let real = inside(root, component, entry)?;
    if real.is_file() {
        out.push(ManifestFile {
            rel_path: rel_string(entry),
            path: real,
        });
        return Ok(());
    }
    let mut found = Vec::new();
    walk(root, component, entry, &mut found)?;
    if found.is_empty() {
        return Err(DefinitionError::ManifestFolderEmpty {
            component: component.to_string(),
            path: entry.to_path_buf(),
        });
    }
    found.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    out.extend(found);
    Ok(())
}

fn walk(
    root: &Path,
    component: &str,
    rel_dir: &Path,
    out: &mut Vec<ManifestFile>,
) -> Result<(), DefinitionError> {
    let dir = root.join(rel_dir);
    let entries = std::fs::read_dir(&dir).map_err(read_err(&dir))?;
    for e in entries {
        let e = e.map_err(read_err(&dir))?;
        let name = e.file_name();
        let name_str = name.to_string_lossy();
        if name_str.starts_with('.') {
            continue;
        }
        let rel = rel_dir.join(&name);
        let real = inside(root, component, &rel)?;
        if real.is_dir() {
            walk(root, component, &rel, out)?;
        } else if name_str.ends_with(".yaml") || name_str.ends_with(".yml") {
            out.push(ManifestFile {
                rel_path: rel_string(&rel),
                path: real,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEF: &str = r#"
apiVersion: airlift.dev/v1alpha1
kind: BundleDefinition
metadata: {name: t, version: 0.1.0, vendor: T}
requirements: {kubernetes: ">=1.28.0", platforms: [linux/amd64]}
components:
  - {name: a, description: A, layer: distro, manifests: [base.yaml, more]}
"#;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn folders_expand_sorted_and_filtered() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "airlift.yaml", DEF);
        write(d.path(), "base.yaml", "");
        write(d.path(), "more/b.yml", "");
        write(d.path(), "more/a.yaml", "");
        write(d.path(), "more/sub/c.yaml", "");
        write(d.path(), "more/README.md", "");
        write(d.path(), "more/.hidden.yaml", "");
        let loaded = load_definition(d.path()).unwrap();
        let files: Vec<&str> = loaded.components[0]
            .manifests
            .iter()
            .map(|m| m.rel_path.as_str())
            .collect();
        assert_eq!(
            files,
            ["base.yaml", "more/a.yaml", "more/b.yml", "more/sub/c.yaml"]
        );
    }

    #[test]
    fn missing_and_escaping_paths_are_named() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "airlift.yaml", DEF);
        let e = load_definition(d.path()).unwrap_err().to_string();
        assert_eq!(e, "component `a`: manifest path `base.yaml` does not exist");
        write(d.path(), "base.yaml", "");
        std::fs::create_dir_all(d.path().join("more")).unwrap();
        let e = load_definition(d.path()).unwrap_err().to_string();
        assert!(e.contains("manifest folder `more` holds no .yaml"), "{e}");
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "evil.yaml", "");
        std::os::unix::fs::symlink(
            outside.path().join("evil.yaml"),
            d.path().join("more/x.yaml"),
        )
        .unwrap();
        let e = load_definition(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("manifest path `more/x.yaml` leads outside"),
            "{e}"
        );
    }

    #[test]
    fn schema_and_rule_errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "airlift.yaml",
            &DEF.replace("kind: BundleDefinition", "kind: BundleDefinition\nextra: 1"),
        );
        let e = load_definition(d.path()).unwrap_err();
        assert!(matches!(e, DefinitionError::Parse { .. }));
        let src = std::error::Error::source(&e).unwrap().to_string();
        assert!(src.contains("extra"), "{src}");
        let bad = DEF.replace("0.1.0", "one").replace(
            "manifests: [base.yaml, more]",
            "manifests: [base.yaml, more], images: [{reference: \"Acme/App:1\", source: {registry: \"x@md5:1\"}}]",
        );
        write(d.path(), "airlift.yaml", &bad);
        let e = load_definition(d.path()).unwrap_err();
        assert!(e.to_string().ends_with("airlift.yaml` is invalid"));
        let src = std::error::Error::source(&e).unwrap().to_string();
        assert!(src.contains("metadata.version"), "{src}");
        assert!(
            src.contains("components[0].images[0].reference: image `Acme/App:1`"),
            "{src}"
        );
        assert!(
            src.contains("components[0].images[0].source.registry: image `x@md5:1`"),
            "{src}"
        );
    }
}
