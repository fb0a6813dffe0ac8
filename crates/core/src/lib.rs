//! yollayah-core: everything Yollayah does that is not GUI.
//!
//! The tray app (`src-tauri`) and the CLI (`crates/cli`) only present what this crate
//! observes and decides; nothing in here may depend on a display, GTK or a webview.

pub mod config;
pub mod error;
pub mod history;
pub mod ollama;
pub mod persona;

pub use error::{Error, Result};
