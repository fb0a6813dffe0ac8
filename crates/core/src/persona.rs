//! The runtime persona: a Markdown file with a small TOML front matter whose body becomes the
//! system prompt of every chat request.
//!
//! The system prompt is sent as `messages[0]` with role `system`, which replaces the model's
//! Modelfile `SYSTEM` (fact sheet §8), so any base model can carry the persona without
//! `ollama create`. The message is built once per load and borrowed into every request, so its
//! bytes are identical from request to request and llama-server keeps reusing the cached KV
//! prefix. [`PersonaSource`] picks up edits without a restart and keeps the last good persona
//! when the file is broken.
//!
//! File format (see `docs/personality.md`):
//!
//! ```text
//! +++
//! name = "Yollayah"
//! model = "llama3.2:3b"
//! [options]        # sampling, sent with each request
//! temperature = 0.7
//! [load]           # load-time options (num_ctx, …)
//! num_ctx = 8192
//! +++
//! You are Yollayah, …
//! ```

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::{Config, LoadOptions, line_col};
use crate::error::{Error, Result};
use crate::ollama::types::{Message, MessageRef, Options};

/// The persona shipped with Yollayah, used when the user has no persona file of their own.
pub const BUNDLED_PERSONA: &str = include_str!("../../../personality/yollayah.md");

/// The name [`Persona::parse`] reports for [`BUNDLED_PERSONA`].
pub const BUNDLED_SOURCE: &str = "<bundled personality/yollayah.md>";

/// Front matter delimiter, on a line of its own.
const FENCE: &str = "+++";

/// A parsed persona: who the assistant is, which model it runs on, and how it samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Persona {
    name: String,
    model: String,
    options: Options,
    load: LoadOptions,
    system: Message,
    source: String,
}

/// The TOML between the fences.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    name: String,
    model: String,
    #[serde(default)]
    options: SamplingOptions,
    #[serde(default)]
    load: LoadOptions,
}

/// `[options]`: per-request sampling options (`api.Options`). Typed so that a typo or a wrong
/// type is caught here rather than silently ignored by Ollama ("invalid option provided").
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SamplingOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    num_keep: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_predict: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    typical_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repeat_last_n: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repeat_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<Vec<String>>,
    // Load-time keys (`LOAD_TIME_OPTIONS`) are accepted by the parser only so that they can be
    // rejected with their position and a pointer to `[load]`, instead of "unknown field".
    #[serde(default, skip_serializing)]
    num_ctx: Option<toml::Spanned<toml::Value>>,
    #[serde(default, skip_serializing)]
    num_batch: Option<toml::Spanned<toml::Value>>,
    #[serde(default, skip_serializing)]
    num_gpu: Option<toml::Spanned<toml::Value>>,
    #[serde(default, skip_serializing)]
    main_gpu: Option<toml::Spanned<toml::Value>>,
    #[serde(default, skip_serializing)]
    use_mmap: Option<toml::Spanned<toml::Value>>,
    #[serde(default, skip_serializing)]
    num_thread: Option<toml::Spanned<toml::Value>>,
    #[serde(default, skip_serializing)]
    draft_num_predict: Option<toml::Spanned<toml::Value>>,
}

impl SamplingOptions {
    /// The first load-time key found in `[options]`, with its value's byte span.
    fn misplaced_load_key(&self) -> Option<(&'static str, &toml::Spanned<toml::Value>)> {
        [
            ("num_ctx", &self.num_ctx),
            ("num_batch", &self.num_batch),
            ("num_gpu", &self.num_gpu),
            ("main_gpu", &self.main_gpu),
            ("use_mmap", &self.use_mmap),
            ("num_thread", &self.num_thread),
            ("draft_num_predict", &self.draft_num_predict),
        ]
        .into_iter()
        .find_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }
}

