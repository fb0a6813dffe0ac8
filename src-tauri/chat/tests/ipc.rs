//! Every IPC command of the chat window, invoked exactly as the webview would (origin
//! `tauri://localhost`, through the capability check), through the real socket to the tray's
//! core (started in-process, as the tray binary starts it) talking to an in-process
//! `ollama-sim`. No display: Tauri's mock runtime. The notification daemon, a
//! system edge, is a recorder whose buttons the test clicks.

use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder};
use tauri::webview::InvokeRequest;
use tauri::{App, Listener, WebviewWindow, WebviewWindowBuilder};
use yollayah_chat::run_app;
use yollayah_tray::ipc::events;
use yollayah_tray::wire::Client;
use yollayah_tray::{
    AppCommand, Backend, ChatProcess, CoreOptions, GpuSource, Notice, Shell, Shown,
};

const MODEL: &str = "llama3.2:3b";
const DEADLINE: Duration = Duration::from_secs(30);

struct Rig {
    app: App<MockRuntime>,
    shell: Arc<Shell>,
    chat: WebviewWindow<MockRuntime>,
    sim: ollama_sim::SimHandle,
    dir: tempfile::TempDir,
    chat_events: Receiver<Value>,
    /// Every notification shown, with the daemon id it replaces.
    notices: Receiver<(Notice, Option<u32>)>,
    /// Sends the key of the button the user clicks on the notification waiting for one.
    clicks: Sender<String>,
}

/// A notification daemon that supports buttons, records what it shows, and reports the
/// clicks the test sends it.
struct Recorder {
    shown: Sender<(Notice, Option<u32>)>,
    clicks: Arc<Mutex<Receiver<String>>>,
    next_id: u32,
}

impl Backend for Recorder {
    fn capabilities(&mut self) -> yollayah_tray::Result<Vec<String>> {
        Ok(vec!["body".into(), "actions".into()])
    }

    fn show(
        &mut self,
        notice: &Notice,
        replaces: Option<u32>,
        with_actions: bool,
    ) -> yollayah_tray::Result<Shown> {
        let _ = self.shown.send((notice.clone(), replaces));
        self.next_id += 1;
        let clicks = Arc::clone(&self.clicks);
        let wait = with_actions.then(|| {
            Box::new(move || clicks.lock().ok()?.recv().ok())
                as Box<dyn FnOnce() -> Option<String> + Send>
        });
        Ok(Shown {
            id: replaces.unwrap_or(self.next_id),
            wait,
        })
    }
}

fn rig() -> Rig {
    rig_with(None)
}

/// A rig whose core reads `config` (a `config.toml` text) instead of the built-in one.
fn rig_with(config: Option<String>) -> Rig {
    let scenario = ollama_sim::Scenario {
        load_ms: 100,
        ..ollama_sim::Scenario::default()
    };
    let sim = tauri::async_runtime::block_on(ollama_sim::start(scenario)).expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    // The desktop's URL handler is a system edge: stand in a script that records its argv.
    let opener = dir.path().join("opener.sh");
    std::fs::write(
        &opener,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n",
            dir.path().join("opened.txt").display()
        ),
    )
    .expect("opener");
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&opener)
        .status()
        .expect("chmod");
    let config_path = config.map(|text| {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).expect("config");
        path
    });
    let options = CoreOptions {
        ollama_url: Some(sim.url()),
        gpu: GpuSource::Simulator,
        builtin_config: config_path.is_none(),
        config_path,
        history_path: Some(Some(dir.path().join("history.sqlite3"))),
        tick: Some(Duration::from_millis(200)),
        warm_on_start: Some(false),
        opener,
        ..CoreOptions::default()
    };
    let (shown, notices) = channel();
    let (clicks, clicked) = channel();
    let recorder = Recorder {
        shown,
        clicks: Arc::new(Mutex::new(clicked)),
        next_id: 0,
    };
    let socket = dir.path().join("core.sock");
    let chat = ChatProcess::new("/bin/false".into(), socket.clone());
    let shell = tauri::async_runtime::block_on(async {
        yollayah_tray::start(options, recorder, &socket, chat)
    })
    .expect("core starts");
    let (client, heard) =
        tauri::async_runtime::block_on(Client::connect(&socket)).expect("connects to the core");
    let app = run_app(mock_builder(), client, heard).expect("app builds");
    let chat = WebviewWindowBuilder::new(&app, "chat", Default::default())
        .build()
        .expect("chat window");
    let listen = |name: &str| {
        let (tx, rx) = channel();
        app.listen_any(name, move |e| {
            let _ = tx.send(serde_json::from_str::<Value>(e.payload()).expect("event json"));
        });
        rx
    };
    let chat_events = listen(events::CHAT);
    Rig {
        app,
        shell,
        chat,
        sim,
        dir,
        chat_events,
        notices,
        clicks,
    }
}

