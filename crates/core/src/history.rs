//! Conversation history in SQLite (`$XDG_DATA_HOME/yollayah/history.sqlite3` by default).
//!
//! The user's message is stored before it is sent (`pending`), a reply is created `streaming`
//! and checkpointed while it streams, then becomes `complete` or `incomplete` with a reason.
//! A reply left `streaming` by a crash is marked `incomplete` ("interrupted") on the next open.
//! A file that is not a healthy SQLite database is reported and never modified. The API is
//! synchronous: async callers run it on a blocking thread.
//!
//! The same file keeps the few settings the apps carry between runs (the `settings` table: the
//! tray's model-picker choice, [`StoredChoice`]), so there is still one file to back up.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::ollama::types::{Message, Metrics, Think};

/// The history store as the chat engine and the apps share it.
pub type SharedHistory = Arc<Mutex<History>>;

/// Runs `f` on `history` on a blocking thread (SQLite calls block, and must not stall the
/// async runtime). The one way async code touches the store.
pub async fn with_history<T: Send + 'static>(
    history: &SharedHistory,
    f: impl FnOnce(&mut History) -> Result<T> + Send + 'static,
) -> Result<T> {
    let history = Arc::clone(history);
    tokio::task::spawn_blocking(move || {
        let mut guard = history.lock().map_err(|_| Error::History {
            path: String::new(),
            reason: "the history store is unusable after a crash in another thread".into(),
        })?;
        f(&mut guard)
    })
    .await
    .map_err(|e| Error::History {
        path: String::new(),
        reason: e.to_string(),
    })?
}

/// Forward migrations; entry `i` takes the schema from `user_version = i` to `i + 1`. Never
/// edit a shipped entry: add a new one.
const MIGRATIONS: &[&str] = &[
    // v1: conversations and messages.
    "CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        model TEXT NOT NULL,
        persona TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        metrics TEXT
    );",
    // v2: why a reply is incomplete, and indexes for the two hot queries.
    "ALTER TABLE messages ADD COLUMN status_reason TEXT;
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
    CREATE INDEX messages_by_status ON messages(status);
    CREATE INDEX conversations_by_update ON conversations(updated_at DESC, id DESC);",
    // v3: a reply's thinking trace (shown, never sent back) and the images of a message.
    // Images are BLOBs, not files beside the database: they are written in the same
    // transaction as their message, go with it through ON DELETE CASCADE (no orphan files
    // after a crash or a deleted conversation), and the history stays one file to back up.
    // They are downscaled first (≤ 1120 px, ≈ 100–300 KB), well within what SQLite stores
    // comfortably.
    "ALTER TABLE messages ADD COLUMN thinking TEXT;
    ALTER TABLE messages ADD COLUMN thinking_ms INTEGER;
    CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        mime TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX images_by_message ON images(message_id, position);",
    // v4: small settings kept between runs, one row each (the tray's model picker: keys
    // `picker.*`, see [`StoredChoice`]). Key/value, so a later setting is a row, not a
    // migration; values are text an older or newer Yollayah may not understand, and a reader
    // ignores what it cannot parse.
    "CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;",
];

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a statement waits for another connection's lock before failing.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Characters of the last message shown in [`ConversationSummary::preview`].
const PREVIEW_CHARS: i64 = 120;

/// Reason recorded for a reply that was streaming when the process died.
pub const INTERRUPTED: &str = "interrupted";

/// A conversation's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationId(pub i64);

/// A message's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub i64);

/// Where a stored message is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageStatus {
    /// A user message stored before sending, whose reply has not started.
    Pending,
    /// A reply being received; its content is the last checkpoint.
    Streaming,
    /// Finished normally.
    Complete,
    /// A reply that stopped early, with why (cancelled, error text, [`INTERRUPTED`]).
    Incomplete { reason: String },
}

impl MessageStatus {
    fn as_str(&self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Streaming => "streaming",
            MessageStatus::Complete => "complete",
            MessageStatus::Incomplete { .. } => "incomplete",
        }
    }
}

