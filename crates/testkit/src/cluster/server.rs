//! HTTPS serving, authentication, routing and content negotiation.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::apply::Part;
use super::meta::{self, ApiError};
use super::rbac::{Attributes, User};
use super::resources::ResourceType;
use super::state::{State, WriteOpts};
use super::store::{FieldSelector, LabelSelector};
use super::{lock, openapi, table, watch, RequestRecord};

/// The response body type: whole JSON documents, or a watch stream.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

const MAX_BODY: usize = 3 * 1024 * 1024;

/// The HTTP side of the test cluster.
pub(crate) struct Server {
    pub state: Arc<Mutex<State>>,
    pub token: String,
    /// Tokens of the extra users, and their names.
    pub users: Vec<(String, String)>,
    pub address: String,
    /// Print each request to stderr.
    pub log: bool,
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

/// A request parsed from its URL.
#[derive(Debug)]
enum Route {
    Version,
    Api,
    Apis,
    Group(String),
    ResourceList(String, String),
    Health,
    OpenApi(String),
    Resource {
        group: String,
        version: String,
        ns: Option<String>,
        plural: String,
        name: Option<String>,
        sub: Option<String>,
    },
}

fn parse_route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Some(Route::Version),
        ["healthz"] | ["readyz"] | ["livez"] => return Some(Route::Health),
        ["api"] => return Some(Route::Api),
        ["openapi", "v3", rest @ ..] => return Some(Route::OpenApi(rest.join("/"))),
        ["apis"] => return Some(Route::Apis),
        ["apis", g] => return Some(Route::Group(g.to_string())),
        ["api", v] => return Some(Route::ResourceList(String::new(), v.to_string())),
        ["apis", g, v] => return Some(Route::ResourceList(g.to_string(), v.to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, r, tail @ ..] if *r != "status" && *r != "finalize" => {
            (Some(ns.to_string()), [&[*r][..], tail].concat())
        }
        other => (None, other.to_vec()),
    };
    if rest.is_empty() || rest.len() > 3 || rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(Route::Resource {
        group: group.to_string(),
        version: version.to_string(),
        ns,
        plural: rest[0].to_string(),
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    })
}

/// Query parameters, decoded.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Self {
        Query(
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1"))
    }
}

