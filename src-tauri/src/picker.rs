//! The chat's choices, made in the popup's model picker and held here, in the tray, so every
//! chat window (and the next one opened) sends with them: which model answers, whether it
//! thinks (per model), and which host the chat goes to. They last as long as the tray runs;
//! the config decides at the next start (`docs/desktop.md`, "Model picker").
//!
//! Choosing a model changes only the request's `model`: the persona is the same runtime system
//! message, and the load options are the profile's (a choice never changes a load-time
//! option, fact sheet §5). "Watch this one" is different: it moves the watchdog itself
//! ([`WatchdogHandle::watch_model`](yollayah_core::watchdog::WatchdogHandle::watch_model)).

use std::collections::BTreeMap;

use serde::Serialize;
use yollayah_core::chat::{ChatEngine, Outgoing};
use yollayah_core::models::{self, ModelEntry};
use yollayah_core::ollama::types::Think;

use crate::core_state::Core;
use crate::error::{Error, Result};
use crate::lock::lock;

/// A host as the picker lists it.
#[derive(Debug, Clone, Serialize)]
pub struct HostRow {
    pub name: String,
    pub url: String,
}

/// What `chat_choice` (and every command that changes a choice) returns.
#[derive(Debug, Clone, Serialize)]
pub struct PickerState {
    /// The model the next message goes to.
    pub model: String,
    /// Whether the user picked it (false: it is the watched model by default).
    pub chosen: bool,
    /// The model the watchdog keeps warm.
    pub watched: String,
    /// Thinking per model, as sent: `true`/`false` or a level.
    pub think: BTreeMap<String, Think>,
    /// The host chats go to; `None`: this machine's `[ollama]`.
    pub host: Option<String>,
    /// `[[hosts]]` chats can go to (empty: no host picker).
    pub hosts: Vec<HostRow>,
    /// Whether "Watch this one" outlives a restart (it does not: the config decides then).
    pub watch_persists: bool,
}

/// The state the picker shows.
pub fn state(core: &Core) -> PickerState {
    let choice = lock(&core.choice).clone();
    let watched = core.watchdog.profile().model.clone();
    PickerState {
        model: choice.model.clone().unwrap_or_else(|| watched.clone()),
        chosen: choice.model.is_some(),
        watched,
        think: choice.think,
        host: choice.host,
        hosts: core
            .chat_hosts
            .iter()
            .map(|h| HostRow {
                name: h.name.clone(),
                url: h.url.clone(),
            })
            .collect(),
        watch_persists: false,
    }
}

/// The engine chats go to now, and the message with the choices applied.
pub fn outgoing(core: &Core, outgoing: Outgoing) -> (ChatEngine, Outgoing) {
    let choice = lock(&core.choice).clone();
    let engine = engine_for(core, choice.host.as_deref()).clone();
    let model = choice.model.clone().unwrap_or_else(|| engine.model());
    let outgoing = Outgoing {
        think: choice.think.get(&model).copied(),
        model: choice.model,
        ..outgoing
    };
    (engine, outgoing)
}

fn engine_for<'a>(core: &'a Core, host: Option<&str>) -> &'a ChatEngine {
    host.and_then(|name| core.chat_hosts.iter().find(|h| h.name == name))
        .map_or(&core.chat, |h| &h.engine)
}

/// The models of the host chats go to. For `[ollama]` each has its fit prediction (and the
/// predictions are handed to the watchdog, which checks them once the model loads); a remote
/// host's models have none, since this machine's GPU says nothing about that server.
pub async fn list(core: &Core) -> Result<Vec<ModelEntry>> {
    let host = lock(&core.choice).host.clone();
    match host {
        None => {
            let rows = crate::models::list(core).await?;
            core.watchdog
                .expect_fits(rows.iter().filter_map(|m| m.fit.clone()).collect());
            Ok(rows)
        }
        Some(name) => {
            let engine = engine_for(core, Some(&name));
            let all = models::list(engine.client()).await?;
            Ok(all.into_iter().filter(|m| m.chat).collect())
        }
    }
}

/// A pulled chat model of the current host called `model`, or an error that says why not.
async fn chat_model(core: &Core, model: &str) -> Result<ModelEntry> {
    let rows = list(core).await?;
    if let Some(m) = rows.into_iter().find(|m| m.name == model) {
        return Ok(m);
    }
    let host = lock(&core.choice).host.clone();
    let engine = engine_for(core, host.as_deref());
    let embedding = models::list(engine.client())
        .await
        .is_ok_and(|all| all.iter().any(|m| m.name == model && !m.chat));
    Err(Error::BadInput(if embedding {
        format!("{model} is an embedding model: it cannot chat")
    } else {
        format!("{model} is not pulled on this server")
    }))
}

/// Makes `model` answer the next messages (`None`: back to the watched model).
pub async fn choose_model(core: &Core, model: Option<String>) -> Result<PickerState> {
    let model = model.filter(|m| !m.trim().is_empty());
    if let Some(m) = &model {
        chat_model(core, m).await?;
    }
    lock(&core.choice).model = model;
    Ok(state(core))
}

/// Sets thinking for `model`: `on`/`off` (`true`/`false`), a level, or `None` for the
/// server's default. A model that cannot think is refused (Ollama would answer 400).
pub async fn set_think(core: &Core, model: &str, think: Option<&str>) -> Result<PickerState> {
    let Some(text) = think else {
        lock(&core.choice).think.remove(model);
        return Ok(state(core));
    };
    let wanted = Think::parse(text).ok_or_else(|| {
        Error::BadInput(format!(
            "thinking is on, off, low, medium or high, not {text:?}"
        ))
    })?;
    let entry = chat_model(core, model).await?;
    let Some(sent) = entry.think.request(wanted) else {
        return Err(Error::BadInput(format!("{model} does not think")));
    };
    // What is stored is what will be sent: gpt-oss "off" is "low", and says so in the UI.
    lock(&core.choice).think.insert(model.to_owned(), sent);
    Ok(state(core))
}

/// Makes the watchdog keep `model` warm from now on (this machine's `[ollama]` only: the
/// watchdog does not follow other hosts).
pub async fn watch_model(core: &Core, model: &str) -> Result<PickerState> {
    if lock(&core.choice).host.is_some() {
        return Err(Error::BadInput(
            "only a model of this machine's Ollama can be watched; pick the local server first"
                .into(),
        ));
    }
    chat_model(core, model).await?;
    core.watchdog.watch_model(model).await?;
    Ok(state(core))
}

/// Sends chats to the `[[hosts]]` entry `host` (`None`: `[ollama]`). The model choice goes
/// back to the default, since another server has other models.
pub fn choose_host(core: &Core, host: Option<String>) -> Result<PickerState> {
    if let Some(name) = &host {
        if !core.chat_hosts.iter().any(|h| &h.name == name) {
            return Err(Error::BadInput(format!(
                "there is no [[hosts]] entry called {name:?}"
            )));
        }
    }
    {
        let mut choice = lock(&core.choice);
        if choice.host != host {
            choice.model = None;
        }
        choice.host = host;
    }
    Ok(state(core))
}
