//! The resolved model catalog: derived models merged over their bases, digests and blob paths
//! filled in, and the JSON that `/api/tags` and `/api/show` return for each model.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::duration::go_quote;
use crate::error::{Result, SimError};
use crate::scenario::{ModelSpec, Scenario};

/// A model with every field known.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub name: String,
    pub digest: String,
    pub weights_digest: String,
    /// `<models_dir>/blobs/sha256-<weights hex>`: also the scheduler key.
    pub blob_path: String,
    pub file_size: u64,
    pub arch: String,
    pub family: String,
    pub families: Vec<String>,
    pub parameter_size: String,
    pub parameter_count: u64,
    pub quantization: String,
    pub file_type: u64,
    pub block_count: u64,
    pub context_length: u64,
    pub embedding_length: u64,
    pub head_count: u64,
    pub head_count_kv: u64,
    pub key_length: Option<u64>,
    pub value_length: Option<u64>,
    pub capabilities: Vec<String>,
    pub template: String,
    pub system: String,
    pub license: String,
    pub parameters: BTreeMap<String, Value>,
    pub extra_model_info: BTreeMap<String, Value>,
    pub modified_at: String,
    /// Base model name for derived models, else `""`.
    pub parent_model: String,
}

impl Model {
    /// f16 KV bytes per token of context (one slot).
    pub fn kv_bytes_per_token(&self) -> u64 {
        let head_dim = self.embedding_length / self.head_count.max(1);
        let k = self.key_length.unwrap_or(head_dim);
        let v = self.value_length.unwrap_or(head_dim);
        self.block_count * self.head_count_kv * (k + v) * 2
    }

    /// `size` in `/api/tags`: the sum of all manifest layers.
    pub fn manifest_size(&self) -> u64 {
        let params = serde_json::to_string(&self.parameters).map_or(0, |s| s.len());
        self.file_size
            + self.template.len() as u64
            + self.system.len() as u64
            + self.license.len() as u64
            + params as u64
            + 485
    }

    fn details(&self, with_lengths: bool) -> Value {
        let mut d = json!({
            "parent_model": self.parent_model,
            "format": "gguf",
            "family": self.family,
            "families": self.families,
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization,
        });
        if with_lengths && let Some(o) = d.as_object_mut() {
            o.insert("context_length".into(), json!(self.context_length));
            o.insert("embedding_length".into(), json!(self.embedding_length));
        }
        d
    }

    /// `details` as `/api/show` and `/api/ps` print it (no lengths for local models).
    pub fn details_json(&self) -> Value {
        self.details(false)
    }

    /// One `/api/tags` entry.
    pub fn tags_entry(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "model": self.name,
            "modified_at": self.modified_at,
            "size": self.manifest_size(),
            "digest": self.digest,
            "details": self.details(true),
        });
        if !self.capabilities.is_empty()
            && let Some(o) = v.as_object_mut()
        {
            o.insert("capabilities".into(), json!(self.capabilities));
        }
        v
    }

    /// GGUF key/values as `/api/show` `model_info`.
    pub fn model_info(&self) -> Map<String, Value> {
        let a = &self.arch;
        let mut m = Map::new();
        m.insert("general.architecture".into(), json!(a));
        m.insert("general.file_type".into(), json!(self.file_type));
        m.insert(
            "general.parameter_count".into(),
            json!(self.parameter_count),
        );
        m.insert(format!("{a}.block_count"), json!(self.block_count));
        m.insert(format!("{a}.context_length"), json!(self.context_length));
        m.insert(
            format!("{a}.embedding_length"),
            json!(self.embedding_length),
        );
        m.insert(format!("{a}.attention.head_count"), json!(self.head_count));
        m.insert(
            format!("{a}.attention.head_count_kv"),
            json!(self.head_count_kv),
        );
        if let Some(k) = self.key_length {
            m.insert(format!("{a}.attention.key_length"), json!(k));
        }
        if let Some(v) = self.value_length {
            m.insert(format!("{a}.attention.value_length"), json!(v));
        }
        for (k, v) in &self.extra_model_info {
            m.insert(k.clone(), v.clone());
        }
        m
    }

    /// The `parameters` text: `%-30s %#v` per value, array keys repeated.
    pub fn parameters_text(&self) -> String {
        let mut lines = Vec::new();
        for (k, v) in &self.parameters {
            match v {
                Value::Array(items) => {
                    for item in items {
                        lines.push(format!("{k:<30} {}", go_sharp_v(item)));
                    }
                }
                other => lines.push(format!("{k:<30} {}", go_sharp_v(other))),
            }
        }
        lines.join("\n")
    }

    /// The modelfile `ollama show --modelfile` prints.
    pub fn modelfile(&self) -> String {
        let mut s = String::new();
        s.push_str("# Modelfile generated by \"ollama show\"\n");
        s.push_str("# To build a new Modelfile based on this, replace FROM with:\n");
        s.push_str(&format!("# FROM {}\n\n", self.name));
        s.push_str(&format!("FROM {}\n", self.blob_path));
        if !self.template.is_empty() {
            s.push_str(&format!("TEMPLATE \"\"\"{}\"\"\"\n", self.template));
        }
        if !self.system.is_empty() {
            s.push_str(&format!("SYSTEM \"\"\"{}\"\"\"\n", self.system));
        }
        for (k, v) in &self.parameters {
            let vals: Vec<&Value> = match v {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for v in vals {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(_) => go_float(v.as_f64().unwrap_or(0.0)),
                    other => other.to_string(),
                };
                s.push_str(&format!("PARAMETER {k} {text}\n"));
            }
        }
        if !self.license.is_empty() {
            s.push_str(&format!("LICENSE \"\"\"{}\"\"\"\n", self.license));
        }
        s
    }

    /// The `/api/show` response body.
    pub fn show_json(&self) -> Value {
        let mut o = Map::new();
        let mut put_str = |k: &str, v: &str| {
            if !v.is_empty() {
                o.insert(k.into(), json!(v));
            }
        };
        put_str("license", &self.license);
        put_str("modelfile", &self.modelfile());
        put_str("parameters", &self.parameters_text());
        put_str("template", &self.template);
        put_str("system", &self.system);
        o.insert("details".into(), self.details_json());
        o.insert("model_info".into(), Value::Object(self.model_info()));
        o.insert("tensors".into(), self.tensors());
        o.insert("capabilities".into(), json!(self.capabilities));
        o.insert("modified_at".into(), json!(self.modified_at));
        Value::Object(o)
    }

    fn tensors(&self) -> Value {
        json!([
            {"name": "token_embd.weight", "type": "Q6_K", "shape": [self.embedding_length, 128_256]},
            {"name": "blk.0.attn_k.weight", "type": "Q4_K",
             "shape": [self.embedding_length, self.head_count_kv * self.key_length.unwrap_or(self.embedding_length / self.head_count.max(1))]},
            {"name": "output_norm.weight", "type": "F32", "shape": [self.embedding_length]},
        ])
    }
}

