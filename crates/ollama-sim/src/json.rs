//! JSON output the way Go's `encoding/json` writes it (HTML-safe escaping) plus the response
//! builders every handler uses, so content types and error bodies are identical everywhere.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

/// `application/json; charset=utf-8`, what gin's `c.JSON` sends.
pub const JSON_CT: &str = "application/json; charset=utf-8";
/// Streaming content type.
pub const NDJSON_CT: &str = "application/x-ndjson";

/// Serialises like Go: `<`, `>`, `&`, U+2028 and U+2029 are escaped. Those characters can only
/// occur inside JSON strings, so a textual replacement is exact.
pub fn to_go_json<T: Serialize + ?Sized>(v: &T) -> String {
    let s = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    if !s.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON response with gin's content type.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, v: &T) -> Response {
    let mut r = Response::new(Body::from(to_go_json(v)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CT));
    r
}

/// `{"error": message}` with a status.
pub fn error_response(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &serde_json::json!({ "error": message }))
}

/// Plain text (gin's 404/405 pages and `Ollama is running`).
pub fn text_response(status: StatusCode, text: &'static str) -> Response {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_characters_are_escaped_like_go() {
        assert_eq!(
            to_go_json(&serde_json::json!({"stop": "<|im_end|> & more"})),
            r#"{"stop":"\u003c|im_end|\u003e \u0026 more"}"#
        );
    }
}
