//! Chat: persona + history + the user's message → a streamed reply, stored as it arrives.
//!
//! Order matters for "loses nothing": the user's message is written to history before the
//! request is sent; the reply row exists before the first token; the partial text is
//! checkpointed while streaming; a reply cut by an error or a cancel is kept and marked
//! incomplete with the reason. The request's options come from the one [`ModelProfile`], so
//! a chat never reloads the model that the watchdog warmed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::history::{ConversationId, History, MessageId, MessageStatus};
use crate::ollama::client::OllamaClient;
use crate::ollama::types::{ChatRequest, Message, Metrics, Options};
use crate::persona::PersonaSource;
use crate::profile::ModelProfile;
use crate::watchdog::WatchdogHandle;

/// How often the partial reply is written to history while streaming.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// How long the first token may wait for the watchdog to classify a load the chat caused.
const CLASSIFY_BEFORE_FIRST_TOKEN: Duration = Duration::from_millis(250);

/// The history store, shared between the chat engine and the UI's conversation list.
pub type SharedHistory = Arc<Mutex<History>>;

/// One event of a reply, in order: `Started`, any number of `Delta`, then exactly one of
/// `Done`, `Failed` or `Cancelled`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChatEvent {
    Started {
        conversation: i64,
        user_message: i64,
        reply: i64,
    },
    Delta {
        reply: i64,
        text: String,
    },
    Done {
        reply: i64,
        stats: ReplyStats,
    },
    /// The reply stopped on an error; `partial` is what was kept (marked incomplete).
    Failed {
        reply: i64,
        error: String,
        partial: String,
    },
    Cancelled {
        reply: i64,
        partial: String,
    },
}

/// Figures of a finished reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ReplyStats {
    /// Request sent → first token received.
    pub ttft_ms: u64,
    /// `eval_count / eval_duration`.
    pub tokens_per_second: Option<f64>,
    /// Ollama's `load_duration` (≈0 when the model was warm).
    pub load_ms: Option<f64>,
    pub eval_count: Option<u64>,
    pub prompt_eval_count: Option<u64>,
    pub total_ms: u64,
}

impl ReplyStats {
    fn from_metrics(m: &Metrics, ttft: Duration, total: Duration) -> Self {
        ReplyStats {
            ttft_ms: ttft.as_millis() as u64,
            tokens_per_second: m.tokens_per_second(),
            load_ms: m.load_duration.map(|ns| ns as f64 / 1e6),
            eval_count: m.eval_count,
            prompt_eval_count: m.prompt_eval_count,
            total_ms: total.as_millis() as u64,
        }
    }
}

/// How a reply ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyOutcome {
    pub conversation: ConversationId,
    pub reply: MessageId,
    pub text: String,
    pub stats: Option<ReplyStats>,
    /// `None` when complete; else why it stopped.
    pub incomplete: Option<String>,
}

/// Sends chats. Cheap to clone.
#[derive(Clone)]
pub struct ChatEngine {
    client: OllamaClient,
    persona: Arc<PersonaSource>,
    profile: Arc<ModelProfile>,
    history: SharedHistory,
    watchdog: Option<WatchdogHandle>,
}

impl std::fmt::Debug for ChatEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatEngine")
            .field("model", &self.profile.model)
            .finish_non_exhaustive()
    }
}

impl ChatEngine {
    /// An engine; give it the watchdog so chats get classified before their first token.
    pub fn new(
        client: OllamaClient,
        persona: Arc<PersonaSource>,
        profile: Arc<ModelProfile>,
        history: SharedHistory,
        watchdog: Option<WatchdogHandle>,
    ) -> Self {
        ChatEngine {
            client,
            persona,
            profile,
            history,
            watchdog,
        }
    }

    /// The request options: the persona's sampling options and the profile's load options.
    /// Without a pinned `num_ctx`, a model that is loaded keeps its context (the watchdog's last
    /// reading), so a chat never reloads a model another client loaded with its own context.
    fn options(&self, sampling: &Options) -> Options {
        let mut options = self.profile.chat_options(sampling);
        if self.profile.num_ctx().is_none() {
            if let Some(ctx) = self
                .watchdog
                .as_ref()
                .and_then(|w| w.latest().loaded_num_ctx)
            {
                options.insert("num_ctx".into(), ctx.into());
            }
        }
        options
    }

    /// The shared history.
    pub fn history(&self) -> &SharedHistory {
        &self.history
    }

