//! `OllamaClient` against the Ollama simulator over real loopback HTTP: decoding of every
//! listing the simulator serves, streaming and non-streaming chat, load/unload and the
//! keep_alive forms, reload accounting, and the typed error each staged fault must produce.
//!
//! Every test runs under [`ollama_sim::TEST_LIMIT`]; scenarios load in milliseconds and stream thousands
//! of tokens per second, and anything that waits for the server polls with a deadline.

use std::future::Future;
use std::time::Duration;

use ollama_sim::bounded;
use ollama_sim::{Fault, Scenario, SimHandle};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::time::Instant;
use yollayah_core::Error;
use yollayah_core::ollama::client::{ChatStream, ClientConfig, OllamaClient};
use yollayah_core::ollama::params::{ParamValue, Parameters};
use yollayah_core::ollama::types::{
    ChatChunk, ChatRequest, GenerateRequest, KeepAlive, Message, Options, PsModel,
};

/// The simulator's token rate in these tests; the measured rate can only be lower.
const TOKENS_PER_SECOND: f64 = 2000.0;
const REPLY: &str = "Hello from the simulator, friend! Your model runs fully on the GPU today.";

fn fast_scenario() -> Scenario {
    Scenario {
        load_ms: 5,
        tokens_per_second: TOKENS_PER_SECOND,
        ..Scenario::default()
    }
}

async fn sim() -> SimHandle {
    let sim = ollama_sim::start(fast_scenario()).await.expect("start sim");
    sim.set_reply(REPLY);
    sim
}

/// Deadlines well inside [`ollama_sim::TEST_LIMIT`], idle timeout `idle`.
fn config(sim: &SimHandle, idle: Duration) -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        load_timeout: Duration::from_secs(10),
        stream_idle_timeout: idle,
        ..ClientConfig::new(sim.url())
    }
}

fn client(sim: &SimHandle) -> OllamaClient {
    OllamaClient::new(config(sim, Duration::from_secs(5))).expect("client")
}

fn chat_req(model: &str, text: &str) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        messages: vec![Message::new("user", text)],
        ..ChatRequest::default()
    }
}

fn opts(v: Value) -> Options {
    match v {
        Value::Object(m) => m,
        other => panic!("options must be an object, got {other}"),
    }
}

/// Reads a stream to its end: the content pieces, and the final item (done chunk or error).
async fn drain(stream: &mut ChatStream) -> (Vec<String>, Result<ChatChunk, Error>) {
    let mut pieces = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) if chunk.done => {
                assert!(stream.next().await.is_none(), "items after done");
                return (pieces, Ok(chunk));
            }
            Ok(chunk) => pieces.push(chunk.message.map(|m| m.content).unwrap_or_default()),
            Err(e) => {
                assert!(stream.next().await.is_none(), "items after an error");
                return (pieces, Err(e));
            }
        }
    }
    panic!("stream ended without done chunk or error after {pieces:?}");
}

async fn ps_entry(client: &OllamaClient, name: &str) -> Option<PsModel> {
    let ps = client.ps().await.expect("ps");
    ps.models.into_iter().find(|m| m.name == name)
}

/// How far ahead of now `/api/ps` says `name` expires.
async fn expires_in(client: &OllamaClient, name: &str) -> time::Duration {
    let m = ps_entry(client, name).await.expect("model is loaded");
    m.expires_at.expect("expires_at present") - OffsetDateTime::now_utc()
}

fn assert_near(actual: time::Duration, expected: time::Duration) {
    let slack = time::Duration::seconds(5);
    assert!(
        actual <= expected + slack && actual >= expected - slack,
        "expected ~{expected}, got {actual}"
    );
}

fn assert_forever(actual: time::Duration) {
    // now + MaxInt64 ns ≈ 292.3 years.
    let years = actual.whole_days() as f64 / 365.25;
    assert!(
        (292.0..293.0).contains(&years),
        "expected ~292 years, got {years}"
    );
}

/// Polls `cond` until it holds or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn from_line(modelfile: &str) -> &str {
    modelfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM "))
        .expect("modelfile has a FROM line")
}

