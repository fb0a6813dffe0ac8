//! The CLI's one error type. Every failure a command can hit maps to an exit code from
//! [`crate::exit`], so a script can tell "Ollama is down" from "your config is wrong".

use yollayah_core::error::Category;

use crate::exit;

/// What went wrong in a command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The config file, the persona file or a command-line value is unusable.
    #[error("{0}")]
    BadInput(yollayah_core::Error),
    /// Anything the core reported (Ollama down, a refused request, history trouble…).
    #[error(transparent)]
    Core(#[from] yollayah_core::Error),
    /// A conversation id that the history does not hold.
    #[error("there is no conversation {0} in the history (see `yollayah history`)")]
    NoSuchConversation(i64),
    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// `yollayah agent` refused to start (tokens, TLS, bind).
    #[error("agent: {0}")]
    Agent(#[from] yollayah_agent::AgentError),
    /// Serialising the JSON output failed.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl CliError {
    /// The exit code documented in `--help`: the core's [`Category`] decides, as it decides
    /// the tray's IPC error kind.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BadInput(_) | CliError::NoSuchConversation(_) => exit::BAD_INPUT,
            // A busy port may free up: only configuration errors are final.
            CliError::Agent(
                yollayah_agent::AgentError::Bind { .. } | yollayah_agent::AgentError::Io(_),
            ) => exit::INTERNAL,
            CliError::Agent(_) => exit::BAD_INPUT,
            CliError::Core(e) => match e.category() {
                Category::OllamaDown => exit::UNREACHABLE,
                Category::Ollama | Category::BadInput => exit::BAD_INPUT,
                Category::History => exit::HISTORY,
                Category::Cancelled => exit::INTERRUPTED,
                Category::Internal => exit::INTERNAL,
            },
            CliError::Output(_) | CliError::Json(_) => exit::INTERNAL,
        }
    }
}

impl CliError {
    /// One line on what to do next, where the error has an obvious fix: a model the server
    /// does not have (HTTP 404 `model 'x' not found`) is pulled with `ollama pull x`.
    pub fn hint(&self) -> Option<String> {
        match self {
            CliError::Core(yollayah_core::Error::Api {
                status: 404,
                message,
            }) => missing_model(message).map(|m| format!("Download it with `ollama pull {m}`.")),
            _ => None,
        }
    }
}

/// The model name in Ollama's `model 'NAME' not found`.
pub fn missing_model(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("model '")?;
    let (name, tail) = rest.split_once('\'')?;
    (tail.trim_start().starts_with("not found") && !name.is_empty()).then_some(name)
}

/// The result of a command.
pub type Result<T> = std::result::Result<T, CliError>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn history_failures_have_their_own_exit_code() {
        let locked = yollayah_core::Error::HistoryLocked {
            path: "h.sqlite3".into(),
            waited: Duration::from_secs(5),
        };
        let corrupt = yollayah_core::Error::HistoryCorrupt {
            path: "h.sqlite3".into(),
            reason: "not a database".into(),
        };
        let full = yollayah_core::Error::History {
            path: "h.sqlite3".into(),
            reason: "database or disk is full".into(),
        };
        for e in [locked, corrupt, full] {
            assert_eq!(CliError::Core(e).exit_code(), exit::HISTORY);
        }
        let down = yollayah_core::Error::StreamStalled {
            after: Duration::from_secs(60),
        };
        assert_eq!(CliError::Core(down).exit_code(), exit::UNREACHABLE);
    }

    #[test]
    fn a_404_for_a_model_suggests_pulling_it() {
        let e = CliError::Core(yollayah_core::Error::Api {
            status: 404,
            message: "model 'llama9:70b' not found".into(),
        });
        assert_eq!(
            e.hint().as_deref(),
            Some("Download it with `ollama pull llama9:70b`.")
        );
        let other = CliError::Core(yollayah_core::Error::Api {
            status: 404,
            message: "404 page not found".into(),
        });
        assert_eq!(other.hint(), None);
    }
}
