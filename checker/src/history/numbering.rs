//! Giving events their `index`, and holding readers to the format's ordering rules.
//!
//! `index` is optional on input (HISTORY.md): a reader assigns an event's position among the
//! events when it is absent. Op numbers in verdicts are the `index` of the op's invoke line, so
//! indices must be unique; we require them to increase strictly, which every writer we know
//! (quorate, Jepsen) does and which also catches two files pasted together.

use super::{Event, HistoryError};

/// Numbers events as a reader produces them, one at a time, in line order.
#[derive(Debug, Default)]
pub struct Numbering {
    /// Events numbered so far (the next event's position).
    count: u64,
    /// The previous event's index and line, to check that indices increase.
    last_index: Option<(u64, usize)>,
    /// The previous event's time and line; `None` when times are not checked.
    last_time: Option<(i64, usize)>,
    check_time: bool,
}

impl Numbering {
    /// Numbering for quorate's own JSONL, where `time` must also never decrease.
    pub fn strict() -> Numbering {
        Numbering {
            check_time: true,
            ..Numbering::default()
        }
    }

    /// Numbering for imports, whose times are for display only and are not checked.
    pub fn lenient() -> Numbering {
        Numbering::default()
    }

    /// Assign `ev.index` if absent and check the ordering rules; `line` is 1-based, for errors.
    pub fn number(&mut self, ev: &mut Event, line: usize) -> Result<(), HistoryError> {
        let index = *ev.index.get_or_insert(self.count);
        if let Some((prev, prev_line)) = self.last_index {
            if index <= prev {
                return Err(HistoryError::Semantics {
                    line,
                    message: format!(
                        "index {index} is not greater than the index {prev} of line {prev_line}; expected indices that increase line by line (or none: a reader assigns them)"
                    ),
                });
            }
        }
        self.last_index = Some((index, line));
        if self.check_time {
            if let Some(t) = ev.time {
                if let Some((prev, prev_line)) = self.last_time {
                    if t < prev {
                        return Err(HistoryError::Semantics {
                            line,
                            message: format!(
                                "time {t} is less than the time {prev} of line {prev_line}; expected times (ns from a monotonic clock) that never decrease"
                            ),
                        });
                    }
                }
                self.last_time = Some((t, line));
            }
        }
        self.count += 1;
        Ok(())
    }
}
