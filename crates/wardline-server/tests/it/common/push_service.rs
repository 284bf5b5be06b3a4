//! npm `web-push-testing`: a real local Web Push service (RFC 8030) that
//! checks each push's VAPID token against the key the subscription was
//! made with (RFC 8292), decrypts its `aes128gcm` payload (RFC 8291) and
//! keeps it for the test to read. Started per test on a free loopback port.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::{Value, json};

use super::browser::browser_dir;

pub struct PushService {
    child: std::process::Child,
    pub port: u16,
    http: reqwest::Client,
}

impl Drop for PushService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Installed with the browser tests' Node packages (`npm ci` in
/// `tests/browser`); CI fails without it, elsewhere the test is skipped.
pub fn push_service_available() -> bool {
    let ok = browser_dir()
        .join("node_modules/web-push-testing/src/bin/server.js")
        .exists();
    if !ok && std::env::var_os("CI").is_some() {
        panic!("CI must run the Web Push tests: run npm ci in tests/browser");
    }
    if !ok {
        eprintln!("skipping: no web-push-testing in tests/browser/node_modules");
    }
    ok
}

impl PushService {
    pub async fn start() -> PushService {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("node")
            .arg(browser_dir().join("node_modules/web-push-testing/src/bin/server.js"))
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("node runs");
        let s = PushService {
            child,
            port,
            http: reqwest::Client::new(),
        };
        for _ in 0..100 {
            if let Ok(r) = s.http.post(s.url("/status")).send().await
                && r.status().is_success()
            {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("web-push-testing did not start on port {port}");
    }

    /// The origin the server must be allowed to push to (`push.services`):
    /// web-push-testing names its endpoints `http://localhost:<port>/notify/…`.
    pub fn origin(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `POST path` with a JSON body; the answer's `data`.
    async fn call(&self, path: &str, body: Value) -> Value {
        let r: Value = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["data"].clone()
    }

    /// A subscription as a browser's `pushManager.subscribe` makes it with
    /// `vapid_key`: `{endpoint, keys: {p256dh, auth}, clientHash}`.
    pub async fn subscribe(&self, vapid_key: &str) -> Value {
        self.call("/subscribe", json!({ "applicationServerKey": vapid_key }))
            .await
    }

    /// The payloads pushed to a subscription so far, decrypted.
    pub async fn messages(&self, client_hash: &str) -> Vec<String> {
        let data = self
            .call("/get-notifications", json!({ "clientHash": client_hash }))
            .await;
        serde_json::from_value(data["messages"].clone()).unwrap()
    }

    /// The browser dropped the subscription: pushes to it now get 410 Gone.
    pub async fn expire(&self, client_hash: &str) {
        let r = self
            .http
            .post(self.url(&format!("/expire-subscription/{client_hash}")))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}
