//! Replies as the chat window sees them: a task per reply runs the core's
//! `ChatEngine::send_message`, and each [`ReplyEvent`] becomes a `yollayah://chat` payload
//! ([`ChatPayload`]), sent to the chat window that asked. A thinking model's trace arrives as
//! `thinking` payloads (plain text: the window shows it through textContent only), then one
//! `thinking_done` when the answer starts. Deltas carry the Markdown blocks
//! that just became complete, already rendered and sanitised, plus the raw open tail, so the
//! window never parses Markdown or inserts unsanitised HTML.

use tokio::sync::oneshot;
use yollayah_core::chat::{Outgoing, ReplyEvent};
use yollayah_core::history::{ConversationId, MessageStatus};
use yollayah_render::{IncrementalRenderer, render_all};

use crate::core_state::Core;
use crate::error::{Error, Result};
use crate::ipc::{ChatPayload, HtmlBlock, Started};
use crate::lock::lock;

/// Turns one reply's [`ReplyEvent`]s into payloads.
#[derive(Debug, Default)]
pub struct Relay {
    renderer: IncrementalRenderer,
    text: String,
}

impl Relay {
    /// The payload for `event`.
    pub fn map(&mut self, event: ReplyEvent) -> ChatPayload {
        match event {
            ReplyEvent::Started {
                conversation,
                user_message,
                reply,
            } => ChatPayload::Started {
                conversation,
                user_message,
                reply,
            },
            ReplyEvent::Thinking { reply, text } => ChatPayload::Thinking { reply, text },
            ReplyEvent::ThinkingDone { reply, ms } => ChatPayload::ThinkingDone { reply, ms },
            ReplyEvent::Delta { reply, text } => {
                self.text.push_str(&text);
                let update = self.renderer.push(&text);
                let tail = update.tail.to_owned();
                let html_blocks = update
                    .completed
                    .into_iter()
                    .map(|(index, html)| HtmlBlock { index, html })
                    .collect();
                ChatPayload::Delta {
                    reply,
                    html_blocks,
                    tail,
                    tail_html: self.renderer.tail_html(),
                    text,
                }
            }
            // The whole message is rendered with the same block split as the stream, so it
            // starts with exactly what the window already shows.
            ReplyEvent::Done { reply, stats } => ChatPayload::Done {
                reply,
                stats,
                html: render_all(&self.text),
            },
            // What arrived is rendered whole, as for Done, so the window needs no second trip.
            ReplyEvent::Failed {
                reply,
                error,
                category,
                partial,
            } => ChatPayload::Failed {
                reply,
                error,
                error_kind: category,
                html: render_all(&partial),
                partial,
            },
            ReplyEvent::Cancelled { reply, partial } => ChatPayload::Cancelled {
                reply,
                html: render_all(&partial),
                partial,
            },
        }
    }
}

/// Sends `outgoing` (text and prepared images) in `conversation` (a new one when `None`) and
/// returns once the reply has started; the reply streams on through `emit`. An `Err` means
/// nothing was stored or sent.
pub async fn send(
    core: &Core,
    conversation: Option<ConversationId>,
    outgoing: Outgoing,
    emit: impl Fn(ChatPayload) + Send + Sync + 'static,
) -> Result<Started> {
    // The picker's choices: which host, which model, thinking on or off.
    let (engine, outgoing) = crate::picker::outgoing(core, outgoing);
    let replies = core.replies.clone();
    let token = core.cancel.child_token();
    let (started_tx, started_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut started_tx = Some(started_tx);
        let mut relay = Relay::default();
        let mut current = None;
        let outcome = engine
            .send_message(conversation, outgoing, token.clone(), |event| {
                match &event {
                    ReplyEvent::Started {
                        conversation,
                        user_message,
                        reply,
                    } => {
                        current = Some(*reply);
                        lock(&replies).insert(*reply, token.clone());
                        if let Some(tx) = started_tx.take() {
                            let _ = tx.send(Started {
                                conversation: *conversation,
                                user_message: *user_message,
                                reply: *reply,
                            });
                        }
                    }
                    ReplyEvent::Thinking { .. }
                    | ReplyEvent::ThinkingDone { .. }
                    | ReplyEvent::Delta { .. } => {}
                    ReplyEvent::Done { reply, .. }
                    | ReplyEvent::Failed { reply, .. }
                    | ReplyEvent::Cancelled { reply, .. } => {
                        lock(&replies).remove(reply);
                    }
                }
                emit(relay.map(event));
            })
            .await;
        // An error after Started (history unwritable at the end) must not leave a token behind.
        if let Some(reply) = current {
            lock(&replies).remove(&reply);
        }
        outcome
    });
    match started_rx.await {
        Ok(started) => Ok(started),
        // The engine gave up before the reply started: its error is the answer.
        Err(_) => match task.await {
            Ok(Err(err)) => Err(err.into()),
            Ok(Ok(_)) => Err(Error::Internal("the reply ended before it started".into())),
            Err(err) => Err(Error::Internal(format!("reply task: {err}"))),
        },
    }
}

/// Cancels a streaming reply; a reply that already ended is left as it is (the window may ask
/// just as the reply finishes).
pub fn cancel(core: &Core, reply: i64) {
    if let Some(token) = lock(&core.replies).get(&reply) {
        token.cancel();
    }
}

