//! "Start at login": an XDG autostart entry.
//!
//! ## Platform-specific
//! Linux/BSD desktops following the XDG autostart spec. macOS and Windows would need their own
//! mechanisms (login items, registry Run key); not implemented.

use std::path::{Path, PathBuf};

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

/// Whether the autostart entry `path` exists.
pub fn is_enabled(path: &Path) -> bool {
    path.is_file()
}

/// Writes (enabled) or removes (disabled) the autostart entry `path`, starting the current
/// executable.
pub fn set(path: &Path, enabled: bool) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::io("finding our executable", e))?;
    set_at(path, enabled, &exe)
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
