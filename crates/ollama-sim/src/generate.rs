//! Generation: waiting for the runner, the token stream (NDJSON, paced by the scenario's token
//! rate), the final chunk with integer-nanosecond metrics, and staged stream faults.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use crate::catalog::Model;
use crate::duration::KeepAlive;
use crate::fault::Fault;
use crate::handle::{Shared, rfc3339};
use crate::json::{NDJSON_CT, error_response, json_response, to_go_json};
use crate::scenario::ReplyMode;
use crate::sched::LoadOpts;

/// Which endpoint is generating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Generate,
    Chat,
}

/// A validated generation request.
pub(crate) struct GenRequest {
    pub kind: Kind,
    /// The name as the client sent it (echoed in every chunk).
    pub name: String,
    pub model: Model,
    pub opts: LoadOpts,
    pub keep_alive: Option<KeepAlive>,
    pub load_only: bool,
    pub stream: bool,
    pub num_predict: i64,
    pub prompt_text: String,
    pub last_user: String,
    pub start: tokio::time::Instant,
    pub think: crate::media::Think,
    /// Images the request carried (already checked against the model's capabilities).
    pub images: usize,
}

/// Holds a runner reference; dropping it ends the request (starting the expiry timer), also
/// when the client disconnects mid-stream.
struct InFlight {
    shared: Arc<Shared>,
    runner_id: u64,
    generating: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let now = self.shared.sim_now(&st);
        st.release(self.runner_id, self.generating, now);
    }
}

#[derive(Serialize)]
struct Metrics {
    total_duration: u64,
    load_duration: u64,
    prompt_eval_count: u64,
    prompt_eval_duration: u64,
    eval_count: u64,
    eval_duration: u64,
}

#[derive(Serialize)]
struct Msg<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<&'a str>,
}

#[derive(Serialize)]
struct GenerateChunk<'a> {
    model: &'a str,
    created_at: String,
    response: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<&'a str>,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    done_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<Vec<u32>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    metrics: Option<Metrics>,
}

#[derive(Serialize)]
struct ChatChunk<'a> {
    model: &'a str,
    created_at: String,
    message: Msg<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    done_reason: Option<&'a str>,
    done: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    metrics: Option<Metrics>,
}

fn created_at(shared: &Shared) -> String {
    let st = shared.lock();
    rfc3339(shared.wall_now(&st))
}

#[allow(clippy::too_many_arguments)]
fn chunk_json(
    shared: &Shared,
    kind: Kind,
    name: &str,
    text: &str,
    thinking: Option<&str>,
    done_reason: Option<&str>,
    metrics: Option<Metrics>,
    context: Option<Vec<u32>>,
) -> String {
    let created_at = created_at(shared);
    let done = done_reason.is_some();
    match kind {
        Kind::Generate => to_go_json(&GenerateChunk {
            model: name,
            created_at,
            response: text,
            thinking,
            done,
            done_reason,
            context,
            metrics,
        }),
        Kind::Chat => to_go_json(&ChatChunk {
            model: name,
            created_at,
            message: Msg {
                role: "assistant",
                content: text,
                thinking,
            },
            done_reason,
            done,
            metrics,
        }),
    }
}

/// The plain-JSON answer of load-only and unload requests (no metrics).
pub(crate) fn final_json(shared: &Shared, kind: Kind, name: &str, reason: &str) -> Response {
    let body = chunk_json(shared, kind, name, "", None, Some(reason), None, None);
    let mut r = json_response(StatusCode::OK, &());
    *r.body_mut() = Body::from(body);
    r
}

