//! The chat window's IPC commands. Each forwards to the tray over the socket
//! ([`yollayah_tray::wire`]) and hands back its answer untouched: the payloads are
//! [`yollayah_tray::ipc`]'s, errors the contract's `{ kind, message }`. Each is listed in
//! build.rs and granted to the `chat` window only, in capabilities/chat.json.

use serde_json::Value;
use tauri::State;
use yollayah_tray::wire::{Client, Command, WireError};

type Reply = Result<Value, WireError>;

/// The latest snapshot (and the app's own health).
#[tauri::command]
pub async fn status(tray: State<'_, Client>) -> Reply {
    tray.call(Command::Status).await
}

/// Sends a message; returns once the reply has started.
#[tauri::command]
pub async fn send_message(
    tray: State<'_, Client>,
    conversation: Option<i64>,
    text: String,
    images: Option<Vec<u64>>,
) -> Reply {
    tray.call(Command::SendMessage {
        conversation,
        text,
        images: images.unwrap_or_default(),
    })
    .await
}

/// Whether the chat model sees images, and the size and count limits.
#[tauri::command]
pub async fn image_support(tray: State<'_, Client>) -> Reply {
    tray.call(Command::ImageSupport).await
}

/// Prepares a pasted, dropped or picked image (`data`: the file in base64); returns its id
/// and thumbnail. The full-size image stays in the tray.
#[tauri::command]
pub async fn attach_image(tray: State<'_, Client>, name: String, data: String) -> Reply {
    tray.call(Command::AttachImage { name, data }).await
}

/// Forgets an attached image (removed before sending).
#[tauri::command]
pub async fn discard_image(tray: State<'_, Client>, id: u64) -> Reply {
    tray.call(Command::DiscardImage { id }).await
}

/// Stops a streaming reply (it ends with a `cancelled` chat event).
#[tauri::command]
pub async fn cancel_reply(tray: State<'_, Client>, reply: i64) -> Reply {
    tray.call(Command::CancelReply { reply }).await
}

/// Re-sends the user message that preceded an incomplete reply.
#[tauri::command]
pub async fn retry_reply(tray: State<'_, Client>, reply: i64) -> Reply {
    tray.call(Command::RetryReply { reply }).await
}

/// The most recently updated conversations.
#[tauri::command]
pub async fn list_conversations(tray: State<'_, Client>, limit: usize) -> Reply {
    tray.call(Command::ListConversations { limit }).await
}

/// A conversation's messages, assistant ones with their sanitised HTML.
#[tauri::command]
pub async fn load_conversation(tray: State<'_, Client>, id: i64) -> Reply {
    tray.call(Command::LoadConversation { id }).await
}

/// Loads the model now and waits for it.
#[tauri::command]
pub async fn warm(tray: State<'_, Client>) -> Reply {
    tray.call(Command::Warm).await
}

/// Unloads the model now.
#[tauri::command]
pub async fn unload(tray: State<'_, Client>) -> Reply {
    tray.call(Command::Unload).await
}

/// Opens an http(s) (or mailto) link with the desktop's handler, never in the webview.
#[tauri::command]
pub async fn open_external(tray: State<'_, Client>, url: String) -> Reply {
    tray.call(Command::OpenExternal { url }).await
}

/// The last ~5 minutes of GPU readings, oldest first.
#[tauri::command]
pub async fn gpu_history(tray: State<'_, Client>) -> Reply {
    tray.call(Command::GpuHistory).await
}

/// The pulled chat models, each with its fit prediction for this machine.
#[tauri::command]
pub async fn list_models(tray: State<'_, Client>) -> Reply {
    tray.call(Command::ListModels).await
}

/// The page painted its first frame (the tray logs the time from "Open chat"). `marks` are the
/// page's start-up moments (name → Unix ms), logged here against "Open chat".
#[tauri::command]
pub async fn painted(
    tray: State<'_, Client>,
    marks: Option<std::collections::BTreeMap<String, f64>>,
) -> Reply {
    for (name, at) in marks.iter().flatten() {
        crate::timing::mark_at(&format!("page {name}"), *at);
    }
    tray.call(Command::Painted).await
}

/// The model picker's choices: the model that answers, thinking per model, the host.
#[tauri::command]
pub async fn chat_choice(tray: State<'_, Client>) -> Reply {
    tray.call(Command::ChatChoice).await
}

/// Makes `model` answer the next messages (`null`: the watched model).
#[tauri::command]
pub async fn choose_model(tray: State<'_, Client>, model: Option<String>) -> Reply {
    tray.call(Command::ChooseModel { model }).await
}

/// Thinking for `model`: on, off, low, medium, high (`null`: the server's default).
#[tauri::command]
pub async fn set_think(tray: State<'_, Client>, model: String, think: Option<String>) -> Reply {
    tray.call(Command::SetThink { model, think }).await
}

/// Makes the watchdog keep `model` warm from now on.
#[tauri::command]
pub async fn watch_model(tray: State<'_, Client>, model: String) -> Reply {
    tray.call(Command::WatchModel { model }).await
}

/// Sends chats to a `[[hosts]]` entry (`null`: this machine's Ollama).
#[tauri::command]
pub async fn choose_host(tray: State<'_, Client>, host: Option<String>) -> Reply {
    tray.call(Command::ChooseHost { host }).await
}

/// Starts pulling a model; progress arrives as `yollayah://pull` events.
#[tauri::command]
pub async fn pull_model(tray: State<'_, Client>, name: String) -> Reply {
    tray.call(Command::PullModel { name }).await
}

/// Stops the running pull (`id`: the one the window shows).
#[tauri::command]
pub async fn cancel_pull(tray: State<'_, Client>, id: Option<u64>) -> Reply {
    tray.call(Command::CancelPull { id }).await
}

/// The running pull's state (a reopened window follows it), else how the last one ended.
#[tauri::command]
pub async fn pull_state(tray: State<'_, Client>) -> Reply {
    tray.call(Command::PullState).await
}

/// Checks Ollama now (the "Retry" of the Ollama-down panel) and returns the fresh snapshot.
#[tauri::command]
pub async fn check_now(tray: State<'_, Client>) -> Reply {
    tray.call(Command::CheckNow).await
}