impl Persona {
    /// Parses a persona file's text. `source_path` is only used in error messages and
    /// [`Persona::source`]. Errors carry the 1-based line and column in the file.
    pub fn parse(text: &str, source_path: impl AsRef<Path>) -> Result<Persona> {
        let source = source_path.as_ref().display().to_string();
        let err = |offset: Option<usize>, message: String| Error::Persona {
            path: source.clone(),
            line_col: offset.map(|o| line_col(text, o)),
            message,
        };
        let (fm_start, fm_end, body_start) =
            split_front_matter(text).map_err(|(o, m)| err(o, m))?;
        let front = &text[fm_start..fm_end];
        let fm: FrontMatter = toml::from_str(front).map_err(|e| {
            let offset = e.span().map(|s| fm_start + s.start);
            err(offset, e.message().trim_end().to_owned())
        })?;
        if let Some((key, value)) = fm.options.misplaced_load_key() {
            let offset = fm_start + value.span().start;
            return Err(err(
                Some(offset),
                format!(
                    "`{key} = {}` is a load-time option and does not belong in [options]: \
                     changing it reloads the model. Move it to the [load] table",
                    value.get_ref()
                ),
            ));
        }
        if fm.name.trim().is_empty() {
            return Err(err(Some(fm_start), "`name` must not be empty".into()));
        }
        if fm.model.trim().is_empty() {
            return Err(err(Some(fm_start), "`model` must not be empty".into()));
        }
        let body = text[body_start..].trim();
        if body.is_empty() {
            return Err(err(
                Some(body_start.min(text.len())),
                "the persona has no system prompt: write it after the closing `+++`".into(),
            ));
        }
        let options = match serde_json::to_value(&fm.options) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(other) => {
                return Err(err(None, format!("[options] is not a table: {other}")));
            }
            Err(e) => return Err(err(None, format!("[options]: {e}"))),
        };
        Ok(Persona {
            name: fm.name,
            model: fm.model,
            options,
            load: fm.load,
            system: Message::new("system", body),
            source,
        })
    }

    /// Reads and parses a persona file. A missing or non-UTF-8 file is an [`Error::Persona`].
    pub fn load(path: impl AsRef<Path>) -> Result<Persona> {
        let path = path.as_ref();
        let text = read_text(path)?;
        Persona::parse(&text, path)
    }

    /// The persona compiled into the binary ([`BUNDLED_PERSONA`]).
    pub fn bundled() -> Result<Persona> {
        Persona::parse(BUNDLED_PERSONA, BUNDLED_SOURCE)
    }

    /// The persona's display name (`name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The base model the persona was written for (`model`); the config may override it.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Sampling options from `[options]`, ready to send. Never contains load-time keys.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Load-time options from `[load]`.
    pub fn load_options(&self) -> &LoadOptions {
        &self.load
    }

    /// The file (or [`BUNDLED_SOURCE`]) this persona was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The system prompt (the body, trimmed).
    pub fn system_prompt(&self) -> &str {
        &self.system.content
    }

    /// The request's `messages[0]`: role `system`, built once per load so that every request
    /// carries byte-identical text and Ollama's prompt cache is reused.
    pub fn system_message(&self) -> &Message {
        &self.system
    }

    /// Options for a request: the sampling options plus `load` (the persona's `[load]`
    /// already merged with any config overrides by the caller). Use the same `load` for the
    /// warm-up call, or the first chat reloads the model (fact sheet §5).
    pub fn request_options(&self, load: &LoadOptions) -> Options {
        let mut options = self.options.clone();
        load.insert_into(&mut options);
        options
    }

    /// A request's messages: the system message, then `history`, then `user`, all borrowed.
    pub fn compose<'a>(&'a self, history: &'a [Message], user: &'a Message) -> Vec<MessageRef<'a>> {
        let mut messages = Vec::with_capacity(history.len() + 2);
        messages.push(MessageRef::from(&self.system));
        messages.extend(history.iter().map(MessageRef::from));
        messages.push(MessageRef::from(user));
        messages
    }

    /// Like [`Persona::compose`] but owned, for [`crate::ollama::types::ChatRequest`]. Copies
    /// the prompt and history; prefer `compose` on hot paths.
    pub fn compose_owned(&self, history: &[Message], user: Message) -> Vec<Message> {
        let mut messages = Vec::with_capacity(history.len() + 2);
        messages.push(self.system.clone());
        messages.extend_from_slice(history);
        messages.push(user);
        messages
    }
}

/// Finds the front matter: returns (toml start, toml end, body start) as byte offsets, or the
/// offset and text of what is wrong.
fn split_front_matter(
    text: &str,
) -> std::result::Result<(usize, usize, usize), (Option<usize>, String)> {
    let start = if text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let mut offset = start;
    let mut lines = text[start..].split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if first.trim_end() != FENCE {
        return Err((
            Some(start),
            format!(
                "a persona file must start with a `{FENCE}` line opening its TOML front matter"
            ),
        ));
    }
    offset += first.len();
    let fm_start = offset;
    for line in lines {
        if line.trim_end() == FENCE {
            return Ok((fm_start, offset, offset + line.len()));
        }
        offset += line.len();
    }
    Err((
        Some(start),
        format!("the front matter opened with `{FENCE}` here is never closed by a `{FENCE}` line"),
    ))
}

/// Reads a persona file as UTF-8, with errors that say which file and where.
fn read_text(path: &Path) -> Result<String> {
    let shown = path.display().to_string();
    let bytes = fs::read(path).map_err(|source| {
        if source.kind() == ErrorKind::NotFound {
            Error::Persona {
                path: shown.clone(),
                line_col: None,
                message: "file not found".into(),
            }
        } else {
            Error::Io {
                path: shown.clone(),
                source,
            }
        }
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]);
        Error::Persona {
            path: shown,
            line_col: Some(line_col(&prefix, valid)),
            message: "the file is not valid UTF-8; save it as UTF-8".into(),
        }
    })
}

/// What a [`PersonaSource`] check found.
#[derive(Debug, Clone)]
pub enum Refresh {
    /// Checked less than the minimum interval ago; nothing was looked at.
    Skipped,
    /// The file's modification time and length are unchanged (or the persona is bundled).
    Unchanged,
    /// The file changed and the new persona is now current.
    Reloaded,
    /// The file is missing or broken; the last good persona stays current.
    Failed(Arc<Error>),
}