fn invoke_on(window: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    let request = InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: "tauri://localhost".parse().expect("url"),
        body: InvokeBody::Json(args),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    get_ipc_response(window, request).map(|b| b.deserialize::<Value>().expect("json"))
}

impl Rig {
    fn call(&self, cmd: &str, args: Value) -> Value {
        invoke_on(&self.chat, cmd, args).unwrap_or_else(|e| panic!("{cmd} failed: {e}"))
    }

    fn fail(&self, cmd: &str, args: Value) -> Value {
        match invoke_on(&self.chat, cmd, args) {
            Ok(v) => panic!("{cmd} should have failed, returned {v}"),
            Err(e) => e,
        }
    }

    /// Polls `status` until `pred` holds.
    fn status_until(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let s = self.call("status", json!({}));
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Chat events of `reply` until (and including) its terminal one.
    fn reply_events(&self, reply: i64) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = self
                .chat_events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("reply {reply} did not end; got {out:?}"));
            if ev["reply"] != reply {
                continue;
            }
            let kind = ev["kind"].as_str().unwrap_or_default().to_owned();
            out.push(ev);
            if matches!(kind.as_str(), "done" | "failed" | "cancelled") {
                return out;
            }
        }
    }

    fn next_notice(&self, what: &str) -> (Notice, Option<u32>) {
        self.notices
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("no notification: {what}"))
    }
}

fn verdict(s: &Value) -> &str {
    s["verdict"]["kind"].as_str().unwrap_or_default()
}

