//! Thinking and images on `/api/chat` and `/api/generate` (fact sheet §2 `think`): which
//! requests think and how much, and which may carry images, with Ollama's error texts.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::catalog::Model;
use crate::generate::Kind;

/// Ollama's answer to images sent to a model without a vision projector
/// (`model/model.go` `ErrNoVisionModel`). The status differs between reports (400/500);
/// the simulator answers 400.
pub(crate) const NO_VISION: &str = "this model is missing data required for image input";

/// How much a request thinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Think {
    Off,
    Low,
    /// `true`, `"medium"`, or the default for a thinking model.
    Medium,
    /// `"high"` or `"max"` (`"max"` becomes `"high"` for gpt-oss).
    High,
}

/// Whether a model takes thinking levels only and cannot stop thinking (gpt-oss / harmony).
pub(crate) fn levels_only(model: &Model) -> bool {
    model.arch == "gptoss"
}

/// Resolves `think` against the model: absent means on for a thinking model (the server sets
/// it), `think:true` or a level on a model without the capability is a 400.
pub(crate) fn resolve_think(model: &Model, think: Option<&Value>) -> Result<Think, (u16, String)> {
    let capable = model.capabilities.iter().any(|c| c == "thinking");
    let asked = match think {
        None | Some(Value::Null) => {
            return Ok(if capable { Think::Medium } else { Think::Off });
        }
        Some(Value::Bool(false)) => Think::Off,
        Some(Value::Bool(true)) => Think::Medium,
        Some(Value::String(s)) => match s.as_str() {
            "low" => Think::Low,
            "medium" => Think::Medium,
            "high" | "max" => Think::High,
            other => {
                return Err((
                    400,
                    format!(
                        "invalid think value: {other:?} (must be \"high\", \"medium\", \"low\", \"max\", true, or false)"
                    ),
                ));
            }
        },
        Some(other) => {
            return Err((
                400,
                format!(
                    "invalid think value: {other} (must be \"high\", \"medium\", \"low\", \"max\", true, or false)"
                ),
            ));
        }
    };
    if asked != Think::Off && !capable {
        return Err((400, format!("\"{}\" does not support thinking", model.name)));
    }
    // gpt-oss cannot turn thinking off: `false` is ignored and it reasons at its default.
    if asked == Think::Off && capable && levels_only(model) {
        return Ok(Think::Medium);
    }
    Ok(asked)
}

/// The trace for a level: `low` is the first sentence, `high` adds a sentence.
pub(crate) fn thinking_text(base: &str, level: Think) -> String {
    match level {
        Think::Off => String::new(),
        Think::Low => match base.find(". ") {
            Some(i) => base[..=i].to_string(),
            None => base.to_string(),
        },
        Think::Medium => base.to_string(),
        Think::High => format!("{base} Let me double-check that before answering."),
    }
}

/// Images in the request (generate `images`, or every chat message's `images`), each checked
/// to be base64 as Go's JSON decoder of `[]byte` requires.
pub(crate) fn count_images(kind: Kind, req: &Map<String, Value>) -> Result<usize, String> {
    let lists: Vec<&Value> = match kind {
        Kind::Generate => req.get("images").into_iter().collect(),
        Kind::Chat => req
            .get("messages")
            .and_then(Value::as_array)
            .map(|ms| ms.iter().filter_map(|m| m.get("images")).collect())
            .unwrap_or_default(),
    };
    let mut n = 0;
    for list in lists {
        let Some(items) = list.as_array() else {
            if list.is_null() {
                continue;
            }
            return Err(format!(
                "json: cannot unmarshal {} into Go struct field .images of type []api.ImageData",
                type_name(list)
            ));
        };
        for item in items {
            let Some(text) = item.as_str() else {
                return Err(format!(
                    "json: cannot unmarshal {} into Go struct field .images of type api.ImageData",
                    type_name(item)
                ));
            };
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| match e {
                    base64::DecodeError::InvalidByte(at, _)
                    | base64::DecodeError::InvalidLastSymbol(at, _) => {
                        format!("illegal base64 data at input byte {at}")
                    }
                    _ => format!("illegal base64 data at input byte {}", text.len()),
                })?;
            n += 1;
        }
    }
    Ok(n)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
    }
}

/// What a vision model says about the images it got, before its reply.
pub(crate) fn image_preamble(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => "I see 1 image. ".into(),
        n => format!("I see {n} images. "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::scenario::Scenario;
    use serde_json::json;

    #[test]
    fn think_defaults_and_errors() {
        let cat = Catalog::build(&Scenario::default()).expect("catalog");
        let qwen3 = cat.get("qwen3:8b").expect("qwen3");
        let llama = cat.get("llama3.2:3b").expect("llama");
        let oss = cat.get("gpt-oss:20b").expect("gpt-oss");
        assert_eq!(resolve_think(qwen3, None), Ok(Think::Medium));
        assert_eq!(resolve_think(qwen3, Some(&json!(false))), Ok(Think::Off));
        assert_eq!(resolve_think(llama, None), Ok(Think::Off));
        assert_eq!(resolve_think(llama, Some(&json!(false))), Ok(Think::Off));
        assert_eq!(
            resolve_think(llama, Some(&json!(true))),
            Err((400, "\"llama3.2:3b\" does not support thinking".into()))
        );
        assert_eq!(resolve_think(oss, Some(&json!(false))), Ok(Think::Medium));
        assert_eq!(resolve_think(oss, Some(&json!("max"))), Ok(Think::High));
        let bad = resolve_think(qwen3, Some(&json!("banana"))).expect_err("bad level");
        assert_eq!(
            bad.1,
            "invalid think value: \"banana\" (must be \"high\", \"medium\", \"low\", \"max\", true, or false)"
        );
    }

    #[test]
    fn images_are_counted_and_checked() {
        let req = json!({"messages":[{"role":"user","content":"a","images":["aGk=","aGk="]},
            {"role":"user","content":"b","images":["aGk="]}]});
        let m = req.as_object().expect("object");
        assert_eq!(count_images(Kind::Chat, m), Ok(3));
        let bad = json!({"images":["a!!"]});
        assert_eq!(
            count_images(Kind::Generate, bad.as_object().expect("object")),
            Err("illegal base64 data at input byte 1".into())
        );
    }
}
