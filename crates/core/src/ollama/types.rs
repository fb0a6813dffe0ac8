//! Serde types of Ollama's wire format (`api/types.go`).
//!
//! Deserialisation is tolerant: unknown fields are ignored and every optional field may be
//! absent, because users run many Ollama versions. Serialisation of requests omits what is
//! unset, because Ollama treats "absent" differently from a zero value (notably `keep_alive`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// `GET /api/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResponse {
    pub version: String,
}

/// `details` of a model in `/api/tags`, `/api/show` and `/api/ps`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelDetails {
    /// For a model made by `ollama create FROM base`, the base's name; often `""`.
    pub parent_model: String,
    pub format: String,
    pub family: String,
    #[serde(deserialize_with = "null_as_default")]
    pub families: Vec<String>,
    pub parameter_size: String,
    pub quantization_level: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_length: Option<u64>,
}

/// `GET /api/tags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TagsResponse {
    #[serde(deserialize_with = "null_as_default")]
    pub models: Vec<TagModel>,
}

/// One entry of `/api/tags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TagModel {
    pub name: String,
    pub model: String,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub modified_at: Option<OffsetDateTime>,
    pub size: u64,
    pub digest: String,
    pub details: ModelDetails,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub capabilities: Vec<String>,
}

/// `POST /api/show` request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShowRequest<'a> {
    pub model: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub verbose: bool,
}

/// `POST /api/show` response. `tensors` is deliberately not modelled: it can be megabytes and
/// nothing in Yollayah needs it, so serde skips it without allocating a tree.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShowResponse {
    pub license: String,
    /// Starts with a comment header, then `FROM <absolute blob path>`.
    pub modelfile: String,
    /// One option per line, parsed by [`crate::ollama::params::Parameters`].
    pub parameters: String,
    pub template: String,
    pub system: String,
    pub details: ModelDetails,
    /// GGUF key/values (`general.architecture`, `<arch>.block_count`, …). Always present
    /// upstream, `{}` when empty.
    #[serde(deserialize_with = "null_as_default")]
    pub model_info: BTreeMap<String, Value>,
    /// GGUF key/values of a separate vision projector (`clip.*`, `general.parameter_count`);
    /// vision models with an mmproj file only.
    #[serde(
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub projector_info: BTreeMap<String, Value>,
    #[serde(deserialize_with = "null_as_default")]
    pub capabilities: Vec<String>,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub modified_at: Option<OffsetDateTime>,
}

/// `GET /api/ps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PsResponse {
    #[serde(deserialize_with = "null_as_default")]
    pub models: Vec<PsModel>,
}

/// One loaded model in `/api/ps`. There is no pid: runners are matched by blob path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PsModel {
    pub name: String,
    pub model: String,
    /// Bytes in total (GPU + CPU buffers).
    pub size: u64,
    /// Bytes of `size` that sit in GPU memory.
    pub size_vram: u64,
    pub digest: String,
    pub details: ModelDetails,
    /// In the server's local zone; ~292 years ahead for keep_alive forever.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// Per-slot `num_ctx` after capping to the training context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
}

/// `keep_alive` as Ollama's JSON decoder accepts it (fact sheet §4).
#[derive(Debug, Clone, PartialEq)]
pub enum KeepAlive {
    /// Seconds, possibly fractional. Negative means forever, 0 unloads.
    Seconds(f64),
    /// A Go duration string with a unit (`"5m"`, `"24h"`, `"-1m"`, `"0"`).
    Duration(String),
}

impl KeepAlive {
    /// Keep the model loaded until evicted (`-1`).
    pub const FOREVER: KeepAlive = KeepAlive::Seconds(-1.0);
    /// Unload right after the request (`0`).
    pub const UNLOAD: KeepAlive = KeepAlive::Seconds(0.0);
}

impl Serialize for KeepAlive {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // Whole seconds go out as integers: `-1`, not `-1.0`, which is what people expect
            // when they read a request in a log or a capture.
            KeepAlive::Seconds(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => {
                s.serialize_i64(*v as i64)
            }
            KeepAlive::Seconds(v) => s.serialize_f64(*v),
            KeepAlive::Duration(d) => s.serialize_str(d),
        }
    }
}

