//! The user's files the menu acts on: the autostart entry ("Start at login") and the config
//! file ("Open config", in the user's editor through `xdg-open`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

const SHORTCUT_NOTICE: &str = "shortcut-notice";

/// The user's files that "Start at login" and "Open config" act on. Demo mode points them at a
/// throwaway folder, so trying the app never changes the real setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFiles {
    /// The XDG autostart entry.
    pub autostart_entry: PathBuf,
    /// The config file the core reads.
    pub config_file: PathBuf,
    /// Remembers that the user was told the global shortcut cannot work here (and why), so
    /// the notice is shown once, not at every start.
    pub shortcut_notice: PathBuf,
}

impl UserFiles {
    /// The real ones: `$XDG_CONFIG_HOME/autostart/yollayah-tray.desktop`, the core's
    /// `Config::default_path` and `$XDG_STATE_HOME/yollayah/shortcut-notice`.
    pub fn from_env() -> Result<Self> {
        Ok(UserFiles {
            autostart_entry: crate::autostart::entry_path()?,
            config_file: yollayah_core::config::Config::default_path().ok_or(Error::NoConfigDir)?,
            shortcut_notice: dirs::state_dir()
                .or_else(dirs::data_dir)
                .ok_or(Error::NoConfigDir)?
                .join("yollayah")
                .join(SHORTCUT_NOTICE),
        })
    }

    /// Both under `dir`, laid out as under `$XDG_CONFIG_HOME`.
    pub fn under(dir: &std::path::Path) -> Self {
        UserFiles {
            autostart_entry: dir.join("autostart").join(crate::autostart::ENTRY_NAME),
            config_file: dir.join("yollayah").join("config.toml"),
            shortcut_notice: dir.join("yollayah").join(SHORTCUT_NOTICE),
        }
    }
}

/// Opens `file` with `xdg-open`, or its folder (created if needed) when the file does not exist
/// yet, so the user sees where it goes.
pub(crate) fn open_config(file: &Path) -> Result<()> {
    let target = if file.is_file() {
        file.to_path_buf()
    } else {
        let dir = file.parent().ok_or(Error::NoConfigDir)?;
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        dir.to_path_buf()
    };
    let mut child = Command::new("xdg-open")
        .arg(&target)
        .spawn()
        .map_err(|e| Error::io(format!("running xdg-open {}", target.display()), e))?;
    // Reaped off-thread: xdg-open may wait for the editor, and a click must not wait for it.
    std::thread::spawn(move || child.wait());
    Ok(())
}