fn wait_file(path: &Path) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.is_empty() {
                return s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn status_is_the_watchdog_snapshot_plus_app_health() {
    let rig = rig();
    // Keep-warm loads the model as soon as the watchdog sees it is not loaded.
    let s = rig.status_until("the GPU verdict", |s| verdict(s) == "gpu");
    assert_eq!(s["ollama"]["state"], "up");
    assert_eq!(s["url"], rig.sim.url());
    assert_eq!(s["model"], MODEL);
    assert!(
        s["headline"]
            .as_str()
            .unwrap_or_default()
            .starts_with(MODEL)
    );
    assert_eq!(s["ollama"]["version"], "0.33.0");
    assert_eq!(s["gpus"][0]["memory_total"], 12878610432u64);
    assert_eq!(s["muted"], false);
    assert_eq!(s["problems"], json!([]));
    assert_eq!(s["app"]["tray_host"], Value::Null);
}

#[test]
fn list_models_predicts_where_each_pulled_model_lands() {
    let rig = rig();
    rig.status_until("the GPU verdict", |s| verdict(s) == "gpu");
    let rows = rig.call("list_models", json!({}));
    let rows = rows.as_array().expect("a list");
    let by_name = |n: &str| {
        rows.iter()
            .find(|r| r["name"] == n)
            .unwrap_or_else(|| panic!("{n} listed: {rows:?}"))
    };
    for r in rows {
        assert_eq!(r["chat"], true, "only chat models: {r}");
        let kind = r["fit"]["prediction"]["kind"].as_str().unwrap_or_default();
        assert!(
            ["fits_gpu", "needs_unload", "spills", "loaded", "unknown"].contains(&kind),
            "{r}"
        );
        assert!(
            !r["fit"]["summary"].as_str().unwrap_or_default().is_empty(),
            "a summary for the picker: {r}"
        );
    }
    // The configured model is loaded by now: the prediction says where it is.
    let ours = by_name(MODEL);
    assert_eq!(ours["fit"]["prediction"]["kind"], "loaded", "{ours}");
    assert!(ours["quantization"].as_str().is_some_and(|q| !q.is_empty()));
    let qwen3 = by_name("qwen3:8b");
    assert_eq!(qwen3["think"], "toggle");
    assert_eq!(by_name("gemma3:4b")["vision"], true);
    // 5 GiB beside a loaded 3B model on an idle 12 GiB GPU: nothing has to move.
    assert_eq!(qwen3["fit"]["prediction"]["kind"], "fits_gpu", "{qwen3}");
}

#[test]
fn warm_and_unload_drive_the_simulator_and_fill_gpu_history() {
    let rig = rig();
    let warm = rig.call("warm", json!({}));
    assert_eq!(warm["model"], MODEL);
    assert!(warm["load_ms"].as_u64().is_some(), "{warm}");
    assert_eq!(rig.sim.loaded_models(), vec![MODEL.to_owned()]);
    // One load, whether the command or the watchdog's keep-warm started it.
    assert_eq!(rig.sim.load_count(), 1);
    let s = rig.status_until("the GPU verdict", |s| verdict(s) == "gpu");
    assert!(
        s["headline"]
            .as_str()
            .unwrap_or_default()
            .contains("100% GPU"),
        "{s}"
    );

    // The samples follow the snapshots a moment later (the forwarder records them): wait for
    // the loaded model's reading.
    let deadline = Instant::now() + DEADLINE;
    let history = loop {
        let history = rig.call("gpu_history", json!({}));
        let used = history
            .as_array()
            .and_then(|a| a.last())
            .and_then(|s| s["vram_used"].as_u64())
            .unwrap_or(0);
        if used > 2_000_000_000 || Instant::now() > deadline {
            break history;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let samples = history.as_array().expect("array");
    assert!(!samples.is_empty());
    let mut last = 0;
    for sample in samples {
        let at = sample["at_ms"].as_i64().expect("at_ms");
        assert!(at >= last, "samples out of order: {history}");
        last = at;
        assert_eq!(sample["vram_total"], 12878610432u64);
        assert!(sample["vram_used"].as_u64().is_some());
        assert!(sample.get("util_pct").is_some());
    }
    let loaded = samples.last().expect("sample")["vram_used"]
        .as_u64()
        .expect("used");
    assert!(
        loaded > 2_000_000_000,
        "model VRAM not in the sample: {loaded}"
    );

    assert_eq!(rig.call("unload", json!({})), Value::Null);
    assert!(rig.sim.loaded_models().is_empty());
    // An explicit unload pauses keep-warm: the model stays unloaded.
    rig.status_until("the not-loaded verdict", |s| verdict(s) == "not_loaded");
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        rig.sim.loaded_models().is_empty(),
        "keep-warm undid the unload"
    );

    // The tray menu's Warm goes the same way (dispatch → the watchdog's handle).
    yollayah_tray::dispatch(&rig.shell, AppCommand::WarmModel);
    rig.status_until("a warm from the menu", |s| verdict(s) == "gpu");
    assert_eq!(rig.sim.load_count(), 2);
    yollayah_tray::dispatch(&rig.shell, AppCommand::UnloadModel);
    rig.status_until("an unload from the menu", |s| verdict(s) == "not_loaded");
    assert!(rig.sim.loaded_models().is_empty());
}

#[test]
fn send_message_streams_rendered_blocks_and_stores_the_conversation() {
    let rig = rig();
    let reply_text =
        "# Title\n\nSome **bold** text.\n\n<script>alert(1)</script>\n\n- one\n- two\n";
    rig.sim.set_reply(reply_text);
    let started = rig.call(
        "send_message",
        json!({"conversation": null, "text": "hi there"}),
    );
    let (conv, reply) = (
        started["conversation"].as_i64().expect("conversation"),
        started["reply"].as_i64().expect("reply"),
    );
    assert!(started["user_message"].as_i64().expect("user") < reply);
    let events = rig.reply_events(reply);
    assert_eq!(events[0]["kind"], "started");
    assert_eq!(events[0]["conversation"], conv);
    let mut text = String::new();
    let mut blocks = String::new();
    let mut next_index = 0;
    for ev in &events[1..events.len() - 1] {
        assert_eq!(ev["kind"], "delta", "{ev}");
        text.push_str(ev["text"].as_str().expect("text"));
        assert!(ev["tail"].is_string(), "{ev}");
        for b in ev["html_blocks"].as_array().into_iter().flatten() {
            assert_eq!(b["index"], next_index);
            next_index += 1;
            blocks.push_str(b["html"].as_str().expect("html"));
        }
    }
    assert_eq!(text, reply_text);
    assert!(next_index >= 3, "too few streamed blocks: {events:?}");
    let done = events.last().expect("done");
    assert_eq!(done["kind"], "done", "{done}");
    let html = done["html"].as_str().expect("html");
    assert!(
        html.starts_with(&blocks),
        "done.html must extend what streamed"
    );
    assert!(html.contains("<h1>Title</h1>"), "{html}");
    assert!(html.contains("<strong>bold</strong>"), "{html}");
    assert!(html.contains("<li>two</li>"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(done["stats"]["eval_count"].as_u64().is_some(), "{done}");

    let list = rig.call("list_conversations", json!({"limit": 10}));
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], conv);
    assert_eq!(list[0]["title"], "hi there");
    assert_eq!(list[0]["model"], MODEL);
    assert_eq!(list[0]["message_count"], 2);
    let updated = list[0]["updated_at"].as_str().expect("updated_at");
    assert!(
        time::OffsetDateTime::parse(updated, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{updated}"
    );

    let messages = rig.call("load_conversation", json!({"id": conv}));
    assert_eq!(messages.as_array().map(Vec::len), Some(2), "{messages}");
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"], "hi there");
    assert!(messages[0].get("html").is_none());
    assert_eq!(messages[1]["id"], reply);
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["status"], "complete");
    assert_eq!(messages[1]["content"], reply_text);
    assert_eq!(messages[1]["html"], html);

    // A second message continues the same conversation.
    let again = rig.call(
        "send_message",
        json!({"conversation": conv, "text": "more"}),
    );
    assert_eq!(again["conversation"], conv);
    rig.reply_events(again["reply"].as_i64().expect("reply"));
    assert_eq!(
        rig.call("list_conversations", json!({"limit": 10}))[0]["message_count"],
        4
    );

    let err = rig.fail(
        "send_message",
        json!({"conversation": null, "text": "  \n"}),
    );
    assert_eq!(err["kind"], "bad_input", "{err}");
    let err = rig.fail("load_conversation", json!({"id": 999}));
    assert_eq!(err["kind"], "history", "{err}");
}

#[test]
fn cancel_keeps_the_partial_reply_and_retry_resends_the_question() {
    let rig = rig();
    rig.sim
        .set_reply("one two three four five six seven eight nine ten");
    rig.sim
        .fault(ollama_sim::Fault::StallMidStream { after_chunks: 2 });
    let started = rig.call(
        "send_message",
        json!({"conversation": null, "text": "count"}),
    );
    let (conv, reply) = (
        started["conversation"].as_i64().expect("conversation"),
        started["reply"].as_i64().expect("reply"),
    );
    // Wait for the two chunks before the stall, then stop the reply.
    let mut seen = 0;
    let deadline = Instant::now() + DEADLINE;
    while seen < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = rig.chat_events.recv_timeout(left).expect("deltas");
        if ev["reply"] == reply && ev["kind"] == "delta" {
            seen += 1;
        }
    }
    assert_eq!(
        rig.call("cancel_reply", json!({"reply": reply})),
        Value::Null
    );
    let events = rig.reply_events(reply);
    let end = events.last().expect("end");
    assert_eq!(end["kind"], "cancelled", "{end}");
    let partial = end["partial"].as_str().expect("partial").to_owned();
    assert!(!partial.is_empty());
    // The partial text arrives rendered, as a finished reply does: no second trip to render it.
    let html = end["html"].as_str().expect("html");
    assert!(
        html.starts_with("<p>") && html.contains(partial.trim()),
        "{end}"
    );

    let messages = rig.call("load_conversation", json!({"id": conv}));
    assert_eq!(messages[1]["status"], "incomplete");
    assert_eq!(messages[1]["reason"], "cancelled");
    assert_eq!(messages[1]["content"], partial);

    let retried = rig.call("retry_reply", json!({"reply": reply}));
    assert_eq!(retried["conversation"], conv);
    let new_reply = retried["reply"].as_i64().expect("reply");
    assert!(new_reply > reply);
    let end = rig.reply_events(new_reply).pop().expect("end");
    assert_eq!(end["kind"], "done", "{end}");
    let messages = rig.call("load_conversation", json!({"id": conv}));
    let all = messages.as_array().expect("messages");
    assert_eq!(all.len(), 4, "{messages}");
    assert_eq!(all[2]["role"], "user");
    assert_eq!(all[2]["content"], "count");
    assert_eq!(all[3]["status"], "complete");

    // Only an incomplete reply can be retried; unknown ids are bad input too.
    assert_eq!(
        rig.fail("retry_reply", json!({"reply": new_reply}))["kind"],
        "bad_input"
    );
    assert_eq!(
        rig.fail("retry_reply", json!({"reply": 12345}))["kind"],
        "bad_input"
    );
    // Cancelling a reply that already ended changes nothing.
    assert_eq!(
        rig.call("cancel_reply", json!({"reply": new_reply})),
        Value::Null
    );
}

#[test]
fn ollama_down_is_a_state_and_a_failed_reply_not_a_crash() {
    let rig = rig();
    rig.status_until("a first reading", |s| s["ollama"]["state"] == "up");
    tauri::async_runtime::block_on(rig.sim.stop());
    // `check_now` (the down panel's Retry) ticks and answers with what that tick saw.
    let checked = rig.call("check_now", json!({}));
    assert_eq!(verdict(&checked), "down", "{checked}");
    let s = rig.status_until("the down verdict", |s| verdict(s) == "down");
    assert!(
        s["advice"]
            .as_str()
            .unwrap_or_default()
            .contains("ollama serve")
    );
    let err = rig.fail("warm", json!({}));
    assert!(
        ["ollama_down", "ollama"].contains(&err["kind"].as_str().unwrap_or_default()),
        "{err}"
    );
    let started = rig.call(
        "send_message",
        json!({"conversation": null, "text": "hello?"}),
    );
    let end = rig
        .reply_events(started["reply"].as_i64().expect("reply"))
        .pop()
        .expect("end");
    assert_eq!(end["kind"], "failed", "{end}");
    assert!(
        end["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not reachable"),
        "{end}"
    );
    // The window words it from the category, not from that text.
    assert_eq!(end["error_kind"], "ollama_down", "{end}");
}

#[test]
fn a_cpu_fallback_notifies_once_its_fix_replaces_it_and_the_buttons_act() {
    let rig = rig();
    rig.call("warm", json!({}));
    rig.status_until("the GPU verdict", |s| verdict(s) == "gpu");
    rig.sim.fault(ollama_sim::Fault::PsLiesGpu {
        model: MODEL.into(),
    });
    let (raised, replaces) = rig.next_notice("the CPU fallback alert");
    eprintln!("alert: {raised:?}");
    assert!(raised.summary.contains(MODEL), "{raised:?}");
    assert!(
        raised.body.to_lowercase().contains("lost the gpu"),
        "the alert names the cause: {raised:?}"
    );
    assert_eq!(replaces, None);
    // A lost GPU backend is not fixed by warming or reloading the model: no such button.
    let buttons: Vec<&str> = raised.actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(buttons, ["open"]);

    rig.sim.clear_faults();
    let (resolved, replaces) = rig.next_notice("the resolution");
    eprintln!("resolution: {resolved:?}");
    assert_eq!(resolved.replaces, Some(raised.id));
    assert!(
        replaces.is_some(),
        "the resolution replaces the alert on screen"
    );
    assert!(resolved.actions.is_empty());
    rig.status_until("back on the GPU", |s| verdict(s) == "gpu");
    assert!(
        rig.notices.recv_timeout(Duration::from_secs(1)).is_err(),
        "one alert and one resolution per incident"
    );

    // The alert's "Warm model" button, clicked after an unload (which pauses keep-warm), loads
    // the model: notifier → dispatch → the watchdog's handle.
    rig.call("unload", json!({}));
    rig.status_until("the not-loaded verdict", |s| verdict(s) == "not_loaded");
    let loads = rig.sim.load_count();
    rig.clicks.send("warm-model".into()).expect("click");
    rig.status_until("a warm from the notification", |s| verdict(s) == "gpu");
    assert_eq!(rig.sim.load_count(), loads + 1);

    // "Reload on the GPU" (the button's command) unloads, then loads: one more load.
    yollayah_tray::dispatch(&rig.shell, AppCommand::ReloadModel);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while rig.sim.load_count() < loads + 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        rig.sim.load_count(),
        loads + 2,
        "the reload loaded the model again"
    );
    rig.status_until("back on the GPU after the reload", |s| verdict(s) == "gpu");

    // "Open" (the alert's button, the menu's "Open chat") starts the chat window's process.
    // This rig's "chat binary" is /bin/false, which dies at once: the tray says so (a notice
    // and the status), and does not pretend the window is open.
    yollayah_tray::dispatch(&rig.shell, AppCommand::OpenChat);
    let (crashed, _) = rig.next_notice("the chat crash notice");
    assert!(
        crashed.summary.contains("chat window crashed"),
        "{crashed:?}"
    );
    let s = rig.status_until("the crash in the status", |s| {
        s["app"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("chat window crashed"))
    });
    eprintln!("status after the crash: {}", s["app"]["last_error"]);
}

