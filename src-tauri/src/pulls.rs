//! Pulling a model from the popup (`pull_model`, `cancel_pull`, `pull_state`). The pull runs
//! in the tray process, which holds the core, so it goes on when the chat window closes; a
//! reopened window asks `pull_state` and follows the same pull. One pull at a time: a second
//! would split the bandwidth and the bar, and the popup has room for one.
//!
//! Progress goes to every window as `yollayah://pull` ([`PullPayload`]), at most
//! [`MAX_RATE_HZ`] times a second, latest value wins: Ollama writes a line about every 60 ms
//! per layer, and a webview repainting a bar for each would be busy for nothing. The outcome
//! (done, failed, cancelled) is always sent, after the last progress.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use yollayah_core::ollama::client::OllamaClient;
use yollayah_core::pull::{self, PullStatus};

use crate::error::{Error, Result};
use crate::ipc::{PullPayload, PullStarted};
use crate::lock::lock;

/// Most progress events a second.
pub const MAX_RATE_HZ: u32 = 10;
/// The gap between two progress events.
const THROTTLE: Duration = Duration::from_millis(1000 / MAX_RATE_HZ as u64);
/// How long a window opened after a pull ended is still told how it ended: long enough for
/// "close the window, come back after the download", short enough that yesterday's pull does
/// not greet every opening.
const OUTCOME_KEPT: Duration = Duration::from_secs(15 * 60);
/// Longest model name accepted (Ollama's own names are far shorter: `host/namespace/model:tag`).
const MAX_NAME: usize = 256;

/// The pull in progress, if any, and how the last one ended.
#[derive(Debug, Default)]
pub struct Pulls {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    active: Option<Active>,
    /// The outcome of the last pull that ended and when, for a window that was closed meanwhile.
    last: Option<(Instant, PullPayload)>,
}

#[derive(Debug)]
struct Active {
    id: u64,
    cancel: CancellationToken,
    state: watch::Receiver<PullPayload>,
}

impl Pulls {
    /// The running pull's latest state, else how the last one ended (within
    /// [`OUTCOME_KEPT`]), else `None`.
    pub fn state(&self) -> Option<PullPayload> {
        let inner = lock(&self.inner);
        match &inner.active {
            Some(a) => Some(a.state.borrow().clone()),
            None => inner
                .last
                .as_ref()
                .filter(|(at, _)| at.elapsed() < OUTCOME_KEPT)
                .map(|(_, outcome)| outcome.clone()),
        }
    }

    /// Stops the running pull (its stream is dropped, which closes the connection and ends the
    /// pull on the server). `id` names the pull the window means; `None` or the running one's
    /// id cancels it, another id (a pull that already ended) does nothing.
    pub fn cancel(&self, id: Option<u64>) {
        if let Some(a) = &lock(&self.inner).active
            && id.is_none_or(|id| id == a.id)
        {
            a.cancel.cancel();
        }
    }

    fn finish(&self, id: u64, outcome: PullPayload) {
        let mut inner = lock(&self.inner);
        if inner.active.as_ref().is_some_and(|a| a.id == id) {
            inner.active = None;
        }
        inner.last = Some((Instant::now(), outcome));
    }
}

