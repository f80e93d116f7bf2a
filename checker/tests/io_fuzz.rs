//! No reader panics, on any input.
//!
//! Three sources of input, each fed to every format (and to `auto`):
//! - arbitrary bytes (proptest);
//! - token soup: random sequences of the pieces the formats are made of (brackets, keywords,
//!   strings, escapes, `#_`, `;`, numbers at the edges of i64), which reach far deeper into the
//!   readers than random bytes do;
//! - mutations (seeded ChaCha, so a failure replays) of valid histories in every format.
//!
//! Whatever a reader returns must then be safe to use: indices increase, pairing and writing
//! JSONL do not panic, and a history that reads back from JSONL gives the same events.

use proptest::prelude::*;
use quorate_checker::history::{jsonl, pair};
use quorate_checker::import::{history_from_bytes, read_bytes, Format};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Read `bytes` in every format; check what comes back.
fn read_everything(bytes: &[u8]) {
    for format in Format::ALL {
        let _ = history_from_bytes(bytes, format);
        let Ok((events, _)) = read_bytes(bytes, format) else {
            continue;
        };
        let indices: Vec<u64> = events.iter().map(|e| e.index.unwrap()).collect();
        assert!(indices.windows(2).all(|w| w[0] < w[1]), "indices increase");
        let _ = pair(&events);
        let mut out = Vec::new();
        jsonl::write_events(&mut out, &events).unwrap();
        // Only JSONL itself is held to an exact round trip: imports may hold floats that
        // JSON's decimal form rounds.
        if format == Format::Jsonl {
            let back = jsonl::read(std::str::from_utf8(&out).unwrap()).unwrap();
            assert_eq!(back, events);
        }
    }
}

const SAMPLES: [&str; 5] = [
    "{\"index\":0,\"time\":5,\"process\":0,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"k\",\"value\":[1,2]}\n\
     {\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"partition-start\",\"value\":{\"kind\":\"halves\",\"drop\":[[\"n1\",\"n2\"]]}}\n\
     {\"index\":2,\"time\":9,\"process\":0,\"type\":\"fail\",\"f\":\"cas\",\"key\":\"k\",\"value\":[1,2],\"error\":\"mismatch\",\"extra\":{\"x\":1.5}}\n",
    "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n\
     INFO  jepsen.util - 1 :invoke :cas [1 2]\n\
     INFO  jepsen.util - 0\t:ok\t:read\t3\n\
     INFO  jepsen.util - 1 :fail :cas [1 2]\n\
     INFO  jepsen.util - 2 :invoke :write 4\n\
     INFO  jepsen.util - 2 :info :write :timed-out\n",
    "{:process 0, :type :invoke, :f :append, :key \"0\", :value \"x 0 0 y\"}\n\
     {:process 1, :type :invoke, :f :get, :key \"1\", :value nil}\n\
     {:process 0, :type :ok, :f :append, :key \"0\", :value \"x 0 0 y\"}\n\
     {:process 1, :type :ok, :f :get, :key \"1\", :value \"\"}\n",
    "; a Knossos history\n[{:process 0, :type :invoke, :f :write, :value [:a 1], :time 10}\n\
     {:process :nemesis, :type :info, :f :start, :value #{\"n1\" \"n2\"}}\n\
     {:process 0, :type :info, :f :write, :value [:a 1], :error [:timeout \"no \\\"reply\\\"\"]}\n\
     #_ {:ignored true}\n]",
    "(#jepsen.history.Op{:index 0, :time 1, :type :invoke, :process 3, :f :read, :value nil}\n\
     #jepsen.history.Op{:index 1, :time 2, :type :ok, :process 3, :f :read, :value 1.25M, :node \"n1\", :c \\a})",
];

const TOKENS: [&str; 40] = [
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    "#{",
    "#_",
    "#tag ",
    "\"",
    "\\",
    "\\u00e9",
    "\\newline",
    ":",
    ":k",
    ":process",
    ":type",
    ":invoke",
    ":ok",
    ":fail",
    ":f",
    ":value",
    ":key",
    " ",
    ",",
    "\n",
    ";c\n",
    "nil",
    "-",
    "+1",
    "9223372036854775807",
    "-9223372036854775809",
    "1e999",
    "1.5M",
    "2N",
    "é",
    "{\"",
    "\"process\":",
    "INFO  jepsen.util - ",
    "\u{feff}",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        read_everything(&bytes);
    }

    #[test]
    fn token_soup_never_panics(picks in proptest::collection::vec(0..TOKENS.len(), 0..80)) {
        let text: String = picks.iter().map(|&i| TOKENS[i]).collect();
        read_everything(text.as_bytes());
    }
}