/// Splits text into token-ish pieces: words with their leading space, long words in parts.
fn tokenize(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        let boundary = (c.is_whitespace() && !cur.trim().is_empty())
            || (c.is_ascii_punctuation() && !cur.is_empty() && c != '\'')
            || cur.chars().count() >= 6 && !c.is_whitespace();
        if boundary {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

enum Step {
    /// A token piece; `true` when it is part of the thinking trace.
    Piece(String, bool),
    Malformed,
    Stall,
    Truncate,
    Error {
        message: String,
        oom: bool,
    },
    Done(&'static str),
}

const OOM_MESSAGE: &str = "model runner has unexpectedly stopped, this may be due to resource limitations or an internal error, check ollama server logs for details: CUDA error: out of memory";

fn plan(
    pieces: Vec<(String, bool)>,
    done_reason: &'static str,
    fault: Option<Fault>,
) -> VecDeque<Step> {
    let mut steps: VecDeque<Step> = pieces.into_iter().map(|(p, t)| Step::Piece(p, t)).collect();
    let n = steps.len();
    let (at, step, keep_rest) = match fault {
        Some(Fault::StallMidStream { after_chunks }) => (after_chunks, Step::Stall, false),
        Some(Fault::MalformedLine { after_chunks }) => (after_chunks, Step::Malformed, true),
        Some(Fault::TruncateStream { after_chunks }) => (after_chunks, Step::Truncate, false),
        Some(Fault::ErrorMidStream {
            after_chunks,
            message,
        }) => (
            after_chunks,
            Step::Error {
                message,
                oom: false,
            },
            false,
        ),
        Some(Fault::RuntimeOom) => (
            2,
            Step::Error {
                message: OOM_MESSAGE.into(),
                oom: true,
            },
            false,
        ),
        _ => {
            steps.push_back(Step::Done(done_reason));
            return steps;
        }
    };
    let at = at.min(n);
    if keep_rest {
        steps.insert(at, step);
        steps.push_back(Step::Done(done_reason));
    } else {
        steps.truncate(at);
        steps.push_back(step);
    }
    steps
}

/// Runs a generation request end to end.
pub(crate) async fn run(shared: Arc<Shared>, req: GenRequest) -> Response {
    // Pending until a busy runner can be evicted (bounded, so a stuck test still ends).
    let wait_until = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < wait_until
        && shared
            .lock()
            .must_wait_for_idle(&shared.scenario, &req.model)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let scheduled = {
        let mut st = shared.lock();
        let sc = &shared.scenario;
        st.schedule(
            sc,
            &req.model,
            req.opts.clone(),
            req.keep_alive,
            shared.default_keep_alive,
            tokio::time::Instant::now(),
            Duration::from_millis(sc.load_ms),
        )
    };
    let scheduled = match scheduled {
        Ok(s) => s,
        Err(e) => return error_response(e.status, &e.message),
    };
    let mut guard = InFlight {
        shared: shared.clone(),
        runner_id: scheduled.runner_id,
        generating: false,
    };
    tokio::time::sleep_until(scheduled.ready_at).await;
    let load_duration = req.start.elapsed();
    if req.load_only {
        drop(guard);
        return final_json(&shared, req.kind, &req.name, "load");
    }

    let (reply, fault) = {
        let mut st = shared.lock();
        if let Some(r) = st.runners.iter_mut().find(|r| r.id == scheduled.runner_id) {
            r.generating += 1;
            guard.generating = true;
        }
        let fault = st
            .faults
            .iter()
            .position(Fault::is_stream_fault)
            .map(|i| st.faults.remove(i));
        let reply = match (&st.reply, shared.scenario.reply_mode) {
            (Some(r), _) => r.clone(),
            (None, ReplyMode::Echo) => req.last_user.clone(),
            (None, ReplyMode::Canned) => shared.scenario.reply.clone(),
        };
        (reply, fault)
    };
    let thinking = crate::media::thinking_text(&shared.scenario.thinking, req.think);
    let reply = format!("{}{reply}", crate::media::image_preamble(req.images));
    let mut pieces: Vec<(String, bool)> = tokenize(&thinking)
        .into_iter()
        .map(|p| (p, true))
        .chain(tokenize(&reply).into_iter().map(|p| (p, false)))
        .collect();
    let mut done_reason = "stop";
    if req.num_predict >= 0 && (req.num_predict as usize) < pieces.len() {
        pieces.truncate(req.num_predict as usize);
        done_reason = "length";
    }
    let prompt_tokens = (req.prompt_text.chars().count() as u64 / 4).max(1) + 10;
    let job = Gen {
        shared: shared.clone(),
        kind: req.kind,
        name: req.name,
        start: req.start,
        load_duration,
        prompt_tokens,
        interval: Duration::from_secs_f64(1.0 / shared.scenario.tokens_per_second),
        steps: plan(pieces, done_reason, fault),
        emitted: 0,
        text: String::new(),
        thinking: String::new(),
        gen_start: tokio::time::Instant::now(),
        guard: Some(guard),
    };
    if req.stream {
        // An error before any chunk is written is a real HTTP error (routes.go streamResponse).
        if let Some(Step::Error { message, oom }) = job.steps.front() {
            if *oom {
                shared.lock().runners.clear();
            }
            return error_response(500, message);
        }
        stream_response(job)
    } else {
        collected_response(job).await
    }
}

struct Gen {
    shared: Arc<Shared>,
    kind: Kind,
    name: String,
    start: tokio::time::Instant,
    load_duration: Duration,
    prompt_tokens: u64,
    interval: Duration,
    steps: VecDeque<Step>,
    emitted: u64,
    text: String,
    thinking: String,
    gen_start: tokio::time::Instant,
    guard: Option<InFlight>,
}

enum Out {
    Line(String),
    Stall,
    Truncate,
    Error(String),
    Done(String),
}

impl Gen {
    /// Advances one step, pacing tokens at the scenario rate.
    async fn next(&mut self) -> Option<Out> {
        let step = self.steps.pop_front()?;
        Some(match step {
            Step::Piece(p, thinking) => {
                let due = self.gen_start + self.interval.mul_f64(self.emitted as f64 + 1.0);
                tokio::time::sleep_until(due).await;
                self.emitted += 1;
                let (text, trace) = if thinking {
                    self.thinking.push_str(&p);
                    ("", Some(p.as_str()))
                } else {
                    self.text.push_str(&p);
                    (p.as_str(), None)
                };
                Out::Line(chunk_json(
                    &self.shared,
                    self.kind,
                    &self.name,
                    text,
                    trace,
                    None,
                    None,
                    None,
                ))
            }
            Step::Malformed => Out::Line(format!(
                "{{\"model\":\"{}\",\"created_at\":\"{}\",\"respo",
                self.name,
                created_at(&self.shared)
            )),
            Step::Stall => Out::Stall,
            Step::Truncate => Out::Truncate,
            Step::Error { message, oom } => {
                if oom {
                    // expireRunnersForRuntimeOOM: every loaded model goes, forever ones too.
                    self.shared.lock().runners.clear();
                }
                self.guard = None;
                Out::Error(message)
            }
            Step::Done(reason) => {
                let eval_ns = self.gen_start.elapsed().as_nanos().max(1) as u64;
                let metrics = Metrics {
                    total_duration: self.start.elapsed().as_nanos() as u64,
                    load_duration: self.load_duration.as_nanos().max(1) as u64,
                    prompt_eval_count: self.prompt_tokens,
                    prompt_eval_duration: (self.prompt_tokens as f64
                        / self.shared.scenario.prompt_tokens_per_second
                        * 1e9) as u64,
                    eval_count: self.emitted,
                    eval_duration: eval_ns,
                };
                // Release before the client sees `done`, so /api/ps is already up to date
                // (e.g. unloaded after keep_alive 0) when the client reacts to it.
                self.guard = None;
                let context = (self.kind == Kind::Generate).then(|| {
                    (0..self.prompt_tokens.min(32) as u32)
                        .map(|i| 128_000 + i * 7)
                        .collect()
                });
                Out::Done(chunk_json(
                    &self.shared,
                    self.kind,
                    &self.name,
                    "",
                    None,
                    Some(reason),
                    Some(metrics),
                    context,
                ))
            }
        })
    }
}

fn stream_response(job: Gen) -> Response {
    let body = futures_util::stream::unfold(Some(job), |state| async move {
        let mut job = state?;
        let item: Result<Bytes, std::io::Error> = match job.next().await? {
            Out::Line(l) => Ok(Bytes::from(l + "\n")),
            Out::Done(l) => {
                let b = Bytes::from(l + "\n");
                return Some((Ok(b), None));
            }
            Out::Error(m) => {
                let b = Bytes::from(to_go_json(&serde_json::json!({ "error": m })) + "\n");
                return Some((Ok(b), None));
            }
            Out::Stall => {
                futures_util::future::pending::<()>().await;
                return None;
            }
            Out::Truncate => {
                // Yield once so hyper flushes the chunks already written; an error while
                // they sit in its write buffer would discard them too.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(std::io::Error::other("simulated truncated stream"))
            }
        };
        let more = item.is_ok();
        Some((item, more.then_some(job)))
    });
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON_CT));
    r
}

async fn collected_response(mut job: Gen) -> Response {
    while let Some(out) = job.next().await {
        match out {
            Out::Line(_) => {}
            Out::Stall => {
                futures_util::future::pending::<()>().await;
            }
            Out::Truncate => {
                let s = futures_util::stream::once(async {
                    Err::<Bytes, _>(std::io::Error::other("simulated truncated response"))
                });
                let mut r = Response::new(Body::from_stream(s));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(crate::json::JSON_CT),
                );
                return r;
            }
            Out::Error(m) => return error_response(500, &m),
            Out::Done(line) => {
                // Same fields as the final chunk, with the concatenated text.
                let mut v: serde_json::Value =
                    serde_json::from_str(&line).unwrap_or(serde_json::Value::Null);
                match job.kind {
                    Kind::Generate => v["response"] = job.text.clone().into(),
                    Kind::Chat => v["message"]["content"] = job.text.clone().into(),
                }
                if !job.thinking.is_empty() {
                    match job.kind {
                        Kind::Generate => v["thinking"] = job.thinking.clone().into(),
                        Kind::Chat => v["message"]["thinking"] = job.thinking.clone().into(),
                    }
                }
                return json_response(StatusCode::OK, &v);
            }
        }
    }
    error_response(500, "generation ended without a result")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_keeps_all_text() {
        let text = "Hello! I'm running locally, supercalifragilistic.";
        let pieces = tokenize(text);
        assert!(pieces.len() >= 6, "{pieces:?}");
        assert_eq!(pieces.concat(), text);
    }
}
