//! `yollayah chat` and `yollayah history`: the terminal face of [`ChatEngine`]. One-shot with a
//! message, a line-by-line REPL without one. Replies stream to stdout as they arrive; the
//! figures (time to first token, tokens/s, load time) go to stderr so a pipe gets only text.
//! Ctrl-C cancels the reply in progress; what arrived stays in history, marked incomplete.
//! A thinking model's trace goes to stderr (dimmed when stderr is a terminal) before the
//! reply, or nowhere with `--no-thinking`.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use yollayah_core::chat::{
    ChatEngine, Outgoing, ReplyEvent, ReplyOutcome, ReplyStats, SharedHistory,
};
use yollayah_core::history::{ConversationId, History};
use yollayah_core::images::PreparedImage;
use yollayah_core::ollama::types::Think;

use crate::context::{Context, Globals};
use crate::error::{CliError, Result};
use crate::exit;

/// Arguments of `chat`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// The message; without one, read messages line by line from stdin (`/new` starts a new
    /// conversation, end of input quits).
    message: Vec<String>,
    /// Continue this conversation (an id from `yollayah history`).
    #[arg(long, value_name = "ID")]
    conversation: Option<i64>,
    /// Keep nothing: use an in-memory history for this run.
    #[arg(long)]
    no_history: bool,
    /// Do not print the thinking trace of thinking models (it is still stored).
    #[arg(long)]
    no_thinking: bool,
    /// Ask the model to think or not: `on`, `off`, or a level `low`/`medium`/`high` for
    /// models that take levels (gpt-oss, which cannot turn thinking off: `off` means `low`).
    /// Default: the server's (thinking models think).
    #[arg(long, value_name = "VALUE", value_parser = parse_think)]
    think: Option<Think>,
    /// Attach an image (PNG, JPEG, WebP, GIF first frame) to the first message; repeatable.
    /// Needs a model with the `vision` capability.
    #[arg(long = "image", value_name = "FILE")]
    images: Vec<std::path::PathBuf>,
}

fn parse_think(s: &str) -> std::result::Result<Think, String> {
    Think::parse(s).ok_or_else(|| format!("{s:?} is not on, off, low, medium or high"))
}

/// Arguments of `history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// At most this many conversations, newest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

/// Opens the configured history database.
fn open_history(ctx: &Context, in_memory: bool) -> Result<History> {
    if in_memory {
        return Ok(History::open_in_memory()?);
    }
    match ctx.config.history_path() {
        Some(path) => Ok(History::open(path)?),
        // No home directory at all: still chat, but say that nothing is kept.
        None => {
            eprintln!("yollayah: no data directory; this chat is not saved");
            Ok(History::open_in_memory()?)
        }
    }
}