#[test]
fn muting_is_the_cores_and_silences_alerts() {
    let rig = rig();
    rig.call("warm", json!({}));
    rig.status_until("the GPU verdict", |s| verdict(s) == "gpu");
    yollayah_tray::dispatch(&rig.shell, AppCommand::SetMuted(true));
    rig.status_until("the core muted", |s| s["muted"] == true);
    rig.sim.fault(ollama_sim::Fault::PsLiesGpu {
        model: MODEL.into(),
    });
    rig.status_until("the CPU verdict", |s| verdict(s) != "gpu");
    assert!(
        rig.notices.recv_timeout(Duration::from_secs(2)).is_err(),
        "a muted app showed an alert"
    );
}

#[test]
fn open_external_hands_only_web_links_to_the_desktop() {
    let rig = rig();
    for bad in [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "file:///etc/passwd",
        "data:text/html,<script>alert(1)</script>",
        "/relative",
        "https://",
    ] {
        let err = rig.fail("open_external", json!({"url": bad}));
        assert_eq!(err["kind"], "bad_input", "{bad}: {err}");
        assert!(err["message"].is_string());
    }
    assert!(!rig.dir.path().join("opened.txt").exists());
    assert_eq!(
        rig.call(
            "open_external",
            json!({"url": "https://example.com/a?b=c d"})
        ),
        Value::Null
    );
    let opened = wait_file(&rig.dir.path().join("opened.txt"));
    assert_eq!(opened, "https://example.com/a?b=c%20d\n");
}

