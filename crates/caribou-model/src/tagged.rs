//! Reading the internally tagged enums ([`crate::Record`] by `"kind"`, [`crate::Item`] by
//! `"type"`) without buffering them first.
//!
//! `serde`'s derived form for an internally tagged enum cannot know the variant before it has
//! seen the tag, which may come last, so it reads the whole object into an intermediate tree and
//! deserializes the variant from that: for an item record, the record and then its item are
//! each read twice, with an allocation per string. Caribou writes the tag first, so here the first
//! key is looked at: when it is the tag, the variant's own `Deserialize` reads the rest of the
//! object straight from the input. Otherwise (a hand-written client) the object is read into a
//! `serde_json` map and the variant deserialized from it, as before; only then do error messages
//! lose the path inside the record (`records[3]` is still named by the caller).
//!
//! Same answers as the derived form: an unknown tag value is `unknown variant`, a missing tag is
//! `missing field`, a repeated tag is `duplicate field`; unknown fields are refused by the
//! variants (`deny_unknown_fields`), the tag itself never reaching them.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Error as _, MapAccess, Visitor};
use serde_json::Value;

/// An enum tagged by a field of its object.
pub(crate) trait Tagged: Sized {
    /// The tag's key.
    const TAG: &'static str;
    /// The tag's values, in the order [`Tagged::variant`] numbers them.
    const VARIANTS: &'static [&'static str];
    /// What the input should have been, for error messages.
    const EXPECTING: &'static str;

    /// Reads variant number `index` from the object's fields other than the tag.
    fn variant<'de, D: Deserializer<'de>>(index: usize, fields: D) -> Result<Self, D::Error>;
}

/// `T` from an object whose tag field names its variant.
pub(crate) fn deserialize<'de, T: Tagged, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(TaggedVisitor::<T>(PhantomData))
}

struct TaggedVisitor<T>(PhantomData<T>);

impl<'de, T: Tagged> Visitor<'de> for TaggedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let key = KeySeed { tag: T::TAG };
        let variant = VariantSeed {
            variants: T::VARIANTS,
        };
        match map.next_key_seed(key)? {
            None => Err(A::Error::missing_field(T::TAG)),
            // The way Caribou writes it: read the variant straight from the input.
            Some(Key::Tag) => {
                let index = map.next_value_seed(variant)?;
                T::variant(index, MapAccessDeserializer::new(map))
            }
            Some(Key::Other(first)) => {
                let mut fields = serde_json::Map::new();
                fields.insert(first, map.next_value()?);
                let mut index = None;
                while let Some(k) = map.next_key_seed(key)? {
                    match k {
                        Key::Tag if index.is_some() => {
                            return Err(A::Error::duplicate_field(T::TAG));
                        }
                        Key::Tag => index = Some(map.next_value_seed(variant)?),
                        Key::Other(k) => {
                            let v: Value = map.next_value()?;
                            fields.insert(k, v);
                        }
                    }
                }
                let index = index.ok_or_else(|| A::Error::missing_field(T::TAG))?;
                T::variant(index, Value::Object(fields)).map_err(A::Error::custom)
            }
        }
    }
}

/// A key of the object: the tag (no allocation), or another one.
enum Key {
    Tag,
    Other(String),
}

#[derive(Clone, Copy)]
struct KeySeed {
    tag: &'static str,
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(if v == self.tag {
            Key::Tag
        } else {
            Key::Other(v.to_owned())
        })
    }
}

