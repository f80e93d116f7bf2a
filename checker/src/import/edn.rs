//! A small EDN reader: enough of Clojure's data notation for Jepsen's and Knossos's histories.
//!
//! It reads nil, booleans, integers (with an optional `N`), floats (with an optional `M`),
//! strings, characters, keywords, symbols, vectors, lists, sets, maps, tagged literals (`#inst
//! "…"`, `#jepsen.history.Op{…}`: the tag is kept, the form read as usual), `;` comments, `#_`
//! discards and commas as whitespace. Keywords and symbols borrow from the input; strings borrow
//! unless they hold escapes.
//!
//! Errors carry the byte offset where reading stopped; [`Reader::locate`] turns it into a
//! 1-based line and column. Nesting is bounded ([`MAX_DEPTH`]) so that no input, however deep,
//! can overflow the stack: the reader returns an error, never panics.

use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::fmt;

/// Deepest nesting of collections accepted. Histories nest three or four levels; this bound is
/// what keeps the recursive reader safe on hostile input.
pub const MAX_DEPTH: usize = 128;

/// One EDN value.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Char(char),
    /// The name without its leading `:` (`:ok` is `Keyword("ok")`).
    Keyword(&'a str),
    Symbol(&'a str),
    Vector(Vec<Edn<'a>>),
    List(Vec<Edn<'a>>),
    Set(Vec<Edn<'a>>),
    /// Entries in the order written.
    Map(Vec<(Edn<'a>, Edn<'a>)>),
    /// `#tag form`.
    Tagged(&'a str, Box<Edn<'a>>),
}

impl Edn<'_> {
    /// A short description for error messages: "the keyword :foo", "a vector of 3".
    pub fn describe(&self) -> String {
        match self {
            Edn::Nil => "nil".into(),
            Edn::Bool(b) => format!("{b}"),
            Edn::Int(i) => format!("the integer {i}"),
            Edn::Float(x) => format!("the number {x}"),
            Edn::Str(s) => {
                let short: String = s.chars().take(30).collect();
                format!("the string {short:?}")
            }
            Edn::Char(c) => format!("the character {c:?}"),
            Edn::Keyword(k) => format!("the keyword :{k}"),
            Edn::Symbol(s) => format!("the symbol {s}"),
            Edn::Vector(v) => format!("a vector of {}", v.len()),
            Edn::List(v) => format!("a list of {}", v.len()),
            Edn::Set(v) => format!("a set of {}", v.len()),
            Edn::Map(m) => format!("a map of {} entries", m.len()),
            Edn::Tagged(t, _) => format!("a #{t} literal"),
        }
    }

    /// The value as JSON: keywords, symbols and characters become strings (a keyword without
    /// its colon), vectors, lists and sets arrays, maps objects whose keys are stringified,
    /// tagged literals their form. Non-finite floats, which JSON cannot hold, become strings.
    pub fn to_json(&self) -> Value {
        match self {
            Edn::Nil => Value::Null,
            Edn::Bool(b) => Value::Bool(*b),
            Edn::Int(i) => Value::Number((*i).into()),
            Edn::Float(x) => Number::from_f64(*x)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(x.to_string())),
            Edn::Str(s) => Value::String(s.to_string()),
            Edn::Char(c) => Value::String(c.to_string()),
            Edn::Keyword(k) | Edn::Symbol(k) => Value::String((*k).to_string()),
            Edn::Vector(v) | Edn::List(v) | Edn::Set(v) => {
                Value::Array(v.iter().map(Edn::to_json).collect())
            }
            Edn::Map(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    out.insert(k.key_string(), v.to_json());
                }
                Value::Object(out)
            }
            Edn::Tagged(_, inner) => inner.to_json(),
        }
    }

    /// The value as a JSON object key: keywords and strings by name, anything else as EDN.
    pub fn key_string(&self) -> String {
        match self {
            Edn::Keyword(k) | Edn::Symbol(k) => (*k).to_string(),
            Edn::Str(s) => s.to_string(),
            other => other.to_string(),
        }
    }
}

/// Writes EDN back out (used for map keys that are not keywords and in messages).
impl fmt::Display for Edn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn seq(
            f: &mut fmt::Formatter<'_>,
            open: &str,
            items: &[Edn<'_>],
            close: &str,
        ) -> fmt::Result {
            f.write_str(open)?;
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{x}")?;
            }
            f.write_str(close)
        }
        match self {
            Edn::Nil => f.write_str("nil"),
            Edn::Bool(b) => write!(f, "{b}"),
            Edn::Int(i) => write!(f, "{i}"),
            Edn::Float(x) => write!(f, "{x:?}"),
            Edn::Str(s) => write!(f, "{s:?}"),
            Edn::Char(c) => write!(f, "\\{c}"),
            Edn::Keyword(k) => write!(f, ":{k}"),
            Edn::Symbol(s) => f.write_str(s),
            Edn::Vector(v) => seq(f, "[", v, "]"),
            Edn::List(v) => seq(f, "(", v, ")"),
            Edn::Set(v) => seq(f, "#{", v, "}"),
            Edn::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} {v}")?;
                }
                f.write_str("}")
            }
            Edn::Tagged(t, x) => write!(f, "#{t} {x}"),
        }
    }
}

