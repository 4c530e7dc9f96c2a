//! A minimal OpenAPI v3 discovery: `/openapi/v3` and one document per group/version listing each
//! resource's paths with their `x-kubernetes-group-version-kind` and query parameters.
//!
//! kubectl reads this to learn that the server validates fields itself (`fieldValidation`), so it
//! skips client-side schema validation. No object schemas are served.

use serde_json::{json, Map, Value};

use super::meta;
use super::resources::{ResourceType, Resources};

fn gv_path(t: &ResourceType) -> String {
    if t.group.is_empty() {
        format!("api/{}", t.version)
    } else {
        format!("apis/{}/{}", t.group, t.version)
    }
}

/// `GET /openapi/v3`: the group/version index.
pub(crate) fn index(resources: &Resources) -> Value {
    let mut paths = Map::new();
    for t in resources.all() {
        let p = gv_path(t);
        if paths.contains_key(&p) {
            continue;
        }
        let doc = group_version(resources, &p);
        let hash = doc.as_ref().map(meta::short_hash).unwrap_or_default();
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// `GET /openapi/v3/<api/v1 | apis/g/v>`: paths of every resource in that group/version.
pub(crate) fn group_version(resources: &Resources, gv: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = resources
        .all()
        .iter()
        .filter(|t| gv_path(t) == gv)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for t in types {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let ok = json!({"200": {"description": "OK"}});
        let write_params = json!([
            param("dryRun"),
            param("fieldManager"),
            param("fieldValidation"),
            param("force")
        ]);
        let prefix = if t.namespaced {
            format!("/{gv}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("/{gv}/{}", t.plural)
        };
        let op = |id: &str, params: &Value| {
            json!({"operationId": format!("{id}{}", t.kind), "x-kubernetes-group-version-kind": gvk,
                "x-kubernetes-action": id, "parameters": params, "responses": ok})
        };
        if t.create_only {
            paths.insert(prefix, json!({"post": op("create", &write_params)}));
            continue;
        }
        let list_params = json!([
            param("labelSelector"),
            param("fieldSelector"),
            param("watch"),
            param("resourceVersion")
        ]);
        paths.insert(
            prefix.clone(),
            json!({"get": op("list", &list_params), "post": op("create", &write_params)}),
        );
        let item = json!({"get": op("read", &json!([])), "put": op("replace", &write_params),
            "patch": op("patch", &write_params), "delete": op("delete", &json!([param("dryRun"), param("propagationPolicy")]))});
        paths.insert(format!("{prefix}/{{name}}"), item);
        if t.status {
            let status = json!({"get": op("read", &json!([])), "put": op("replace", &write_params),
                "patch": op("patch", &write_params)});
            paths.insert(format!("{prefix}/{{name}}/status"), status);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
