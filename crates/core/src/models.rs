//! The model picker's data: every pulled model (`/api/tags` + `/api/show`) with its size,
//! quantisation, capabilities, how it thinks, and (optionally) a fit prediction for this
//! machine. Embedding-only models are listed but marked not for chat.

use futures_util::StreamExt;
use serde::Serialize;

use crate::error::Result;
use crate::fit::{self, FitSettings, ModelFit};
use crate::gpu::GpuSnapshot;
use crate::ollama::client::OllamaClient;
use crate::ollama::types::{ShowResponse, TagModel, Think};

/// `/api/show` calls in flight at once while listing.
const SHOW_CONCURRENCY: usize = 4;

/// How a model takes `think` (from `/api/show` `capabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThinkSupport {
    /// No `thinking` capability: `think` is never sent (`true` would be a 400).
    None,
    /// Thinking on or off (qwen3, deepseek-r1, …). Ollama turns it on when `think` is absent.
    Toggle,
    /// Levels only (gpt-oss): `low`/`medium`/`high`. It **cannot stop thinking**: Ollama
    /// ignores `think:false`, so "off" is sent as `low`, the least it does.
    LevelsOnly,
}

impl ThinkSupport {
    /// From the capabilities and the model's family/name.
    pub fn of(name: &str, family: &str, capabilities: &[String]) -> ThinkSupport {
        if !capabilities.iter().any(|c| c == "thinking") {
            ThinkSupport::None
        } else if family == "gptoss" || family == "gpt-oss" || name.starts_with("gpt-oss") {
            ThinkSupport::LevelsOnly
        } else {
            ThinkSupport::Toggle
        }
    }

    /// The `think` value to send for the user's choice; `None` = send nothing (server
    /// default). Levels on a toggle model become `true`; off on a levels-only model is `low`.
    pub fn request(self, wanted: Think) -> Option<Think> {
        match (self, wanted) {
            (ThinkSupport::None, _) => None,
            (ThinkSupport::Toggle, Think::Off) => Some(Think::Off),
            (ThinkSupport::Toggle, _) => Some(Think::On),
            (ThinkSupport::LevelsOnly, Think::Off) => Some(Think::Low),
            (ThinkSupport::LevelsOnly, Think::On) => Some(Think::Medium),
            (ThinkSupport::LevelsOnly, level) => Some(level),
        }
    }

    /// The levels a UI should offer (`[]` for a plain toggle).
    pub fn levels(self) -> &'static [&'static str] {
        match self {
            ThinkSupport::LevelsOnly => &["low", "medium", "high"],
            _ => &[],
        }
    }
}

/// One row of the picker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelEntry {
    pub name: String,
    /// Bytes on disk (`/api/tags` `size`).
    pub size: u64,
    pub parameter_size: String,
    pub quantization: String,
    pub family: String,
    pub capabilities: Vec<String>,
    pub think: ThinkSupport,
    pub vision: bool,
    /// False for embedding-only models: not offered for chat.
    pub chat: bool,
    /// Training context, when `/api/show` says.
    pub context_length: Option<u64>,
    /// Base model of a derived one (`details.parent_model`).
    pub parent_model: Option<String>,
    /// Fit at the profile's `num_ctx` ([`list_with_predictions`] only).
    pub fit: Option<ModelFit>,
    /// Set when `/api/show` failed for this model (it is still listed).
    pub show_error: Option<String>,
}

impl ModelEntry {
    fn from(tag: &TagModel, show: Option<&ShowResponse>, show_error: Option<String>) -> Self {
        // `/api/show` knows capabilities on every version that has them; tags only lately.
        let caps = match show {
            Some(s) if !s.capabilities.is_empty() => s.capabilities.clone(),
            _ => tag.capabilities.clone(),
        };
        let family = show.map_or(tag.details.family.clone(), |s| s.details.family.clone());
        let arch = show
            .and_then(|s| s.model_info.get("general.architecture"))
            .and_then(|v| v.as_str())
            .unwrap_or(&family)
            .to_owned();
        let context_length = show
            .and_then(|s| s.model_info.get(&format!("{arch}.context_length")))
            .and_then(serde_json::Value::as_u64)
            .or(tag.details.context_length);
        let embedding_only =
            caps.iter().any(|c| c == "embedding") && !caps.iter().any(|c| c == "completion");
        ModelEntry {
            name: tag.name.clone(),
            size: tag.size,
            parameter_size: tag.details.parameter_size.clone(),
            quantization: tag.details.quantization_level.clone(),
            think: ThinkSupport::of(&tag.name, &arch, &caps),
            vision: caps.iter().any(|c| c == "vision"),
            chat: !embedding_only,
            family,
            capabilities: caps,
            context_length,
            parent_model: Some(tag.details.parent_model.clone()).filter(|p| !p.is_empty()),
            fit: None,
            show_error,
        }
    }
}