/// Runs `chat`.
pub async fn chat(globals: &Globals, args: ChatArgs) -> Result<u8> {
    let ctx = Context::load(globals)?;
    let persona = ctx.persona()?;
    let profile = Arc::new(ctx.profile(&persona));
    // Ask first, so that a down server gives exit 3 and leaves no half-written conversation.
    ctx.client.version().await?;
    let history: SharedHistory = Arc::new(Mutex::new(open_history(&ctx, args.no_history)?));
    let mut conversation = None;
    if let Some(id) = args.conversation {
        let id = ConversationId(id);
        let exists = history
            .lock()
            .map(|h| h.messages(id).is_ok())
            .unwrap_or(false);
        if !exists {
            return Err(CliError::NoSuchConversation(id.0));
        }
        conversation = Some(id);
    }
    let model = profile.model.clone();
    let engine = ChatEngine::new(ctx.client.clone(), persona, profile, history, None);
    let mut images = Vec::new();
    for path in &args.images {
        let limits = *engine.image_limits();
        let path = path.clone();
        let image = tokio::task::spawn_blocking(move || {
            yollayah_core::images::prepare_file(&path, &limits)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .map_err(CliError::BadInput)?;
        images.push(image);
    }
    let style = Style {
        show_thinking: !args.no_thinking,
        dim: std::io::stderr().is_terminal(),
        think: args.think,
    };
    let interrupts = interrupts();
    if args.message.is_empty() {
        repl(&engine, &model, conversation, interrupts, style, images).await
    } else {
        let text = args.message.join(" ");
        let mut interrupts = interrupts;
        let outcome =
            one_reply(&engine, conversation, text, images, style, &mut interrupts).await?;
        Ok(code_of(&outcome))
    }
}

/// How replies are shown and asked for.
#[derive(Debug, Clone, Copy)]
struct Style {
    show_thinking: bool,
    /// ANSI dim for the trace (only when stderr is a terminal).
    dim: bool,
    think: Option<Think>,
}

fn code_of(outcome: &ReplyOutcome) -> u8 {
    match outcome.incomplete.as_deref() {
        None => exit::OK,
        Some("cancelled") => exit::INTERRUPTED,
        Some(_) => exit::BAD_INPUT,
    }
}

/// Ctrl-C presses, as a channel. Once the handler is installed the default "kill the process"
/// is gone, so every wait in this command must also listen here.
fn interrupts() -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    rx
}

async fn one_reply(
    engine: &ChatEngine,
    conversation: Option<ConversationId>,
    text: String,
    images: Vec<PreparedImage>,
    style: Style,
    interrupts: &mut mpsc::UnboundedReceiver<()>,
) -> Result<ReplyOutcome> {
    let cancel = CancellationToken::new();
    let outgoing = Outgoing {
        text,
        images,
        think: style.think,
        model: None,
    };
    let mut printer = Printer {
        style,
        in_trace: false,
    };
    let send = engine.send_message(conversation, outgoing, cancel.clone(), move |e| {
        printer.event(e)
    });
    tokio::pin!(send);
    // The send future is never dropped early: on Ctrl-C it is cancelled and then awaited, so
    // the partial reply is written to history before we return.
    let outcome = loop {
        tokio::select! {
            out = &mut send => break out?,
            Some(()) = interrupts.recv() => cancel.cancel(),
        }
    };
    // Only a reply that has text is kept; say so only then.
    match (outcome.incomplete.as_deref(), outcome.text.is_empty()) {
        (None, _) => {}
        (Some(_), true) => eprintln!("[no reply arrived, so nothing was kept]"),
        (Some("cancelled"), false) => eprintln!("[cancelled; the partial reply is kept]"),
        (Some(_), false) => eprintln!("[the partial reply is kept, marked incomplete]"),
    }
    Ok(outcome)
}

/// Prints one reply's events: the answer to stdout, the trace and figures to stderr.
struct Printer {
    style: Style,
    /// A trace line is open on stderr.
    in_trace: bool,
}

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

impl Printer {
    fn end_trace(&mut self) {
        if self.in_trace {
            self.in_trace = false;
            let mut err = std::io::stderr().lock();
            let _ = if self.style.dim {
                writeln!(err, "{RESET}")
            } else {
                writeln!(err)
            };
        }
    }

    fn event(&mut self, event: ReplyEvent) {
        if !matches!(event, ReplyEvent::Thinking { .. }) {
            self.end_trace();
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) must not abort the reply: it is still stored.
        let _ = match event {
            ReplyEvent::Started { .. } | ReplyEvent::ThinkingDone { .. } => Ok(()),
            ReplyEvent::Thinking { text, .. } => {
                if self.style.show_thinking {
                    let mut err = std::io::stderr().lock();
                    let open = if !self.in_trace && self.style.dim {
                        DIM
                    } else {
                        ""
                    };
                    self.in_trace = true;
                    let _ = write!(err, "{open}{text}").and_then(|()| err.flush());
                }
                Ok(())
            }
            ReplyEvent::Delta { text, .. } => {
                out.write_all(text.as_bytes()).and_then(|()| out.flush())
            }
            ReplyEvent::Done { stats, .. } => {
                let r = writeln!(out).and_then(|()| out.flush());
                eprintln!("[{}]", stats_line(&stats));
                r
            }
            ReplyEvent::Failed { error, .. } => {
                let r = writeln!(out).and_then(|()| out.flush());
                // Whether it was kept is known only once `send` returns (see `one_reply`).
                eprintln!("[reply failed: {error}]");
                r
            }
            ReplyEvent::Cancelled { .. } => {
                // Whether anything was kept is known only once `send` returns (see `one_reply`).
                writeln!(out).and_then(|()| out.flush())
            }
        };
    }
}

/// `TTFT 120 ms · 58.3 tok/s · load 0 ms · 42 tokens`.
pub fn stats_line(s: &ReplyStats) -> String {
    let mut parts = vec![format!("TTFT {} ms", s.ttft_ms)];
    if let Some(ms) = s.thinking_ms {
        parts.push(format!("thought {:.1} s", ms as f64 / 1000.0));
    }
    if let Some(t) = s.tokens_per_second {
        parts.push(format!("{t:.1} tok/s"));
    }
    if let Some(l) = s.load_ms {
        parts.push(format!("load {l:.0} ms"));
    }
    if let Some(n) = s.eval_count {
        parts.push(format!("{n} tokens"));
    }
    parts.join(" · ")
}

async fn repl(
    engine: &ChatEngine,
    model: &str,
    mut conversation: Option<ConversationId>,
    mut interrupts: mpsc::UnboundedReceiver<()>,
    style: Style,
    mut images: Vec<PreparedImage>,
) -> Result<u8> {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("Chatting with {model}. /new starts a new conversation; Ctrl-D quits.");
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        if interactive {
            eprint!("> ");
        }
        let line = tokio::select! {
            line = lines.next_line() => line?,
            // Ctrl-C at the prompt leaves, like a shell's REPL would.
            Some(()) = interrupts.recv() => return Ok(exit::OK),
        };
        let Some(line) = line else {
            return Ok(exit::OK);
        };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if text == "/new" {
            conversation = None;
            if interactive {
                eprintln!("[new conversation]");
            }
            continue;
        }
        // `--image` files go with the first message.
        let attached = std::mem::take(&mut images);
        let outcome = one_reply(
            engine,
            conversation,
            text.to_owned(),
            attached,
            style,
            &mut interrupts,
        )
        .await?;
        conversation = Some(outcome.conversation);
    }
}

#[derive(Debug, Serialize)]
struct ConversationLine {
    id: i64,
    #[serde(with = "time::serde::rfc3339")]
    updated: OffsetDateTime,
    title: String,
    model: String,
    messages: u64,
}

/// Runs `history`: the stored conversations, newest first.
pub async fn history(globals: &Globals, args: HistoryArgs) -> Result<u8> {
    let ctx = Context::load(globals)?;
    let Some(path) = ctx.config.history_path() else {
        eprintln!("yollayah: no data directory, so there is no history");
        return Ok(exit::OK);
    };
    let list = tokio::task::spawn_blocking(move || {
        History::open(&path).and_then(|h| h.list_conversations(args.limit))
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))??;
    let lines: Vec<ConversationLine> = list
        .into_iter()
        .map(|c| ConversationLine {
            id: c.id.0,
            updated: c.updated_at,
            title: c.title,
            model: c.model,
            messages: c.message_count,
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(exit::OK);
    }
    if lines.is_empty() {
        println!("No conversations yet.");
    }
    for l in &lines {
        println!(
            "{:>5}  {}  {:>3} msgs  {}",
            l.id,
            crate::output::local_date_time(l.updated),
            l.messages,
            l.title
        );
    }
    Ok(exit::OK)
}