// ---------------------------------------------------------------------------------------
// Listings
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn version_and_tags_decode() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        assert_eq!(c.version().await.expect("version").version, "0.33.0");

        let tags = c.tags().await.expect("tags");
        let names: Vec<&str> = tags.models.iter().map(|m| m.name.as_str()).collect();
        for want in [
            "llama3.2:3b",
            "qwen2.5:7b",
            "qwen2.5:14b",
            "yollayah-old:latest",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        for m in &tags.models {
            assert_eq!(m.name, m.model);
            assert_eq!(m.digest.len(), 64, "{}", m.digest);
            assert!(m.digest.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(m.size > 0);
            assert!(m.modified_at.is_some(), "{} has no modified_at", m.name);
            assert_eq!(m.details.format, "gguf");
            assert!(!m.details.families.is_empty());
            assert!(m.capabilities.iter().any(|c| c == "completion"));
        }
        let base = tags
            .models
            .iter()
            .find(|m| m.name == "llama3.2:3b")
            .expect("base");
        assert_eq!(
            base.digest,
            "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72"
        );
        assert_eq!(base.details.family, "llama");
        assert_eq!(base.details.parameter_size, "3.2B");
        assert_eq!(base.details.quantization_level, "Q4_K_M");
        assert_eq!(base.details.parent_model, "");
        assert_eq!(base.details.context_length, Some(131_072));
        assert_eq!(base.details.embedding_length, Some(3072));
        assert_eq!(
            base.modified_at.map(|t| t.year()),
            Some(2025),
            "modified_at 2025-11-02"
        );
        let derived = tags
            .models
            .iter()
            .find(|m| m.name == "yollayah-old:latest")
            .expect("derived");
        assert_eq!(derived.details.parent_model, "llama3.2:3b");
        assert_ne!(derived.digest, base.digest);
        // A derived model counts the shared weights again.
        assert!(derived.size >= 2_019_377_376, "{}", derived.size);
    })
    .await;
}

