//! The search for one key: Wing & Gong's depth-first search with Lowe's just-in-time
//! linearization and memoisation (the algorithm Knossos's `wgl` and Porcupine use).
//!
//! # Algorithm
//! The ops become *entries* on a doubly linked list sorted by position: a call entry per op, a
//! return entry per required op (optional ops, `info`, have no deadline and so no return).
//! The search walks the list from its head:
//! - at a call entry, it tries to linearize that op now: step the model; if the op fits and
//!   the configuration (set of linearized ops, new state) has not been seen, it records it,
//!   pushes (op, old state) on a stack, unlinks the op's entries and starts again from the head;
//!   otherwise it moves on to the next entry;
//! - at a return entry, the op it ends was not linearized although its deadline has come: the
//!   search undoes the last linearization (pop, relink, restore state) and tries the entries
//!   after that op's call;
//! - when no required op is left, the ops on the stack, bottom to top, are a linearization.
//!   When a return is met with an empty stack, there is none.
//!
//! Every configuration is expanded at most once (the [`Cache`]), so the work is bounded by the
//! number of distinct (set, state) pairs, which real histories keep small.
//!
//! # Optional ops
//! An `info` op may be linearized at any point after its call, or never: it has a call entry
//! and no return, and the search ends successfully with it still on the list. Its call entry
//! sits just before the first deadline after its call (where it is enabled exactly as at its
//! call), so required ops are tried first. These rules stop pending info ops from multiplying
//! configurations (Porcupine's blow-up), all exact:
//! - placing an optional op that leaves the state unchanged is skipped: the configuration
//!   without it can do everything the one with it can;
//! - of identical optional ops (same effect, [`Model::same_effect`]), a later one is tried only
//!   after the earlier one is placed: swapping them gives the same states;
//! - an op placed right after a run of optional ops must need that run: if it would fit in
//!   the state before the run and change no state (a read), the run can move after it; if it
//!   would end in the same state (a write), the run was overwritten and can go. Either way an
//!   order without this one exists and is searched, so it is skipped. Every linearization can
//!   be rewritten into one where every optional op is needed by what follows it;
//! - [`Cache`] treats a configuration that has placed more optional ops than one already seen
//!   (same required ops, same state) as seen: it can do nothing the other could not.
//!
//! Two exact rules prune the rest:
//! - a read-only op is placed as soon as it fits and, once undone, its alternatives are not
//!   searched: any linearization placing it later can place it here instead;
//! - a new configuration whose state can no longer satisfy a required op near the head of the
//!   list ([`Model::viable`]: a read of 3 when 3 is overwritten and no write of 3 is left) is
//!   not entered.
//!
//! # How far it got
//! Whenever the search is stopped by a return entry, that entry's position is how far into the
//! history the current configuration reaches: every required op due before it is linearized.
//! Without pruning, a failed search visits every reachable configuration, and the furthest
//! position would be exactly where the shortest non-linearizable prefix ends. The lookahead
//! prunes configurations that could only fail *later*, so the furthest position found is a
//! lower bound: the prefix before it is linearizable (a real configuration got there).
//! `shortest` starts from it to find the exact end. Tracking it costs one compare per
//! backtrack and no allocation.

use super::cache::{Cache, Placed};
use super::plan::Plan;
use crate::model::{Model, StateId};
use std::time::{Duration, Instant};

/// When the search must give up.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub start: Instant,
    pub time: Duration,
    /// Bytes the cache may hold.
    pub memory: usize,
}

/// The op that cannot be placed, and what the key could hold when it could take effect.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The model's op number of the op that cannot be placed.
    pub op: usize,
    /// The entry position of its deadline: the end of the shortest non-linearizable prefix.
    pub end: u64,
    /// Distinct states reached at that point (at most [`MAX_STATES`]).
    pub states: Vec<StateId>,
}

/// How many distinct states a failure remembers for its sentence.
pub const MAX_STATES: usize = 4;

/// The verdict of one search.
#[derive(Debug, Clone)]
pub enum Found {
    /// A linearization: model op numbers in order.
    Linearizable(Vec<usize>),
    NotLinearizable(Failure),
    /// A limit was reached; the reason in words.
    GaveUp(String),
}

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;
/// Identical optional ops are compared with at most this many earlier ones.
const TWIN_WINDOW: usize = 64;
/// How many list entries (from the head) the lookahead checks a new configuration against.
const LOOKAHEAD_ENTRIES: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Entry {
    task: u32,
    /// For a call entry: its return entry, or NIL.
    partner: u32,
    prev: u32,
    next: u32,
    is_call: bool,
    pos: u64,
}

