//! `GET pods/NAME/log`: what the kubelet would serve, with `container`, `previous` and
//! `tailLines`, and its refusals. The content is a few synthetic lines the test kubelet
//! "wrote" for each run of a container: nothing runs here.

use serde_json::Value;

use super::meta::{self, ApiError};
use super::server::Query;
use super::state::State;

/// The log text of one container of a Pod, or the kubelet's 400 when there is none.
pub(crate) fn pod_log(st: &State, ns: &str, name: &str, query: &Query) -> Result<String, ApiError> {
    let pod = st
        .store
        .get("", "pods", ns, name)
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    let names = |list: &str| -> Vec<String> {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(String::from))
            .collect()
    };
    let (containers, init) = (names("containers"), names("initContainers"));
    let container = match query.get("container") {
        Some(c) => c.to_string(),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    if !containers.contains(&container) && !init.contains(&container) {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .chain(pod["status"]["initContainerStatuses"].as_array())
        .flatten()
        .find(|s| s["name"] == container.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    let image = status["image"].as_str().unwrap_or_default().to_string();
    // Like many programs, the synthetic one prints its command line first.
    let args: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .chain(pod["spec"]["initContainers"].as_array())
        .flatten()
        .find(|c| c["name"] == container.as_str())
        .and_then(|c| c["args"].as_array())
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let started = if args.is_empty() {
        format!("{} starting {container} (image {image})", meta::now())
    } else {
        format!(
            "{} starting {container} (image {image}) with args: {}",
            meta::now(),
            args.join(" ")
        )
    };
    let restarts = status["restartCount"].as_i64().unwrap_or(0);
    let previous = matches!(query.get("previous"), Some("true") | Some("1"));
    let waiting = status["state"]["waiting"]["reason"].as_str();
    let lines: Vec<String> = if previous {
        if restarts == 0 {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            )));
        }
        crashed_run(&container, &started, &status)
    } else {
        match waiting {
            Some("CrashLoopBackOff") => crashed_run(&container, &started, &status),
            Some(reason) => {
                let why = if reason.contains("ImagePull") || reason == "ErrImagePull" {
                    "trying and failing to pull image".to_string()
                } else {
                    reason.to_string()
                };
                return Err(ApiError::bad_request(format!(
                    "container \"{container}\" in pod \"{name}\" is waiting to start: {why}"
                )));
            }
            None if status.is_null() => {
                return Err(ApiError::bad_request(format!(
                    "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
                )))
            }
            None => vec![
                started,
                format!("{} {container} is running", meta::now()),
            ],
        }
    };
    let tail = query
        .get("tailLines")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let skip = lines.len().saturating_sub(tail);
    Ok(lines[skip..].iter().map(|l| format!("{l}\n")).collect())
}

/// The lines of a run that ended with the last terminated state's exit code.
fn crashed_run(container: &str, started: &str, status: &Value) -> Vec<String> {
    let code = status["lastState"]["terminated"]["exitCode"]
        .as_i64()
        .unwrap_or(1);
    vec![
        started.to_string(),
        format!(
            "{} error: {container} cannot start: configuration invalid",
            meta::now()
        ),
        format!("{} {container} exited with code {code}", meta::now()),
    ]
}
