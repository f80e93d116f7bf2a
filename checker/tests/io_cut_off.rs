//! A history whose last line was cut off mid-write (a harness killed while appending) is
//! checked up to its last whole line, and says where it was cut; every other bad line, the
//! last one included, still stops the read.

use anyhow::Result;
use quorate_checker::check::{check_file, CheckOptions};
use quorate_checker::history::{jsonl, Outcome};
use quorate_checker::import::{history_from_bytes, read_bytes, read_path, Format};
use serde_json::json;
use std::path::PathBuf;

const WRITE: &str = r#"{"process":0,"type":"invoke","f":"write","key":"k1","value":1}
{"process":0,"type":"ok","f":"write","key":"k1","value":1}
{"process":1,"type":"invoke","f":"read","key":"k1","value":null}
"#;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn a_cut_off_last_line_is_left_out_and_named() -> Result<()> {
    let cut = r#"{"process":1,"type":"ok","f":"read","key":"k1","val"#;
    let text = format!("{WRITE}{cut}");
    for format in [Format::Jsonl, Format::Auto] {
        let (h, _) = history_from_bytes(text.as_bytes(), format)?;
        let t = h.truncated.as_ref().expect("says it was cut");
        assert_eq!((t.line, t.bytes), (4, cut.len()), "{format:?}");
        assert!(t.message.contains("EOF"), "{}", t.message);
        assert_eq!(h.events, 3, "the lines before it");
        // The read whose completion was cut off never completed: it is `info`.
        assert_eq!(h.ops[1].outcome, Outcome::Info);
    }
    Ok(())
}

#[test]
fn a_last_line_cut_at_any_byte_is_left_out() -> Result<()> {
    let last = r#"{"index":3,"time":40,"process":1,"type":"ok","f":"read","key":"k1","value":[1,{"a":"b\"c"},null,true,false,-1.5e3,"\u00e9"],"node":"n1"}"#;
    // Every proper prefix that is not blank: each ends the input inside the object.
    for n in 1..last.len() {
        let text = format!("{WRITE}{}", &last[..n]);
        let (h, _) = history_from_bytes(text.as_bytes(), Format::Jsonl)
            .map_err(|e| anyhow::anyhow!("cut after {n} bytes: {e}"))?;
        let t = h.truncated.expect("cut off");
        assert_eq!((t.line, t.bytes), (4, n));
    }
    // The whole line with no newline after it is a whole line.
    let (h, _) = history_from_bytes(format!("{WRITE}{last}").as_bytes(), Format::Jsonl)?;
    assert_eq!(h.truncated, None);
    assert_eq!(h.events, 4);
    Ok(())
}

#[test]
fn a_character_cut_in_two_is_part_of_the_cut_off_line() -> Result<()> {
    let last = r#"{"process":1,"type":"ok","f":"read","key":"k1","value":"é"}"#.as_bytes();
    let at = last.iter().position(|&b| b >= 0x80).unwrap() + 1; // inside the two-byte é
    let mut bytes = WRITE.as_bytes().to_vec();
    bytes.extend_from_slice(&last[..at]);
    let (h, _) = history_from_bytes(&bytes, Format::Auto)?;
    let t = h.truncated.expect("cut off");
    assert_eq!((t.line, t.bytes), (4, at));
    // Half a character after a whole line, or in a line that is not the last, is not text.
    for bad in [
        [WRITE.as_bytes(), &last[at - 1..at]].concat(),
        [WRITE.as_bytes(), &last[..at], b"\n"].concat(),
    ] {
        let e = history_from_bytes(&bad, Format::Jsonl)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }
    Ok(())
}

#[test]
fn a_bad_last_line_that_ends_in_a_newline_is_an_error() {
    let text = format!("{WRITE}{}\n", r#"{"process":1,"type":"ok","f":"re"#);
    let e = history_from_bytes(text.as_bytes(), Format::Jsonl)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 4:") && e.contains("EOF"), "{e}");
}

#[test]
fn a_last_line_with_another_error_is_an_error() {
    for last in [
        // A syntax error before the end of the input.
        r#"{"process":1,"type":"ok"]"#,
        // Whole JSON that is not an event.
        r#"{"process":1,"type":"done","f":"read"}"#,
        // Not JSON at all.
        "garbage",
    ] {
        let text = format!("{WRITE}{last}");
        let e = history_from_bytes(text.as_bytes(), Format::Jsonl)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 4") && e.contains("expected"),
            "{last}: {e}"
        );
    }
}

#[test]
fn a_cut_off_line_before_the_last_is_an_error() {
    let text = format!(
        "{}{WRITE}",
        r#"{"process":2,"type":"invoke","f":"wr"#.to_string() + "\n"
    );
    let e = history_from_bytes(text.as_bytes(), Format::Jsonl)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1:"), "{e}");
}

#[test]
fn the_event_readers_refuse_a_cut_off_file_and_say_why() {
    let text = format!("{WRITE}{}", r#"{"process":1,"ty"#);
    let e = jsonl::read(&text).unwrap_err().to_string();
    assert!(e.contains("line 4:") && e.contains("cut off"), "{e}");
    assert!(read_bytes(text.as_bytes(), Format::Jsonl).is_err());
    let e = read_path(&fixture("cut-off.jsonl"), Format::Auto)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cut-off.jsonl: line 6:"), "{e}");
}

#[test]
fn the_report_says_where_the_file_was_cut() -> Result<()> {
    let r = check_file(&fixture("cut-off.jsonl"), &CheckOptions::default())?;
    let j = r.to_json();
    assert_eq!(j["truncated"], json!({"line": 6, "bytes": 59}));
    assert_eq!(j["valid"], json!(true), "the whole lines are judged: {j}");
    let s = r.summary();
    assert!(
        s.contains("truncated: line 6 was cut off (59 bytes, no newline at the end): checked up to the line before it"),
        "{s}"
    );
    // A whole file says nothing of the kind.
    let whole = check_file(&fixture("register.jsonl"), &CheckOptions::default())?;
    assert!(whole.to_json().get("truncated").is_none());
    Ok(())
}
