//! Streaming: split a growing Markdown reply into top-level blocks and render each block once.
//!
//! A block ends at a blank line, except where a blank line does not end anything in Markdown:
//! inside a fenced code block, inside a raw-HTML block that runs to an end marker (`<pre>`,
//! `<script>`, comments, …), and between the items of a loose list or the chunks of an indented
//! code block. For the last two the splitter waits for the next non-blank line before deciding,
//! and keeps it in the same block when it is a list marker or indented.
//!
//! The splitter only ever looks at complete lines (or, in [`IncrementalRenderer::finish`], at the
//! final partial line), so where a reply is cut into deltas never changes where blocks end: the
//! concatenation of streamed blocks always equals [`render_all`] of the whole text. Where the
//! splitter is unsure it keeps lines together, which costs a later render of a bigger block but
//! never changes the output. Known differences from rendering the whole text in one go are listed
//! in `docs/ui.md` (chiefly: a reference-style link whose definition sits in another block).

use crate::markdown::render_markdown;

/// What one [`IncrementalRenderer::push`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update<'a> {
    /// Blocks that became complete with this delta: `(block index, sanitised HTML)`, in order.
    /// Indices count from 0 within the message and never repeat.
    pub completed: Vec<(usize, String)>,
    /// Raw text of the block still open (not yet rendered). Show it as plain text only.
    pub tail: &'a str,
}