struct List {
    e: Vec<Entry>,
}

impl List {
    fn new(plan: &Plan) -> List {
        // (position, rank, task): at one position required calls come first, then optional
        // calls, then returns.
        let mut order: Vec<(u64, u8, u32)> = Vec::with_capacity(plan.tasks.len() * 2);
        let mut deadlines: Vec<u64> = plan.tasks.iter().filter_map(|t| t.ret).collect();
        deadlines.sort_unstable();
        for (i, t) in plan.tasks.iter().enumerate() {
            match t.ret {
                Some(r) => {
                    order.push((t.call, 0, i as u32));
                    order.push((r, 2, i as u32));
                }
                None => {
                    // An optional op can be placed exactly when the first deadline after its
                    // call is still ahead, so its call entry may move to just before that
                    // deadline without changing where it is enabled. There it is tried after
                    // the required ops, so the search first meets the configurations without
                    // it, which dominate those with it (see `cache`).
                    let at = deadlines.partition_point(|&d| d <= t.call);
                    let pos = deadlines.get(at).map_or(u64::MAX, |&d| d - 1).max(t.call);
                    order.push((pos, 1, i as u32));
                }
            }
        }
        order.sort_unstable();
        let order: Vec<(u64, bool, u32)> = order
            .into_iter()
            .map(|(pos, rank, task)| (pos, rank < 2, task))
            .collect();
        let mut e = Vec::with_capacity(order.len() + 1);
        e.push(Entry {
            task: NIL,
            partner: NIL,
            prev: NIL,
            next: NIL,
            is_call: false,
            pos: 0,
        });
        let mut ret_of = vec![NIL; plan.tasks.len()];
        for (k, &(pos, is_call, task)) in order.iter().enumerate() {
            let idx = k as u32 + 1;
            if !is_call {
                ret_of[task as usize] = idx;
            }
            e.push(Entry {
                task,
                partner: NIL,
                prev: idx - 1,
                next: if k + 1 < order.len() { idx + 1 } else { NIL },
                is_call,
                pos,
            });
        }
        e[0].next = if order.is_empty() { NIL } else { 1 };
        for x in e.iter_mut().skip(1) {
            if x.is_call {
                x.partner = ret_of[x.task as usize];
            }
        }
        List { e }
    }

    #[inline]
    fn unlink(&mut self, x: u32) {
        let Entry { prev, next, .. } = self.e[x as usize];
        self.e[prev as usize].next = next;
        if next != NIL {
            self.e[next as usize].prev = prev;
        }
    }

    #[inline]
    fn relink(&mut self, x: u32) {
        let Entry { prev, next, .. } = self.e[x as usize];
        self.e[prev as usize].next = x;
        if next != NIL {
            self.e[next as usize].prev = x;
        }
    }

    /// Take op `call`'s entries off the list.
    #[inline]
    fn lift(&mut self, call: u32) {
        self.unlink(call);
        let p = self.e[call as usize].partner;
        if p != NIL {
            self.unlink(p);
        }
    }

    /// Put them back, in the reverse order (dancing links).
    #[inline]
    fn unlift(&mut self, call: u32) {
        let p = self.e[call as usize].partner;
        if p != NIL {
            self.relink(p);
        }
        self.relink(call);
    }
}

/// For each optional task, an earlier identical optional task, if any.
fn twins<M: Model>(model: &M, plan: &Plan) -> Vec<u32> {
    let mut twin = vec![NIL; plan.tasks.len()];
    let mut optional: Vec<usize> = Vec::new();
    for (i, t) in plan.tasks.iter().enumerate() {
        if t.ret.is_some() {
            continue;
        }
        let recent = &optional[optional.len().saturating_sub(TWIN_WINDOW)..];
        if let Some(&j) = recent
            .iter()
            .rev()
            .find(|&&j| model.same_effect(plan.tasks[j].op, t.op))
        {
            twin[i] = j as u32;
        }
        optional.push(i);
    }
    twin
}

