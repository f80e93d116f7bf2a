//! `quorate run --test-count N`, Jepsen's hunt for a rare anomaly: whole runs one after
//! another with seeds `S`, `S+1`, … (`S` is `--seed`, or the random seed printed at the
//! start), each with its own folder exactly as a single run. The hunt stops at the first
//! invalid run (the catch), at an error (exit 3: nothing after it could be trusted), at Ctrl-C,
//! or after N runs; a run that ends `unknown` does not stop it. Each seed's verdict goes to
//! stderr as it ends, then one line naming the caught seed's folder; the exit code is the worst
//! of the runs (error > invalid > unknown > valid).

use super::run::{once_or_error, RunArgs};
use quorate_checker::check::combine_exit_codes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a run's exit code says, in the words of the run's own `verdict:` line.
fn verdict(code: u8) -> &'static str {
    match code {
        0 => "valid",
        1 => "INVALID",
        2 => "unknown",
        _ => "error",
    }
}

/// A flag raised by SIGINT or SIGTERM for the whole hunt. Each run's own handler stops that
/// run (it heals and keeps its history); this one outlives the runs, so a Ctrl-C that lands
/// while a run is being checked, between two runs' clusters, still ends the hunt. Tokio hands
/// every signal to every listener, so both hear it.
fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    use anyhow::Context;
    use tokio::signal::unix::{signal, SignalKind};
    let flag = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the hunt's signal runtime")?;
    // Registered here, before the first run starts, so no signal falls between the two.
    let (mut int, mut term) = rt.block_on(async {
        let int = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;
        let term = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
        anyhow::Ok((int, term))
    })?;
    let raised = flag.clone();
    std::thread::Builder::new()
        .name("hunt-signals".into())
        .spawn(move || {
            rt.block_on(async {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            });
            raised.store(true, Ordering::SeqCst);
        })
        .context("start the hunt's signal thread")?;
    Ok(flag)
}

/// Run the hunt from seed `first` (`--test-count` ≥ 2: `cmd::run` runs 0 and 1 as a single
/// run, whose plan refuses 0); the worst exit code of the runs.
pub fn main(args: &RunArgs, first: u64) -> u8 {
    let n = args.test_count;
    let stop = match stop_flag() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("quorate run: error: {e:#}");
            return 3;
        }
    };
    let last = first.wrapping_add(n - 1);
    eprintln!(
        "quorate run: --test-count {n}: seeds {first} to {last}, stopping at the first invalid run"
    );
    let mut codes = Vec::new();
    let mut caught = None;
    for i in 0..n {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let seed = first.wrapping_add(i);
        // Each run records its own seed as its flag, so `test.json`'s args replay that run.
        let mut one = args.clone();
        one.seed = Some(seed);
        let once = once_or_error(&one, seed);
        codes.push(once.code);
        let folder = once
            .dir
            .as_ref()
            .map(|d| format!(" {}", d.display()))
            .unwrap_or_default();
        eprintln!(
            "quorate run: seed {seed} ({} of {n}): {}{folder}",
            i + 1,
            verdict(once.code)
        );
        if once.code == 1 {
            caught = Some((seed, folder));
            break;
        }
        if once.code == 3 || once.interrupted {
            break;
        }
    }
    let done = codes.len() as u64;
    let code = combine_exit_codes(codes.iter().copied());
    let why = if caught.is_some() {
        ""
    } else if stop.load(Ordering::SeqCst) {
        ", interrupted"
    } else if code == 3 {
        ", stopped at an error"
    } else {
        ""
    };
    match caught {
        Some((seed, folder)) => {
            eprintln!(
                "quorate run: --test-count {n}: seed {seed} is INVALID after {done} runs:{folder}"
            )
        }
        None => eprintln!(
            "quorate run: --test-count {n}: no invalid run in {done} runs{why}; worst verdict {}",
            verdict(code)
        ),
    }
    code
}
