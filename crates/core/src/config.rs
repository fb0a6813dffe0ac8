//! Yollayah's settings: a typed TOML file at `$XDG_CONFIG_HOME/yollayah/config.toml`.
//!
//! Every section and key is optional and its default lives here, in code. Unknown keys are
//! errors (a typo must not be silently ignored), and every error names the key, quotes the
//! value and gives `line:column`. `docs/configuration.md` documents each key.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::ollama::client::ClientConfig;
use crate::ollama::host;
use crate::ollama::types::{KeepAlive, Options};
use crate::shortcut::{Binding, DEFAULT_TOGGLE_CHAT};

/// The whole config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[ollama]`: where the server is and how long to wait for it.
    pub ollama: OllamaConfig,
    /// `[model]`: which model, how long it stays loaded, load-time overrides.
    pub model: ModelConfig,
    /// `[watchdog]`: the observation loop and re-warming.
    pub watchdog: WatchdogConfig,
    /// `[alerts]`: desktop notifications.
    pub alerts: AlertsConfig,
    /// `[persona]`: which persona file.
    pub persona: PersonaConfig,
    /// `[history]`: where conversations are stored.
    pub history: HistoryConfig,
    /// `[shortcut]`: the desktop's global shortcut for the chat popup.
    pub shortcut: ShortcutConfig,
    /// `[[hosts]]`: other machines' Ollama servers (and their agents), chosen with `--host`.
    /// The `[ollama]` server is the implicit default host, named [`LOCAL_HOST`].
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "hosts")]
    pub hosts: Vec<HostConfig>,
}

/// The name of the implicit default host: the `[ollama]` server.
pub const LOCAL_HOST: &str = "local";

/// One `[[hosts]]` entry. `name` and `url` are required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawHost")]
pub struct HostConfig {
    /// What `--host` and the tray call it.
    pub name: String,
    /// The host's Ollama server, in `OLLAMA_HOST` syntax.
    pub url: String,
    /// The `yollayah agent` on that host (`http(s)://host:port`), if one runs there. Without
    /// one, placement on a remote host cannot be verified (only `/api/ps` is visible).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_url: Option<String>,
    /// File holding the agent's read token (or its write token, to warm and unload through
    /// it); it must not be readable by group or others (mode 0600 or 0400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// `[[hosts]]` as written, checked field by field so each error points at its key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    #[serde(deserialize_with = "host_name")]
    name: String,
    #[serde(deserialize_with = "ollama_url")]
    url: String,
    #[serde(default, deserialize_with = "agent_url")]
    agent_url: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
}

impl TryFrom<RawHost> for HostConfig {
    type Error = String;
    fn try_from(raw: RawHost) -> std::result::Result<Self, String> {
        if raw.token_file.is_some() && raw.agent_url.is_none() {
            return Err(format!(
                "host {:?} has `token_file` but no `agent_url`; the token is for the agent",
                raw.name
            ));
        }
        Ok(HostConfig {
            name: raw.name,
            url: raw.url,
            agent_url: raw.agent_url,
            token_file: raw.token_file,
        })
    }
}

/// `[ollama]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OllamaConfig {
    /// Server URL; `None` means "resolve `OLLAMA_HOST` like the official client".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// TCP connect timeout.
    #[serde(deserialize_with = "positive_u64")]
    pub connect_timeout_ms: u64,
    /// Deadline for non-streaming calls (`/api/ps`, `/api/show`, …).
    #[serde(deserialize_with = "positive_u64")]
    pub request_timeout_ms: u64,
    /// Longest silence tolerated between two chunks of a stream.
    #[serde(deserialize_with = "positive_u64")]
    pub stream_idle_timeout_s: u64,
    /// Deadline for loading a model (warm-up), which can take minutes from a cold disk.
    #[serde(deserialize_with = "positive_u64")]
    pub load_timeout_s: u64,
}

impl Default for OllamaConfig {
    fn default() -> Self {
        OllamaConfig {
            url: None,
            connect_timeout_ms: 2_000,
            request_timeout_ms: 10_000,
            stream_idle_timeout_s: 120,
            load_timeout_s: 600,
        }
    }
}