/// Seeded mutations of the valid samples: delete, duplicate, insert a token, flip a byte.
#[test]
fn mutated_histories_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x9e37_79b9);
    for sample in SAMPLES {
        // The samples themselves are valid, so the mutations start from deep inside each reader.
        let (events, _) = read_bytes(sample.as_bytes(), Format::Auto).unwrap();
        assert!(events.len() >= 2);
        read_everything(sample.as_bytes());
        for _ in 0..3000 {
            let mut bytes = sample.as_bytes().to_vec();
            for _ in 0..rng.gen_range(1..6) {
                let len = bytes.len();
                let at = rng.gen_range(0..=len);
                match rng.gen_range(0..4) {
                    0 if at < len => {
                        let end = rng.gen_range(at..=len.min(at + 8));
                        bytes.drain(at..end);
                    }
                    1 if at < len => {
                        let end = rng.gen_range(at..=len.min(at + 16));
                        let copy = bytes[at..end].to_vec();
                        bytes.splice(at..at, copy);
                    }
                    2 => {
                        let tok = TOKENS[rng.gen_range(0..TOKENS.len())].as_bytes();
                        bytes.splice(at..at, tok.iter().copied());
                    }
                    _ if at < len => bytes[at] = rng.gen(),
                    _ => bytes.push(rng.gen()),
                }
            }
            read_everything(&bytes);
        }
    }
}

/// serde_json's recursion limit, which bounds nesting in JSONL (EDN has its own bound).
const JSON_DEPTH: usize = 128;

/// Nesting and discards far past the readers' bounds: every format (and `auto`) returns an
/// error, none overflows the stack, and the reader the input is written for says why (the
/// nesting), not merely that the input is odd.
#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    const EDN: &str = "collections nested more than 128 deep";
    const JSON: &str = "recursion limit exceeded";
    let deep = 100_000;
    let cases: [(String, &[Format], &str); 8] = [
        (
            "[".repeat(deep),
            &[Format::JepsenEdn, Format::PorcupineKv],
            EDN,
        ),
        (
            "{:a ".repeat(deep / 2),
            &[Format::JepsenEdn, Format::PorcupineKv],
            EDN,
        ),
        (
            "#_".repeat(deep),
            &[Format::JepsenEdn, Format::PorcupineKv],
            EDN,
        ),
        (
            "#t ".repeat(deep),
            &[Format::JepsenEdn, Format::PorcupineKv],
            EDN,
        ),
        (
            format!("{}1{}", "[".repeat(deep), "]".repeat(deep)),
            &[Format::JepsenEdn, Format::PorcupineKv],
            EDN,
        ),
        (
            format!("INFO  jepsen.util - 0 :invoke :read {}", "[".repeat(deep)),
            &[Format::PorcupineEtcd],
            EDN,
        ),
        (
            format!(
                "{{\"process\":0,\"type\":\"invoke\",\"f\":\"w\",\"value\":{}",
                "[".repeat(deep)
            ),
            &[Format::Jsonl],
            JSON,
        ),
        (
            format!(
                "{{\"process\":0,\"type\":\"invoke\",\"f\":\"w\",\"value\":{}1{}}}",
                "[".repeat(deep),
                "]".repeat(deep)
            ),
            &[Format::Jsonl],
            JSON,
        ),
    ];
    for (text, own, why) in &cases {
        let head: String = text.chars().take(30).collect();
        for format in Format::ALL {
            let err = match read_bytes(text.as_bytes(), format) {
                Ok((events, _)) => panic!("{format:?} read {} events from {head:?}…", events.len()),
                Err(e) => e.to_string(),
            };
            if own.contains(&format) || format == Format::Auto {
                assert!(err.contains(why), "{format:?} on {head:?}…: {err:.300}");
            }
            assert!(history_from_bytes(text.as_bytes(), format).is_err());
        }
    }
}

/// Nesting up to the bound is read back intact; one level more is the error above.
#[test]
fn nesting_up_to_the_bound_reads() {
    use quorate_checker::import::edn::MAX_DEPTH;
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let depth_of = |mut v: &serde_json::Value| {
        let mut d = 0;
        while let Some(inner) = v.as_array().and_then(|a| a.first()) {
            v = inner;
            d += 1;
        }
        d
    };
    // JSONL: serde_json's limit counts the line's object and the event's value field as
    // levels too, so a value may nest 126 deep.
    let jsonl = |depth: usize| {
        format!(
            "{{\"process\":0,\"type\":\"invoke\",\"f\":\"w\",\"value\":{}}}",
            nested(depth)
        )
    };
    let (events, _) = read_bytes(jsonl(JSON_DEPTH - 2).as_bytes(), Format::Jsonl).unwrap();
    assert_eq!(depth_of(&events[0].value), JSON_DEPTH - 2);
    assert!(read_bytes(jsonl(JSON_DEPTH - 1).as_bytes(), Format::Jsonl).is_err());
    // EDN: the event's map is one level too.
    let edn = |depth: usize| {
        format!(
            "{{:process 0, :type :invoke, :f :w, :value {}}}",
            nested(depth)
        )
    };
    let (events, _) = read_bytes(edn(MAX_DEPTH - 1).as_bytes(), Format::JepsenEdn).unwrap();
    assert_eq!(depth_of(&events[0].value), MAX_DEPTH - 1);
    let err = read_bytes(edn(MAX_DEPTH).as_bytes(), Format::JepsenEdn).unwrap_err();
    assert!(
        err.to_string().contains("nested more than 128 deep"),
        "{err}"
    );
}
