//! Push-based decoder for Ollama's NDJSON streams (`/api/chat`, `/api/generate`, `/api/pull`).
//!
//! Bytes are fed as they come off the network, split anywhere (inside a line, inside a UTF-8
//! sequence); complete items are pulled out. The decoder knows Ollama's stream contract (fact
//! sheet §3): an `{"error": …}` line can arrive after HTTP 200 and ends the stream without a
//! `done: true` chunk, and a stream that simply stops before `done` was cut off.
//!
//! Speed matters because a chat relays every token through here: bytes are copied once into
//! one reused buffer, each byte is scanned for a newline once (memchr), and each line is parsed
//! once, straight from the buffer.

use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ollama::types::{ChatChunk, GenerateChunk};

/// Default bound on one line: far above any real chunk (a final `/api/generate` chunk with a
/// long `context` array is the largest Ollama sends), small enough that a server that never
/// sends a newline cannot exhaust memory.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// How much of a bad line is quoted in [`Error::InvalidChunk`].
const EXCERPT_BYTES: usize = 120;

/// An item of an NDJSON stream: what ends the stream, and where an error can hide in it.
///
/// Any `DeserializeOwned` type can be decoded by implementing this; `{"error": …}` lines are
/// recognised for every type, [`take_error`](StreamItem::take_error) only adds detection of
/// an `error` field that is not the first key.
pub trait StreamItem: DeserializeOwned {
    /// True for the last item of a complete stream (`done: true` in chat and generate).
    fn is_done(&self) -> bool;

    /// An error message the server put inside an otherwise well-formed item.
    fn take_error(&mut self) -> Option<String> {
        None
    }
}

impl StreamItem for ChatChunk {
    fn is_done(&self) -> bool {
        self.done
    }
    fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }
}

impl StreamItem for GenerateChunk {
    fn is_done(&self) -> bool {
        self.done
    }
    fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }
}

impl StreamItem for crate::ollama::types::PullProgress {
    fn is_done(&self) -> bool {
        self.status == "success"
    }
    fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }
}

