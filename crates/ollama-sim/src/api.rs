//! Ollama's public `/api/*` endpoints: request validation with Ollama's exact error texts and
//! statuses (fact sheet §3), listings, and the entry to generation.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::catalog::Model;
use crate::duration::{KeepAlive, parse_keep_alive};
use crate::generate::{self, GenRequest, Kind};
use crate::handle::{Shared, rfc3339};
use crate::json::{error_response, json_response};
use crate::sched::LoadOpts;

type S = State<Arc<Shared>>;

pub(crate) async fn version(State(shared): S) -> Response {
    json_response(
        StatusCode::OK,
        &json!({ "version": shared.scenario.version }),
    )
}

pub(crate) async fn tags(State(shared): S) -> Response {
    let models: Vec<Value> = shared.installed().iter().map(Model::tags_entry).collect();
    json_response(StatusCode::OK, &json!({ "models": models }))
}

pub(crate) async fn ps(State(shared): S) -> Response {
    json_response(StatusCode::OK, &json!({ "models": ps_entries(&shared) }))
}

/// `/api/ps` entries, latest `expires_at` first.
pub(crate) fn ps_entries(shared: &Shared) -> Vec<Value> {
    let st = shared.lock();
    let now = shared.sim_now(&st);
    let mut rows: Vec<(time::OffsetDateTime, Value)> = st
        .runners
        .iter()
        .map(|r| {
            let expires = match (r.keep_alive, r.expires_at) {
                (KeepAlive::Forever, _) => shared
                    .wall_now(&st)
                    .checked_add(time::Duration::nanoseconds(i64::MAX))
                    .unwrap_or_else(|| shared.wall_now(&st)),
                (_, Some(at)) => shared.wall_at(&st, at),
                (KeepAlive::For(d), None) => shared.wall_at(&st, now + d),
            };
            let sharing: Vec<String> = shared
                .catalog
                .models
                .iter()
                .filter(|m| m.blob_path == r.model.blob_path)
                .map(|m| m.name.clone())
                .collect();
            let size_vram = if st.ps_lies_for(r, &sharing) {
                r.size
            } else {
                r.size_vram
            };
            let v = json!({
                "name": r.model.name,
                "model": r.model.name,
                "size": r.size,
                "digest": r.model.digest,
                "details": r.model.details_json(),
                "expires_at": rfc3339(expires),
                "size_vram": size_vram,
                "context_length": r.opts.num_ctx,
            });
            (expires, v)
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    rows.into_iter().map(|(_, v)| v).collect()
}

pub(crate) async fn show(State(shared): S, body: Bytes) -> Response {
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let name = req
        .get("model")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| req.get("name").and_then(Value::as_str))
        .unwrap_or("");
    if name.is_empty() {
        return error_response(400, "model is required");
    }
    match shared.find_model(name) {
        Some(m) => json_response(StatusCode::OK, &m.show_json()),
        None => error_response(404, &format!("model '{name}' not found")),
    }
}

pub(crate) async fn generate(State(shared): S, body: Bytes) -> Response {
    handle_generation(shared, body, Kind::Generate).await
}

pub(crate) async fn chat(State(shared): S, body: Bytes) -> Response {
    handle_generation(shared, body, Kind::Chat).await
}

/// `POST /api/embed`. Without `input` (or with an empty one) it only loads the model for
/// `keep_alive` and answers `{"model":M,"embeddings":[]}`, which is how clients warm embedding
/// models (fact sheet §10). With input, each string gets a deterministic vector of the model's
/// `embedding_length`.
pub(crate) async fn embed(State(shared): S, body: Bytes) -> Response {
    let start = tokio::time::Instant::now();
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let keep_alive = match parse_keep_alive(req.get("keep_alive")) {
        Ok(k) => k,
        Err(msg) => return error_response(400, &msg),
    };
    let name = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        return error_response(400, "model is required");
    }
    let Some(model) = shared.catalog.get(&name).cloned() else {
        return error_response(404, &format!("model '{name}' not found"));
    };
    let inputs: Vec<String> = match req.get("input") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        Some(_) => return error_response(400, "invalid input type"),
    };
    let options = match req.get("options") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let opts = LoadOpts::resolve(&model, &options, shared.scenario.default_ctx());
    let loaded = generate::run(
        shared.clone(),
        GenRequest {
            kind: Kind::Generate,
            name: name.clone(),
            model: model.clone(),
            opts,
            keep_alive,
            load_only: true,
            stream: false,
            num_predict: 0,
            prompt_text: String::new(),
            last_user: String::new(),
            think: crate::media::Think::Off,
            images: 0,
            start,
        },
    )
    .await;
    if loaded.status() != StatusCode::OK {
        return loaded;
    }
    let dims = model.embedding_length.clamp(1, 4096) as usize;
    let embeddings: Vec<Vec<f32>> = inputs
        .iter()
        .map(|text| {
            let seed = text
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            (0..dims)
                .map(|i| ((seed.wrapping_add(i as u32) % 2000) as f32 / 1000.0) - 1.0)
                .collect()
        })
        .collect();
    let mut body = json!({ "model": name, "embeddings": embeddings });
    if !inputs.is_empty()
        && let Some(o) = body.as_object_mut()
    {
        o.insert(
            "total_duration".into(),
            json!(start.elapsed().as_nanos() as u64),
        );
        o.insert(
            "prompt_eval_count".into(),
            json!(
                inputs
                    .iter()
                    .map(|t| t.split_whitespace().count())
                    .sum::<usize>()
            ),
        );
    }
    json_response(StatusCode::OK, &body)
}

