//! Starting the core: loads config, persona, profile and history, builds the Ollama
//! client and the machine source, and spawns the watchdog on Tauri's tokio runtime. Nothing
//! here may stop the app from starting: a broken config, persona or history database becomes
//! a visible problem (in `status` and the tray's diagnosis line) and a fallback, never a crash.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use yollayah_core::chat::{ChatEngine, SharedHistory};
use yollayah_core::config::Config;
use yollayah_core::history::History;
use yollayah_core::machine::Machine;
use yollayah_core::ollama::client::{ClientConfig, OllamaClient};
use yollayah_core::ollama::env::OllamaEnv;
use yollayah_core::persona::PersonaSource;
use yollayah_core::profile::ModelProfile;
use yollayah_core::watchdog::{self, WatchdogHandle, WatchdogSettings};

use crate::core_state::{ChatHost, Core};
use crate::error::Result;
use crate::samples::GpuSamples;
use crate::user_files::UserFiles;

/// Where GPU and runner facts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuSource {
    /// This computer (NVML + the process table).
    Local,
    /// The `/__sim/gpu` view of the `ollama-sim` the client talks to (demo mode, tests).
    Simulator,
}

/// How to start the core. [`CoreOptions::default`] is the normal desktop app.
#[derive(Debug)]
pub struct CoreOptions {
    /// Ollama's URL; `None`: the config's `[ollama] url`, else `OLLAMA_HOST`, else the default.
    pub ollama_url: Option<String>,
    /// Where GPU facts come from.
    pub gpu: GpuSource,
    /// The config file; `None`: the XDG default. `Some("")`-like paths are not special.
    pub config_path: Option<PathBuf>,
    /// Ignore the user's config and persona files (demo mode: the simulator's catalog decides
    /// which models exist, so the user's model choice must not leak in).
    pub builtin_config: bool,
    /// History database; `None`: the config's. `Some(None)`: in memory only.
    pub history_path: Option<Option<PathBuf>>,
    /// Overrides the config's tick (tests use a fast one).
    pub tick: Option<Duration>,
    /// Overrides whether the watchdog warms the model as soon as it starts.
    pub warm_on_start: Option<bool>,
    /// The program `open_external` hands URLs to.
    pub opener: PathBuf,
    /// What "Start at login" and "Open config" act on; `None`: the user's real files.
    pub files: Option<UserFiles>,
    /// Demo mode's in-process simulator, kept alive as long as the core.
    #[cfg(feature = "demo")]
    pub sim: Option<ollama_sim::SimHandle>,
}

impl Default for CoreOptions {
    fn default() -> Self {
        CoreOptions {
            ollama_url: None,
            gpu: GpuSource::Local,
            config_path: None,
            builtin_config: false,
            history_path: None,
            tick: None,
            warm_on_start: None,
            opener: PathBuf::from("xdg-open"),
            files: None,
            #[cfg(feature = "demo")]
            sim: None,
        }
    }
}

/// A chat engine per `[[hosts]]` entry (its Ollama URL), sharing the persona, profile and
/// history; a host whose URL is unusable is left out and said in `problems`.
fn chat_hosts(
    config: &Config,
    persona: &Arc<PersonaSource>,
    watchdog: &WatchdogHandle,
    history: &SharedHistory,
    problems: &mut Vec<String>,
) -> Vec<ChatHost> {
    let mut out = Vec::new();
    for host in &config.hosts {
        match ClientConfig::from_config(config, Some(&host.url)).and_then(OllamaClient::new) {
            Ok(client) => out.push(ChatHost {
                name: host.name.clone(),
                url: client.base_url().to_owned(),
                engine: ChatEngine::new(
                    client,
                    persona.clone(),
                    watchdog.profile(),
                    history.clone(),
                    None,
                ),
            }),
            Err(err) => problems.push(format!("Host {} cannot be chatted with: {err}", host.name)),
        }
    }
    out
}