impl Server {
    /// Accepts TLS connections until `shutdown` fires.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
        mut shutdown: tokio::sync::oneshot::Receiver<()>,
    ) {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let server = Arc::new(self);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => return,
                a = listener.accept() => a,
            };
            let Ok((tcp, _)) = accepted else { continue };
            let acceptor = acceptor.clone();
            let server = server.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.handle(req).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let _ = builder
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let resp = self.route(req).await;
        if self.log {
            let q = if query.is_empty() {
                String::new()
            } else {
                format!("?{query}")
            };
            eprintln!("{method} {path}{q} -> {}", resp.status().as_u16());
        }
        lock(&self.state).requests.push(RequestRecord {
            method,
            path,
            query,
            status: resp.status().as_u16(),
        });
        resp
    }

    /// The user whose bearer token the request carries.
    fn authenticate(&self, req: &Request<Incoming>) -> Option<User> {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))?
            .trim();
        if token == self.token {
            return Some(User::Admin);
        }
        self.users
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, name)| User::Named(name.clone()))
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Body> {
        let Some(user) = self.authenticate(&req) else {
            return error_response(&ApiError::unauthorized());
        };
        let Some(route) = parse_route(req.uri().path()) else {
            return error_response(&ApiError::no_route());
        };
        let state = &self.state;
        match route {
            Route::Version => {
                let version = lock(state).version.clone();
                json_response(200, &version_info(&version))
            }
            Route::Health => {
                let mut r = Response::new(full("ok"));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain"),
                );
                r
            }
            // Aggregated discovery is not offered: the answer is legacy discovery with
            // `Content-Type: application/json`, which clients take as "fall back".
            Route::OpenApi(gv) => {
                let st = lock(state);
                if gv.is_empty() {
                    return json_response(200, &openapi::index(&st.resources));
                }
                match openapi::group_version(&st.resources, &gv) {
                    Some(doc) => json_response(200, &doc),
                    None => error_response(&ApiError::no_route()),
                }
            }
            Route::Api => json_response(200, &lock(state).resources.api_versions(&self.address)),
            Route::Apis => json_response(200, &lock(state).resources.api_group_list()),
            Route::Group(g) => match lock(state).resources.api_group(&g) {
                Some(v) => json_response(200, &v),
                None => error_response(&ApiError::no_route()),
            },
            Route::ResourceList(g, v) => match lock(state).resources.api_resource_list(&g, &v) {
                Some(list) => json_response(200, &list),
                None => error_response(&ApiError::no_route()),
            },
            Route::Resource {
                group,
                version,
                ns,
                plural,
                name,
                sub,
            } => {
                let rt = lock(state)
                    .resources
                    .find(&group, &version, &plural)
                    .cloned();
                let Some(rt) = rt else {
                    return error_response(&ApiError::no_route());
                };
                match self.resource(req, &user, &rt, (ns, name, sub)).await {
                    Ok(r) => r,
                    Err(e) => error_response(&e),
                }
            }
        }
    }

    async fn resource(
        &self,
        req: Request<Incoming>,
        user: &User,
        rt: &ResourceType,
        (ns, name, sub): (Option<String>, Option<String>, Option<String>),
    ) -> Result<Response<Body>, ApiError> {
        if rt.namespaced != ns.is_some()
            && !(rt.namespaced && name.is_none() && req.method() == Method::GET)
        {
            return Err(if rt.namespaced {
                ApiError::method_not_allowed()
            } else {
                ApiError::no_route()
            });
        }
        let is_log = sub.as_deref() == Some("log") && rt.group.is_empty() && rt.plural == "pods";
        let part = match sub.as_deref() {
            None => Part::Main {
                has_status: rt.status,
            },
            Some("status") if rt.status => Part::Status,
            Some("scale") if rt.has_scale() && name.is_some() => Part::Scale,
            Some("log") if is_log && req.method() == Method::GET => {
                Part::Main { has_status: false }
            }
            Some(_) => return Err(ApiError::no_route()),
        };
        let query = Query::parse(req.uri().query().unwrap_or_default());
        let accept = header_str(&req, header::ACCEPT);
        let content_type = header_str(&req, header::CONTENT_TYPE);
        let user_agent = header_str(&req, header::USER_AGENT);
        let method = req.method().clone();
        let verb = match (&method, name.is_some()) {
            (&Method::GET, false) if query.flag("watch") => "watch",
            (&Method::GET, false) => "list",
            (&Method::GET, true) => "get",
            (&Method::POST, false) => "create",
            (&Method::PUT, true) => "update",
            (&Method::PATCH, true) => "patch",
            (&Method::DELETE, true) => "delete",
            (&Method::DELETE, false) => "deletecollection",
            _ => return Err(ApiError::method_not_allowed()),
        };
        if rt.create_only && verb != "create" {
            return Err(ApiError::method_not_allowed());
        }
        let nsname = ns.clone().unwrap_or_default();
        let allowed = rt.create_only
            || lock(&self.state).authorize(
                user,
                &Attributes {
                    verb,
                    group: &rt.group,
                    resource: &rt.plural,
                    subresource: sub.as_deref().unwrap_or_default(),
                    namespace: &nsname,
                    name: name.as_deref().unwrap_or_default(),
                },
            );
        if !allowed {
            return Err(forbidden(user, rt, verb, name.as_deref(), &nsname));
        }
        if is_log {
            let text = super::logs::pod_log(
                &lock(&self.state),
                &nsname,
                &name.unwrap_or_default(),
                &query,
            )?;
            let mut r = Response::new(full(text));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain"),
            );
            return Ok(r);
        }
        let body = read_body(req).await?;
        let opts = WriteOpts {
            dry_run: query.get("dryRun") == Some("All"),
            manager: query
                .get("fieldManager")
                .map(String::from)
                .unwrap_or_else(|| {
                    user_agent
                        .split('/')
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(128)
                        .collect()
                }),
            force: query.flag("force"),
        };
        let name_str = name.clone().unwrap_or_default();
        let mut st = lock(&self.state);
        if part == Part::Scale {
            let body = if verb == "get" {
                Value::Null
            } else {
                parse_body(&body, &content_type)?
            };
            let media = content_type.split(';').next().unwrap_or_default().trim();
            let out = super::scale::request(
                &mut st,
                rt,
                (&nsname, &name_str),
                verb,
                (media, body),
                &opts,
            )?;
            return Ok(json_response(200, &out));
        }
        match verb {
            "watch" => {
                drop(st);
                watch::respond(self.state.clone(), rt, ns.as_deref(), &query)
            }
            "get" => {
                let obj = st.get(rt, &nsname, &name_str)?;
                Ok(render(
                    rt,
                    vec![obj],
                    &accept,
                    &query,
                    false,
                    st.store.current_rv(),
                ))
            }
            "list" => {
                let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
                    .map_err(ApiError::bad_request)?;
                let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or_default())
                    .map_err(ApiError::bad_request)?;
                let list = st.list(rt, ns.as_deref(), &labels, &fields);
                if accept.contains("as=Table") || accept.contains("as=PartialObjectMetadataList") {
                    let items = list["items"].as_array().cloned().unwrap_or_default();
                    return Ok(render(
                        rt,
                        items,
                        &accept,
                        &query,
                        true,
                        st.store.current_rv(),
                    ));
                }
                Ok(json_response(200, &list))
            }
            "create" => {
                let body = parse_body(&body, &content_type)?;
                if rt.create_only {
                    return Ok(json_response(201, &review(&st, user, rt, body)));
                }
                let obj = st.create(rt, &nsname, body, &opts)?;
                Ok(json_response(201, &obj))
            }
            "update" => {
                let body = parse_body(&body, &content_type)?;
                let obj = st.replace(rt, &nsname, &name_str, body, &opts, part)?;
                Ok(json_response(200, &obj))
            }
            "patch" => {
                let body = parse_body(&body, &content_type)?;
                let media = content_type
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                let (obj, created) =
                    st.patch(rt, &nsname, &name_str, (&media, body), &opts, part)?;
                Ok(json_response(if created { 201 } else { 200 }, &obj))
            }
            "delete" => {
                let delete_opts = if body.is_empty() {
                    json!({})
                } else {
                    parse_body(&body, &content_type)?
                };
                let propagation = query
                    .get("propagationPolicy")
                    .or(delete_opts["propagationPolicy"].as_str())
                    .unwrap_or("Background")
                    .to_string();
                if !matches!(propagation.as_str(), "Background" | "Foreground" | "Orphan") {
                    return Err(ApiError::invalid("meta.k8s.io", "DeleteOptions", "", "propagationPolicy",
                        &format!("Unsupported value: \"{propagation}\": supported values: \"Foreground\", \"Background\", \"Orphan\"")));
                }
                let dry = opts.dry_run
                    || delete_opts["dryRun"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|v| v == "All"));
                let obj = st.delete(rt, &nsname, &name_str, &propagation, dry)?;
                Ok(json_response(200, &obj))
            }
            _ => {
                // deletecollection
                let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
                    .map_err(ApiError::bad_request)?;
                let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or_default())
                    .map_err(ApiError::bad_request)?;
                let list = st.list(rt, ns.as_deref(), &labels, &fields);
                for item in list["items"].as_array().into_iter().flatten() {
                    let n = item["metadata"]["name"].as_str().unwrap_or_default();
                    let o_ns = item["metadata"]["namespace"].as_str().unwrap_or_default();
                    st.delete(rt, o_ns, n, "Background", opts.dry_run)?;
                }
                Ok(json_response(200, &list))
            }
        }
    }
}

