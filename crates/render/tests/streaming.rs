//! Streaming equivalence: however a reply is cut into deltas, the blocks streamed by
//! `IncrementalRenderer` concatenate to `render_all`, and `render_all` equals rendering the whole
//! text in one go for every construct in the corpus below.

use yollayah_render::{IncrementalRenderer, render_all, render_markdown};

/// Snippets covering the constructs whose blank lines do or do not end a block.
const SNIPPETS: &[&str] = &[
    "# Heading one",
    "Setext heading\n==============",
    "A paragraph with *emphasis*, **strong**, `code` and a [link](https://example.com).\nIt wraps onto a second line.",
    "```rust\nfn main() {\n\n    println!(\"hi\");\n\n\n}\n```",
    "~~~~\nfenced with tildes\n\n~~~\nstill inside\n~~~~",
    "```\nunclosed fence at the end\n\nkeeps going",
    "- tight\n- list",
    "- loose\n\n- list\n\n- items",
    "1. first\n\n   continued paragraph\n\n2. second\n\n   ```sh\n   echo a\n\n   echo b\n   ```\n3. third",
    "- outer\n  - inner\n\n    inner paragraph\n- outer two",
    "- ```\n  code in an item\n\n  after blank\n  ```",
    "    indented code\n\n    more indented code",
    "> a quote\n> with two lines\n>\n> and a second paragraph",
    "> ```\n> quoted fence\n>\n> ```",
    "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |",
    "<pre>\nraw html\n\nacross a blank line\n</pre>",
    "<!-- a comment\n\nspanning blank lines -->",
    "<script>\nwindow.__xss = 1\n\n</script>",
    "---",
    "Text with trailing spaces  \nhard break",
    "* star list\n\n+ plus list",
    "10) ten\n\n11) eleven",
    "Paragraph\n- list right after",
    "![image alt](https://example.com/a.png) and <https://example.com/auto>",
    "Unicode: héllo wörld — 日本語 ✓ 🎉",
    "\t- tab indented\n\n\tcontinued",
];

const SEPARATORS: &[&str] = &["\n\n", "\n\n\n", "\r\n\r\n", "\n  \n", "\n"];

/// Small deterministic PRNG (xorshift64*), so chunkings are varied but reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Cuts `text` into pieces of `size(i)` chars (never splitting a UTF-8 char).
fn chunk(text: &str, mut size: impl FnMut() -> usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let n = size().max(1);
        let end = rest.char_indices().nth(n).map_or(rest.len(), |(i, _)| i);
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

fn stream(deltas: &[&str]) -> String {
    let mut r = IncrementalRenderer::new();
    let mut html = String::new();
    let mut fed = String::new();
    let mut expected_index = 0;
    for d in deltas {
        fed.push_str(d);
        let update = r.push(d);
        assert!(
            fed.ends_with(update.tail),
            "tail {:?} is not the end of the text so far",
            update.tail
        );
        for (index, block) in update.completed {
            assert_eq!(index, expected_index, "block indices must count up by one");
            expected_index += 1;
            html.push_str(&block);
        }
    }
    for (index, block) in r.finish() {
        assert_eq!(index, expected_index);
        expected_index += 1;
        html.push_str(&block);
    }
    assert_eq!(r.tail(), "", "finish leaves nothing open");
    html
}

fn assert_chunking_invariant(text: &str, seed: u64) {
    let whole = render_all(text);
    let mut rng = Rng(seed | 1);
    let chunkings: Vec<Vec<&str>> = vec![
        chunk(text, || 1),
        chunk(text, || 2),
        chunk(text, || 7),
        chunk(text, || rng.below(12) + 1),
        text.split_inclusive('\n').collect(),
        vec![text],
    ];
    for deltas in chunkings {
        assert_eq!(stream(&deltas), whole, "chunked {deltas:?}");
    }
}

#[test]
fn each_snippet_streams_like_render_all_and_like_the_whole() {
    for (i, snippet) in SNIPPETS.iter().enumerate() {
        for text in [
            snippet.to_string(),
            format!("{snippet}\n"),
            format!("Intro.\n\n{snippet}\n\nOutro."),
        ] {
            assert_chunking_invariant(&text, i as u64 + 7);
            assert_eq!(render_all(&text), render_markdown(&text), "input {text:?}");
        }
    }
}

#[test]
fn random_documents_stream_like_render_all_and_like_the_whole() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..400 {
        let parts = rng.below(6) + 2;
        let mut text = String::new();
        for p in 0..parts {
            if p > 0 {
                text.push_str(SEPARATORS[rng.below(SEPARATORS.len())]);
            }
            text.push_str(SNIPPETS[rng.below(SNIPPETS.len())]);
        }
        if rng.below(2) == 0 {
            text.push('\n');
        }
        assert_chunking_invariant(&text, round);
        assert_eq!(
            render_all(&text),
            render_markdown(&text),
            "round {round}: input {text:?}"
        );
    }
}

#[test]
fn reference_links_across_blocks_are_the_accepted_difference() {
    // A reference definition in a later block cannot be seen when the earlier block is rendered
    // (it has not arrived yet), so block-wise rendering shows the reference as plain text.
    let text = "See [the docs][d].\n\n[d]: https://example.com/docs\n";
    let whole = render_markdown(text);
    let blocks = render_all(text);
    assert!(
        whole.contains("href=\"https://example.com/docs\""),
        "{whole}"
    );
    assert_eq!(blocks, "<p>See [the docs][d].</p>\n");
    // Within one block the reference still resolves.
    let same_block = "See [the docs][d].\n[d]: https://example.com/docs\n";
    assert_eq!(render_all(same_block), render_markdown(same_block));
}

#[test]
fn empty_and_blank_inputs() {
    assert_eq!(render_all(""), "");
    assert_eq!(render_all("\n\n  \n"), "");
    assert_chunking_invariant("\n\n  \n", 3);
}

#[test]
fn the_open_tail_renders_provisionally() {
    let mut r = yollayah_render::IncrementalRenderer::new();
    assert_eq!(r.tail_html(), "");
    r.push("Hello **wor");
    assert_eq!(r.tail_html(), "<p>Hello **wor</p>\n");
    r.push("ld** and `co");
    assert_eq!(
        r.tail_html(),
        "<p>Hello <strong>world</strong> and `co</p>\n"
    );
    r.push("de` <img src=x onerror=alert(1)>");
    let html = r.tail_html();
    assert!(html.contains("<code>code</code>"), "{html}");
    assert!(!html.contains("<img"), "raw HTML stays text: {html}");
    // Once the block completes, its final HTML is what the provisional one became.
    let done = r.push("\n\n");
    assert_eq!(done.completed.len(), 1);
    assert_eq!(done.completed[0].1, html);
    assert_eq!(r.tail_html(), "");
}
