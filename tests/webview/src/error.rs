//! The harness's one error type.

use std::time::Duration;

/// Everything that can go wrong while driving the app.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An HTTP answer was not what the protocol promises.
    #[error("bad HTTP answer from {url}: {detail}")]
    Http {
        /// The request URL.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// A JSON body did not parse.
    #[error("bad JSON from {url}: {source}")]
    Json {
        /// The request URL.
        url: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The WebDriver answered with an error object.
    #[error("WebDriver {command}: {error}: {message}")]
    WebDriver {
        /// The command that failed.
        command: String,
        /// The W3C error code (`no such element`, `no such alert`, …).
        error: String,
        /// The driver's message.
        message: String,
    },
    /// A deadline passed.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What never happened.
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// A needed program or file is missing.
    #[error("{0}")]
    Setup(String),
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
