//! The chat window's commands, carried out in the tray process: each [`Command`] that arrives
//! over the socket ([`crate::wire`]) is answered here, with the payloads of [`crate::ipc`].
//! Errors reach the window as `{ kind, message }` (see [`crate::Error`]).

use std::process::{Command as Process, Stdio};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use yollayah_core::chat::Outgoing;
use yollayah_core::history::{ConversationId, MessageStatus};

use crate::clients::ClientId;
use crate::core_state::Core;
use crate::error::{Error, Result};
use crate::ipc::{ConversationRow, ImageSupport, MessageRow, StatusReply, events};
use crate::lock::lock;
use crate::shell::Shell;
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
        Command::SendMessage {
            conversation,
            text,
            images,
        } => {
            // An image alone is a message ("what is this?" is often implied).
            if text.trim().is_empty() && images.is_empty() {
                return Err(Error::BadInput("the message is empty".into()));
            }
            check_text(&text, "message")?;
            let prepared = core.attachments.take(&images, core.chat.image_limits())?;
            let kept = prepared.clone();
            let outgoing = Outgoing {
                text,
                images: prepared,
                ..Outgoing::default()
            };
            match reply::send(core, conversation.map(ConversationId), outgoing, emit).await {
                Ok(started) => json(started),
                Err(err) => {
                    // Refused before anything was stored (e.g. the model cannot see images):
                    // the images stay attached, as the text stays in the composer.
                    core.attachments.restore(&images, kept);
                    Err(err)
                }
            }
        }
        Command::ImageSupport => json(image_support(core).await?),
        Command::AttachImage { name, data } => {
            let support = image_support(core).await?;
            if !support.vision {
                return Err(Error::Core(yollayah_core::Error::NoVision {
                    model: support.model,
                    suggestion: support.suggestion,
                }));
            }
            json(
                core.attachments
                    .attach(&name, data, *core.chat.image_limits())
                    .await?,
            )
        }
        Command::DiscardImage { id } => {
            core.attachments.discard(id);
            Ok(Value::Null)
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
        Command::ChooseHost { host } => json(picker::choose_host(core, host).await?),
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
        Command::PullModel { name } => {
            let windows = shell.clone();
            json(crate::pulls::start(
                &core.pulls,
                &core.ollama,
                &core.cancel,
                shell.runtime(),
                move |payload| windows.clients.broadcast(events::PULL, payload),
                &name,
            )?)
        }
        Command::CancelPull { id } => {
            core.pulls.cancel(id);
            Ok(Value::Null)
        }
        Command::PullState => json(core.pulls.state()),
    }
}

/// Whether the chat model sees images (`/api/show` capabilities, cached by the engine) and,
/// when not, the smallest pulled vision model to name instead.
async fn image_support(core: &Core) -> Result<ImageSupport> {
    let model = core.chat.model().to_owned();
    let (_, vision) = core.chat.model_support().await?;
    let suggestion = if vision {
        None
    } else {
        match yollayah_core::models::list(&core.ollama).await {
            Ok(all) => yollayah_core::models::vision_suggestion(&all).map(str::to_owned),
            Err(err) => {
                tracing::warn!(%err, "listing models for a vision suggestion failed");
                None
            }
        }
    };
    let message = (!vision).then(|| {
        yollayah_core::Error::NoVision {
            model: model.clone(),
            suggestion: suggestion.clone(),
        }
        .to_string()
    });
    let limits = core.chat.image_limits();
    Ok(ImageSupport {
        model,
        vision,
        suggestion,
        message,
        max_file_bytes: limits.max_file_bytes,
        max_pixels: limits.max_pixels,
        max_images: limits.max_images,
        longest_side: limits.longest_side,
    })
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
    // Thumbnails are made from the stored bytes on the history thread: a few ms per image,
    // and nothing but the small copy crosses the socket.
    let messages = core
        .with_history(move |h| {
            let messages = h.messages(ConversationId(id))?;
            let mut thumbs = Vec::new();
            for m in &messages {
                let mut rows = Vec::with_capacity(m.images.len());
                for image in &m.images {
                    let data = h.image_data(image.id)?;
                    rows.push(crate::attach::stored_row(image, data.as_deref()));
                }
                thumbs.push(rows);
            }
            Ok(messages.into_iter().zip(thumbs).collect::<Vec<_>>())
        })
        .await?;
    Ok(messages
        .into_iter()
        .map(|(m, images)| {
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
                images,
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