/// Untyped items: done when `"done": true`, as in every Ollama stream that has an end marker.
impl StreamItem for Value {
    fn is_done(&self) -> bool {
        self.get("done").and_then(Value::as_bool) == Some(true)
    }
    fn take_error(&mut self) -> Option<String> {
        let obj = self.as_object_mut()?;
        obj.remove("error").map(error_text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Decoding normally.
    Running,
    /// A line ran past the limit; the complete lines before it are still yielded, then the
    /// error.
    Overflowed,
    /// An error or the end of input was reported; nothing more comes out.
    Ended,
}

/// Incremental NDJSON decoder: [`feed`](Self::feed) bytes, then call
/// [`next_item`](Self::next_item) until it returns `None` (meaning "need more input"); call
/// [`finish`](Self::finish) at end of input and drain `next_item` once more.
///
/// After the first error the decoder is fused: it yields that error once, then `None`, and
/// ignores further input, because Ollama never recovers a stream after an error either.
#[derive(Debug)]
pub struct NdjsonDecoder<T> {
    buf: Vec<u8>,
    /// Start of the bytes not yet turned into items.
    pos: usize,
    /// Length of the incomplete last line at the end of `buf` (bytes after the last `\n`).
    tail: usize,
    limit: usize,
    line_no: usize,
    received: usize,
    done: bool,
    eof: bool,
    state: State,
    _item: PhantomData<fn() -> T>,
}

impl<T: StreamItem> Default for NdjsonDecoder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: StreamItem> NdjsonDecoder<T> {
    /// A decoder with the [`DEFAULT_MAX_LINE_BYTES`] line limit.
    pub fn new() -> Self {
        Self::with_max_line_bytes(DEFAULT_MAX_LINE_BYTES)
    }

    /// A decoder that rejects any line longer than `limit` bytes (without its newline) and
    /// never holds more than `limit` bytes of an unfinished line.
    pub fn with_max_line_bytes(limit: usize) -> Self {
        NdjsonDecoder {
            buf: Vec::new(),
            pos: 0,
            tail: 0,
            limit,
            line_no: 0,
            received: 0,
            done: false,
            eof: false,
            state: State::Running,
            _item: PhantomData,
        }
    }

    /// Items successfully decoded so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Whether an item with [`StreamItem::is_done`] has been decoded.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether nothing more can come out of [`next_item`](Self::next_item): an error was
    /// yielded, or input ended and everything was drained.
    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// Appends bytes read from the stream. Ignored after [`finish`](Self::finish) or an error.
    pub fn feed(&mut self, data: &[u8]) {
        if self.state != State::Running || self.eof || data.is_empty() {
            return;
        }
        if self.pos > 0 {
            // Normally only a partial line (or nothing) is left, so this moves few bytes.
            if self.pos == self.buf.len() {
                self.buf.clear();
            } else {
                self.buf.drain(..self.pos);
            }
            self.pos = 0;
        }
        // Scanning backwards finds the new incomplete tail without touching the bytes of the
        // complete lines, which `next_item` scans forwards exactly once.
        let last_newline = memchr::memrchr(b'\n', data);
        let new_tail = match last_newline {
            Some(i) => data.len() - i - 1,
            None => self.tail.saturating_add(data.len()),
        };
        if new_tail <= self.limit {
            self.buf.extend_from_slice(data);
            self.tail = new_tail;
            return;
        }
        // The unfinished line is already too long: keep the complete lines before it, drop it.
        match last_newline {
            Some(i) => self.buf.extend_from_slice(&data[..=i]),
            None => self.buf.truncate(self.buf.len() - self.tail),
        }
        self.tail = 0;
        self.state = State::Overflowed;
    }

    /// Marks the end of input. The next [`next_item`](Self::next_item) calls yield a last
    /// unterminated line if there is one, then [`Error::StreamTruncated`] if no `done` item
    /// was seen.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// The next decoded item, an error, or `None` when more input is needed (or, once
    /// [`is_ended`](Self::is_ended), never again).
    pub fn next_item(&mut self) -> Option<Result<T>> {
        loop {
            if self.state == State::Ended {
                return None;
            }
            let complete_end = self.buf.len() - self.tail;
            if self.pos < complete_end {
                let start = self.pos;
                // `complete_end - 1` is a newline, so the search always succeeds.
                let newline = memchr::memchr(b'\n', &self.buf[start..complete_end])
                    .map_or(complete_end - 1, |i| start + i);
                self.pos = newline + 1;
                self.line_no += 1;
                let decoded = decode_line::<T>(&self.buf[start..newline], self.line_no, self.limit);
                if let Some(result) = self.account(decoded) {
                    return Some(result);
                }
                continue;
            }
            return match self.state {
                State::Overflowed => {
                    self.state = State::Ended;
                    Some(Err(Error::LineTooLong { limit: self.limit }))
                }
                State::Running if self.eof => self.drain_at_eof(),
                _ => None,
            };
        }
    }

    /// End of input: decode a last line without newline, then judge completeness.
    fn drain_at_eof(&mut self) -> Option<Result<T>> {
        if self.tail > 0 {
            let start = self.pos;
            self.pos = self.buf.len();
            self.tail = 0;
            self.line_no += 1;
            let decoded = decode_line::<T>(&self.buf[start..], self.line_no, self.limit);
            match decoded {
                // A last line that is not valid JSON was cut off in the middle, which is a
                // truncated stream rather than a server sending garbage.
                Some(Err(Error::InvalidChunk { .. })) => {}
                other => {
                    if let Some(result) = self.account(other) {
                        return Some(result);
                    }
                }
            }
        }
        self.state = State::Ended;
        if self.done {
            None
        } else {
            Some(Err(Error::StreamTruncated {
                received: self.received,
            }))
        }
    }

    fn account(&mut self, decoded: Option<Result<T>>) -> Option<Result<T>> {
        match decoded {
            None => None,
            Some(Ok(item)) => {
                self.received += 1;
                self.done |= item.is_done();
                Some(Ok(item))
            }
            Some(Err(e)) => {
                self.state = State::Ended;
                Some(Err(e))
            }
        }
    }
}

/// Decodes one line (without its `\n`); `None` for a blank line.
fn decode_line<T: StreamItem>(line: &[u8], line_no: usize, limit: usize) -> Option<Result<T>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let first = *line.first()?;
    if is_json_ws(first) && line.iter().all(|&b| is_json_ws(b)) {
        return None;
    }
    if line.len() > limit {
        return Some(Err(Error::LineTooLong { limit }));
    }
    if starts_with_error_key(line) {
        return Some(Err(error_line(line, line_no)));
    }
    // Validating UTF-8 once for the whole line lets serde_json skip validating every string
    // on its own, which is most of the per-token cost for short chunks.
    let text = match std::str::from_utf8(line) {
        Ok(text) => text,
        Err(e) => {
            return Some(Err(Error::InvalidChunk {
                line: line_no,
                reason: format!("not UTF-8: {e}"),
            }));
        }
    };
    Some(match serde_json::from_str::<T>(text) {
        Ok(mut item) => match item.take_error() {
            Some(message) => Err(Error::StreamError { message }),
            None => Ok(item),
        },
        Err(e) => match serde_json::from_str::<ErrorProbe>(text) {
            // Not a T, but an error object with other keys first: still Ollama's error.
            Ok(ErrorProbe { error: Some(v) }) => Err(Error::StreamError {
                message: error_text(v),
            }),
            _ => Err(invalid(line, line_no, &e)),
        },
    })
}

#[derive(Deserialize)]
struct ErrorProbe {
    error: Option<Value>,
}

/// Parses a line already known to open with an `"error"` key.
fn error_line(line: &[u8], line_no: usize) -> Error {
    match serde_json::from_slice::<ErrorProbe>(line) {
        Ok(ErrorProbe { error: Some(v) }) => Error::StreamError {
            message: error_text(v),
        },
        Ok(ErrorProbe { error: None }) => Error::InvalidChunk {
            line: line_no,
            reason: "error line without an error".to_owned(),
        },
        Err(e) => invalid(line, line_no, &e),
    }
}

/// Ollama's errors are strings; anything else is shown as its JSON text rather than lost.
fn error_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn invalid(line: &[u8], line_no: usize, e: &serde_json::Error) -> Error {
    let excerpt = String::from_utf8_lossy(&line[..line.len().min(EXCERPT_BYTES)]);
    let more = if line.len() > EXCERPT_BYTES {
        "…"
    } else {
        ""
    };
    Error::InvalidChunk {
        line: line_no,
        reason: format!("{e} (line starts {excerpt:?}{more})"),
    }
}

fn is_json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `{ "error" :` with any JSON whitespace: the shape of every Ollama error line. Checking the
/// prefix avoids parsing error lines as chunks first and chunks as errors ever.
fn starts_with_error_key(line: &[u8]) -> bool {
    let skip = |mut i: usize| {
        while line.get(i).copied().is_some_and(is_json_ws) {
            i += 1;
        }
        i
    };
    let i = skip(0);
    if line.get(i) != Some(&b'{') {
        return false;
    }
    let i = skip(i + 1);
    if !line[i..].starts_with(b"\"error\"") {
        return false;
    }
    let i = skip(i + b"\"error\"".len());
    line.get(i) == Some(&b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "{\"model\":\"m\",\"created_at\":\"2026-11-21T10:00:00.1Z\",\"message\":{\"role\":\"assistant\",\"content\":\"Hé\"},\"done\":false}\n",
        "\r\n",
        "{\"model\":\"m\",\"created_at\":\"2026-11-21T10:00:00.2Z\",\"message\":{\"role\":\"assistant\",\"content\":\"llo 🌮\"},\"done\":false}\r\n",
        "\n",
        "   \n",
        "{\"model\":\"m\",\"created_at\":\"2026-11-21T10:00:00.3Z\",\"message\":{\"role\":\"assistant\",\"content\":\"日本\"},\"done\":false}\n",
        "{\"model\":\"m\",\"created_at\":\"2026-11-21T10:00:00.4Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"eval_count\":3,\"eval_duration\":1000}\n",
    );

    /// Feeds `parts` in order, drains after each, then finishes.
    fn run<T: StreamItem>(parts: &[&[u8]], limit: usize) -> Vec<Result<T>> {
        let mut d = NdjsonDecoder::<T>::with_max_line_bytes(limit);
        let mut out = Vec::new();
        for p in parts {
            d.feed(p);
            while let Some(r) = d.next_item() {
                out.push(r);
            }
        }
        d.finish();
        while let Some(r) = d.next_item() {
            out.push(r);
        }
        assert!(d.is_ended());
        out
    }

    fn contents(items: &[Result<ChatChunk>]) -> Vec<String> {
        items
            .iter()
            .map(|r| match r {
                Ok(c) => c
                    .message
                    .as_ref()
                    .map(|m| m.content.clone())
                    .unwrap_or_default(),
                Err(e) => format!("ERR {e}"),
            })
            .collect()
    }

    #[test]
    fn whole_stream_in_one_read() {
        let out = run::<ChatChunk>(&[STREAM.as_bytes()], DEFAULT_MAX_LINE_BYTES);
        assert_eq!(contents(&out), ["Hé", "llo 🌮", "日本", ""]);
        let last = out.last().unwrap().as_ref().unwrap();
        assert!(last.done);
        assert_eq!(last.metrics.eval_count, Some(3));
    }

    #[test]
    fn split_at_every_offset_gives_identical_results() {
        let bytes = STREAM.as_bytes();
        let reference = contents(&run::<ChatChunk>(&[bytes], DEFAULT_MAX_LINE_BYTES));
        for cut in 0..=bytes.len() {
            let out = run::<ChatChunk>(&[&bytes[..cut], &bytes[cut..]], DEFAULT_MAX_LINE_BYTES);
            assert_eq!(contents(&out), reference, "split at {cut}");
        }
        // Two cuts, covering every pair of UTF-8 continuation positions too.
        for a in (0..bytes.len()).step_by(7) {
            for b in a..=bytes.len() {
                let parts = [&bytes[..a], &bytes[a..b], &bytes[b..]];
                assert_eq!(contents(&run::<ChatChunk>(&parts, 1 << 20)), reference);
            }
        }
    }

    #[test]
    fn byte_by_byte_including_inside_multibyte_utf8() {
        let bytes = STREAM.as_bytes();
        let parts: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            contents(&run::<ChatChunk>(&parts, DEFAULT_MAX_LINE_BYTES)),
            ["Hé", "llo 🌮", "日本", ""]
        );
    }