/// Search for a linearization of `plan` under `model`.
pub fn search<M: Model>(model: &mut M, plan: &Plan, limits: &Limits) -> Found {
    let tasks = &plan.tasks;
    let mut list = List::new(plan);
    let twin = twins(model, plan);
    let mut task_of = vec![NIL; tasks.iter().map(|t| t.op + 1).max().unwrap_or(0)];
    for (i, t) in tasks.iter().enumerate() {
        task_of[t.op] = i as u32;
    }
    let optional: Vec<bool> = tasks.iter().map(|t| t.ret.is_none()).collect();
    let mut bits = Placed::new(&optional);
    let mut cache = Cache::new();
    let mut state = model.init();
    // (call entry, state before it, chain base before it).
    let mut stack: Vec<(u32, StateId, Option<StateId>)> = Vec::with_capacity(tasks.len());
    // When the ops on top of the stack are optional: the state before the first of them.
    let mut chain_base: Option<StateId> = None;
    let mut observers = Observers::new(model, tasks);
    let mut required_left = tasks.iter().filter(|t| t.ret.is_some()).count();
    let mut best: Option<Best> = None;
    let mut steps: u64 = 0;
    let mut e = list.e[HEAD as usize].next;
    loop {
        if required_left == 0 {
            return Found::Linearizable(
                stack
                    .iter()
                    .map(|&(c, _, _)| tasks[list.e[c as usize].task as usize].op)
                    .collect(),
            );
        }
        steps += 1;
        if steps & 0x3ff == 0 {
            if limits.start.elapsed() > limits.time {
                return Found::GaveUp(format!("time limit {}", seconds(limits.time)));
            }
            if cache.bytes() + model.bytes() > limits.memory {
                return Found::GaveUp(format!("memory limit {}", mebibytes(limits.memory)));
            }
        }
        let blocked = if e == NIL {
            // Unreachable while a required op is left (its return is on the list); treated
            // as a dead end rather than trusted.
            None
        } else {
            let ent = list.e[e as usize];
            if ent.is_call {
                let t = ent.task as usize;
                let optional = tasks[t].ret.is_none();
                let skip = optional && twin[t] != NIL && !bits.contains(twin[t] as usize);
                if !skip {
                    if let Some(next) = model.step(state, tasks[t].op) {
                        let useless = (optional && next == state)
                            || chain_base
                                .is_some_and(|base| needs_no_chain(model, base, tasks[t].op, next));
                        if !useless {
                            bits.insert(t);
                            // The lookahead only matters when the state changes: the
                            // configuration before this op passed it in the same state.
                            if (next == state
                                || alive(
                                    model,
                                    &list,
                                    &bits,
                                    &mut observers,
                                    &task_of,
                                    tasks,
                                    next,
                                    e,
                                ))
                                && cache.insert(&mut bits, next)
                            {
                                stack.push((e, state, chain_base));
                                if !optional {
                                    chain_base = None;
                                } else if chain_base.is_none() {
                                    chain_base = Some(state);
                                }
                                state = next;
                                list.lift(e);
                                if !optional {
                                    required_left -= 1;
                                }
                                e = list.e[HEAD as usize].next;
                                continue;
                            }
                            bits.remove(t);
                        }
                    }
                }
                e = ent.next;
                continue;
            }
            Some(ent)
        };
        if let Some(ent) = blocked {
            note_block(&mut best, ent.pos, tasks[ent.task as usize].op, state);
        }
        // Undo the last linearization. A read-only op undone is undone again at once: placing
        // it as soon as it fit was as good as any later place (it changes no state, and every
        // op that had to precede it was placed), so its alternatives need no search.
        let mut popped = stack.pop();
        while let Some((call, _, _)) = popped {
            let t = list.e[call as usize].task as usize;
            if !(model.is_read_only(tasks[t].op) && tasks[t].ret.is_some()) {
                break;
            }
            bits.remove(t);
            observers.unplaced(t);
            list.unlift(call);
            required_left += 1;
            popped = stack.pop();
        }
        let Some((call, prev, base)) = popped else {
            return match best {
                Some(b) => Found::NotLinearizable(Failure {
                    op: b.op,
                    end: b.end,
                    states: b.states[..b.n].to_vec(),
                }),
                None => Found::GaveUp("search ended without a verdict".to_string()),
            };
        };
        let t = list.e[call as usize].task as usize;
        bits.remove(t);
        observers.unplaced(t);
        state = prev;
        chain_base = base;
        list.unlift(call);
        if tasks[t].ret.is_some() {
            required_left += 1;
        }
        e = list.e[call as usize].next;
    }
}