impl<'de> Deserialize<'de> for KeepAlive {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_f64()
                .map(KeepAlive::Seconds)
                .ok_or_else(|| serde::de::Error::custom("keep_alive is not a finite number")),
            Value::String(s) => Ok(KeepAlive::Duration(s)),
            other => Err(serde::de::Error::custom(format!(
                "keep_alive must be a number of seconds or a duration string, got {other}"
            ))),
        }
    }
}

/// Request options (`api.Options` + `api.Runner`). Kept as a JSON map so that the exact bytes
/// sent are under the caller's control and unknown keys pass through.
pub type Options = serde_json::Map<String, Value>;

/// Option keys that are fixed when a runner is loaded; any difference forces a reload
/// (`sched.go` `needsReload`, fact sheet §5).
pub const LOAD_TIME_OPTIONS: &[&str] = &[
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "use_mmap",
    "num_thread",
    "draft_num_predict",
];

/// One chat message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    pub role: String,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub images: Vec<String>,
}

impl Message {
    /// A message with `role` and `content` only.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
            ..Message::default()
        }
    }
}

/// A request-side message that borrows its text, so composing a request does not copy the
/// persona's system prompt or the history. Serialises to exactly the same JSON as the
/// [`Message`] it was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MessageRef<'a> {
    pub role: &'a str,
    pub content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub images: &'a [String],
}

impl<'a> From<&'a Message> for MessageRef<'a> {
    fn from(m: &'a Message) -> Self {
        MessageRef {
            role: &m.role,
            content: &m.content,
            thinking: m.thinking.as_deref(),
            images: &m.images,
        }
    }
}

/// `POST /api/chat` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
    /// Absent: Ollama turns thinking on for models with the `thinking` capability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think: Option<Think>,
}

/// The `think` request field: a bool, or a level (fact sheet §2). Levels are for models that
/// take them (gpt-oss); other thinking models treat a level as `true`. gpt-oss cannot turn
/// thinking off: it ignores `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Think {
    Off,
    On,
    Low,
    Medium,
    High,
}

impl Think {
    /// The level name (`"low"`, `"medium"`, `"high"`), `None` for the bool forms.
    pub fn level(self) -> Option<&'static str> {
        match self {
            Think::Low => Some("low"),
            Think::Medium => Some("medium"),
            Think::High => Some("high"),
            Think::On | Think::Off => None,
        }
    }

    /// Parses a config/UI value: `true`/`on`, `false`/`off`, or a level (`max` = `high`).
    pub fn parse(text: &str) -> Option<Think> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" => Think::On,
            "false" | "off" | "no" => Think::Off,
            "low" => Think::Low,
            "medium" => Think::Medium,
            "high" | "max" => Think::High,
            _ => return None,
        })
    }
}

impl Serialize for Think {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Think::Off => s.serialize_bool(false),
            Think::On => s.serialize_bool(true),
            level => s.serialize_str(level.level().unwrap_or("medium")),
        }
    }
}

impl<'de> Deserialize<'de> for Think {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(true) => Ok(Think::On),
            Value::Bool(false) => Ok(Think::Off),
            Value::String(s) => Think::parse(&s)
                .filter(|t| t.level().is_some())
                .ok_or_else(|| serde::de::Error::custom(format!("invalid think value {s:?}"))),
            other => Err(serde::de::Error::custom(format!(
                "invalid think value {other}"
            ))),
        }
    }
}

/// `POST /api/pull` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest<'a> {
    pub model: &'a str,
    pub stream: bool,
}

/// One line of a `/api/pull` progress stream (`api.ProgressResponse`): `status` always;
/// `digest`, `total`, `completed` while a layer downloads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PullProgress {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
    /// Ollama's `{"error": …}` inside the 200 stream (e.g. an unknown model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /api/embed` request, as Yollayah sends it: without `input`, which only loads the model
/// (fact sheet §10: embedding models cannot be loaded through generate or chat).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbedLoadRequest<'a> {
    pub model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
}

/// Whether `/api/show` `capabilities` describe an embedding-only model, which answers
/// generate and chat with 400.
pub fn is_embedding_only(capabilities: &[String]) -> bool {
    capabilities.iter().any(|c| c == "embedding") && !capabilities.iter().any(|c| c == "completion")
}

