//! Shared rig for the watchdog and chat tests against `ollama-sim`: a fast simulator, a client
//! with short deadlines, the bundled persona's profile, a watchdog on the simulated machine,
//! and an event log that waits for conditions with a deadline instead of sleeping.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use ollama_sim::bounded;
use ollama_sim::{Scenario, SimHandle};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use yollayah_core::chat::{ChatEngine, SharedHistory};
use yollayah_core::config::Config;
use yollayah_core::events::{Event, Snapshot, WarmEvent};
use yollayah_core::history::History;
use yollayah_core::machine::Machine;
use yollayah_core::ollama::client::{ClientConfig, OllamaClient};
use yollayah_core::ollama::env::OllamaEnv;
use yollayah_core::ollama::types::PsModel;
use yollayah_core::persona::{Persona, PersonaSource};
use yollayah_core::profile::ModelProfile;
use yollayah_core::watchdog::{self, WatchdogHandle, WatchdogSettings};

/// Longest wait for one expected event.
pub const WAIT: Duration = Duration::from_secs(10);
/// The watchdog tick in these tests.
pub const TICK: Duration = Duration::from_millis(100);
/// The model of the bundled persona.
pub const MODEL: &str = "llama3.2:3b";
/// A second model of the built-in catalog, for eviction.
pub const OTHER: &str = "qwen2.5:7b";

/// The demo machine (one 12 GiB GPU, built-in catalog) with quick loads and fast streams.
pub fn fast_scenario() -> Scenario {
    Scenario {
        load_ms: 20,
        tokens_per_second: 2000.0,
        ..Scenario::default()
    }
}

/// A client with deadlines well inside [`ollama_sim::TEST_LIMIT`].
pub fn client(sim: &SimHandle) -> OllamaClient {
    OllamaClient::new(ClientConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(3),
        load_timeout: Duration::from_secs(10),
        stream_idle_timeout: Duration::from_secs(5),
        ..ClientConfig::new(sim.url())
    })
    .expect("client")
}

/// The bundled persona.
pub fn persona() -> Persona {
    Persona::bundled().expect("bundled persona")
}

/// The profile the app resolves from the default config and the bundled persona.
pub fn profile() -> ModelProfile {
    ModelProfile::resolve(&Config::default(), &persona())
}

/// The default profile with `num_ctx` pinned, as a user who sets `[model.load] num_ctx` has it.
pub fn pinned_profile(num_ctx: u32) -> ModelProfile {
    let mut config = Config::default();
    config.model.load.num_ctx = Some(num_ctx);
    ModelProfile::resolve(&config, &persona())
}

/// Fast ticks, every other setting at its default.
pub fn settings() -> WatchdogSettings {
    WatchdogSettings {
        tick: TICK,
        ..WatchdogSettings::default()
    }
}

/// A simulator, a client, and (optionally) a watchdog on the simulated machine.
pub struct Rig {
    pub sim: SimHandle,
    pub client: OllamaClient,
    pub profile: Arc<ModelProfile>,
    pub watchdog: WatchdogHandle,
    pub events: Events,
    pub cancel: CancellationToken,
}

impl Rig {
    /// Starts the simulator and a watchdog. The event log subscribes before the watchdog task
    /// first runs (tests use the current-thread runtime, so the spawned task waits for the
    /// test's first await), hence no event is missed.
    pub async fn start(scenario: Scenario, settings: WatchdogSettings) -> Rig {
        Rig::start_with(scenario, settings, profile()).await
    }

    /// As [`Rig::start`], with another profile (e.g. a pinned `num_ctx`).
    pub async fn start_with(
        scenario: Scenario,
        settings: WatchdogSettings,
        profile: ModelProfile,
    ) -> Rig {
        let sim = ollama_sim::start(scenario).await.expect("start sim");
        let client = client(&sim);
        let machine = Machine::simulator(&sim.url()).expect("sim machine");
        let cancel = CancellationToken::new();
        let watchdog = watchdog::spawn(
            client.clone(),
            machine,
            profile,
            OllamaEnv::default(),
            settings,
            cancel.clone(),
        );
        let events = Events::new(watchdog.subscribe());
        Rig {
            profile: watchdog.profile().clone(),
            sim,
            client,
            watchdog,
            events,
            cancel,
        }
    }

    /// A chat engine on the bundled persona, an in-memory history and this watchdog.
    pub fn chat_engine(&self) -> ChatEngine {
        ChatEngine::new(
            self.client.clone(),
            Arc::new(PersonaSource::bundled().expect("bundled persona")),
            self.profile.clone(),
            memory_history(),
            Some(self.watchdog.clone()),
        )
    }

