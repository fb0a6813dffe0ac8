//! Scenario: the simulated machine (GPUs, other VRAM users), the model catalog and the server's
//! tunables, deserialised from TOML. Every key is optional; defaults live in code.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, SimError};

/// What the simulator answers in generated text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyMode {
    /// Always answer [`Scenario::reply`].
    #[default]
    Canned,
    /// Answer with the last user message (or the generate prompt).
    Echo,
}

/// One simulated GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// Marketing name as NVML reports it.
    #[serde(default = "default_gpu_name")]
    pub name: String,
    /// Total memory in bytes.
    #[serde(default = "default_gpu_total")]
    pub memory_total: u64,
    /// NVML UUID; generated from the index when absent.
    #[serde(default)]
    pub uuid: Option<String>,
}

impl Default for GpuSpec {
    fn default() -> Self {
        GpuSpec {
            name: default_gpu_name(),
            memory_total: default_gpu_total(),
            uuid: None,
        }
    }
}

/// A process other than Ollama's runners that holds GPU memory (a browser, a game, python).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherProcess {
    /// Process name (`firefox`, `python3`).
    pub name: String,
    /// Process id.
    pub pid: u32,
    /// GPU memory it holds, in bytes; always counted in the GPU's `memory_used`.
    #[serde(alias = "used_memory")]
    pub bytes: u64,
    /// `"compute"` or `"graphics"`.
    #[serde(default = "default_process_kind")]
    pub kind: String,
    /// GPU index the memory sits on.
    #[serde(default)]
    pub gpu: usize,
    /// Report `used_memory: null` (NVML "unavailable", as on Windows WDDM) although the bytes
    /// are still used.
    #[serde(default)]
    pub hide_usage: bool,
}

impl OtherProcess {
    /// A compute process on GPU 0 with known usage.
    pub fn new(name: impl Into<String>, pid: u32, bytes: u64) -> Self {
        OtherProcess {
            name: name.into(),
            pid,
            bytes,
            kind: default_process_kind(),
            gpu: 0,
            hide_usage: false,
        }
    }
}

/// A model in the catalog. For a derived model (`from = "base"`) every absent field is taken
/// from the base, and `parameters` are merged over the base's with the derived keys winning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSpec {
    /// Full name with tag, e.g. `llama3.2:3b`. A name without a tag gets `:latest`.
    pub name: String,
    /// Base model (ollama create `FROM <name>` semantics).
    pub from: Option<String>,
    /// Manifest digest (64 hex); derived from the name when absent.
    pub digest: Option<String>,
    /// Weights blob digest (64 hex); derived from the name when absent. Ignored for derived
    /// models, which share the base's blob.
    pub weights_digest: Option<String>,
    /// Weights file size in bytes.
    pub file_size: Option<u64>,
    /// `general.architecture`; defaults to `family`.
    pub arch: Option<String>,
    pub family: Option<String>,
    pub families: Option<Vec<String>>,
    pub parameter_size: Option<String>,
    pub parameter_count: Option<u64>,
    pub quantization: Option<String>,
    /// GGUF `general.file_type` (15 = Q4_K_M).
    pub file_type: Option<u64>,
    pub block_count: Option<u64>,
    /// Training context (`<arch>.context_length`).
    pub context_length: Option<u64>,
    pub embedding_length: Option<u64>,
    pub head_count: Option<u64>,
    pub head_count_kv: Option<u64>,
    pub key_length: Option<u64>,
    pub value_length: Option<u64>,
    pub capabilities: Option<Vec<String>>,
    pub template: Option<String>,
    pub system: Option<String>,
    pub license: Option<String>,
    /// Modelfile `PARAMETER`s (`num_ctx = 8192`, `stop = ["<|im_end|>"]`).
    pub parameters: BTreeMap<String, Value>,
    /// Extra GGUF keys merged into `model_info` verbatim.
    pub extra_model_info: BTreeMap<String, Value>,
    /// RFC 3339 time; a fixed date when absent.
    pub modified_at: Option<String>,
}

