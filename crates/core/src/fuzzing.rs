//! The bodies of the fuzz targets in `fuzz/` that test this crate, one function per target.
//! They live here rather than in `fuzz/` so that a normal `cargo test` replays the committed
//! corpus and random mutations of it through the very same code (`tests/fuzz_replay.rs`),
//! while `cargo fuzz` explores further with the same oracle. Not an API: the assertions are
//! the oracle, so these functions panic on purpose when a parser breaks its contract.

use crate::Error;
use crate::agent_client::{
    AgentEvent, LineBuffer, MAX_LINE, RemoteSnapshot, check_agent_url, parse_event_line,
    token_secret,
};
use crate::capture::CaptureBundle;
use crate::diagnose::diagnose;
use crate::images::{ImageLimits, prepare};
use crate::ollama::params::{ParamValue, Parameters};
use crate::ollama::stream::NdjsonDecoder;
use crate::ollama::types::{ChatChunk, Message, PsResponse, ShowResponse};
use crate::persona::Persona;

/// The line limit of the `ndjson` target: small, so inputs reach it.
const NDJSON_LIMIT: usize = 256;

/// Cuts `data` into pieces whose lengths come from a small xorshift seeded by `seed`: mostly
/// short pieces (byte-by-byte UTF-8 splits), sometimes long ones.
pub fn split(data: &[u8], seed: u16) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 1;
    let mut parts = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let max = if state % 4 == 0 { 600 } else { 8 };
        let n = (state as usize % max + 1).min(rest.len());
        let (head, tail) = rest.split_at(n);
        parts.push(head);
        rest = tail;
    }
    parts
}

/// The first two bytes as a split seed, and the rest.
fn seeded(input: &[u8]) -> (u16, &[u8]) {
    match input {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        _ => (0, input),
    }
}

/// `ndjson`: the NDJSON stream decoder fed arbitrary bytes at once and in arbitrary splits
/// (the first two bytes seed the split). Never panics; memory stays bounded (a line over the
/// limit is `LineTooLong`, not buffered); after `finish` the decoder ends and stays silent; the
/// outcome does not depend on the split unless a line hit the limit (a still-growing line may
/// then be rejected before its newline arrives).
pub fn ndjson(input: &[u8]) {
    let (seed, data) = seeded(input);
    let whole = decode_ndjson(&[data], data.len());
    let split_out = decode_ndjson(&split(data, seed), data.len());
    let hit_limit = |v: &[String]| v.iter().any(|s| s.starts_with("too-long"));
    if !hit_limit(&whole) && !hit_limit(&split_out) {
        assert_eq!(
            whole, split_out,
            "result depends on how the input was split"
        );
    }
}

fn decode_ndjson(parts: &[&[u8]], total: usize) -> Vec<String> {
    // One item per newline, a last line and one terminal error at most.
    let max_items = total + 2;
    let describe = |r: crate::Result<ChatChunk>| match r {
        Ok(c) => format!("ok {c:?}"),
        Err(e @ Error::LineTooLong { .. }) => format!("too-long {e}"),
        Err(e) => format!("err {e}"),
    };
    let mut d = NdjsonDecoder::<ChatChunk>::with_max_line_bytes(NDJSON_LIMIT);
    let mut out = Vec::new();
    for p in parts {
        d.feed(p);
        while let Some(r) = d.next_item() {
            out.push(describe(r));
            assert!(out.len() <= max_items, "decoder yields without end");
        }
    }
    d.finish();
    while let Some(r) = d.next_item() {
        out.push(describe(r));
        assert!(out.len() <= max_items, "decoder yields without end");
    }
    assert!(d.is_ended(), "drained after finish but not ended");
    d.feed(b"{\"done\":true}\n");
    assert!(
        d.next_item().is_none(),
        "ended decoder produced more output"
    );
    out
}

/// `ps_show`: `/api/ps` and `/api/show` answers. Never panic; whatever parses serialises again
/// (capture bundles write them back out).
pub fn ps_show(data: &[u8]) {
    if let Ok(ps) = serde_json::from_slice::<PsResponse>(data) {
        for m in &ps.models {
            let _ = format!("{m:?}");
        }
        assert!(
            serde_json::to_vec(&ps).is_ok(),
            "parsed /api/ps does not serialise"
        );
    }
    if let Ok(show) = serde_json::from_slice::<ShowResponse>(data) {
        assert!(
            serde_json::to_vec(&show).is_ok(),
            "parsed /api/show does not serialise"
        );
    }
}

/// `parameters`: the `/api/show` `parameters` text. Never panics; at most one entry per line,
/// every key non-empty without whitespace, every number finite.
pub fn parameters(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let p = Parameters::parse(text);
    assert!(p.entries.len() <= text.lines().count());
    for (key, value) in &p.entries {
        assert!(
            !key.is_empty() && !key.contains(char::is_whitespace),
            "bad key {key:?}"
        );
        if let ParamValue::Number(n) = value {
            assert!(n.is_finite());
        }
        let _ = p.get_i64(key);
        assert!(p.get_all(key).count() >= 1);
    }
    for key in ["num_ctx", "num_gpu", "stop", "temperature"] {
        let _ = p.get_i64(key);
    }
}

