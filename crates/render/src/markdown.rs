//! One-shot Markdown → sanitised HTML.
//!
//! Before any HTML is written, the pulldown-cmark event stream is reshaped so that nothing the
//! model wrote as raw HTML is ever parsed as markup (it is shown as the text it is), images turn
//! into links (the webview never fetches anything), and a code block's language is reduced to a
//! safe class name. The result then goes through the [`crate::sanitize`] allow-list anyway.

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd, html};

use crate::sanitize::{is_language_name, sanitize_html};

/// Markdown extensions we accept. Task lists are off (they emit `<input>`), footnotes are off
/// (they emit `id`s and fragment links), smart punctuation is off (it rewrites what the model
/// wrote, which makes quoting code in prose wrong).
fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH
}

/// Renders untrusted Markdown `text` to sanitised HTML.
///
/// Supports paragraphs, emphasis, strikethrough, lists, tables, block quotes, headings, inline
/// code, fenced code blocks (`<pre><code class="language-xyz">`) and links (`http`, `https`,
/// `mailto` only, with `rel="noopener noreferrer"`). Bare `http://` and `https://` URLs in
/// prose become links too (not inside code or an existing link). Raw HTML is escaped and shown
/// as text; images become links to the image's URL labelled with their alt text.
pub fn render_markdown(text: &str) -> String {
    let events = autolink(reshape(Parser::new_ext(text, options())));
    let mut out = String::with_capacity(text.len() + text.len() / 2 + 16);
    html::push_html(&mut out, events.into_iter());
    sanitize_html(&out)
}

fn reshape<'a>(parser: Parser<'a>) -> Vec<Event<'a>> {
    let mut events: Vec<Event<'a>> = Vec::new();
    // Destination of the image being turned into a link, and whether it had any alt text yet:
    // an image with an empty alt would otherwise become an invisible link.
    let mut open_images: Vec<(CowStr<'a>, bool)> = Vec::new();
    for event in parser {
        match event {
            Event::Html(raw) | Event::InlineHtml(raw) => {
                mark_image_labelled(&mut open_images);
                events.push(Event::Text(raw));
            }
            Event::Start(Tag::HtmlBlock) => events.push(Event::Start(Tag::Paragraph)),
            Event::End(TagEnd::HtmlBlock) => events.push(Event::End(TagEnd::Paragraph)),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                open_images.push((dest_url.clone(), false));
                events.push(Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                }));
            }
            Event::End(TagEnd::Image) => {
                if let Some((dest, false)) = open_images.pop() {
                    events.push(Event::Text(dest));
                }
                events.push(Event::End(TagEnd::Link));
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                events.push(Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(
                    language_of(&info).into(),
                ))));
            }
            Event::TaskListMarker(_) | Event::FootnoteReference(_) => {}
            other => {
                if matches!(
                    other,
                    Event::Text(_) | Event::Code(_) | Event::InlineMath(_) | Event::DisplayMath(_)
                ) {
                    mark_image_labelled(&mut open_images);
                }
                events.push(other);
            }
        }
    }
    events
}

/// Turns bare URLs in text into links. Adjacent text events are joined first (the parser splits
/// text at characters like `[` or `&`, which can sit inside a URL).
fn autolink(events: Vec<Event<'_>>) -> Vec<Event<'_>> {
    let mut out: Vec<Event<'_>> = Vec::with_capacity(events.len());
    let (mut in_link, mut in_code) = (0usize, 0usize);
    let mut text: Option<String> = None;
    let flush = |text: &mut Option<String>, out: &mut Vec<Event<'_>>, linkify: bool| {
        if let Some(t) = text.take() {
            if linkify {
                push_linked(&t, out);
            } else {
                out.push(Event::Text(t.into()));
            }
        }
    };
    for event in events {
        if let Event::Text(t) = &event {
            text.get_or_insert_with(String::new).push_str(t);
            continue;
        }
        flush(&mut text, &mut out, in_link == 0 && in_code == 0);
        match &event {
            Event::Start(Tag::Link { .. }) => in_link += 1,
            Event::End(TagEnd::Link) => in_link = in_link.saturating_sub(1),
            Event::Start(Tag::CodeBlock(_)) => in_code += 1,
            Event::End(TagEnd::CodeBlock) => in_code = in_code.saturating_sub(1),
            _ => {}
        }
        out.push(event);
    }
    flush(&mut text, &mut out, in_link == 0 && in_code == 0);
    out
}

/// Pushes `text` as text and link events, one link per bare URL.
fn push_linked(text: &str, out: &mut Vec<Event<'_>>) {
    let mut rest = text;
    while let Some(start) = find_url(rest) {
        let tail = &rest[start..];
        let mut end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '`'))
            .unwrap_or(tail.len());
        // Sentence punctuation after a URL is not part of it; a `)` only when unbalanced.
        while end > 0 {
            let last = tail[..end].chars().next_back().unwrap_or(' ');
            let strip = match last {
                '.' | ',' | ':' | ';' | '!' | '?' | '\'' | '*' | '_' | '~' => true,
                ')' => tail[..end].matches('(').count() < tail[..end].matches(')').count(),
                _ => false,
            };
            if !strip {
                break;
            }
            end -= last.len_utf8();
        }
        let url = &tail[..end];
        if url.len() <= "https://".len() {
            out.push(Event::Text(rest[..start + end.max(1)].to_owned().into()));
            rest = &rest[start + end.max(1)..];
            continue;
        }
        if start > 0 {
            out.push(Event::Text(rest[..start].to_owned().into()));
        }
        out.push(Event::Start(Tag::Link {
            link_type: pulldown_cmark::LinkType::Autolink,
            dest_url: url.to_owned().into(),
            title: CowStr::Borrowed(""),
            id: CowStr::Borrowed(""),
        }));
        out.push(Event::Text(url.to_owned().into()));
        out.push(Event::End(TagEnd::Link));
        rest = &tail[end..];
    }
    if !rest.is_empty() {
        out.push(Event::Text(rest.to_owned().into()));
    }
}