#[test]
fn images_on_a_model_without_vision_are_refused_naming_one_that_has_it() {
    // A valid 1 × 1 PNG: the refusal is the model's, not the file's.
    const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let rig = rig();
    let support = rig.call("image_support", json!({}));
    assert_eq!(support["model"], MODEL, "{support}");
    assert_eq!(support["vision"], false, "{support}");
    // gemma3:4b is the simulator's one pulled vision model (`/api/tags` + `/api/show`).
    assert_eq!(support["suggestion"], "gemma3:4b", "{support}");
    assert_eq!(support["max_images"], 4);
    assert_eq!(support["max_file_bytes"], 25 << 20);
    let refusal = "llama3.2:3b cannot see images; gemma3:4b can: switch to it to send images";
    assert_eq!(support["message"], refusal);
    let err = rig.fail("attach_image", json!({"name": "dot.png", "data": PNG}));
    assert_eq!(err["kind"], "bad_input", "{err}");
    assert_eq!(err["message"], refusal);
    // An image id the tray does not hold refuses the message; nothing is stored or sent.
    let err = rig.fail(
        "send_message",
        json!({"conversation": null, "text": "", "images": [42]}),
    );
    assert_eq!(err["kind"], "bad_input", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .contains("no longer available"),
        "{err}"
    );
    assert_eq!(
        rig.call("list_conversations", json!({"limit": 10})),
        json!([])
    );
    assert_eq!(rig.call("discard_image", json!({"id": 42})), Value::Null);
}

