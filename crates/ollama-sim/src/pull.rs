//! `POST /api/pull` (fact sheet §1): the progress stream of `server/images.go` `PullModel`.
//! Installed models answer "already there" lines at once; registry models download at the
//! scenario's rate and join `/api/tags` on success; unknown names fail inside the 200 stream.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};

use crate::catalog::{Model, fake_hex, normalize_name};
use crate::fault::Fault;
use crate::handle::Shared;
use crate::json::{NDJSON_CT, error_response, json_response, to_go_json};

/// Ollama sends a progress line about every 60 ms per blob.
const TICK: Duration = Duration::from_millis(60);
/// What a pull of a name the registry does not have ends with (`os.ErrNotExist`).
const NOT_FOUND: &str = "pull model manifest: file does not exist";
/// The default text of a `broken_pull` fault: a download that ran out of retries.
pub(crate) const BROKEN_DEFAULT: &str = "max retries exceeded: unexpected EOF";

/// One manifest layer: digest hex and size.
struct Blob {
    hex: String,
    size: u64,
}

fn blobs(m: &Model) -> Vec<Blob> {
    let small = |kind: &str, size: usize| Blob {
        hex: fake_hex(&format!("{kind}:{}", m.name)),
        size: size.max(1) as u64,
    };
    let params = serde_json::to_string(&m.parameters).map_or(2, |s| s.len());
    vec![
        Blob {
            hex: m.weights_digest.clone(),
            size: m.file_size,
        },
        small("template", m.template.len()),
        small("license", m.license.len()),
        small("params", params),
        small("config", 485),
    ]
}

fn line(v: &Value) -> Bytes {
    Bytes::from(to_go_json(v) + "\n")
}

fn progress(b: &Blob, completed: u64) -> Value {
    json!({
        "status": format!("pulling {}", &b.hex[..12]),
        "digest": format!("sha256:{}", b.hex),
        "total": b.size,
        "completed": completed,
    })
}

pub(crate) async fn pull(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if body.iter().all(u8::is_ascii_whitespace) {
        return error_response(400, "missing request body");
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return error_response(
                400,
                "json: cannot unmarshal value into Go value of type api.PullRequest",
            );
        }
        Err(e) => return error_response(400, &e.to_string()),
    };
    let name = req
        .get("model")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| req.get("name").and_then(Value::as_str))
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        return error_response(400, "model is required");
    }
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(true);
    let installed = shared.find_model(&name);
    let fetch = match &installed {
        Some(_) => None,
        None => shared.registry.get(&name).cloned(),
    };
    let fault = {
        let mut st = shared.lock();
        st.faults
            .iter()
            .position(|f| matches!(f, Fault::BrokenPull { .. }))
            .map(|i| st.faults.remove(i))
    };
    let job = PullJob {
        shared: shared.clone(),
        name: normalize_name(&name),
        installed,
        fetch,
        fault,
    };
    if stream {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        tokio::spawn(job.run(tx));
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<Bytes, std::io::Error>(b), rx))
        });
        let mut r = Response::new(Body::from_stream(body));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON_CT));
        r
    } else {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        tokio::spawn(job.run(tx));
        let mut last = None;
        while let Some(b) = rx.recv().await {
            last = Some(b);
        }
        let v: Value = last
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        match v.get("error").and_then(Value::as_str) {
            Some(e) => error_response(500, e),
            None => json_response(StatusCode::OK, &v),
        }
    }
}

/// How the `/api/pull` requests went, so a test can see a client's cancel arrive as a closed
/// connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PullCounts {
    /// Pulls still sending progress.
    pub active: u64,
    /// Pulls that reached `success`.
    pub completed: u64,
    /// Pulls that ended with an `error` line (unknown model, broken download).
    pub failed: u64,
    /// Pulls whose client closed the connection before the end (a cancel).
    pub abandoned: u64,
}

#[derive(Clone, Copy)]
enum Outcome {
    Completed,
    Failed,
    Abandoned,
}

/// Counts a pull as active while it lives, then as its outcome (abandoned unless told
/// otherwise: a job dropped mid-way lost its client).
struct Counted {
    shared: Arc<Shared>,
    outcome: Outcome,
}

impl Counted {
    fn new(shared: Arc<Shared>) -> Self {
        shared.lock().pulls.active += 1;
        Counted {
            shared,
            outcome: Outcome::Abandoned,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let c = &mut st.pulls;
        c.active = c.active.saturating_sub(1);
        match self.outcome {
            Outcome::Completed => c.completed += 1,
            Outcome::Failed => c.failed += 1,
            Outcome::Abandoned => c.abandoned += 1,
        }
    }
}

struct PullJob {
    shared: Arc<Shared>,
    name: String,
    installed: Option<Model>,
    fetch: Option<Model>,
    fault: Option<Fault>,
}

impl PullJob {
    /// Writes the progress lines; stops quietly when the client goes away (send fails).
    async fn run(self, tx: tokio::sync::mpsc::Sender<Bytes>) {
        let mut counted = Counted::new(self.shared.clone());
        let send = |v: Value| {
            let tx = tx.clone();
            async move { tx.send(line(&v)).await.is_ok() }
        };
        if !send(json!({"status": "pulling manifest"})).await {
            return;
        }
        let model = match (self.installed, self.fetch) {
            (Some(m), _) => {
                // Up to date: one line per layer with completed == total.
                for b in blobs(&m) {
                    if !send(progress(&b, b.size)).await {
                        return;
                    }
                }
                if finish(&send).await {
                    counted.outcome = Outcome::Completed;
                }
                return;
            }
            (None, Some(m)) => m,
            (None, None) => {
                tokio::time::sleep(TICK).await;
                if send(json!({ "error": NOT_FOUND })).await {
                    counted.outcome = Outcome::Failed;
                }
                return;
            }
        };
        let layers = blobs(&model);
        let total: u64 = layers.iter().map(|b| b.size).sum();
        let (break_at, message) = match self.fault {
            Some(Fault::BrokenPull {
                after_percent,
                message,
            }) => (
                Some(total / 100 * u64::from(after_percent.min(100))),
                message.unwrap_or_else(|| BROKEN_DEFAULT.into()),
            ),
            _ => (None, String::new()),
        };
        let rate = self.shared.scenario.pull_bytes_per_second;
        let per_tick = ((rate * TICK.as_secs_f64()) as u64).max(1);
        let mut done_total = 0u64;
        for b in &layers {
            let mut completed = 0u64;
            loop {
                let step = per_tick.min(b.size - completed);
                if let Some(at) = break_at
                    && done_total + step >= at
                {
                    send(progress(b, completed + at.saturating_sub(done_total))).await;
                    if send(json!({ "error": message })).await {
                        counted.outcome = Outcome::Failed;
                    }
                    return;
                }
                completed += step;
                done_total += step;
                tokio::time::sleep(TICK).await;
                if !send(progress(b, completed)).await {
                    return;
                }
                if completed >= b.size {
                    break;
                }
            }
        }
        {
            let mut st = self.shared.lock();
            if !st.pulled.iter().any(|m| m.name == self.name) {
                st.pulled.push(Model {
                    name: self.name.clone(),
                    ..model
                });
            }
        }
        if finish(&send).await {
            counted.outcome = Outcome::Completed;
        }
    }
}

/// The lines after the download; false when the client went away before `success`.
async fn finish<F, Fut>(send: &F) -> bool
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for status in ["verifying sha256 digest", "writing manifest", "success"] {
        if !send(json!({ "status": status })).await {
            return false;
        }
    }
    true
}