/// Where and why reading stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct EdnError {
    /// Byte offset into the input.
    pub offset: usize,
    pub message: String,
}

/// Reads forms one after another from a text.
pub struct Reader<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',' | 0x0b | 0x0c)
}

/// Bytes that end a token (a number, symbol or keyword).
fn is_delim(b: u8) -> bool {
    is_ws(b) || matches!(b, b'[' | b']' | b'(' | b')' | b'{' | b'}' | b'"' | b';')
}

impl<'a> Reader<'a> {
    pub fn new(src: &'a str) -> Reader<'a> {
        Reader {
            src,
            pos: 0,
            depth: 0,
        }
    }

    /// The current byte offset.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        locate(self.src, offset)
    }

    fn err<T>(&self, offset: usize, message: impl Into<String>) -> Result<T, EdnError> {
        Err(EdnError {
            offset,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    /// Skip whitespace, commas, `;` comments and `#_` discarded forms. Returns the next byte.
    pub fn skip_ws(&mut self) -> Result<Option<u8>, EdnError> {
        let bytes = self.src.as_bytes();
        loop {
            match bytes.get(self.pos) {
                Some(&b) if is_ws(b) => self.pos += 1,
                Some(b';') => match bytes[self.pos..].iter().position(|&b| b == b'\n') {
                    Some(n) => self.pos += n + 1,
                    None => self.pos = bytes.len(),
                },
                Some(b'#') if bytes.get(self.pos + 1) == Some(&b'_') => {
                    // `#_ #_ #_ …` recurses through here: bound it like nesting.
                    self.descend(self.pos)?;
                    self.pos += 2;
                    self.read_form()?;
                    self.depth -= 1;
                }
                other => return Ok(other.copied()),
            }
        }
    }

    /// Whether only whitespace and comments remain.
    pub fn at_end(&mut self) -> Result<bool, EdnError> {
        Ok(self.skip_ws()?.is_none())
    }

    /// The next top-level form and its starting offset, or `None` at the end of the input.
    pub fn next_form(&mut self) -> Result<Option<(Edn<'a>, usize)>, EdnError> {
        if self.skip_ws()?.is_none() {
            return Ok(None);
        }
        let start = self.pos;
        Ok(Some((self.read_form()?, start)))
    }

    /// If the next form opens a vector or list, consume its opening bracket and return the
    /// closing one; [`Reader::next_in`] then reads its elements one by one, so a history of a
    /// million ops in one vector is never held as EDN all at once.
    pub fn enter_seq(&mut self) -> Result<Option<u8>, EdnError> {
        match self.skip_ws()? {
            Some(b'[') => {
                self.pos += 1;
                Ok(Some(b']'))
            }
            Some(b'(') => {
                self.pos += 1;
                Ok(Some(b')'))
            }
            _ => Ok(None),
        }
    }

    /// The next element of a sequence entered with [`Reader::enter_seq`], or `None` once its
    /// closing bracket is consumed.
    pub fn next_in(&mut self, close: u8) -> Result<Option<(Edn<'a>, usize)>, EdnError> {
        match self.skip_ws()? {
            None => self.err(
                self.pos,
                format!(
                    "the input ends inside a sequence; expected {:?}",
                    close as char
                ),
            ),
            Some(b) if b == close => {
                self.pos += 1;
                Ok(None)
            }
            Some(_) => {
                let start = self.pos;
                Ok(Some((self.read_form()?, start)))
            }
        }
    }

    /// Read one form starting at the current position (whitespace already skipped or not).
    pub fn read_form(&mut self) -> Result<Edn<'a>, EdnError> {
        let Some(b) = self.skip_ws()? else {
            return self.err(self.pos, "the input ends where a value was expected");
        };
        let start = self.pos;
        match b {
            b'[' => {
                self.pos += 1;
                Ok(Edn::Vector(self.read_seq(b']', start)?))
            }
            b'(' => {
                self.pos += 1;
                Ok(Edn::List(self.read_seq(b')', start)?))
            }
            b'{' => {
                self.pos += 1;
                self.read_map(start)
            }
            b']' | b')' | b'}' => self.err(
                start,
                format!("unexpected {:?}; expected a value", b as char),
            ),
            b'"' => self.read_string(),
            b'\\' => self.read_char(),
            b'#' => self.read_dispatch(),
            b':' => {
                self.pos += 1;
                let tok = self.token();
                if tok.is_empty() {
                    return self.err(start, "a lone ':'; expected a keyword such as :ok");
                }
                Ok(Edn::Keyword(tok))
            }
            b'0'..=b'9' => self.read_number(start),
            b'+' | b'-'
                if self
                    .src
                    .as_bytes()
                    .get(self.pos + 1)
                    .is_some_and(|c| c.is_ascii_digit()) =>
            {
                self.read_number(start)
            }
            _ => {
                let tok = self.token();
                if tok.is_empty() {
                    // Not a delimiter either (those are handled above): a stray byte.
                    let c = self.src[self.pos..].chars().next().unwrap_or('?');
                    return self.err(start, format!("unexpected {c:?}; expected a value"));
                }
                Ok(match tok {
                    "nil" => Edn::Nil,
                    "true" => Edn::Bool(true),
                    "false" => Edn::Bool(false),
                    s => Edn::Symbol(s),
                })
            }
        }
    }

    /// Consume a token (up to a delimiter) and return it.
    fn token(&mut self) -> &'a str {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        while self.pos < bytes.len() && !is_delim(bytes[self.pos]) {
            self.pos += 1;
        }
        // Delimiters are ASCII, so `pos` is on a char boundary.
        &self.src[start..self.pos]
    }