/// The whole simulated setup. See `docs/simulator.md` for every key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// `/api/version`.
    #[serde(default = "default_version")]
    pub version: String,
    /// `OLLAMA_MODELS`; blob paths are `<models_dir>/blobs/sha256-<hex>`.
    #[serde(default = "default_models_dir")]
    pub models_dir: String,
    /// `OLLAMA_CONTEXT_LENGTH`; absent = the VRAM tier (≥47 GiB → 262144, ≥23 GiB → 32768,
    /// else 4096).
    #[serde(default)]
    pub default_num_ctx: Option<u64>,
    /// `OLLAMA_NUM_PARALLEL`.
    #[serde(default = "default_parallel")]
    pub parallel: u64,
    /// `OLLAMA_MAX_LOADED_MODELS`; 0 = 3 × max(#GPUs, 1).
    #[serde(default = "default_max_loaded")]
    pub max_loaded_models: usize,
    /// llama.cpp fit margin per GPU (`LLAMA_ARG_FIT_TARGET`).
    #[serde(default = "default_fit_margin")]
    pub fit_margin_mib: u64,
    /// Compute buffers that go with a runner, on the GPU when any layer is offloaded.
    #[serde(default = "default_overhead")]
    pub compute_overhead_mib: u64,
    /// GPU memory a runner process holds beyond what `/api/ps` counts (CUDA context and
    /// runtime buffers), shown in the GPU view only. Measured with a CUDA llama-server and 0
    /// layers on an H200: 520–592 MiB.
    #[serde(default = "default_runtime_baseline")]
    pub runtime_baseline_mib: u64,
    /// `OLLAMA_KEEP_ALIVE` (Go duration or bare seconds; negative = forever).
    #[serde(default = "default_keep_alive")]
    pub default_keep_alive: String,
    /// How long a runner start takes.
    #[serde(default = "default_load_ms")]
    pub load_ms: u64,
    /// Generation speed of streamed tokens.
    #[serde(default = "default_tps")]
    pub tokens_per_second: f64,
    /// Prompt evaluation speed, for `prompt_eval_duration`.
    #[serde(default = "default_prompt_tps")]
    pub prompt_tokens_per_second: f64,
    /// Canned reply text.
    #[serde(default = "default_reply")]
    pub reply: String,
    /// `canned` or `echo`.
    #[serde(default)]
    pub reply_mode: ReplyMode,
    /// The reasoning trace models with the `thinking` capability stream (in
    /// `message.thinking` / `thinking`) before their reply. `think: "low"` sends its first
    /// sentence only, `"high"`/`"max"` adds a sentence.
    #[serde(default = "default_thinking")]
    pub thinking: String,
    /// Models `/api/pull` can fetch that are not installed yet; absent = the built-in
    /// registry (`src/default_registry.toml`). A pulled model joins `/api/tags`.
    #[serde(default = "default_registry")]
    pub registry: Vec<ModelSpec>,
    /// Download speed of `/api/pull`, in bytes per second.
    #[serde(default = "default_pull_rate")]
    pub pull_bytes_per_second: f64,
    /// NVIDIA driver version in the GPU view.
    #[serde(default = "default_driver")]
    pub driver_version: Option<String>,
    /// When set, the GPU view reports NVML unavailable with this reason.
    #[serde(default)]
    pub nvml_unavailable: Option<String>,
    /// Also list a short-lived discovery `llama-server` (no `--model`) among the runners.
    #[serde(default)]
    pub discovery_process: bool,
    /// The GPUs; empty = a CPU-only machine.
    #[serde(default = "default_gpus")]
    pub gpus: Vec<GpuSpec>,
    /// VRAM held by non-Ollama processes at start.
    #[serde(default)]
    pub other_processes: Vec<OtherProcess>,
    /// The catalog; absent = the built-in demo catalog (`src/default_catalog.toml`).
    #[serde(default = "default_models")]
    pub models: Vec<ModelSpec>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            version: default_version(),
            models_dir: default_models_dir(),
            default_num_ctx: None,
            parallel: default_parallel(),
            max_loaded_models: default_max_loaded(),
            fit_margin_mib: default_fit_margin(),
            compute_overhead_mib: default_overhead(),
            runtime_baseline_mib: default_runtime_baseline(),
            default_keep_alive: default_keep_alive(),
            load_ms: default_load_ms(),
            tokens_per_second: default_tps(),
            prompt_tokens_per_second: default_prompt_tps(),
            reply: default_reply(),
            reply_mode: ReplyMode::Canned,
            thinking: default_thinking(),
            registry: default_registry(),
            pull_bytes_per_second: default_pull_rate(),
            driver_version: default_driver(),
            nvml_unavailable: None,
            discovery_process: false,
            gpus: default_gpus(),
            other_processes: Vec::new(),
            models: default_models(),
        }
    }
}