    /// Waits until the watchdog's warm-up finished and a tick has seen the model loaded.
    pub async fn wait_warm(&mut self) -> u64 {
        let finished = self
            .events
            .wait_for("warm-up finished", |e| {
                matches!(
                    e,
                    Event::Warm(WarmEvent::Finished { .. } | WarmEvent::Failed { .. })
                )
            })
            .await;
        let Event::Warm(WarmEvent::Finished { load_ms, .. }) = finished else {
            panic!("warm-up failed: {finished:?}");
        };
        self.events.wait_snapshot("model loaded", ours_loaded).await;
        load_ms
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// An empty in-memory history.
pub fn memory_history() -> SharedHistory {
    Arc::new(Mutex::new(
        History::open_in_memory().expect("in-memory history"),
    ))
}

/// Whether the snapshot shows the configured model loaded.
pub fn ours_loaded(s: &Snapshot) -> bool {
    s.diagnoses.iter().any(|d| d.model == s.model && d.loaded)
}

/// Everything the watchdog published since the rig started, plus a cursor for waiting.
pub struct Events {
    rx: broadcast::Receiver<Event>,
    /// Every event received so far, in order.
    pub seen: Vec<Event>,
}

impl Events {
    pub fn new(rx: broadcast::Receiver<Event>) -> Self {
        Events {
            rx,
            seen: Vec::new(),
        }
    }

    /// Receives the next event, or `None` at `deadline`. A lagged receiver fails the test:
    /// counting assertions would be meaningless with events lost.
    pub async fn next_until(&mut self, deadline: Instant) -> Option<Event> {
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Err(_) => None,
            Ok(Ok(e)) => {
                self.seen.push(e.clone());
                Some(e)
            }
            Ok(Err(RecvError::Lagged(n))) => panic!("event log lagged by {n} events"),
            Ok(Err(RecvError::Closed)) => panic!("watchdog event channel closed"),
        }
    }

    /// Waits (at most [`WAIT`]) for the first new event matching `pred`.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + WAIT;
        while let Some(e) = self.next_until(deadline).await {
            if pred(&e) {
                return e;
            }
        }
        panic!(
            "timed out waiting for {what}; events since start:\n{}",
            self.describe()
        );
    }

    /// The first event at or after index `mark` of [`Events::seen`] matching `pred`, already
    /// received or waited for (at most [`WAIT`]); returns its index and the event.
    pub async fn wait_for_since(
        &mut self,
        mark: usize,
        what: &str,
        pred: impl Fn(&Event) -> bool,
    ) -> (usize, Event) {
        if let Some(i) = (mark..self.seen.len()).find(|i| pred(&self.seen[*i])) {
            return (i, self.seen[i].clone());
        }
        let e = self.wait_for(what, pred).await;
        (self.seen.len() - 1, e)
    }

    /// Waits for the first new snapshot matching `pred`.
    pub async fn wait_snapshot(
        &mut self,
        what: &str,
        pred: impl Fn(&Snapshot) -> bool,
    ) -> Arc<Snapshot> {
        let e = self
            .wait_for(what, |e| matches!(e, Event::Snapshot(s) if pred(s)))
            .await;
        match e {
            Event::Snapshot(s) => s,
            _ => unreachable!("wait_for returned a non-matching event"),
        }
    }

    /// Lets `n` more snapshots (ticks) go by; returns the events seen meanwhile.
    pub async fn ticks(&mut self, n: usize) -> Vec<Event> {
        let start = self.seen.len();
        for i in 0..n {
            self.wait_for(&format!("tick {} of {n}", i + 1), |e| {
                matches!(e, Event::Snapshot(_))
            })
            .await;
        }
        self.seen[start..].to_vec()
    }

    /// Reads whatever is already queued without waiting.
    pub fn drain(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(e) => self.seen.push(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    panic!("event log lagged by {n} events")
                }
                Err(_) => break,
            }
        }
    }

    /// Index of the next event to be received (for counting "since").
    pub fn mark(&self) -> usize {
        self.seen.len()
    }

    /// How many events since `mark` match `pred`.
    pub fn count_since(&self, mark: usize, pred: impl Fn(&Event) -> bool) -> usize {
        self.seen[mark..].iter().filter(|e| pred(e)).count()
    }

    /// The non-snapshot events seen so far, one per line, for failure messages.
    pub fn describe(&self) -> String {
        self.seen
            .iter()
            .map(|e| match e {
                Event::Snapshot(s) => format!("  snapshot {:?} {}", s.verdict, s.headline),
                other => format!("  {other:?}"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Our model's `/api/ps` entry, if loaded.
pub async fn ps_entry(client: &OllamaClient, model: &str) -> Option<PsModel> {
    client
        .ps()
        .await
        .expect("ps")
        .models
        .into_iter()
        .find(|m| m.name == model)
}
