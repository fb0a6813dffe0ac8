//! The model picker's core against `ollama-sim` over the wire: chatting with a chosen model
//! keeps the persona and the load options, "watch this one" moves the watchdog at runtime,
//! and a fit prediction the load contradicts becomes a finding and an event.

mod common;

use std::sync::Arc;

use common::{MODEL, Rig, bounded, fast_scenario, memory_history, settings};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use yollayah_core::chat::{ChatEngine, Outgoing};
use yollayah_core::diagnose::Code;
use yollayah_core::events::{Event, WarmEvent};
use yollayah_core::fit::{FitPrediction, FitSettings};
use yollayah_core::history::ConversationId;
use yollayah_core::machine::Machine;
use yollayah_core::models;
use yollayah_core::ollama::types::Think;
use yollayah_core::persona::PersonaSource;

fn chat_bodies(rig: &Rig) -> Vec<Value> {
    rig.sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/chat")
        .map(|r| r.body)
        .collect()
}

fn engine(rig: &Rig, history: yollayah_core::chat::SharedHistory) -> ChatEngine {
    ChatEngine::new(
        rig.client.clone(),
        Arc::new(PersonaSource::bundled().expect("persona")),
        rig.profile.clone(),
        history,
        Some(rig.watchdog.clone()),
    )
}

async fn send(e: &ChatEngine, conv: Option<ConversationId>, out: Outgoing) -> ConversationId {
    e.send_message(conv, out, CancellationToken::new(), |_| {})
        .await
        .expect("sent")
        .conversation
}

#[tokio::test]
async fn a_chosen_model_answers_with_the_persona_and_the_conversation_records_it() {
    bounded(async {
        let mut rig = Rig::start(fast_scenario(), settings()).await;
        rig.wait_warm().await;
        let history = memory_history();
        let e = engine(&rig, history.clone());
        let conv = send(&e, None, Outgoing::text("first, with the watched model")).await;
        let chosen = Outgoing {
            model: Some("qwen3:8b".into()),
            think: Some(Think::Off),
            ..Outgoing::text("now with qwen3")
        };
        send(&e, Some(conv), chosen).await;
        let bodies = chat_bodies(&rig);
        let [watched, picked] = &bodies[..] else {
            panic!("two chats: {bodies:?}");
        };
        assert_eq!(watched["model"], MODEL);
        assert_eq!(picked["model"], "qwen3:8b");
        // The persona is the first, system message of both: a choice is a runtime request field.
        for b in [watched, picked] {
            assert_eq!(b["messages"][0]["role"], "system", "{b}");
            assert_eq!(
                b["messages"][0]["content"],
                watched["messages"][0]["content"]
            );
        }
        assert_eq!(picked["think"], json!(false));
        // Only the watched model is pinned; the picked one gets the server's keep_alive, and the
        // same load options (none of the watched model's live context leaks in).
        assert!(watched.get("keep_alive").is_some(), "{watched}");
        assert!(picked.get("keep_alive").is_none(), "{picked}");
        assert!(picked["options"].get("num_ctx").is_none(), "{picked}");
        let rows = history
            .lock()
            .expect("history")
            .list_conversations(5)
            .expect("list");
        assert_eq!(rows[0].id, conv);
        assert_eq!(
            rows[0].model, "qwen3:8b",
            "the conversation records the model used"
        );
    })
    .await;
}