#[test]
fn only_the_chat_window_may_call_the_commands() {
    let rig = rig();
    let other = WebviewWindowBuilder::new(&rig.app, "intruder", Default::default())
        .build()
        .expect("window");
    for (cmd, args) in [
        ("status", json!({})),
        ("send_message", json!({"conversation": null, "text": "x"})),
        ("warm", json!({})),
        ("open_external", json!({"url": "https://example.com"})),
        ("gpu_history", json!({})),
        ("list_models", json!({})),
        ("chat_choice", json!({})),
        ("choose_model", json!({"model": "qwen3:8b"})),
        ("set_think", json!({"model": "qwen3:8b", "think": "off"})),
        ("watch_model", json!({"model": "qwen3:8b"})),
        ("choose_host", json!({"host": null})),
        ("pull_model", json!({"name": "qwen3:0.6b"})),
        ("cancel_pull", json!({})),
        ("pull_state", json!({})),
        ("check_now", json!({})),
        ("image_support", json!({})),
        ("attach_image", json!({"name": "a.png", "data": "AAAA"})),
        ("discard_image", json!({"id": 1})),
    ] {
        let refused = invoke_on(&other, cmd, args).expect_err("refused");
        assert!(
            refused.to_string().contains("not allowed"),
            "{cmd}: {refused}"
        );
    }
}

