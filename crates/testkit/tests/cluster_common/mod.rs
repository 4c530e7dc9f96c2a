//! Helpers shared by the test cluster's integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use airlift_testkit::cluster::TestCluster;
use serde_json::Value;

/// An HTTPS client that trusts only the cluster's CA and sends its bearer token.
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn new(cluster: &TestCluster) -> Api {
        let ca = reqwest::Certificate::from_pem(cluster.ca_pem().as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .build()
            .unwrap();
        Api {
            client,
            base: cluster.url().to_string(),
            token: cluster.token().to_string(),
        }
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }

    async fn send(rb: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = rb.send().await.unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (code, v)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        Self::send(self.req(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        Self::send(self.req(reqwest::Method::POST, path).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        Self::send(self.req(reqwest::Method::PUT, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        Self::send(self.req(reqwest::Method::DELETE, path)).await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> (u16, Value) {
        Self::send(
            self.req(reqwest::Method::PATCH, path)
                .header("content-type", content_type)
                .body(body.to_string()),
        )
        .await
    }

    /// Server-side apply as `manager`.
    pub async fn apply(
        &self,
        path: &str,
        manager: &str,
        force: bool,
        body: &Value,
    ) -> (u16, Value) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{path}{sep}fieldManager={manager}&force={force}");
        self.patch(&url, "application/apply-patch+yaml", body).await
    }

    /// Polls `path` until `pred` holds on the object, or panics after `timeout` with the last value.
    pub async fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let (code, v) = self.get(path).await;
            if code == 200 && pred(&v) {
                return v;
            }
            if start.elapsed() > timeout {
                panic!("timed out waiting on {path}; last ({code}): {v:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn create_namespace(&self, name: &str) {
        let (code, v) = self
            .post(
                "/api/v1/namespaces",
                &serde_json::json!({"metadata": {"name": name}}),
            )
            .await;
        assert_eq!(code, 201, "{v}");
    }
}