    /// Sends `text` in `conversation` (a new one when `None`) and streams the reply into
    /// `emit`. Returns when the reply is done, failed or cancelled; in every case what arrived
    /// is in history. An `Err` means history could not be written: either before the request
    /// (nothing was sent, no event was emitted) or at the end (a `Failed` event saying so was
    /// emitted; the user's message and the last checkpoint of the reply are stored).
    pub async fn send(
        &self,
        conversation: Option<ConversationId>,
        text: String,
        cancel: CancellationToken,
        mut emit: impl FnMut(ChatEvent) + Send,
    ) -> Result<ReplyOutcome> {
        self.persona.refresh();
        let persona = self.persona.current();
        let model = self.profile.model.clone();
        let persona_name = persona.name().to_owned();
        let title = title_of(&text);
        let user_text = text.clone();
        let (conversation, user_id, reply_id, past) = self
            .with_history(move |h| {
                let conv = match conversation {
                    Some(c) => c,
                    None => h.create_conversation(&title, &model, &persona_name)?,
                };
                let past = h.messages(conv)?;
                let user_id = h.add_user_message(conv, &user_text)?;
                let reply_id = h.begin_reply(conv)?;
                Ok((conv, user_id, reply_id, past))
            })
            .await?;
        emit(ChatEvent::Started {
            conversation: conversation.0,
            user_message: user_id.0,
            reply: reply_id.0,
        });

        let history: Vec<Message> = past
            .iter()
            .filter(|m| m.role == "user" || m.status == MessageStatus::Complete)
            .map(|m| m.to_message())
            .collect();
        let request = ChatRequest {
            model: self.profile.model.clone(),
            messages: persona.compose_owned(&history, Message::new("user", text)),
            stream: Some(true),
            keep_alive: Some(self.profile.keep_alive.clone()),
            options: Some(self.options(persona.options())),
            think: None,
        };

        let started = Instant::now();
        let mut reply = String::new();
        let result = self
            .stream_reply(&request, &cancel, reply_id, &mut reply, started, &mut emit)
            .await;
        let (stored, event, stats, incomplete) = match result {
            Ok((stats, metrics)) => {
                let r = reply.clone();
                let stored = self
                    .with_history(move |h| h.finish_reply(reply_id, &r, Some(&metrics)))
                    .await;
                let done = ChatEvent::Done {
                    reply: reply_id.0,
                    stats,
                };
                (stored, done, Some(stats), None)
            }
            Err(Error::Cancelled) => {
                let stored = self.keep_partial(reply_id, &reply, "cancelled").await;
                let cancelled = ChatEvent::Cancelled {
                    reply: reply_id.0,
                    partial: reply.clone(),
                };
                (stored, cancelled, None, Some("cancelled".to_owned()))
            }
            Err(e) => {
                let reason = e.to_string();
                let stored = self.keep_partial(reply_id, &reply, &reason).await;
                let failed = ChatEvent::Failed {
                    reply: reply_id.0,
                    error: reason.clone(),
                    partial: reply.clone(),
                };
                (stored, failed, None, Some(reason))
            }
        };
        if let Err(e) = stored {
            // The reply was shown but could not be stored (disk full, lock held): it still
            // needs an ending, or the window shows it streaming forever. The reply row keeps
            // its last checkpoint and becomes "interrupted" at the next open.
            let mut error = format!("the reply could not be saved to history: {e}");
            if let Some(why) = incomplete.as_deref() {
                error.push_str(&format!(" (it had stopped early: {why})"));
            }
            emit(ChatEvent::Failed {
                reply: reply_id.0,
                error,
                partial: reply,
            });
            return Err(e);
        }
        emit(event);
        Ok(ReplyOutcome {
            conversation,
            reply: reply_id,
            text: reply,
            stats,
            incomplete,
        })
    }

    async fn stream_reply(
        &self,
        request: &ChatRequest,
        cancel: &CancellationToken,
        reply_id: MessageId,
        reply: &mut String,
        started: Instant,
        emit: &mut (impl FnMut(ChatEvent) + Send),
    ) -> Result<(ReplyStats, Metrics)> {
        let mut stream = tokio::select! {
            _ = cancel.cancelled() => return Err(Error::Cancelled),
            s = self.client.chat_stream(request) => s?,
        };
        let mut ttft = None;
        let mut last_checkpoint = Instant::now();
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                item = stream.next() => item,
            };
            let Some(item) = item else {
                return Err(Error::StreamTruncated {
                    received: stream.received(),
                });
            };
            let chunk = item?;
            if ttft.is_none() {
                ttft = Some(started.elapsed());
                if let Some(w) = &self.watchdog {
                    // A chat is the user asking for the model: without this, a pause left
                    // by an unload (or a contention hold) outlived the chat that ended it, and
                    // the model was never re-warmed after the next eviction or restart. Sent
                    // at the first token, when the model is loaded, so the watchdog does not
                    // start a redundant warm alongside the chat's own load.
                    w.user_asked().await;
                    // The model is loaded now (Ollama streams only after loading): let the
                    // watchdog classify where it landed before the user sees a token.
                    w.kick_and_wait(CLASSIFY_BEFORE_FIRST_TOKEN).await;
                }
            }
            if let Some(m) = &chunk.message {
                if !m.content.is_empty() {
                    reply.push_str(&m.content);
                    emit(ChatEvent::Delta {
                        reply: reply_id.0,
                        text: m.content.clone(),
                    });
                }
            }
            if chunk.done {
                let stats = ReplyStats::from_metrics(
                    &chunk.metrics,
                    ttft.unwrap_or_default(),
                    started.elapsed(),
                );
                return Ok((stats, chunk.metrics));
            }
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                last_checkpoint = Instant::now();
                let text = reply.clone();
                // A failed checkpoint is not fatal: the final write will try again.
                if let Err(e) = self
                    .with_history(move |h| h.save_partial(reply_id, &text))
                    .await
                {
                    tracing::warn!("checkpointing the reply failed: {e}");
                }
            }
        }
    }

    async fn keep_partial(&self, id: MessageId, text: &str, reason: &str) -> Result<()> {
        let (text, reason) = (text.to_owned(), reason.to_owned());
        self.with_history(move |h| h.mark_incomplete(id, &text, &reason))
            .await
    }

    async fn with_history<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut History) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let history = self.history.clone();
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
}

/// A conversation title from its first message: the first line, at most 60 characters.
fn title_of(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("New chat")
        .trim();
    let mut title: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        title.push('…');
    }
    title
}