/// Checks a model name typed by the user: Ollama's `[host/][namespace/]model[:tag]` characters
/// only, so nothing odd reaches the request or the window. Returns it trimmed.
pub fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::BadInput("type the name of a model to pull".into()));
    }
    if name.len() > MAX_NAME {
        return Err(Error::BadInput(format!(
            "a model name is at most {MAX_NAME} characters"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/')))
    {
        return Err(Error::BadInput(format!(
            "{c:?} cannot be part of a model name (like qwen3:8b or namespace/model:tag)"
        )));
    }
    Ok(name.to_owned())
}

/// Ollama's own words where the error is Ollama's (`pull model manifest: file does not exist`),
/// ours otherwise (Ollama unreachable, stalled).
fn error_words(err: &yollayah_core::Error) -> String {
    match err {
        yollayah_core::Error::StreamError { message }
        | yollayah_core::Error::Api { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn progress(id: u64, name: &str, status: &PullStatus) -> PullPayload {
    PullPayload::Progress {
        id,
        name: name.to_owned(),
        status: status.clone(),
    }
}

/// Starts pulling `name` from `ollama` on `runtime`; progress and the outcome go to
/// `broadcast` (every window's `yollayah://pull`). `cancel` is the core's: its end ends the pull.
///
/// Takes the parts it uses rather than the shell: the core's state holds [`Pulls`], so this
/// module must not depend on the shell or the core (issue 14: no import cycles).
pub fn start(
    pulls: &Arc<Pulls>,
    ollama: &OllamaClient,
    cancel: &CancellationToken,
    runtime: &tokio::runtime::Handle,
    broadcast: impl Fn(&PullPayload) + Send + 'static,
    name: &str,
) -> Result<PullStarted> {
    let name = check_name(name)?;
    let cancel = cancel.child_token();
    let (id, tx, rx) = {
        let mut inner = lock(&pulls.inner);
        if let Some(a) = &inner.active {
            let running = match &*a.state.borrow() {
                PullPayload::Progress { name, .. } => name.clone(),
                _ => "another model".into(),
            };
            return Err(Error::BadInput(format!(
                "{running} is being pulled; wait for it or cancel it first"
            )));
        }
        inner.next += 1;
        let id = inner.next;
        let first = progress(
            id,
            &name,
            &PullStatus {
                status: "starting".into(),
                total: 0,
                completed: 0,
                bytes_per_second: None,
                eta_secs: None,
                done: false,
                layer: None,
            },
        );
        let (tx, rx) = watch::channel(first);
        inner.active = Some(Active {
            id,
            cancel: cancel.clone(),
            state: rx.clone(),
        });
        (id, tx, rx)
    };
    runtime.spawn(forward(broadcast, rx));
    let task_pulls = pulls.clone();
    let ollama = ollama.clone();
    let task_name = name.clone();
    runtime.spawn(async move {
        let result = pull::pull(&ollama, &task_name, &cancel, |s| {
            tx.send_replace(progress(id, &task_name, s));
        })
        .await;
        let outcome = match result {
            Ok(done) => {
                tracing::info!(model = %task_name, bytes = done.total, "pulled");
                PullPayload::Done {
                    id,
                    name: task_name,
                    total: done.total,
                }
            }
            Err(yollayah_core::Error::Cancelled) => {
                tracing::info!(model = %task_name, "pull cancelled");
                PullPayload::Cancelled {
                    id,
                    name: task_name,
                }
            }
            Err(err) => {
                tracing::warn!(model = %task_name, %err, "pull failed");
                PullPayload::Failed {
                    id,
                    name: task_name,
                    error: error_words(&err),
                }
            }
        };
        // The pull is over before the window hears so: a new one may start at once.
        task_pulls.finish(id, outcome.clone());
        tx.send_replace(outcome);
    });
    Ok(PullStarted { id, name })
}

/// Sends the pull's state to every window, at most [`MAX_RATE_HZ`] times a second, until its
/// outcome has been sent.
async fn forward(broadcast: impl Fn(&PullPayload), mut rx: watch::Receiver<PullPayload>) {
    loop {
        let payload = rx.borrow_and_update().clone();
        let last = !matches!(payload, PullPayload::Progress { .. });
        broadcast(&payload);
        if last {
            break;
        }
        tokio::time::sleep(THROTTLE).await;
        if rx.changed().await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_odd_characters_refused() {
        assert_eq!(check_name("  qwen3:8b\n").expect("ok"), "qwen3:8b");
        assert_eq!(
            check_name("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M").expect("ok"),
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"
        );
        assert!(check_name("   ").is_err());
        assert!(check_name("qwen3 8b").is_err());
        assert!(check_name("x\"}").is_err());
        assert!(check_name(&"a".repeat(MAX_NAME + 1)).is_err());
    }

    #[test]
    fn ollamas_words_are_kept_as_they_are() {
        let e = yollayah_core::Error::StreamError {
            message: "pull model manifest: file does not exist".into(),
        };
        assert_eq!(error_words(&e), "pull model manifest: file does not exist");
        let e = yollayah_core::Error::Api {
            status: 500,
            message: "max retries exceeded: unexpected EOF".into(),
        };
        assert_eq!(error_words(&e), "max retries exceeded: unexpected EOF");
    }
}
