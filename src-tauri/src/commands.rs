//! The chat window's IPC commands; their payloads are in [`crate::ipc`]. Each is listed in
//! build.rs and granted to the `chat` window only, in capabilities/chat.json. Errors reach the
//! window as `{ kind, message }` (see [`crate::Error`]).

use std::process::{Command, Stdio};

use tauri::{AppHandle, Runtime, State};
use time::format_description::well_known::Rfc3339;
use yollayah_core::history::{ConversationId, MessageStatus};
use yollayah_core::watchdog::WarmOutcome;

use crate::error::{Error, Result};
use crate::ipc::{ConversationRow, MessageRow, Started, StatusReply};
use crate::reply;
use crate::samples::GpuSample;
use crate::startup::{Core, lock};
use crate::state::AppState;

/// Longest message or Markdown text accepted from the window (a whole book is ~1 MB).
const MAX_TEXT: usize = 1 << 20;
/// Most conversations one list returns.
const MAX_LIST: usize = 500;

fn check_text(text: &str, what: &str) -> Result<()> {
    if text.len() > MAX_TEXT {
        return Err(Error::BadInput(format!(
            "the {what} is too long ({} bytes; at most {MAX_TEXT})",
            text.len()
        )));
    }
    Ok(())
}

/// The latest snapshot (and the app's own health).
#[tauri::command]
pub fn status(app: State<'_, AppState>, core: State<'_, Core>) -> StatusReply {
    StatusReply {
        snapshot: core.watchdog.latest(),
        app: app.status(),
        problems: core.problems.clone(),
    }
}

/// Sends a message; returns once the reply has started.
#[tauri::command]
pub async fn send_message<R: Runtime>(
    app: AppHandle<R>,
    core: State<'_, Core>,
    conversation: Option<i64>,
    text: String,
) -> Result<Started> {
    if text.trim().is_empty() {
        return Err(Error::BadInput("the message is empty".into()));
    }
    check_text(&text, "message")?;
    reply::send(&app, &core, conversation.map(ConversationId), text).await
}

/// Stops a streaming reply (it ends with a `cancelled` chat event).
#[tauri::command]
pub fn cancel_reply(core: State<'_, Core>, reply: i64) {
    reply::cancel(&core, reply);
}

/// Re-sends the user message that preceded an incomplete reply.
#[tauri::command]
pub async fn retry_reply<R: Runtime>(
    app: AppHandle<R>,
    core: State<'_, Core>,
    reply: i64,
) -> Result<Started> {
    reply::retry(&app, &core, reply).await
}

/// The most recently updated conversations.
#[tauri::command]
pub async fn list_conversations(
    core: State<'_, Core>,
    limit: usize,
) -> Result<Vec<ConversationRow>> {
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
#[tauri::command]
pub async fn load_conversation(core: State<'_, Core>, id: i64) -> Result<Vec<MessageRow>> {
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
            }
        })
        .collect())
}

/// Loads the model now and waits for it.
#[tauri::command]
pub async fn warm(core: State<'_, Core>) -> Result<WarmOutcome> {
    Ok(core.watchdog.warm().await?)
}

/// Unloads the model now.
#[tauri::command]
pub async fn unload(core: State<'_, Core>) -> Result<()> {
    Ok(core.watchdog.unload().await?)
}

/// Checks that `url` is something the system browser (or mail client) may open, and returns
/// it normalised. Everything else (`javascript:`, `file:`, `data:`, relative URLs) is refused:
/// model output chooses these URLs.
pub fn external_url(url: &str) -> Result<String> {
    let parsed = tauri::Url::parse(url.trim())
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
#[tauri::command]
pub fn open_external(core: State<'_, Core>, url: String) -> Result<()> {
    let url = external_url(&url)?;
    let mut child = Command::new(&core.opener)
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

/// The last ~5 minutes of GPU readings, oldest first.
#[tauri::command]
pub fn gpu_history(core: State<'_, Core>) -> Vec<GpuSample> {
    lock(&core.samples).to_vec()
}
