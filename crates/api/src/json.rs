//! JSON as JavaScript reads it (`JSON.parse`) and writes it (`JSON.stringify`).
//!
//! The original service parsed `POST /checkout` bodies with `JSON.parse` and answered Valibot
//! issues, which echo the body back (`input`, `received`). So a body JavaScript parses is never
//! "malformed" here, and what is echoed reads as JavaScript prints it: numbers are IEEE doubles
//! (`1e400` is `Infinity`, 2^53 + 1 reads `9007199254740992`, `-0` reads `0`), strings are UTF-16
//! (a lone surrogate escape survives, lengths count code units), and objects list integer keys
//! first. Parsing, printing and dropping are iterative: nesting is bounded by the body size, never
//! by the stack. Only the checkout contract needs this; other endpoints read plain `serde_json`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// A JavaScript string: UTF-16 code units, lone surrogates included.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct JsString(Vec<u16>);

impl JsString {
    /// The UTF-16 form of `text`.
    pub fn from_text(text: &str) -> Self {
        Self(text.encode_utf16().collect())
    }

    /// JavaScript's `length`: UTF-16 code units.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The code units.
    pub fn units(&self) -> &[u16] {
        &self.0
    }

    /// The text, each lone surrogate replaced by U+FFFD (what a WHATWG `USVString` conversion,
    /// such as `new URL`'s, does).
    pub fn to_string_lossy(&self) -> String {
        String::from_utf16_lossy(&self.0)
    }

    /// The text, or `None` when it holds a lone surrogate.
    pub fn to_text(&self) -> Option<String> {
        String::from_utf16(&self.0).ok()
    }

    /// Whether this is `text`.
    pub fn is(&self, text: &str) -> bool {
        self.0.iter().copied().eq(text.encode_utf16())
    }

    /// Appends `text`.
    pub fn push_str(&mut self, text: &str) {
        self.0.extend(text.encode_utf16());
    }

    /// Appends another string.
    pub fn push_js(&mut self, other: &JsString) {
        self.0.extend_from_slice(&other.0);
    }

    /// `JSON.stringify` of the string.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + 2);
        write_string(&self.0, &mut out);
        out
    }
}

impl From<&str> for JsString {
    fn from(text: &str) -> Self {
        Self::from_text(text)
    }
}

impl fmt::Debug for JsString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl Serialize for JsString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        raw(self.to_json(), serializer)
    }
}

/// A JSON value as `JSON.parse` makes it. Containers are shared, so cloning is cheap.
#[derive(Clone, Default)]
pub enum Json {
    /// `null`
    #[default]
    Null,
    /// `true` / `false`
    Bool(bool),
    /// Every number is a double, as in JavaScript.
    Number(f64),
    /// A string, possibly with lone surrogates.
    String(JsString),
    /// An array.
    Array(Arc<Vec<Json>>),
    /// An object's own properties, in JavaScript's order (integer keys ascending, then the rest
    /// in insertion order; a repeated key keeps its first place and its last value).
    Object(Arc<Vec<(JsString, Json)>>),
}

