//! The progress line on stderr while a run goes: elapsed time of the fault phase, ops, their
//! outcomes and the faults active. indicatif hides it when stderr is not a terminal, so logs
//! and CI output stay clean.

use crate::recorder::Counts;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(total: Duration) -> Progress {
        let bar = ProgressBar::with_draw_target(
            Some(total.as_secs().max(1)),
            ProgressDrawTarget::stderr_with_hz(4),
        );
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:20}] {pos}/{len}s {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        Progress { bar }
    }

    /// Refresh from the counters; `phase` names what the run is doing.
    pub fn update(&self, elapsed: Duration, counts: &Counts, phase: &str) {
        self.bar.set_position(elapsed.as_secs());
        self.bar.set_message(line(counts, phase));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The one-line status (also used for the summary).
pub fn line(c: &Counts, phase: &str) -> String {
    format!(
        "{phase}: ops {} ok {} fail {} info {} | faults active {}",
        c.invokes.load(Ordering::Relaxed),
        c.ok.load(Ordering::Relaxed),
        c.fail.load(Ordering::Relaxed),
        c.info.load(Ordering::Relaxed),
        c.faults_active.load(Ordering::Relaxed)
    )
}