#[tokio::test]
async fn show_decodes_model_info_parameters_and_modelfile() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        let base = c.show("llama3.2:3b").await.expect("show base");
        let info = &base.model_info;
        assert_eq!(info.get("general.architecture"), Some(&json!("llama")));
        let arch = "llama";
        let num = |k: &str| info.get(k).and_then(Value::as_u64);
        assert_eq!(num(&format!("{arch}.block_count")), Some(28));
        assert_eq!(num(&format!("{arch}.context_length")), Some(131_072));
        assert_eq!(num(&format!("{arch}.embedding_length")), Some(3072));
        assert_eq!(num(&format!("{arch}.attention.head_count")), Some(24));
        assert_eq!(num(&format!("{arch}.attention.head_count_kv")), Some(8));
        assert_eq!(num(&format!("{arch}.attention.key_length")), Some(128));
        assert_eq!(num("general.parameter_count"), Some(3_212_749_888));
        assert_eq!(num("llama.feed_forward_length"), Some(8192));
        assert!(!info.contains_key("general.name"));
        assert!(base.template.contains("<|start_header_id|>"));
        assert!(base.license.starts_with("LLAMA 3.2"));
        assert_eq!(base.details.family, "llama");
        assert!(base.capabilities.iter().any(|c| c == "tools"));
        assert!(base.modified_at.is_some());

        let p = Parameters::parse(&base.parameters);
        let stops: Vec<&ParamValue> = p.get_all("stop").collect();
        assert_eq!(
            stops,
            [
                &ParamValue::Text("<|start_header_id|>".into()),
                &ParamValue::Text("<|end_header_id|>".into()),
                &ParamValue::Text("<|eot_id|>".into()),
            ]
        );
        assert_eq!(p.get_i64("num_ctx"), None);

        let derived = c.show("yollayah-old:latest").await.expect("show derived");
        let dp = Parameters::parse(&derived.parameters);
        assert_eq!(dp.get_i64("num_ctx"), Some(131_072));
        // PARAMETERs merge over the base's.
        assert_eq!(dp.get_all("stop").count(), 3);
        assert!(derived.system.starts_with("You are Yollayah"));
        assert_eq!(derived.details.parent_model, "llama3.2:3b");

        let blob = from_line(&base.modelfile);
        assert!(
            blob.starts_with("/usr/share/ollama/.ollama/models/blobs/sha256-"),
            "{blob}"
        );
        assert_eq!(from_line(&derived.modelfile), blob);
        assert_ne!(
            from_line(&c.show("qwen2.5:7b").await.expect("show qwen").modelfile),
            blob
        );
        let qwen = c.show("qwen2.5:7b").await.expect("show qwen");
        let qp = Parameters::parse(&qwen.parameters);
        assert_eq!(qp.get("temperature"), Some(&ParamValue::Number(0.7)));
        assert_eq!(qwen.model_info.get("qwen2.block_count"), Some(&json!(28)));

        match c.show("nope").await {
            Err(Error::Api { status, message }) => {
                assert_eq!((status, message.as_str()), (404, "model 'nope' not found"));
            }
            other => panic!("expected 404, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn ps_decodes_loaded_model() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        assert!(c.ps().await.expect("ps").models.is_empty());
        c.load("llama3.2:3b", None, Some(&opts(json!({"num_ctx": 8192}))))
            .await
            .expect("load");
        let ps = c.ps().await.expect("ps");
        assert_eq!(ps.models.len(), 1);
        let m = &ps.models[0];
        assert_eq!(m.name, "llama3.2:3b");
        assert_eq!(m.model, "llama3.2:3b");
        assert_eq!(
            m.digest,
            "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72"
        );
        assert_eq!(m.context_length, Some(8192));
        // 12 GiB GPU, nothing else on it: a 2 GB model with 8k context fits entirely.
        assert!(m.size > 2_019_377_376);
        assert_eq!(m.size_vram, m.size);
        assert_eq!(m.details.family, "llama");
        assert_eq!(m.details.parent_model, "");
        // Default keep-alive of the scenario: 5m.
        assert_near(
            expires_in(&c, "llama3.2:3b").await,
            time::Duration::minutes(5),
        );
        assert_eq!(sim.loaded_models(), vec!["llama3.2:3b".to_string()]);
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Chat and generate
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn chat_stream_concatenates_to_reply_with_final_metrics() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        let req = ChatRequest {
            stream: Some(false), // overridden: chat_stream always streams
            ..chat_req("llama3.2:3b", "hi")
        };
        let mut s = c.chat_stream(&req).await.expect("open stream");
        let (pieces, last) = drain(&mut s).await;
        let done = last.expect("stream completes");
        assert!(pieces.len() > 5, "{pieces:?}");
        assert_eq!(pieces.concat(), REPLY);
        assert_eq!(s.received(), pieces.len() + 1);
        assert_eq!(done.done_reason.as_deref(), Some("stop"));
        assert_eq!(done.model, "llama3.2:3b");
        assert_eq!(
            done.message.as_ref().map(|m| m.role.as_str()),
            Some("assistant")
        );
        let m = done.metrics;
        assert_eq!(m.eval_count, Some(pieces.len() as u64));
        let total = m.total_duration.expect("total_duration");
        let load = m.load_duration.expect("load_duration");
        let eval = m.eval_duration.expect("eval_duration");
        assert!(m.prompt_eval_count.expect("prompt_eval_count") > 0);
        assert!(m.prompt_eval_duration.expect("prompt_eval_duration") > 0);
        // Integer nanoseconds: the load (5 ms) and the paced tokens are visible at ns scale.
        assert!(load >= 4_000_000, "load_duration {load} ns");
        assert!(
            total >= load + eval - 1,
            "total {total} < load {load} + eval {eval}"
        );
        let tps = m.tokens_per_second().expect("tokens/s");
        assert!(
            tps > 0.0 && tps <= TOKENS_PER_SECOND * 1.01,
            "tokens/s {tps} above the simulated rate"
        );

        let recorded = sim.requests();
        let body = &recorded.last().expect("recorded").body;
        assert_eq!(body["stream"], json!(true));
        assert_eq!(body["messages"][0]["content"], json!("hi"));
        assert!(body.get("keep_alive").is_none());
    })
    .await;
}

