//! Start-up timing of the chat window: where the time from "Open chat" to the first paint goes.
//! The tray passes the moment it handled "Open chat" (`YOLLAYAH_OPEN_AT_MS`, Unix ms); each
//! step of this process and of the page is logged against it, one `chat start-up:` line per
//! step (`scripts/measure-tray.sh` prints them). Without it (started by hand) the origin is
//! this process's `main`.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable the tray sets when it starts this process.
pub const OPEN_AT_ENV: &str = "YOLLAYAH_OPEN_AT_MS";

static ORIGIN_MS: OnceLock<f64> = OnceLock::new();

/// Now, in Unix milliseconds.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Fixes the origin; called first thing in `main`, with the moment `main` was entered.
pub fn start(main_entered_ms: f64) {
    let origin = std::env::var(OPEN_AT_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(main_entered_ms);
    let _ = ORIGIN_MS.set(origin);
}

/// Logs that `what` happened at `at_ms` (Unix ms).
pub fn mark_at(what: &str, at_ms: f64) {
    if let Some(origin) = ORIGIN_MS.get() {
        tracing::info!("chat start-up: {what} +{:.0} ms", at_ms - origin);
    }
}

/// Logs that `what` happened now.
pub fn mark(what: &str) {
    mark_at(what, now_ms());
}
