//! `yollayah config path|show|check`: where the config lives, what Yollayah actually uses
//! (defaults filled in, persona and profile resolved), and whether the files are valid.

use serde::Serialize;
use yollayah_core::persona::PersonaSource;
use yollayah_core::profile::ModelProfile;

use crate::context::{Globals, resolve_url};
use crate::error::{CliError, Result};
use crate::exit;

/// `config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the config file path (it need not exist: then every value is a default).
    Path,
    /// Print the effective config as TOML, then the resolved model profile and persona.
    Show,
    /// Validate the config and the persona file; exit 0, or 8 with the error (line:column).
    Check,
}

/// What `show` adds after the TOML, as TOML comments would hide it from tools.
#[derive(Debug, Serialize)]
struct Resolved<'a> {
    ollama_url: String,
    persona_file: String,
    profile: &'a ModelProfile,
}

/// Runs `config`.
pub fn run(globals: &Globals, command: Command) -> Result<u8> {
    match command {
        Command::Path => {
            match globals.config_path() {
                Some(p) => println!("{}", p.display()),
                None => {
                    eprintln!("yollayah: no config directory (no home); pass --config PATH");
                    return Ok(exit::BAD_INPUT);
                }
            }
            Ok(exit::OK)
        }
        Command::Show => {
            let config = globals.load_config()?;
            let persona = PersonaSource::from_config(&config).map_err(CliError::BadInput)?;
            let mut profile = ModelProfile::resolve(&config, &persona.current());
            if let Some(model) = &globals.model {
                profile = ModelProfile::new(model.clone(), profile.keep_alive, profile.load);
            }
            let resolved = Resolved {
                ollama_url: resolve_url(globals.ollama_url(&config)?.as_deref(), &config)?,
                persona_file: persona
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| persona.current().source().to_owned()),
                profile: &profile,
            };
            if let Some(p) = globals.config_path() {
                let state = if p.is_file() {
                    ""
                } else {
                    " (absent: defaults)"
                };
                println!("# {}{state}", p.display());
            }
            print!("{}", config.to_toml_string()?);
            println!();
            println!("# Resolved (what warm-up and every chat send)");
            println!("{}", to_toml(&resolved)?);
            Ok(exit::OK)
        }
        Command::Check => {
            let config = globals.load_config()?;
            let persona = PersonaSource::from_config(&config).map_err(CliError::BadInput)?;
            // A watched persona file keeps its last good version on a bad edit; `check` must
            // see the file as it is now.
            if let Some(e) = persona.last_error() {
                eprintln!("yollayah: {e}");
                return Ok(exit::BAD_INPUT);
            }
            let shown = globals
                .config_path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "<defaults>".into());
            println!("config {shown}: OK");
            println!(
                "persona {}: OK (model {})",
                persona
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| persona.current().source().to_owned()),
                persona.current().model()
            );
            Ok(exit::OK)
        }
    }
}

fn to_toml(value: &impl Serialize) -> Result<String> {
    // Going through JSON keeps `keep_alive` exactly as it is sent on the wire (-1, "5m").
    let json = serde_json::to_value(value)?;
    toml::to_string(&json).map_err(|e| {
        CliError::Output(std::io::Error::other(format!(
            "cannot format the resolved profile: {e}"
        )))
    })
}
