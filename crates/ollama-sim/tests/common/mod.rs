//! Shared helpers for the simulator's HTTP tests.
#![allow(dead_code)]

use std::time::Duration;

pub use ollama_sim::bounded;
use ollama_sim::{Scenario, SimHandle};
use serde_json::Value;

/// The default demo machine, made fast for tests.
pub fn fast() -> Scenario {
    Scenario {
        load_ms: 20,
        tokens_per_second: 5000.0,
        ..Scenario::default()
    }
}

pub async fn sim(sc: Scenario) -> SimHandle {
    ollama_sim::start(sc).await.expect("simulator starts")
}

pub fn client() -> reqwest::Client {
    // In a workspace build reqwest carries `rustls-no-provider` (from yollayah-core), which
    // needs a process-wide provider even for plain HTTP. Already installed is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

pub async fn post(sim: &SimHandle, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", sim.url()))
        .json(&body)
        .send()
        .await
        .expect("request sent")
}

pub async fn get(sim: &SimHandle, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", sim.url()))
        .send()
        .await
        .expect("request sent")
}

pub fn content_type(r: &reqwest::Response) -> String {
    r.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// POST and parse the NDJSON body into one value per line (asserting `\n` framing).
pub async fn ndjson(sim: &SimHandle, path: &str, body: Value) -> Vec<Value> {
    let r = post(sim, path, body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(content_type(&r), "application/x-ndjson");
    let text = r.text().await.expect("body");
    assert!(
        text.ends_with('\n'),
        "every chunk ends with a newline: {text:?}"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect()
}

pub async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.expect("json body")
}

pub async fn ps(sim: &SimHandle) -> Vec<Value> {
    let v = json_of(get(sim, "/api/ps").await).await;
    v["models"].as_array().cloned().unwrap_or_default()
}

/// Loads a model through the load-only path.
pub async fn load(sim: &SimHandle, model: &str, extra: Value) {
    let mut body = serde_json::json!({ "model": model });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = post(sim, "/api/generate", body).await;
    assert_eq!(r.status(), 200, "load of {model} failed");
    let v = json_of(r).await;
    assert_eq!(v["done_reason"], "load");
}

pub fn parse_time(s: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 time")
}