/// The installed models with their `/api/show` answers, in `/api/tags` order.
async fn tags_and_shows(
    client: &OllamaClient,
) -> Result<Vec<(TagModel, std::result::Result<ShowResponse, String>)>> {
    let tags = client.tags().await?.models;
    // Collected first: a lazy `Map` over a closure inside the stream type makes the caller's
    // future fail the `Send` check of `tokio::spawn` (rustc's higher-ranked auto-trait gap).
    let requests: Vec<_> = tags
        .iter()
        .map(|t| {
            let c = client.clone();
            let name = t.name.clone();
            async move { c.show(&name).await.map_err(|e| e.to_string()) }
        })
        .collect();
    let shows: Vec<_> = futures_util::stream::iter(requests)
        .buffered(SHOW_CONCURRENCY)
        .collect()
        .await;
    Ok(tags.into_iter().zip(shows).collect())
}

/// Every pulled model, embedding-only ones marked `chat: false`.
pub async fn list(client: &OllamaClient) -> Result<Vec<ModelEntry>> {
    Ok(tags_and_shows(client)
        .await?
        .iter()
        .map(|(t, s)| ModelEntry::from(t, s.as_ref().ok(), s.as_ref().err().cloned()))
        .collect())
}

/// [`list`] plus a fit prediction for each chat model at `num_ctx` on `gpu` (a snapshot of
/// this machine, e.g. `Machine::observe`), against what `/api/ps` says is loaded now.
pub async fn list_with_predictions(
    client: &OllamaClient,
    gpu: &GpuSnapshot,
    num_ctx: u64,
    settings: &FitSettings,
) -> Result<Vec<ModelEntry>> {
    let (ps, version) = tokio::join!(client.ps(), async {
        match &settings.server_version {
            Some(_) => None,
            None => client.version().await.ok().map(|v| v.version),
        }
    });
    let ps = ps?.models;
    let settings = &FitSettings {
        server_version: settings.server_version.clone().or(version),
        ..settings.clone()
    };
    let rows = tags_and_shows(client).await?;
    Ok(rows
        .iter()
        .map(|(t, s)| {
            let mut e = ModelEntry::from(t, s.as_ref().ok(), s.as_ref().err().cloned());
            if let (true, Ok(show)) = (e.chat, s) {
                e.fit = Some(fit::predict(
                    &e.name, show, t.size, num_ctx, gpu, &ps, settings,
                ));
            }
            e
        })
        .collect())
}

/// The models offered for chat.
pub fn chat_models(all: &[ModelEntry]) -> Vec<&ModelEntry> {
    all.iter().filter(|m| m.chat).collect()
}

/// A vision model the user has, to name when images are refused: the smallest one.
pub fn vision_suggestion(all: &[ModelEntry]) -> Option<&str> {
    all.iter()
        .filter(|m| m.vision && m.chat)
        .min_by_key(|m| m.size)
        .map(|m| m.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_support_and_request_values() {
        let caps = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let q = ThinkSupport::of("qwen3:8b", "qwen3", &caps(&["completion", "thinking"]));
        let g = ThinkSupport::of("gpt-oss:20b", "gptoss", &caps(&["completion", "thinking"]));
        let l = ThinkSupport::of("llama3.2:3b", "llama", &caps(&["completion"]));
        assert_eq!(
            (q, g, l),
            (
                ThinkSupport::Toggle,
                ThinkSupport::LevelsOnly,
                ThinkSupport::None
            )
        );
        assert_eq!(q.request(Think::Off), Some(Think::Off));
        assert_eq!(q.request(Think::High), Some(Think::On));
        assert_eq!(g.request(Think::Off), Some(Think::Low));
        assert_eq!(g.request(Think::High), Some(Think::High));
        assert_eq!(l.request(Think::On), None);
    }
}