#[tokio::test]
async fn chat_non_streaming_returns_whole_reply() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        sim.set_reply("Just one answer, in one piece.");
        let chunk = c
            .chat(&chat_req("qwen2.5:7b", "answer once"))
            .await
            .expect("chat");
        assert!(chunk.done);
        assert_eq!(chunk.done_reason.as_deref(), Some("stop"));
        assert_eq!(
            chunk.message.map(|m| m.content).as_deref(),
            Some("Just one answer, in one piece.")
        );
        assert!(chunk.metrics.eval_count.is_some_and(|n| n > 3));
        assert!(chunk.metrics.tokens_per_second().is_some());
        let recorded = sim.requests();
        assert_eq!(
            recorded.last().expect("recorded").body["stream"],
            json!(false)
        );
    })
    .await;
}

#[tokio::test]
async fn generate_stream_concatenates_to_reply() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        let req = GenerateRequest {
            model: "llama3.2:3b".into(),
            prompt: Some("say something".into()),
            ..GenerateRequest::default()
        };
        let mut s = c.generate_stream(&req).await.expect("open");
        let mut text = String::new();
        let mut last = None;
        while let Some(item) = s.next().await {
            let chunk = item.expect("chunk");
            text.push_str(&chunk.response);
            last = Some(chunk);
        }
        let last = last.expect("final chunk");
        assert!(last.done);
        assert_eq!(last.done_reason.as_deref(), Some("stop"));
        assert_eq!(text, REPLY);
        assert!(last.metrics.eval_duration.is_some());
    })
    .await;
}

#[tokio::test]
async fn num_predict_cuts_with_done_reason_length() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        let req = ChatRequest {
            options: Some(opts(json!({"num_predict": 3}))),
            ..chat_req("llama3.2:3b", "hi")
        };
        let mut s = c.chat_stream(&req).await.expect("open");
        let (pieces, last) = drain(&mut s).await;
        let done = last.expect("done");
        assert_eq!(pieces.len(), 3);
        assert!(REPLY.starts_with(&pieces.concat()));
        assert_eq!(done.done_reason.as_deref(), Some("length"));
        assert_eq!(done.metrics.eval_count, Some(3));
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Load, unload, keep_alive
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn load_forever_then_unload() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        let chunk = c
            .load("llama3.2:3b", Some(KeepAlive::FOREVER), None)
            .await
            .expect("load");
        assert!(chunk.done);
        assert_eq!(chunk.done_reason.as_deref(), Some("load"));
        assert_eq!(chunk.response, "");
        assert_eq!(chunk.metrics.total_duration, None);
        assert_eq!(sim.load_count(), 1);
        assert_forever(expires_in(&c, "llama3.2:3b").await);
        // Forever survives any amount of simulated time.
        sim.advance_clock(Duration::from_secs(365 * 24 * 3600));
        assert!(ps_entry(&c, "llama3.2:3b").await.is_some());

        c.unload("llama3.2:3b").await.expect("unload");
        let sent = sim.requests();
        let body = &sent.last().expect("recorded").body;
        assert_eq!(body["keep_alive"], json!(0));
        assert!(body.get("prompt").is_none());
        assert!(c.ps().await.expect("ps").models.is_empty());

        let load = &sent
            .iter()
            .find(|r| r.path == "/api/generate")
            .expect("load request")
            .body;
        assert_eq!(load["keep_alive"], json!(-1));
        assert_eq!(load["stream"], json!(false));
    })
    .await;
}

#[tokio::test]
async fn unload_of_derived_model_unloads_shared_runner() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        c.load("llama3.2:3b", Some(KeepAlive::FOREVER), None)
            .await
            .expect("load");
        c.unload("yollayah-old:latest").await.expect("unload");
        assert!(c.ps().await.expect("ps").models.is_empty());
    })
    .await;
}