/// Go's `%#v` for a JSON-decoded value (numbers are float64 after decoding).
pub fn go_sharp_v(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Number(n) => go_float(n.as_f64().unwrap_or(0.0)),
        Value::Bool(b) => b.to_string(),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

/// Go's `%v` of a float64: shortest round-trip digits; the `%e` form is chosen when the
/// decimal exponent is < -4 or >= 6 (Go's rule for shortest `%g`), so 1000000 prints as
/// `1e+06` and 131072 as `131072`.
pub fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let sci = format!("{:e}", f.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits.clone()
        };
        let es = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{es}{:02}", exp.abs());
    }
    let dp = exp + 1;
    let nd = digits.len() as i32;
    let body = if dp <= 0 {
        format!("0.{}{}", "0".repeat((-dp) as usize), digits)
    } else if dp >= nd {
        format!("{}{}", digits, "0".repeat((dp - nd) as usize))
    } else {
        format!("{}.{}", &digits[..dp as usize], &digits[dp as usize..])
    };
    format!("{sign}{body}")
}

/// Deterministic 64-hex pseudo digest for models whose scenario gives none.
pub fn fake_hex(seed: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = String::with_capacity(64);
    for _ in 0..4 {
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.push_str(&format!("{z:016x}"));
    }
    out
}

/// `name` with `:latest` added when it has no tag.
pub fn normalize_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// All models of a scenario, resolved.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub models: Vec<Model>,
}

impl Catalog {
    /// Resolves `from` chains and fills defaults.
    pub fn build(sc: &Scenario) -> Result<Catalog> {
        let specs: BTreeMap<String, &ModelSpec> = sc
            .models
            .iter()
            .map(|m| (normalize_name(&m.name), m))
            .collect();
        let mut models = Vec::new();
        for spec in &sc.models {
            models.push(resolve(sc, &specs, spec, 0)?);
        }
        Ok(Catalog { models })
    }

    /// Resolves the models `/api/pull` can fetch (`from` may name a catalog model).
    pub fn build_registry(sc: &Scenario) -> Result<Catalog> {
        let specs: BTreeMap<String, &ModelSpec> = sc
            .models
            .iter()
            .chain(&sc.registry)
            .map(|m| (normalize_name(&m.name), m))
            .collect();
        let mut models = Vec::new();
        for spec in &sc.registry {
            models.push(resolve(sc, &specs, spec, 0)?);
        }
        Ok(Catalog { models })
    }

    /// Looks a model up by name (`:latest` implied).
    pub fn get(&self, name: &str) -> Option<&Model> {
        let n = normalize_name(name);
        self.models.iter().find(|m| m.name == n)
    }
}

