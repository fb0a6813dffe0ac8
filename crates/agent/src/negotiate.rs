//! `Accept` negotiation for `/metrics` and the parser of the write routes' JSON body.

use serde::Deserialize;

/// The exposition format of one scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Longest `Accept` value looked at; Prometheus sends about 200 bytes.
const MAX_ACCEPT: usize = 2048;

/// Picks the format from an `Accept` header: OpenMetrics when the client weighs it at least as
/// high as anything else we can serve (Prometheus asks `openmetrics-text;q=0.5,
/// text/plain;q=0.4` or similar), else the text format. Unknown or malformed parts are skipped;
/// no header means text.
pub fn negotiate(accept: Option<&[u8]>) -> Format {
    let Some(accept) = accept.filter(|a| a.len() <= MAX_ACCEPT) else {
        return Format::Text;
    };
    let Ok(accept) = std::str::from_utf8(accept) else {
        return Format::Text;
    };
    let mut om = 0.0_f32;
    let mut text = 0.0_f32;
    for part in accept.split(',') {
        let mut params = part.split(';');
        let media = params.next().unwrap_or("").trim();
        let mut q = 1.0_f32;
        let mut version: Option<&str> = None;
        for p in params {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "q" => {
                    q = v
                        .parse::<f32>()
                        .ok()
                        .filter(|q| q.is_finite())
                        .unwrap_or(0.0)
                }
                "version" => version = Some(v),
                _ => {}
            }
        }
        let q = q.clamp(0.0, 1.0);
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            // 0.0.1 is the pre-1.0 name of the same format; anything else we cannot promise.
            if matches!(version, None | Some("1.0.0") | Some("0.0.1")) {
                om = om.max(q);
            }
        } else if media.eq_ignore_ascii_case("text/plain")
            || media.eq_ignore_ascii_case("text/*")
            || media == "*/*"
        {
            text = text.max(q);
        }
    }
    if om > 0.0 && om >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// Largest body a write route reads.
pub const MAX_BODY: usize = 4096;

/// The optional body of `POST /api/v1/warm` and `/api/v1/unload`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// When given, must name the model the agent keeps warm: guards a client that thinks it
    /// talks to another host.
    #[serde(default)]
    pub model: Option<String>,
}

/// Why a body was refused (the HTTP status is 400 for all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body over {MAX_BODY} bytes")]
    TooLarge,
    #[error("request body is not a JSON object {{\"model\": \"…\"}}: {0}")]
    Invalid(String),
}

/// Parses a write route's body: empty, or a JSON object with an optional `model`.
pub fn parse_action(body: &[u8]) -> Result<ActionRequest, BodyError> {
    if body.len() > MAX_BODY {
        return Err(BodyError::TooLarge);
    }
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(ActionRequest::default()),
        // serde would also take `[]` or `[null]` for this struct.
        Some(b'{') => {}
        Some(_) => return Err(BodyError::Invalid("expected a JSON object".into())),
    }
    serde_json::from_slice(body).map_err(|e| BodyError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_accept_headers() {
        // Prometheus 2.x with OpenMetrics enabled, and its default.
        let om = b"application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(negotiate(Some(om)), Format::OpenMetrics);
        let text = b"text/plain;version=0.0.4;q=1,*/*;q=0.1";
        assert_eq!(negotiate(Some(text)), Format::Text);
        assert_eq!(negotiate(None), Format::Text);
        assert_eq!(negotiate(Some(b"*/*")), Format::Text);
        assert_eq!(
            negotiate(Some(b"application/openmetrics-text")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some(b"application/openmetrics-text;version=2.0.0")),
            Format::Text
        );
        assert_eq!(
            negotiate(Some(b"application/openmetrics-text;q=0")),
            Format::Text
        );
        assert_eq!(negotiate(Some(b"\xff\xfe")), Format::Text);
    }

    #[test]
    fn action_bodies() {
        assert_eq!(parse_action(b""), Ok(ActionRequest::default()));
        assert_eq!(parse_action(b" \n"), Ok(ActionRequest::default()));
        assert_eq!(
            parse_action(br#"{"model":"m"}"#),
            Ok(ActionRequest {
                model: Some("m".into())
            })
        );
        assert!(matches!(
            parse_action(br#"{"other":1}"#),
            Err(BodyError::Invalid(_))
        ));
        assert!(matches!(parse_action(b"[]"), Err(BodyError::Invalid(_))));
        assert_eq!(
            parse_action(&[b' '; MAX_BODY + 1]),
            Err(BodyError::TooLarge)
        );
    }
}
