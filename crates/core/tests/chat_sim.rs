//! The chat engine against `ollama-sim`, alone and with the watchdog: a warmed model is never
//! reloaded by a chat (same load-time options, byte-identical persona), persona on/off costs no
//! reload, cut or cancelled replies are kept and marked, the user's message survives Ollama
//! being down, and a load caused by a chat is classified before its first token is shown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{MODEL, Rig, bounded, fast_scenario, memory_history, ours_loaded, persona, settings};
use ollama_sim::{Fault, Scenario};
use serde_json::Value;
use tokio::sync::broadcast::error::TryRecvError;
use tokio_util::sync::CancellationToken;
use yollayah_core::chat::{ChatEngine, Outgoing, ReplyEvent, ReplyOutcome, SharedHistory};
use yollayah_core::events::{Event, Verdict, WarmEvent};
use yollayah_core::history::{MessageStatus, StoredMessage};
use yollayah_core::ollama::types::{ChatRequest, KeepAlive, LOAD_TIME_OPTIONS, Message, Options};
use yollayah_core::persona::PersonaSource;
use yollayah_core::placement::Placement;
use yollayah_core::warm::WarmReason;
use yollayah_core::watchdog::WatchdogSettings;

/// Sends one message and collects the reply's events.
async fn send(
    engine: &ChatEngine,
    conversation: Option<yollayah_core::history::ConversationId>,
    text: &str,
) -> (ReplyOutcome, Vec<ReplyEvent>) {
    let mut events = Vec::new();
    let out = engine
        .send_message(
            conversation,
            Outgoing::text(text),
            CancellationToken::new(),
            |e| events.push(e),
        )
        .await
        .expect("history works");
    (out, events)
}

fn stored(history: &SharedHistory, out: &ReplyOutcome) -> Vec<StoredMessage> {
    history
        .lock()
        .expect("history lock")
        .messages(out.conversation)
        .expect("messages")
}

/// Bodies of every recorded `/api/chat` request.
fn chat_bodies(sim: &ollama_sim::SimHandle) -> Vec<Value> {
    sim.requests()
        .into_iter()
        .filter(|r| r.path == "/api/chat")
        .map(|r| r.body)
        .collect()
}

/// The load-time keys of a request body's `options`, as they were sent.
fn load_keys(body: &Value) -> Vec<(String, Value)> {
    let options = body.get("options").and_then(Value::as_object);
    LOAD_TIME_OPTIONS
        .iter()
        .filter_map(|k| {
            options
                .and_then(|o| o.get(*k))
                .map(|v| ((*k).to_owned(), v.clone()))
        })
        .collect()
}

/// A chat engine without a watchdog, on the bundled persona.
fn bare_engine(sim: &ollama_sim::SimHandle, history: SharedHistory) -> ChatEngine {
    ChatEngine::new(
        common::client(sim),
        Arc::new(PersonaSource::bundled().expect("persona")),
        Arc::new(common::profile()),
        history,
        None,
    )
}