// Building lives here, at the top (it reads config, persona and history and knows every
// feature's start-up); the struct lives in `core_state`, below the features that use it.
impl Core {
    /// Starts the core. Must run inside a tokio runtime (the watchdog is spawned on it).
    pub fn start(options: CoreOptions) -> Result<Core> {
        let mut problems = Vec::new();
        let config = if options.builtin_config {
            Config::default()
        } else {
            let loaded = match &options.config_path {
                Some(path) => Config::load(path),
                None => Config::load_default(),
            };
            loaded.unwrap_or_else(|err| {
                tracing::warn!(%err, "config not usable; running with defaults");
                problems.push(format!("Config error, using defaults: {err}"));
                Config::default()
            })
        };

        let persona = if options.builtin_config {
            PersonaSource::bundled()?
        } else {
            match PersonaSource::from_config(&config) {
                Ok(p) => p,
                Err(err) => {
                    tracing::warn!(%err, "persona not usable; using the bundled one");
                    problems.push(format!("Persona error, using the bundled persona: {err}"));
                    PersonaSource::bundled()?
                }
            }
        };
        let profile = ModelProfile::resolve(&config, &persona.current());

        let client = match ClientConfig::from_config(&config, options.ollama_url.as_deref())
            .and_then(OllamaClient::new)
        {
            Ok(c) => c,
            Err(err) => {
                tracing::warn!(%err, "Ollama address not usable; using the default");
                problems.push(format!("{err}; using {}", ClientConfig::default().base_url));
                OllamaClient::new(ClientConfig::default())?
            }
        };

        let history_path = match &options.history_path {
            Some(p) => p.clone(),
            None if options.builtin_config => None,
            None => config.history_path(),
        };
        let history = match history_path.as_ref().map(History::open) {
            Some(Ok(h)) => h,
            Some(Err(err)) => {
                tracing::warn!(%err, "history not usable; chats are kept in memory only");
                problems.push(format!(
                    "Chat history unavailable, this session's chats are not saved: {err}"
                ));
                History::open_in_memory()?
            }
            None => History::open_in_memory()?,
        };
        let history: SharedHistory = Arc::new(Mutex::new(history));

        let machine = match options.gpu {
            GpuSource::Local => Machine::local(),
            GpuSource::Simulator => Machine::simulator(client.base_url())?,
        };
        let mut settings = WatchdogSettings::from_config(&config);
        if let Some(tick) = options.tick {
            settings.tick = tick;
        }
        if let Some(warm) = options.warm_on_start {
            settings.warm_on_start = warm;
        }
        let hosts = crate::hosts::from_config(&config);
        let shortcut = config.shortcut.toggle_chat;
        let host_tick = settings.tick;
        let cancel = CancellationToken::new();
        let watchdog = watchdog::spawn(
            client.clone(),
            machine,
            profile,
            OllamaEnv::from_process_env(),
            settings,
            cancel.child_token(),
        );
        let ollama = client.clone();
        let persona = Arc::new(persona);
        let chat_hosts = chat_hosts(&config, &persona, &watchdog, &history, &mut problems);
        let choice = crate::picker::restore(&history, &chat_hosts);
        let chat = ChatEngine::new(
            client,
            persona,
            watchdog.profile(),
            history.clone(),
            Some(watchdog.clone()),
        );
        Ok(Core {
            watchdog,
            chat,
            ollama,
            history,
            samples: Mutex::new(GpuSamples::default()),
            replies: Arc::new(Mutex::new(HashMap::new())),
            attachments: crate::attach::Attachments::default(),
            problems,
            opener: options.opener,
            pulls: Arc::default(),
            cancel,
            hosts,
            host_tick,
            shortcut,
            choice: Arc::new(Mutex::new(choice)),
            chat_hosts,
            #[cfg(feature = "demo")]
            _sim: options.sim,
        })
    }
}