impl OllamaConfig {
    /// [`OllamaConfig::connect_timeout_ms`] as a `Duration`.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// [`OllamaConfig::request_timeout_ms`] as a `Duration`.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    /// [`OllamaConfig::stream_idle_timeout_s`] as a `Duration`.
    pub fn stream_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.stream_idle_timeout_s)
    }
    /// [`OllamaConfig::load_timeout_s`] as a `Duration`.
    pub fn load_timeout(&self) -> Duration {
        Duration::from_secs(self.load_timeout_s)
    }
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Overrides the persona's `model`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sent with every warm-up and chat request. Default: forever (`-1`).
    #[serde(deserialize_with = "keep_alive")]
    pub keep_alive: KeepAlive,
    /// `[model.load]`: load-time options; each one set here overrides the persona's `[load]`.
    pub load: LoadOptions,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            name: None,
            keep_alive: KeepAlive::FOREVER,
            load: LoadOptions::default(),
        }
    }
}

/// Load-time options (`api.Runner`, fact sheet §5). Any difference between two requests makes
/// Ollama reload the model, so warm-up and chat must send the same set. `None` = not sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    /// Context length per slot, in tokens.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "num_ctx")]
    pub num_ctx: Option<u32>,
    /// Prompt processing batch size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_batch: Option<u32>,
    /// Number of layers on the GPU (not GPUs!): -1 automatic, 0 CPU only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_gpu: Option<i32>,
    /// Pins the model to one GPU (index within the backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_gpu: Option<u32>,
    /// Memory-map the weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_mmap: Option<bool>,
    /// CPU threads; 0 = automatic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_thread: Option<u32>,
    /// Tokens drafted per step with a draft model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft_num_predict: Option<u32>,
}

impl LoadOptions {
    /// `self` with every option that `over` sets replaced by `over`'s value.
    pub fn merged(&self, over: &LoadOptions) -> LoadOptions {
        LoadOptions {
            num_ctx: over.num_ctx.or(self.num_ctx),
            num_batch: over.num_batch.or(self.num_batch),
            num_gpu: over.num_gpu.or(self.num_gpu),
            main_gpu: over.main_gpu.or(self.main_gpu),
            use_mmap: over.use_mmap.or(self.use_mmap),
            num_thread: over.num_thread.or(self.num_thread),
            draft_num_predict: over.draft_num_predict.or(self.draft_num_predict),
        }
    }

    /// Adds the set options to a request's `options` map.
    pub fn insert_into(&self, options: &mut Options) {
        let mut put = |k: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                options.insert(k.to_owned(), v);
            }
        };
        put("num_ctx", self.num_ctx.map(Into::into));
        put("num_batch", self.num_batch.map(Into::into));
        put("num_gpu", self.num_gpu.map(Into::into));
        put("main_gpu", self.main_gpu.map(Into::into));
        put("use_mmap", self.use_mmap.map(Into::into));
        put("num_thread", self.num_thread.map(Into::into));
        put("draft_num_predict", self.draft_num_predict.map(Into::into));
    }

    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        *self == LoadOptions::default()
    }
}

/// `[watchdog]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchdogConfig {
    /// Interval between two observations; at least [`WatchdogConfig::MIN_TICK_MS`].
    #[serde(deserialize_with = "tick_ms")]
    pub tick_ms: u64,
    /// Load the model again when it was evicted or expired.
    pub rewarm: bool,
    /// Longest wait between two failed re-warm attempts (the backoff doubles up to this).
    #[serde(deserialize_with = "positive_u64")]
    pub rewarm_backoff_max_s: u64,
}

impl WatchdogConfig {
    /// Below this a tick costs more than it tells.
    pub const MIN_TICK_MS: u64 = 250;

    /// [`WatchdogConfig::tick_ms`] as a `Duration`.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }
    /// [`WatchdogConfig::rewarm_backoff_max_s`] as a `Duration`.
    pub fn rewarm_backoff_max(&self) -> Duration {
        Duration::from_secs(self.rewarm_backoff_max_s)
    }
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            tick_ms: 2_000,
            rewarm: true,
            rewarm_backoff_max_s: 300,
        }
    }
}

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Send desktop notifications at all.
    pub enabled: bool,
    /// Minimum time between two alerts about the same model.
    pub cooldown_s: u64,
    /// Alert when a model is partly on the CPU (not only fully on the CPU).
    pub on_partial: bool,
    /// A partial placement with less of the model on the CPU than this is not alerted.
    #[serde(deserialize_with = "percent")]
    pub min_cpu_pct: f64,
}

