//! Chat: persona + history + the user's message → a streamed reply, stored as it arrives.
//!
//! Order matters for "loses nothing": the user's message is written to history before the
//! request is sent; the reply row exists before the first token; the partial text is
//! checkpointed while streaming; a reply cut by an error or a cancel is kept and marked
//! incomplete with the reason. The request's options come from the one [`ModelProfile`], so
//! a chat never reloads the model that the watchdog warmed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::{Category, Error, Result};
use crate::history::{ConversationId, History, MessageId, MessageStatus, NewImage};
use crate::images::{ImageLimits, PreparedImage};
use crate::models::ThinkSupport;
use crate::ollama::client::OllamaClient;
use crate::ollama::types::{ChatRequest, Message, Metrics, Options, Think};
use crate::persona::PersonaSource;
use crate::profile::ModelProfile;
use crate::watchdog::WatchdogHandle;

/// How often the partial reply is written to history while streaming.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// How long the first token may wait for the watchdog to classify a load the chat caused.
const CLASSIFY_BEFORE_FIRST_TOKEN: Duration = Duration::from_millis(250);

pub use crate::history::SharedHistory;

/// One event of a reply as [`ChatEngine::send_message`] emits it, in order: `Started`, any
/// number of `Thinking` (the trace, streamed before the answer), `ThinkingDone` once when the
/// first answer token follows a trace, any number of `Delta`, then exactly one of `Done`,
/// `Failed` or `Cancelled`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplyEvent {
    Started {
        conversation: i64,
        user_message: i64,
        reply: i64,
    },
    /// A piece of the thinking trace.
    Thinking {
        reply: i64,
        text: String,
    },
    /// The answer started after `ms` of thinking: collapse the thinking block.
    ThinkingDone {
        reply: i64,
        ms: u64,
    },
    Delta {
        reply: i64,
        text: String,
    },
    Done {
        reply: i64,
        stats: ReplyStats,
    },
    Failed {
        reply: i64,
        error: String,
        /// What kind of failure it was (e.g. Ollama went away), for whoever must branch on it
        /// without parsing `error`.
        category: Category,
        partial: String,
    },
    Cancelled {
        reply: i64,
        partial: String,
    },
}

/// What the user sends: text, prepared images ([`crate::images::prepare`]) and, optionally,
/// a thinking choice (`None` = the server's default: on for thinking models). The choice is
/// mapped through the model's [`ThinkSupport`]: never sent to a model that cannot think,
/// `Off` becomes `low` on gpt-oss (which cannot stop thinking).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    pub text: String,
    pub images: Vec<PreparedImage>,
    pub think: Option<Think>,
    /// The model to answer with (the picker's choice); `None` = the watched model. Another
    /// model gets the same persona and load options, and the server's default keep_alive: only
    /// the watched model is kept warm.
    pub model: Option<String>,
}

impl Outgoing {
    /// Text only, server-default thinking.
    pub fn text(text: impl Into<String>) -> Self {
        Outgoing {
            text: text.into(),
            ..Outgoing::default()
        }
    }
}

/// What the engine learnt from `/api/show` about a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ModelCaps {
    think: ThinkSupport,
    vision: bool,
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
    /// How long the model thought before answering; `None` without a trace.
    pub thinking_ms: Option<u64>,
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
            thinking_ms: None,
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
    /// The thinking trace that arrived (stored with the reply, never sent back).
    pub thinking: String,
}

