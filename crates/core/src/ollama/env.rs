//! The Ollama server's environment variables that change placement (`OLLAMA_NUM_PARALLEL`,
//! `OLLAMA_CONTEXT_LENGTH`, …). Its own module so that both the diagnosis and the capture
//! bundle can use it without importing each other.

use serde::{Deserialize, Serialize};

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