#[tokio::test]
async fn watching_another_model_moves_the_watchdog_and_the_default_chat_model() {
    bounded(async {
        let mut rig = Rig::start(fast_scenario(), settings()).await;
        rig.wait_warm().await;
        let e = engine(&rig, memory_history());
        assert_eq!(e.model(), MODEL);
        rig.watchdog.watch_model("qwen3:8b").await.expect("watch");
        assert_eq!(rig.watchdog.profile().model, "qwen3:8b");
        assert_eq!(rig.watchdog.latest().model, "qwen3:8b");
        // Same keep_alive and load options: only the model changed.
        assert_eq!(rig.watchdog.profile().load, rig.profile.load);
        assert_eq!(rig.watchdog.profile().keep_alive, rig.profile.keep_alive);
        rig.events
            .wait_for("the new model warmed", |ev| {
                matches!(ev, Event::Warm(WarmEvent::Finished { model, .. }) if model == "qwen3:8b")
            })
            .await;
        let s = rig
            .events
            .wait_snapshot("qwen3 loaded and watched", common::ours_loaded)
            .await;
        assert_eq!(s.model, "qwen3:8b");
        assert!(s.headline.starts_with("qwen3:8b · "), "{}", s.headline);
        assert!(rig.sim.loaded_models().contains(&"qwen3:8b".to_owned()));
        // A chat without a choice now goes to the watched model.
        assert_eq!(e.model(), "qwen3:8b");
        send(&e, None, Outgoing::text("hi")).await;
        assert_eq!(chat_bodies(&rig).pop().expect("chat")["model"], "qwen3:8b");
    })
    .await;
}

#[tokio::test]
async fn a_prediction_the_load_contradicts_becomes_a_finding_and_an_event() {
    bounded(async {
        let mut rig = Rig::start(fast_scenario(), settings()).await;
        rig.wait_warm().await;
        let mut machine = Machine::simulator(&rig.sim.url()).expect("machine");
        let gpu = machine.observe(true).await.gpu;
        let list = models::list_with_predictions(&rig.client, &gpu, 4096, &FitSettings::default())
            .await
            .expect("list");
        let fit_of = |name: &str| {
            list.iter()
                .find(|m| m.name == name)
                .and_then(|m| m.fit.clone())
                .expect("prediction")
        };
        // The real prediction for gemma3:4b, and a wrong one for qwen3:8b (it fits, as the
        // simulator will show): only the wrong one may come back as a finding.
        let right = fit_of("gemma3:4b");
        assert_eq!(
            right.prediction,
            FitPrediction::FitsGpu,
            "{}",
            right.summary
        );
        let mut wrong = fit_of("qwen3:8b");
        wrong.prediction = FitPrediction::Spills {
            cpu_pct: 70,
            largest_ctx: Some(2048),
            unload: vec![],
        };
        rig.watchdog.expect_fits(vec![right, wrong]);
        let e = engine(&rig, memory_history());
        for model in ["gemma3:4b", "qwen3:8b"] {
            let out = Outgoing {
                model: Some(model.into()),
                ..Outgoing::text("load it")
            };
            send(&e, None, out).await;
        }
        let ev = rig
            .events
            .wait_for("the mismatch", |ev| matches!(ev, Event::FitMispredicted(_)))
            .await;
        let Event::FitMispredicted(m) = ev else {
            unreachable!()
        };
        assert_eq!(m.model, "qwen3:8b");
        assert!(
            m.message.contains("but it loaded as 100% GPU"),
            "{}",
            m.message
        );
        let s = rig
            .events
            .wait_snapshot("the finding", |s| {
                s.diagnoses
                    .iter()
                    .any(|d| d.model == "qwen3:8b" && d.finding(Code::FitMispredicted).is_some())
            })
            .await;
        // gemma3 may have been evicted to make room for qwen3 by now; while loaded, it had no
        // such finding (and no event, counted below).
        assert!(
            s.diagnoses
                .iter()
                .filter(|d| d.model == "gemma3:4b")
                .all(|d| d.finding(Code::FitMispredicted).is_none()),
            "a right prediction is no finding"
        );
        assert_eq!(
            rig.events
                .count_since(0, |ev| matches!(ev, Event::FitMispredicted(_))),
            1,
            "one event per load"
        );
        // Unloaded, the finding goes with the model.
        rig.client.unload("qwen3:8b").await.expect("unload");
        rig.events
            .wait_snapshot("qwen3 gone", |s| {
                s.diagnoses
                    .iter()
                    .all(|d| d.model != "qwen3:8b" || d.finding(Code::FitMispredicted).is_none())
            })
            .await;
    })
    .await;
}
