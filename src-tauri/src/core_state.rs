//! The running core's state: what the socket commands, the actions, the forwarder and the
//! feature modules (picker, pulls, attachments, hosts, replies) work with. It sits below all of
//! them and knows none of their logic, so each can take `&Core` without an import cycle;
//! building it (config, persona, history, watchdog) is `startup`'s, at the top.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use yollayah_core::agent_client::AgentClient;
use yollayah_core::chat::{ChatEngine, SharedHistory};
use yollayah_core::config::HostConfig;
use yollayah_core::history::{self, History, StoredChoice};
use yollayah_core::ollama::client::OllamaClient;
use yollayah_core::ollama::types::Think;
use yollayah_core::shortcut::Binding;
use yollayah_core::watchdog::WatchdogHandle;

use crate::attach::Attachments;
use crate::error::Result;
use crate::pulls::Pulls;
use crate::samples::GpuSamples;

/// The running core, managed by Tauri: what the IPC commands, the actions and the forwarder
/// work with.
pub struct Core {
    /// The watchdog (state, warm, unload, mute).
    pub watchdog: WatchdogHandle,
    /// Sends chats; shares `history` and the watchdog's profile.
    pub chat: ChatEngine,
    /// Ollama, for what the chat engine and the watchdog do not cover (the model list).
    pub ollama: OllamaClient,
    /// The history store.
    pub history: SharedHistory,
    /// The sparkline's data.
    pub samples: Mutex<GpuSamples>,
    /// Cancellation of every reply still streaming, by reply id.
    pub replies: Arc<Mutex<HashMap<i64, CancellationToken>>>,
    /// What went wrong at startup and what was done instead, in plain words.
    pub problems: Vec<String>,
    /// The program `open_external` runs.
    pub opener: PathBuf,
    /// The model pull started from the popup, if any.
    pub pulls: Arc<Pulls>,
    /// Stops the watchdog and the forwarder.
    pub cancel: CancellationToken,
    /// Images attached in the chat window and not yet sent.
    pub attachments: Attachments,
    /// The config's `[[hosts]]`, followed besides `[ollama]` (empty: nothing changes).
    pub hosts: Vec<Followed>,
    /// How often a host without an agent is read (the watchdog's tick).
    pub host_tick: Duration,
    /// `[shortcut] toggle_chat`: the global shortcut the tray binds.
    pub shortcut: Binding,
    /// What the model picker chose (model, thinking, host); kept in the history database
    /// between runs (`picker`). An `Arc` so the write can read it under the history lock.
    pub choice: Arc<Mutex<ChatChoice>>,
    /// The `[[hosts]]` chats can be sent to, each with its own engine.
    pub chat_hosts: Vec<ChatHost>,
    /// The in-process simulator of demo mode: held only so it lives as long as the core.
    #[cfg(feature = "demo")]
    pub(crate) _sim: Option<ollama_sim::SimHandle>,
}

impl Core {
    /// Runs `f` on the history store on a blocking thread (SQLite calls block).
    pub async fn with_history<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut History) -> yollayah_core::Result<T> + Send + 'static,
    ) -> Result<T> {
        Ok(history::with_history(&self.history, f).await?)
    }

    /// Stops the watchdog and the forwarder.
    pub fn shutdown(&self) {
        self.cancel.cancel();
        self.watchdog.shutdown();
    }
}

/// What the user picked. `None` everywhere is the config's behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatChoice {
    /// The model that answers; `None`: the watched one.
    pub model: Option<String>,
    /// Thinking per model; a model missing here gets the server's default (on).
    pub think: BTreeMap<String, Think>,
    /// The `[[hosts]]` name chats go to; `None`: `[ollama]`.
    pub host: Option<String>,
    /// What the picker says once, at its next state: why a choice went away on its own (the
    /// chosen model is no longer on the server). Never stored.
    pub note: Option<String>,
}

impl ChatChoice {
    /// A stored choice, as it was last run (checked against this run by `picker::restore`).
    pub fn from_stored(stored: StoredChoice) -> ChatChoice {
        ChatChoice {
            model: stored.model,
            think: stored.think,
            host: stored.host,
            note: None,
        }
    }

    /// What is kept for the next run.
    pub fn stored(&self) -> StoredChoice {
        StoredChoice {
            model: self.model.clone(),
            think: self.think.clone(),
            host: self.host.clone(),
        }
    }
}

/// A `[[hosts]]` entry chats can go to.
pub struct ChatHost {
    pub name: String,
    pub url: String,
    /// Chats with that host's Ollama: same persona, profile and history, no watchdog (the
    /// tray's one watchdog follows `[ollama]`).
    pub engine: ChatEngine,
}

impl std::fmt::Debug for ChatHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatHost")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// One followed host: its config and how it is read.
#[derive(Debug)]
pub struct Followed {
    /// The `[[hosts]]` entry.
    pub config: HostConfig,
    /// Its agent; `Err` when the host cannot be followed at all (token file unreadable or too
    /// open, a bad URL), said in the host's line.
    pub agent: Result<Option<AgentClient>, String>,
    /// The host's Ollama, read for hosts without an agent.
    pub ollama: Option<OllamaClient>,
}
