//! The app context every command starts from: the config file, the Ollama URL and client,
//! the persona and the model profile, resolved once and the same way for every command, so
//! `status`, `doctor`, `warm`, `chat` and `watch` always talk about the same server and model.

use std::path::PathBuf;
use std::sync::Arc;

use yollayah_core::config::Config;
use yollayah_core::ollama::client::{ClientConfig, OllamaClient};
use yollayah_core::persona::PersonaSource;
use yollayah_core::profile::ModelProfile;

use crate::error::{CliError, Result};

/// The global options, shared by every command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Globals {
    /// Ollama server URL; default: config `[ollama] url`, else OLLAMA_HOST with the official
    /// client's rules.
    #[arg(
        long,
        global = true,
        env = "YOLLAYAH_OLLAMA_URL",
        conflicts_with = "host"
    )]
    pub url: Option<String>,
    /// A `[[hosts]]` entry of the config (`local` is the `[ollama]` server): its Ollama, and
    /// its agent when it has one (status, doctor, warm and unload then ask the agent).
    #[arg(long, global = true, value_name = "NAME", env = "YOLLAYAH_HOST")]
    pub host: Option<String>,
    /// Config file; default: $XDG_CONFIG_HOME/yollayah/config.toml.
    #[arg(long, global = true, value_name = "PATH", env = "YOLLAYAH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Model to use instead of the config's / persona's (doctor: the model to check).
    #[arg(long, global = true)]
    pub model: Option<String>,
}

/// What the config says, plus the client built from it.
#[derive(Debug)]
pub struct Context {
    pub config: Config,
    /// `--model`, if given.
    pub model_override: Option<String>,
    pub client: OllamaClient,
}

impl Globals {
    /// The config file this invocation reads.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config.clone().or_else(Config::default_path)
    }

    /// The Ollama URL this invocation names: `--url`, else the `--host` entry's `url`; `None`
    /// leaves it to `[ollama] url` and `OLLAMA_HOST`.
    pub fn ollama_url(&self, config: &Config) -> Result<Option<String>> {
        if self.url.is_some() {
            return Ok(self.url.clone());
        }
        Ok(crate::host::named(self, config)?.map(|h| h.url.clone()))
    }

    /// Loads the config; a bad file is [`CliError::BadInput`] naming the key and line.
    pub fn load_config(&self) -> Result<Config> {
        match self.config_path() {
            Some(path) => Config::load(&path).map_err(CliError::BadInput),
            None => Ok(Config::default()),
        }
    }
}

impl Context {
    /// Loads the config and builds the client.
    pub fn load(globals: &Globals) -> Result<Context> {
        let config = globals.load_config()?;
        let client = client_for(globals.ollama_url(&config)?.as_deref(), &config)?;
        Ok(Context {
            config,
            model_override: globals.model.clone(),
            client,
        })
    }

    /// The persona, from `[persona] file`, the config dir or the bundled one.
    pub fn persona(&self) -> Result<Arc<PersonaSource>> {
        PersonaSource::from_config(&self.config)
            .map(Arc::new)
            .map_err(CliError::BadInput)
    }

    /// The model profile (config over persona), with `--model` applied last.
    pub fn profile(&self, persona: &PersonaSource) -> ModelProfile {
        let p = ModelProfile::resolve(&self.config, &persona.current());
        match &self.model_override {
            Some(model) => ModelProfile::new(model.clone(), p.keep_alive, p.load),
            None => p,
        }
    }
}

/// The server URL: `--url` wins, then `[ollama] url`, then `OLLAMA_HOST` (official rules).
pub fn resolve_url(flag: Option<&str>, config: &Config) -> Result<String> {
    ClientConfig::from_config(config, flag)
        .map(|c| c.base_url)
        .map_err(CliError::BadInput)
}

/// A client for the resolved URL with the config's deadlines.
pub fn client_for(flag: Option<&str>, config: &Config) -> Result<OllamaClient> {
    ClientConfig::from_config(config, flag)
        .and_then(OllamaClient::new)
        .map_err(CliError::BadInput)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_config_url() {
        let mut config = Config::default();
        config.ollama.url = Some("http://10.0.0.2:9999".into());
        assert_eq!(
            resolve_url(Some("127.0.0.1:1234"), &config).unwrap(),
            "http://127.0.0.1:1234"
        );
        assert_eq!(resolve_url(None, &config).unwrap(), "http://10.0.0.2:9999");
        config.ollama.url = Some("ftp://nope".into());
        assert!(matches!(
            resolve_url(None, &config),
            Err(CliError::BadInput(_))
        ));
    }

    #[test]
    fn client_takes_config_timeouts() {
        let mut config = Config::default();
        config.ollama.connect_timeout_ms = 123;
        config.ollama.load_timeout_s = 7;
        let c = client_for(Some("http://127.0.0.1:1"), &config).unwrap();
        assert_eq!(c.config().connect_timeout.as_millis(), 123);
        assert_eq!(c.config().load_timeout.as_secs(), 7);
    }
}