#[tokio::test]
async fn keep_alive_forms() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        let m = "llama3.2:3b";
        let cases = [
            (
                KeepAlive::Seconds(300.0),
                Some(time::Duration::seconds(300)),
            ),
            (
                KeepAlive::Duration("5m".into()),
                Some(time::Duration::minutes(5)),
            ),
            (
                KeepAlive::Duration("24h".into()),
                Some(time::Duration::hours(24)),
            ),
            (KeepAlive::Duration("-1m".into()), None),
            (KeepAlive::Seconds(-1.0), None),
        ];
        for (ka, want) in cases {
            c.load(m, Some(ka.clone()), None).await.expect("load");
            let got = expires_in(&c, m).await;
            match want {
                Some(d) => assert_near(got, d),
                None => assert_forever(got),
            }
        }
        // Same options every time: one load, no reloads.
        assert_eq!((sim.load_count(), sim.reload_count()), (1, 0));

        // Fractional seconds: 1.5 s (sent as a JSON float), then gone once the (simulated)
        // clock passes it. The expiry is bracketed by wall times taken around the calls, so
        // the bound is exact however slow this machine is.
        let before = OffsetDateTime::now_utc();
        c.load(m, Some(KeepAlive::Seconds(1.5)), None)
            .await
            .expect("load");
        let expires = ps_entry(&c, m)
            .await
            .and_then(|e| e.expires_at)
            .expect("loaded with expires_at");
        let after = OffsetDateTime::now_utc();
        let ka = time::Duration::milliseconds(1500);
        let ms = time::Duration::milliseconds(5);
        assert!(
            expires >= before + ka - ms && expires <= after + ka + ms,
            "{expires} not within [{before}, {after}] + 1.5s"
        );
        let sent = sim.requests();
        assert_eq!(
            sent.last().map(|r| &r.path).map(String::as_str),
            Some("/api/ps")
        );
        let load_body = &sent[sent.len() - 2].body;
        assert_eq!(load_body["keep_alive"], json!(1.5));
        sim.advance_clock(Duration::from_secs(2));
        assert!(c.ps().await.expect("ps").models.is_empty());

        match c
            .load(m, Some(KeepAlive::Duration("300".into())), None)
            .await
        {
            Err(Error::Api { status, message }) => {
                assert_eq!(status, 400);
                assert_eq!(message, r#"time: missing unit in duration "300""#);
            }
            other => panic!("expected 400, got {other:?}"),
        }
        assert!(c.ps().await.expect("ps").models.is_empty());
    })
    .await;
}