    #[test]
    fn error_line_mid_stream_ends_it_with_ollamas_text() {
        for error_line in [
            r#"{"error":"model runner has unexpectedly stopped"}"#,
            r#"  {  "error"  :  "model runner has unexpectedly stopped" }"#,
            "{\t\"error\"\t:\"model runner has unexpectedly stopped\"}\r",
            // Not first: found through the chunk type's own `error` field.
            r#"{"model":"m","error":"model runner has unexpectedly stopped"}"#,
        ] {
            let first = STREAM.lines().next().unwrap();
            let input = format!("{first}\n{error_line}\n{first}\n");
            let out = run::<ChatChunk>(&[input.as_bytes()], DEFAULT_MAX_LINE_BYTES);
            assert_eq!(out.len(), 2, "{error_line}");
            assert!(out[0].is_ok());
            match &out[1] {
                Err(Error::StreamError { message }) => {
                    assert_eq!(message, "model runner has unexpectedly stopped")
                }
                other => panic!("{error_line}: {other:?}"),
            }
        }
    }

    #[test]
    fn error_key_found_for_types_without_an_error_field() {
        #[derive(Debug, Deserialize)]
        struct Progress {
            status: String,
        }
        impl StreamItem for Progress {
            fn is_done(&self) -> bool {
                self.status == "success"
            }
        }
        let input = concat!(
            "{\"status\":\"pulling manifest\"}\n",
            "{\"digest\":\"x\",\"error\":\"pull model manifest: file does not exist\"}\n",
        );
        let out = run::<Progress>(&[input.as_bytes()], 1024);
        assert_eq!(out[0].as_ref().unwrap().status, "pulling manifest");
        assert!(
            matches!(&out[1], Err(Error::StreamError { message }) if message == "pull model manifest: file does not exist")
        );
        assert_eq!(out.len(), 2);
        let ok = run::<Progress>(&[b"{\"status\":\"success\"}"], 1024);
        assert_eq!(ok.len(), 1);
        assert!(ok[0].is_ok());
    }

