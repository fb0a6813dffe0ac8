//! Faults that tests and scripts can stage, and the recorded-request type.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A staged misbehaviour. Stream faults (`*_mid_stream`, `malformed_line`, `truncate_stream`,
/// `runtime_oom`) are one-shot: the next generation (chat/generate with a prompt) consumes the
/// oldest one. `status` applies to the next `count` API requests (`None` = until cleared).
/// `ps_lies_gpu`, `backend_lost` and `nvml_unavailable` are states that last until cleared.
///
/// JSON form (control API): `{"kind":"stall_mid_stream","after_chunks":3}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Stop sending after N chunks but keep the connection open.
    StallMidStream { after_chunks: usize },
    /// After N chunks write one line that is not JSON, then carry on normally.
    MalformedLine { after_chunks: usize },
    /// After N chunks close the connection without a done chunk (and without the
    /// terminating HTTP chunk).
    TruncateStream { after_chunks: usize },
    /// After N chunks write `{"error":message}` and end the stream (no done chunk). With 0
    /// chunks it becomes a real HTTP 500 with that body, as Ollama does before any write.
    ErrorMidStream {
        after_chunks: usize,
        message: String,
    },
    /// The next `count` API requests (all if `None`) answer `status` + `{"error":message}`.
    Status {
        status: u16,
        message: String,
        #[serde(default)]
        count: Option<u32>,
    },
    /// The next generation fails mid-stream with an out-of-memory message and every loaded
    /// model is expired (Ollama's `expireRunnersForRuntimeOOM`).
    RuntimeOom,
    /// `/api/ps` claims 100% GPU for this model's runner while it really runs on the CPU
    /// (the GPU view shows 0 GPU memory, high CPU, 0% utilisation).
    PsLiesGpu { model: String },
    /// Every runner lost its GPU backend: `/api/ps` keeps the placement Ollama computed,
    /// the GPU view shows the runners with 0 GPU memory and busy CPUs.
    BackendLost,
    /// NVML cannot be used any more (`GET /__sim/gpu` reports `status: unavailable`).
    NvmlUnavailable { reason: String },
    /// The next runner start fails with HTTP 500 and this message.
    LoadFailure { message: String },
    /// The next `/api/pull` that downloads breaks after `after_percent` % of its bytes with
    /// `{"error": message}` in the 200 stream (default `max retries exceeded: unexpected EOF`);
    /// the model is not installed.
    BrokenPull {
        #[serde(default)]
        after_percent: u8,
        #[serde(default)]
        message: Option<String>,
    },
}

impl Fault {
    /// Whether this fault is consumed by the next generation.
    pub fn is_stream_fault(&self) -> bool {
        matches!(
            self,
            Fault::StallMidStream { .. }
                | Fault::MalformedLine { .. }
                | Fault::TruncateStream { .. }
                | Fault::ErrorMidStream { .. }
                | Fault::RuntimeOom
        )
    }
}

/// One API request as the simulator received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without query, e.g. `/api/chat`.
    pub path: String,
    /// Parsed JSON body; `Value::Null` when empty or not JSON.
    pub body: Value,
}
