//! The core's one error type. Every fallible public function returns [`Result`].

use std::time::Duration;

/// Everything that can go wrong in the core, with enough context to tell the user what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `OLLAMA_HOST` (or a configured URL) could not be turned into a URL.
    #[error("invalid Ollama host {value:?}: {reason}")]
    InvalidHost { value: String, reason: String },

    /// Ollama could not be reached at all (connection refused, DNS, connect timeout).
    #[error("Ollama is not reachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },

    /// A request took longer than its deadline.
    #[error("Ollama did not answer {what} within {after:?}")]
    Timeout { what: String, after: Duration },

    /// A stream went quiet for longer than the idle timeout between chunks.
    #[error("the stream from Ollama stalled: no data for {after:?}")]
    StreamStalled { after: Duration },

    /// Ollama answered with an error status; `message` is Ollama's own error text.
    #[error("Ollama returned HTTP {status}: {message}")]
    Api { status: u16, message: String },

    /// Ollama wrote an `{"error": …}` line in the middle of a 200 stream.
    #[error("Ollama reported an error mid-stream: {message}")]
    StreamError { message: String },

    /// The connection closed before a chunk with `done: true` arrived.
    #[error("the stream from Ollama ended before it was done ({received} chunks received)")]
    StreamTruncated { received: usize },

    /// A line of the NDJSON stream was not the JSON we expected.
    #[error("invalid line {line} in the stream from Ollama: {reason}")]
    InvalidChunk { line: usize, reason: String },

    /// A single NDJSON line grew beyond the configured limit without a newline.
    #[error("a line in the stream from Ollama exceeded {limit} bytes without ending")]
    LineTooLong { limit: usize },

    /// A non-streaming response body was not what the API documents.
    #[error("unexpected response from Ollama for {what}: {reason}")]
    InvalidResponse { what: String, reason: String },

    /// Transport error not covered above (connection reset mid-body, TLS, …).
    #[error("HTTP error talking to Ollama: {0}")]
    Http(String),

    /// Loading (warming) the model failed; `reason` is Ollama's own text.
    #[error("warming {model} failed: {reason}")]
    WarmFailed { model: String, reason: String },

    /// The operation was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,

    /// Filesystem error with the path it concerned.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A GPU snapshot, runner list or capture bundle was not valid JSON of the expected shape.
    #[error("invalid {what}: {reason}")]
    InvalidSnapshot { what: String, reason: String },

    /// A capture bundle was written by a format or version this build does not read.
    #[error(
        "unsupported capture bundle: format {format:?} version {version} (this build reads {expected_format:?} version {expected_version})"
    )]
    UnsupportedCapture {
        format: String,
        version: u64,
        expected_format: &'static str,
        expected_version: u64,
    },
    /// The persona file is missing, unreadable, not UTF-8 or malformed. `line_col` is the
    /// 1-based position in the file when the problem has one.
    #[error("persona {path}{}: {message}", at(.line_col))]
    Persona {
        path: String,
        line_col: Option<(usize, usize)>,
        message: String,
    },

    /// The config file is malformed; `message` names the key and quotes the bad value.
    #[error("config {path}{}: {message}", at(.line_col))]
    Config {
        path: String,
        line_col: Option<(usize, usize)>,
        message: String,
    },

    /// The history file is not a SQLite database or fails its integrity check. It is never
    /// modified in that case, so the user can rescue it.
    #[error(
        "history database {path} is damaged or not a SQLite database ({reason}); it was left \
         untouched: move it aside to start a new history"
    )]
    HistoryCorrupt { path: String, reason: String },

    /// Another process held the history database's lock for longer than the busy timeout.
    #[error("history database {path} is locked by another process (gave up after {waited:?})")]
    HistoryLocked { path: String, waited: Duration },

    /// `--host NAME` names no `[[hosts]]` entry.
    #[error("no host named {name:?} in the config (known: {})", .known.join(", "))]
    UnknownHost { name: String, known: Vec<String> },

    /// An agent's token file is missing, unreadable, empty or readable by group or others.
    #[error("agent token_file {path}: {reason}")]
    AgentTokenFile { path: String, reason: String },

    /// The agent could not be reached (refused, DNS, timeout, cut stream).
    #[error("the agent at {url} is not reachable: {reason}")]
    AgentUnreachable { url: String, reason: String },

    /// The agent refused the credentials: 401 (no or wrong token) or 403 (a read token on a
    /// write route). `hint` says what to change.
    #[error("agent at {url} {what} ({status}): {fix}")]
    AgentAuth {
        url: String,
        status: u16,
        /// "refused the token", "requires a token", …
        what: String,
        /// Which file or key to change.
        fix: String,
    },

    /// The agent answered with another error status, or with something that is not its API.
    #[error("the agent at {url} answered {what}: {message}")]
    AgentApi {
        url: String,
        what: String,
        message: String,
    },

    /// An attached image was refused (`name` is the file name or "pasted image").
    #[error("{name}: {reason}")]
    Image {
        name: String,
        #[source]
        reason: ImageRejection,
    },

    /// Images were attached for a model without the `vision` capability.
    #[error("{model} cannot see images{}", match suggestion {
        Some(s) => format!("; {s} can: switch to it to send images"),
        None => "; pull a vision model (for example gemma3:4b) to send images".to_owned(),
    })]
    NoVision {
        model: String,
        /// A vision model the user has, if any.
        suggestion: Option<String>,
    },

    /// Any other history database failure (unknown id, newer schema, SQLite error).
    #[error("history database {path}: {reason}")]
    History { path: String, reason: String },
}