fn chat_bodies(sim: &ollama_sim::SimHandle) -> Vec<Value> {
    sim.requests()
        .into_iter()
        .filter(|r| r.path == "/api/chat")
        .map(|r| r.body)
        .collect()
}

#[test]
fn the_picked_model_answers_with_the_persona_and_its_thinking_choice() {
    let rig = rig();
    rig.status_until("the GPU verdict", |s| verdict(s) == "gpu");
    let c = rig.call("chat_choice", json!({}));
    assert_eq!(
        (&c["model"], &c["chosen"], &c["watched"]),
        (&json!(MODEL), &json!(false), &json!(MODEL))
    );
    assert_eq!(c["hosts"], json!([]));
    assert_eq!(c["watch_persists"], false);

    let c = rig.call("choose_model", json!({"model": "qwen3:8b"}));
    assert_eq!(
        (&c["model"], &c["chosen"]),
        (&json!("qwen3:8b"), &json!(true))
    );
    let c = rig.call("set_think", json!({"model": "qwen3:8b", "think": "off"}));
    assert_eq!(c["think"]["qwen3:8b"], false);
    let started = rig.call("send_message", json!({"conversation": null, "text": "hi"}));
    let events = rig.reply_events(started["reply"].as_i64().expect("reply"));
    assert_eq!(events.last().expect("end")["kind"], "done", "{events:?}");
    let body = chat_bodies(&rig.sim).pop().expect("a chat request");
    assert_eq!(body["model"], "qwen3:8b");
    assert_eq!(body["think"], false, "{body}");
    assert_eq!(
        body["messages"][0]["role"], "system",
        "the persona comes first: {body}"
    );
    assert!(
        events.iter().all(|e| e["kind"] != "thinking"),
        "thinking off: no trace streamed"
    );
    let list = rig.call("list_conversations", json!({"limit": 1}));
    assert_eq!(list[0]["model"], "qwen3:8b");

    // gpt-oss cannot stop thinking: "off" is stored and sent as its least level.
    let c = rig.call("set_think", json!({"model": "gpt-oss:20b", "think": "off"}));
    assert_eq!(c["think"]["gpt-oss:20b"], "low");
    let err = rig.fail("set_think", json!({"model": "llama3.2:3b", "think": "on"}));
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not think"),
        "{err}"
    );
    let err = rig.fail("set_think", json!({"model": "qwen3:8b", "think": "maybe"}));
    assert_eq!(err["kind"], "bad_input", "{err}");
    let err = rig.fail("choose_model", json!({"model": "nonesuch:1b"}));
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not pulled"),
        "{err}"
    );
    // Back to the default: the watched model, with the server's thinking default.
    let c = rig.call("choose_model", json!({"model": null}));
    assert_eq!((&c["model"], &c["chosen"]), (&json!(MODEL), &json!(false)));
    let c = rig.call("set_think", json!({"model": "qwen3:8b", "think": null}));
    assert!(c["think"].get("qwen3:8b").is_none(), "{c}");
}