fn header_str(req: &Request<Incoming>, h: header::HeaderName) -> String {
    req.headers()
        .get(h)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large())
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "failed to read the request body: {e}"
        ))),
    }
}

fn parse_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if content_type.contains("protobuf") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    serde_json::from_slice(body).or_else(|json_err| {
        if content_type.contains("yaml") {
            serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        } else {
            Err(ApiError::bad_request(format!(
                "couldn't get version/kind; json parse error: {json_err}"
            )))
        }
    })
}

fn forbidden(user: &User, rt: &ResourceType, verb: &str, name: Option<&str>, ns: &str) -> ApiError {
    let what = match name {
        Some(n) => format!("{} \"{n}\"", meta::qualified(&rt.group, &rt.plural)),
        None => meta::qualified(&rt.group, &rt.plural),
    };
    let scope = if ns.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{ns}\"")
    };
    let mut e = ApiError::forbidden(format!(
        "{what} is forbidden: User \"{}\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
        user.name(), rt.plural, rt.group
    ));
    e.details =
        Some(json!({"name": name.unwrap_or_default(), "group": rt.group, "kind": rt.plural}));
    e
}

fn review(st: &State, user: &User, rt: &ResourceType, body: Value) -> Value {
    match rt.kind.as_str() {
        "SelfSubjectAccessReview" => st.access_review(user, body),
        "SelfSubjectRulesReview" => st.rules_review(user, body),
        _ => {
            json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"creationTimestamp": null},
            "status": {"userInfo": {"username": user.name(), "groups": user.groups()}}})
        }
    }
}

