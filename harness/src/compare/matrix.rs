//! The set of configurations a comparison runs: from `--presets × --nemesis`, or from a
//! `--matrix` TOML file (INTERFACES.md "quorate compare").
//!
//! A configuration is a `quorate run` argv, never a second copy of run's flags: a table's keys
//! are run's long flag names, turned into `--flag value` and parsed by run's own clap
//! definition ([`RunArgs`]) and [`RunPlan::validate`], so a flag that run accepts works here and a typo
//! is caught before the first run starts, naming the file, the table and the key.
//!
//! The file's shape:
//! ```toml
//! seeds = 2            # top-level: `seeds` (a count, or a list of seeds) and run flags that
//! time-limit = 8       # apply to every configuration unless the configuration sets them
//!
//! [strict-calm]        # one table per configuration; its name names the runs' folders
//! note = "claim 1"     # shown in the table
//! preset = "strict"
//! nemesis = "none"
//! expect = { "stale-reads" = "valid", linearizable = "invalid" }
//! ```

use super::expect::Expect;
use crate::cmd::run::RunArgs;
use crate::plan::RunPlan;
use crate::store;
use clap::{ArgAction, CommandFactory, Parser};
use std::path::Path;

/// Flags a comparison sets itself for every run.
const RESERVED: [&str; 4] = ["seed", "results", "name", "junit"];

/// One configuration: a name, the `quorate run` flags that make it, and what it should show.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub name: String,
    /// `quorate run` flags (without `--seed`, `--results`, `--name`, which compare adds).
    pub argv: Vec<String>,
    pub expect: Option<Expect>,
    /// Free text shown beside the row (the claim a configuration shows).
    pub note: Option<String>,
}

/// What a comparison runs: every configuration once per seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub configs: Vec<Config>,
    pub seeds: Vec<u64>,
}

/// `quorate run`'s flags alone, to parse a configuration exactly as `run` would.
#[derive(Parser, Debug)]
#[command(name = "quorate run", no_binary_name = true)]
struct RunOnly {
    #[command(flatten)]
    args: RunArgs,
}

/// Parse a configuration's argv with run's own definition and check it with run's `validate`.
pub fn parse_run_args(argv: &[String]) -> Result<RunArgs, String> {
    let parsed = RunOnly::try_parse_from(argv).map_err(|e| {
        // clap's rendering ends with a usage block; the first line says what is wrong.
        let s = e.to_string();
        s.lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("bad flags")
            .trim_start_matches("error: ")
            .to_string()
    })?;
    RunPlan::validate(&parsed.args, 0).map_err(|e| e.to_string())?;
    if parsed.args.test_count != 1 {
        // A child hunting over seeds of its own would report only its last run, and the table
        // pools each configuration's seeds: compare hunts itself (`quorate compare
        // --test-count N`), one child run per seed.
        return Err(format!(
            "--test-count {}: not taken per configuration; expected `quorate compare --test-count N` (every configuration hunts over seeds 1..=N) or `seeds`",
            parsed.args.test_count
        ));
    }
    Ok(parsed.args)
}

/// Probe the machine for `cfg` as its runs will ([`RunPlan::probe`]: netns, the target's
/// programs and the configuration they accept), so a comparison that cannot run stops before
/// its first run rather than failing every one.
pub fn probe(cfg: &Config) -> Result<(), String> {
    let args = parse_run_args(&cfg.argv)?;
    let mut plan = RunPlan::validate(&args, 0).map_err(|e| e.to_string())?;
    plan.probe()
        .map_err(|e| format!("configuration {}: {e}", cfg.name))
}

