//! The CLI's one error type. Every failure a command can hit maps to an exit code from
//! [`crate::exit`], so a script can tell "Ollama is down" from "your config is wrong".

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
    /// Serialising the JSON output failed.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl CliError {
    /// The exit code documented in `--help`.
    pub fn exit_code(&self) -> u8 {
        use yollayah_core::Error as E;
        match self {
            CliError::BadInput(_) | CliError::NoSuchConversation(_) => exit::BAD_INPUT,
            CliError::Core(e) => match e {
                E::Unreachable { .. } | E::Timeout { .. } => exit::UNREACHABLE,
                E::Cancelled => exit::INTERRUPTED,
                E::Config { .. }
                | E::Persona { .. }
                | E::InvalidHost { .. }
                | E::Api { .. }
                | E::StreamError { .. }
                | E::WarmFailed { .. }
                | E::Image { .. }
                | E::NoVision { .. }
                | E::InvalidSnapshot { .. }
                | E::UnsupportedCapture { .. } => exit::BAD_INPUT,
                _ => exit::INTERNAL,
            },
            CliError::Output(_) | CliError::Json(_) => exit::INTERNAL,
        }
    }
}

/// The result of a command.
pub type Result<T> = std::result::Result<T, CliError>;
