//! "Start at login" (an XDG autostart entry) and "Open config" (the config file in the user's
//! editor through `xdg-open`).
//!
//! ## Platform-specific
//! Linux/BSD desktops following the XDG autostart spec. macOS and Windows would need their own
//! mechanisms (login items, registry Run key); not implemented.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// File name of our autostart entry.
pub const ENTRY_NAME: &str = "yollayah-tray.desktop";

/// `$XDG_CONFIG_HOME/autostart/yollayah-tray.desktop` (or `~/.config/…`).
pub fn entry_path() -> Result<PathBuf> {
    Ok(dirs::config_dir()
        .ok_or(Error::NoConfigDir)?
        .join("autostart")
        .join(ENTRY_NAME))
}

/// The config file the core reads: `$XDG_CONFIG_HOME/yollayah/config.toml`.
pub fn config_path() -> Result<PathBuf> {
    Ok(dirs::config_dir()
        .ok_or(Error::NoConfigDir)?
        .join("yollayah")
        .join("config.toml"))
}

/// Whether our autostart entry exists.
pub fn is_enabled() -> bool {
    entry_path().is_ok_and(|p| p.is_file())
}

/// Writes (enabled) or removes (disabled) the autostart entry, starting the current executable.
pub fn set(enabled: bool) -> Result<()> {
    let path = entry_path()?;
    let exe = std::env::current_exe().map_err(|e| Error::io("finding our executable", e))?;
    set_at(&path, enabled, &exe)
}

/// [`set`] with explicit paths.
pub fn set_at(path: &Path, enabled: bool, exe: &Path) -> Result<()> {
    if !enabled {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing {}", path.display()), e))
            }
            _ => Ok(()),
        };
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    std::fs::write(path, desktop_entry(exe))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// The `.desktop` text. `Exec` follows the spec's quoting: the path is quoted and `"`, `` ` ``,
/// `$` and `\` are escaped, so paths with spaces work.
pub fn desktop_entry(exe: &Path) -> String {
    let mut quoted = String::from("\"");
    for c in exe.to_string_lossy().chars() {
        if matches!(c, '"' | '`' | '$' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    format!(
        "[Desktop Entry]\nType=Application\nName=Yollayah\n\
         Comment=Shows where your Ollama model runs\nExec={quoted}\nIcon=yollayah\n\
         Terminal=false\nX-GNOME-Autostart-enabled=true\n"
    )
}

/// Opens the config file with `xdg-open`, or its folder when the file does not exist yet.
pub fn open_config() -> Result<()> {
    let file = config_path()?;
    let target = if file.is_file() {
        file
    } else {
        let dir = file
            .parent()
            .map(Path::to_path_buf)
            .ok_or(Error::NoConfigDir)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        dir
    };
    let mut child = Command::new("xdg-open")
        .arg(&target)
        .spawn()
        .map_err(|e| Error::io(format!("running xdg-open {}", target.display()), e))?;
    // Reaped off-thread: xdg-open may wait for the editor, and a click must not wait for it.
    std::thread::spawn(move || child.wait());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_writes_a_quoted_entry_and_disable_removes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("autostart").join(ENTRY_NAME);
        let exe = Path::new("/opt/my apps/yollayah-tray$1");
        set_at(&path, true, exe).expect("enable");
        let text = std::fs::read_to_string(&path).expect("written");
        assert!(text.starts_with("[Desktop Entry]\n"));
        assert!(
            text.contains("\nExec=\"/opt/my apps/yollayah-tray\\$1\"\n"),
            "{text}"
        );
        set_at(&path, false, exe).expect("disable");
        assert!(!path.exists());
        set_at(&path, false, exe).expect("disabling twice is fine");
    }
}