/// `POST /api/generate` request (used by Yollayah for load/unload only).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GenerateRequest {
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
}

/// Metrics carried by the final chunk of a generate or chat stream. Durations are integer
/// nanoseconds on the wire (Go `time.Duration`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_duration: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_duration: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_eval_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_eval_duration: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_duration: Option<u64>,
}

impl Metrics {
    /// Generation speed from `eval_count / eval_duration`, if both are known and non-zero.
    pub fn tokens_per_second(&self) -> Option<f64> {
        match (self.eval_count, self.eval_duration) {
            (Some(n), Some(ns)) if ns > 0 => Some(n as f64 * 1e9 / ns as f64),
            _ => None,
        }
    }
}

/// One chunk of a `/api/chat` stream (or the single non-streamed object).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, from = "wire::ChatChunkWire")]
pub struct ChatChunk {
    pub model: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    pub message: Option<Message>,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Set when the line was Ollama's mid-stream `{"error": …}` (fact sheet §3); the stream
    /// decoder turns it into [`crate::Error::StreamError`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One chunk of a `/api/generate` stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, from = "wire::GenerateChunkWire")]
pub struct GenerateChunk {
    pub model: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    pub response: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Set when the line was Ollama's mid-stream `{"error": …}` (fact sheet §3); the stream
    /// decoder turns it into [`crate::Error::StreamError`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Flat mirrors of the chunk types for deserialising. `#[serde(flatten)]` makes serde buffer
/// every field into an intermediate map first, which costs more than the parse itself on the
/// per-token hot path; these read the same JSON in one pass.
mod wire {
    use serde::Deserialize;

    use super::{ChatChunk, GenerateChunk, Message, Metrics};

    #[derive(Default, Deserialize)]
    #[serde(default)]
    pub(super) struct ChatChunkWire {
        model: String,
        created_at: String,
        message: Option<Message>,
        done: bool,
        done_reason: Option<String>,
        error: Option<String>,
        total_duration: Option<u64>,
        load_duration: Option<u64>,
        prompt_eval_count: Option<u64>,
        prompt_eval_duration: Option<u64>,
        eval_count: Option<u64>,
        eval_duration: Option<u64>,
    }

    impl From<ChatChunkWire> for ChatChunk {
        fn from(w: ChatChunkWire) -> Self {
            ChatChunk {
                model: w.model,
                created_at: w.created_at,
                message: w.message,
                done: w.done,
                done_reason: w.done_reason,
                metrics: Metrics {
                    total_duration: w.total_duration,
                    load_duration: w.load_duration,
                    prompt_eval_count: w.prompt_eval_count,
                    prompt_eval_duration: w.prompt_eval_duration,
                    eval_count: w.eval_count,
                    eval_duration: w.eval_duration,
                },
                error: w.error,
            }
        }
    }

    #[derive(Default, Deserialize)]
    #[serde(default)]
    pub(super) struct GenerateChunkWire {
        model: String,
        created_at: String,
        response: String,
        thinking: Option<String>,
        done: bool,
        done_reason: Option<String>,
        error: Option<String>,
        total_duration: Option<u64>,
        load_duration: Option<u64>,
        prompt_eval_count: Option<u64>,
        prompt_eval_duration: Option<u64>,
        eval_count: Option<u64>,
        eval_duration: Option<u64>,
    }