/// Whether placing `op` (result `next`) right after a chain of optional ops, which began in
/// state `base`, makes the chain pointless: `op` would also fit in `base` and either changes no
/// state or ends in the same state. Such orders are skipped; see "Optional ops" above.
#[inline]
fn needs_no_chain<M: Model>(model: &mut M, base: StateId, op: usize, next: StateId) -> bool {
    match model.step(base, op) {
        Some(from_base) => model.is_read_only(op) || from_base == next,
        None => false,
    }
}

/// The required read-only ops (reads, gets) in deadline order, and where the first one not yet
/// placed might be: every one of them must still be placed, so each is a witness for
/// [`Model::viable`] wherever it is on the list.
struct Observers {
    order: Vec<u32>,
    /// For each task, its index in `order` (NIL: not an observer).
    index: Vec<u32>,
    /// Every observer before `hint` is placed.
    hint: usize,
}

/// How many of the first unplaced observers a new configuration is checked against.
const LOOKAHEAD_OBSERVERS: usize = 2;

impl Observers {
    fn new<M: Model>(model: &M, tasks: &[super::plan::Task]) -> Observers {
        let mut order: Vec<u32> = (0..tasks.len() as u32)
            .filter(|&t| {
                let t = &tasks[t as usize];
                t.ret.is_some() && model.is_read_only(t.op)
            })
            .collect();
        order.sort_unstable_by_key(|&t| tasks[t as usize].ret);
        let mut index = vec![NIL; tasks.len()];
        for (i, &t) in order.iter().enumerate() {
            index[t as usize] = i as u32;
        }
        Observers {
            order,
            index,
            hint: 0,
        }
    }

    /// Task `t` was taken off the stack.
    #[inline]
    fn unplaced(&mut self, t: usize) {
        let i = self.index[t];
        if i != NIL {
            self.hint = self.hint.min(i as usize);
        }
    }
}

/// Whether the configuration about to be entered (`bits` with the new op, in `state`) can
/// still place the required ops with the nearest deadlines, by [`Model::viable`]. `placing`
/// is the call entry of the op being placed (its return is still on the list).
#[inline]
#[allow(clippy::too_many_arguments)]
fn alive<M: Model>(
    model: &M,
    list: &List,
    bits: &Placed,
    observers: &mut Observers,
    task_of: &[u32],
    tasks: &[super::plan::Task],
    state: StateId,
    placing: u32,
) -> bool {
    let available = |op: usize| {
        let t = task_of.get(op).copied().unwrap_or(NIL);
        t != NIL && !bits.contains(t as usize)
    };
    let skip = list.e[placing as usize].task;
    while observers.hint < observers.order.len()
        && bits.contains(observers.order[observers.hint] as usize)
    {
        observers.hint += 1;
    }
    let mut checked = 0;
    for &t in &observers.order[observers.hint..] {
        if checked == LOOKAHEAD_OBSERVERS {
            break;
        }
        if t == skip || bits.contains(t as usize) {
            continue;
        }
        checked += 1;
        if !model.viable(state, tasks[t as usize].op, available) {
            return false;
        }
    }
    let mut e = list.e[HEAD as usize].next;
    let mut walked = 0;
    while e != NIL && walked < LOOKAHEAD_ENTRIES {
        let ent = &list.e[e as usize];
        // A required op met at its call and again at its return is checked twice: cheaper
        // than remembering.
        let task = &tasks[ent.task as usize];
        if ent.task != skip && task.ret.is_some() && !model.viable(state, task.op, available) {
            return false;
        }
        walked += 1;
        e = ent.next;
    }
    true
}

/// The furthest block so far, kept without allocating (it changes on the hot path).
#[derive(Debug, Clone, Copy)]
struct Best {
    op: usize,
    end: u64,
    states: [StateId; MAX_STATES],
    n: usize,
}

/// Remember how far the search got (see "Counterexamples" above).
#[inline]
fn note_block(best: &mut Option<Best>, pos: u64, op: usize, state: StateId) {
    match best {
        Some(b) if b.end > pos => {}
        Some(b) if b.end == pos => {
            if b.n < MAX_STATES && !b.states[..b.n].contains(&state) {
                b.states[b.n] = state;
                b.n += 1;
            }
        }
        _ => {
            *best = Some(Best {
                op,
                end: pos,
                states: [state; MAX_STATES],
                n: 1,
            })
        }
    }
}

/// "10 s", "0.5 s".
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{s} s")
    }
}

/// "512 MiB".
pub fn mebibytes(bytes: usize) -> String {
    if bytes & ((1 << 20) - 1) == 0 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}