/// Re-sends the user message that preceded the incomplete reply `reply`, in its conversation.
pub async fn retry(
    core: &Core,
    reply: i64,
    emit: impl Fn(ChatPayload) + Send + Sync + 'static,
) -> Result<Started> {
    if lock(&core.replies).contains_key(&reply) {
        return Err(Error::BadInput(format!(
            "reply {reply} is still streaming; stop it before retrying"
        )));
    }
    let id = yollayah_core::history::MessageId(reply);
    let found = core
        .with_history(move |h| {
            let Some(conv) = h.conversation_of(id)? else {
                return Ok(None);
            };
            Ok(Some((conv, h.messages(conv)?)))
        })
        .await?;
    let Some((conv, messages)) = found else {
        return Err(Error::BadInput(format!("there is no message {reply}")));
    };
    let Some(pos) = messages.iter().position(|m| m.id == id) else {
        return Err(Error::BadInput(format!("there is no message {reply}")));
    };
    let target = &messages[pos];
    if target.role != "assistant" || target.status == MessageStatus::Complete {
        return Err(Error::BadInput(format!(
            "message {reply} is not an incomplete reply"
        )));
    }
    let Some(user) = messages[..pos].iter().rev().find(|m| m.role == "user") else {
        return Err(Error::BadInput(format!(
            "no user message precedes reply {reply}"
        )));
    };
    // The question goes again with its images, read back from history.
    let refs = user.images.clone();
    let images = core
        .with_history(move |h| {
            let mut out = Vec::with_capacity(refs.len());
            for image in &refs {
                if let Some(data) = h.image_data(image.id)? {
                    out.push(crate::attach::from_stored(image, data));
                }
            }
            Ok(out)
        })
        .await?;
    let outgoing = Outgoing {
        text: user.content.clone(),
        images,
        ..Outgoing::default()
    };
    send(core, Some(conv), outgoing, emit).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use yollayah_core::chat::ReplyStats;

    #[test]
    fn deltas_carry_completed_blocks_and_the_open_tail_and_done_the_whole_message() {
        let mut relay = Relay::default();
        let d1 = relay.map(ReplyEvent::Delta {
            reply: 3,
            text: "Hello **wor".into(),
        });
        assert_eq!(
            d1,
            ChatPayload::Delta {
                reply: 3,
                text: "Hello **wor".into(),
                html_blocks: vec![],
                tail: "Hello **wor".into(),
                tail_html: "<p>Hello **wor</p>\n".into(),
            }
        );
        let d2 = relay.map(ReplyEvent::Delta {
            reply: 3,
            text: "ld**\n\n<script>x</script>".into(),
        });
        let ChatPayload::Delta {
            html_blocks,
            tail,
            tail_html,
            ..
        } = d2
        else {
            panic!("delta expected");
        };
        assert_eq!(html_blocks.len(), 1);
        assert_eq!(html_blocks[0].index, 0);
        assert!(html_blocks[0].html.contains("<strong>world</strong>"));
        assert_eq!(tail, "<script>x</script>");
        // The open block is rendered through the sanitiser too: no script survives.
        assert!(!tail_html.contains("<script"), "{tail_html}");
        let ChatPayload::Delta { tail_html, .. } = relay.map(ReplyEvent::Delta {
            reply: 3,
            text: "\n\nsee **this** now".into(),
        }) else {
            panic!("delta expected");
        };
        assert!(tail_html.contains("<strong>this</strong>"), "{tail_html}");
        let done = relay.map(ReplyEvent::Done {
            reply: 3,
            stats: ReplyStats::default(),
        });
        let ChatPayload::Done { html, .. } = done else {
            panic!("done expected");
        };
        assert!(html.starts_with(&html_blocks[0].html), "{html}");
        assert!(!html.contains("<script"), "{html}");
        let json = serde_json::to_value(relay.map(ReplyEvent::Cancelled {
            reply: 3,
            partial: "Hel".into(),
        }))
        .expect("json");
        assert_eq!(json["kind"], "cancelled");
        assert_eq!(json["partial"], "Hel");
        assert_eq!(json["html"], "<p>Hel</p>\n");
        let json = serde_json::to_value(relay.map(ReplyEvent::Failed {
            reply: 4,
            error: "stalled".into(),
            category: yollayah_core::error::Category::OllamaDown,
            partial: "**a** <img src=x onerror=alert(1)>".into(),
        }))
        .expect("json");
        assert_eq!(json["kind"], "failed");
        // The window branches on the category's name, the IPC errors' `kind`.
        assert_eq!(json["error_kind"], "ollama_down");
        let html = json["html"].as_str().expect("html");
        assert!(
            html.contains("<strong>a</strong>") && !html.contains("<img"),
            "{html}"
        );
    }

    #[test]
    fn thinking_is_relayed_as_plain_text_then_done_with_its_duration() {
        let mut relay = Relay::default();
        let json = serde_json::to_value(relay.map(ReplyEvent::Thinking {
            reply: 5,
            text: "Let me think <img src=x onerror=alert(1)> **hmm**".into(),
        }))
        .expect("json");
        // Raw text, not HTML: the window inserts it with textContent.
        assert_eq!(
            json,
            serde_json::json!({"kind": "thinking", "reply": 5,
                "text": "Let me think <img src=x onerror=alert(1)> **hmm**"})
        );
        let json = serde_json::to_value(relay.map(ReplyEvent::ThinkingDone { reply: 5, ms: 1234 }))
            .expect("json");
        assert_eq!(
            json,
            serde_json::json!({"kind": "thinking_done", "reply": 5, "ms": 1234})
        );
        // The trace is not part of the answer's Markdown.
        let _ = relay.map(ReplyEvent::Delta {
            reply: 5,
            text: "Answer.".into(),
        });
        let ChatPayload::Done { html, .. } = relay.map(ReplyEvent::Done {
            reply: 5,
            stats: ReplyStats::default(),
        }) else {
            panic!("done expected");
        };
        assert_eq!(html, "<p>Answer.</p>\n");
    }
}
