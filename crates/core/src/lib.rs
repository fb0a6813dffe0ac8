//! yollayah-core: everything Yollayah does that is not GUI.
//!
//! The tray app (`src-tauri`) and the CLI (`crates/cli`) only present what this crate
//! observes and decides; nothing in here may depend on a display, GTK or a webview.

pub mod agent_client;
pub mod alerts;
pub mod capture;
pub mod chat;
pub mod config;
pub mod diagnose;
pub mod error;
pub mod events;
pub mod fit;
#[doc(hidden)]
pub mod fuzzing;
pub mod gpu;
pub mod history;
pub mod images;
pub mod machine;
pub mod models;
pub mod ollama;
pub mod persona;
pub mod placement;
pub mod profile;
pub mod pull;
pub mod scope;
pub mod shortcut;
pub mod warm;
pub mod watchdog;

pub use error::{Error, Result};
