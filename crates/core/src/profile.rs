//! The one source of the model and its load-time options.
//!
//! Ollama reloads a model whenever a request's load-time options differ from the loaded
//! runner's (fact sheet §5), so the warm-up call and every chat request must send exactly the
//! same set. [`ModelProfile`] is resolved once (persona `[load]`, overridden by the config's
//! `[model.load]`) and both [`crate::watchdog`] and [`crate::chat`] take their options from it;
//! nothing else in the core puts load-time keys into a request.

use serde::Serialize;

use crate::config::{Config, LoadOptions};
use crate::ollama::types::{KeepAlive, LOAD_TIME_OPTIONS, Options};
use crate::persona::Persona;

/// Which model Yollayah keeps warm and chats with, and how it is loaded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelProfile {
    /// The model name as sent to Ollama.
    pub model: String,
    /// Sent with every warm-up and chat request.
    #[serde(serialize_with = "keep_alive_json")]
    pub keep_alive: KeepAlive,
    /// The load-time options, typed.
    pub load: LoadOptions,
    /// The same, as the request `options` map, built once.
    #[serde(skip)]
    load_options: Options,
}

fn keep_alive_json<S: serde::Serializer>(k: &KeepAlive, s: S) -> Result<S::Ok, S::Error> {
    k.serialize(s)
}

impl ModelProfile {
    /// A profile from explicit parts.
    pub fn new(model: impl Into<String>, keep_alive: KeepAlive, load: LoadOptions) -> Self {
        let mut load_options = Options::new();
        load.insert_into(&mut load_options);
        ModelProfile {
            model: model.into(),
            keep_alive,
            load,
            load_options,
        }
    }

    /// Resolves the profile: the config's model name and `[model.load]` win over the
    /// persona's `model` and `[load]`.
    pub fn resolve(config: &Config, persona: &Persona) -> Self {
        let model = config
            .model
            .name
            .clone()
            .unwrap_or_else(|| persona.model().to_owned());
        let load = persona.load_options().merged(&config.model.load);
        ModelProfile::new(model, config.model.keep_alive.clone(), load)
    }

    /// The same profile for another model: the keep_alive and load options are the user's
    /// choice for "the model Yollayah keeps", so switching models keeps them (a switch must not
    /// change what a load asks for behind the user's back).
    pub fn with_model(&self, model: impl Into<String>) -> Self {
        ModelProfile {
            model: model.into(),
            ..self.clone()
        }
    }

    /// The load-time options as a request `options` map (what the warm-up sends).
    pub fn load_options(&self) -> &Options {
        &self.load_options
    }

    /// Options for a chat request: `sampling` (per-request, may differ freely) plus the
    /// load-time options. A load-time key inside `sampling` is dropped, so a caller can never
    /// make a chat reload the model by accident.
    pub fn chat_options(&self, sampling: &Options) -> Options {
        let mut out = Options::new();
        for (k, v) in sampling {
            if !LOAD_TIME_OPTIONS.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in &self.load_options {
            out.insert(k.clone(), v.clone());
        }
        out
    }

    /// The `num_ctx` the profile loads with, if it sets one.
    pub fn num_ctx(&self) -> Option<u64> {
        self.load.num_ctx.map(u64::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_options_never_change_load_time_keys() {
        let load = LoadOptions {
            num_ctx: Some(8192),
            ..LoadOptions::default()
        };
        let p = ModelProfile::new("llama3.2:3b", KeepAlive::FOREVER, load);
        let mut sampling = Options::new();
        sampling.insert("temperature".into(), json!(0.7));
        sampling.insert("num_ctx".into(), json!(131072));
        let chat = p.chat_options(&sampling);
        assert_eq!(chat.get("num_ctx"), Some(&json!(8192)));
        assert_eq!(chat.get("temperature"), Some(&json!(0.7)));
        // Warm-up and chat agree on every load-time key.
        for k in LOAD_TIME_OPTIONS {
            assert_eq!(chat.get(*k), p.load_options().get(*k), "{k}");
        }
    }
}
