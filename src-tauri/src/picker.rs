//! The chat's choices, made in the popup's model picker and held here, in the tray, so every
//! chat window (and the next one opened) sends with them: which model answers, whether it
//! thinks (per model), and which host the chat goes to. Every change is written, in one
//! transaction, to the history database's `settings` table
//! ([`History::save_choice`](yollayah_core::history::History::save_choice)) and read back at
//! the next start ([`restore`]), so they outlive a restart; with history off (or its database
//! unusable) they are held in memory only and the config decides at the next start
//! (`docs/desktop.md`, "Model picker").
//!
//! A stored choice that no longer applies goes away on its own, never as an error: a host no
//! longer in `[[hosts]]` at start; a model when the model list no longer has it (the picker
//! falls back to the watched model and says so once, in [`PickerState::note`]); a think value
//! the model no longer takes, when the model list says so.
//!
//! Choosing a model changes only the request's `model`: the persona is the same runtime system
//! message, and the load options are the profile's (a choice never changes a load-time
//! option, fact sheet §5). "Watch this one" is different: it moves the watchdog itself
//! ([`WatchdogHandle::watch_model`](yollayah_core::watchdog::WatchdogHandle::watch_model)).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use yollayah_core::chat::{ChatEngine, Outgoing, SharedHistory};
use yollayah_core::models::{self, ModelEntry};
use yollayah_core::ollama::types::Think;

use crate::core_state::{ChatChoice, ChatHost, Core};
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
    /// Said once, by the first state after it happened: why a choice went away on its own
    /// (the chosen model is no longer on the server).
    pub note: Option<String>,
}

/// The state the picker shows; hands over the note, once.
pub fn state(core: &Core) -> PickerState {
    let choice = {
        let mut choice = lock(&core.choice);
        let now = choice.clone();
        choice.note = None;
        now
    };
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
        note: choice.note,
    }
}

/// The choice the last run stored, less what no longer applies to this one: a host that is no
/// longer in `[[hosts]]` goes (and the model chosen on it), said in the log and written back.
/// A model or think value is checked later, against the model list (the server may not be up
/// yet). A database that cannot be read leaves the config's defaults: never a failed start.
pub fn restore(history: &SharedHistory, chat_hosts: &[ChatHost]) -> ChatChoice {
    let mut history = lock(history);
    let stored = match history.load_choice() {
        Ok(stored) => stored,
        Err(err) => {
            tracing::warn!(%err, "the picker's stored choice cannot be read; the config decides");
            return ChatChoice::default();
        }
    };
    let mut choice = ChatChoice::from_stored(stored);
    if let Some(host) = choice.host.clone()
        && !chat_hosts.iter().any(|h| h.name == host)
    {
        tracing::info!(
            host,
            model = choice.model.as_deref().unwrap_or(""),
            "the chosen chat host is no longer in [[hosts]]; chats go to [ollama], watched model"
        );
        choice.host = None;
        choice.model = None;
        if let Err(err) = history.save_choice(&choice.stored()) {
            tracing::warn!(%err, "the model picker's choice was not saved");
        }
    }
    choice
}

/// Writes the choice as it is now. The snapshot is taken under the history lock, so two
/// changes racing are written in the order they were made and the last write is the latest
/// choice. A failed write leaves the choice in memory, as with history off.
async fn persist(core: &Core) {
    let choice = Arc::clone(&core.choice);
    let saved = core
        .with_history(move |h| {
            let stored = lock(&choice).stored();
            h.save_choice(&stored)
        })
        .await;
    if let Err(err) = saved {
        tracing::warn!(%err, "the picker's choice was not saved; it holds until the tray restarts");
    }
}

/// What the model list of `host` says about the choice: a chosen model it no longer has goes
/// (back to the watched model, with a note), and so does a think value a listed model no
/// longer takes. Written back when anything went.
async fn forget_what_is_gone(core: &Core, host: Option<&str>, rows: &[ModelEntry]) {
    let watched = core.watchdog.profile().model.clone();
    let changed = {
        let mut choice = lock(&core.choice);
        let mut changed = false;
        if let Some(model) = choice.model.clone()
            && choice.host.as_deref() == host
            && !rows.iter().any(|m| m.name == model)
        {
            tracing::info!(
                model,
                "the chosen chat model is no longer on the server; chats go to the watched model"
            );
            choice.note = Some(format!(
                "{model} is no longer on this server: the watched model, {watched}, answers again."
            ));
            choice.model = None;
            changed = true;
        }
        // A model whose capabilities could not be read says nothing about its thinking.
        for m in rows.iter().filter(|m| m.show_error.is_none()) {
            if let Some(&think) = choice.think.get(&m.name)
                && m.think.request(think) != Some(think)
            {
                tracing::info!(
                    model = m.name,
                    "the model no longer takes the stored thinking choice; server default applies"
                );
                choice.think.remove(&m.name);
                changed = true;
            }
        }
        changed
    };
    if changed {
        persist(core).await;
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
    let rows = match &host {
        None => {
            let rows = crate::models::list(core).await?;
            core.watchdog
                .expect_fits(rows.iter().filter_map(|m| m.fit.clone()).collect());
            rows
        }
        Some(name) => {
            let engine = engine_for(core, Some(name));
            let all = models::list(engine.client()).await?;
            all.into_iter().filter(|m| m.chat).collect()
        }
    };
    forget_what_is_gone(core, host.as_deref(), &rows).await;
    Ok(rows)
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
    persist(core).await;
    Ok(state(core))
}

/// Sets thinking for `model`: `on`/`off` (`true`/`false`), a level, or `None` for the
/// server's default. A model that cannot think is refused (Ollama would answer 400).
pub async fn set_think(core: &Core, model: &str, think: Option<&str>) -> Result<PickerState> {
    let Some(text) = think else {
        lock(&core.choice).think.remove(model);
        persist(core).await;
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
    persist(core).await;
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
pub async fn choose_host(core: &Core, host: Option<String>) -> Result<PickerState> {
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
    persist(core).await;
    Ok(state(core))
}
