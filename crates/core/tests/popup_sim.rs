//! Issue 13 against `ollama-sim` over the wire: thinking streamed, stored and never re-sent;
//! images carried base64 and stored with history; refusal on a non-vision model naming one the
//! user has; pulls with progress, failures and cancel; fit predictions vs the simulator's
//! placement after loading.

mod common;

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use common::{bounded, fast_scenario, memory_history};
use ollama_sim::{Fault, ModelSpec, Scenario, SimHandle};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use yollayah_core::chat::{ChatEngine, Outgoing, ReplyEvent, SharedHistory};
use yollayah_core::fit::{self, FitPrediction, FitSettings};
use yollayah_core::images::{ImageLimits, PreparedImage, prepare};
use yollayah_core::machine::Machine;
use yollayah_core::models::{self, ThinkSupport};
use yollayah_core::ollama::types::{KeepAlive, Options, Think};
use yollayah_core::persona::PersonaSource;
use yollayah_core::placement::Placement;
use yollayah_core::pull;

fn engine(sim: &SimHandle, model: &str, history: SharedHistory) -> ChatEngine {
    let mut profile = common::profile();
    profile.model = model.into();
    ChatEngine::new(
        common::client(sim),
        Arc::new(PersonaSource::bundled().expect("persona")),
        Arc::new(profile),
        history,
        None,
    )
}

async fn send(
    engine: &ChatEngine,
    conversation: Option<yollayah_core::history::ConversationId>,
    outgoing: Outgoing,
) -> (yollayah_core::chat::ReplyOutcome, Vec<ReplyEvent>) {
    let mut events = Vec::new();
    let out = engine
        .send_message(conversation, outgoing, CancellationToken::new(), |e| {
            events.push(e)
        })
        .await
        .expect("sent");
    (out, events)
}

fn chat_bodies(sim: &SimHandle) -> Vec<Value> {
    sim.requests()
        .into_iter()
        .filter(|r| r.path == "/api/chat")
        .map(|r| r.body)
        .collect()
}

fn png(w: u32, h: u32) -> PreparedImage {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 40]));
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .expect("png");
    prepare(&bytes, &ImageLimits::default()).expect("prepared")
}