/// One message as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub id: MessageId,
    pub conversation: ConversationId,
    pub role: String,
    pub content: String,
    pub status: MessageStatus,
    pub created_at: OffsetDateTime,
    /// The final chunk's metrics, for complete replies.
    pub metrics: Option<Metrics>,
    /// A reply's thinking trace; shown, never sent back as context.
    pub thinking: Option<String>,
    /// How long the model thought (first to last thinking token), ms.
    pub thinking_ms: Option<u64>,
    /// The message's images, without their bytes ([`History::image_data`] reads those).
    pub images: Vec<ImageRef>,
}

impl StoredMessage {
    /// The wire message to send back as history: role and content only. Thinking is never
    /// sent back (Ollama's guidance for reasoning models); images are added by the caller,
    /// which reads their bytes.
    pub fn to_message(&self) -> Message {
        Message::new(self.role.clone(), self.content.clone())
    }
}

/// A stored image's metadata.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageRef {
    pub id: i64,
    pub mime: String,
    pub width: u32,
    pub height: u32,
}

/// An image to store with a message (already prepared by [`crate::images`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewImage<'a> {
    pub mime: &'a str,
    pub width: u32,
    pub height: u32,
    pub data: &'a [u8],
}

impl<'a> From<&'a crate::images::PreparedImage> for NewImage<'a> {
    fn from(p: &'a crate::images::PreparedImage) -> Self {
        NewImage {
            mime: p.mime,
            width: p.width,
            height: p.height,
            data: &p.data,
        }
    }
}

/// The tray's model-picker choices, kept between runs in the `settings` table
/// (`docs/desktop.md`, "Model picker"). `None`/empty everywhere is the config's behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredChoice {
    /// The model that answers; `None`: the watched one.
    pub model: Option<String>,
    /// Thinking per model, as sent.
    pub think: BTreeMap<String, Think>,
    /// The `[[hosts]]` name chats go to; `None`: `[ollama]`.
    pub host: Option<String>,
}

/// The keys of [`StoredChoice`]: `picker.model`, `picker.host`, `picker.think.<model>`.
const CHOICE_PREFIX: &str = "picker.";
/// The first key after every `picker.` key (`/` follows `.` in every collation SQLite uses
/// for TEXT), so the range scan needs no `LIKE` escaping of model names.
const CHOICE_END: &str = "picker/";
const CHOICE_MODEL: &str = "picker.model";
const CHOICE_HOST: &str = "picker.host";
const CHOICE_THINK: &str = "picker.think.";

/// How a think value is stored: the words `Think::parse` reads back.
fn think_text(think: Think) -> &'static str {
    match think {
        Think::On => "on",
        Think::Off => "off",
        Think::Low => "low",
        Think::Medium => "medium",
        Think::High => "high",
    }
}

/// A row of the conversation list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationSummary {
    pub id: ConversationId,
    pub title: String,
    pub model: String,
    pub persona: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub message_count: u64,
    /// The start of the latest message as plain text (Markdown marks removed), if any.
    pub preview: Option<String>,
}

/// An open history database.
#[derive(Debug)]
pub struct History {
    conn: Connection,
    path: String,
    busy_timeout: Duration,
}

impl History {
    /// `$XDG_DATA_HOME/yollayah/history.sqlite3`, if a home is known.
    pub fn default_path() -> Option<PathBuf> {
        dirs::data_dir().map(|d| d.join("yollayah").join("history.sqlite3"))
    }

    /// Opens (creating if absent) the database at `path` with [`DEFAULT_BUSY_TIMEOUT`].
    pub fn open(path: impl AsRef<Path>) -> Result<History> {
        History::open_with_busy_timeout(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// Opens the database at `path`; lock waits give up after `busy_timeout`.
    ///
    /// Refuses, without writing a byte, a file that is not SQLite or fails `quick_check`, and
    /// a database made by a newer Yollayah.
    pub fn open_with_busy_timeout(
        path: impl AsRef<Path>,
        busy_timeout: Duration,
    ) -> Result<History> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        check_header(path, &shown)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| db_error(&shown, busy_timeout, e))?;
        History::init(conn, shown, busy_timeout)
    }

    /// A private in-memory database (tests, `--no-history`).
    pub fn open_in_memory() -> Result<History> {
        let conn = Connection::open_in_memory()
            .map_err(|e| db_error(":memory:", DEFAULT_BUSY_TIMEOUT, e))?;
        History::init(conn, ":memory:".into(), DEFAULT_BUSY_TIMEOUT)
    }