#[tokio::test]
async fn warmed_model_serves_chat_without_reload() {
    bounded(async {
        // A visible load time, so "no load during the chat" is measurable.
        let scenario = Scenario {
            load_ms: 300,
            ..fast_scenario()
        };
        let mut rig = Rig::start(scenario, settings()).await;
        let warm_ms = rig.wait_warm().await;
        assert!(warm_ms >= 300, "the warm-up did the load ({warm_ms} ms)");
        let engine = rig.chat_engine();

        let (first, events) = send(&engine, None, "Hello there").await;
        assert!(first.incomplete.is_none(), "{first:?}");
        assert!(
            matches!(events.last(), Some(ReplyEvent::Done { .. })),
            "{events:?}"
        );
        let stats = first.stats.expect("stats");
        let load_ms = stats.load_ms.expect("load_duration in the final chunk");
        assert!(load_ms < 100.0, "chat waited for a load: {load_ms} ms");
        let (second, _) = send(&engine, Some(first.conversation), "And again").await;
        assert!(second.incomplete.is_none());
        assert!(
            second
                .stats
                .and_then(|s| s.load_ms)
                .is_some_and(|ms| ms < 100.0)
        );
        assert_eq!(rig.sim.reload_count(), 0);
        assert_eq!(rig.sim.load_count(), 1);

        // The warm-up and both chats carry the very same load-time options.
        let warm = rig
            .sim
            .requests()
            .into_iter()
            .find(|r| r.path == "/api/generate" && r.body.get("model") == Some(&MODEL.into()))
            .expect("warm-up request");
        let chats = chat_bodies(&rig.sim);
        assert_eq!(chats.len(), 2);
        let warm_keys = load_keys(&warm.body);
        assert!(
            warm_keys.is_empty(),
            "the bundled persona pins nothing, so the server's context is used: {warm_keys:?}"
        );
        let loaded_ctx = rig.watchdog.latest().loaded_num_ctx;
        for chat in &chats {
            // A loaded model keeps its context: the chat sends exactly that, or nothing.
            let keys = load_keys(chat);
            assert!(
                keys.is_empty()
                    || keys == [("num_ctx".to_owned(), Value::from(loaded_ctx.unwrap_or(0)))],
                "{chat}"
            );
            assert_eq!(chat.get("keep_alive"), warm.body.get("keep_alive"));
        }

        // messages[0] is the persona, as a system message, byte-identical in both requests.
        let system = &persona();
        let m0: Vec<&Value> = chats.iter().map(|c| &c["messages"][0]).collect();
        assert_eq!(m0[0]["role"], "system");
        assert_eq!(m0[0]["content"].as_str(), Some(system.system_prompt()));
        assert_eq!(
            serde_json::to_string(m0[0]).expect("json"),
            serde_json::to_string(m0[1]).expect("json")
        );
        // The second request carries the first exchange as history.
        let roles: Vec<&str> = chats[1]["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["role"].as_str())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
    })
    .await;
}

#[tokio::test]
async fn persona_on_and_off_cause_no_reload() {
    // The server's default context (4096 here by the VRAM tier, then 32768 and 2048 set
    // explicitly) is never 8192: nothing Yollayah sends may differ from it.
    for default_num_ctx in [None, Some(32_768), Some(2048)] {
        persona_on_and_off_cause_no_reload_on(Scenario {
            default_num_ctx,
            ..fast_scenario()
        })
        .await;
    }
}

async fn persona_on_and_off_cause_no_reload_on(scenario: Scenario) {
    bounded(async {
        let mut rig = Rig::start(scenario, settings()).await;
        rig.wait_warm().await;
        let engine = rig.chat_engine();
        let (out, _) = send(&engine, None, "With the persona").await;
        assert!(out.incomplete.is_none());

        // A plain chat: no system message, only the profile's options.
        let plain = ChatRequest {
            model: MODEL.into(),
            messages: vec![Message::new("user", "Without a persona")],
            options: Some(rig.profile.chat_options(&Options::new())),
            ..ChatRequest::default()
        };
        let reply = rig.client.chat(&plain).await.expect("plain chat");
        assert!(reply.done);
        let (out, _) = send(&engine, Some(out.conversation), "Persona again").await;
        assert!(out.incomplete.is_none());

        let chats = chat_bodies(&rig.sim);
        assert_eq!(chats.len(), 3);
        assert_eq!(
            chats[1]["messages"][0]["role"], "user",
            "the plain chat had no persona"
        );
        assert_eq!(chats[0]["messages"][0]["role"], "system");
        // Re-asserting keep_alive after another client shortened it: still no reload.
        let other = common::client(&rig.sim);
        other
            .load(MODEL, Some(KeepAlive::Seconds(60.0)), None)
            .await
            .expect("other client");
        rig.events
            .wait_for("re-assert", |e| {
                matches!(e, Event::Warm(WarmEvent::Reasserted { .. }))
            })
            .await;
        rig.events.ticks(3).await;
        assert_eq!(rig.sim.reload_count(), 0, "{}", rig.events.describe());
        assert_eq!(rig.sim.load_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn cut_stream_keeps_the_partial_reply_marked_incomplete() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.expect("sim");
        sim.set_reply("one two three four five six seven eight nine ten");
        let history = memory_history();
        let engine = bare_engine(&sim, history.clone());

        sim.fault(Fault::TruncateStream { after_chunks: 3 });
        let (out, events) = send(&engine, None, "Count for me").await;
        let Some(ReplyEvent::Failed {
            error,
            partial,
            category,
            ..
        }) = events.last()
        else {
            panic!("expected Failed: {events:?}");
        };
        // A cut stream is Ollama going away, whatever the error's words.
        assert_eq!(*category, yollayah_core::error::Category::OllamaDown);
        let deltas: String = events
            .iter()
            .filter_map(|e| match e {
                ReplyEvent::Delta { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert!(!partial.is_empty());
        assert_eq!(partial, &deltas);
        assert!(partial.starts_with("one"), "{partial}");
        assert!(!partial.contains("ten"), "the stream was cut: {partial}");
        assert_eq!(out.incomplete.as_deref(), Some(error.as_str()));

        let msgs = stored(&history, &out);
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert_eq!(msgs[0].role, "user");
        assert_eq!(msgs[0].content, "Count for me");
        assert_eq!(msgs[1].role, "assistant");
        assert_eq!(&msgs[1].content, partial);
        assert_eq!(
            msgs[1].status,
            MessageStatus::Incomplete {
                reason: error.clone()
            }
        );

        // An error line mid-stream: the same, with Ollama's words as the reason.
        sim.fault(Fault::ErrorMidStream {
            after_chunks: 2,
            message: "model runner has unexpectedly stopped".into(),
        });
        let (out, events) = send(&engine, Some(out.conversation), "Again").await;
        let Some(ReplyEvent::Failed {
            error,
            partial,
            category,
            ..
        }) = events.last()
        else {
            panic!("expected Failed: {events:?}");
        };
        assert!(
            error.contains("model runner has unexpectedly stopped"),
            "{error}"
        );
        // Ollama answered, with an error: not "down".
        assert_eq!(*category, yollayah_core::error::Category::Ollama);
        assert!(!partial.is_empty());
        let msgs = stored(&history, &out);
        let last = msgs.last().expect("reply stored");
        assert_eq!(&last.content, partial);
        assert_eq!(
            last.status,
            MessageStatus::Incomplete {
                reason: error.clone()
            }
        );
        // The incomplete replies are not sent back as history in the next request.
        let (ok, _) = send(&engine, Some(out.conversation), "Third time").await;
        assert!(ok.incomplete.is_none());
        let chats = chat_bodies(&sim);
        let roles: Vec<&str> = chats[2]["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["role"].as_str())
            .collect();
        assert_eq!(roles, ["system", "user", "user", "user"]);
    })
    .await;
}

#[tokio::test]
async fn cancel_mid_stream_keeps_the_partial_reply() {
    bounded(async {
        let sim = ollama_sim::start(Scenario {
            tokens_per_second: 40.0,
            ..fast_scenario()
        })
        .await
        .expect("sim");
        let long = "word ".repeat(400);
        sim.set_reply(long.trim_end());
        let history = memory_history();
        let engine = bare_engine(&sim, history.clone());

        let cancel = CancellationToken::new();
        let mut events = Vec::new();
        let out = engine
            .send_message(
                None,
                Outgoing::text("Talk for a long time"),
                cancel.clone(),
                |e| {
                    if matches!(e, ReplyEvent::Delta { .. }) {
                        cancel.cancel();
                    }
                    events.push(e);
                },
            )
            .await
            .expect("history works");
        let Some(ReplyEvent::Cancelled { partial, .. }) = events.last() else {
            panic!("expected Cancelled: {events:?}");
        };
        assert!(partial.starts_with("word"), "{partial}");
        assert!(partial.len() < long.len() / 2, "cancel took effect early");
        assert_eq!(out.incomplete.as_deref(), Some("cancelled"));
        let msgs = stored(&history, &out);
        assert_eq!(msgs[0].content, "Talk for a long time");
        assert_eq!(&msgs[1].content, partial);
        assert_eq!(
            msgs[1].status,
            MessageStatus::Incomplete {
                reason: "cancelled".into()
            }
        );
    })
    .await;
}

#[tokio::test]
async fn user_message_is_stored_while_ollama_is_down() {
    bounded(async {
        let sim = ollama_sim::start(fast_scenario()).await.expect("sim");
        let history = memory_history();
        let engine = bare_engine(&sim, history.clone());
        sim.stop().await;

        let (out, events) = send(&engine, None, "Are you there?").await;
        let Some(ReplyEvent::Failed { error, partial, .. }) = events.last() else {
            panic!("expected Failed: {events:?}");
        };
        assert!(error.contains("not reachable"), "{error}");
        assert!(partial.is_empty());
        let msgs = stored(&history, &out);
        assert_eq!(msgs[0].role, "user");
        assert_eq!(msgs[0].content, "Are you there?");
        assert_eq!(
            msgs[1].status,
            MessageStatus::Incomplete {
                reason: error.clone()
            }
        );
    })
    .await;
}

#[tokio::test]
async fn load_caused_by_a_chat_is_classified_before_the_first_token() {
    bounded(async {
        // Not warmed, and a tick so long that only the chat's own kick can classify the load
        // in time; the first tick (at start) sees nothing loaded.
        let settings = WatchdogSettings {
            tick: Duration::from_secs(60),
            warm_on_start: false,
            rewarm: false,
            ..settings()
        };
        let scenario = Scenario {
            load_ms: 200,
            ..fast_scenario()
        };
        let mut rig = Rig::start(scenario, settings).await;
        let first = rig.events.wait_snapshot("first tick", |_| true).await;
        assert_eq!(first.verdict, Verdict::NotLoaded);
        assert!(!ours_loaded(&first));
        assert_eq!(rig.sim.load_count(), 0);

        let engine = rig.chat_engine();
        let mut rx = rig.watchdog.subscribe();
        let mut before_first_token: Option<Vec<Event>> = None;
        let mut events = Vec::new();
        engine
            .send_message(None, Outgoing::text("Wake up"), CancellationToken::new(), |e| {
                if matches!(e, ReplyEvent::Delta { .. }) && before_first_token.is_none() {
                    // Everything the watchdog published before this token is shown.
                    let mut seen = Vec::new();
                    loop {
                        match rx.try_recv() {
                            Ok(ev) => seen.push(ev),
                            Err(TryRecvError::Lagged(n)) => panic!("lagged {n}"),
                            Err(_) => break,
                        }
                    }
                    before_first_token = Some(seen);
                }
                events.push(e);
            })
            .await
            .expect("history works");
        assert!(matches!(events.last(), Some(ReplyEvent::Done { .. })), "{events:?}");
        assert_eq!(rig.sim.load_count(), 1, "the chat loaded the model");

        let seen = before_first_token.expect("a first token");
        let placed = seen.iter().any(|e| {
            matches!(e, Event::PlacementChanged { model, from: None, to: Placement::Gpu } if model == MODEL)
        });
        assert!(placed, "no placement before the first token: {seen:?}");
        assert!(
            seen.iter().any(|e| matches!(e, Event::Snapshot(s) if s.verdict == Verdict::Gpu)),
            "the snapshot showed the model on the GPU before the first token"
        );
    })
    .await;
}

#[tokio::test]
async fn a_chat_after_unload_resumes_keeping_warm() {
    bounded(async {
        let mut rig = Rig::start(fast_scenario(), settings()).await;
        rig.wait_warm().await;
        rig.watchdog.unload().await.expect("unload");
        rig.events
            .wait_for("unloaded", |e| {
                matches!(e, Event::Warm(WarmEvent::Unloaded { .. }))
            })
            .await;
        // Unloaded on purpose: no automatic re-warm.
        let mark = rig.events.mark();
        rig.events.ticks(5).await;
        assert_eq!(rig.events.count_since(mark, is_started), 0);
        assert!(rig.sim.loaded_models().is_empty());

        // The user chats: that is asking for the model, so keeping warm resumes ...
        let engine = rig.chat_engine();
        let (out, _) = send(&engine, None, "Back again").await;
        assert!(out.incomplete.is_none());
        // ... and an Ollama restart afterwards is followed by a re-warm.
        rig.sim.restart().await;
        let (_, e) = rig
            .events
            .wait_for_since(mark, "re-warm after restart", is_started)
            .await;
        assert!(
            matches!(
                &e,
                Event::Warm(WarmEvent::Started {
                    reason: WarmReason::OllamaRestarted | WarmReason::AllModelsUnloaded,
                    ..
                })
            ),
            "{e:?}"
        );
        rig.wait_warm().await;
    })
    .await;
}

#[tokio::test]
async fn runtime_oom_mid_chat_fails_the_reply_and_rewarms_without_alert() {
    bounded(async {
        let mut rig = Rig::start(fast_scenario(), settings()).await;
        rig.wait_warm().await;
        let engine = rig.chat_engine();
        rig.sim.fault(Fault::RuntimeOom);
        let mark = rig.events.mark();
        let (out, events) = send(&engine, None, "Something heavy").await;
        let Some(ReplyEvent::Failed { error, .. }) = events.last() else {
            panic!("expected Failed: {events:?}");
        };
        assert!(error.contains("out of memory"), "{error}");
        assert!(out.incomplete.is_some());

        // Ollama expired every model: the watchdog notices and loads ours again.
        let (_, e) = rig
            .events
            .wait_for_since(mark, "re-warm after OOM", is_started)
            .await;
        assert!(
            matches!(
                &e,
                Event::Warm(WarmEvent::Started {
                    reason: WarmReason::AllModelsUnloaded,
                    ..
                })
            ),
            "{e:?}"
        );
        rig.wait_warm().await;
        assert_eq!(rig.sim.loaded_models(), vec![MODEL.to_owned()]);
        assert_eq!(
            rig.events
                .count_since(0, |e| matches!(e, Event::AlertRaised(_))),
            0,
            "an unloaded model is not an incident"
        );
    })
    .await;
}

fn is_started(e: &Event) -> bool {
    matches!(e, Event::Warm(WarmEvent::Started { .. }))
}

/// Another client loads our model with its own context. Unpinned, Yollayah adopts it: the
/// keep-alive re-assert and the next chat send that context, so the only reload is theirs.
#[tokio::test]
async fn another_clients_context_is_adopted_not_reloaded() {
    bounded(async {
        let mut rig = Rig::start(fast_scenario(), settings()).await;
        rig.wait_warm().await;
        let other = common::client(&rig.sim);
        let mut theirs = Options::new();
        theirs.insert("num_ctx".into(), 16_384.into());
        other
            .load(MODEL, Some(KeepAlive::Seconds(60.0)), Some(&theirs))
            .await
            .expect("other client");
        assert_eq!(rig.sim.reload_count(), 1, "their reload");
        rig.events
            .wait_for("re-assert", |e| {
                matches!(e, Event::Warm(WarmEvent::Reasserted { .. }))
            })
            .await;
        rig.events
            .wait_snapshot("their context", |s| s.loaded_num_ctx == Some(16_384))
            .await;
        let engine = rig.chat_engine();
        let (out, _) = send(&engine, None, "Hello").await;
        assert!(out.incomplete.is_none(), "{out:?}");
        rig.events.ticks(3).await;
        assert_eq!(rig.sim.reload_count(), 1, "{}", rig.events.describe());
        assert_eq!(
            rig.events.count_since(0, |e| matches!(
                e,
                Event::Warm(WarmEvent::OptionsDrifted { .. })
            )),
            0,
            "nothing pinned, so nothing drifted"
        );
    })
    .await;
}