/// Sends chats. Cheap to clone.
#[derive(Clone)]
pub struct ChatEngine {
    client: OllamaClient,
    persona: Arc<PersonaSource>,
    profile: Arc<ModelProfile>,
    history: SharedHistory,
    watchdog: Option<WatchdogHandle>,
    caps: Arc<Mutex<HashMap<String, ModelCaps>>>,
    image_limits: ImageLimits,
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
            caps: Arc::default(),
            image_limits: ImageLimits::default(),
        }
    }

    /// The model this engine chats with by default: the watchdog's, which
    /// [`WatchdogHandle::watch_model`] may change at runtime.
    pub fn model(&self) -> String {
        self.profile().model.clone()
    }

    /// The Ollama this engine talks to.
    pub fn client(&self) -> &OllamaClient {
        &self.client
    }

    /// The profile in force (the watchdog's when there is one).
    pub fn profile(&self) -> Arc<ModelProfile> {
        match &self.watchdog {
            Some(w) => w.profile(),
            None => self.profile.clone(),
        }
    }

    /// How `model` takes `think` and whether it sees images (`/api/show` `capabilities`,
    /// fetched once per model and engine).
    pub async fn support_of(&self, model: &str) -> Result<(ThinkSupport, bool)> {
        let c = self.caps_of(model).await?;
        Ok((c.think, c.vision))
    }

    /// The image limits messages are checked against.
    pub fn image_limits(&self) -> &ImageLimits {
        &self.image_limits
    }

    /// How the engine's model takes `think` and whether it sees images (`/api/show`
    /// `capabilities`, fetched once per engine).
    pub async fn model_support(&self) -> Result<(ThinkSupport, bool)> {
        self.support_of(&self.model()).await
    }

    async fn caps_of(&self, model: &str) -> Result<ModelCaps> {
        if let Some(c) = self.caps.lock().ok().and_then(|m| m.get(model).copied()) {
            return Ok(c);
        }
        let show = self.client.show(model).await?;
        let arch = show
            .model_info
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .unwrap_or(&show.details.family)
            .to_owned();
        let caps = ModelCaps {
            think: ThinkSupport::of(model, &arch, &show.capabilities),
            vision: show.capabilities.iter().any(|c| c == "vision"),
        };
        if let Ok(mut m) = self.caps.lock() {
            m.insert(model.to_owned(), caps);
        }
        Ok(caps)
    }

    /// Refuses images for a model without `vision`, naming a vision model the user has.
    async fn check_images(&self, model: &str, images: usize) -> Result<()> {
        if images == 0 {
            return Ok(());
        }
        crate::images::check_count(images, &self.image_limits).map_err(|reason| Error::Image {
            name: "attached images".into(),
            reason,
        })?;
        if self.caps_of(model).await?.vision {
            return Ok(());
        }
        let suggestion = match crate::models::list(&self.client).await {
            Ok(all) => crate::models::vision_suggestion(&all).map(str::to_owned),
            Err(e) => {
                tracing::warn!("listing models for a vision suggestion failed: {e}");
                None
            }
        };
        Err(Error::NoVision {
            model: model.to_owned(),
            suggestion,
        })
    }

    /// The request options: the persona's sampling options and the profile's load options.
    /// Without a pinned `num_ctx`, the watched model keeps the context it is loaded with (the
    /// watchdog's last reading), so a chat never reloads a model another client loaded with its
    /// own context; `watched` is false for another model, whose context the watchdog does not
    /// read.
    fn options(&self, profile: &ModelProfile, sampling: &Options, watched: bool) -> Options {
        let mut options = profile.chat_options(sampling);
        if watched && profile.num_ctx().is_none() {
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

    /// Sends `outgoing` in `conversation` (a new one when `None`) and streams the reply into
    /// `emit`. Returns when the reply is done, failed or cancelled; in every case what arrived
    /// is in history. An `Err` means history could not be written: either before the request
    /// (nothing was sent, no event was emitted) or at the end (a `Failed` event saying so was
    /// emitted; the user's message and the last checkpoint of the reply are stored).
    ///
    /// Images for a model without `vision` (or too many) are refused with
    /// [`Error::NoVision`] / [`Error::Image`] before anything is stored or sent.
    pub async fn send_message(
        &self,
        conversation: Option<ConversationId>,
        outgoing: Outgoing,
        cancel: CancellationToken,
        mut emit: impl FnMut(ReplyEvent) + Send,
    ) -> Result<ReplyOutcome> {
        let profile = self.profile();
        let model = outgoing
            .model
            .clone()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| profile.model.clone());
        let watched = model == profile.model;
        self.check_images(&model, outgoing.images.len()).await?;
        let think = match outgoing.think {
            Some(wanted) => self.caps_of(&model).await?.think.request(wanted),
            None => None,
        };
        let Outgoing { text, images, .. } = outgoing;
        let new_images: Vec<PreparedImage> = images;
        self.persona.refresh();
        let persona = self.persona.current();
        let persona_name = persona.name().to_owned();
        let stored_model = model.clone();
        let title = title_of(&text);
        let user_text = text.clone();
        let stored_images = new_images.clone();
        let (conversation, user_id, reply_id, past) = self
            .with_history(move |h| {
                let conv = match conversation {
                    Some(c) => {
                        h.set_conversation_model(c, &stored_model)?;
                        c
                    }
                    None => h.create_conversation(&title, &stored_model, &persona_name)?,
                };
                let mut past = Vec::new();
                for m in h.messages(conv)? {
                    if m.role != "user" && m.status != MessageStatus::Complete {
                        continue;
                    }
                    let mut wire = m.to_message();
                    // Earlier images go back with their message: a follow-up question about
                    // a picture needs the picture.
                    for img in &m.images {
                        if let Some(data) = h.image_data(img.id)? {
                            wire.images.push(base64_of(&data));
                        }
                    }
                    past.push(wire);
                }
                let refs: Vec<NewImage<'_>> = stored_images.iter().map(NewImage::from).collect();
                let (user_id, reply_id) = h.begin_exchange(conv, &user_text, &refs)?;
                Ok((conv, user_id, reply_id, past))
            })
            .await?;
        emit(ReplyEvent::Started {
            conversation: conversation.0,
            user_message: user_id.0,
            reply: reply_id.0,
        });

        let mut user = Message::new("user", text);
        user.images = new_images.iter().map(PreparedImage::base64).collect();
        let request = ChatRequest {
            messages: persona.compose_owned(&past, user),
            stream: Some(true),
            keep_alive: watched.then(|| profile.keep_alive.clone()),
            options: Some(self.options(&profile, persona.options(), watched)),
            think,
            model,
        };

        let started = Instant::now();
        let mut reply = String::new();
        let mut trace = Trace::default();
        let result = self
            .stream_reply(
                &request, watched, &cancel, reply_id, &mut reply, &mut trace, started, &mut emit,
            )
            .await;
        let thinking = std::mem::take(&mut trace.text);
        let thinking_ms = trace.ms();
        if !thinking.is_empty() {
            let t = thinking.clone();
            if let Err(e) = self
                .with_history(move |h| h.set_thinking(reply_id, &t, thinking_ms))
                .await
            {
                tracing::warn!("storing the thinking trace failed: {e}");
            }
        }
        let (stored, event, stats, incomplete) = match result {
            Ok((mut stats, metrics)) => {
                stats.thinking_ms = thinking_ms;
                let r = reply.clone();
                let stored = self
                    .with_history(move |h| h.finish_reply(reply_id, &r, Some(&metrics)))
                    .await;
                let done = ReplyEvent::Done {
                    reply: reply_id.0,
                    stats,
                };
                (stored, done, Some(stats), None)
            }
            Err(Error::Cancelled) => {
                let stored = self.keep_partial(reply_id, &reply, "cancelled").await;
                let cancelled = ReplyEvent::Cancelled {
                    reply: reply_id.0,
                    partial: reply.clone(),
                };
                (stored, cancelled, None, Some("cancelled".to_owned()))
            }
            Err(e) => {
                let reason = e.to_string();
                let stored = self.keep_partial(reply_id, &reply, &reason).await;
                let failed = ReplyEvent::Failed {
                    reply: reply_id.0,
                    error: reason.clone(),
                    category: e.category(),
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
            emit(ReplyEvent::Failed {
                reply: reply_id.0,
                error,
                category: e.category(),
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
            thinking,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn stream_reply(
        &self,
        request: &ChatRequest,
        watched: bool,
        cancel: &CancellationToken,
        reply_id: MessageId,
        reply: &mut String,
        trace: &mut Trace,
        started: Instant,
        emit: &mut (impl FnMut(ReplyEvent) + Send),
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
                    if watched {
                        w.user_asked().await;
                    }
                    // The model is loaded now (Ollama streams only after loading): let the
                    // watchdog classify where it landed before the user sees a token.
                    w.kick_and_wait(CLASSIFY_BEFORE_FIRST_TOKEN).await;
                }
            }
            if let Some(m) = &chunk.message {
                if let Some(t) = m.thinking.as_deref().filter(|t| !t.is_empty()) {
                    trace.push(t);
                    emit(ReplyEvent::Thinking {
                        reply: reply_id.0,
                        text: t.to_owned(),
                    });
                }
                if !m.content.is_empty() {
                    if let Some(ms) = trace.answer_started() {
                        emit(ReplyEvent::ThinkingDone {
                            reply: reply_id.0,
                            ms,
                        });
                    }
                    reply.push_str(&m.content);
                    emit(ReplyEvent::Delta {
                        reply: reply_id.0,
                        text: m.content.clone(),
                    });
                }
            }
            if chunk.done {
                if let (Some(w), Some(ns), true) =
                    (&self.watchdog, chunk.metrics.load_duration, watched)
                {
                    // Our own load waits feed the watchdog's reload-thrash history.
                    w.record_load(ns / 1_000_000);
                }
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
                let thinking = trace.text.clone();
                // A failed checkpoint is not fatal: the final write will try again.
                if let Err(e) = self
                    .with_history(move |h| h.save_progress(reply_id, &text, &thinking))
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
        crate::history::with_history(&self.history, f).await
    }
}

/// The thinking trace of a reply and its timing.
#[derive(Debug, Default)]
struct Trace {
    text: String,
    first: Option<Instant>,
    /// Set when the first answer token arrived after the trace.
    ended: Option<Instant>,
}

impl Trace {
    fn push(&mut self, t: &str) {
        self.first.get_or_insert_with(Instant::now);
        self.text.push_str(t);
    }

    /// Marks the answer's start; `Some(ms)` the first time after a trace.
    fn answer_started(&mut self) -> Option<u64> {
        if self.ended.is_some() || self.first.is_none() {
            return None;
        }
        self.ended = Some(Instant::now());
        self.ms()
    }

    /// Thinking time: first trace piece to the first answer token (or to now, if the answer
    /// never came).
    fn ms(&self) -> Option<u64> {
        let first = self.first?;
        let end = self.ended.unwrap_or_else(Instant::now);
        Some(end.duration_since(first).as_millis() as u64)
    }
}

fn base64_of(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
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
