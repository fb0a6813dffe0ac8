//! Exit codes, one table for every command, so scripts can branch on them.

/// Everything is fine: Ollama answered and (for `doctor`) every checked model is on the GPU.
pub const OK: u8 = 0;
/// An unexpected internal error (the message says what).
pub const INTERNAL: u8 = 1;
/// A usage error (clap uses the same code for the ones it detects).
pub const USAGE: u8 = 2;
/// Ollama is not reachable (down, wrong URL, or not answering in time).
pub const UNREACHABLE: u8 = 3;
/// The model is not loaded.
pub const NOT_LOADED: u8 = 4;
/// The model runs partly on the CPU.
pub const PARTIAL: u8 = 5;
/// The model runs entirely on the CPU (or NVML shows `/api/ps` is wrong about the GPU).
pub const CPU: u8 = 6;
/// Where the model runs cannot be told (`ollama ps` would print "Unknown"), or `/api/ps`
/// claims the GPU and nothing could check it (a remote server, no runner found).
pub const UNKNOWN: u8 = 7;
/// Bad input: an invalid config, personality or capture file, or a failed request.
pub const BAD_INPUT: u8 = 8;
/// The chat history database is locked by another process, damaged, or failing (disk full).
pub const HISTORY: u8 = 9;
/// Interrupted by Ctrl-C (128 + SIGINT, the shell convention); a reply cut short is kept.
pub const INTERRUPTED: u8 = 130;

/// Shown at the end of `--help`.
pub const HELP: &str = "\
Exit codes:
    0  OK (doctor, warm: every checked model fully on the GPU)
    1  internal error
    2  usage error
    3  Ollama unreachable
    4  model not loaded
    5  model partly on the CPU
    6  model on the CPU (including: /api/ps claims GPU but NVML shows otherwise)
    7  placement unknown or unverified (e.g. a remote server: only /api/ps is known)
    8  bad input (config, persona or capture file) or a request Ollama refused
    9  chat history unusable (locked by another process, damaged, or disk full)
  130  interrupted by Ctrl-C (chat: the partial reply is kept, marked incomplete)";