/// Renders a streamed Markdown message block by block; cost per delta stays flat.
#[derive(Debug, Default, Clone)]
pub struct IncrementalRenderer {
    /// Text of the open block, from its first line to the end of what has arrived.
    pending: String,
    /// Start (in `pending`) of the first line not yet classified.
    scan: usize,
    /// How far `pending` has been searched for a newline, so a long line is not re-searched.
    searched: usize,
    /// A raw region (fence or HTML block) in which blank lines do not end the block.
    open: Option<Open>,
    /// The open block has at least one non-blank line.
    has_content: bool,
    /// The open block is a list or indented code: after a blank line, wait for the next line.
    lookahead: bool,
    /// Start (in `pending`) of the blank lines that end the block unless the next line continues it.
    blank_from: Option<usize>,
    next_index: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Open {
    Fence(Fence),
    /// Raw HTML block of CommonMark kinds 1–5: runs until a line containing this marker.
    Html(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fence {
    ch: u8,
    len: usize,
    /// Column where the fence characters start (after container markers).
    col: usize,
    /// Number of `>` block-quote markers before the fence.
    quotes: usize,
}

impl IncrementalRenderer {
    /// A renderer for one new message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `delta` to the message; returns the blocks this completed and the open tail.
    pub fn push(&mut self, delta: &str) -> Update<'_> {
        self.pending.push_str(delta);
        let mut completed = Vec::new();
        loop {
            let from = self.searched.max(self.scan);
            match self.pending[from..].find('\n') {
                Some(at) => {
                    let start = self.scan;
                    let end = from + at + 1;
                    self.scan = end;
                    self.searched = end;
                    self.on_line(start, end, &mut completed);
                }
                None => {
                    self.searched = self.pending.len();
                    break;
                }
            }
        }
        Update {
            completed,
            tail: &self.pending,
        }
    }

    /// Ends the message: renders whatever is still open. Returns zero, one or two blocks (two when
    /// the final partial line turns out to start a new block).
    pub fn finish(&mut self) -> Vec<(usize, String)> {
        let mut completed = Vec::new();
        if self.scan < self.pending.len() {
            let start = self.scan;
            let end = self.pending.len();
            self.scan = end;
            self.searched = end;
            self.on_line(start, end, &mut completed);
        }
        let end = self.blank_from.unwrap_or(self.pending.len());
        self.emit(end, &mut completed);
        self.consume(self.pending.len());
        completed
    }

    /// Raw text of the block still open.
    pub fn tail(&self) -> &str {
        &self.pending
    }

    /// The open block rendered provisionally (sanitised like every block), so a streaming
    /// reply shows `**bold**` as bold before its block is complete. Unclosed markup renders as
    /// the parser reads it at this point (an open fence as code to the end, a lone `**` as
    /// text); the block's final HTML replaces it once complete. Costs one render of the tail,
    /// which is at most one block.
    pub fn tail_html(&self) -> String {
        if self.pending.trim().is_empty() {
            return String::new();
        }
        render_markdown(&self.pending)
    }

    /// Index the next completed block will get (= number of blocks completed so far).
    pub fn next_index(&self) -> usize {
        self.next_index
    }

    fn on_line(&mut self, start: usize, end: usize, out: &mut Vec<(usize, String)>) {
        let line = line_content(&self.pending[start..end]);
        match &self.open {
            Some(Open::Fence(fence)) => {
                match fence_close(line, fence) {
                    Close::No => {}
                    Close::Yes => self.open = None,
                    Close::AndReopen => self.open = open_region(line, false).map(Open::Fence),
                }
                return;
            }
            Some(Open::Html(marker)) => {
                if contains_ignore_ascii_case(line, marker) {
                    self.open = None;
                }
                return;
            }
            None => {}
        }
        if is_blank(line) {
            if !self.has_content {
                // Blank lines between blocks belong to no block.
                self.consume(end);
            } else if self.lookahead {
                self.blank_from.get_or_insert(start);
            } else {
                self.emit(start, out);
                self.consume(end);
            }
            return;
        }
        let marker = is_list_marker(line);
        let indented = line.starts_with([' ', '\t']);
        let deep = indent_cols(line) >= 4;
        let mut start = start;
        if let Some(blank) = self.blank_from.take() {
            if !(marker || indented) {
                self.emit(blank, out);
                self.consume(start);
                start = 0;
            }
        }
        let line = line_content(&self.pending[start..self.scan]);
        self.open = open_region(line, self.lookahead || marker)
            .map(Open::Fence)
            .or_else(|| (!deep).then(|| open_html(line)).flatten().map(Open::Html));
        self.has_content = true;
        self.lookahead |= marker || deep;
    }

    /// Renders `pending[..end]` as the next block if it has any content, and resets block state.
    fn emit(&mut self, end: usize, out: &mut Vec<(usize, String)>) {
        if self.has_content {
            out.push((self.next_index, render_markdown(&self.pending[..end])));
            self.next_index += 1;
        }
        self.open = None;
        self.has_content = false;
        self.lookahead = false;
        self.blank_from = None;
    }

    /// Drops `pending[..end]` (already rendered or blank).
    fn consume(&mut self, end: usize) {
        self.pending.drain(..end);
        self.scan -= end;
        self.searched -= end;
    }
}

/// Renders a whole message exactly as streaming it through [`IncrementalRenderer`] would: the
/// concatenation of its blocks' HTML.
pub fn render_all(text: &str) -> String {
    let mut renderer = IncrementalRenderer::new();
    let mut html = String::with_capacity(text.len() + text.len() / 2 + 16);
    for (_, block) in renderer.push(text).completed {
        html.push_str(&block);
    }
    for (_, block) in renderer.finish() {
        html.push_str(&block);
    }
    html
}

fn line_content(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

fn is_blank(line: &str) -> bool {
    line.bytes().all(|c| c == b' ' || c == b'\t')
}

/// Width of leading whitespace in columns (a tab advances to the next multiple of 4).
fn indent_cols(line: &str) -> usize {
    let mut col = 0;
    for c in line.bytes() {
        match c {
            b' ' => col += 1,
            b'\t' => col += 4 - col % 4,
            _ => break,
        }
    }
    col
}

fn skip_ws(s: &str) -> (usize, &str) {
    let trimmed = s.trim_start_matches([' ', '\t']);
    (indent_cols(s), trimmed)
}

/// Byte length of a list marker at the start of `s` (`-`, `*`, `+`, `1.`, `1)`), if it is one:
/// the marker must be followed by a space, a tab or the end of the line.
fn list_marker_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let len = match bytes.first()? {
        b'-' | b'*' | b'+' => 1,
        b'0'..=b'9' => {
            let digits = bytes.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 9 || !matches!(bytes.get(digits), Some(b'.' | b')')) {
                return None;
            }
            digits + 1
        }
        _ => return None,
    };
    matches!(bytes.get(len), None | Some(b' ' | b'\t')).then_some(len)
}

/// Whether the line starts (after any indentation) with a list marker.
fn is_list_marker(line: &str) -> bool {
    list_marker_len(skip_ws(line).1).is_some()
}

/// A fence opened by this line, looking through block-quote and list markers. Outside lists a
/// fence indented 4+ columns is indented code, not a fence.
fn open_region(line: &str, in_list: bool) -> Option<Fence> {
    let mut rest = line;
    let mut col = 0;
    let mut quotes = 0;
    let mut containers = false;
    loop {
        let (ws, after) = skip_ws(rest);
        col += ws;
        rest = after;
        if let Some(after) = rest.strip_prefix('>') {
            quotes += 1;
            col += 1;
            containers = true;
            rest = after;
        } else if let Some(len) = list_marker_len(rest) {
            col += len;
            containers = true;
            rest = &rest[len..];
        } else {
            break;
        }
    }
    if !(containers || in_list) && col > 3 {
        return None;
    }
    let ch = *rest.as_bytes().first()?;
    if ch != b'`' && ch != b'~' {
        return None;
    }
    let len = rest.bytes().take_while(|&c| c == ch).count();
    if len < 3 || (ch == b'`' && rest[len..].contains('`')) {
        return None;
    }
    Some(Fence {
        ch,
        len,
        col,
        quotes,
    })
}

enum Close {
    No,
    Yes,
    /// The line closes the fence by ending its list item, and opens a new top-level fence.
    AndReopen,
}

fn fence_close(line: &str, fence: &Fence) -> Close {
    let (mut col, mut rest) = skip_ws(line);
    for _ in 0..fence.quotes {
        match rest.strip_prefix('>') {
            Some(after) => {
                let (ws, after) = skip_ws(after);
                col += 1 + ws;
                rest = after;
            }
            None => return Close::No,
        }
    }
    let len = rest.bytes().take_while(|&c| c == fence.ch).count();
    if len < fence.len || !is_blank(&rest[len..]) || col > fence.col + 3 {
        return Close::No;
    }
    if col == 0 && fence.col > 0 && fence.quotes == 0 {
        Close::AndReopen
    } else {
        Close::Yes
    }
}

/// CommonMark raw-HTML blocks of kinds 1–5 run until an end marker, across blank lines; return
/// the marker if this line opens one and does not also close it.
fn open_html(line: &str) -> Option<&'static str> {
    let (col, rest) = skip_ws(line);
    if col > 3 || !rest.starts_with('<') {
        return None;
    }
    let lower = rest.to_ascii_lowercase();
    let (start_len, marker) = if let Some(tag) = ["script", "pre", "style", "textarea"]
        .into_iter()
        .find(|tag| {
            lower[1..].starts_with(tag)
                && matches!(
                    lower.as_bytes().get(1 + tag.len()),
                    None | Some(b' ' | b'\t' | b'>')
                )
        }) {
        let marker = match tag {
            "script" => "</script>",
            "pre" => "</pre>",
            "style" => "</style>",
            _ => "</textarea>",
        };
        (1 + tag.len(), marker)
    } else if lower.starts_with("<!--") {
        (4, "-->")
    } else if lower.starts_with("<?") {
        (2, "?>")
    } else if lower.starts_with("<![cdata[") {
        (9, "]]>")
    } else if lower.len() > 2
        && lower.starts_with("<!")
        && lower.as_bytes()[2].is_ascii_alphabetic()
    {
        (2, ">")
    } else {
        return None;
    };
    (!lower[start_len..].contains(marker)).then_some(marker)
}

fn contains_ignore_ascii_case(line: &str, marker: &str) -> bool {
    line.to_ascii_lowercase().contains(marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(text: &str) -> Vec<String> {
        let mut r = IncrementalRenderer::new();
        let mut out: Vec<String> = r.push(text).completed.into_iter().map(|b| b.1).collect();
        out.extend(r.finish().into_iter().map(|b| b.1));
        out
    }

    #[test]
    fn blank_lines_split_blocks() {
        assert_eq!(
            blocks("# A\n\npara one\nstill one\n\n\n\npara two"),
            vec![
                "<h1>A</h1>\n".to_string(),
                "<p>para one\nstill one</p>\n".to_string(),
                "<p>para two</p>\n".to_string()
            ]
        );
    }

    #[test]
    fn fences_keep_blank_lines() {
        let text = "```py\na = 1\n\n\nb = 2\n```\n\nafter";
        let b = blocks(text);
        assert_eq!(b.len(), 2, "{b:?}");
        assert!(b[0].contains("a = 1\n\n\nb = 2"), "{b:?}");
    }

    #[test]
    fn loose_list_stays_one_block() {
        let b = blocks("- a\n\n- b\n\n  more b\n\nafter\n");
        assert_eq!(b.len(), 2, "{b:?}");
        assert_eq!(
            b[0],
            "<ul>\n<li>\n<p>a</p>\n</li>\n<li>\n<p>b</p>\n<p>more b</p>\n</li>\n</ul>\n"
        );
    }

    #[test]
    fn tail_is_the_open_block_and_indices_count_up() {
        let mut r = IncrementalRenderer::new();
        let u = r.push("Hello **wor");
        assert!(u.completed.is_empty());
        assert_eq!(u.tail, "Hello **wor");
        let u = r.push("ld**\n\nNext");
        assert_eq!(
            u.completed,
            vec![(0, "<p>Hello <strong>world</strong></p>\n".to_string())]
        );
        assert_eq!(u.tail, "Next");
        let u = r.push(" one\n\n");
        assert_eq!(u.completed, vec![(1, "<p>Next one</p>\n".to_string())]);
        assert_eq!(u.tail, "");
        assert!(r.finish().is_empty());
        assert_eq!(r.next_index(), 2);
    }

    #[test]
    fn list_waits_for_the_next_line() {
        let mut r = IncrementalRenderer::new();
        assert!(r.push("- a\n\n").completed.is_empty());
        assert!(r.push("Para").completed.is_empty());
        let u = r.push("\n");
        assert_eq!(
            u.completed,
            vec![(0, "<ul>\n<li>a</li>\n</ul>\n".to_string())]
        );
        assert_eq!(u.tail, "Para\n");
    }

    #[test]
    fn fence_close_rules() {
        let f = open_region("```rust", false).expect("fence");
        assert!(matches!(fence_close("```", &f), Close::Yes));
        assert!(matches!(fence_close("   ```  ", &f), Close::Yes));
        assert!(matches!(fence_close("    ```", &f), Close::No));
        assert!(matches!(fence_close("``", &f), Close::No));
        assert!(matches!(fence_close("``` x", &f), Close::No));
        assert!(matches!(fence_close("~~~", &f), Close::No));
        assert!(open_region("    ```", false).is_none());
        assert!(open_region("``` a`b", false).is_none());
        let nested = open_region("- ```", false).expect("fence in list");
        assert_eq!(nested.col, 2);
        assert!(matches!(fence_close("  ```", &nested), Close::Yes));
        assert!(matches!(fence_close("```", &nested), Close::AndReopen));
        let quoted = open_region("> ~~~~", false).expect("fence in quote");
        assert!(matches!(fence_close("> ~~~~", &quoted), Close::Yes));
        assert!(matches!(fence_close("~~~~", &quoted), Close::No));
    }

    #[test]
    fn html_regions() {
        assert_eq!(open_html("<script>"), Some("</script>"));
        assert_eq!(open_html("<PRE class=x>"), Some("</pre>"));
        assert_eq!(open_html("<script>x</script>"), None);
        assert_eq!(open_html("<!-- a"), Some("-->"));
        assert_eq!(open_html("<!DOCTYPE"), Some(">"));
        assert_eq!(open_html("<scripts>"), None);
        assert_eq!(open_html("    <pre>"), None);
    }
}