/// Parses a JSON object body with gin's error texts.
fn parse_body(body: &Bytes) -> Result<Map<String, Value>, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Box::new(error_response(400, "missing request body")));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(Box::new(error_response(
            400,
            &format!(
                "json: cannot unmarshal {} into Go value of type api.Request",
                match other {
                    Value::Array(_) => "array",
                    Value::String(_) => "string",
                    Value::Number(_) => "number",
                    Value::Bool(_) => "bool",
                    _ => "null",
                }
            ),
        ))),
        Err(e) => Err(Box::new(error_response(400, &e.to_string()))),
    }
}

const INT_OPTS: &[&str] = &[
    "num_keep",
    "seed",
    "num_predict",
    "top_k",
    "repeat_last_n",
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
    "draft_num_predict",
];
const FLOAT_OPTS: &[&str] = &[
    "top_p",
    "min_p",
    "typical_p",
    "temperature",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
];

/// `api.Options.FromMap` type checks; unknown keys are ignored like upstream.
fn check_option_types(opts: &Map<String, Value>) -> Result<(), String> {
    for (k, v) in opts {
        let k = k.as_str();
        let ok = if INT_OPTS.contains(&k) || FLOAT_OPTS.contains(&k) {
            v.is_number()
        } else if k == "use_mmap" || k == "shift" || k == "truncate" {
            v.is_boolean()
        } else if k == "stop" {
            v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        } else {
            true
        };
        if !ok {
            let ty = if INT_OPTS.contains(&k) {
                "integer"
            } else if FLOAT_OPTS.contains(&k) {
                "float32"
            } else if k == "stop" {
                "array of strings"
            } else {
                "boolean"
            };
            return Err(format!("option \"{k}\" must be of type {ty}"));
        }
    }
    Ok(())
}

