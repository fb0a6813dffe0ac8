//! "Open config": the config file in the user's editor, through `xdg-open`.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};

/// Opens `file` with `xdg-open`, or its folder (created if needed) when the file does not exist
/// yet, so the user sees where it goes.
pub(crate) fn open(file: &Path) -> Result<()> {
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
