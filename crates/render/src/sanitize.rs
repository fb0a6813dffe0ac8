//! The HTML allow-list every rendered fragment goes through before it reaches the webview.
//!
//! The list is deliberately tight: only the elements plain Markdown produces, only three
//! attributes that matter (`href`, `title`, `start`), `class` only for code-block languages, and
//! links only to `http`, `https` and `mailto`. Everything else is dropped, including relative
//! URLs (the chat window has nothing to link to locally, and a relative `href` would navigate the
//! webview itself).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use ammonia::{Builder, UrlRelative};

/// Elements allowed in rendered output: exactly what CommonMark + GFM tables/strikethrough emit,
/// minus images, raw HTML and task-list checkboxes.
pub const ALLOWED_TAGS: &[&str] = &[
    "p",
    "br",
    "hr",
    "em",
    "strong",
    "del",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
];

/// URL schemes a link may keep; any other scheme (and any relative URL) loses its `href`.
pub const ALLOWED_SCHEMES: &[&str] = &["http", "https", "mailto"];

/// Longest language name kept in a `language-…` class.
const MAX_LANGUAGE_LEN: usize = 20;

// Building the ammonia policy allocates a dozen sets; do it once per process.
static POLICY: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut b = Builder::empty();
    let tag_attributes: HashMap<&'static str, HashSet<&'static str>> = [
        ("a", HashSet::from(["href", "title"])),
        ("ol", HashSet::from(["start"])),
        ("code", HashSet::from(["class"])),
    ]
    .into_iter()
    .collect();
    b.tags(ALLOWED_TAGS.iter().copied().collect())
        .clean_content_tags(HashSet::from(["script", "style"]))
        .tag_attributes(tag_attributes)
        .generic_attributes(HashSet::new())
        .url_schemes(ALLOWED_SCHEMES.iter().copied().collect())
        .url_relative(UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer"))
        .strip_comments(true)
        .attribute_filter(filter_attribute);
    b
});

fn filter_attribute<'u>(element: &str, attribute: &str, value: &'u str) -> Option<Cow<'u, str>> {
    match (element, attribute) {
        ("code", "class") => is_language_class(value).then_some(Cow::Borrowed(value)),
        ("ol", "start") => {
            (!value.is_empty() && value.len() <= 9 && value.bytes().all(|c| c.is_ascii_digit()))
                .then_some(Cow::Borrowed(value))
        }
        _ => Some(Cow::Borrowed(value)),
    }
}

/// Whether `class` is exactly one `language-[a-z0-9+#-]{1,20}` token (the only class allowed).
pub fn is_language_class(class: &str) -> bool {
    class
        .strip_prefix("language-")
        .is_some_and(is_language_name)
}

/// Whether `name` is a language name we keep: 1–20 of `a-z 0-9 + # -`.
pub fn is_language_name(name: &str) -> bool {
    (1..=MAX_LANGUAGE_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'+' | b'#' | b'-'))
}

/// Runs `html` through the allow-list and returns what survives.
pub fn sanitize_html(html: &str) -> String {
    POLICY.clean(html).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_names() {
        assert!(is_language_name("rust"));
        assert!(is_language_name("c++"));
        assert!(is_language_name("c#"));
        assert!(is_language_name("objective-c"));
        assert!(!is_language_name(""));
        assert!(!is_language_name("Rust"));
        assert!(!is_language_name("a b"));
        assert!(!is_language_name("x\"onload=1"));
        assert!(!is_language_name(&"a".repeat(21)));
        assert!(is_language_class("language-python"));
        assert!(!is_language_class("language-"));
        assert!(!is_language_class("foo language-python"));
    }

    #[test]
    fn allow_list_strips_what_is_not_listed() {
        let out = sanitize_html(
            r#"<p id="x" class="c" style="color:red" onclick="alert(1)">hi<img src=x onerror=alert(1)><script>alert(1)</script></p>"#,
        );
        assert_eq!(out, "<p>hi</p>");
    }

    #[test]
    fn links_keep_only_allowed_schemes() {
        assert_eq!(
            sanitize_html(r#"<a href="https://a.example/x">a</a>"#),
            r#"<a href="https://a.example/x" rel="noopener noreferrer">a</a>"#
        );
        assert_eq!(
            sanitize_html(r#"<a href="javascript:alert(1)">a</a>"#),
            r#"<a rel="noopener noreferrer">a</a>"#
        );
        assert_eq!(
            sanitize_html(r#"<a href="/etc/passwd">a</a>"#),
            r#"<a rel="noopener noreferrer">a</a>"#
        );
        assert_eq!(
            sanitize_html(r#"<a href="mailto:a@b.example">a</a>"#),
            r#"<a href="mailto:a@b.example" rel="noopener noreferrer">a</a>"#
        );
    }

    #[test]
    fn code_class_is_filtered() {
        assert_eq!(
            sanitize_html(r#"<code class="language-rust">x</code>"#),
            r#"<code class="language-rust">x</code>"#
        );
        assert_eq!(
            sanitize_html(r#"<code class="evil">x</code>"#),
            "<code>x</code>"
        );
        assert_eq!(
            sanitize_html(r#"<ol start="3" reversed><li>x</li></ol>"#),
            r#"<ol start="3"><li>x</li></ol>"#
        );
        assert_eq!(
            sanitize_html(r#"<ol start="3x"><li>x</li></ol>"#),
            "<ol><li>x</li></ol>"
        );
    }
}
