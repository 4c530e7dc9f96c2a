//! Writing a real kubeconfig for the test cluster.

use std::path::Path;

use base64::Engine;
use serde_json::json;

use super::ClusterError;

/// The name used for the cluster, the user and the context in the kubeconfig.
pub const CONTEXT_NAME: &str = "airlift-test";

/// Renders a kubeconfig: the cluster's CA data, its server URL and a bearer-token user (the
/// current context), plus one user and context named after each extra user (`(token, name)`).
pub(crate) fn render(
    url: &str,
    ca_pem: &str,
    token: &str,
    extra: &[(String, String)],
) -> Result<String, ClusterError> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut users = vec![json!({"name": CONTEXT_NAME, "user": {"token": token}})];
    let mut contexts = vec![
        json!({"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": "default"}}),
    ];
    for (t, name) in extra {
        users.push(json!({"name": name, "user": {"token": t}}));
        contexts.push(json!({"name": name, "context": {"cluster": CONTEXT_NAME, "user": name, "namespace": "default"}}));
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": url, "certificate-authority-data": ca}}],
        "users": users,
        "contexts": contexts,
        "current-context": CONTEXT_NAME,
        "preferences": {},
    });
    serde_yaml::to_string(&doc).map_err(|e| ClusterError::Kubeconfig(e.to_string()))
}

/// Writes the kubeconfig to `path` with mode 0600 (it holds a credential).
pub(crate) fn write(path: &Path, contents: &str) -> Result<(), ClusterError> {
    let io = |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs_err::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    fs_err::write(&tmp, contents).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    fs_err::rename(&tmp, path).map_err(io)
}
