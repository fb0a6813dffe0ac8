//! Replies as the chat window sees them: a task per reply runs the core's `ChatEngine::send`,
//! and each [`ChatEvent`] becomes a `yollayah://chat` payload ([`ChatPayload`]), sent to the
//! chat window that asked. Deltas carry the Markdown blocks
//! that just became complete, already rendered and sanitised, plus the raw open tail, so the
//! window never parses Markdown or inserts unsanitised HTML.

use tokio::sync::oneshot;
use yollayah_core::chat::ChatEvent;
use yollayah_core::history::{ConversationId, MessageStatus};
use yollayah_render::{IncrementalRenderer, render_all};

use crate::error::{Error, Result};
use crate::ipc::{ChatPayload, HtmlBlock, Started};
use crate::startup::{Core, lock};

/// Turns one reply's [`ChatEvent`]s into payloads.
#[derive(Debug, Default)]
pub struct Relay {
    renderer: IncrementalRenderer,
    text: String,
}

impl Relay {
    /// The payload for `event`.
    pub fn map(&mut self, event: ChatEvent) -> ChatPayload {
        match event {
            ChatEvent::Started {
                conversation,
                user_message,
                reply,
            } => ChatPayload::Started {
                conversation,
                user_message,
                reply,
            },
            ChatEvent::Delta { reply, text } => {
                self.text.push_str(&text);
                let update = self.renderer.push(&text);
                let html_blocks = update
                    .completed
                    .into_iter()
                    .map(|(index, html)| HtmlBlock { index, html })
                    .collect();
                ChatPayload::Delta {
                    reply,
                    html_blocks,
                    tail: update.tail.to_owned(),
                    text,
                }
            }
            // The whole message is rendered with the same block split as the stream, so it
            // starts with exactly what the window already shows.
            ChatEvent::Done { reply, stats } => ChatPayload::Done {
                reply,
                stats,
                html: render_all(&self.text),
            },
            // What arrived is rendered whole, as for Done, so the window needs no second trip.
            ChatEvent::Failed {
                reply,
                error,
                partial,
            } => ChatPayload::Failed {
                reply,
                error,
                html: render_all(&partial),
                partial,
            },
            ChatEvent::Cancelled { reply, partial } => ChatPayload::Cancelled {
                reply,
                html: render_all(&partial),
                partial,
            },
        }
    }
}

/// Sends `text` in `conversation` (a new one when `None`) and returns once the reply has
/// started; the reply streams on through `emit`.
pub async fn send(
    core: &Core,
    conversation: Option<ConversationId>,
    text: String,
    emit: impl Fn(ChatPayload) + Send + Sync + 'static,
) -> Result<Started> {
    let engine = core.chat.clone();
    let replies = core.replies.clone();
    let token = core.cancel.child_token();
    let (started_tx, started_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut started_tx = Some(started_tx);
        let mut relay = Relay::default();
        let mut current = None;
        let outcome = engine
            .send(conversation, text, token.clone(), |event| {
                match &event {
                    ChatEvent::Started {
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
                    ChatEvent::Delta { .. } => {}
                    ChatEvent::Done { reply, .. }
                    | ChatEvent::Failed { reply, .. }
                    | ChatEvent::Cancelled { reply, .. } => {
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
    send(core, Some(conv), user.content.clone(), emit).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use yollayah_core::chat::ReplyStats;

    #[test]
    fn deltas_carry_completed_blocks_and_the_open_tail_and_done_the_whole_message() {
        let mut relay = Relay::default();
        let d1 = relay.map(ChatEvent::Delta {
            reply: 3,
            text: "Hello **wor".into(),
        });
        assert_eq!(
            d1,
            ChatPayload::Delta {
                reply: 3,
                text: "Hello **wor".into(),
                html_blocks: vec![],
                tail: "Hello **wor".into()
            }
        );
        let d2 = relay.map(ChatEvent::Delta {
            reply: 3,
            text: "ld**\n\n<script>x</script>".into(),
        });
        let ChatPayload::Delta {
            html_blocks, tail, ..
        } = d2
        else {
            panic!("delta expected");
        };
        assert_eq!(html_blocks.len(), 1);
        assert_eq!(html_blocks[0].index, 0);
        assert!(html_blocks[0].html.contains("<strong>world</strong>"));
        assert_eq!(tail, "<script>x</script>");
        let done = relay.map(ChatEvent::Done {
            reply: 3,
            stats: ReplyStats::default(),
        });
        let ChatPayload::Done { html, .. } = done else {
            panic!("done expected");
        };
        assert!(html.starts_with(&html_blocks[0].html), "{html}");
        assert!(!html.contains("<script"), "{html}");
        let json = serde_json::to_value(relay.map(ChatEvent::Cancelled {
            reply: 3,
            partial: "Hel".into(),
        }))
        .expect("json");
        assert_eq!(json["kind"], "cancelled");
        assert_eq!(json["partial"], "Hel");
        assert_eq!(json["html"], "<p>Hel</p>\n");
        let json = serde_json::to_value(relay.map(ChatEvent::Failed {
            reply: 4,
            error: "stalled".into(),
            partial: "**a** <img src=x onerror=alert(1)>".into(),
        }))
        .expect("json");
        assert_eq!(json["kind"], "failed");
        let html = json["html"].as_str().expect("html");
        assert!(
            html.contains("<strong>a</strong>") && !html.contains("<img"),
            "{html}"
        );
    }
}