impl Scenario {
    /// Parses a scenario; unknown keys are errors so typos do not pass silently.
    pub fn from_toml_str(s: &str) -> Result<Scenario> {
        let sc: Scenario = toml::from_str(s)?;
        // Resolve the catalog once so a broken `from` is reported at load, not per request.
        crate::catalog::Catalog::build(&sc)?;
        if sc.parallel == 0 {
            return Err(SimError::InvalidScenario(
                "parallel must be at least 1".into(),
            ));
        }
        if sc.tokens_per_second.is_nan()
            || sc.tokens_per_second <= 0.0
            || sc.prompt_tokens_per_second.is_nan()
            || sc.prompt_tokens_per_second <= 0.0
            || sc.pull_bytes_per_second.is_nan()
            || sc.pull_bytes_per_second <= 0.0
        {
            return Err(SimError::InvalidScenario(
                "tokens_per_second, prompt_tokens_per_second and pull_bytes_per_second must be > 0"
                    .into(),
            ));
        }
        crate::duration::parse_env_keep_alive(&sc.default_keep_alive).ok_or_else(|| {
            SimError::InvalidScenario(format!(
                "default_keep_alive {:?} is not a duration",
                sc.default_keep_alive
            ))
        })?;
        Ok(sc)
    }

    /// Reads and parses a scenario file.
    pub fn from_file(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::ReadScenario {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::from_toml_str(&text)
    }

    /// Effective `OLLAMA_MAX_LOADED_MODELS`.
    pub fn max_loaded(&self) -> usize {
        if self.max_loaded_models == 0 {
            3 * self.gpus.len().max(1)
        } else {
            self.max_loaded_models
        }
    }

    /// Whether Ollama's GPU discovery drops every GPU because the driver is older than its CUDA
    /// build accepts: from 0.30 on, below the 570 branch ("NVIDIA driver too old …
    /// required_driver=570 or newer", ollama/ollama#16415, #17290). The GPUs stay visible to
    /// NVML (`/__sim/gpu`); Ollama just runs everything on the CPU.
    pub fn driver_too_old(&self) -> bool {
        let number = |s: &str| s.trim().parse::<u32>().ok();
        let mut v = self.version.split(['.', '-']);
        let (major, minor) = (v.next().and_then(number), v.next().and_then(number));
        let new_enough = matches!((major, minor), (Some(a), Some(b)) if (a, b) >= (0, 30));
        let driver = self
            .driver_version
            .as_deref()
            .and_then(|d| d.split('.').next())
            .and_then(number);
        new_enough && driver.is_some_and(|d| d < 570)
    }

    /// The GPUs Ollama itself can use (none when discovery dropped them).
    pub fn usable_gpus(&self) -> &[GpuSpec] {
        if self.driver_too_old() {
            &[]
        } else {
            &self.gpus
        }
    }

    /// Effective default context: explicit, else the VRAM tier of Ollama's `Serve` over the
    /// GPUs it discovered.
    pub fn default_ctx(&self) -> u64 {
        if let Some(c) = self.default_num_ctx {
            return c;
        }
        const GIB: u64 = 1 << 30;
        let total: u64 = self.usable_gpus().iter().map(|g| g.memory_total).sum();
        if total >= 47 * GIB {
            262_144
        } else if total >= 23 * GIB {
            32_768
        } else {
            4096
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    models: Vec<ModelSpec>,
}

fn default_models() -> Vec<ModelSpec> {
    // The built-in catalog is a checked-in file covered by a unit test, so a parse failure can
    // only come from editing it without running tests; an empty catalog is the safe fallback.
    toml::from_str::<CatalogFile>(include_str!("default_catalog.toml"))
        .map(|c| c.models)
        .unwrap_or_default()
}

fn default_registry() -> Vec<ModelSpec> {
    // Same reasoning as the catalog: a checked-in file covered by a unit test.
    toml::from_str::<CatalogFile>(include_str!("default_registry.toml"))
        .map(|c| c.models)
        .unwrap_or_default()
}

fn default_thinking() -> String {
    "The user said hello. I should greet them back and offer help. A short, friendly answer \
     is enough."
        .into()
}
fn default_pull_rate() -> f64 {
    200e6
}

fn default_gpu_name() -> String {
    "NVIDIA GeForce RTX 4070".into()
}
fn default_gpu_total() -> u64 {
    12_878_610_432
}
fn default_gpus() -> Vec<GpuSpec> {
    vec![GpuSpec::default()]
}
fn default_process_kind() -> String {
    "compute".into()
}
fn default_version() -> String {
    "0.33.0".into()
}
fn default_models_dir() -> String {
    "/usr/share/ollama/.ollama/models".into()
}
fn default_parallel() -> u64 {
    1
}
fn default_max_loaded() -> usize {
    3
}
fn default_fit_margin() -> u64 {
    1024
}
fn default_runtime_baseline() -> u64 {
    560
}

fn default_overhead() -> u64 {
    384
}
fn default_keep_alive() -> String {
    "5m".into()
}
fn default_load_ms() -> u64 {
    1200
}
fn default_tps() -> f64 {
    200.0
}
fn default_prompt_tps() -> f64 {
    2000.0
}
fn default_reply() -> String {
    "Hello! I'm running locally on your machine. How can I help you today?".into()
}
fn default_driver() -> Option<String> {
    Some("580.65.06".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_driver_hides_the_gpus_from_ollama_0_30_on() {
        let with = |version: &str, driver: Option<&str>| Scenario {
            version: version.into(),
            driver_version: driver.map(str::to_owned),
            ..Scenario::default()
        };
        for (version, driver, dropped) in [
            ("0.32.1", Some("535.309.01"), true),
            ("0.30.0-rc2", Some("569.99"), true),
            ("0.30.0", Some("570.86.10"), false),
            ("0.29.9", Some("535.309.01"), false),
            ("0.33.0", None, false),
        ] {
            let sc = with(version, driver);
            assert_eq!(sc.driver_too_old(), dropped, "{version} {driver:?}");
            assert_eq!(sc.usable_gpus().is_empty(), dropped);
            assert!(!sc.gpus.is_empty(), "NVML still sees them");
        }
        assert_eq!(with("0.32.1", Some("535.1")).default_ctx(), 4096);
    }

    #[test]
    fn builtin_catalog_parses_and_resolves() {
        let parsed: CatalogFile =
            toml::from_str(include_str!("default_catalog.toml")).expect("catalog parses");
        assert!(parsed.models.len() >= 3);
        let sc = Scenario::default();
        assert_eq!(sc.models, parsed.models);
        crate::catalog::Catalog::build(&sc).expect("catalog resolves");
    }

    #[test]
    fn builtin_registry_parses_and_resolves() {
        let parsed: CatalogFile =
            toml::from_str(include_str!("default_registry.toml")).expect("registry parses");
        assert!(!parsed.models.is_empty());
        let sc = Scenario::default();
        assert_eq!(sc.registry, parsed.models);
        crate::catalog::Catalog::build_registry(&sc).expect("registry resolves");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Scenario::from_toml_str("parralel = 2").expect_err("typo must fail");
        assert!(err.to_string().contains("parralel"), "{err}");
    }

    #[test]
    fn bad_from_is_rejected() {
        let err = Scenario::from_toml_str("[[models]]\nname = \"a\"\nfrom = \"nope\"\n")
            .expect_err("unknown base");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn vram_tier_default_context() {
        let mut sc = Scenario::default();
        assert_eq!(sc.default_ctx(), 4096);
        sc.gpus = vec![GpuSpec {
            memory_total: 24 << 30,
            ..GpuSpec::default()
        }];
        assert_eq!(sc.default_ctx(), 32_768);
        sc.default_num_ctx = Some(8192);
        assert_eq!(sc.default_ctx(), 8192);
    }
}
