//! The Ollama server's environment variables that change placement (`OLLAMA_NUM_PARALLEL`,
//! `OLLAMA_CONTEXT_LENGTH`, …). Its own module so that both the diagnosis and the capture
//! bundle can use it without importing each other.

use serde::{Deserialize, Serialize};

/// Where an [`OllamaEnv`] was read. A service (systemd unit, docker) has its own environment,
/// so ours says nothing about it; the running `ollama serve`'s `/proc/<pid>/environ` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvSource {
    /// This process's environment: the server's could not be read (`note` says why), the
    /// server is remote, or the bundle predates the field.
    Ours {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// `/proc/<pid>/environ` of the running `ollama serve`.
    Server { pid: u32 },
}

impl Default for EnvSource {
    fn default() -> Self {
        EnvSource::Ours { note: None }
    }
}

impl EnvSource {
    /// One line for evidence: which environment a finding rests on.
    pub fn label(&self) -> String {
        match self {
            EnvSource::Server { pid } => format!("ollama serve (pid {pid})"),
            EnvSource::Ours { note: Some(n) } => {
                format!("our own environment, maybe not the server's ({n})")
            }
            EnvSource::Ours { note: None } => {
                "our own environment, maybe not the server's".to_owned()
            }
        }
    }

    /// True when the values are the server's own.
    pub fn is_server(&self) -> bool {
        matches!(self, EnvSource::Server { .. })
    }
}

/// The running server's environment as a process scan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEnv {
    /// Read from the server's `/proc/<pid>/environ` (its source is [`EnvSource::Server`]).
    Read(OllamaEnv),
    /// Not read, and why: no `ollama serve` seen, several and none a runner's parent,
    /// unreadable (another user without root), another OS, or nothing local to read.
    Missing(String),
}

impl ServerEnv {
    /// The server's environment if it was read, else `ours` marked with why it stands in.
    pub fn or_ours(&self, ours: &OllamaEnv) -> OllamaEnv {
        match self {
            ServerEnv::Read(env) => env.clone(),
            ServerEnv::Missing(why) => ours.as_ours(why.clone()),
        }
    }
}

/// The Ollama-related environment of the server, as far as it is known. Keys in JSON are the
/// variable names, plus `source` (where they were read). The values are raw strings; diagnosis
/// parses them the way Ollama does.
///
/// Read from the running `ollama serve` where this machine can (local scope, same user or
/// root), else from this process, which for a service is not the server's; the runner's argv
/// (`-c`, `-np`, `--cache-type-k`) is preferred wherever it exists either way.
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
    /// Where the values above were read.
    pub source: EnvSource,
}

impl OllamaEnv {
    /// Reads the variables from this process's environment.
    pub fn from_process_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The variables of a `/proc/<pid>/environ` text (`KEY=value` entries separated by NUL),
    /// marked as the server's. The first entry of a name wins, as with glibc's `getenv`.
    pub fn from_environ(pid: u32, environ: &[u8]) -> Self {
        let mut env = Self::from_lookup(|k| {
            environ.split(|b| *b == 0).find_map(|e| {
                let rest = e.strip_prefix(k.as_bytes())?.strip_prefix(b"=")?;
                Some(String::from_utf8_lossy(rest).into_owned())
            })
        });
        env.source = EnvSource::Server { pid };
        env
    }

    /// The same values, marked as read from this process with `note` saying why.
    pub fn as_ours(&self, note: impl Into<String>) -> Self {
        OllamaEnv {
            source: EnvSource::Ours {
                note: Some(note.into()),
            },
            ..self.clone()
        }
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        OllamaEnv {
            num_parallel: get("OLLAMA_NUM_PARALLEL"),
            kv_cache_type: get("OLLAMA_KV_CACHE_TYPE"),
            flash_attention: get("OLLAMA_FLASH_ATTENTION"),
            context_length: get("OLLAMA_CONTEXT_LENGTH"),
            max_loaded_models: get("OLLAMA_MAX_LOADED_MODELS"),
            keep_alive: get("OLLAMA_KEEP_ALIVE"),
            llama_arg_fit_target: get("LLAMA_ARG_FIT_TARGET"),
            cuda_visible_devices: get("CUDA_VISIBLE_DEVICES"),
            source: EnvSource::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environ_text_is_parsed_and_marked_as_the_server_s() {
        let text = b"PATH=/usr/bin\0OLLAMA_NUM_PARALLEL=4\0CUDA_VISIBLE_DEVICES=1,0\0OLLAMA_NUM_PARALLELX=9\0HOME=/usr/share/ollama\0OLLAMA_CONTEXT_LENGTH=\0";
        let env = OllamaEnv::from_environ(77, text);
        assert_eq!(env.num_parallel.as_deref(), Some("4"));
        assert_eq!(env.cuda_visible_devices.as_deref(), Some("1,0"));
        // Set but empty is set (Ollama reads it as unset, diagnosis does the same).
        assert_eq!(env.context_length.as_deref(), Some(""));
        assert_eq!(env.kv_cache_type, None);
        assert_eq!(env.source, EnvSource::Server { pid: 77 });
        assert_eq!(env.source.label(), "ollama serve (pid 77)");
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["source"]["kind"], "server");
        assert_eq!(json["source"]["pid"], 77);
        assert_eq!(json["OLLAMA_NUM_PARALLEL"], "4");
        let back: OllamaEnv = serde_json::from_value(json).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn a_bundle_without_source_was_read_from_our_environment() {
        let env: OllamaEnv = serde_json::from_str(r#"{"OLLAMA_NUM_PARALLEL":"2"}"#).unwrap();
        assert_eq!(env.source, EnvSource::Ours { note: None });
        assert!(!env.source.is_server());
        let noted = env.as_ours("ollama serve (pid 9): permission denied");
        assert_eq!(noted.num_parallel.as_deref(), Some("2"));
        assert!(noted.source.label().contains("permission denied"));
    }
}
