//! JSON values to small integers, once per key, before the search starts.
//!
//! The search compares values millions of times; comparing `u32`s instead of `serde_json::Value`s
//! is what keeps its hot loop free of allocation and pointer chasing. Integers and strings (the
//! values histories almost always hold) take a fast path; anything else is keyed by its
//! canonical JSON text.

use serde_json::{Map, Value};

/// A `HashMap` with rustc's FxHash for the models' memo tables: their keys are small integers
/// and strings from the history, and SipHash's protection against chosen keys costs more than
/// the search itself.
pub type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// Interns JSON values: equal values get equal ids, ids count up from 0.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    ints: FastMap<i64, u32>,
    strs: FastMap<String, u32>,
    other: FastMap<String, u32>,
    values: Vec<Value>,
    /// Bytes of string data held (twice: map key and value).
    text: usize,
}

impl Interner {
    pub fn new() -> Interner {
        Interner::default()
    }

    /// The id of `v`, assigning the next one if `v` is new.
    pub fn intern(&mut self, v: &Value) -> u32 {
        let next = self.values.len() as u32;
        let id = match v {
            Value::Number(n) if n.as_i64().is_some() => {
                let i = n.as_i64().unwrap_or_default();
                *self.ints.entry(i).or_insert(next)
            }
            Value::String(s) => match self.strs.get(s.as_str()) {
                Some(&id) => id,
                None => {
                    self.strs.insert(s.clone(), next);
                    next
                }
            },
            // serde_json keeps object keys in insertion order (`preserve_order`), so two equal
            // objects can print differently: key them by their canonical form.
            other => {
                let canonical = canonical(other);
                let text = canonical.to_string();
                match self.other.get(&text) {
                    Some(&id) => id,
                    None => {
                        self.other.insert(text, next);
                        self.values.push(canonical);
                        return next;
                    }
                }
            }
        };
        if id == next {
            self.values.push(v.clone());
        }
        id
    }

    /// The id of the string `s`, assigning the next one if new.
    pub fn intern_str(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.strs.get(s) {
            return id;
        }
        let id = self.values.len() as u32;
        self.text += 2 * s.len();
        self.strs.insert(s.to_string(), id);
        self.values.push(Value::String(s.to_string()));
        id
    }

    /// The value an id names. Panics on an id this interner never gave out (a broken
    /// invariant, never user input).
    pub fn value(&self, id: u32) -> &Value {
        &self.values[id as usize]
    }

    /// Approximate bytes held: string data plus a fixed cost per value.
    pub fn bytes(&self) -> usize {
        self.text + self.values.len() * 64
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// `v` with every object's keys sorted, recursively: equal JSON values (RFC 8259 objects are
/// unordered) become identical values, so they print the same.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let sorted: Map<String, Value> = entries
                .into_iter()
                .map(|(k, x)| (k.clone(), canonical(x)))
                .collect();
            Value::Object(sorted)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// A value for a sentence: JSON text, so `3`, `"abc"`, `[1,2]`.
pub fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_share_an_id() {
        let mut i = Interner::new();
        let a = i.intern(&json!(3));
        let b = i.intern(&json!("3"));
        let c = i.intern(&json!([1, 2]));
        assert_eq!(i.intern(&json!(3)), a);
        assert_eq!(i.intern_str("3"), b);
        assert_eq!(i.intern(&json!([1, 2])), c);
        assert_eq!(i.len(), 3);
        assert_eq!(i.value(c), &json!([1, 2]));
    }

    #[test]
    fn reordered_objects_share_an_id() {
        let mut i = Interner::new();
        let a: Value = serde_json::from_str(r#"{"a":1,"b":{"x":[{"p":1,"q":2}],"y":2}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":{"y":2,"x":[{"q":2,"p":1}]},"a":1}"#).unwrap();
        assert_ne!(
            a.to_string(),
            b.to_string(),
            "preserve_order keeps insertion order"
        );
        let id = i.intern(&a);
        assert_eq!(i.intern(&b), id);
        assert_ne!(i.intern(&json!({"a": 1, "b": 3})), id);
        assert_eq!(i.len(), 2);
    }
}