/// Run's long flags: name → whether it takes a value (`false` for switches such as
/// `--direct-clients`).
fn run_flags() -> Vec<(String, bool)> {
    RunOnly::command()
        .get_arguments()
        .filter_map(|a| {
            let takes = !matches!(a.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
            a.get_long().map(|l| (l.to_string(), takes))
        })
        .filter(|(l, _)| l != "help")
        .collect()
}

/// `--presets abd,strict --nemesis partition,kill`: one configuration per preset (and per
/// fault set when `nemesis` holds several, separated by `;`), each with `extra` run flags.
pub fn from_presets(
    presets: &str,
    nemesis: &str,
    time_limit: Option<f64>,
    extra: &[String],
    seeds: u64,
) -> Result<Matrix, String> {
    let sets: Vec<&str> = nemesis.split(';').map(str::trim).collect();
    let mut configs = Vec::new();
    for preset in presets.split(',').map(str::trim) {
        if preset.is_empty() {
            return Err(format!(
                "--presets {presets:?}: expected a comma list of presets"
            ));
        }
        for set in &sets {
            let name = if sets.len() == 1 {
                preset.to_string()
            } else {
                format!("{preset}-{}", set.replace(',', "-"))
            };
            let mut argv = extra.to_vec();
            argv.extend(["--preset".into(), preset.into(), "--nemesis".into()]);
            argv.push(set.to_string());
            if let Some(t) = time_limit {
                argv.extend(["--time-limit".into(), t.to_string()]);
            }
            let cfg = Config {
                name,
                argv,
                expect: None,
                note: None,
            };
            check_config(&cfg).map_err(|e| format!("configuration {}: {e}", cfg.name))?;
            configs.push(cfg);
        }
    }
    Ok(Matrix {
        configs,
        seeds: (1..=seeds).collect(),
    })
}

fn check_config(cfg: &Config) -> Result<(), String> {
    store::validate_name(&cfg.name).map_err(|e| e.replace("--name", "the table name"))?;
    parse_run_args(&cfg.argv).map(|_| ())
}

/// Read a matrix file. `seeds` and `time_limit` from the command line override the file's
/// top-level values; `extra` run flags go before every configuration's own.
pub fn from_file(
    path: &Path,
    seeds: Option<u64>,
    time_limit: Option<f64>,
    extra: &[String],
) -> Result<Matrix, String> {
    let file = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("--matrix {file}: {e}"))?;
    parse(&text, seeds, time_limit, extra).map_err(|e| format!("--matrix {file}: {e}"))
}

/// The file's text to a matrix; errors name the table and key and what was expected.
pub fn parse(
    text: &str,
    seeds: Option<u64>,
    time_limit: Option<f64>,
    extra: &[String],
) -> Result<Matrix, String> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("not valid TOML: {}", e.to_string().trim_end()))?;
    let flags = run_flags();
    let mut defaults: Vec<(String, toml::Value)> = Vec::new();
    let mut file_seeds = None;
    let mut tables = Vec::new();
    for (k, v) in &doc {
        match (k.as_str(), v) {
            (_, toml::Value::Table(t)) => tables.push((k.clone(), t)),
            ("seeds", v) => file_seeds = Some(seed_list(v)?),
            ("expect" | "note", _) => {
                return Err(format!(
                    "top-level `{k}`: expected it inside a configuration's table"
                ))
            }
            _ => defaults.push((k.clone(), v.clone())),
        }
    }
    if tables.is_empty() {
        return Err(
            "no configuration: expected one table per configuration, e.g. [strict] with preset = \"strict\""
                .into(),
        );
    }
    if let Some(t) = time_limit {
        defaults.retain(|(k, _)| flag_name(k) != "time-limit");
        defaults.push(("time-limit".into(), toml::Value::Float(t)));
    }
    let mut configs = Vec::new();
    for (name, table) in tables {
        let at = format!("configuration [{name}]");
        let mut merged: Vec<(String, toml::Value)> = defaults.clone();
        let mut expect = None;
        let mut note = None;
        for (k, v) in table {
            match k.as_str() {
                "expect" => expect = Some(Expect::from_toml(v).map_err(|e| format!("{at}: {e}"))?),
                "note" => {
                    note = Some(
                        v.as_str()
                            .ok_or_else(|| format!("{at}: `note`: expected a string"))?
                            .to_string(),
                    )
                }
                "seeds" => {
                    return Err(format!(
                        "{at}: `seeds`: expected it at the top of the file (every configuration runs the same seeds)"
                    ))
                }
                _ => {
                    merged.retain(|(d, _)| flag_name(d) != flag_name(k));
                    merged.push((k.clone(), v.clone()));
                }
            }
        }
        let mut argv = extra.to_vec();
        for (k, v) in &merged {
            push_flag(&mut argv, &flags, k, v).map_err(|e| format!("{at}: {e}"))?;
        }
        let cfg = Config {
            name: name.clone(),
            argv,
            expect,
            note,
        };
        check_config(&cfg).map_err(|e| format!("{at}: {e}"))?;
        configs.push(cfg);
    }
    let seeds = match (seeds, file_seeds) {
        (Some(k), _) => (1..=k).collect(),
        (None, Some(list)) => list,
        (None, None) => vec![1],
    };
    Ok(Matrix { configs, seeds })
}

