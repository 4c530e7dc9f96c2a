//! The `scale` subresource of Deployments, StatefulSets and ReplicaSets: an `autoscaling/v1`
//! Scale whose `spec.replicas` writes through to the object, recorded in managedFields as an
//! `Update` with `subresource: scale` (what `kubectl scale` and the HPA leave behind).

use serde_json::{json, Value};

use super::apply::{self, Part};
use super::meta::ApiError;
use super::resources::ResourceType;
use super::state::{State, WriteOpts};

/// The Scale of a workload, as `GET .../scale` returns it.
pub(crate) fn scale_of(obj: &Value) -> Value {
    let labels = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let mut metadata = json!({});
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj["metadata"].get(k) {
            metadata[k] = v.clone();
        }
    }
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": labels,
        },
    })
}

impl State {
    /// `GET .../scale`.
    pub(crate) fn scale_get(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let obj = self
            .store
            .get(&rt.group, &rt.plural, ns, name)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        Ok(scale_of(obj))
    }

    /// `PUT` or `PATCH .../scale`: `patch` turns the current Scale into the new one.
    pub(crate) fn scale_write(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        patch: impl FnOnce(&mut Value) -> Result<(), ApiError>,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let old = self
            .store
            .get(&rt.group, &rt.plural, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let mut scale = scale_of(&old);
        patch(&mut scale)?;
        let rv = scale["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if !rv.is_empty() && Some(rv) != old["metadata"]["resourceVersion"].as_str() {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name,
                "the object has been modified; please apply your changes to the latest version and try again"));
        }
        let replicas = match scale.pointer("/spec/replicas") {
            Some(Value::Number(n)) if n.as_i64().is_some_and(|r| r >= 0) => n.as_i64().unwrap_or(0),
            other => {
                let shown = other.map(Value::to_string).unwrap_or_else(|| "null".into());
                return Err(ApiError::invalid(
                    "autoscaling",
                    "Scale",
                    name,
                    "spec.replicas",
                    &format!("Invalid value: {shown}: must be greater than or equal to 0"),
                ));
            }
        };
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(replicas);
        apply::record_update(
            &old,
            &mut new,
            &opts.manager,
            &rt.api_version(),
            Part::Scale,
        );
        let out = self.commit_write(rt, &old, new, opts.dry_run)?;
        Ok(scale_of(&out))
    }
}

/// Serves one request on `.../scale`: get, update (PUT a Scale) or patch (merge, strategic
/// merge or JSON patch of the Scale).
pub(crate) fn request(
    st: &mut State,
    rt: &ResourceType,
    (ns, name): (&str, &str),
    verb: &str,
    (media, body): (&str, Value),
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    match verb {
        "get" => st.scale_get(rt, ns, name),
        "update" => st.scale_write(
            rt,
            ns,
            name,
            |s| {
                *s = body;
                Ok(())
            },
            opts,
        ),
        "patch" => {
            let media = media.to_string();
            st.scale_write(
                rt,
                ns,
                name,
                |s| match media.as_str() {
                    "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                        apply::merge_patch(s, &body);
                        Ok(())
                    }
                    "application/json-patch+json" => {
                        apply::json_patch(s, &body).map_err(ApiError::bad_request)
                    }
                    other => Err(ApiError::unsupported_media_type(other)),
                },
                opts,
            )
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