#[tokio::test]
async fn absent_keep_alive_leaves_runner_duration_unchanged() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        let m = "llama3.2:3b";
        c.load(m, Some(KeepAlive::FOREVER), None)
            .await
            .expect("load");
        assert_forever(expires_in(&c, m).await);
        c.chat(&chat_req(m, "still there?")).await.expect("chat");
        assert_forever(expires_in(&c, m).await);

        // A finite non-default duration is kept too (not reset to the 5m default).
        c.load(m, Some(KeepAlive::Duration("1h".into())), None)
            .await
            .expect("load");
        assert_near(expires_in(&c, m).await, time::Duration::hours(1));
        let mut s = c.chat_stream(&chat_req(m, "and now?")).await.expect("open");
        drain(&mut s).await.1.expect("done");
        assert_near(expires_in(&c, m).await, time::Duration::hours(1));
        c.load(m, None, None).await.expect("load");
        assert_near(expires_in(&c, m).await, time::Duration::hours(1));
        assert_eq!(sim.load_count(), 1);
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Reloads
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn only_load_time_options_cause_reloads() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        let m = "llama3.2:3b";
        let ctx8k = opts(json!({"num_ctx": 8192}));
        c.load(m, Some(KeepAlive::FOREVER), Some(&ctx8k))
            .await
            .expect("load");
        assert_eq!((sim.load_count(), sim.reload_count()), (1, 0));

        let same = ChatRequest {
            options: Some(ctx8k.clone()),
            ..chat_req(m, "same options")
        };
        c.chat(&same).await.expect("chat");
        assert_eq!((sim.load_count(), sim.reload_count()), (1, 0));

        let sampling = ChatRequest {
            options: Some(opts(
                json!({"num_ctx": 8192, "temperature": 0.1, "top_p": 0.5}),
            )),
            ..chat_req(m, "sampling only")
        };
        c.chat(&sampling).await.expect("chat");
        assert_eq!((sim.load_count(), sim.reload_count()), (1, 0));

        let bigger = ChatRequest {
            options: Some(opts(json!({"num_ctx": 16384}))),
            ..chat_req(m, "bigger context")
        };
        c.chat(&bigger).await.expect("chat");
        assert_eq!((sim.load_count(), sim.reload_count()), (2, 1));
        let entry = ps_entry(&c, m).await.expect("loaded");
        assert_eq!(entry.context_length, Some(16384));
        // The reloaded runner kept nothing of the old one's keep-alive: it got the default.
        assert_near(expires_in(&c, m).await, time::Duration::minutes(5));

        c.chat(&bigger).await.expect("chat");
        assert_eq!(sim.reload_count(), 1);
        // The §5 trap: no num_ctx at all means the default context, a different one.
        c.chat(&chat_req(m, "no options")).await.expect("chat");
        assert_eq!(sim.reload_count(), 2);
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Faults → typed errors
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn stall_mid_stream_is_stream_stalled() {
    bounded(async {
        let sim = sim().await;
        let idle = Duration::from_millis(300);
        let c = OllamaClient::new(config(&sim, idle)).expect("client");
        sim.fault(Fault::StallMidStream { after_chunks: 2 });
        let started = Instant::now();
        let mut s = c
            .chat_stream(&chat_req("llama3.2:3b", "hi"))
            .await
            .expect("open");
        let (pieces, last) = drain(&mut s).await;
        assert_eq!(pieces.len(), 2);
        assert!(REPLY.starts_with(&pieces.concat()));
        match last {
            Err(Error::StreamStalled { after }) => assert_eq!(after, idle),
            other => panic!("expected StreamStalled, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        // The fault was one-shot: the next stream completes.
        let mut s = c
            .chat_stream(&chat_req("llama3.2:3b", "again"))
            .await
            .expect("open");
        assert_eq!(drain(&mut s).await.0.concat(), REPLY);
    })
    .await;
}

#[tokio::test]
async fn malformed_line_is_invalid_chunk() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        sim.fault(Fault::MalformedLine { after_chunks: 1 });
        let mut s = c
            .chat_stream(&chat_req("llama3.2:3b", "hi"))
            .await
            .expect("open");
        let (pieces, last) = drain(&mut s).await;
        assert_eq!(pieces.len(), 1);
        match last {
            Err(Error::InvalidChunk { line, reason }) => {
                assert_eq!(line, 2);
                assert!(!reason.is_empty());
            }
            other => panic!("expected InvalidChunk, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn truncated_stream_is_stream_truncated() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        sim.fault(Fault::TruncateStream { after_chunks: 3 });
        let mut s = c
            .chat_stream(&chat_req("llama3.2:3b", "hi"))
            .await
            .expect("open");
        let (pieces, last) = drain(&mut s).await;
        assert_eq!(pieces.len(), 3);
        match last {
            Err(Error::StreamTruncated { received }) => assert_eq!(received, 3),
            other => panic!("expected StreamTruncated, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn error_mid_stream_is_stream_error_with_message() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        let msg = "an error was encountered while running the model: <boom> & \"quotes\"";
        sim.fault(Fault::ErrorMidStream {
            after_chunks: 2,
            message: msg.into(),
        });
        let mut s = c
            .chat_stream(&chat_req("llama3.2:3b", "hi"))
            .await
            .expect("open");
        let (pieces, last) = drain(&mut s).await;
        assert_eq!(pieces.len(), 2);
        match last {
            Err(Error::StreamError { message }) => assert_eq!(message, msg),
            other => panic!("expected StreamError, got {other:?}"),
        }

        // Before any chunk it is a real HTTP 500, for streams and for stream:false.
        for streamed in [true, false] {
            sim.fault(Fault::ErrorMidStream {
                after_chunks: 0,
                message: msg.into(),
            });
            let req = chat_req("llama3.2:3b", "hi");
            let res = if streamed {
                c.chat_stream(&req).await.map(|_| ())
            } else {
                c.chat(&req).await.map(|_| ())
            };
            match res {
                Err(Error::Api { status, message }) => {
                    assert_eq!(
                        (status, message.as_str()),
                        (500, msg),
                        "streamed={streamed}"
                    );
                }
                other => panic!("expected Api 500 (streamed={streamed}), got {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn status_faults_are_api_errors_with_ollamas_text() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        let cases = [
            (404, r#"model "ghost" not found, try pulling it first"#),
            (400, "model is required"),
            (500, r#"option "num_ctx" must be of type integer"#),
            (
                503,
                "server busy, please try again.  maximum pending requests exceeded",
            ),
        ];
        for (status, text) in cases {
            sim.fault(Fault::Status {
                status,
                message: text.into(),
                count: Some(1),
            });
            match c.chat(&chat_req("llama3.2:3b", "hi")).await {
                Err(Error::Api {
                    status: got,
                    message,
                }) => assert_eq!((got, message.as_str()), (status, text)),
                other => panic!("expected Api {status}, got {other:?}"),
            }
        }
        // Streams and quick calls get the same treatment.
        sim.fault(Fault::Status {
            status: 503,
            message: cases[3].1.into(),
            count: Some(2),
        });
        match c.chat_stream(&chat_req("llama3.2:3b", "hi")).await {
            Err(Error::Api {
                status: 503,
                message,
            }) => assert_eq!(message, cases[3].1),
            other => panic!("expected Api 503, got {other:?}"),
        }
        match c.ps().await {
            Err(Error::Api {
                status: 503,
                message,
            }) => assert_eq!(message, cases[3].1),
            other => panic!("expected Api 503, got {other:?}"),
        }
        // count exhausted: back to normal.
        assert!(c.ps().await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn real_validation_errors_are_api_errors() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        let expect_api = |res: Result<ChatChunk, Error>, status: u16, text: &str| match res {
            Err(Error::Api {
                status: got,
                message,
            }) => assert_eq!((got, message.as_str()), (status, text)),
            other => panic!("expected Api {status} {text:?}, got {other:?}"),
        };
        expect_api(
            c.chat(&chat_req("ghost", "hi")).await,
            404,
            "model 'ghost' not found",
        );
        expect_api(c.chat(&chat_req("", "hi")).await, 400, "model is required");
        let bad_type = ChatRequest {
            options: Some(opts(json!({"num_ctx": "8k"}))),
            ..chat_req("llama3.2:3b", "hi")
        };
        expect_api(
            c.chat(&bad_type).await,
            500,
            r#"option "num_ctx" must be of type integer"#,
        );
        let bad_think = ChatRequest {
            think: Some(yollayah_core::ollama::types::Think::On),
            ..chat_req("llama3.2:3b", "hi")
        };
        expect_api(
            c.chat(&bad_think).await,
            400,
            r#""llama3.2:3b" does not support thinking"#,
        );
        match c.chat_stream(&chat_req("ghost", "hi")).await {
            Err(Error::Api {
                status: 404,
                message,
            }) => {
                assert_eq!(message, "model 'ghost' not found")
            }
            other => panic!("expected 404, got {other:?}"),
        }
        assert!(c.ps().await.expect("ps").models.is_empty());
    })
    .await;
}

#[tokio::test]
async fn runtime_oom_is_stream_error_and_unloads_everything() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        c.load("qwen2.5:7b", Some(KeepAlive::FOREVER), None)
            .await
            .expect("load qwen");
        c.load("llama3.2:3b", Some(KeepAlive::FOREVER), None)
            .await
            .expect("load llama");
        assert_eq!(c.ps().await.expect("ps").models.len(), 2);
        sim.fault(Fault::RuntimeOom);
        let mut s = c
            .chat_stream(&chat_req("llama3.2:3b", "hi"))
            .await
            .expect("open");
        let (pieces, last) = drain(&mut s).await;
        assert_eq!(pieces.len(), 2);
        match last {
            Err(Error::StreamError { message }) => {
                assert!(message.contains("out of memory"), "{message}");
            }
            other => panic!("expected StreamError, got {other:?}"),
        }
        // Forever-models included: everything is expired.
        assert!(c.ps().await.expect("ps").models.is_empty());
        assert!(sim.loaded_models().is_empty());
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Server going away; no hangs
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn stop_is_unreachable_quickly_and_restart_recovers_empty() {
    bounded(async {
        let sim = sim().await;
        let c = client(&sim);
        c.load("llama3.2:3b", Some(KeepAlive::FOREVER), None)
            .await
            .expect("load");
        sim.stop().await;
        assert!(!sim.is_running().await);
        for _ in 0..2 {
            let started = Instant::now();
            match c.version().await {
                Err(Error::Unreachable { url, .. }) => assert_eq!(url, sim.url()),
                other => panic!("expected Unreachable, got {other:?}"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "refused connection took {:?}",
                started.elapsed()
            );
        }
        match c.chat_stream(&chat_req("llama3.2:3b", "hi")).await {
            Err(Error::Unreachable { .. }) => {}
            other => panic!("expected Unreachable, got {other:?}"),
        }

        sim.restart().await;
        assert!(
            eventually(Duration::from_secs(5), || async {
                c.version().await.is_ok()
            })
            .await,
            "version never answered after restart"
        );
        // A restart unloads everything, forever-models included.
        assert!(c.ps().await.expect("ps").models.is_empty());
        let chunk = c
            .chat(&chat_req("llama3.2:3b", "back?"))
            .await
            .expect("chat");
        assert_eq!(chunk.message.map(|m| m.content).as_deref(), Some(REPLY));
    })
    .await;
}

#[tokio::test]
async fn restart_during_open_stream_ends_it_with_an_error() {
    bounded(async {
        let sim = sim().await;
        // Idle timeout far above the test's expectations: the error must come from the
        // dropped connection, not from the client's own clock.
        let c = OllamaClient::new(config(&sim, Duration::from_secs(15))).expect("client");
        sim.fault(Fault::StallMidStream { after_chunks: 2 });
        let mut s = c
            .chat_stream(&chat_req("llama3.2:3b", "hi"))
            .await
            .expect("open");
        for _ in 0..2 {
            assert!(s.next().await.expect("item").is_ok());
        }
        let started = Instant::now();
        sim.restart().await;
        match s.next().await {
            Some(Err(Error::StreamTruncated { received })) => assert_eq!(received, 2),
            Some(Err(Error::Http(_))) => {}
            other => panic!("expected StreamTruncated or Http, got {other:?}"),
        }
        assert!(s.next().await.is_none());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(c.ps().await.expect("ps after restart").models.is_empty());
    })
    .await;
}

#[tokio::test]
async fn silent_server_is_bounded_by_client_deadlines() {
    bounded(async {
        let sim = sim().await;
        let cfg = ClientConfig {
            load_timeout: Duration::from_millis(400),
            ..config(&sim, Duration::from_secs(15))
        };
        let c = OllamaClient::new(cfg).expect("client");

        // Headers arrive, the first chunk never does: the first-byte deadline fires.
        sim.fault(Fault::StallMidStream { after_chunks: 0 });
        let started = Instant::now();
        let mut s = c
            .chat_stream(&chat_req("llama3.2:3b", "hi"))
            .await
            .expect("open");
        match s.next().await {
            Some(Err(Error::Timeout { what, after })) => {
                assert!(what.contains("/api/chat"), "{what}");
                assert_eq!(after, Duration::from_millis(400));
            }
            other => panic!("expected Timeout, got {other:?}"),
        }
        assert!(s.next().await.is_none());
        assert!(started.elapsed() < Duration::from_secs(3));

        // Non-streaming: the whole-call deadline fires.
        sim.fault(Fault::StallMidStream { after_chunks: 0 });
        let started = Instant::now();
        match c.chat(&chat_req("llama3.2:3b", "hi")).await {
            Err(Error::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(400)),
            other => panic!("expected Timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(3));

        // And the server itself is still fine afterwards.
        assert!(c.version().await.is_ok());
    })
    .await;
}
