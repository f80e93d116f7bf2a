//! Which quorum checks a file gets, and running them: the register checks over the history's
//! registers, the set checks (set-full and Garage's read-after-write rule) and convergence.

use super::{Anomalies, CheckResult};
use crate::check::{Check, CheckOptions};
use crate::history::History;
use crate::model::ModelKind;
use std::collections::BTreeMap;

/// Run the quorum checks among `checks`. By default (`explicit` false) a check that does not
/// apply to the history is left out, except the register checks, which say why they are
/// skipped on a register history (values repeat, cas ops); asked for by name, a check that does
/// not apply is reported skipped with its reason.
pub(crate) fn run_quorum(
    history: &History,
    model: ModelKind,
    opts: &CheckOptions,
    checks: &[Check],
    explicit: bool,
    out: &mut BTreeMap<Check, CheckResult>,
    found: &mut Vec<(Check, Anomalies)>,
) {
    let register_checks = [Check::StaleReads, Check::LostWrites, Check::Sessions];
    if register_checks.iter().any(|c| checks.contains(c)) {
        let register_history = matches!(model, ModelKind::Register | ModelKind::CasRegister)
            && super::set::applies(history).is_err();
        match super::registers(history, opts.initial.as_ref()) {
            Ok(regs) => {
                if checks.contains(&Check::StaleReads) {
                    let (r, a) = super::stale::check(&regs);
                    found.push((Check::StaleReads, a));
                    out.insert(Check::StaleReads, r);
                }
                if checks.contains(&Check::LostWrites) {
                    let (r, a) = super::lost::check(&regs);
                    found.push((Check::LostWrites, a));
                    out.insert(Check::LostWrites, r);
                }
                if checks.contains(&Check::Sessions) {
                    let (r, a) = super::sessions::check(&regs);
                    found.push((Check::Sessions, a));
                    out.insert(Check::Sessions, r);
                }
            }
            Err(why) if explicit || register_history => {
                for c in register_checks {
                    if checks.contains(&c) {
                        out.insert(c, CheckResult::Skipped(why.clone()));
                    }
                }
            }
            Err(_) => {}
        }
    }
    for (check, rule) in [
        (Check::Set, super::set::Rule::SetFull),
        (Check::SetReadAfterWrite, super::set::Rule::ReadAfterWrite),
    ] {
        if !checks.contains(&check) {
            continue;
        }
        match super::set::applies(history).and_then(|()| super::set::check(history, rule)) {
            Ok((r, a)) => {
                found.push((check, a));
                out.insert(check, r);
            }
            Err(why) if explicit => {
                out.insert(check, CheckResult::Skipped(why));
            }
            Err(_) => {}
        }
    }
    if checks.contains(&Check::Convergence) {
        match super::convergence::check(history) {
            Some(r) => {
                out.insert(Check::Convergence, r);
            }
            None if explicit => {
                out.insert(
                    Check::Convergence,
                    CheckResult::Skipped("the history has no convergence observation".into()),
                );
            }
            None => {}
        }
    }
}
