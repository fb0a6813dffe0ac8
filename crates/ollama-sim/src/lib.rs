//! ollama-sim: an Ollama server simulator that speaks Ollama's real wire format (fact sheet
//! §1–§4) over real HTTP, with a simulated GPU, scheduler, keep-alive clock and staged faults.
//!
//! It is deliberately independent of `yollayah-core`: it implements the *server* side of the
//! wire from the fact sheet, so client tests against it check the client, not a shared type.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ollama_sim::SimError> {
//! let sim = ollama_sim::start(ollama_sim::Scenario::default()).await?;
//! println!("Ollama at {}", sim.url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod catalog;
mod control;
mod duration;
mod error;
mod fault;
mod generate;
mod gpu;
mod handle;
mod json;
mod media;
mod pull;
mod scenario;
mod sched;
mod server;

pub use catalog::{go_float, go_sharp_v};
pub use duration::parse_go_duration;
pub use error::{Result, SimError};
pub use fault::{Fault, RecordedRequest};
pub use gpu::{GpuInfo, GpuProcess, GpuSnapshot, GpuView, NvmlStatus, RunnerProcess};
pub use handle::{SimHandle, start, start_on};
pub use pull::PullCounts;
pub use scenario::{GpuSpec, ModelSpec, OtherProcess, ReplyMode, Scenario};

/// How long [`bounded`] lets a test body run.
pub const TEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(90);

/// Test support, shared by every crate's tests: runs a test body, and fails the test (panics,
/// as a failed assertion does) when it runs longer than [`TEST_LIMIT`], so a hang fails
/// instead of blocking CI.
pub async fn bounded<F: std::future::Future>(body: F) -> F::Output {
    match tokio::time::timeout(TEST_LIMIT, body).await {
        Ok(out) => out,
        Err(_) => panic!("test exceeded its time limit of {TEST_LIMIT:?} (something hung)"),
    }
}
