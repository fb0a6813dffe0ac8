//! Demo mode (`yollayah-tray --demo`): an in-process `ollama-sim` on an ephemeral port, with
//! the simulator's view of the GPU, so anyone can see every state without a GPU or Ollama.
//! States are staged through the simulator's `/__sim/` control API (docs/desktop.md).

use crate::core::{CoreOptions, GpuSource};
use crate::error::Result;

/// The default demo machine (a 12 GiB RTX 4070 desktop), compiled in.
const SCENARIO: &str = include_str!("../../crates/ollama-sim/scenarios/default.toml");

/// Starts the simulator on 127.0.0.1 (ephemeral port) and returns it with the core options
/// that point at it. Must run inside a tokio runtime.
pub async fn start() -> Result<(ollama_sim::SimHandle, CoreOptions)> {
    let scenario = ollama_sim::Scenario::from_toml_str(SCENARIO)?;
    let sim = ollama_sim::start(scenario).await?;
    let options = CoreOptions {
        ollama_url: Some(sim.url()),
        gpu: GpuSource::Simulator,
        builtin_config: true,
        ..CoreOptions::default()
    };
    Ok((sim, options))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_compiled_in_scenario_parses() {
        ollama_sim::Scenario::from_toml_str(super::SCENARIO).expect("default.toml parses");
    }
}