#[tokio::test]
async fn thinking_streams_is_stored_and_never_resent() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.expect("sim");
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("h.sqlite3");
        let history: SharedHistory = Arc::new(std::sync::Mutex::new(
            yollayah_core::history::History::open(&path).expect("history"),
        ));
        let e = engine(&sim, "qwen3:8b", history.clone());
        let (out, events) = send(&e, None, Outgoing::text("hi")).await;
        let first_delta = events
            .iter()
            .position(|e| matches!(e, ReplyEvent::Delta { .. }))
            .expect("answer");
        let thinking: String = events
            .iter()
            .filter_map(|e| match e {
                ReplyEvent::Thinking { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert!(thinking.starts_with("The user said hello."), "{thinking}");
        assert!(
            events[..first_delta]
                .iter()
                .any(|e| matches!(e, ReplyEvent::Thinking { .. }))
        );
        let done_at = events
            .iter()
            .position(|e| matches!(e, ReplyEvent::ThinkingDone { .. }))
            .expect("thinking done");
        assert_eq!(done_at + 1, first_delta, "collapse right before the answer");
        assert_eq!(out.thinking, thinking);
        assert!(out.stats.expect("stats").thinking_ms.is_some());

        // Second turn in the same conversation: the first reply goes back without its trace.
        let (out2, _) = send(&e, Some(out.conversation), Outgoing::text("and?")).await;
        let bodies = chat_bodies(&sim);
        let last = bodies.last().expect("request");
        let msgs = last["messages"].as_array().expect("messages");
        let assistant: Vec<&Value> = msgs.iter().filter(|m| m["role"] == "assistant").collect();
        assert_eq!(assistant.len(), 1);
        assert_eq!(assistant[0]["content"], out.text.as_str());
        assert!(
            msgs.iter().all(|m| m.get("thinking").is_none()),
            "thinking re-sent: {last}"
        );
        assert!(last.get("think").is_none(), "server default when unset");

        // Survives a reopen of the database (schema v3 on disk).
        drop(e);
        drop(history);
        let reopened = yollayah_core::history::History::open(&path).expect("reopen");
        let stored = reopened.messages(out2.conversation).expect("messages");
        let replies: Vec<_> = stored.iter().filter(|m| m.role == "assistant").collect();
        assert_eq!(replies[0].thinking.as_deref(), Some(thinking.as_str()));
        assert!(replies[0].thinking_ms.is_some());
        assert!(
            stored
                .iter()
                .filter(|m| m.role == "user")
                .all(|m| m.thinking.is_none())
        );
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn think_choice_follows_the_model() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.expect("sim");
        let cases = [
            ("qwen3:8b", Think::Off, Some(Value::Bool(false))),
            ("qwen3:8b", Think::High, Some(Value::Bool(true))),
            ("gpt-oss:20b", Think::Off, Some(Value::from("low"))),
            ("llama3.2:3b", Think::On, None),
        ];
        for (model, wanted, sent) in cases {
            let e = engine(&sim, model, memory_history());
            let outgoing = Outgoing {
                think: Some(wanted),
                ..Outgoing::text("hi")
            };
            let (out, _) = send(&e, None, outgoing).await;
            let body = chat_bodies(&sim).pop().expect("request");
            assert_eq!(body.get("think").cloned(), sent, "{model} {wanted:?}");
            // gpt-oss thinks even when asked not to; qwen3 off does not.
            assert_eq!(
                !out.thinking.is_empty(),
                model == "gpt-oss:20b" || (model == "qwen3:8b" && wanted != Think::Off),
                "{model} {wanted:?}"
            );
        }
        let (think, vision) = engine(&sim, "gpt-oss:20b", memory_history())
            .model_support()
            .await
            .expect("support");
        assert_eq!((think, vision), (ThinkSupport::LevelsOnly, false));
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn images_go_base64_are_stored_and_resent() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.expect("sim");
        let history = memory_history();
        let e = engine(&sim, "gemma3:4b", history.clone());
        let image = png(64, 48);
        let outgoing = Outgoing {
            images: vec![image.clone()],
            ..Outgoing::text("what is this?")
        };
        let (out, _) = send(&e, None, outgoing).await;
        assert!(out.text.starts_with("I see 1 image."), "{}", out.text);
        let body = chat_bodies(&sim).pop().expect("request");
        let user = body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .rfind(|m| m["role"] == "user")
            .cloned()
            .expect("user message");
        assert_eq!(user["images"], serde_json::json!([image.base64()]));

        let stored = history
            .lock()
            .expect("lock")
            .messages(out.conversation)
            .expect("messages");
        let refs = &stored[0].images;
        assert_eq!(refs.len(), 1);
        assert_eq!((refs[0].width, refs[0].height), (64, 48));
        let id = refs[0].id;
        assert_eq!(
            history.lock().expect("lock").image_data(id).expect("read"),
            Some(image.data.clone())
        );

        // A follow-up carries the earlier picture again; the reply counts it.
        let (out2, _) = send(&e, Some(out.conversation), Outgoing::text("and now?")).await;
        assert!(out2.text.starts_with("I see 1 image."), "{}", out2.text);

        // Deleting the conversation removes its images.
        history
            .lock()
            .expect("lock")
            .delete_conversation(out.conversation)
            .expect("delete");
        assert_eq!(
            history.lock().expect("lock").image_data(id).expect("read"),
            None
        );
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn images_for_a_text_model_are_refused_naming_a_vision_model() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.expect("sim");
        let history = memory_history();
        let e = engine(&sim, "llama3.2:3b", history.clone());
        let outgoing = Outgoing {
            images: vec![png(8, 8)],
            ..Outgoing::text("look")
        };
        let err = e
            .send_message(None, outgoing, CancellationToken::new(), |_| {})
            .await
            .expect_err("refused");
        match &err {
            yollayah_core::Error::NoVision { model, suggestion } => {
                assert_eq!(model, "llama3.2:3b");
                assert_eq!(suggestion.as_deref(), Some("gemma3:4b"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "llama3.2:3b cannot see images; gemma3:4b can: switch to it to send images"
        );
        assert!(chat_bodies(&sim).is_empty(), "nothing was sent");
        assert!(
            history
                .lock()
                .expect("lock")
                .list_conversations(10)
                .expect("list")
                .is_empty()
        );
        sim.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn pull_progress_failures_and_cancel() {
    bounded(async {
        let sim = ollama_sim::start(Scenario {
            pull_bytes_per_second: 4e9,
            ..fast_scenario()
        })
        .await
        .expect("sim");
        let client = common::client(&sim);
        let mut seen = Vec::new();
        let done = pull::pull(&client, "qwen3:0.6b", &CancellationToken::new(), |s| {
            seen.push(s.clone())
        })
        .await
        .expect("pulled");
        assert!(done.done);
        assert_eq!(seen.first().map(|s| s.status.as_str()), Some("pulling manifest"));
        assert!(done.total >= 522_653_767 && done.completed == done.total);
        assert!(seen.windows(2).all(|w| w[0].completed <= w[1].completed));
        assert!(seen.iter().any(|s| s.bytes_per_second.is_some()));
        let list = models::list(&client).await.expect("list");
        let q = list.iter().find(|m| m.name == "qwen3:0.6b").expect("pulled model listed");
        assert_eq!(q.think, ThinkSupport::Toggle);

        let err = pull::pull(&client, "nope:1b", &CancellationToken::new(), |_| {})
            .await
            .expect_err("unknown");
        assert!(
            matches!(&err, yollayah_core::Error::StreamError { message } if message == "pull model manifest: file does not exist"),
            "{err:?}"
        );
        sim.shutdown().await;

        // A broken download, and a cancel mid-way, on a slow registry.
        let sim = ollama_sim::start(Scenario {
            pull_bytes_per_second: 2e8,
            ..fast_scenario()
        })
        .await
        .expect("sim");
        let client = common::client(&sim);
        sim.fault(Fault::BrokenPull {
            after_percent: 5,
            message: None,
        });
        let err = pull::pull(&client, "qwen3:0.6b", &CancellationToken::new(), |_| {})
            .await
            .expect_err("broken");
        assert_eq!(
            err.to_string(),
            "Ollama reported an error mid-stream: max retries exceeded: unexpected EOF"
        );
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        let started = std::time::Instant::now();
        let err = pull::pull(&client, "qwen3:0.6b", &cancel, move |s| {
            if s.completed > 0 {
                c2.cancel();
            }
        })
        .await
        .expect_err("cancelled");
        assert!(matches!(err, yollayah_core::Error::Cancelled), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(sim.pulled_models().is_empty());
        sim.shutdown().await;
    })
    .await;
}

/// Loads `model` as the app would (explicit num_ctx) and returns its `/api/ps` entry.
async fn load(
    client: &yollayah_core::ollama::client::OllamaClient,
    model: &str,
    ctx: u64,
) -> yollayah_core::ollama::types::PsModel {
    let mut opts = Options::new();
    opts.insert("num_ctx".into(), ctx.into());
    client
        .load(model, Some(KeepAlive::Duration("5m".into())), Some(&opts))
        .await
        .expect("load");
    common::ps_entry(client, model).await.expect("loaded")
}

#[tokio::test]
async fn predictions_agree_with_the_simulated_placement() {
    bounded(async {
        let mut scenario = fast_scenario();
        scenario.models.push(ModelSpec {
            name: "nomic-embed-text:latest".into(),
            family: Some("nomic-bert".into()),
            file_size: Some(274_302_450),
            block_count: Some(12),
            embedding_length: Some(768),
            head_count: Some(12),
            head_count_kv: Some(12),
            context_length: Some(2048),
            capabilities: Some(vec!["embedding".into()]),
            ..ModelSpec::default()
        });
        let sim = ollama_sim::start(scenario).await.expect("sim");
        let client = common::client(&sim);
        let mut machine = Machine::simulator(&sim.url()).expect("machine");
        let settings = FitSettings::default();
        let ctx = 4096;
        let predictions = |list: &[models::ModelEntry], name: &str| {
            list.iter()
                .find(|m| m.name == name)
                .and_then(|m| m.fit.clone())
                .expect("prediction")
        };

        let gpu = machine.observe(true).await.gpu;
        let list = models::list_with_predictions(&client, &gpu, ctx, &settings)
            .await
            .expect("list");
        // Embedding-only models are listed but not offered for chat, and get no prediction.
        let embed = list
            .iter()
            .find(|m| m.name == "nomic-embed-text:latest")
            .expect("listed");
        assert!(!embed.chat && embed.fit.is_none());
        assert!(
            models::chat_models(&list)
                .iter()
                .all(|m| m.name != "nomic-embed-text:latest")
        );

        // Fits: qwen3:8b on an empty 12 GB GPU.
        let fits = predictions(&list, "qwen3:8b");
        assert_eq!(fits.prediction, FitPrediction::FitsGpu, "{}", fits.summary);
        assert_eq!(fits.summary, "fits on the GPU");
        let ps = load(&client, "qwen3:8b", ctx).await;
        assert_eq!(Placement::from_ps(ps.size, ps.size_vram), Placement::Gpu);
        assert_eq!(fit::check(&fits, &ps), None);

        // Spills: gpt-oss:20b (13.8 GB) cannot fit 12 GB; predicted after unloading qwen3.
        let spill = predictions(&list, "gpt-oss:20b");
        let FitPrediction::Spills {
            cpu_pct,
            largest_ctx,
            ..
        } = spill.prediction.clone()
        else {
            panic!("expected a spill: {spill:?}");
        };
        assert!(largest_ctx.is_none(), "no context makes 13.8 GB fit");
        assert!(
            spill
                .summary
                .starts_with(&format!("≈ {cpu_pct} % on the CPU"))
        );
        let ps = load(&client, "gpt-oss:20b", ctx).await;
        assert!(
            matches!(
                Placement::from_ps(ps.size, ps.size_vram),
                Placement::Partial { .. }
            ),
            "{ps:?}"
        );
        assert_eq!(
            fit::check(&spill, &ps),
            None,
            "predicted {cpu_pct} %: {ps:?}"
        );
        client.unload("gpt-oss:20b").await.expect("unload");

        // Needs an unload: with qwen2.5:7b loaded, qwen2.5:14b only fits once it goes.
        load(&client, "qwen2.5:7b", ctx).await;
        let gpu = machine.observe(true).await.gpu;
        let list = models::list_with_predictions(&client, &gpu, ctx, &settings)
            .await
            .expect("list");
        let needs = predictions(&list, "qwen2.5:14b");
        assert_eq!(
            needs.prediction,
            FitPrediction::NeedsUnload {
                unload: vec!["qwen2.5:7b".into()]
            },
            "{}",
            needs.summary
        );
        assert!(matches!(
            predictions(&list, "qwen2.5:7b").prediction,
            FitPrediction::Loaded {
                placement: Placement::Gpu
            }
        ));
        let ps = load(&client, "qwen2.5:14b", ctx).await;
        assert_eq!(fit::check(&needs, &ps), None, "{ps:?}");
        assert!(!sim.loaded_models().contains(&"qwen2.5:7b".to_string()));

        // A wrong prediction is reported, not hidden.
        let wrong = yollayah_core::fit::ModelFit {
            prediction: FitPrediction::Spills {
                cpu_pct: 60,
                largest_ctx: None,
                unload: vec![],
            },
            ..needs
        };
        let mismatch = fit::check(&wrong, &ps).expect("mismatch");
        assert_eq!(mismatch.actual, Placement::Gpu);
        assert!(
            mismatch.message.contains("but it loaded as 100% GPU"),
            "{}",
            mismatch.message
        );
        sim.shutdown().await;
    })
    .await;
}

/// A server on another machine: the watchdog has no GPU facts for it, so nothing is predicted
/// from this machine's GPU, and each model says why.
#[tokio::test]
async fn a_remote_server_gets_no_prediction_and_says_why() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.expect("sim");
        let client = common::client(&sim);
        let gpu = yollayah_core::machine::MachineView::none(
            "Ollama runs on another machine (remote scope)",
        )
        .gpu;
        let list = models::list_with_predictions(&client, &gpu, 4096, &FitSettings::default())
            .await
            .expect("list");
        let chat = models::chat_models(&list);
        assert!(!chat.is_empty());
        for m in chat {
            let fit = m.fit.as_ref().expect("a fit entry");
            assert!(
                matches!(fit.prediction, FitPrediction::Unknown { .. }),
                "{}: {:?}",
                m.name,
                fit.prediction
            );
            assert!(
                fit.summary.contains("another machine"),
                "{}: {}",
                m.name,
                fit.summary
            );
        }
    })
    .await;
}

/// ollama/ollama#17290 before loading: a server that refuses this driver uses no GPU, so the
/// picker must not say "fits on the GPU" about an empty 12 GB board; and after the load the
/// prediction holds (no FIT_MISPREDICTED to report).
#[tokio::test]
async fn a_driver_the_server_refuses_is_predicted_as_cpu() {
    bounded(async {
        let mut scenario = fast_scenario();
        scenario.version = "0.32.1".into();
        scenario.driver_version = Some("535.309.01".into());
        let sim = ollama_sim::start(scenario).await.expect("sim");
        let client = common::client(&sim);
        let mut machine = Machine::simulator(&sim.url()).expect("machine");
        let gpu = machine.observe(true).await.gpu;
        assert!(gpu.gpus.iter().all(|g| g.memory_free > 8 << 30), "{gpu:?}");
        let list = models::list_with_predictions(&client, &gpu, 4096, &FitSettings::default())
            .await
            .expect("list");
        let fit = list
            .iter()
            .find(|m| m.name == "qwen3:8b")
            .and_then(|m| m.fit.clone())
            .expect("prediction");
        assert!(
            matches!(fit.prediction, FitPrediction::Spills { cpu_pct: 100, .. }),
            "{fit:?}"
        );
        assert!(
            fit.summary.contains("535.309.01") && fit.summary.contains("570"),
            "{}",
            fit.summary
        );
        let ps = load(&client, "qwen3:8b", 4096).await;
        assert_eq!(Placement::from_ps(ps.size, ps.size_vram), Placement::Cpu);
        assert_eq!(fit::check(&fit, &ps), None);
        // The same board under 0.29 (no driver check): the prediction is memory's again.
        let settings = FitSettings {
            server_version: Some("0.29.3".into()),
            ..FitSettings::default()
        };
        let list = models::list_with_predictions(&client, &gpu, 4096, &settings)
            .await
            .expect("list");
        let small = list
            .iter()
            .find(|m| m.name == "llama3.2:3b")
            .and_then(|m| m.fit.clone())
            .expect("prediction");
        assert!(
            !matches!(small.prediction, FitPrediction::Spills { cpu_pct: 100, .. }),
            "{small:?}"
        );
    })
    .await;
}