    fn descend(&mut self, start: usize) -> Result<(), EdnError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err(
                start,
                format!(
                    "collections nested more than {MAX_DEPTH} deep; expected a shallower value"
                ),
            );
        }
        Ok(())
    }

    fn read_seq(&mut self, close: u8, start: usize) -> Result<Vec<Edn<'a>>, EdnError> {
        self.descend(start)?;
        let mut items = Vec::new();
        loop {
            match self.skip_ws()? {
                None => {
                    return self.err(
                        start,
                        format!(
                            "this collection is never closed; expected {:?} before the end of the input",
                            close as char
                        ),
                    )
                }
                Some(b) if b == close => {
                    self.pos += 1;
                    break;
                }
                Some(_) => items.push(self.read_form()?),
            }
        }
        self.depth -= 1;
        Ok(items)
    }

    fn read_map(&mut self, start: usize) -> Result<Edn<'a>, EdnError> {
        let items = self.read_seq(b'}', start)?;
        if items.len() % 2 != 0 {
            return self.err(
                start,
                format!(
                    "this map has {} forms; expected keys and values in pairs",
                    items.len()
                ),
            );
        }
        let mut entries = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            entries.push((k, v));
        }
        Ok(Edn::Map(entries))
    }

    fn read_dispatch(&mut self) -> Result<Edn<'a>, EdnError> {
        let start = self.pos;
        self.pos += 1; // '#'
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                Ok(Edn::Set(self.read_seq(b'}', start)?))
            }
            Some(b'_') => {
                // skip_ws handles discards before a form; here one stood where a form must be.
                self.pos += 1;
                self.descend(start)?;
                self.read_form()?;
                self.depth -= 1;
                self.read_form()
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let tag = self.token();
                self.descend(start)?;
                let form = self.read_form()?;
                self.depth -= 1;
                Ok(Edn::Tagged(tag, Box::new(form)))
            }
            _ => self.err(
                start,
                "'#' not followed by '{', '_' or a tag; expected a set #{…}, a discard #_ or a tagged literal",
            ),
        }
    }

    fn read_number(&mut self, start: usize) -> Result<Edn<'a>, EdnError> {
        let tok = self.token();
        let (body, suffix) = match tok.as_bytes().last() {
            Some(b'N') => (&tok[..tok.len() - 1], Some('N')),
            Some(b'M') => (&tok[..tok.len() - 1], Some('M')),
            _ => (tok, None),
        };
        let is_float = body.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) || suffix == Some('M');
        if !is_float {
            if let Ok(i) = body.parse::<i64>() {
                return Ok(Edn::Int(i));
            }
            if body.bytes().skip(1).all(|b| b.is_ascii_digit()) {
                return self.err(
                    start,
                    format!("the integer {tok} is out of range; expected one that fits in 64 bits"),
                );
            }
        } else if let Ok(x) = body.parse::<f64>() {
            return Ok(Edn::Float(x));
        }
        self.err(
            start,
            format!("{tok:?} is not a number; expected digits such as 42 or 1.5"),
        )
    }

    fn read_string(&mut self) -> Result<Edn<'a>, EdnError> {
        let start = self.pos;
        self.pos += 1; // opening quote
        let bytes = self.src.as_bytes();
        let body_start = self.pos;
        // Fast path: no escapes, so the string borrows from the input.
        while self.pos < bytes.len() {
            match bytes[self.pos] {
                b'"' => {
                    let s = &self.src[body_start..self.pos];
                    self.pos += 1;
                    return Ok(Edn::Str(Cow::Borrowed(s)));
                }
                b'\\' => break,
                _ => self.pos += 1,
            }
        }
        let mut out = String::from(&self.src[body_start..self.pos]);
        loop {
            let Some(c) = self.src[self.pos..].chars().next() else {
                return self.err(start, "this string is never closed; expected '\"'");
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(Edn::Str(Cow::Owned(out))),
                '\\' => {
                    let esc_at = self.pos - 1;
                    let Some(e) = self.src[self.pos..].chars().next() else {
                        return self.err(start, "this string is never closed; expected '\"'");
                    };
                    self.pos += e.len_utf8();
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        'u' => out.push(self.read_hex4(esc_at)?),
                        other => {
                            return self.err(
                                esc_at,
                                format!("unknown escape \\{other}; expected \\n, \\t, \\r, \\\", \\\\ or \\uXXXX"),
                            )
                        }
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn read_hex4(&mut self, at: usize) -> Result<char, EdnError> {
        let hex = self.src.get(self.pos..self.pos + 4).unwrap_or("");
        let code = (hex.len() == 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(hex, 16).ok())
            .flatten();
        match code.and_then(char::from_u32) {
            Some(c) => {
                self.pos += 4;
                Ok(c)
            }
            None => self.err(at, "a \\u escape needs four hex digits naming a character"),
        }
    }

    fn read_char(&mut self) -> Result<Edn<'a>, EdnError> {
        let start = self.pos;
        self.pos += 1; // backslash
        let Some(first) = self.src[self.pos..].chars().next() else {
            return self.err(
                start,
                "a lone '\\' at the end; expected a character such as \\a",
            );
        };
        self.pos += first.len_utf8();
        // A named character (\newline) runs to the next delimiter; a one-letter one stops.
        let rest_start = self.pos;
        if first.is_ascii_alphabetic() {
            self.token();
        }
        let name = &self.src[rest_start - first.len_utf8()..self.pos];
        let c = match name {
            "newline" => '\n',
            "space" => ' ',
            "tab" => '\t',
            "return" => '\r',
            "formfeed" => '\u{c}',
            "backspace" => '\u{8}',
            s if s.chars().count() == 1 => first,
            s if s.starts_with('u') && s.len() == 5 => {
                self.pos = rest_start;
                self.read_hex4(start)?
            }
            s => {
                return self.err(
                    start,
                    format!(
                        "\\{s} is not a character; expected \\a, \\newline, \\space or \\uXXXX"
                    ),
                )
            }
        };
        Ok(Edn::Char(c))
    }
}

/// The 1-based line and column (in characters) of a byte offset into `src`.
pub fn locate(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Read exactly one form from `text` (nothing but whitespace and comments after it).
pub fn read_one(text: &str) -> Result<Edn<'_>, EdnError> {
    let mut r = Reader::new(text);
    let form = r.read_form()?;
    if !r.at_end()? {
        return r.err(r.offset(), "more after the value; expected one value only");
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scalars_and_collections() {
        let v =
            read_one(r#"{:a 1, :b [nil true -2.5 "x\ny"] :c #{:k} :d (1 2N) :e \space}"#).unwrap();
        assert_eq!(
            v.to_json(),
            serde_json::json!({"a": 1, "b": [null, true, -2.5, "x\ny"], "c": ["k"], "d": [1, 2], "e": " "})
        );
    }

    #[test]
    fn comments_discards_and_tags() {
        let v = read_one("; a comment\n #_ :gone #jepsen.history.Op{:f :read} ; trailing").unwrap();
        assert_eq!(v.to_json(), serde_json::json!({"f": "read"}));
    }

    #[test]
    fn errors_say_where() {
        let e = read_one("{:a 1\n :b}").unwrap_err();
        assert_eq!(locate("{:a 1\n :b}", e.offset), (1, 1));
        assert!(e.message.contains("pairs"), "{}", e.message);
        let e = read_one("[1 2").unwrap_err();
        assert!(e.message.contains("never closed"), "{}", e.message);
        let deep = "[".repeat(10_000);
        assert!(read_one(&deep).unwrap_err().message.contains("nested"));
        assert!(read_one("99999999999999999999")
            .unwrap_err()
            .message
            .contains("out of range"));
    }
}