/// The tag's value, as the index of the variant it names.
#[derive(Clone, Copy)]
struct VariantSeed {
    variants: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for VariantSeed {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for VariantSeed {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {}", self.variants.join(", "))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        self.variants
            .iter()
            .position(|name| *name == v)
            .ok_or_else(|| E::unknown_variant(v, self.variants))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{Batch, Item, Record};

    fn records() -> Vec<serde_json::Value> {
        let id = "0190c7a0-0000-7000-8000-000000000001";
        let base = |kind: &str| json!({"kind": kind, "id": id, "trace_id": "trc_a", "ts": 1_700_000_000_000_000_i64});
        let with = |kind: &str, extra: serde_json::Value| {
            let mut v = base(kind);
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        vec![
            with(
                "trace_open",
                json!({"turn_id": id, "project": "p", "phase": "train", "step": 3, "metadata": {"a": [1]}}),
            ),
            with(
                "item",
                json!({"turn_id": id, "item": {"type": "message", "role": "user", "content": [{"type": "text"}], "cost_usd": 0.5}}),
            ),
            with(
                "item",
                json!({"item": {"type": "tool_execution", "name": "search", "result": {"type": "x"}}}),
            ),
            with(
                "item",
                json!({"item": {"type": "event", "name": "e", "data": {"kind": "not the tag"}, "level": "info"}}),
            ),
            with(
                "item",
                json!({"item": {"type": "grade", "name": "g", "value": true}}),
            ),
            with("status", json!({"status": "ERROR"})),
            with("error", json!({"message": "boom", "traceback": "tb"})),
            with("metadata", json!({"metadata": {"k": "v"}})),
            with("tags", json!({"tags": ["a", "b"]})),
            with("trace_close", json!({"turn_id": id, "status": "COMPLETED"})),
        ]
    }

    /// The same object with its keys in reverse order (the tag last), nested objects too.
    fn reversed(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => serde_json::Value::Object(
                m.iter()
                    .rev()
                    .map(|(k, v)| (k.clone(), reversed(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    #[test]
    fn every_kind_reads_the_same_with_the_tag_first_or_last_and_round_trips() {
        for value in records() {
            let text = value.to_string();
            let first: Record = serde_json::from_str(&text).unwrap();
            let last: Record = serde_json::from_str(&reversed(&value).to_string()).unwrap();
            assert_eq!(first, last, "{text}");
            assert_eq!(serde_json::to_value(&first).unwrap(), value);
            // From a tree too (the slow path's own input).
            assert_eq!(
                serde_json::from_value::<Record>(value.clone()).unwrap(),
                first
            );
        }
        let batch = json!({"records": records()}).to_string();
        assert_eq!(
            serde_json::from_str::<Batch>(&batch).unwrap().records.len(),
            10
        );
    }

    #[test]
    fn bad_tags_and_fields_are_named() {
        let err = |text: &str| {
            serde_json::from_str::<Record>(text)
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(r#"{"kind": "span", "id": "x"}"#)
                .contains("unknown variant `span`, expected one of `trace_open`")
        );
        assert!(err(r#"{"id": "x", "kind": "span"}"#).contains("unknown variant `span`"));
        assert!(err(r#"{"id": "x"}"#).contains("missing field `kind`"));
        assert!(err(r#"{}"#).contains("missing field `kind`"));
        assert!(
            err(r#"{"id": "x", "kind": "status", "kind": "status"}"#)
                .contains("duplicate field `kind`")
        );
        assert!(err(r#"[1]"#).contains("a record: an object with a \"kind\""));
        let unknown = r#"{"kind": "status", "id": "0190c7a0-0000-7000-8000-000000000001", "trace_id": "t", "ts": 1, "status": "ERROR", "colour": 1}"#;
        assert!(err(unknown).contains("unknown field `colour`"));
        let item = |item: &str| serde_json::from_str::<Item>(item).unwrap_err().to_string();
        assert!(item(r#"{"type": "video"}"#).contains("unknown variant `video`"));
        assert!(
            item(r#"{"role": "user", "type": "message", "input_token": 3}"#)
                .contains("input_token")
        );
        assert!(
            item(r#"{"type": "message", "role": "user", "input_token": 3}"#)
                .contains("input_token")
        );
    }

    #[test]
    fn with_the_tag_first_errors_keep_their_path_inside_the_record() {
        let text = r#"{"records": [{"kind": "item", "id": "0190c7a0-0000-7000-8000-000000000001", "trace_id": "t", "ts": 1, "item": {"type": "message", "role": 7}}]}"#;
        let de = &mut serde_json::Deserializer::from_str(text);
        let err = serde_path_to_error::deserialize::<_, Batch>(de).unwrap_err();
        assert_eq!(err.path().to_string(), "records[0].item.role");
    }
}
