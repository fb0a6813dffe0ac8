//! The IPC contract between the chat window and the app: the event names and every payload the
//! window receives. These types *are* the contract (as a Tauri plugin's `models.rs` is); the
//! command list is [`crate::wire::Command`] (carried out in [`crate::commands`]), the chat
//! process exposes each as a Tauri command of the same name, and `ui/ipc.js` mirrors the names. Errors reach the
//! window as `{ kind, message }` (see [`crate::Error`]).

use std::sync::Arc;

use serde::Serialize;
use yollayah_core::chat::ReplyStats;
use yollayah_core::events::Snapshot;
use yollayah_core::pull::PullStatus;

use crate::notify::NotifierHealth;
use crate::view::TrayView;

/// Names of the events the app emits to the chat window.
pub mod events {
    /// A new watchdog [`Snapshot`](yollayah_core::events::Snapshot) (payload: the snapshot).
    pub const SNAPSHOT: &str = "yollayah://snapshot";
    /// A chat reply event (payload: [`ChatPayload`](super::ChatPayload)).
    pub const CHAT: &str = "yollayah://chat";
    /// A model pull's progress or outcome (payload: [`PullPayload`](super::PullPayload)), to
    /// every window: the pull belongs to the tray, not to the window that started it.
    pub const PULL: &str = "yollayah://pull";
}

/// What `status` returns: the watchdog's snapshot, plus (under `app`) how the desktop
/// integration is doing and what went wrong at startup.
#[derive(Debug, Serialize)]
pub struct StatusReply {
    /// The watchdog's latest snapshot (flattened: the window reads it as a `Snapshot`).
    #[serde(flatten)]
    pub snapshot: Arc<Snapshot>,
    /// Tray, notifications, last shell error.
    pub app: Status,
    /// Startup problems (config, persona, history) in plain words.
    pub problems: Vec<String>,
}

/// What `status` returns under `app`: the view plus the health of the desktop integration.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// What the tray shows.
    pub view: TrayView,
    /// Whether a StatusNotifierWatcher owns the session bus name, i.e. whether the tray icon
    /// can appear at all; `None` until checked (and in headless tests).
    pub tray_host: Option<bool>,
    /// Health of desktop notifications.
    pub notifications: NotifierHealth,
    /// The last failure of a shell action (menu command, tray update, bus check, chat process).
    pub last_error: Option<String>,
    /// How the global shortcut is bound.
    pub shortcut: ShortcutState,
}

/// How the shortcut is bound, for `status` (`app.shortcut`) and the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum ShortcutState {
    /// `toggle_chat = "off"`.
    Off,
    /// Not bound yet (start-up, or the desktop's dialog is open).
    Binding {
        /// The configured shortcut.
        shortcut: String,
    },
    /// Bound through the desktop portal.
    Portal {
        /// The configured (preferred) shortcut.
        shortcut: String,
        /// What the desktop says the trigger is (the user may have chosen another).
        trigger: Option<String>,
    },
    /// Grabbed on the X11 root window.
    X11 {
        /// The shortcut.
        shortcut: String,
    },
    /// Neither route works here.
    Unavailable {
        /// The configured shortcut.
        shortcut: String,
        /// Why, in plain words.
        reason: String,
    },
}

/// A row of `list_conversations`.
#[derive(Debug, Serialize)]
pub struct ConversationRow {
    pub id: i64,
    pub title: String,
    pub model: String,
    pub persona: String,
    /// RFC 3339.
    pub updated_at: String,
    pub message_count: u64,
    pub preview: Option<String>,
}

/// A message of `load_conversation`.
#[derive(Debug, Serialize)]
pub struct MessageRow {
    pub id: i64,
    pub role: String,
    pub content: String,
    /// `pending`, `streaming`, `complete` or `incomplete`.
    pub status: &'static str,
    /// Why an incomplete reply stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Sanitised HTML of an assistant message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// A reply's stored thinking trace: plain text (show with textContent), never HTML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// How long the model thought, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_ms: Option<u64>,
    /// A user message's images, as thumbnails.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageRow>,
}

