//! Capture bundles: one JSON file holding everything a diagnosis reads (`/api/version`,
//! `/api/ps`, `/api/show` of each relevant model, the GPU snapshot, the runner list, the
//! relevant environment and the app's request options). `doctor --capture` writes one,
//! `doctor --from FILE` diagnoses it offline; users attach them to bug reports and tests
//! replay real incidents from them. Format: `docs/capture-format.md`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::diagnose::Observation;
use crate::error::{Error, Result};
use crate::gpu::{GpuSnapshot, Runner};
use crate::ollama::types::{Options, PsResponse, ShowResponse, TagModel};
use crate::scope::Scope;

/// Value of the bundle's `format` field.
pub const FORMAT: &str = "yollayah-capture";
/// The bundle version this build writes and reads.
pub const VERSION: u64 = 1;
/// The minor version this build writes: additions that older readers may ignore. 1 added
/// `scope`; a bundle without `minor_version` is 0 and was captured next to its server.
pub const MINOR_VERSION: u64 = 1;

/// The Ollama-related environment of the server, as far as it is known. Keys in JSON are the
/// variable names. The values are raw strings; diagnosis parses them the way Ollama does.
///
/// Note: when Ollama runs as a service, this process's environment is not the server's; the
/// runner's argv (`-c`, `-np`, `--cache-type-k`) is preferred wherever it exists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OllamaEnv {
    #[serde(
        rename = "OLLAMA_NUM_PARALLEL",
        skip_serializing_if = "Option::is_none"
    )]
    pub num_parallel: Option<String>,
    #[serde(
        rename = "OLLAMA_KV_CACHE_TYPE",
        skip_serializing_if = "Option::is_none"
    )]
    pub kv_cache_type: Option<String>,
    #[serde(
        rename = "OLLAMA_FLASH_ATTENTION",
        skip_serializing_if = "Option::is_none"
    )]
    pub flash_attention: Option<String>,
    #[serde(
        rename = "OLLAMA_CONTEXT_LENGTH",
        skip_serializing_if = "Option::is_none"
    )]
    pub context_length: Option<String>,
    #[serde(
        rename = "OLLAMA_MAX_LOADED_MODELS",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_loaded_models: Option<String>,
    #[serde(rename = "OLLAMA_KEEP_ALIVE", skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<String>,
    #[serde(
        rename = "LLAMA_ARG_FIT_TARGET",
        skip_serializing_if = "Option::is_none"
    )]
    pub llama_arg_fit_target: Option<String>,
    #[serde(
        rename = "CUDA_VISIBLE_DEVICES",
        skip_serializing_if = "Option::is_none"
    )]
    pub cuda_visible_devices: Option<String>,
}

impl OllamaEnv {
    /// Reads the variables from this process's environment.
    pub fn from_process_env() -> Self {
        let get = |k: &str| std::env::var(k).ok();
        OllamaEnv {
            num_parallel: get("OLLAMA_NUM_PARALLEL"),
            kv_cache_type: get("OLLAMA_KV_CACHE_TYPE"),
            flash_attention: get("OLLAMA_FLASH_ATTENTION"),
            context_length: get("OLLAMA_CONTEXT_LENGTH"),
            max_loaded_models: get("OLLAMA_MAX_LOADED_MODELS"),
            keep_alive: get("OLLAMA_KEEP_ALIVE"),
            llama_arg_fit_target: get("LLAMA_ARG_FIT_TARGET"),
            cuda_visible_devices: get("CUDA_VISIBLE_DEVICES"),
        }
    }
}

/// A capture bundle (format `yollayah-capture`, version 1, minor 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureBundle {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] when written by this build.
    pub version: u64,
    /// [`MINOR_VERSION`] when written by this build; 0 when absent.
    #[serde(default)]
    pub minor_version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub captured_at: OffsetDateTime,
    /// The Ollama base URL that was observed.
    pub ollama_url: String,
    /// Where `gpu` and `runners` come from; absent (older bundles) = local.
    #[serde(default)]
    pub scope: Scope,
    /// Free text: what the user was doing, or which incident a fixture replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `/api/version`; `None` when Ollama was down.
    #[serde(default)]
    pub ollama_version: Option<String>,
    /// `/api/ps`.
    #[serde(default)]
    pub ps: PsResponse,
    /// `/api/show` per model name (loaded or requested), without `tensors`.
    #[serde(default)]
    pub show: BTreeMap<String, ShowResponse>,
    /// `/api/tags` entries of the relevant models (their `size` is the weights file size).
    #[serde(default)]
    pub tags: Vec<TagModel>,
    pub gpu: GpuSnapshot,
    #[serde(default)]
    pub runners: Vec<Runner>,
    #[serde(default)]
    pub env: OllamaEnv,
    /// Models the app asked for (its configured model), loaded or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requested_models: Vec<String>,
    /// The `options` the app sends with its requests (`num_ctx`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_options: Option<Options>,
}

/// Only the two header fields, read first so a future version fails with a clear error
/// instead of a confusing field-level one.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    format: String,
    #[serde(default)]
    version: u64,
}

impl CaptureBundle {
    /// An empty bundle stamped now, to be filled by the capturer.
    pub fn new(ollama_url: impl Into<String>, gpu: GpuSnapshot) -> Self {
        CaptureBundle {
            format: FORMAT.to_owned(),
            version: VERSION,
            minor_version: MINOR_VERSION,
            captured_at: OffsetDateTime::now_utc(),
            ollama_url: ollama_url.into(),
            scope: Scope::Local,
            description: None,
            ollama_version: None,
            ps: PsResponse::default(),
            show: BTreeMap::new(),
            tags: Vec::new(),
            gpu,
            runners: Vec::new(),
            env: OllamaEnv::default(),
            requested_models: Vec::new(),
            request_options: None,
        }
    }

    /// Parses a bundle, checking format and version before anything else.
    pub fn from_json(text: &str) -> Result<Self> {
        let invalid = |e: serde_json::Error| Error::InvalidSnapshot {
            what: "capture bundle".into(),
            reason: e.to_string(),
        };
        let h: Header = serde_json::from_str(text).map_err(invalid)?;
        if h.format != FORMAT || h.version != VERSION {
            return Err(Error::UnsupportedCapture {
                format: h.format,
                version: h.version,
                expected_format: FORMAT,
                expected_version: VERSION,
            });
        }
        serde_json::from_str(text).map_err(invalid)
    }

    /// Reads a bundle file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::InvalidSnapshot {
            what: "capture bundle".into(),
            reason: e.to_string(),
        })
    }

    /// Writes the bundle as pretty JSON.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json()?).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The borrowed view [`crate::diagnose::diagnose`] reads.
    pub fn observation(&self) -> Observation<'_> {
        Observation {
            captured_at: Some(self.captured_at),
            ps: &self.ps.models,
            show: &self.show,
            tags: &self.tags,
            gpu: &self.gpu,
            runners: &self.runners,
            env: &self.env,
            requested_models: &self.requested_models,
            request_options: self.request_options.as_ref(),
            scope: &self.scope,
        }
    }
}
