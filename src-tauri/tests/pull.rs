//! Pulling a model from the popup, through the tray's real socket to its core (in-process)
//! and an in-process `ollama-sim`: progress events come at most 10 a second and advance; a
//! cancel closes the download's connection (the simulator counts it abandoned) and adds no
//! model; Ollama's error text reaches the window as it is; a pull goes on when its window
//! disconnects, and a window that connects later follows it and hears its end. No display.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use yollayah_tray::ipc::events;
use yollayah_tray::wire::{Client, Command as Cmd, Heard};
use yollayah_tray::{
    Backend, ChatProcess, CoreOptions, GpuSource, Notice, Shell, Shown, UserFiles,
};

const DEADLINE: Duration = Duration::from_secs(60);
/// The registry model the simulator can fetch (about 523 MB).
const PULLABLE: &str = "qwen3:0.6b";

struct Quiet;

impl Backend for Quiet {
    fn capabilities(&mut self) -> yollayah_tray::Result<Vec<String>> {
        Ok(vec!["body".into()])
    }

    fn show(&mut self, _: &Notice, _: Option<u32>, _: bool) -> yollayah_tray::Result<Shown> {
        Ok(Shown { id: 1, wait: None })
    }
}

async fn tray(dir: &Path, bytes_per_second: f64) -> (Arc<Shell>, ollama_sim::SimHandle) {
    let sim = ollama_sim::start(ollama_sim::Scenario {
        pull_bytes_per_second: bytes_per_second,
        ..ollama_sim::Scenario::default()
    })
    .await
    .expect("simulator");
    let options = CoreOptions {
        ollama_url: Some(sim.url()),
        gpu: GpuSource::Simulator,
        builtin_config: true,
        history_path: Some(None),
        warm_on_start: Some(false),
        files: Some(UserFiles::under(dir)),
        ..CoreOptions::default()
    };
    let socket = dir.join("core.sock");
    let chat = ChatProcess::new("/bin/false".into(), socket.clone());
    let shell = yollayah_tray::start(options, Quiet, &socket, chat).expect("core starts");
    (shell, sim)
}

/// The next pull event, with the time it arrived.
async fn next_pull(heard: &mut UnboundedReceiver<Heard>) -> (Instant, Value) {
    loop {
        let msg = tokio::time::timeout(DEADLINE, heard.recv())
            .await
            .expect("a pull event in time")
            .expect("the tray is there");
        if let Heard::Event { name, payload } = msg
            && name == events::PULL
        {
            return (Instant::now(), payload);
        }
    }
}

/// Pull events until (and including) the outcome.
async fn until_outcome(heard: &mut UnboundedReceiver<Heard>) -> Vec<(Instant, Value)> {
    let mut out = Vec::new();
    loop {
        let (t, ev) = next_pull(heard).await;
        let end = ev["kind"] != "progress";
        out.push((t, ev));
        if end {
            return out;
        }
    }
}

