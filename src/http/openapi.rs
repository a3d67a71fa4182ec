//! The OpenAPI description served at `/openapi.json`: `openapi.json`, with the names of the
//! senders filled in from [`SENDERS`](crate::senders::SENDERS), so that adding a sender needs
//! no edit here.

use std::sync::OnceLock;

use serde_json::Value;

use crate::senders::Provider;

/// The description as written, without the senders' names.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The description as served.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document: Value = match serde_json::from_str(OPENAPI) {
            Ok(document) => document,
            Err(_) => return OPENAPI.to_owned(),
        };
        let names: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
        name_senders(&mut document, &names);
        document.to_string()
    })
}

/// Lists `names` as the values of every `provider` path parameter.
fn name_senders(value: &mut Value, names: &[&str]) {
    match value {
        Value::Object(object) => {
            if object.get("name").and_then(Value::as_str) == Some("provider")
                && object.get("in").and_then(Value::as_str) == Some("path")
                && let Some(schema) = object.get_mut("schema").and_then(Value::as_object_mut)
            {
                schema.remove("description");
                schema.insert("enum".into(), names.into());
            }
            object.values_mut().for_each(|v| name_senders(v, names));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| name_senders(v, names)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_parameter_lists_every_sender() {
        let served: Value = serde_json::from_str(document()).unwrap();
        let post = &served["paths"]["/webhook/{provider}"]["post"]["parameters"][0];
        let names: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(post["schema"]["enum"], serde_json::json!(names));
        let written: Value = serde_json::from_str(OPENAPI).unwrap();
        let parameter = &written["paths"]["/webhook/{provider}"]["post"]["parameters"][0];
        assert!(
            parameter["schema"].get("enum").is_none(),
            "the file leaves the names to SENDERS"
        );
    }
}
