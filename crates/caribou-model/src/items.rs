//! What an agent logs: the four item kinds.
//!
//! Field names follow the seed page (`Message(role, content, tool_calls, model, provider,
//! input_tokens, output_tokens, cost_usd)`, `ToolExecution(name, call_id, arguments, result,
//! requestor)`). `content`, `tool_calls`, `arguments`, `result` and event `data` are free JSON: a
//! string, a list of content parts, an object, whatever an OpenAI- or Anthropic-style client
//! returned. They are stored and shown as given, never reshaped.
//!
//! Unknown fields are refused (`deny_unknown_fields`), so a typo such as `input_token` is a clear
//! error instead of a silently missing figure.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::JsonMap;

/// One logged thing, tagged on the wire by `"type"`. Deserialized without buffering when `"type"`
/// comes first, as Caribou writes it (see `tagged`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Message(Message),
    ToolExecution(ToolExecution),
    Event(Event),
    Grade(Grade),
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::tagged::deserialize(d)
    }
}

impl crate::tagged::Tagged for Item {
    const TAG: &'static str = "type";
    const VARIANTS: &'static [&'static str] = &["message", "tool_execution", "event", "grade"];
    const EXPECTING: &'static str = "an item: an object with a \"type\"";

    fn variant<'de, D: serde::Deserializer<'de>>(index: usize, d: D) -> Result<Self, D::Error> {
        Ok(match index {
            0 => Item::Message(Message::deserialize(d)?),
            1 => Item::ToolExecution(ToolExecution::deserialize(d)?),
            2 => Item::Event(Event::deserialize(d)?),
            _ => Item::Grade(Grade::deserialize(d)?),
        })
    }
}

impl Item {
    /// The wire name of the kind: `message`, `tool_execution`, `event`, `grade`.
    pub fn kind(&self) -> &'static str {
        match self {
            Item::Message(_) => "message",
            Item::ToolExecution(_) => "tool_execution",
            Item::Event(_) => "event",
            Item::Grade(_) => "grade",
        }
    }
}

/// A chat message: user, assistant, system, tool, ...
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonMap>,
}

/// One run of a tool the agent called.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolExecution {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requestor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
}

/// A mark on the timeline: a retrieval, a guardrail hit, anything worth noting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "info".to_owned()
}

/// A score for a rollout: a reward, a correctness flag, a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grade {
    pub name: String,
    pub value: GradeValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonMap>,
}

/// A grade's value: a number, a bool or a string label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GradeValue {
    Bool(bool),
    Number(f64),
    Label(String),
}

impl GradeValue {
    /// The value as a number for aggregates: numbers as they are, `true` as 1 and `false` as 0,
    /// labels as none.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            GradeValue::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            GradeValue::Number(n) => Some(*n),
            GradeValue::Label(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_are_tagged_by_type() {
        let item: Item = serde_json::from_value(json!({
            "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": "hi"}],
            "input_tokens": 3, "output_tokens": 5, "cost_usd": 0.001
        }))
        .unwrap();
        let Item::Message(m) = &item else {
            panic!("not a message")
        };
        assert_eq!(m.output_tokens, Some(5));
        assert_eq!(item.kind(), "message");
        let back = serde_json::to_value(&item).unwrap();
        assert_eq!(back["type"], "message");
        assert_eq!(back["content"][0]["text"], "hi");
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        let err = serde_json::from_value::<Item>(
            json!({"type": "message", "role": "user", "input_token": 3}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("input_token"), "{err}");
        let err = serde_json::from_value::<Item>(json!({"type": "span", "name": "x"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("span"), "{err}");
    }

    #[test]
    fn grade_values() {
        let g: Grade = serde_json::from_value(json!({"name": "correct", "value": true})).unwrap();
        assert_eq!(g.value.as_f64(), Some(1.0));
        let g: Grade = serde_json::from_value(json!({"name": "reward", "value": 0.25})).unwrap();
        assert_eq!(g.value, GradeValue::Number(0.25));
        let g: Grade = serde_json::from_value(json!({"name": "label", "value": "good"})).unwrap();
        assert_eq!(g.value.as_f64(), None);
        let e: Event = serde_json::from_value(json!({"name": "retrieval"})).unwrap();
        assert_eq!(e.level, "info");
    }
}