impl AlertsConfig {
    /// [`AlertsConfig::cooldown_s`] as a `Duration`.
    pub fn cooldown(&self) -> Duration {
        Duration::from_secs(self.cooldown_s)
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            enabled: true,
            cooldown_s: 60,
            on_partial: true,
            min_cpu_pct: 5.0,
        }
    }
}

/// `[persona]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersonaConfig {
    /// Persona file; see [`Config::persona_path`] for the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// `[history]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// SQLite file; see [`Config::history_path`] for the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// `[shortcut]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShortcutConfig {
    /// Opens the chat popup, or closes it when open: a shortcut such as `"Super+Y"`, or
    /// `"off"`.
    pub toggle_chat: Binding,
}

impl Default for ShortcutConfig {
    fn default() -> Self {
        ShortcutConfig {
            toggle_chat: Binding::On(DEFAULT_TOGGLE_CHAT),
        }
    }
}

impl Config {
    /// `$XDG_CONFIG_HOME/yollayah/config.toml` (`dirs::config_dir`), if a home is known.
    pub fn default_path() -> Option<PathBuf> {
        dirs::config_dir().map(|d| d.join("yollayah").join("config.toml"))
    }

    /// Loads [`Config::default_path`]; defaults when there is no such file or no home.
    pub fn load_default() -> Result<Config> {
        match Config::default_path() {
            Some(path) => Config::load(&path),
            None => Ok(Config::default()),
        }
    }

    /// Loads `path`. A missing file means "all defaults" and is not an error.
    pub fn load(path: &Path) -> Result<Config> {
        let shown = path.display().to_string();
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => {
                return Err(Error::Io {
                    path: shown,
                    source,
                });
            }
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]);
            Error::Config {
                path: shown.clone(),
                line_col: Some(line_col(&prefix, valid)),
                message: "the file is not valid UTF-8".into(),
            }
        })?;
        Config::parse(&text, path)
    }

    /// Parses config text; `source_path` is only used in error messages.
    pub fn parse(text: &str, source_path: &Path) -> Result<Config> {
        toml::from_str(text).map_err(|e| {
            let span = e.span();
            let message = e.message().trim_end();
            let (line_col, context) = match span {
                Some(span) => (
                    Some(line_col(text, span.start)),
                    describe_key(text, span.start),
                ),
                None => (None, String::new()),
            };
            Error::Config {
                path: source_path.display().to_string(),
                line_col,
                message: format!("{context}{message}"),
            }
        })
    }

    /// The `[[hosts]]` entry named `name`; [`Error::UnknownHost`] lists the known names.
    pub fn host(&self, name: &str) -> Result<&HostConfig> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| Error::UnknownHost {
                name: name.to_owned(),
                known: std::iter::once(LOCAL_HOST.to_owned())
                    .chain(self.hosts.iter().map(|h| h.name.clone()))
                    .collect(),
            })
    }

    /// The persona file to use: `[persona] file`, else `yollayah/persona.md` in the config dir
    /// if it exists, else `None` (the bundled persona).
    pub fn persona_path(&self) -> Option<PathBuf> {
        if let Some(file) = &self.persona.file {
            return Some(file.clone());
        }
        dirs::config_dir()
            .map(|d| d.join("yollayah").join("persona.md"))
            .filter(|p| p.is_file())
    }

    /// The history database: `[history] path`, else `$XDG_DATA_HOME/yollayah/history.sqlite3`.
    pub fn history_path(&self) -> Option<PathBuf> {
        self.history
            .path
            .clone()
            .or_else(|| dirs::data_dir().map(|d| d.join("yollayah").join("history.sqlite3")))
    }

    /// The effective config as TOML (for `yollayah config show`): defaults filled in, the
    /// persona and history paths resolved. `[ollama] url` stays absent when unset, because
    /// `OLLAMA_HOST` is resolved elsewhere.
    pub fn to_toml_string(&self) -> Result<String> {
        let mut effective = self.clone();
        effective.persona.file = self.persona_path();
        effective.history.path = self.history_path();
        toml::to_string(&effective).map_err(|e| Error::Config {
            path: "<effective config>".into(),
            line_col: None,
            message: e.to_string(),
        })
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

/// "`[section] key = value`: " for the line holding byte `offset`, so that a message says which
/// key and quotes what was written even when the parser only reports a type.
fn describe_key(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    let Some((key, value)) = line.split_once('=') else {
        // A table header such as `[gpu]`: quote it as written.
        return if line.starts_with('[') {
            format!("`{line}`: ")
        } else {
            String::new()
        };
    };
    let key = key.trim();
    let value = value.trim();
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .and_then(|l| l.split('#').next())
        .map(|l| format!("{} ", l.trim()))
        .unwrap_or_default();
    format!("`{section}{key} = {value}`: ")
}

fn host_name<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let v = String::deserialize(d)?;
    if v.is_empty() || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(serde::de::Error::custom(
            "must be a non-empty name without spaces (it is what `--host` takes)",
        ));
    }
    if v == LOCAL_HOST {
        return Err(serde::de::Error::custom(format!(
            "{LOCAL_HOST:?} is the `[ollama]` server's name; pick another"
        )));
    }
    Ok(v)
}

