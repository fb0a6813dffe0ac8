//! The chat window's commands, carried out in the tray process: each [`Command`] that arrives
//! over the socket ([`crate::wire`]) is answered here, with the payloads of [`crate::ipc`].
//! Errors reach the window as `{ kind, message }` (see [`crate::Error`]).

use std::process::{Command as Process, Stdio};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use yollayah_core::history::{ConversationId, MessageStatus};

use crate::error::{Error, Result};
use crate::ipc::{ConversationRow, MessageRow, StatusReply, events};
use crate::service::ClientId;
use crate::shell::Shell;
use crate::startup::{Core, lock};
use crate::wire::Command;
use crate::{picker, reply};

/// Longest message or Markdown text accepted from the window (a whole book is ~1 MB).
const MAX_TEXT: usize = 1 << 20;
/// Most conversations one list returns.
const MAX_LIST: usize = 500;
/// Longest a "check now" waits for its tick.
const CHECK_NOW_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

fn check_text(text: &str, what: &str) -> Result<()> {
    if text.len() > MAX_TEXT {
        return Err(Error::BadInput(format!(
            "the {what} is too long ({} bytes; at most {MAX_TEXT})",
            text.len()
        )));
    }
    Ok(())
}

fn json(value: impl Serialize) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::Internal(format!("encoding a reply: {e}")))
}

/// Carries out `command` for the chat window `client`.
pub(crate) async fn handle(
    shell: &Arc<Shell>,
    client: ClientId,
    command: Command,
) -> Result<Value> {
    let core = &shell.core;
    // A reply's events go to the window that asked for it.
    let emit = {
        let shell = shell.clone();
        move |payload| shell.clients.send_event(client, events::CHAT, &payload)
    };
    match command {
        Command::Status => json(StatusReply {
            snapshot: core.watchdog.latest(),
            app: shell.status(),
            problems: core.problems.clone(),
        }),
        Command::SendMessage { conversation, text } => {
            if text.trim().is_empty() {
                return Err(Error::BadInput("the message is empty".into()));
            }
            check_text(&text, "message")?;
            json(reply::send(core, conversation.map(ConversationId), text, emit).await?)
        }
        Command::CancelReply { reply } => {
            reply::cancel(core, reply);
            Ok(Value::Null)
        }
        Command::RetryReply { reply } => json(reply::retry(core, reply, emit).await?),
        Command::ListConversations { limit } => json(list_conversations(core, limit).await?),
        Command::LoadConversation { id } => json(load_conversation(core, id).await?),
        Command::Warm => json(core.watchdog.warm().await?),
        Command::Unload => json(core.watchdog.unload().await?),
        Command::OpenExternal { url } => {
            open_external(core, &url)?;
            Ok(Value::Null)
        }
        Command::GpuHistory => json(lock(&core.samples).to_vec()),
        Command::ListModels => json(picker::list(core).await?),
        Command::ChatChoice => json(picker::state(core)),
        Command::ChooseModel { model } => json(picker::choose_model(core, model).await?),
        Command::SetThink { model, think } => {
            json(picker::set_think(core, &model, think.as_deref()).await?)
        }
        Command::WatchModel { model } => json(picker::watch_model(core, &model).await?),
        Command::ChooseHost { host } => json(picker::choose_host(core, host)?),
        Command::CheckNow => {
            // The tick reaches Ollama with the client's own timeouts; the bound only keeps a
            // wedged watchdog from holding the window's button forever.
            core.watchdog.kick_and_wait(CHECK_NOW_LIMIT).await;
            json(StatusReply {
                snapshot: core.watchdog.latest(),
                app: shell.status(),
                problems: core.problems.clone(),
            })
        }
        Command::Painted => {
            shell.chat.painted();
            Ok(Value::Null)
        }
        Command::PullModel { name } => json(crate::pulls::start(shell, &name)?),
        Command::CancelPull { id } => {
            core.pulls.cancel(id);
            Ok(Value::Null)
        }
        Command::PullState => json(core.pulls.state()),
    }
}

/// The most recently updated conversations.
async fn list_conversations(core: &Core, limit: usize) -> Result<Vec<ConversationRow>> {
    let limit = limit.clamp(1, MAX_LIST);
    let rows = core
        .with_history(move |h| h.list_conversations(limit))
        .await?;
    Ok(rows
        .into_iter()
        .map(|c| ConversationRow {
            id: c.id.0,
            title: c.title,
            model: c.model,
            persona: c.persona,
            updated_at: c.updated_at.format(&Rfc3339).unwrap_or_default(),
            message_count: c.message_count,
            preview: c.preview,
        })
        .collect())
}

/// A conversation's messages, assistant ones with their sanitised HTML.
async fn load_conversation(core: &Core, id: i64) -> Result<Vec<MessageRow>> {
    let messages = core
        .with_history(move |h| h.messages(ConversationId(id)))
        .await?;
    Ok(messages
        .into_iter()
        .map(|m| {
            let (status, reason) = match m.status {
                MessageStatus::Pending => ("pending", None),
                MessageStatus::Streaming => ("streaming", None),
                MessageStatus::Complete => ("complete", None),
                MessageStatus::Incomplete { reason } => ("incomplete", Some(reason)),
            };
            // The same block split as streaming, so a reloaded reply looks as it did live.
            let html = (m.role == "assistant").then(|| yollayah_render::render_all(&m.content));
            MessageRow {
                id: m.id.0,
                role: m.role,
                content: m.content,
                status,
                reason,
                html,
                thinking: m.thinking,
                thinking_ms: m.thinking_ms,
            }
        })
        .collect())
}

/// Checks that `url` is something the system browser (or mail client) may open, and returns
/// it normalised. Everything else (`javascript:`, `file:`, `data:`, relative URLs) is refused:
/// model output chooses these URLs.
pub fn external_url(url: &str) -> Result<String> {
    let parsed = url::Url::parse(url.trim())
        .map_err(|e| Error::BadInput(format!("not a URL ({e}): {url:?}")))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host_str().is_some() => Ok(parsed.to_string()),
        "mailto" => Ok(parsed.to_string()),
        other => Err(Error::BadInput(format!(
            "only http(s) and mailto links can be opened, not {other:?}"
        ))),
    }
}

/// Opens an http(s) (or mailto) link with the desktop's handler, never in the webview.
fn open_external(core: &Core, url: &str) -> Result<()> {
    let url = external_url(url)?;
    let mut child = Process::new(&core.opener)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io(format!("starting {}", core.opener.display()), e))?;
    // Reap it off the IPC thread so no zombie is left; xdg-open returns quickly.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(())
}
