//! Demo mode (`yollayah-tray --demo`, built with the `demo` feature): an in-process `ollama-sim`
//! on an ephemeral port, with the simulator's view of the GPU, so anyone can see every state
//! without a GPU or Ollama. States are staged through the simulator's `/__sim/` control API
//! (docs/desktop.md). A demo never touches the user's setup: the built-in config and persona,
//! history in memory, and "Start at login" / "Open config" act on a throwaway folder.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::startup::{CoreOptions, GpuSource};
use crate::user_files::UserFiles;

/// The default demo machine (a 12 GiB RTX 4070 desktop), compiled in.
const SCENARIO: &str = include_str!("../../crates/ollama-sim/scenarios/default.toml");

/// Where a demo's "user files" live: per process, under the temp dir.
fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("yollayah-demo-{}", std::process::id()))
}

/// Starts the simulator on 127.0.0.1 (ephemeral port) and returns the core options that point
/// at it (the simulator travels inside them). Must run inside a tokio runtime.
pub(crate) async fn start() -> Result<CoreOptions> {
    let scenario = ollama_sim::Scenario::from_toml_str(SCENARIO)?;
    let sim = ollama_sim::start(scenario).await?;
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    Ok(CoreOptions {
        ollama_url: Some(sim.url()),
        gpu: GpuSource::Simulator,
        builtin_config: true,
        files: Some(UserFiles::under(&dir)),
        sim: Some(sim),
        ..CoreOptions::default()
    })
}

/// Removes the demo's throwaway folder (at exit).
pub(crate) fn clean_up() {
    let _ = std::fs::remove_dir_all(scratch_dir());
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_compiled_in_scenario_parses() {
        ollama_sim::Scenario::from_toml_str(super::SCENARIO).expect("default.toml parses");
    }

    #[test]
    fn demo_files_are_not_the_users() {
        let files = crate::user_files::UserFiles::under(&super::scratch_dir());
        assert!(files.autostart_entry.starts_with(std::env::temp_dir()));
        assert!(files.config_file.starts_with(std::env::temp_dir()));
    }
}