fn ollama_url<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let v = String::deserialize(d)?;
    host::parse_host(&v).map_err(|e| serde::de::Error::custom(e.to_string()))?;
    Ok(v)
}

fn agent_url<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let v = String::deserialize(d)?;
    check_agent_url(&v).map_err(serde::de::Error::custom)?;
    Ok(Some(v))
}

/// Names must be unique: `--host NAME` must mean one machine.
fn hosts<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<HostConfig>, D::Error> {
    let v = Vec::<HostConfig>::deserialize(d)?;
    for (i, h) in v.iter().enumerate() {
        if v[..i].iter().any(|o| o.name == h.name) {
            return Err(serde::de::Error::custom(format!(
                "two `[[hosts]]` are named {:?}; names must be unique",
                h.name
            )));
        }
    }
    Ok(v)
}

fn positive_u64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    if v == 0 {
        return Err(serde::de::Error::custom("must be greater than 0 (got 0)"));
    }
    Ok(v)
}

fn tick_ms<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    if v < WatchdogConfig::MIN_TICK_MS {
        return Err(serde::de::Error::custom(format!(
            "must be at least {} ms (got {v})",
            WatchdogConfig::MIN_TICK_MS
        )));
    }
    Ok(v)
}

fn percent<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !(0.0..=100.0).contains(&v) {
        return Err(serde::de::Error::custom(format!(
            "must be a percentage from 0 to 100 (got {v})"
        )));
    }
    Ok(v)
}

fn num_ctx<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    let v = u32::deserialize(d)?;
    // Ollama's own minimum (fact sheet §5); 0 would mean "automatic" elsewhere, so say so.
    if v < 4 {
        return Err(serde::de::Error::custom(format!(
            "must be at least 4 tokens (got {v}); leave it out for Ollama's default"
        )));
    }
    Ok(Some(v))
}

/// `keep_alive` in the forms Ollama's JSON decoder accepts (fact sheet §4): a number of seconds
/// or a Go duration string with a unit.
fn keep_alive<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<KeepAlive, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Float(f64),
        Text(String),
    }
    match Raw::deserialize(d).map_err(|_| {
        serde::de::Error::custom(
            "must be a number of seconds (300, -1 for forever) or a duration with a unit (\"5m\")",
        )
    })? {
        Raw::Int(v) => Ok(KeepAlive::Seconds(v as f64)),
        Raw::Float(v) if v.is_finite() => Ok(KeepAlive::Seconds(v)),
        Raw::Float(v) => Err(serde::de::Error::custom(format!(
            "must be a finite number of seconds (got {v})"
        ))),
        Raw::Text(s) => match parse_go_duration(&s) {
            Ok(_) => Ok(KeepAlive::Duration(s)),
            Err(reason) => Err(serde::de::Error::custom(reason)),
        },
    }
}

