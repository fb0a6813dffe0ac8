//! Capture bundles: one JSON file holding everything a diagnosis reads (`/api/version`,
//! `/api/ps`, `/api/show` of each relevant model, the GPU snapshot, the runner list, the
//! relevant environment and the app's request options). `doctor --capture` writes one,
//! `doctor --from FILE` diagnoses it offline; users attach them to bug reports and tests
//! replay real incidents from them. Format: `docs/capture-format.md`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::diagnose::{LoadHistory, Observation};
use crate::error::{Error, Result};
use crate::gpu::{GpuSnapshot, Runner};
use crate::ollama::env::OllamaEnv;
use crate::ollama::types::{Options, PsResponse, ShowResponse, TagModel};
use crate::scope::Scope;

/// Value of the bundle's `format` field.
pub const FORMAT: &str = "yollayah-capture";
/// The bundle version this build writes and reads.
pub const VERSION: u64 = 1;
/// The minor version this build writes: additions that older readers may ignore. 1 added
/// `scope`; a bundle without `minor_version` is 0 and was captured next to its server.
pub const MINOR_VERSION: u64 = 1;

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
    /// Loads, reloads and expiries the watchdog saw over the last half hour.
    #[serde(default, skip_serializing_if = "LoadHistory::is_empty")]
    pub history: LoadHistory,
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
            history: LoadHistory::default(),
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
            server_version: self.ollama_version.as_deref(),
            history: (!self.history.is_empty()).then_some(&self.history),
            scope: &self.scope,
        }
    }
}
