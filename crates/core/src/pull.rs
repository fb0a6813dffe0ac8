//! Pulling a model with progress (`/api/pull`, fact sheet §1): per-layer progress lines are
//! folded into one figure for the whole model (bytes, rate, ETA), errors keep Ollama's words,
//! and a cancel closes the connection, which ends the pull request on the server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::ollama::client::OllamaClient;
use crate::ollama::types::PullProgress;

/// Rate is measured over this sliding window, so a stall shows as a falling rate.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// The state of a pull after a progress line, ready to show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PullStatus {
    /// Ollama's status text (`pulling manifest`, `pulling 1a2b3c4d5e6f`, `verifying sha256
    /// digest`, `writing manifest`, `success`).
    pub status: String,
    /// Bytes of all layers announced so far (grows while the manifest's layers start).
    pub total: u64,
    pub completed: u64,
    /// Bytes per second over the last few seconds; `None` until two samples exist.
    pub bytes_per_second: Option<f64>,
    /// Time left at the current rate.
    pub eta_secs: Option<f64>,
    /// True after `success`.
    pub done: bool,
    /// The layer the last line was about, while one is downloading (`None` for phase lines
    /// such as `pulling manifest` or `verifying sha256 digest`).
    pub layer: Option<LayerStatus>,
}

/// One manifest layer's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerStatus {
    /// The digest as Ollama prints it (`sha256:…`).
    pub digest: String,
    pub total: u64,
    pub completed: u64,
}

/// Folds progress lines into a [`PullStatus`]. Public so a UI can feed it lines it read
/// itself; [`pull`] uses it.
#[derive(Debug, Default)]
pub struct PullTracker {
    layers: BTreeMap<String, (u64, u64)>,
    samples: Vec<(Instant, u64)>,
    status: String,
}

impl PullTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one line seen at `now`.
    pub fn update(&mut self, p: &PullProgress, now: Instant) -> PullStatus {
        self.status.clone_from(&p.status);
        let mut layer = None;
        if let (Some(d), Some(total)) = (&p.digest, p.total) {
            let completed = p.completed.unwrap_or(0).min(total);
            let e = self.layers.entry(d.clone()).or_insert((total, 0));
            // Completed never goes back (Ollama restarts a part on retry; the bar should not).
            *e = (total, e.1.max(completed));
            layer = Some(LayerStatus {
                digest: d.clone(),
                total,
                completed: e.1,
            });
        }
        let (total, completed) = self.totals();
        self.samples.push((now, completed));
        self.samples
            .retain(|(t, _)| now.saturating_duration_since(*t) <= RATE_WINDOW);
        let rate = match (self.samples.first(), self.samples.last()) {
            (Some((t0, b0)), Some((t1, b1))) if t1 > t0 => {
                Some((b1 - b0) as f64 / t1.duration_since(*t0).as_secs_f64())
            }
            _ => None,
        };
        let eta = rate
            .filter(|r| *r > 0.0)
            .map(|r| total.saturating_sub(completed) as f64 / r);
        PullStatus {
            status: self.status.clone(),
            total,
            completed,
            bytes_per_second: rate,
            eta_secs: eta,
            done: p.status == "success",
            layer,
        }
    }

    fn totals(&self) -> (u64, u64) {
        self.layers
            .values()
            .fold((0, 0), |(t, c), (lt, lc)| (t + lt, c + lc))
    }
}

/// Pulls `model`, calling `progress` after every line. Returns the last status (`done`) on
/// success; [`Error::Cancelled`] when `cancel` fires (the connection is closed at once);
/// [`Error::StreamError`] with Ollama's text when the pull fails (unknown model, broken
/// download); transport and timeout errors as usual.
pub async fn pull(
    client: &OllamaClient,
    model: &str,
    cancel: &CancellationToken,
    mut progress: impl FnMut(&PullStatus),
) -> Result<PullStatus> {
    let mut stream = tokio::select! {
        _ = cancel.cancelled() => return Err(Error::Cancelled),
        s = client.pull_stream(model) => s?,
    };
    let mut tracker = PullTracker::new();
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
        let status = tracker.update(&item?, Instant::now());
        progress(&status);
        if status.done {
            return Ok(status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(digest: &str, total: u64, completed: u64) -> PullProgress {
        PullProgress {
            status: format!("pulling {}", &digest[..4]),
            digest: Some(digest.into()),
            total: Some(total),
            completed: Some(completed),
            error: None,
        }
    }

    #[test]
    fn totals_rate_and_eta_over_layers() {
        let mut t = PullTracker::new();
        let t0 = Instant::now();
        let s = t.update(&line("aaaa", 1000, 0), t0);
        assert_eq!((s.total, s.completed, s.bytes_per_second), (1000, 0, None));
        t.update(&line("bbbb", 1000, 1000), t0);
        let s = t.update(&line("aaaa", 1000, 500), t0 + Duration::from_secs(1));
        assert_eq!((s.total, s.completed), (2000, 1500));
        assert_eq!(
            s.layer,
            Some(LayerStatus {
                digest: "aaaa".into(),
                total: 1000,
                completed: 500
            })
        );
        // 1500 bytes in 1 s over the window; 500 left.
        assert_eq!(s.bytes_per_second, Some(1500.0));
        assert!((s.eta_secs.expect("eta") - 500.0 / 1500.0).abs() < 1e-9);
        // A retry that reports less does not move the bar back.
        let s = t.update(&line("aaaa", 1000, 100), t0 + Duration::from_secs(2));
        assert_eq!(s.completed, 1500);
        let done = t.update(
            &PullProgress {
                status: "success".into(),
                ..PullProgress::default()
            },
            t0 + Duration::from_secs(3),
        );
        assert!(done.done);
        assert_eq!(done.layer, None, "a phase line is about no layer");
    }
}