/// Validates a duration the way Go's `time.ParseDuration` does and returns it in nanoseconds.
/// Ollama rejects (HTTP 400) any `keep_alive` string this rejects.
pub fn parse_go_duration(s: &str) -> std::result::Result<i128, String> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(format!("{s:?} is not a duration"));
    }
    if rest.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "{s:?} has no unit; Ollama rejects a duration string without one. Write {rest} \
             (a number, in seconds) or \"{rest}s\""
        ));
    }
    let mut total: i128 = 0;
    let mut rest = rest;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
            return Err(format!("{s:?} is not a duration: bad number {number:?}"));
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "{s:?} is not a duration: missing unit after {number}"
                ));
            }
            other => {
                return Err(format!(
                    "{s:?} is not a duration: unknown unit {other:?} (use ns, us, ms, s, m or h)"
                ));
            }
        };
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part
                .parse()
                .map_err(|_| format!("{s:?} is not a duration: number too large"))?
        };
        let mut frac_ns: i128 = 0;
        let mut div: i128 = 1;
        for b in frac_part.bytes().take(18) {
            frac_ns = frac_ns * 10 + i128::from(b - b'0');
            div *= 10;
        }
        total = int
            .checked_mul(scale)
            .and_then(|v| v.checked_add(frac_ns * scale / div))
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= i128::from(i64::MAX))
            .ok_or_else(|| format!("{s:?} is not a duration: too large"))?;
    }
    Ok(if neg { -total } else { total })
}

// Here rather than in `ollama/client.rs`, so the client does not depend on the config (the
// config already depends on the Ollama types).
impl ClientConfig {
    /// The client settings the app and the CLI use: the server is `url` (a command-line flag or
    /// a test hook) when given, else the config's `[ollama] url`, else `OLLAMA_HOST` (the
    /// official client rules); the deadlines are the config's.
    pub fn from_config(config: &Config, url: Option<&str>) -> Result<ClientConfig> {
        let host = match url.or(config.ollama.url.as_deref()) {
            Some(u) => host::parse_host(u)?,
            None => host::from_env()?,
        };
        let o = &config.ollama;
        Ok(ClientConfig {
            connect_timeout: o.connect_timeout(),
            request_timeout: o.request_timeout(),
            load_timeout: o.load_timeout(),
            stream_idle_timeout: o.stream_idle_timeout(),
            ..ClientConfig::new(host.connectable_url())
        })
    }
}

/// Checks an agent URL: `http(s)://host[:port]`, nothing after the path.
pub fn check_agent_url(url: &str) -> std::result::Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| {
        format!("{url:?} is not a URL ({e}); write the agent's address as http://host:9811")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{url:?} must start with http:// or https:// (the agent's address, e.g. http://gpu-box:9811)"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("{url:?} must not have a query or fragment"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for (s, ns) in [
            ("5m", 300_000_000_000i128),
            ("0", 0),
            ("-0", 0),
            ("0s", 0),
            ("-1m", -60_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("1.s", 1_000_000_000),
            ("300ms", 300_000_000),
            ("2µs", 2_000),
            ("24h", 86_400_000_000_000),
        ] {
            assert_eq!(parse_go_duration(s), Ok(ns), "{s}");
        }
        for s in [
            "", "-", "300", "-1", "1.5", "5x", "m", ".s", "1..5s", "3000000h",
        ] {
            assert!(parse_go_duration(s).is_err(), "{s} should fail");
        }
        assert!(parse_go_duration("300").unwrap_err().contains("no unit"));
    }

    #[test]
    fn line_col_counts_characters() {
        let text = "a = 1\nµb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 6 + "µb".len()), (2, 3));
    }

    #[test]
    fn load_options_merge_and_insert() {
        let persona = LoadOptions {
            num_ctx: Some(8192),
            num_batch: Some(512),
            ..LoadOptions::default()
        };
        let config = LoadOptions {
            num_ctx: Some(4096),
            use_mmap: Some(false),
            ..LoadOptions::default()
        };
        let merged = persona.merged(&config);
        assert_eq!(merged.num_ctx, Some(4096));
        assert_eq!(merged.num_batch, Some(512));
        assert_eq!(merged.use_mmap, Some(false));
        let mut options = Options::new();
        merged.insert_into(&mut options);
        assert_eq!(
            serde_json::Value::Object(options).to_string(),
            r#"{"num_batch":512,"num_ctx":4096,"use_mmap":false}"#
        );
    }
}