/// `persona`: persona files. Parsing and rendering the error (byte offset → line:column) never
/// panic; a persona that parses has a name, a model and a prompt and composes a request.
pub fn persona(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Persona::parse(text, "fuzz/persona.md") {
        Ok(p) => {
            assert!(!p.name().trim().is_empty());
            assert!(!p.model().trim().is_empty());
            assert!(!p.system_prompt().trim().is_empty());
            let user = Message::new("user", "hi");
            assert_eq!(p.compose(&[], &user).len(), 2);
            let _ = p.request_options(p.load_options());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `capture`: capture bundles (`doctor --from FILE`, untrusted bug-report files), then a full
/// diagnosis of whatever parses. Never panic; a parsed bundle serialises again.
pub fn capture(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match CaptureBundle::from_json(text) {
        Ok(bundle) => {
            for d in &diagnose(&bundle.observation()) {
                let _ = format!("{d:?}");
                let _ = d.top();
            }
            assert!(bundle.to_json().is_ok(), "parsed bundle does not serialise");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `image_intake`: arbitrary bytes as a dropped image. Refuses with a typed reason or returns
/// an image within the (small, so reachable) limits; never panics.
pub fn image_intake(data: &[u8]) {
    let limits = ImageLimits {
        max_file_bytes: 1 << 20,
        max_pixels: 4_000_000,
        longest_side: 256,
        max_images: 4,
    };
    match prepare(data, &limits) {
        Ok(img) => {
            assert!(img.width.max(img.height) <= 256);
            assert!(u64::from(img.original_width) * u64::from(img.original_height) <= 4_000_000);
            assert!(!img.data.is_empty());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `agent_events`: what the tray and the CLI read from `yollayah agent`. The bytes (after a
/// two-byte split seed) are an `/api/v1/events` stream: split into lines at once and in pieces
/// (same lines either way; never more than one per newline), and each line through
/// `parse_event_line`, which returns the kind its `type` names or nothing. The same bytes are
/// also an `/api/v1/state` body, a token file's text and an `agent_url`.
pub fn agent_events(input: &[u8]) {
    let (seed, data) = seeded(input);
    let lines = match LineBuffer::default().push(data) {
        Ok(lines) => lines,
        Err(_) => {
            assert!(data.len() > MAX_LINE);
            return;
        }
    };
    let newlines = data.iter().filter(|b| **b == b'\n').count();
    assert_eq!(lines.len(), newlines);
    let mut buffer = LineBuffer::default();
    let mut pieces = Vec::new();
    for part in split(data, seed) {
        if let Ok(mut got) = buffer.push(part) {
            pieces.append(&mut got);
        }
    }
    assert_eq!(lines, pieces, "lines depend on how the stream was split");
    for line in &lines {
        assert!(!line.contains(&b'\n'));
        event_line(line);
    }
    state_body(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(secret) = token_secret(text) {
            assert!(!secret.is_empty() && secret.bytes().all(|b| b.is_ascii_graphic()));
            assert!(text.contains(secret));
        }
        if let Ok(url) = check_agent_url(text) {
            assert!(matches!(url.scheme(), "http" | "https"));
            assert!(url.host_str().is_some_and(|h| !h.is_empty()));
            assert!(url.query().is_none() && url.fragment().is_none());
        }
    }
}

fn event_line(line: &[u8]) {
    let value =
        serde_json::from_slice::<serde_json::Value>(line.strip_suffix(b"\r").unwrap_or(line));
    let kind = value
        .as_ref()
        .ok()
        .and_then(|v| v.get("type"))
        .and_then(serde_json::Value::as_str);
    match parse_event_line(line) {
        None => {}
        Some(AgentEvent::Snapshot(s)) => {
            assert_eq!(kind, Some("snapshot"));
            assert_eq!(value.ok().as_ref(), Some(&s.raw));
        }
        Some(AgentEvent::AlertRaised(_)) => assert_eq!(kind, Some("alert_raised")),
        Some(AgentEvent::AlertResolved(_)) => assert_eq!(kind, Some("alert_resolved")),
        Some(AgentEvent::Resync { .. }) => assert_eq!(kind, Some("resync")),
        Some(AgentEvent::Other(v)) => {
            assert!(!matches!(
                kind,
                Some("snapshot" | "alert_raised" | "alert_resolved" | "resync")
            ));
            assert_eq!(value.ok().as_ref(), Some(&v));
        }
        Some(other) => panic!("a line cannot be {other:?}"),
    }
}

/// An `/api/v1/state` body, read as `AgentClient::state` reads it.
fn state_body(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(s) = RemoteSnapshot::from_value(value.clone()) {
        assert_eq!(s.raw, value);
        let _ = format!("{s:?}");
    }
}