/// What `attach_image` returns: the image as prepared for the model, and its thumbnail. The
/// window keeps only `id` and `thumb` (see [`crate::attach`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// The number `send_message` names.
    pub id: u64,
    pub name: String,
    /// A small JPEG or PNG as a `data:` URL.
    pub thumb: String,
    /// Size sent to the model.
    pub width: u32,
    pub height: u32,
    /// Size of the file as attached.
    pub original_width: u32,
    pub original_height: u32,
    /// Bytes sent to the model.
    pub bytes: usize,
}

/// A stored image as `load_conversation` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRow {
    pub id: i64,
    pub width: u32,
    pub height: u32,
    /// A small copy as a `data:` URL; `None` if the stored bytes no longer decode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb: Option<String>,
}

/// What `image_support` returns: what the window needs to know before reading a file: can this model see images, and the
/// limits (so an oversized file is refused without reading it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSupport {
    pub model: String,
    pub vision: bool,
    /// A pulled vision model to switch to, when this one is blind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// The refusal in words, when `vision` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub max_file_bytes: u64,
    pub max_pixels: u64,
    pub max_images: usize,
    pub longest_side: u32,
}

/// What `send_message` and `retry_reply` return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Started {
    pub conversation: i64,
    pub user_message: i64,
    pub reply: i64,
}

/// One rendered Markdown block of a streaming reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HtmlBlock {
    /// Block number within the message (stable, from 0).
    pub index: usize,
    /// Sanitised HTML.
    pub html: String,
}

/// The payload of [`events::CHAT`]. Every HTML field is sanitised in Rust; the window inserts
/// nothing else as HTML and never parses Markdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChatPayload {
    /// The reply row exists; deltas follow.
    Started {
        conversation: i64,
        user_message: i64,
        reply: i64,
    },
    /// A piece of a thinking model's reasoning trace, streamed before the answer. Plain,
    /// untrusted text: the window shows it through textContent only.
    Thinking { reply: i64, text: String },
    /// The answer started after `ms` of thinking: the window collapses the trace.
    ThinkingDone { reply: i64, ms: u64 },
    /// New text.
    Delta {
        reply: i64,
        /// The raw new text.
        text: String,
        /// Blocks that just became complete.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        html_blocks: Vec<HtmlBlock>,
        /// Raw text of the still-open last block (plain text; for a window that does not
        /// use `tail_html`).
        tail: String,
        /// The still-open last block rendered as it reads so far (sanitised), replaced by
        /// its final HTML once the block completes; empty when the tail is blank.
        tail_html: String,
    },
    /// Finished normally; `html` is the whole message.
    Done {
        reply: i64,
        stats: ReplyStats,
        html: String,
    },
    /// Stopped on an error; the partial text is kept in history, `html` is its rendering.
    Failed {
        reply: i64,
        error: String,
        /// The error's category (`ollama_down`, `ollama`, …, as an IPC error's `kind`): the
        /// window words the failure from this, never from `error`'s text.
        error_kind: yollayah_core::error::Category,
        partial: String,
        html: String,
    },
    /// Stopped by the user; the partial text is kept in history, `html` is its rendering.
    Cancelled {
        reply: i64,
        partial: String,
        html: String,
    },
}

/// What `pull_model` returns: the pull's number (events and `cancel_pull` name it) and the
/// name as it will be pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullStarted {
    pub id: u64,
    pub name: String,
}

/// The payload of [`events::PULL`], and what `pull_state` returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PullPayload {
    /// How far it got: Ollama's status text, bytes of every layer announced so far, the rate,
    /// the ETA and the layer being downloaded.
    Progress {
        id: u64,
        name: String,
        #[serde(flatten)]
        status: PullStatus,
    },
    /// Pulled: the model is in the model list now.
    Done { id: u64, name: String, total: u64 },
    /// Stopped on an error, in Ollama's words where it is Ollama's.
    Failed {
        id: u64,
        name: String,
        error: String,
    },
    /// Stopped by the user (the download's connection was closed).
    Cancelled { id: u64, name: String },
}