/// Modification time and length: cheap to read, and a change in either means "re-read".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

#[derive(Debug)]
struct State {
    current: Arc<Persona>,
    stamp: Option<Stamp>,
    last_check: Instant,
    last_error: Option<Arc<Error>>,
}

/// The current persona, re-read when its file changes. Cheap to call on every request: at most
/// one `stat` per `min_interval` (500 ms by default), and a re-parse only when the file's
/// modification time or length changed. Share it behind an `Arc`; methods take `&self`.
#[derive(Debug)]
pub struct PersonaSource {
    path: Option<PathBuf>,
    min_interval: Duration,
    state: Mutex<State>,
}

impl PersonaSource {
    /// Default minimum time between two looks at the file.
    pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_millis(500);

    /// Loads the persona at `path` and watches it. The first load must succeed.
    pub fn open(path: impl Into<PathBuf>) -> Result<PersonaSource> {
        let path = path.into();
        let stamp = stamp_of(&path).ok();
        let persona = Persona::load(&path)?;
        Ok(PersonaSource::new(Some(path), persona, stamp))
    }

    /// The bundled persona; never changes.
    pub fn bundled() -> Result<PersonaSource> {
        Ok(PersonaSource::new(None, Persona::bundled()?, None))
    }

    /// The persona the config selects: `[persona] file`, else the user's
    /// `yollayah/persona.md` in the config dir if it exists, else the bundled one.
    pub fn from_config(config: &Config) -> Result<PersonaSource> {
        match config.persona_path() {
            Some(path) => PersonaSource::open(path),
            None => PersonaSource::bundled(),
        }
    }

    /// Changes the minimum interval between two looks at the file (tests use zero).
    pub fn with_min_interval(mut self, min_interval: Duration) -> PersonaSource {
        self.min_interval = min_interval;
        self
    }

    fn new(path: Option<PathBuf>, persona: Persona, stamp: Option<Stamp>) -> PersonaSource {
        PersonaSource {
            path,
            min_interval: Self::DEFAULT_MIN_INTERVAL,
            state: Mutex::new(State {
                current: Arc::new(persona),
                stamp,
                last_check: Instant::now(),
                last_error: None,
            }),
        }
    }

    /// The watched file, or `None` for the bundled persona.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The current persona after a rate-limited check for edits. Never fails: a broken file
    /// keeps the last good persona (see [`PersonaSource::last_error`]).
    pub fn current(&self) -> Arc<Persona> {
        let mut state = self.lock();
        self.check(&mut state, false);
        Arc::clone(&state.current)
    }

    /// Checks for edits now unless the last check was less than the minimum interval ago.
    pub fn refresh(&self) -> Refresh {
        let mut state = self.lock();
        self.check(&mut state, false)
    }

    /// Checks for edits now, ignoring the rate limit.
    pub fn force_refresh(&self) -> Refresh {
        let mut state = self.lock();
        self.check(&mut state, true)
    }

    /// Why the file on disk is not the current persona, if it is not.
    pub fn last_error(&self) -> Option<Arc<Error>> {
        self.lock().last_error.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated (every field is
        // assigned whole), so a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self, state: &mut State, force: bool) -> Refresh {
        let Some(path) = &self.path else {
            return Refresh::Unchanged;
        };
        let now = Instant::now();
        if !force && now.duration_since(state.last_check) < self.min_interval {
            return Refresh::Skipped;
        }
        state.last_check = now;
        let stamp = match stamp_of(path) {
            Ok(stamp) => stamp,
            Err(e) => {
                // Forget the stamp so that the file reappearing counts as a change.
                state.stamp = None;
                return self.fail(state, e);
            }
        };
        if state.stamp == Some(stamp) {
            return Refresh::Unchanged;
        }
        // Record the stamp even if parsing fails, so a broken file is parsed once per edit
        // rather than on every check.
        state.stamp = Some(stamp);
        match Persona::load(path) {
            Ok(persona) => {
                if state.last_error.take().is_some() {
                    tracing::info!(path = %path.display(), "persona file fixed, reloaded");
                }
                state.current = Arc::new(persona);
                Refresh::Reloaded
            }
            Err(e) => self.fail(state, e),
        }
    }

    fn fail(&self, state: &mut State, e: Error) -> Refresh {
        let message = e.to_string();
        let is_new = state
            .last_error
            .as_ref()
            .is_none_or(|old| old.to_string() != message);
        if is_new {
            tracing::warn!(error = %message, "persona file unusable; keeping the last good persona");
        }
        let e = Arc::new(e);
        state.last_error = Some(Arc::clone(&e));
        Refresh::Failed(e)
    }
}

fn stamp_of(path: &Path) -> Result<Stamp> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
        }),
        Err(source) if source.kind() == ErrorKind::NotFound => Err(Error::Persona {
            path: path.display().to_string(),
            line_col: None,
            message: "file not found".into(),
        }),
        Err(source) => Err(Error::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}
