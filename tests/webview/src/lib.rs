//! Harness for end-to-end tests of the chat window in the REAL webview: the built
//! `yollayah-chat` binary (`--standalone`: the chat window's process with a core of its own,
//! reached through the tray's socket protocol) driven by `tauri-driver` (which drives
//! `WebKitWebDriver`), pointed at an `ollama-sim` process the test starts and controls through
//! its `/__sim/` API. The tray's side of the same socket is tested in src-tauri/tests.
//!
//! Everything speaks plain HTTP/1.1 on localhost through [`http`], a tiny blocking client with
//! timeouts, so the harness needs no async runtime and can clean up in `Drop`.

pub mod app;
pub mod error;
pub mod http;
pub mod sim;
pub mod stats;
pub mod webdriver;

use std::time::{Duration, Instant};

pub use app::{App, Launch};
pub use error::{Error, Result};
pub use sim::Sim;
pub use webdriver::WebDriver;

/// Whether the end-to-end tests should run (`YOLLAYAH_E2E=1`, set by `scripts/e2e/run.sh`).
pub fn enabled() -> bool {
    std::env::var("YOLLAYAH_E2E").as_deref() == Ok("1")
}

/// Polls `probe` every `every` until it returns `Some`, or fails after `timeout` naming `what`.
/// Errors from the probe end the wait at once: a broken session will not get better.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe()? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                after: timeout,
            });
        }
        std::thread::sleep(every);
    }
}

/// Collapses runs of whitespace to one space and trims, so rendered text compares with source.
pub fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