fn resolve(
    sc: &Scenario,
    specs: &BTreeMap<String, &ModelSpec>,
    spec: &ModelSpec,
    depth: usize,
) -> Result<Model> {
    let name = normalize_name(&spec.name);
    if spec.name.is_empty() {
        return Err(SimError::InvalidScenario(
            "a model has an empty name".into(),
        ));
    }
    if depth > 8 {
        return Err(SimError::InvalidScenario(format!(
            "model {name}: `from` chain is too deep or cyclic"
        )));
    }
    let base = match &spec.from {
        Some(b) => {
            let bspec = specs.get(&normalize_name(b)).ok_or_else(|| {
                SimError::InvalidScenario(format!(
                    "model {name}: base model {b:?} is not in the catalog"
                ))
            })?;
            Some(resolve(sc, specs, bspec, depth + 1)?)
        }
        None => None,
    };
    let digest = spec
        .digest
        .clone()
        .unwrap_or_else(|| fake_hex(&format!("manifest:{name}")));
    let mut m = match base {
        Some(b) => {
            let mut parameters = b.parameters.clone();
            parameters.extend(spec.parameters.clone());
            let mut extra = b.extra_model_info.clone();
            extra.extend(spec.extra_model_info.clone());
            Model {
                name: name.clone(),
                digest,
                parent_model: b.name.clone(),
                parameters,
                extra_model_info: extra,
                system: spec.system.clone().unwrap_or(b.system.clone()),
                template: spec.template.clone().unwrap_or(b.template.clone()),
                license: spec.license.clone().unwrap_or(b.license.clone()),
                modified_at: spec.modified_at.clone().unwrap_or(b.modified_at.clone()),
                ..b
            }
        }
        None => {
            let family = spec.family.clone().unwrap_or_else(|| "llama".into());
            let weights_digest = spec
                .weights_digest
                .clone()
                .unwrap_or_else(|| fake_hex(&format!("weights:{name}")));
            Model {
                name: name.clone(),
                digest,
                blob_path: String::new(),
                weights_digest,
                file_size: spec.file_size.unwrap_or(2_019_377_376),
                arch: spec.arch.clone().unwrap_or_else(|| family.clone()),
                families: spec
                    .families
                    .clone()
                    .unwrap_or_else(|| vec![family.clone()]),
                family,
                parameter_size: spec.parameter_size.clone().unwrap_or_else(|| "3.2B".into()),
                parameter_count: spec.parameter_count.unwrap_or(3_212_749_888),
                quantization: spec.quantization.clone().unwrap_or_else(|| "Q4_K_M".into()),
                file_type: spec.file_type.unwrap_or(15),
                block_count: spec.block_count.unwrap_or(28),
                context_length: spec.context_length.unwrap_or(131_072),
                embedding_length: spec.embedding_length.unwrap_or(3072),
                head_count: spec.head_count.unwrap_or(24),
                head_count_kv: spec.head_count_kv.unwrap_or(8),
                key_length: spec.key_length,
                value_length: spec.value_length,
                capabilities: spec
                    .capabilities
                    .clone()
                    .unwrap_or_else(|| vec!["completion".into()]),
                template: spec
                    .template
                    .clone()
                    .unwrap_or_else(|| "{{ .Prompt }}".into()),
                system: spec.system.clone().unwrap_or_default(),
                license: spec.license.clone().unwrap_or_default(),
                parameters: spec.parameters.clone(),
                extra_model_info: spec.extra_model_info.clone(),
                modified_at: spec
                    .modified_at
                    .clone()
                    .unwrap_or_else(|| "2025-09-01T12:00:00.000000000Z".into()),
                parent_model: String::new(),
            }
        }
    };
    if m.head_count == 0 || m.block_count == 0 {
        return Err(SimError::InvalidScenario(format!(
            "model {name}: head_count and block_count must be > 0"
        )));
    }
    m.blob_path = format!(
        "{}/blobs/sha256-{}",
        sc.models_dir.trim_end_matches('/'),
        m.weights_digest
    );
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_matches_go_percent_v() {
        assert_eq!(go_float(8192.0), "8192");
        assert_eq!(go_float(131072.0), "131072");
        assert_eq!(go_float(0.7), "0.7");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(1_234_567.0), "1.234567e+06");
        assert_eq!(go_float(500_000.0), "500000");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(-1.0), "-1");
        assert_eq!(go_float(1.05), "1.05");
    }

    #[test]
    fn parameters_text_format() {
        let sc = Scenario::default();
        let cat = Catalog::build(&sc).expect("catalog");
        let q = cat.get("qwen2.5:7b").expect("qwen");
        let text = q.parameters_text();
        let expected = [
            "repeat_penalty                 1.05",
            "stop                           \"<|im_start|>\"",
            "stop                           \"<|im_end|>\"",
            "temperature                    0.7",
            "top_p                          0.8",
        ]
        .join("\n");
        assert_eq!(text, expected);
    }

    #[test]
    fn derived_model_shares_blob_and_merges_parameters() {
        let cat = Catalog::build(&Scenario::default()).expect("catalog");
        let base = cat.get("llama3.2:3b").expect("base");
        let d = cat.get("yollayah-old").expect("derived");
        assert_eq!(d.blob_path, base.blob_path);
        assert_ne!(d.digest, base.digest);
        assert_eq!(d.parent_model, "llama3.2:3b");
        assert_eq!(d.parameters.get("num_ctx"), Some(&json!(131072)));
        assert_eq!(d.parameters.get("stop"), base.parameters.get("stop"));
        assert!(
            d.modelfile()
                .contains(&format!("\nFROM {}\n", base.blob_path))
        );
        assert!(d.system.starts_with("You are Yollayah"));
    }
}
