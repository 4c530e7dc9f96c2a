//! `?watch=true`: a stream of `{"type": ..., "object": ...}` lines, resumable from a recent
//! resourceVersion.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};

use super::lock;
use super::meta::ApiError;
use super::resources::ResourceType;
use super::server::{Body, Query};
use super::state::{State, WatchEvent};
use super::store::{FieldSelector, LabelSelector};

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// Starts a watch on `rt` (in `ns`, or all namespaces) as described by the query.
pub(crate) fn respond(
    state: Arc<Mutex<State>>,
    rt: &ResourceType,
    ns: Option<&str>,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let from: Option<u64> = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))
        })
        .transpose()?;
    let bucket = (rt.group.clone(), rt.plural.clone());
    let ns = ns.map(String::from);
    let matches = move |ev: &WatchEvent| {
        ev.bucket == bucket
            && ns
                .as_deref()
                .is_none_or(|n| ev.object["metadata"]["namespace"] == n)
            && labels.matches(&ev.object)
            && fields.matches(&ev.object)
    };
    let api_version = rt.api_version();
    let kind = rt.kind.clone();
    let versioned = move |mut o: Value| {
        o["apiVersion"] = api_version.clone().into();
        o["kind"] = kind.clone().into();
        o
    };

    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let (initial, mut live) = {
        let st = lock(&state);
        let live = st.watch_tx.subscribe();
        let mut initial = Vec::new();
        match from {
            None => {
                for o in st.store.list(&rt.group, &rt.plural, None) {
                    let ev = WatchEvent {
                        bucket: (rt.group.clone(), rt.plural.clone()),
                        kind: "ADDED",
                        object: o.clone(),
                        rv: 0,
                    };
                    if matches(&ev) {
                        initial.push(line("ADDED", &versioned(o.clone())));
                    }
                }
            }
            Some(rv) => {
                let oldest = st
                    .history
                    .front()
                    .map_or(st.store.current_rv(), |e| e.rv.saturating_sub(1));
                if rv < oldest {
                    let status = ApiError::gone(rv).to_status();
                    initial.push(line("ERROR", &status));
                } else {
                    for ev in st.history.iter().filter(|e| e.rv > rv && matches(e)) {
                        initial.push(line(ev.kind, &versioned(ev.object.clone())));
                    }
                }
            }
        }
        (initial, live)
    };
    let last_sent = from.unwrap_or(0);
    tokio::spawn(async move {
        for b in initial {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            let ev = tokio::select! {
                _ = &mut deadline => return,
                ev = live.recv() => ev,
            };
            match ev {
                Ok(ev) if ev.rv > last_sent && matches(&ev) => {
                    if tx.send(line(ev.kind, &versioned(ev.object))).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx
                        .send(line("ERROR", &ApiError::gone(last_sent).to_status()))
                        .await;
                    return;
                }
                Err(_) => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

impl ApiError {
    /// 410 Gone: the resourceVersion is older than the kept history.
    pub(crate) fn gone(rv: u64) -> Self {
        ApiError {
            code: 410,
            reason: "Expired",
            message: format!("too old resource version: {rv}"),
            details: None,
        }
    }
}
