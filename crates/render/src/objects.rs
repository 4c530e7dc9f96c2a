//! Rendered multi-document YAML into Kubernetes objects.

use serde::Deserialize;
use serde_json::Value;

/// A rendered document that is not a Kubernetes object.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The document is not YAML.
    #[error("`{file}` document {index} is not valid YAML")]
    Yaml {
        /// The manifest file.
        file: String,
        /// The document's position in the file, from 1.
        index: usize,
        /// The parser's error, with line and column.
        #[source]
        source: serde_yaml::Error,
    },
    /// The document is not a mapping.
    #[error("`{file}` document {index} is not a Kubernetes object: expected a mapping with apiVersion, kind and metadata.name")]
    NotAnObject {
        /// The manifest file.
        file: String,
        /// The document's position in the file, from 1.
        index: usize,
    },
    /// A required field is missing or empty.
    #[error("`{file}` document {index}{}: `{field}` is missing or not a non-empty string", .kind.as_ref().map(|k| format!(" ({k})")).unwrap_or_default())]
    MissingField {
        /// The manifest file.
        file: String,
        /// The document's position in the file, from 1.
        index: usize,
        /// The object's kind, when known.
        kind: Option<String>,
        /// The missing field: `apiVersion`, `kind` or `metadata.name`.
        field: &'static str,
    },
}

/// A Kubernetes object and where it came from.
#[derive(Clone, PartialEq)]
pub struct K8sObject {
    /// The manifest file it was rendered from.
    pub file: String,
    /// Its document position in that file, from 1.
    pub index: usize,
    /// The object.
    pub value: Value,
}

impl std::fmt::Debug for K8sObject {
    /// Names the object only: its body may hold secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "K8sObject({} {}#{})",
            self.describe(),
            self.file,
            self.index
        )
    }
}

impl K8sObject {
    fn str_at(&self, pointer: &str) -> &str {
        self.value
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `apiVersion`.
    pub fn api_version(&self) -> &str {
        self.str_at("/apiVersion")
    }

    /// `kind`.
    pub fn kind(&self) -> &str {
        self.str_at("/kind")
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.str_at("/metadata/name")
    }

    /// `metadata.namespace`, when set.
    pub fn namespace(&self) -> Option<&str> {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }

    /// `Kind/name` (or `Kind/namespace/name`), for messages.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{}/{}/{}", self.kind(), ns, self.name()),
            None => format!("{}/{}", self.kind(), self.name()),
        }
    }
}

/// Parses every document of a rendered file; empty documents (only comments) are skipped. Each
/// object needs `apiVersion`, `kind` and `metadata.name`.
pub fn parse_objects(file: &str, text: &str) -> Result<Vec<K8sObject>, ObjectError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = Value::deserialize(doc).map_err(|source| ObjectError::Yaml {
            file: file.to_string(),
            index,
            source,
        })?;
        match &value {
            Value::Null => continue,
            Value::Object(_) => {}
            _ => {
                return Err(ObjectError::NotAnObject {
                    file: file.to_string(),
                    index,
                })
            }
        }
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        for (field, pointer) in [
            ("apiVersion", "/apiVersion"),
            ("kind", "/kind"),
            ("metadata.name", "/metadata/name"),
        ] {
            let ok = value
                .pointer(pointer)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.trim().is_empty());
            if !ok {
                return Err(ObjectError::MissingField {
                    file: file.to_string(),
                    index,
                    kind,
                    field,
                });
            }
        }
        out.push(K8sObject {
            file: file.to_string(),
            index,
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documents_and_skips_empty_ones() {
        let text = "# leading comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ns}\n---\n---\n# only a comment\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n";
        let objs = parse_objects("m.yaml", text).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].describe(), "ConfigMap/ns/a");
        assert_eq!(objs[1].kind(), "Deployment");
        assert_eq!(objs[1].api_version(), "apps/v1");
        assert!(objs[1].index > objs[0].index);
    }

    #[test]
    fn errors_name_file_document_and_field() {
        let e = parse_objects("m.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata: {}\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "`m.yaml` document 2 (Secret): `metadata.name` is missing or not a non-empty string"
        );
        let e = parse_objects("m.yaml", "kind: X\nmetadata: {name: a}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`apiVersion` is missing"), "{e}");
        let e = parse_objects("m.yaml", "- a\n- b\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("document 1 is not a Kubernetes object"), "{e}");
        let e = parse_objects("m.yaml", "a: [1\n").unwrap_err();
        assert!(matches!(e, ObjectError::Yaml { index: 1, .. }));
    }

    #[test]
    fn debug_does_not_print_the_body() {
        let o = parse_objects(
            "s.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {pw: hunter2}\n",
        )
        .unwrap();
        assert!(!format!("{o:?}").contains("hunter2"));
    }
}
