//! Compact JSON, byte for byte what `serde_json::to_writer` writes, with a string escaper that
//! skips 32 clean bytes at a time: the SDK writes its queued records with it (on the agent's
//! thread), Kestrel the JSON of its stored item chunks.
//!
//! Why not `serde_json` itself: it looks at every byte of a string through a table, one at a
//! time; for the 500-character messages of `bench/run-sdk.sh` that loop was 15% of the agent
//! thread's time, and the chunk encoder's escaping ~2.5% of Kestrel's CPU under ingest.
//! Here a string is tested 32 bytes at a time (vector compares) for the bytes JSON must escape
//! (`"`, `\` and the controls below 0x20) and copied in runs; everything else (numbers through
//! `itoa` and `zmij`, non-finite floats as `null`, maps and structs, enums externally tagged)
//! follows `serde_json`'s compact output exactly, which the tests check against `serde_json` on
//! generated values.
//!
//! Map keys follow `serde_json` too: strings and chars as they are; integers, bools and finite
//! floats quoted; anything else is an error (a `serde_json::Error`, as every error here).

use serde::ser::{self, Error as _, Impossible, Serialize};

type Error = serde_json::Error;
type Result<T = ()> = std::result::Result<T, Error>;

/// Appends `value`'s compact JSON to `out`. On error, `out` may hold part of it.
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result {
    value.serialize(&mut Writer { out })
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

fn byte_needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Whether any byte of `block` needs escaping. A plain loop over a fixed-size array, which LLVM
/// compiles to vector compares (SSE2 is x86-64's baseline; NEON on aarch64) without unsafe code:
/// about 25 instructions for 32 bytes, where testing four 64-bit words took about 50.
fn dirty(block: &[u8; 32]) -> bool {
    let mut hit = [false; 32];
    for (hit, &byte) in hit.iter_mut().zip(block) {
        *hit = byte_needs_escape(byte);
    }
    hit.iter().any(|&h| h)
}

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The bytes of `w` that need escaping (below 0x20, `"` or `\`) have their high bit set in the
/// result, and no byte does when none needs it: each term is the classic "has a zero byte" test,
/// exact for the lowest match (only bytes above a match may be flagged wrongly); bytes >= 0x80
/// (UTF-8) never match.
fn escape_mask(w: u64) -> u64 {
    let control = w.wrapping_sub(LOW * 0x20) & !w;
    let quote = w ^ (LOW * u64::from(b'"'));
    let quote = quote.wrapping_sub(LOW) & !quote;
    let backslash = w ^ (LOW * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(LOW) & !backslash;
    (control | quote | backslash) & HIGH
}

/// The offset of the first byte of `bytes` that needs escaping, or its length: a word at a time
/// (the lowest flagged byte of a word is exact), then byte by byte.
fn first_dirty(bytes: &[u8]) -> usize {
    let (words, rest) = bytes.as_chunks::<8>();
    let mut at = 0;
    for word in words {
        let mask = escape_mask(u64::from_le_bytes(*word));
        if mask != 0 {
            return at + (mask.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + rest
        .iter()
        .position(|&b| byte_needs_escape(b))
        .unwrap_or(rest.len())
}

/// How many leading bytes of `bytes` need no escaping: 32 bytes a step with vector compares,
/// then word by word inside the first block that has a match, and in the tail.
///
/// A 500-character string without escapes: 54-59 ns against 67 for words alone; with a newline
/// every 80 characters (chat text) 101 ns against 178 (each escape restarts the scan, and the
/// word test now places the match instead of a byte loop); 16 bytes: 9 ns against 10.
fn clean_prefix(bytes: &[u8]) -> usize {
    let (blocks, tail) = bytes.as_chunks::<32>();
    let mut at = 0;
    for block in blocks {
        if dirty(block) {
            return at + first_dirty(block);
        }
        at += 32;
    }
    at + first_dirty(tail)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `s` as a JSON string, quotes included: clean runs copied whole, escapes as `serde_json` writes
/// them (the short forms, else `\u00XX` in lowercase hex).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut at = 0;
    loop {
        let end = at + clean_prefix(&bytes[at..]);
        out.extend_from_slice(&bytes[at..end]);
        let Some(&byte) = bytes.get(end) else { break };
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
        at = end + 1;
    }
    out.push(b'"');
}

/// The ten `serialize_<integer>` methods of a serializer, each returning `self.$write(v)`.
macro_rules! integers {
    ($write:ident) => {
        integers!($write: serialize_i8 i8, serialize_i16 i16, serialize_i32 i32, serialize_i64 i64,
            serialize_i128 i128, serialize_u8 u8, serialize_u16 u16, serialize_u32 u32,
            serialize_u64 u64, serialize_u128 u128);
    };
    ($write:ident: $($method:ident $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result {
            self.$write(v)
        }
    )*};
}

/// What a value and a map key write alike: strings, chars and unit variants as JSON strings, a
/// newtype struct as its content.
macro_rules! strings {
    () => {
        fn serialize_str(self, v: &str) -> Result {
            write_str(self.out, v);
            Ok(())
        }
        fn serialize_char(self, v: char) -> Result {
            write_str(self.out, v.encode_utf8(&mut [0; 4]));
            Ok(())
        }
        fn serialize_unit_variant(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
        ) -> Result {
            write_str(self.out, variant);
            Ok(())
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            value: &T,
        ) -> Result {
            value.serialize(self)
        }
    };
}

impl Writer<'_> {
    fn int(&mut self, v: impl itoa::Integer) -> Result {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }

    fn float(&mut self, v: impl zmij::Float, finite: bool) {
        if finite {
            self.out
                .extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
        } else {
            self.out.extend_from_slice(b"null");
        }
    }
}

/// An array or object being written: whether a comma goes before the next element.
struct Compound<'w, 'a> {
    w: &'w mut Writer<'a>,
    first: bool,
    /// The closing bytes: `]`, `}`, or `]}`/`}}` for a variant wrapped in an object.
    close: &'static [u8],
}

impl<'w, 'a> Compound<'w, 'a> {
    fn open(w: &'w mut Writer<'a>, open: &[u8], close: &'static [u8]) -> Compound<'w, 'a> {
        w.out.extend_from_slice(open);
        Compound {
            w,
            first: true,
            close,
        }
    }

    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.w.out.push(b',');
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.comma();
        value.serialize(&mut *self.w)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result {
        self.comma();
        write_str(self.w.out, key);
        self.w.out.push(b':');
        value.serialize(&mut *self.w)
    }

    fn end(self) -> Result {
        self.w.out.extend_from_slice(self.close);
        Ok(())
    }
}

/// `{"variant":` before a variant's content (closed by the compound's `close`).
fn variant_head(w: &mut Writer<'_>, variant: &str) {
    w.out.push(b'{');
    write_str(w.out, variant);
    w.out.push(b':');
}

impl<'w, 'a> ser::Serializer for &'w mut Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'w, 'a>;
    type SerializeTuple = Compound<'w, 'a>;
    type SerializeTupleStruct = Compound<'w, 'a>;
    type SerializeTupleVariant = Compound<'w, 'a>;
    type SerializeMap = Compound<'w, 'a>;
    type SerializeStruct = Compound<'w, 'a>;
    type SerializeStructVariant = Compound<'w, 'a>;

    fn serialize_bool(self, v: bool) -> Result {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(int);
    fn serialize_f32(self, v: f32) -> Result {
        self.float(v, v.is_finite());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result {
        self.float(v, v.is_finite());
        Ok(())
    }
    strings!();
    fn serialize_bytes(self, v: &[u8]) -> Result {
        let mut seq = Compound::open(self, b"[", b"]");
        for byte in v {
            seq.element(byte)?;
        }
        seq.end()
    }
    fn serialize_none(self) -> Result {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result {
        self.serialize_unit()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result {
        variant_head(self, variant);
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'w, 'a>> {
        Ok(Compound::open(self, b"[", b"]"))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'w, 'a>> {
        Ok(Compound::open(self, b"[", b"]"))
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'w, 'a>> {
        Ok(Compound::open(self, b"[", b"]"))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'w, 'a>> {
        variant_head(self, variant);
        Ok(Compound::open(self, b"[", b"]}"))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'w, 'a>> {
        Ok(Compound::open(self, b"{", b"}"))
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'w, 'a>> {
        Ok(Compound::open(self, b"{", b"}"))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'w, 'a>> {
        variant_head(self, variant);
        Ok(Compound::open(self, b"{", b"}}"))
    }
}

macro_rules! elements {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
                self.element(value)
            }
            fn end(self) -> Result {
                Compound::end(self)
            }
        }
    )*};
}
elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

macro_rules! fields {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
                self.field(key, value)
            }
            fn end(self) -> Result {
                Compound::end(self)
            }
        }
    )*};
}
fields!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        self.comma();
        key.serialize(KeyWriter {
            out: &mut *self.w.out,
        })?;
        self.w.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result {
        Compound::end(self)
    }
}

/// A map key: a string, a char, or an integer written as a string.
struct KeyWriter<'a> {
    out: &'a mut Vec<u8>,
}

fn key_error() -> Error {
    Error::custom("key must be a string")
}

impl KeyWriter<'_> {
    fn quoted(self, v: impl itoa::Integer) -> Result {
        self.out.push(b'"');
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        self.out.push(b'"');
        Ok(())
    }

    fn float(self, v: impl zmij::Float, finite: bool) -> Result {
        if !finite {
            return Err(Error::custom(
                "float key must be finite (got NaN or +/-inf)",
            ));
        }
        self.out.push(b'"');
        self.out
            .extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
        self.out.push(b'"');
        Ok(())
    }
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    strings!();
    integers!(quoted);
    fn serialize_bool(self, v: bool) -> Result {
        self.out
            .extend_from_slice(if v { b"\"true\"" } else { b"\"false\"" });
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result {
        self.float(v, v.is_finite())
    }
    fn serialize_f64(self, v: f64) -> Result {
        self.float(v, v.is_finite())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result {
        Err(key_error())
    }
    fn serialize_none(self) -> Result {
        Err(key_error())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result {
        Err(key_error())
    }
    fn serialize_unit(self) -> Result {
        Err(key_error())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result {
        Err(key_error())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result {
        Err(key_error())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(key_error())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple> {
        Err(key_error())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(key_error())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(key_error())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        Err(key_error())
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct> {
        Err(key_error())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(key_error())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::{Value, json};

    use super::*;

    fn ours<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, value).unwrap();
        out
    }

    fn same<T: Serialize + ?Sized>(value: &T) {
        let theirs = serde_json::to_vec(value).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours(value)),
            String::from_utf8_lossy(&theirs)
        );
    }

    #[test]
    fn every_byte_that_needs_escaping_at_every_offset() {
        // Offsets past two 32-byte steps, and tails of every length after them.
        for byte in 0u8..=0x7f {
            for at in 0..72 {
                let mut s = "a".repeat(at);
                s.push(char::from(byte));
                s.push_str(&"é🦌b".repeat(3));
                same(&s);
                let mut t = "a".repeat(at);
                t.push(char::from(byte));
                same(&t);
            }
        }
        same("");
        same("\"\\\u{7f}\u{1f}\u{0}\n\r\t\u{8}\u{c}");
    }

    #[derive(Serialize)]
    enum Kinds {
        Unit,
        Newtype(i32),
        Tuple(u8, char),
        Struct { a: Option<f32>, b: () },
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Shapes<'a> {
        kinds: Vec<Kinds>,
        bytes: &'a [u8],
        int_keys: BTreeMap<i64, bool>,
        bool_keys: BTreeMap<bool, u8>,
        char_keys: BTreeMap<char, Unit>,
        tuple: (u128, i128, f64, f64, f64),
    }

    /// A map whose keys are floats.
    struct FloatKeys(Vec<(f64, u8)>);

    impl Serialize for FloatKeys {
        fn serialize<S: ser::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }

    #[test]
    fn every_shape_serde_has() {
        same(&Shapes {
            kinds: vec![
                Kinds::Unit,
                Kinds::Newtype(-7),
                Kinds::Tuple(255, '"'),
                Kinds::Struct {
                    a: Some(0.1),
                    b: (),
                },
                Kinds::Struct { a: None, b: () },
            ],
            bytes: &[0, 1, 255],
            int_keys: [(-1, true), (u32::MAX.into(), false)].into(),
            char_keys: [('\n', Unit)].into(),
            bool_keys: [(true, 1), (false, 0)].into(),
            tuple: (u128::MAX, i128::MIN, f64::NAN, -0.0, 1e-300),
        });
        let bad: BTreeMap<(i32, i32), i32> = [((1, 2), 3)].into();
        assert!(write(&mut Vec::new(), &bad).is_err());
        assert!(serde_json::to_vec(&bad).is_err());
        same(&FloatKeys(vec![(1.5, 1), (-0.0, 2), (1e21, 3)]));
        let nan = FloatKeys(vec![(f64::NAN, 1)]);
        assert!(write(&mut Vec::new(), &nan).is_err());
        assert!(serde_json::to_vec(&nan).is_err());
    }

    fn values() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|n| json!(n)),
            any::<String>().prop_map(Value::String),
            "[\"\\\\\u{0}-\u{1f}a-z]{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn matches_serde_json(value in values()) {
            let theirs = serde_json::to_vec(&value).unwrap();
            prop_assert_eq!(ours(&value), theirs);
        }
    }
}