impl Json {
    /// A property of an object: only objects have the contract's properties (an array's are its
    /// indices and `length`).
    pub fn property(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k.is(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Whether Valibot's `object` schema takes the value: JavaScript's `input && typeof input ===
    /// "object"`, which arrays pass.
    pub fn is_object_like(&self) -> bool {
        matches!(self, Json::Object(_) | Json::Array(_))
    }

    /// The string, if this is one.
    pub fn as_js_string(&self) -> Option<&JsString> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// `JSON.stringify` of the value.
    pub fn to_json(&self) -> String {
        enum Task<'a> {
            Value(&'a Json),
            Text(&'static str),
            Key(&'a JsString),
        }
        let mut out = String::new();
        let mut tasks = vec![Task::Value(self)];
        while let Some(task) = tasks.pop() {
            match task {
                Task::Text(text) => out.push_str(text),
                Task::Key(key) => {
                    write_string(&key.0, &mut out);
                    out.push(':');
                }
                Task::Value(Json::Null) => out.push_str("null"),
                Task::Value(Json::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
                Task::Value(Json::Number(n)) if n.is_finite() => out.push_str(&number_to_string(*n)),
                Task::Value(Json::Number(_)) => out.push_str("null"),
                Task::Value(Json::String(s)) => write_string(&s.0, &mut out),
                Task::Value(Json::Array(items)) => {
                    out.push('[');
                    tasks.push(Task::Text("]"));
                    for (i, item) in items.iter().enumerate().rev() {
                        tasks.push(Task::Value(item));
                        if i > 0 {
                            tasks.push(Task::Text(","));
                        }
                    }
                }
                Task::Value(Json::Object(entries)) => {
                    out.push('{');
                    tasks.push(Task::Text("}"));
                    for (i, (key, value)) in entries.iter().enumerate().rev() {
                        tasks.push(Task::Value(value));
                        tasks.push(Task::Key(key));
                        if i > 0 {
                            tasks.push(Task::Text(","));
                        }
                    }
                }
            }
        }
        out
    }

    /// Moves the children of a container this value alone holds onto `stack`.
    fn detach(&mut self, stack: &mut Vec<Json>) {
        match self {
            Json::Array(items) => {
                if let Some(items) = Arc::get_mut(items) {
                    stack.append(items);
                }
            }
            Json::Object(entries) => {
                if let Some(entries) = Arc::get_mut(entries) {
                    stack.extend(entries.drain(..).map(|(_, value)| value));
                }
            }
            _ => {}
        }
    }
}

impl Drop for Json {
    // Dropping a deeply nested value one level at a time, so that it cannot exhaust the stack.
    fn drop(&mut self) {
        let mut stack = Vec::new();
        self.detach(&mut stack);
        while let Some(mut value) = stack.pop() {
            value.detach(&mut stack);
        }
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        raw(self.to_json(), serializer)
    }
}

impl From<&serde_json::Value> for Json {
    fn from(value: &serde_json::Value) -> Self {
        // Values made by this service are shallow; a text round trip keeps this short.
        parse(&value.to_string()).unwrap_or_default()
    }
}

fn raw<S: Serializer>(json: String, serializer: S) -> Result<S::Ok, S::Error> {
    serde_json::value::RawValue::from_string(json).map_err(serde::ser::Error::custom)?.serialize(serializer)
}

/// JavaScript's `String(number)` (Number::toString): the shortest digits that read back as the
/// same double, in plain notation from 1e-6 to below 1e21, otherwise as `1.5e+21`.
pub fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n == 0.0 {
        return "0".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sign = if n < 0.0 { "-" } else { "" };
    // Rust prints the shortest round-trip digits too; only the layout differs.
    let scientific = format!("{:e}", n.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i64;
    // The value is 0.d1d2…dk × 10^point.
    let point = exponent.parse::<i64>().unwrap_or(0) + 1;
    let body = if k <= point && point <= 21 {
        format!("{digits}{}", "0".repeat((point - k) as usize))
    } else if 0 < point && point <= 21 {
        format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
    } else if -6 < point && point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else {
        let e = point - 1;
        let e_sign = if e >= 0 { "+" } else { "-" };
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        format!("{first}{fraction}e{e_sign}{}", e.abs())
    };
    format!("{sign}{body}")
}

/// `JSON.stringify`'s QuoteJSONString over UTF-16 code units.
fn write_string(units: &[u16], out: &mut String) {
    out.push('"');
    for unit in char::decode_utf16(units.iter().copied()) {
        match unit {
            Ok('"') => out.push_str("\\\""),
            Ok('\\') => out.push_str("\\\\"),
            Ok('\u{8}') => out.push_str("\\b"),
            Ok('\t') => out.push_str("\\t"),
            Ok('\n') => out.push_str("\\n"),
            Ok('\u{c}') => out.push_str("\\f"),
            Ok('\r') => out.push_str("\\r"),
            Ok(c) if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            Ok(c) => out.push(c),
            Err(lone) => out.push_str(&format!("\\u{:04x}", lone.unpaired_surrogate())),
        }
    }
    out.push('"');
}

/// Why a text is not JSON, with where (as `JSON.parse` would refuse it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at line {line} column {column}")]
pub struct ParseError {
    what: &'static str,
    line: usize,
    column: usize,
}

/// Whether `key` is an array index (a canonical integer below 2^32 − 1), which JavaScript lists
/// before every other key of an object.
fn array_index(key: &JsString) -> Option<u32> {
    let units = key.units();
    let digits = units.iter().all(|u| (u16::from(b'0')..=u16::from(b'9')).contains(u));
    if units.is_empty() || units.len() > 10 || !digits || (units.len() > 1 && units[0] == u16::from(b'0')) {
        return None;
    }
    let value = units.iter().fold(0u64, |n, u| n * 10 + u64::from(u - u16::from(b'0')));
    u32::try_from(value).ok().filter(|&v| v != u32::MAX)
}

/// An object being read: its properties in insertion order, and where each key is.
#[derive(Default)]
struct ObjectBuilder {
    entries: Vec<(JsString, Json)>,
    positions: HashMap<JsString, usize>,
}

impl ObjectBuilder {
    fn insert(&mut self, key: JsString, value: Json) {
        match self.positions.get(&key) {
            Some(&at) => self.entries[at].1 = value,
            None => {
                self.positions.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    fn finish(mut self) -> Json {
        if self.entries.iter().any(|(key, _)| array_index(key).is_some()) {
            // A stable sort: indices ascending first, the other keys keep their order.
            self.entries.sort_by_key(|(key, _)| array_index(key).map_or((1, 0), |i| (0, i)));
        }
        Json::Object(Arc::new(self.entries))
    }
}

enum Frame {
    Array(Vec<Json>),
    Object(ObjectBuilder, JsString),
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// Parses `text` as `JSON.parse` does.
pub fn parse(text: &str) -> Result<Json, ParseError> {
    let mut parser = Parser { text, bytes: text.as_bytes(), pos: 0 };
    parser.document()
}

impl Parser<'_> {
    fn error(&self, what: &'static str) -> ParseError {
        let before = &self.text[..self.pos.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ParseError { what, line, column }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), ParseError> {
        self.skip_whitespace();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn document(&mut self) -> Result<Json, ParseError> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            self.skip_whitespace();
            let mut value = match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    self.skip_whitespace();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        Json::Object(Arc::default())
                    } else {
                        let key = self.key()?;
                        stack.push(Frame::Object(ObjectBuilder::default(), key));
                        continue;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.skip_whitespace();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        Json::Array(Arc::default())
                    } else {
                        stack.push(Frame::Array(Vec::new()));
                        continue;
                    }
                }
                Some(b'"') => Json::String(self.string()?),
                Some(b't') => self.literal("true", Json::Bool(true))?,
                Some(b'f') => self.literal("false", Json::Bool(false))?,
                Some(b'n') => self.literal("null", Json::Null)?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) => return Err(self.error("expected value")),
                None => return Err(self.error("EOF while parsing a value")),
            };
            // A value is complete: hand it to its container, closing containers as they end.
            loop {
                match stack.last_mut() {
                    None => {
                        self.skip_whitespace();
                        if self.pos < self.bytes.len() {
                            return Err(self.error("trailing characters"));
                        }
                        return Ok(value);
                    }
                    Some(Frame::Array(items)) => {
                        items.push(value);
                        self.skip_whitespace();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                break;
                            }
                            Some(b']') => {
                                self.pos += 1;
                                let Some(Frame::Array(items)) = stack.pop() else { unreachable!() };
                                value = Json::Array(Arc::new(items));
                            }
                            _ => return Err(self.error("expected `,` or `]`")),
                        }
                    }
                    Some(Frame::Object(builder, key)) => {
                        builder.insert(std::mem::take(key), value);
                        self.skip_whitespace();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                let next = self.key()?;
                                if let Some(Frame::Object(_, key)) = stack.last_mut() {
                                    *key = next;
                                }
                                break;
                            }
                            Some(b'}') => {
                                self.pos += 1;
                                let Some(Frame::Object(builder, _)) = stack.pop() else { unreachable!() };
                                value = builder.finish();
                            }
                            _ => return Err(self.error("expected `,` or `}`")),
                        }
                    }
                }
            }
        }
    }

    /// An object key and the colon after it.
    fn key(&mut self) -> Result<JsString, ParseError> {
        self.skip_whitespace();
        if self.peek() != Some(b'"') {
            return Err(self.error("key must be a string"));
        }
        let key = self.string()?;
        self.expect(b':', "expected `:`")?;
        Ok(key)
    }

    fn literal(&mut self, word: &'static str, value: Json) -> Result<Json, ParseError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Json, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        // Correctly rounded, and out-of-range magnitudes become ±Infinity or ±0, as in JavaScript.
        self.text[start..self.pos].parse::<f64>().map(Json::Number).map_err(|_| self.error("invalid number"))
    }

    fn hex4(&mut self) -> Result<u16, ParseError> {
        let hex = self.text.get(self.pos..self.pos + 4).ok_or_else(|| self.error("invalid escape"))?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error("invalid escape"));
        }
        self.pos += 4;
        u16::from_str_radix(hex, 16).map_err(|_| self.error("invalid escape"))
    }

    fn string(&mut self) -> Result<JsString, ParseError> {
        self.pos += 1;
        let mut units = Vec::new();
        loop {
            let start = self.pos;
            while matches!(self.peek(), Some(b) if b != b'"' && b != b'\\' && b >= 0x20) {
                self.pos += 1;
            }
            units.extend(self.text[start..self.pos].encode_utf16());
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(JsString(units));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escaped = self.peek().ok_or_else(|| self.error("EOF while parsing a string"))?;
                    self.pos += 1;
                    let unit = match escaped {
                        b'"' => u16::from(b'"'),
                        b'\\' => u16::from(b'\\'),
                        b'/' => u16::from(b'/'),
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => u16::from(b'\n'),
                        b'r' => u16::from(b'\r'),
                        b't' => u16::from(b'\t'),
                        b'u' => self.hex4()?,
                        _ => {
                            self.pos -= 1;
                            return Err(self.error("invalid escape"));
                        }
                    };
                    units.push(unit);
                }
                Some(_) => return Err(self.error("control character in a string")),
                None => return Err(self.error("EOF while parsing a string")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        parse(text).map(|v| v.to_json()).unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (123e-20, "1.23e-18"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (9_007_199_254_740_993.0, "9007199254740992"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (n, text) in cases {
            assert_eq!(number_to_string(n), text, "{n:e}");
        }
    }

    #[test]
    fn json_parse_accepts_what_javascript_accepts() {
        assert_eq!(round_trip("1e400"), "null");
        assert_eq!(round_trip("-0"), "0");
        assert_eq!(round_trip("[9007199254740993, 1E2, 0.5e-6]"), "[9007199254740992,100,5e-7]");
        assert_eq!(round_trip(r#""\ud800x\uDFFF\ud83d\ude00""#), r#""\ud800x\udfff😀""#);
        assert_eq!(round_trip(r#""\u0000\u001f\u007f\u2028\/""#), "\"\\u0000\\u001f\u{7f}\u{2028}/\"");
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(round_trip(&deep).len(), deep.len());
    }

    #[test]
    fn objects_keep_javascript_s_property_order() {
        assert_eq!(round_trip(r#"{"b":1,"10":2,"a":3,"2":4,"b":5,"01":6}"#), r#"{"2":4,"10":2,"b":5,"a":3,"01":6}"#);
        assert_eq!(round_trip(r#"{"4294967295":1,"4294967294":2}"#), r#"{"4294967294":2,"4294967295":1}"#);
    }

    #[test]
    fn what_javascript_refuses_is_refused() {
        for text in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "+1",
            "'a'",
            "\"\t\"",
            "\"\\x\"",
            "nul",
            "1 2",
            "\u{feff}1",
            "NaN",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }
}
