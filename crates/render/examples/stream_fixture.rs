//! Writes the chat events a streamed reply produces, as JSON, for the UI's development mock
//! (`ui/dev/`): `cargo run -p yollayah-render --example stream_fixture < reply.md > stream.json`.
//! The HTML in the fixture comes from the real sanitiser, so the mock shows what the app shows.

use std::io::Read;

use yollayah_render::{IncrementalRenderer, render_all};

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Keep the file safe to inline anywhere: no raw '<' or control characters.
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Word-ish tokens: a word with its leading space, newlines and punctuation on their own.
fn tokens(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if i > start && (c == ' ' || c == '\n' || c.is_ascii_punctuation() || i - start >= 6) {
            out.push(&s[start..i]);
            start = i;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

fn main() -> std::io::Result<()> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let mut r = IncrementalRenderer::new();
    let mut deltas = Vec::new();
    for t in tokens(&text) {
        let u = r.push(t);
        let blocks: Vec<String> = u
            .completed
            .iter()
            .map(|(i, h)| format!("{{\"index\":{i},\"html\":{}}}", json_str(h)))
            .collect();
        deltas.push(format!(
            "{{\"text\":{},\"html_blocks\":[{}],\"tail\":{}}}",
            json_str(t),
            blocks.join(","),
            json_str(u.tail)
        ));
    }
    println!(
        "{{\"text\":{},\"deltas\":[\n{}\n],\"html\":{}}}",
        json_str(&text),
        deltas.join(",\n"),
        json_str(&render_all(&text))
    );
    Ok(())
}