/// Renders objects as requested by `Accept`: a Table, PartialObjectMetadata(List), or JSON.
fn render(
    rt: &ResourceType,
    items: Vec<Value>,
    accept: &str,
    query: &Query,
    list: bool,
    rv: u64,
) -> Response<Body> {
    if accept.contains("as=Table") {
        let include = query.get("includeObject").unwrap_or("Metadata");
        return json_response(200, &table::to_table(rt, &items, include, rv));
    }
    if accept.contains("as=PartialObjectMetadata") {
        let metas: Vec<Value> = items
            .iter()
            .map(|o| json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}))
            .collect();
        if list {
            return json_response(
                200,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": rv.to_string()}, "items": metas}),
            );
        }
        return json_response(200, &metas.into_iter().next().unwrap_or(Value::Null));
    }
    json_response(200, &items.into_iter().next().unwrap_or(Value::Null))
}

/// The `/version` document for `major.minor.patch`.
fn version_info(version: &str) -> Value {
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    // Vendor builds from patched trees (EKS `v1.30.4-eks-a737599`, GKE `v1.30.5-gke.1014001`)
    // report the minor with a `+`, as `"minor": "30+"`.
    let minor = if version.contains('-') {
        format!("{minor}+")
    } else {
        minor.to_string()
    };
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("v{version}"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z",
        "goVersion": "go1.22.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_namespaced_and_cluster_paths() {
        let r = parse_route("/api/v1/namespaces/ns1/configmaps/c1").unwrap();
        assert!(
            matches!(r, Route::Resource { ref ns, ref plural, ref name, .. }
            if ns.as_deref() == Some("ns1") && plural == "configmaps" && name.as_deref() == Some("c1"))
        );
        let r = parse_route("/api/v1/namespaces/ns1").unwrap();
        assert!(
            matches!(r, Route::Resource { ref ns, ref plural, ref name, .. }
            if ns.is_none() && plural == "namespaces" && name.as_deref() == Some("ns1"))
        );
        let r = parse_route("/api/v1/namespaces/ns1/status").unwrap();
        assert!(matches!(r, Route::Resource { ref sub, .. } if sub.as_deref() == Some("status")));
        let r = parse_route("/apis/apps/v1/namespaces/a/deployments/d/status").unwrap();
        assert!(
            matches!(r, Route::Resource { ref group, ref sub, .. } if group == "apps" && sub.as_deref() == Some("status"))
        );
        assert!(matches!(
            parse_route("/apis/apps/v1").unwrap(),
            Route::ResourceList(..)
        ));
        assert!(parse_route("/nope").is_none());
    }

    #[test]
    fn version_info_splits_the_version() {
        let v = version_info("1.28.3");
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "28");
        assert_eq!(v["gitVersion"], "v1.28.3");
    }
}