/// `snake_case` keys are accepted as the kebab-case flag.
fn flag_name(key: &str) -> String {
    key.replace('_', "-")
}

fn seed_list(v: &toml::Value) -> Result<Vec<u64>, String> {
    let bad =
        || "`seeds`: expected a count (e.g. 3, for seeds 1, 2, 3) or a list of seeds".to_string();
    match v {
        toml::Value::Integer(k) if *k >= 1 => Ok((1..=*k as u64).collect()),
        toml::Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| {
                x.as_integer()
                    .filter(|s| *s >= 0)
                    .map(|s| s as u64)
                    .ok_or_else(bad)
            })
            .collect(),
        _ => Err(bad()),
    }
}

/// One key → `--flag value` (switches: `--flag` when true; lists: the flag repeated).
fn push_flag(
    argv: &mut Vec<String>,
    flags: &[(String, bool)],
    key: &str,
    v: &toml::Value,
) -> Result<(), String> {
    let name = flag_name(key);
    if RESERVED.contains(&name.as_str()) {
        return Err(format!(
            "`{key}`: compare sets --{name} itself for every run; expected it left out"
        ));
    }
    let Some((_, takes_value)) = flags.iter().find(|(f, _)| *f == name) else {
        let mut names: Vec<&str> = flags
            .iter()
            .map(|(f, _)| f.as_str())
            .filter(|f| !RESERVED.contains(f) && *f != "test-count")
            .collect();
        names.extend(["expect", "note"]);
        return Err(format!(
            "unknown key `{key}`: expected a `quorate run` flag or expect/note ({})",
            names.join(", ")
        ));
    };
    let scalar = |v: &toml::Value| -> Result<String, String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            _ => Err(format!(
                "`{key}`: expected a string, number or boolean, found {}",
                v.type_str()
            )),
        }
    };
    match v {
        toml::Value::Boolean(b) if !takes_value => {
            if *b {
                argv.push(format!("--{name}"));
            }
        }
        _ if !takes_value => {
            return Err(format!("`{key}`: a switch; expected true or false"));
        }
        toml::Value::Array(items) => {
            for item in items {
                argv.push(format!("--{name}={}", scalar(item)?));
            }
        }
        v => argv.push(format!("--{name}={}", scalar(v)?)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::expect::Want;

    #[test]
    fn a_matrix_becomes_run_argv() {
        let m = parse(
            r#"
seeds = 2
time-limit = 5
[weak]
preset = "weak"
nemesis = "partition"
direct-clients = true
node-arg = ["--handoff-interval-ms=200"]
expect = "invalid"
[abd-calm]
preset = "abd"
nemesis = "none"
time_limit = 3
"#,
            None,
            None,
            &[],
        )
        .unwrap();
        assert_eq!(m.seeds, vec![1, 2]);
        assert_eq!(m.configs[0].name, "weak");
        assert_eq!(
            m.configs[0].argv,
            [
                "--time-limit=5",
                "--preset=weak",
                "--nemesis=partition",
                "--direct-clients",
                "--node-arg=--handoff-interval-ms=200"
            ]
        );
        assert_eq!(m.configs[0].expect, Some(Expect::Whole(Want::Invalid)));
        // The configuration's own time limit replaces the default.
        assert_eq!(
            m.configs[1].argv,
            ["--preset=abd", "--nemesis=none", "--time-limit=3"]
        );
        let args = parse_run_args(&m.configs[0].argv).unwrap();
        assert!(args.direct_clients);
        assert_eq!(
            args.target_args.node.node_args,
            ["--handoff-interval-ms=200"]
        );
    }

    /// The matrices the repository ships (`make claims`, `make published-bugs`) parse, and
    /// every configuration passes run's own validation, so neither fails on a typo after
    /// minutes of runs.
    #[test]
    fn the_shipped_matrices_are_valid() {
        for (file, configs) in [
            ("leaderless-claims.toml", None),
            ("garage-published-bugs.toml", Some(9)),
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../examples")
                .join(file);
            let m = from_file(&path, None, None, &[]).unwrap();
            if let Some(n) = configs {
                assert_eq!(m.configs.len(), n, "{file}");
            }
            for c in &m.configs {
                parse_run_args(&c.argv).unwrap_or_else(|e| panic!("{file} [{}]: {e}", c.name));
                assert!(c.expect.is_some(), "{file} [{}] expects nothing", c.name);
            }
        }
    }

    #[test]
    fn command_line_overrides_the_file() {
        let m = parse(
            "seeds = [4, 9]\ntime-limit = 5\n[a]\npreset = \"abd\"\n",
            Some(3),
            Some(2.5),
            &[],
        )
        .unwrap();
        assert_eq!(m.seeds, vec![1, 2, 3]);
        assert_eq!(m.configs[0].argv, ["--time-limit=2.5", "--preset=abd"]);
    }

    #[test]
    fn bad_matrices_say_where_and_what() {
        let err = |t: &str| parse(t, None, None, &[]).unwrap_err();
        assert!(err("[a]\npreset = ").contains("not valid TOML"));
        assert!(err("seeds = 2\n").contains("no configuration"));
        let e = err("[a]\npresett = \"abd\"\n");
        assert!(
            e.contains("[a]") && e.contains("unknown key `presett`"),
            "{e}"
        );
        let e = err("[a]\npreset = \"paxos\"\n");
        assert!(e.contains("[a]") && e.contains("--preset"), "{e}");
        let e = err("[a]\nseed = 3\n");
        assert!(e.contains("compare sets --seed"), "{e}");
        let e = err("[a]\ntest-count = 5\n");
        assert!(e.contains("[a]") && e.contains("--test-count"), "{e}");
        let e = err("[a]\nexpect = \"maybe\"\n");
        assert!(e.contains("[a]") && e.contains("expect"), "{e}");
        let e = err("[a]\nnodes = \"five\"\n");
        assert!(e.contains("[a]") && e.contains("five"), "{e}");
        let e = err("[\"a/b\"]\npreset = \"abd\"\n");
        assert!(e.contains("table name"), "{e}");
    }

    /// `--garage-replication` is a configuration axis like any run flag, and a replication
    /// the members cannot hold is refused naming the table.
    #[test]
    fn garage_replication_is_an_axis() {
        let m = parse(
            "target = \"garage\"\nnodes = 5\nnemesis = \"kill,reconfigure\"\n\
             [rf2]\ngarage-replication = 2\n[rf3]\ngarage-replication = 3\n",
            Some(1),
            None,
            &[],
        )
        .unwrap();
        for (c, r) in m.configs.iter().zip([2, 3]) {
            let args = parse_run_args(&c.argv).unwrap();
            assert_eq!(args.target_args.garage.garage_replication, Some(r), "{c:?}");
        }
        let e = parse(
            "target = \"garage\"\nnodes = 3\nnemesis = \"kill\"\n[rf4]\ngarage-replication = 4\n",
            Some(1),
            None,
            &[],
        )
        .unwrap_err();
        assert!(
            e.contains("[rf4]") && e.contains("--garage-replication 4"),
            "{e}"
        );
    }

    #[test]
    fn presets_times_fault_sets() {
        let m = from_presets("abd,weak", "partition,kill;none", Some(4.0), &[], 2).unwrap();
        let names: Vec<&str> = m.configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "abd-partition-kill",
                "abd-none",
                "weak-partition-kill",
                "weak-none"
            ]
        );
        assert_eq!(m.seeds, vec![1, 2]);
        assert!(from_presets("abd,", "none", None, &[], 1).is_err());
        assert!(from_presets("abd", "fire", None, &[], 1).is_err());
    }
}