async fn models(client: &Client) -> Vec<String> {
    client
        .call(Cmd::ListModels)
        .await
        .expect("list_models")
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_throttled_and_a_pull_adds_the_model_with_its_prediction() {
    let dir = tempfile::tempdir().expect("tempdir");
    // ~523 MB at 250 MB/s: about two seconds, some 35 lines a second from the simulator.
    let (_shell, sim) = tray(dir.path(), 250e6).await;
    let socket = dir.path().join("core.sock");
    let (client, mut heard) = Client::connect(&socket).await.expect("connect");
    assert!(!models(&client).await.contains(&PULLABLE.to_owned()));

    let started = client
        .call(Cmd::PullModel {
            name: format!("  {PULLABLE} "),
        })
        .await
        .expect("pull starts");
    assert_eq!(started["name"], PULLABLE);
    let id = started["id"].clone();
    // One at a time.
    let busy = client
        .call(Cmd::PullModel {
            name: "llama3.2:3b".into(),
        })
        .await
        .expect_err("a second pull is refused while one runs");
    assert_eq!(busy.kind, "bad_input", "{busy:?}");
    assert!(busy.message.contains(PULLABLE), "{busy:?}");

    let events = until_outcome(&mut heard).await;
    let (_, last) = events.last().expect("events");
    assert_eq!(last["kind"], "done", "{last}");
    assert_eq!(last["id"], id);
    assert_eq!(last["name"], PULLABLE);
    let progress: Vec<&Value> = events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e["kind"] == "progress")
        .collect();
    let completed: Vec<u64> = progress
        .iter()
        .map(|e| e["completed"].as_u64().expect("completed"))
        .collect();
    assert!(completed.windows(2).all(|w| w[0] <= w[1]), "{completed:?}");
    let distinct: std::collections::BTreeSet<u64> = completed.iter().copied().collect();
    assert!(distinct.len() >= 3, "progress advanced: {completed:?}");
    assert!(
        progress
            .iter()
            .any(|e| e["bytes_per_second"].as_f64() > Some(0.0)
                && e["eta_secs"].is_number()
                && e["layer"]["digest"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("sha256:"))),
        "rate, ETA and the layer are reported: {progress:?}"
    );
    // At most 10 a second: consecutive events at least ~100 ms apart (some slack for the
    // socket delivering two frames in one read).
    let gaps: Vec<Duration> = events
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0))
        .collect();
    let span = events
        .last()
        .map(|l| l.0.duration_since(events[0].0))
        .unwrap_or_default();
    let per_second = (events.len() as f64 - 1.0) / span.as_secs_f64().max(0.001);
    eprintln!(
        "{} pull events over {span:?}: {per_second:.1}/s; simulator counted {:?}",
        events.len(),
        sim.pull_counts()
    );
    assert!(per_second <= 11.0, "throttled to 10/s: {gaps:?}");

    assert_eq!(sim.pulled_models(), [PULLABLE]);
    assert!(models(&client).await.contains(&PULLABLE.to_owned()));
    let listed = client.call(Cmd::ListModels).await.expect("list");
    let entry = listed
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["name"] == PULLABLE)
        .expect("listed");
    assert!(entry["fit"]["summary"].is_string(), "a prediction: {entry}");
    let state = client.call(Cmd::PullState).await.expect("pull_state");
    assert_eq!(state["kind"], "done", "the last outcome is kept: {state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_closes_the_download_and_adds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // ~26 s for the whole model: the test cancels long before.
    let (_shell, sim) = tray(dir.path(), 20e6).await;
    let socket = dir.path().join("core.sock");
    let (client, mut heard) = Client::connect(&socket).await.expect("connect");
    let started = client
        .call(Cmd::PullModel {
            name: PULLABLE.into(),
        })
        .await
        .expect("pull starts");
    // Wait for bytes to move.
    loop {
        let (_, ev) = next_pull(&mut heard).await;
        if ev["completed"].as_u64() > Some(0) {
            break;
        }
    }
    assert_eq!(sim.pull_counts().active, 1);
    // A stale id (a pull that ended) cancels nothing.
    client
        .call(Cmd::CancelPull { id: Some(9999) })
        .await
        .expect("cancel_pull");
    client
        .call(Cmd::CancelPull {
            id: started["id"].as_u64(),
        })
        .await
        .expect("cancel_pull");
    let events = until_outcome(&mut heard).await;
    let (_, last) = events.last().expect("outcome");
    assert_eq!(last["kind"], "cancelled", "{last}");
    // The simulator sees the request end: its job finds the connection gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.pull_counts().active > 0 {
        assert!(Instant::now() < deadline, "{:?}", sim.pull_counts());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counts = sim.pull_counts();
    assert_eq!((counts.abandoned, counts.completed), (1, 0), "{counts:?}");
    assert!(sim.pulled_models().is_empty());
    assert!(!models(&client).await.contains(&PULLABLE.to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_ollamas_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_shell, sim) = tray(dir.path(), 4e9).await;
    let socket = dir.path().join("core.sock");
    let (client, mut heard) = Client::connect(&socket).await.expect("connect");
    client
        .call(Cmd::PullModel {
            name: "nope:1b".into(),
        })
        .await
        .expect("pull starts");
    let events = until_outcome(&mut heard).await;
    let (_, last) = events.last().expect("outcome");
    assert_eq!(last["kind"], "failed");
    assert_eq!(last["error"], "pull model manifest: file does not exist");

    sim.fault(ollama_sim::Fault::BrokenPull {
        after_percent: 30,
        message: None,
    });
    client
        .call(Cmd::PullModel {
            name: PULLABLE.into(),
        })
        .await
        .expect("pull starts");
    let events = until_outcome(&mut heard).await;
    let (_, last) = events.last().expect("outcome");
    assert_eq!(last["error"], "max retries exceeded: unexpected EOF");
    assert!(sim.pulled_models().is_empty());

    let bad = client
        .call(Cmd::PullModel {
            name: "rm -rf".into(),
        })
        .await
        .expect_err("a name with a space");
    assert_eq!(bad.kind, "bad_input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_outlives_its_window_and_a_new_window_follows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // ~5 s for the whole model.
    let (_shell, sim) = tray(dir.path(), 100e6).await;
    let socket = dir.path().join("core.sock");
    {
        let (first, mut heard) = Client::connect(&socket).await.expect("connect");
        first
            .call(Cmd::PullModel {
                name: PULLABLE.into(),
            })
            .await
            .expect("pull starts");
        next_pull(&mut heard).await;
        // The window closes: its connection goes.
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sim.pull_counts().active, 1, "the pull goes on");
    let (second, mut heard) = Client::connect(&socket).await.expect("reconnect");
    let state = second.call(Cmd::PullState).await.expect("pull_state");
    assert_eq!(state["kind"], "progress", "{state}");
    assert_eq!(state["name"], PULLABLE);
    assert!(state["completed"].as_u64() > Some(0), "{state}");
    let events = until_outcome(&mut heard).await;
    let (_, last) = events.last().expect("outcome");
    assert_eq!(last["kind"], "done", "the new window hears the end: {last}");
    assert_eq!(sim.pulled_models(), [PULLABLE]);
}