#[test]
fn watch_this_one_moves_the_watchdog_to_the_picked_model() {
    let rig = rig();
    rig.status_until("the GPU verdict", |s| verdict(s) == "gpu");
    let c = rig.call("watch_model", json!({"model": "gemma3:4b"}));
    assert_eq!(c["watched"], "gemma3:4b");
    assert_eq!(
        c["model"], "gemma3:4b",
        "the default chat model follows the watched one"
    );
    let s = rig.status_until("gemma3 watched and on the GPU", |s| {
        s["model"] == "gemma3:4b" && verdict(s) == "gpu"
    });
    assert!(
        s["headline"]
            .as_str()
            .unwrap_or_default()
            .starts_with("gemma3:4b"),
        "{s}"
    );
    assert!(rig.sim.loaded_models().contains(&"gemma3:4b".to_owned()));
    let err = rig.fail("watch_model", json!({"model": "nonesuch:1b"}));
    assert_eq!(err["kind"], "bad_input", "{err}");
}

#[test]
fn the_picked_host_gets_the_chat() {
    let host = tauri::async_runtime::block_on(ollama_sim::start(ollama_sim::Scenario {
        load_ms: 50,
        ..ollama_sim::Scenario::default()
    }))
    .expect("the host's simulator");
    let rig = rig_with(Some(format!(
        "[watchdog]\nrewarm = false\n\n[[hosts]]\nname = \"closet\"\nurl = \"{}\"\n",
        host.url()
    )));
    let c = rig.call("chat_choice", json!({}));
    assert_eq!(c["hosts"][0]["name"], "closet", "{c}");
    assert_eq!(c["host"], Value::Null);
    let err = rig.fail("choose_host", json!({"host": "attic"}));
    assert_eq!(err["kind"], "bad_input", "{err}");
    let c = rig.call("choose_host", json!({"host": "closet"}));
    assert_eq!(c["host"], "closet");
    // The host's models, without a prediction: this machine's GPU says nothing about it.
    let rows = rig.call("list_models", json!({}));
    let rows = rows.as_array().expect("rows");
    assert!(rows.iter().any(|r| r["name"] == "qwen3:8b"), "{rows:?}");
    assert!(rows.iter().all(|r| r["fit"].is_null()), "{rows:?}");
    rig.call("choose_model", json!({"model": "qwen3:8b"}));
    let err = rig.fail("watch_model", json!({"model": "qwen3:8b"}));
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("this machine"),
        "{err}"
    );
    let started = rig.call(
        "send_message",
        json!({"conversation": null, "text": "over there"}),
    );
    let events = rig.reply_events(started["reply"].as_i64().expect("reply"));
    assert_eq!(events.last().expect("end")["kind"], "done", "{events:?}");
    assert_eq!(
        chat_bodies(&host).pop().expect("the host got the chat")["model"],
        "qwen3:8b"
    );
    assert!(
        chat_bodies(&rig.sim).is_empty(),
        "the local server got no chat"
    );
    // Switching back to this machine resets the model choice (another server, other models).
    let c = rig.call("choose_host", json!({"host": null}));
    assert_eq!((&c["host"], &c["chosen"]), (&Value::Null, &json!(false)));
}