/// What kind of failure an [`Error`] is, for whoever must branch on it: the chat window (the
/// IPC `kind`) and the CLI (its exit code) both map from here, so they cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Ollama is not there or stopped answering (down, wrong URL, deadline, cut stream).
    OllamaDown,
    /// Ollama answered and refused (HTTP error, error mid-stream, failed load).
    Ollama,
    /// The history database is locked, damaged or failing.
    History,
    /// A file or value the user supplied is unusable (config, persona, host, capture).
    BadInput,
    /// The caller cancelled.
    Cancelled,
    /// Anything else: a bug or an unexpected answer.
    Internal,
}

impl Category {
    /// The stable lower-case name (the IPC `kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::OllamaDown => "ollama_down",
            Category::Ollama => "ollama",
            Category::History => "history",
            Category::BadInput => "bad_input",
            Category::Cancelled => "cancelled",
            Category::Internal => "internal",
        }
    }
}

/// Serialised as its stable name ([`Category::as_str`]).
impl serde::Serialize for Category {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Error {
    /// Which [`Category`] this error belongs to.
    pub fn category(&self) -> Category {
        match self {
            Error::Unreachable { .. }
            | Error::Timeout { .. }
            | Error::StreamStalled { .. }
            | Error::StreamTruncated { .. }
            | Error::Http(_)
            | Error::AgentUnreachable { .. } => Category::OllamaDown,
            Error::Api { .. }
            | Error::StreamError { .. }
            | Error::WarmFailed { .. }
            | Error::AgentApi { .. } => Category::Ollama,
            Error::HistoryCorrupt { .. } | Error::HistoryLocked { .. } | Error::History { .. } => {
                Category::History
            }
            Error::InvalidHost { .. }
            | Error::Config { .. }
            | Error::Persona { .. }
            | Error::InvalidSnapshot { .. }
            | Error::UnsupportedCapture { .. }
            | Error::UnknownHost { .. }
            | Error::AgentTokenFile { .. }
            | Error::AgentAuth { .. }
            | Error::Image { .. }
            | Error::NoVision { .. } => Category::BadInput,
            Error::Cancelled => Category::Cancelled,
            Error::InvalidChunk { .. }
            | Error::LineTooLong { .. }
            | Error::InvalidResponse { .. }
            | Error::Io { .. } => Category::Internal,
        }
    }
}

/// `Result` with the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `:line:column` when a position is known, for `path:line:column: message` errors.
fn at(line_col: &Option<(usize, usize)>) -> String {
    match line_col {
        Some((line, col)) => format!(":{line}:{col}"),
        None => String::new(),
    }
}

/// Why an image was refused; the message is meant for the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRejection {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {bytes} bytes; images up to {limit} bytes are accepted")]
    FileTooLarge { bytes: u64, limit: u64 },
    #[error("this is not a PNG, JPEG, WebP or GIF image{}", detected.as_ref().map(|d| format!(" (it looks like {d})")).unwrap_or_default())]
    UnsupportedFormat { detected: Option<String> },
    #[error("the image is {width} × {height} pixels; at most {limit} megapixels are accepted", limit = limit_pixels / 1_000_000)]
    TooManyPixels {
        width: u32,
        height: u32,
        limit_pixels: u64,
    },
    #[error("the {format} image is damaged or truncated: {reason}")]
    Malformed { format: String, reason: String },
    #[error("{count} images were attached; at most {limit} can be sent in one message")]
    TooMany { count: usize, limit: usize },
    #[error("the image could not be re-encoded: {reason}")]
    Encode { reason: String },
    #[error("the image did not arrive intact (not valid base64)")]
    NotBase64,
}
