//! The tray app's one error type. Everything the shell can fail at is a variant here; IPC
//! commands serialise it as `{ "kind", "message" }` (src-tauri/src/ipc.rs) so the chat window can
//! both branch on the kind and show the message.

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use yollayah_core::error::Category;

/// Every failure of the desktop shell.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// GTK, the tray icon or its menu refused an operation.
    #[error("tray: {0}")]
    Tray(String),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, with the path where there is one.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The session D-Bus could not be reached or answered with an error.
    #[error("session bus: {0}")]
    Bus(#[from] zbus::Error),
    /// A D-Bus call did not answer in time.
    #[error("session bus: no answer within {0:?}")]
    BusTimeout(std::time::Duration),
    /// The notification service failed (absent, refused, wrong reply).
    #[error("notification: {0}")]
    Notify(#[from] notify_rust::error::Error),
    /// The global shortcut could not be bound (no portal, no X11, the key is taken).
    #[error("{0}")]
    Shortcut(String),
    /// A tray menu id that this app never created.
    #[error("unknown tray menu id `{0}`")]
    UnknownMenuId(String),
    /// A notification action key that this app never offered.
    #[error("unknown notification action `{0}`")]
    UnknownAction(String),
    /// No config or home directory could be determined (no `$HOME`, no XDG variables).
    #[error("no XDG config directory: set $XDG_CONFIG_HOME or $HOME")]
    NoConfigDir,
    /// The core (Ollama client, watchdog, chat, history) failed.
    #[error(transparent)]
    Core(#[from] yollayah_core::Error),
    /// The demo mode's simulator could not start.
    #[cfg(feature = "demo")]
    #[error("demo simulator: {0}")]
    Sim(#[from] ollama_sim::SimError),
    /// The window sent arguments the command cannot act on.
    #[error("{0}")]
    BadInput(String),
    /// A background task of ours ended without an answer (it panicked or was shut down).
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

impl Error {
    /// The stable machine-readable kind sent over IPC (the window branches on it). Core
    /// errors take their category's name, as the CLI takes its exit code from it.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Core(e) => e.category().as_str(),
            Error::BadInput(_) | Error::UnknownMenuId(_) | Error::UnknownAction(_) => {
                Category::BadInput.as_str()
            }
            _ => Category::Internal.as_str(),
        }
    }
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Error", 2)?;
        s.serialize_field("kind", self.kind())?;
        s.serialize_field("message", &self.to_string())?;
        s.end()
    }
}

/// The shell's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