    #[test]
    fn missing_done_is_truncation_counting_received() {
        let lines: Vec<&str> = STREAM.lines().collect();
        let input = format!("{}\n{}\n", lines[0], lines[2]);
        let out = run::<ChatChunk>(&[input.as_bytes()], DEFAULT_MAX_LINE_BYTES);
        assert_eq!(out.len(), 3);
        assert!(matches!(
            out[2],
            Err(Error::StreamTruncated { received: 2 })
        ));

        // Cut in the middle of the done line: also truncation, not an invalid chunk.
        let cut = &STREAM.as_bytes()[..STREAM.len() - 20];
        let out = run::<ChatChunk>(&[cut], DEFAULT_MAX_LINE_BYTES);
        assert!(matches!(
            out.last(),
            Some(Err(Error::StreamTruncated { received: 3 }))
        ));

        // Empty body.
        let out = run::<ChatChunk>(&[], DEFAULT_MAX_LINE_BYTES);
        assert!(matches!(
            out[..],
            [Err(Error::StreamTruncated { received: 0 })]
        ));
    }

    #[test]
    fn done_line_without_final_newline_is_complete() {
        let trimmed = STREAM.trim_end_matches('\n');
        let out = run::<ChatChunk>(&[trimmed.as_bytes()], DEFAULT_MAX_LINE_BYTES);
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(Result::is_ok));
    }

    #[test]
    fn invalid_line_reports_its_number_and_stops() {
        let first = STREAM.lines().next().unwrap();
        let input = format!("{first}\n\n{{\"model\": nope}}\n{first}\n");
        let out = run::<ChatChunk>(&[input.as_bytes()], DEFAULT_MAX_LINE_BYTES);
        assert_eq!(out.len(), 2);
        match &out[1] {
            Err(Error::InvalidChunk { line, reason }) => {
                assert_eq!(*line, 3);
                assert!(reason.contains("nope"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Valid JSON of the wrong shape is invalid too.
        let out = run::<ChatChunk>(&[b"[1,2]\n"], 1024);
        assert!(matches!(
            out[..],
            [Err(Error::InvalidChunk { line: 1, .. })]
        ));
        let out = run::<ChatChunk>(&[b"{\"model\":\"\xff\"}\n"], 1024);
        assert!(
            matches!(&out[..], [Err(Error::InvalidChunk { line: 1, reason })] if reason.contains("UTF-8"))
        );
        let out = run::<ChatChunk>(&[b"{\"error\":\"unterminated\n"], 1024);
        assert!(matches!(
            out[..],
            [Err(Error::InvalidChunk { line: 1, .. })]
        ));
    }

    #[test]
    fn endless_line_is_bounded() {
        let limit = 1000;
        let mut d = NdjsonDecoder::<ChatChunk>::with_max_line_bytes(limit);
        let first = STREAM.lines().next().unwrap();
        d.feed(format!("{first}\n").as_bytes());
        let junk = [b'a'; 300];
        for _ in 0..10_000 {
            d.feed(&junk);
            assert!(d.buf.len() <= limit + first.len() + 1, "{}", d.buf.len());
        }
        assert!(d.next_item().unwrap().is_ok());
        assert!(matches!(
            d.next_item(),
            Some(Err(Error::LineTooLong { limit: 1000 }))
        ));
        assert!(d.next_item().is_none());
        d.finish();
        assert!(d.next_item().is_none());
    }

    #[test]
    fn complete_line_over_the_limit_is_rejected() {
        let first = STREAM.lines().next().unwrap();
        let out = run::<ChatChunk>(&[format!("{first}\n").as_bytes()], first.len() - 1);
        assert!(matches!(out[..], [Err(Error::LineTooLong { .. })]));
        let ok = run::<ChatChunk>(&[format!("{first}\n").as_bytes()], first.len());
        assert!(ok[0].is_ok());
    }

    #[test]
    fn value_items() {
        let out = run::<Value>(&[b"{\"a\":1}\n{\"done\":true}\n"], 1024);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(Result::is_ok));
        let out = run::<Value>(&[b"{\"a\":1,\"error\":\"boom\"}\n"], 1024);
        assert!(matches!(&out[..], [Err(Error::StreamError { message })] if message == "boom"));
    }

    #[test]
    fn error_prefix_check() {
        assert!(starts_with_error_key(br#"{"error":"x"}"#));
        assert!(starts_with_error_key(b" { \"error\" \t: 1}"));
        assert!(!starts_with_error_key(br#"{"errors":"x"}"#));
        assert!(!starts_with_error_key(br#"{"model":"error"}"#));
        assert!(!starts_with_error_key(br#"{"error""#));
        assert!(!starts_with_error_key(b"{"));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic pseudo-random walk over bytes that matter to the decoder.
        let alphabet = b"{}\"error:\n\r \xc3\xa9\xff0done true";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..300 {
            let mut d = NdjsonDecoder::<ChatChunk>::with_max_line_bytes(64);
            for _ in 0..50 {
                let mut chunk = Vec::new();
                for _ in 0..(x % 17) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    chunk.push(alphabet[(x % alphabet.len() as u64) as usize]);
                }
                d.feed(&chunk);
                while d.next_item().is_some() {}
            }
            d.finish();
            while d.next_item().is_some() {}
            assert!(d.is_ended());
        }
    }
}