    impl From<GenerateChunkWire> for GenerateChunk {
        fn from(w: GenerateChunkWire) -> Self {
            GenerateChunk {
                model: w.model,
                created_at: w.created_at,
                response: w.response,
                thinking: w.thinking,
                done: w.done,
                done_reason: w.done_reason,
                metrics: Metrics {
                    total_duration: w.total_duration,
                    load_duration: w.load_duration,
                    prompt_eval_count: w.prompt_eval_count,
                    prompt_eval_duration: w.prompt_eval_duration,
                    eval_count: w.eval_count,
                    eval_duration: w.eval_duration,
                },
                error: w.error,
            }
        }
    }
}

/// `{"error": "..."}`, the body of every Ollama error and of a mid-stream error line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// Treats JSON `null` like an absent field (Go marshals nil slices and maps as `null`).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_entry_from_real_server_shape() {
        let json = r#"{"models":[{"name":"llama3.2:3b","model":"llama3.2:3b","size":3596372992,
            "size_vram":3596372992,"digest":"a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],
            "parameter_size":"3.2B","quantization_level":"Q4_K_M"},
            "expires_at":"2319-03-03T12:00:00.123456789+01:00","context_length":8192,"future":1}]}"#;
        let ps: PsResponse = serde_json::from_str(json).unwrap();
        let m = &ps.models[0];
        assert_eq!(m.size, m.size_vram);
        assert_eq!(m.context_length, Some(8192));
        assert_eq!(m.expires_at.unwrap().year(), 2319);
        assert_eq!(m.details.families, vec!["llama"]);
    }

    #[test]
    fn absent_and_null_fields_default() {
        let ps: PsResponse = serde_json::from_str(r#"{"models":null}"#).unwrap();
        assert!(ps.models.is_empty());
        let m: PsModel = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert_eq!((m.size, m.expires_at, m.context_length), (0, None, None));
        let s: ShowResponse =
            serde_json::from_str(r#"{"model_info":null,"tensors":[{}]}"#).unwrap();
        assert!(s.model_info.is_empty());
    }

    #[test]
    fn keep_alive_serialises_like_ollama_expects() {
        let j = |k: KeepAlive| serde_json::to_string(&k).unwrap();
        assert_eq!(j(KeepAlive::FOREVER), "-1");
        assert_eq!(j(KeepAlive::UNLOAD), "0");
        assert_eq!(j(KeepAlive::Seconds(1.5)), "1.5");
        assert_eq!(j(KeepAlive::Duration("5m".into())), "\"5m\"");
        let back: KeepAlive = serde_json::from_str("\"24h\"").unwrap();
        assert_eq!(back, KeepAlive::Duration("24h".into()));
        assert!(serde_json::from_str::<KeepAlive>("true").is_err());
    }

    #[test]
    fn request_omits_unset_fields() {
        let req = ChatRequest {
            model: "m".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"model":"m","messages":[]}"#
        );
    }

    #[test]
    fn chunks_round_trip_through_the_flat_wire_form() {
        let chat = ChatChunk {
            model: "m".into(),
            created_at: "2026-11-21T10:00:00Z".into(),
            message: Some(Message::new("assistant", "hi")),
            done: true,
            done_reason: Some("stop".into()),
            metrics: Metrics {
                eval_count: Some(7),
                total_duration: Some(9),
                ..Metrics::default()
            },
            error: None,
        };
        let text = serde_json::to_string(&chat).unwrap();
        assert!(text.contains(r#""eval_count":7"#), "{text}");
        assert_eq!(serde_json::from_str::<ChatChunk>(&text).unwrap(), chat);

        let generate = GenerateChunk {
            model: "m".into(),
            response: "x".into(),
            thinking: Some("t".into()),
            metrics: Metrics {
                prompt_eval_duration: Some(3),
                ..Metrics::default()
            },
            error: Some("boom".into()),
            ..GenerateChunk::default()
        };
        let text = serde_json::to_string(&generate).unwrap();
        assert_eq!(
            serde_json::from_str::<GenerateChunk>(&text).unwrap(),
            generate
        );
        let err: ChatChunk = serde_json::from_str(r#"{"error":"e"}"#).unwrap();
        assert_eq!(err.error.as_deref(), Some("e"));
    }

    #[test]
    fn final_chunk_metrics_and_speed() {
        let c: ChatChunk = serde_json::from_str(
            r#"{"model":"m","created_at":"2026-11-21T10:00:00Z","message":{"role":"assistant","content":""},
            "done":true,"done_reason":"stop","total_duration":2000000000,"load_duration":1000000,
            "prompt_eval_count":26,"prompt_eval_duration":130000000,"eval_count":100,"eval_duration":1000000000}"#,
        )
        .unwrap();
        assert_eq!(c.done_reason.as_deref(), Some("stop"));
        assert_eq!(c.metrics.tokens_per_second(), Some(100.0));
    }
}