async fn handle_generation(shared: Arc<Shared>, body: Bytes, kind: Kind) -> Response {
    let start = tokio::time::Instant::now();
    let req = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    // Decoding errors (keep_alive, types) come from binding, before any model lookup.
    let keep_alive = match parse_keep_alive(req.get("keep_alive")) {
        Ok(k) => k,
        Err(msg) => return error_response(400, &msg),
    };
    let options = match req.get("options") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return error_response(
                400,
                "json: cannot unmarshal options into Go struct field of type map[string]interface {}",
            );
        }
    };
    let name = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() && kind == Kind::Chat {
        return error_response(400, "model is required");
    }
    let Some(model) = shared.find_model(&name) else {
        return error_response(404, &format!("model '{name}' not found"));
    };
    let think = match crate::media::resolve_think(&model, req.get("think")) {
        Ok(t) => t,
        Err((status, msg)) => return error_response(status, &msg),
    };
    let images = match crate::media::count_images(kind, &req) {
        Ok(n) => n,
        Err(msg) => return error_response(400, &msg),
    };
    if images > 0 && !model.capabilities.iter().any(|c| c == "vision") {
        return error_response(400, crate::media::NO_VISION);
    }
    let (load_only, prompt_text, last_user) = match kind {
        Kind::Generate => {
            let prompt = req.get("prompt").and_then(Value::as_str).unwrap_or("");
            let system = req.get("system").and_then(Value::as_str).unwrap_or("");
            let has_images = req
                .get("images")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            (
                prompt.is_empty() && !has_images,
                format!(
                    "{}{prompt}",
                    if system.is_empty() {
                        &model.system
                    } else {
                        system
                    }
                ),
                prompt.to_string(),
            )
        }
        Kind::Chat => {
            let msgs = req
                .get("messages")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut text = String::new();
            let starts_with_system = msgs
                .first()
                .and_then(|m| m.get("role"))
                .and_then(Value::as_str)
                .is_some_and(|r| r.eq_ignore_ascii_case("system"));
            if !starts_with_system {
                text.push_str(&model.system);
            }
            let mut last_user = String::new();
            for m in &msgs {
                let content = m.get("content").and_then(Value::as_str).unwrap_or("");
                text.push_str(content);
                text.push_str("\n\n\n\n");
                if m.get("role")
                    .and_then(Value::as_str)
                    .is_some_and(|r| r.eq_ignore_ascii_case("user"))
                {
                    last_user = content.to_string();
                }
            }
            (msgs.is_empty(), text, last_user)
        }
    };
    let unload_now = matches!(keep_alive, Some(KeepAlive::For(d)) if d.is_zero());
    if load_only && unload_now {
        shared.lock().unload(&model.blob_path);
        return generate::final_json(&shared, kind, &name, "unload");
    }
    // Ollama checks capabilities when it schedules the runner, after the unload shortcut: an
    // embedding-only model can be unloaded through generate but never loaded through it.
    if !model.capabilities.iter().any(|c| c == "completion") {
        let what = match kind {
            Kind::Generate => "generate",
            Kind::Chat => "chat",
        };
        return error_response(400, &format!("\"{name}\" does not support {what}"));
    }
    if let Err(msg) = check_option_types(&options) {
        return error_response(500, &msg);
    }
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(true);
    let num_predict = options
        .get("num_predict")
        .or_else(|| model.parameters.get("num_predict"))
        .and_then(Value::as_f64)
        .map(|f| f as i64)
        .unwrap_or(-1);
    let opts = LoadOpts::resolve(&model, &options, shared.scenario.default_ctx());
    generate::run(
        shared,
        GenRequest {
            kind,
            name,
            model,
            opts,
            keep_alive,
            load_only,
            stream,
            num_predict,
            prompt_text,
            last_user,
            start,
            think,
            images,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_type_errors_match_ollama() {
        let mut m = Map::new();
        m.insert("num_ctx".into(), json!("8k"));
        assert_eq!(
            check_option_types(&m),
            Err("option \"num_ctx\" must be of type integer".into())
        );
        let mut ok = Map::new();
        ok.insert("num_ctx".into(), json!(8192));
        ok.insert("temperature".into(), json!(0.2));
        ok.insert("whatever".into(), json!("ignored"));
        assert_eq!(check_option_types(&ok), Ok(()));
    }
}