    fn init(conn: Connection, path: String, busy_timeout: Duration) -> Result<History> {
        let mut history = History {
            conn,
            path,
            busy_timeout,
        };
        let err = |e| db_error(&history.path, busy_timeout, e);
        history.conn.busy_timeout(busy_timeout).map_err(err)?;
        // Read-only checks first: nothing may be written to a file we have not verified.
        let check: String = history
            .conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(err)?;
        if check != "ok" {
            return Err(Error::HistoryCorrupt {
                path: history.path.clone(),
                reason: format!("quick_check: {check}"),
            });
        }
        let version: i64 = history
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(Error::History {
                path: history.path.clone(),
                reason: format!(
                    "schema version {version} was written by a newer Yollayah (this one knows \
                     up to {SCHEMA_VERSION}); upgrade Yollayah"
                ),
            });
        }
        // WAL lets the tray and the CLI read while the other writes.
        history
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .map_err(err)?;
        history
            .conn
            .pragma_update(None, "foreign_keys", true)
            .map_err(err)?;
        history.migrate(version)?;
        history.recover_interrupted()?;
        Ok(history)
    }

    fn migrate(&mut self, from: i64) -> Result<()> {
        let (path, timeout) = (self.path.clone(), self.busy_timeout);
        let err = |e| db_error(&path, timeout, e);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(from.max(0) as usize) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(())
    }

    /// Replies still `streaming` at open were cut off by a crash or a kill.
    fn recover_interrupted(&mut self) -> Result<()> {
        let n = self
            .conn
            .execute(
                "UPDATE messages SET status = 'incomplete', status_reason = ?1
                 WHERE status = 'streaming'",
                params![INTERRUPTED],
            )
            .map_err(|e| self.err(e))?;
        if n > 0 {
            tracing::info!(
                replies = n,
                "marked replies interrupted by a previous crash"
            );
        }
        Ok(())
    }

    /// The database file (or `:memory:`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Starts a conversation.
    pub fn create_conversation(
        &mut self,
        title: &str,
        model: &str,
        persona: &str,
    ) -> Result<ConversationId> {
        let now = now_ms();
        self.conn
            .execute(
                "INSERT INTO conversations (title, model, persona, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![title, model, persona, now],
            )
            .map_err(|e| self.err(e))?;
        Ok(ConversationId(self.conn.last_insert_rowid()))
    }

    /// Records `model` as the conversation's model (the one its latest reply came from: the
    /// user may switch models mid-conversation, and the list shows the one in use).
    pub fn set_conversation_model(
        &mut self,
        conversation: ConversationId,
        model: &str,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE conversations SET model = ?2 WHERE id = ?1 AND model <> ?2",
                params![conversation.0, model],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The `limit` most recently updated conversations, newest first, with a preview of each
    /// one's latest message.
    pub fn list_conversations(&self, limit: usize) -> Result<Vec<ConversationSummary>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.id, c.title, c.model, c.persona, c.created_at, c.updated_at,
                    (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id),
                    (SELECT substr(m.content, 1, ?2) FROM messages m
                       WHERE m.conversation_id = c.id ORDER BY m.id DESC LIMIT 1)
                 FROM conversations c
                 ORDER BY c.updated_at DESC, c.id DESC
                 LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![limit, PREVIEW_CHARS], |r| {
                Ok(ConversationSummary {
                    id: ConversationId(r.get(0)?),
                    title: r.get(1)?,
                    model: r.get(2)?,
                    persona: r.get(3)?,
                    created_at: from_ms(r.get(4)?),
                    updated_at: from_ms(r.get(5)?),
                    message_count: r.get::<_, i64>(6)?.max(0) as u64,
                    preview: r
                        .get::<_, Option<String>>(7)?
                        .map(|p| plain_preview(&p))
                        .filter(|p| !p.is_empty()),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// A conversation's messages, oldest first.
    pub fn messages(&self, conversation: ConversationId) -> Result<Vec<StoredMessage>> {
        self.require_conversation(conversation)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, role, content, status, status_reason, created_at, metrics,
                    thinking, thinking_ms
                 FROM messages WHERE conversation_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![conversation.0], |r| {
                let status: String = r.get(3)?;
                let reason: Option<String> = r.get(4)?;
                let metrics: Option<String> = r.get(6)?;
                Ok(StoredMessage {
                    id: MessageId(r.get(0)?),
                    conversation,
                    role: r.get(1)?,
                    content: r.get(2)?,
                    status: match status.as_str() {
                        "pending" => MessageStatus::Pending,
                        "streaming" => MessageStatus::Streaming,
                        "complete" => MessageStatus::Complete,
                        _ => MessageStatus::Incomplete {
                            reason: reason.unwrap_or_else(|| status.clone()),
                        },
                    },
                    created_at: from_ms(r.get(5)?),
                    // Metrics are informational: a row written by a future version with
                    // fields we cannot read still shows its text.
                    metrics: metrics.and_then(|m| serde_json::from_str(&m).ok()),
                    thinking: r.get(7)?,
                    thinking_ms: r.get::<_, Option<i64>>(8)?.map(|v| v.max(0) as u64),
                    images: Vec::new(),
                })
            })
            .map_err(|e| self.err(e))?;
        let mut messages = rows
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT i.message_id, i.id, i.mime, i.width, i.height FROM images i
                 JOIN messages m ON m.id = i.message_id
                 WHERE m.conversation_id = ?1 ORDER BY i.message_id, i.position",
            )
            .map_err(|e| self.err(e))?;
        let refs = stmt
            .query_map(params![conversation.0], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    ImageRef {
                        id: r.get(1)?,
                        mime: r.get(2)?,
                        width: r.get(3)?,
                        height: r.get(4)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        for row in refs {
            let (message, image) = row.map_err(|e| self.err(e))?;
            if let Some(m) = messages.iter_mut().find(|m| m.id.0 == message) {
                m.images.push(image);
            }
        }
        Ok(messages)
    }

    /// The bytes of a stored image, or `None` for an unknown id.
    pub fn image_data(&self, image: i64) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row(
                "SELECT data FROM images WHERE id = ?1",
                params![image],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Deletes a conversation with its messages and their images.
    pub fn delete_conversation(&mut self, conversation: ConversationId) -> Result<()> {
        let n = self
            .conn
            .execute(
                "DELETE FROM conversations WHERE id = ?1",
                params![conversation.0],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(Error::History {
                path: self.path.clone(),
                reason: format!("no conversation {}", conversation.0),
            });
        }
        Ok(())
    }

    /// The conversation a message belongs to, or `None` for an unknown id (the tray's
    /// `retry_reply` gets only a reply id from the window).
    pub fn conversation_of(&self, message: MessageId) -> Result<Option<ConversationId>> {
        self.conn
            .query_row(
                "SELECT conversation_id FROM messages WHERE id = ?1",
                params![message.0],
                |r| r.get(0),
            )
            .optional()
            .map(|c| c.map(ConversationId))
            .map_err(|e| self.err(e))
    }

    /// Stores the user's message as `pending`; call this BEFORE sending it.
    pub fn add_user_message(
        &mut self,
        conversation: ConversationId,
        text: &str,
    ) -> Result<MessageId> {
        self.insert_message(conversation, "user", text, MessageStatus::Pending, &[])
    }

    /// [`add_user_message`](Self::add_user_message) with images, stored in the same
    /// transaction.
    pub fn add_user_message_with_images(
        &mut self,
        conversation: ConversationId,
        text: &str,
        images: &[NewImage<'_>],
    ) -> Result<MessageId> {
        self.insert_message(conversation, "user", text, MessageStatus::Pending, images)
    }

    /// Creates an empty `streaming` assistant reply; the conversation's pending user messages
    /// become `complete` (they have been sent).
    pub fn begin_reply(&mut self, conversation: ConversationId) -> Result<MessageId> {
        self.insert_message(conversation, "assistant", "", MessageStatus::Streaming, &[])
    }

    /// Stores the user's message and creates its (empty, `streaming`) reply row in one
    /// transaction, as [`History::add_user_message`] then [`History::begin_reply`] would, so a
    /// crash or a full disk never leaves a question stored without its reply row. Returns
    /// (user message, reply).
    pub fn begin_exchange(
        &mut self,
        conversation: ConversationId,
        text: &str,
        images: &[NewImage<'_>],
    ) -> Result<(MessageId, MessageId)> {
        let ids = self.insert_messages(
            conversation,
            &[
                ("user", text, MessageStatus::Pending, images),
                ("assistant", "", MessageStatus::Streaming, &[]),
            ],
        )?;
        match ids[..] {
            [user, reply] => Ok((user, reply)),
            _ => Err(Error::History {
                path: self.path.clone(),
                reason: "the exchange was not stored whole".into(),
            }),
        }
    }

    /// Checkpoints the partial text of a streaming reply, so a crash loses little.
    pub fn save_partial(&mut self, id: MessageId, text: &str) -> Result<()> {
        self.update_streaming(id, text, &MessageStatus::Streaming, None, None)
    }

    /// Stores a reply's thinking trace (and how long it took); empty `thinking` stores
    /// nothing. Works in any status, so the trace of a failed reply is kept too.
    pub fn set_thinking(
        &mut self,
        id: MessageId,
        thinking: &str,
        thinking_ms: Option<u64>,
    ) -> Result<()> {
        if thinking.is_empty() {
            return Ok(());
        }
        self.conn
            .execute(
                "UPDATE messages SET thinking = ?2, thinking_ms = coalesce(?3, thinking_ms)
                 WHERE id = ?1",
                params![id.0, thinking, thinking_ms.map(|v| v as i64)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Checkpoints text and thinking of a streaming reply.
    pub fn save_progress(&mut self, id: MessageId, text: &str, thinking: &str) -> Result<()> {
        let thinking = Some(thinking).filter(|t| !t.is_empty());
        self.update_streaming(id, text, &MessageStatus::Streaming, None, thinking)
    }

    /// Stores the final text and metrics of a streaming reply and marks it `complete`.
    pub fn finish_reply(
        &mut self,
        id: MessageId,
        text: &str,
        metrics: Option<&Metrics>,
    ) -> Result<()> {
        let metrics = match metrics {
            Some(m) => Some(serde_json::to_string(m).map_err(|e| Error::History {
                path: self.path.clone(),
                reason: format!("cannot encode metrics: {e}"),
            })?),
            None => None,
        };
        self.update_streaming(id, text, &MessageStatus::Complete, metrics.as_deref(), None)
    }

    /// Stores what arrived of a reply that stopped early and why.
    pub fn mark_incomplete(&mut self, id: MessageId, text: &str, reason: &str) -> Result<()> {
        self.update_streaming(
            id,
            text,
            &MessageStatus::Incomplete {
                reason: reason.to_owned(),
            },
            None,
            None,
        )
    }

    fn insert_message(
        &mut self,
        conversation: ConversationId,
        role: &str,
        text: &str,
        status: MessageStatus,
        images: &[NewImage<'_>],
    ) -> Result<MessageId> {
        let ids = self.insert_messages(conversation, &[(role, text, status, images)])?;
        ids.first().copied().ok_or_else(|| Error::History {
            path: self.path.clone(),
            reason: "no message was inserted".into(),
        })
    }

    /// Inserts `rows` in order, in one transaction: all of them or none.
    fn insert_messages(
        &mut self,
        conversation: ConversationId,
        rows: &[(&str, &str, MessageStatus, &[NewImage<'_>])],
    ) -> Result<Vec<MessageId>> {
        let (path, timeout) = (self.path.clone(), self.busy_timeout);
        let err = |e| db_error(&path, timeout, e);
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let touched = tx
            .execute(
                "UPDATE conversations SET updated_at = ?2 WHERE id = ?1",
                params![conversation.0, now],
            )
            .map_err(err)?;
        if touched == 0 {
            return Err(Error::History {
                path,
                reason: format!("no conversation {}", conversation.0),
            });
        }
        let mut ids = Vec::with_capacity(rows.len());
        for (role, text, status, images) in rows {
            if *status == MessageStatus::Streaming {
                tx.execute(
                    "UPDATE messages SET status = 'complete'
                     WHERE conversation_id = ?1 AND status = 'pending'",
                    params![conversation.0],
                )
                .map_err(err)?;
            }
            tx.execute(
                "INSERT INTO messages (conversation_id, role, content, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![conversation.0, role, text, status.as_str(), now],
            )
            .map_err(err)?;
            let id = MessageId(tx.last_insert_rowid());
            for (position, image) in images.iter().enumerate() {
                tx.execute(
                    "INSERT INTO images (message_id, position, mime, width, height, data)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id.0,
                        position as i64,
                        image.mime,
                        image.width,
                        image.height,
                        image.data
                    ],
                )
                .map_err(err)?;
            }
            ids.push(id);
        }
        tx.commit().map_err(err)?;
        Ok(ids)
    }

    fn update_streaming(
        &mut self,
        id: MessageId,
        text: &str,
        status: &MessageStatus,
        metrics: Option<&str>,
        thinking: Option<&str>,
    ) -> Result<()> {
        let reason = match status {
            MessageStatus::Incomplete { reason } => Some(reason.as_str()),
            _ => None,
        };
        let (path, timeout) = (self.path.clone(), self.busy_timeout);
        let err = |e| db_error(&path, timeout, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let n = tx
            .execute(
                "UPDATE messages SET content = ?2, status = ?3, status_reason = ?4,
                    metrics = coalesce(?5, metrics), thinking = coalesce(?6, thinking)
                 WHERE id = ?1 AND status = 'streaming'",
                params![id.0, text, status.as_str(), reason, metrics, thinking],
            )
            .map_err(err)?;
        if n == 0 {
            let current: Option<String> = tx
                .query_row(
                    "SELECT status FROM messages WHERE id = ?1",
                    params![id.0],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err)?;
            return Err(Error::History {
                path,
                reason: match current {
                    Some(s) => format!("message {} is {s}, not streaming", id.0),
                    None => format!("no message {}", id.0),
                },
            });
        }
        if status != &MessageStatus::Streaming {
            tx.execute(
                "UPDATE conversations SET updated_at = ?2
                 WHERE id = (SELECT conversation_id FROM messages WHERE id = ?1)",
                params![id.0, now_ms()],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Replaces the stored picker choice with `choice`, in one transaction (a crash keeps the
    /// old choice or the new one, never half of each).
    pub fn save_choice(&mut self, choice: &StoredChoice) -> Result<()> {
        let (path, timeout) = (self.path.clone(), self.busy_timeout);
        let err = |e| db_error(&path, timeout, e);
        let mut rows: Vec<(String, &str)> = Vec::with_capacity(choice.think.len() + 2);
        if let Some(model) = &choice.model {
            rows.push((CHOICE_MODEL.to_owned(), model));
        }
        if let Some(host) = &choice.host {
            rows.push((CHOICE_HOST.to_owned(), host));
        }
        for (model, think) in &choice.think {
            rows.push((format!("{CHOICE_THINK}{model}"), think_text(*think)));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute(
            "DELETE FROM settings WHERE key >= ?1 AND key < ?2",
            params![CHOICE_PREFIX, CHOICE_END],
        )
        .map_err(err)?;
        for (key, value) in &rows {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// The stored picker choice. A row this version cannot read (an unknown key, a value that
    /// is not text, an empty name, a think value it does not know) is skipped with a warning:
    /// a bad setting must never stop the app from starting. Errors are the database's only.
    pub fn load_choice(&self) -> Result<StoredChoice> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key, value FROM settings WHERE key >= ?1 AND key < ?2 ORDER BY key",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![CHOICE_PREFIX, CHOICE_END], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, rusqlite::types::Value>(1)?,
                ))
            })
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        let mut choice = StoredChoice::default();
        for (key, value) in rows {
            let rusqlite::types::Value::Text(text) = value else {
                tracing::warn!(key, "ignoring a stored picker setting that is not text");
                continue;
            };
            let slot = match key.as_str() {
                CHOICE_MODEL => Some(&mut choice.model),
                CHOICE_HOST => Some(&mut choice.host),
                _ => None,
            };
            if let Some(slot) = slot {
                if text.trim().is_empty() {
                    tracing::warn!(key, "ignoring an empty stored picker setting");
                } else {
                    *slot = Some(text);
                }
                continue;
            }
            match key.strip_prefix(CHOICE_THINK).filter(|m| !m.is_empty()) {
                Some(model) => match Think::parse(&text) {
                    Some(think) => {
                        choice.think.insert(model.to_owned(), think);
                    }
                    None => {
                        tracing::warn!(key, value = text, "ignoring an unknown think value");
                    }
                },
                None => tracing::warn!(key, "ignoring an unknown picker setting"),
            }
        }
        Ok(choice)
    }

    fn require_conversation(&self, conversation: ConversationId) -> Result<()> {
        let exists = self
            .conn
            .query_row(
                "SELECT 1 FROM conversations WHERE id = ?1",
                params![conversation.0],
                |_| Ok(()),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match exists {
            Some(()) => Ok(()),
            None => Err(Error::History {
                path: self.path.clone(),
                reason: format!("no conversation {}", conversation.0),
            }),
        }
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        db_error(&self.path, self.busy_timeout, e)
    }
}

/// Refuses a non-empty file that does not start with SQLite's magic header, before SQLite
/// gets a chance to touch it.
fn check_header(path: &Path, shown: &str) -> Result<()> {
    const MAGIC: &[u8; 16] = b"SQLite format 3\0";
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                path: shown.to_owned(),
                source,
            });
        }
    };
    let mut head = Vec::with_capacity(16);
    file.by_ref()
        .take(16)
        .read_to_end(&mut head)
        .map_err(|source| Error::Io {
            path: shown.to_owned(),
            source,
        })?;
    if head.is_empty() || head.as_slice() == MAGIC {
        return Ok(());
    }
    Err(Error::HistoryCorrupt {
        path: shown.to_owned(),
        reason: "the file does not start with the SQLite header".into(),
    })
}

fn db_error(path: &str, busy_timeout: Duration, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::HistoryLocked {
            path: path.to_owned(),
            waited: busy_timeout,
        },
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Error::HistoryCorrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        _ => Error::History {
            path: path.to_owned(),
            reason: e.to_string(),
        },
    }
}

/// Markdown → one line of plain text for list previews: headings, quotes, list markers, fences,
/// emphasis, inline-code ticks and link targets go; the words stay.
pub fn plain_preview(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    for line in markdown.lines() {
        let mut l = line.trim();
        if l.starts_with("```") || l.starts_with("~~~") {
            continue;
        }
        l = l.trim_start_matches(['#', '>']).trim_start();
        for marker in ["- ", "* ", "+ "] {
            if let Some(rest) = l.strip_prefix(marker) {
                l = rest;
            }
        }
        let digits = l.chars().take_while(char::is_ascii_digit).count();
        if digits > 0
            && let Some(rest) = l[digits..]
                .strip_prefix(". ")
                .or(l[digits..].strip_prefix(") "))
        {
            l = rest;
        }
        if l.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        // Links: keep the text of `[text](url)`.
        let mut rest = l;
        while let Some(open) = rest.find('[') {
            let after = &rest[open + 1..];
            match (after.find("]("), after.find(']')) {
                (Some(close), Some(first)) if close == first => {
                    let target_end = after[close..].find(')').map(|e| close + e + 1);
                    out.push_str(&rest[..open]);
                    out.push_str(&after[..close]);
                    rest = target_end.map_or("", |e| &after[e..]);
                }
                _ => {
                    out.push_str(&rest[..=open]);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
    }
    let mut plain = String::with_capacity(out.len());
    let mut chars = out.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {}
            '*' | '_' | '~' if chars.peek() == Some(&c) => {
                chars.next();
            }
            // A single `*`/`_` next to a word is emphasis; a lone one (`2 * 3`) is kept.
            '*' | '_'
                if chars.peek().is_some_and(|n| !n.is_whitespace())
                    || plain.ends_with(|p: char| !p.is_whitespace()) =>
            {
                if plain.ends_with(|p: char| p.is_alphanumeric())
                    && chars.peek().is_some_and(|n| n.is_alphanumeric())
                {
                    plain.push(c); // snake_case stays
                }
            }
            _ => plain.push(c),
        }
    }
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::plain_preview;

    #[test]
    fn previews_drop_markdown_marks() {
        assert_eq!(
            plain_preview("## Steps\n\n1. Open **the** `file`\n- see [docs](https://x.example)"),
            "Steps Open the file see docs"
        );
        assert_eq!(plain_preview("```rust\nfn main() {}\n```"), "fn main() {}");
        assert_eq!(
            plain_preview("> *quoted* and snake_case, 2 * 3"),
            "quoted and snake_case, 2 * 3"
        );
        assert_eq!(plain_preview("[not a link] ~~old~~"), "[not a link] old");
    }
}