/// Byte offset of the next `http://` or `https://` that starts a word.
fn find_url(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find("http") {
        let at = from + i;
        let rest = &text[at..];
        let starts_word = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        if starts_word && (rest.starts_with("http://") || rest.starts_with("https://")) {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

fn mark_image_labelled<'a>(open_images: &mut [(CowStr<'a>, bool)]) {
    if let Some(last) = open_images.last_mut() {
        last.1 = true;
    }
}

/// The language of a fence's info string, reduced to what the class allow-list keeps: the first
/// word, lower-cased; anything else yields no class at all.
fn language_of(info: &str) -> String {
    let first = info
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if is_language_name(&first) {
        first
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_markdown() {
        assert_eq!(
            render_markdown("# Title\n\nSome *em* and **strong** and `code`.\n"),
            "<h1>Title</h1>\n<p>Some <em>em</em> and <strong>strong</strong> and <code>code</code>.</p>\n"
        );
        assert_eq!(
            render_markdown("- a\n- b\n"),
            "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n"
        );
        assert_eq!(
            render_markdown("3. a\n4. b\n"),
            "<ol start=\"3\">\n<li>a</li>\n<li>b</li>\n</ol>\n"
        );
        assert_eq!(
            render_markdown("> quoted ~~old~~\n"),
            "<blockquote>\n<p>quoted <del>old</del></p>\n</blockquote>\n"
        );
    }

    #[test]
    fn bare_urls_become_links_outside_code_and_links() {
        assert_eq!(
            render_markdown("See https://ollama.com/library, or (http://a.example/x_(y)).\n"),
            "<p>See <a href=\"https://ollama.com/library\" rel=\"noopener noreferrer\">https://ollama.com/library</a>, or (<a href=\"http://a.example/x_(y)\" rel=\"noopener noreferrer\">http://a.example/x_(y)</a>).</p>\n"
        );
        assert_eq!(
            render_markdown("`https://a.example` and [x](https://b.example)\n"),
            "<p><code>https://a.example</code> and <a href=\"https://b.example\" rel=\"noopener noreferrer\">x</a></p>\n"
        );
        let code = render_markdown("```\ncurl https://a.example\n```\n");
        assert!(!code.contains("<a"), "{code}");
        // Only http(s), and only where a word starts.
        assert_eq!(
            render_markdown("javascript:alert(1) xhttps://a.example https://\n"),
            "<p>javascript:alert(1) xhttps://a.example https://</p>\n"
        );
    }

    #[test]
    fn tables_lose_alignment_styles() {
        let out = render_markdown("| a | b |\n|:--|--:|\n| 1 | 2 |\n");
        assert!(out.contains("<table>"), "{out}");
        assert!(out.contains("<td>2</td>"), "{out}");
        assert!(!out.contains("style"), "{out}");
    }

    #[test]
    fn fenced_code_keeps_safe_language_only() {
        assert_eq!(
            render_markdown("```Rust,ignore\nfn main() {}\n```\n"),
            "<pre><code class=\"language-rust\">fn main() {}\n</code></pre>\n"
        );
        assert_eq!(
            render_markdown("```c++\nint x;\n```\n"),
            "<pre><code class=\"language-c++\">int x;\n</code></pre>\n"
        );
        assert_eq!(
            render_markdown("```x\"onmouseover=alert(1)\n<b>\n```\n"),
            "<pre><code>&lt;b&gt;\n</code></pre>\n"
        );
    }

    #[test]
    fn raw_html_is_shown_as_text() {
        assert_eq!(
            render_markdown("<script>alert(1)</script>\n"),
            "<p>&lt;script&gt;alert(1)&lt;/script&gt;\n</p>\n"
        );
        assert_eq!(
            render_markdown("a <b onclick=x>bold</b>\n"),
            "<p>a &lt;b onclick=x&gt;bold&lt;/b&gt;</p>\n"
        );
    }

    #[test]
    fn images_become_links() {
        assert_eq!(
            render_markdown("![a cat](https://img.example/cat.png)\n"),
            "<p><a href=\"https://img.example/cat.png\" rel=\"noopener noreferrer\">a cat</a></p>\n"
        );
        assert_eq!(
            render_markdown("![](https://img.example/cat.png)\n"),
            "<p><a href=\"https://img.example/cat.png\" rel=\"noopener noreferrer\">https://img.example/cat.png</a></p>\n"
        );
        assert!(!render_markdown("![x](javascript:alert(1))").contains("href"));
    }

    #[test]
    fn links() {
        assert_eq!(
            render_markdown("[x](https://a.example \"t\") <https://b.example>"),
            "<p><a href=\"https://a.example\" title=\"t\" rel=\"noopener noreferrer\">x</a> <a href=\"https://b.example\" rel=\"noopener noreferrer\">https://b.example</a></p>\n"
        );
        assert_eq!(
            render_markdown("[x](javascript:alert(1))"),
            "<p><a rel=\"noopener noreferrer\">x</a></p>\n"
        );
        assert_eq!(
            render_markdown("[x](#top)"),
            "<p><a rel=\"noopener noreferrer\">x</a></p>\n"
        );
    }

    #[test]
    fn task_lists_are_plain_text() {
        let out = render_markdown("- [ ] todo\n- [x] done\n");
        assert!(!out.contains("input"), "{out}");
        assert!(out.contains("[ ] todo"), "{out}");
    }
}
