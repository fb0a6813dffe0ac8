//! The XSS corpus (`tests/xss_payloads.txt`) rendered whole and streamed: what comes out, parsed
//! back with a real HTML parser (html5ever via scraper), holds only allow-listed elements and
//! attributes, no link with a scheme other than http/https/mailto, and still shows the payload's
//! text to the user.

use scraper::{Html, Node};
use yollayah_render::sanitize::{ALLOWED_TAGS, is_language_class};
use yollayah_render::{IncrementalRenderer, render_all, render_markdown};

const FORBIDDEN: &[&str] = &[
    "script", "style", "iframe", "object", "embed", "form", "input", "button", "svg", "math",
    "img", "video", "audio", "source", "link", "meta", "base", "textarea", "template", "details",
    "noscript", "body", "frame", "frameset", "select", "option",
];

struct Payload {
    line: usize,
    text: String,
    visible: String,
}

fn unescape(s: &str) -> String {
    s.replace("\\x00", "\0").replace("\\n", "\n")
}

/// Whitespace collapsed; NULs dropped (the pipeline may drop them or show U+FFFD, either is fine).
fn collapse(s: &str) -> String {
    s.replace(['\0', '\u{fffd}'], "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn payloads() -> Vec<Payload> {
    let corpus = include_str!("xss_payloads.txt");
    corpus
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with(";;") && !l.is_empty())
        .map(|(i, l)| {
            let (payload, visible) = match l.split_once('\t') {
                Some((p, v)) => (unescape(p), unescape(v)),
                None => (unescape(l), unescape(l)),
            };
            Payload {
                line: i + 1,
                text: payload,
                visible: collapse(&visible),
            }
        })
        .collect()
}

/// Everything the browser would see in `html`, checked; returns the fragment's text content.
fn check_fragment(html: &str, context: &str) -> String {
    let doc = Html::parse_fragment(html);
    for node in doc.tree.nodes() {
        match node.value() {
            Node::Element(el) => {
                let name = el.name();
                // The wrappers parse_fragment adds around the fragment; in fragment parsing a
                // `<body>` or `<html>` tag from the input is ignored, never merged into these.
                let wrapper = matches!(name, "html" | "body")
                    && node.ancestors().all(|a| {
                        a.value().is_fragment()
                            || a.value().is_document()
                            || a.value().as_element().is_some_and(|e| e.name() == "html")
                    });
                if wrapper {
                    assert_eq!(
                        el.attrs().count(),
                        0,
                        "{context}: attributes on <{name}> wrapper"
                    );
                    continue;
                }
                assert!(
                    !FORBIDDEN.contains(&name),
                    "{context}: forbidden <{name}> in {html:?}"
                );
                assert!(
                    ALLOWED_TAGS.contains(&name),
                    "{context}: unexpected <{name}> in {html:?}"
                );
                for (attr, value) in el.attrs() {
                    let attr = attr.to_ascii_lowercase();
                    assert!(
                        !attr.starts_with("on"),
                        "{context}: event handler {attr} in {html:?}"
                    );
                    match (name, attr.as_str()) {
                        ("a", "href") => assert!(allowed_url(value), "{context}: href {value:?}"),
                        ("a", "title") | ("ol", "start") => {}
                        ("a", "rel") => assert_eq!(value, "noopener noreferrer"),
                        ("code", "class") => {
                            assert!(is_language_class(value), "{context}: class {value:?}")
                        }
                        _ => {
                            panic!("{context}: attribute {attr}={value:?} on <{name}> in {html:?}")
                        }
                    }
                }
            }
            Node::Comment(_) | Node::ProcessingInstruction(_) => {
                panic!("{context}: comment/PI survived in {html:?}")
            }
            _ => {}
        }
    }
    doc.root_element().text().collect::<String>()
}

/// The href as a browser resolves it (entities already decoded by the parser; tabs and newlines
/// removed, leading spaces trimmed, as the URL parser does) must use an allowed scheme.
fn allowed_url(href: &str) -> bool {
    let cleaned: String = href
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect::<String>()
        .to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| cleaned.starts_with(scheme))
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Streams `text` in deltas of 1–6 chars; checks every block on its own (the UI inserts each
/// block separately) and returns the concatenated HTML.
fn stream_checked(text: &str, seed: u64, context: &str) -> String {
    let mut rng = Rng(seed);
    let mut r = IncrementalRenderer::new();
    let mut html = String::new();
    let mut rest = text;
    let mut blocks = Vec::new();
    while !rest.is_empty() {
        let n = rng.below(6) + 1;
        let end = rest.char_indices().nth(n).map_or(rest.len(), |(i, _)| i);
        blocks.extend(r.push(&rest[..end]).completed);
        rest = &rest[end..];
    }
    blocks.extend(r.finish());
    for (_, block) in &blocks {
        check_fragment(block, context);
        html.push_str(block);
    }
    html
}

#[test]
fn corpus_is_big_enough() {
    assert!(payloads().len() >= 40, "only {} payloads", payloads().len());
}

#[test]
fn every_payload_rendered_whole_is_inert_and_visible() {
    for p in payloads() {
        let context = format!("line {} {:?}", p.line, p.text);
        let html = render_markdown(&p.text);
        let text = collapse(&check_fragment(&html, &context));
        assert!(
            text.contains(&p.visible),
            "{context}: the user should see {:?}, sees {text:?} (html {html:?})",
            p.visible
        );
    }
}

#[test]
fn every_payload_streamed_is_inert_visible_and_equal_to_render_all() {
    for (i, p) in payloads().iter().enumerate() {
        let context = format!("streamed line {} {:?}", p.line, p.text);
        let streamed = stream_checked(&p.text, i as u64 + 1, &context);
        assert_eq!(streamed, render_all(&p.text), "{context}");
        let text = collapse(&check_fragment(&streamed, &context));
        assert!(
            text.contains(&p.visible),
            "{context}: the user should see {:?}, sees {text:?}",
            p.visible
        );
    }
}

#[test]
fn whole_corpus_as_one_message_streams_safely() {
    let all: Vec<String> = payloads().into_iter().map(|p| p.text).collect();
    for sep in ["\n", "\n\n", " "] {
        let text = all.join(sep);
        let streamed = stream_checked(&text, 99, "whole corpus");
        assert_eq!(streamed, render_all(&text));
        check_fragment(&render_markdown(&text), "whole corpus in one go");
    }
}

#[test]
fn checker_rejects_what_it_must() {
    // The checks above are only as good as this function: make sure it actually fails.
    for bad in [
        "<script>x</script>",
        "<img src=x>",
        "<a href=\"javascript:x\">a</a>",
        "<a href=\"&#106;avascript:x\">a</a>",
        "<p onclick=x>a</p>",
        "<p style=\"x\">a</p>",
        "<code class=\"evil\">a</code>",
        "<!-- c -->",
    ] {
        let result = std::panic::catch_unwind(|| check_fragment(bad, "self-test"));
        assert!(result.is_err(), "checker accepted {bad:?}");
    }
    assert_eq!(
        check_fragment(
            "<p>a <a href=\"https://x.example\" rel=\"noopener noreferrer\">b</a></p>",
            "ok"
        ),
        "a b"
    );
}
