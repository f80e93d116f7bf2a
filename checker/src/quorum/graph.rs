//! The precedence graph of one register key, and the cycles in it.
//!
//! Nodes are the key's writes (ok and info) and ok reads. Edges say "must take effect before":
//! - real time: an op that completed before another began precedes it — write→write,
//!   write→read and read→write (never read→read: two reads in real-time order say nothing
//!   about each other in a register short of linearizability);
//! - reads-from: a write precedes each read that returned its value (info writes too: a read of
//!   it shows it happened);
//! - read→write (anti-dependency): a read that returned write w's value (or the initial value)
//!   precedes every ok write invoked after w completed (after the start, for the initial
//!   value) — had the read come after such a write, it would have seen it or something newer.
//!   An info write may never have happened, so it never supersedes.
//!
//! A cycle is an anomaly: no order of the ops can respect all its edges. With these edges a
//! cycle always holds a stale read (a write superseding what a read returned completed before
//! that read began) or a read of a value written only later; [`cycles`] reports one cycle per
//! strongly connected component, with its ops and a sentence saying why each edge is there.
//!
//! Real-time edges are all pairs "a completed before b began", O(n²) if built one by one. Here
//! they pass through *time chains*: one node per completion, in completion order, each linked
//! to the next; an op feeds the chain node of its own completion, and each op hangs off the
//! last chain node that completed before it began. Then a reaches b exactly when a completed
//! before b began, with O(n) nodes and edges. Three chains keep the edge kinds apart: one over
//! ok writes' completions feeding reads and writes, one over reads' completions feeding writes
//! only, and one over ok writes' completions feeding ok writes only, entered by the
//! anti-dependency edges (so a read never reaches another read through real time).

use super::{RegisterKey, Source};
use petgraph::graph::{DiGraph, Neighbors, NodeIndex};
use petgraph::Direction;
use std::collections::VecDeque;

/// What a node of the graph stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    /// Index into `RegisterKey::writes`.
    Write(usize),
    /// Index into `RegisterKey::reads`.
    Read(usize),
    /// A time-chain node; the chain says what kind of edge a path through it is.
    Chain(Chain),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    /// Ok writes' completions → later reads and writes (real time).
    AfterWrite,
    /// Reads' completions → later writes (real time).
    AfterRead,
    /// Ok writes' completions → later ok writes, entered from reads (anti-dependency).
    Supersedes,
}

/// One cycle of the precedence graph: its ops (invoke indices, in cycle order, starting at a
/// read) and a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Cycle {
    pub ops: Vec<u64>,
    pub sentence: String,
}

/// The key's graph: the graph and what each node stands for.
struct Precedence {
    g: DiGraph<(), (), u32>,
    kind: Vec<Node>,
}

impl Precedence {
    fn node(&mut self, n: Node) -> NodeIndex {
        self.kind.push(n);
        self.g.add_node(())
    }

    /// A chain over completion times `cmp` (sorted): its nodes, linked in order.
    fn chain(&mut self, kind: Chain, len: usize) -> Vec<NodeIndex> {
        let nodes: Vec<NodeIndex> = (0..len).map(|_| self.node(Node::Chain(kind))).collect();
        for w in nodes.windows(2) {
            self.g.add_edge(w[0], w[1], ());
        }
        nodes
    }
}

/// The chain node an op invoked at `inv` hangs off: the last completion strictly before it.
fn hang(times: &[i64], inv: i64) -> Option<usize> {
    times.partition_point(|&c| c < inv).checked_sub(1)
}

/// The chain node of a completion at `cmp` (the last of equal times, so every op invoked after
/// `cmp` hangs off it or a later one).
fn enter(times: &[i64], cmp: i64) -> usize {
    times.partition_point(|&c| c <= cmp) - 1
}

fn build(key: &RegisterKey) -> (Precedence, Vec<NodeIndex>, Vec<NodeIndex>) {
    let (nw, nr) = (key.writes.len(), key.reads.len());
    let mut wc: Vec<i64> = key.writes.iter().filter_map(|w| w.cmp).collect();
    wc.sort_unstable();
    let mut rc: Vec<i64> = key.reads.iter().map(|r| r.cmp).collect();
    rc.sort_unstable();
    let nodes = nw + nr + 2 * wc.len() + rc.len() + 1;
    let mut p = Precedence {
        g: DiGraph::with_capacity(nodes, 3 * nodes),
        kind: Vec::with_capacity(nodes),
    };
    let w: Vec<NodeIndex> = (0..nw).map(|i| p.node(Node::Write(i))).collect();
    let r: Vec<NodeIndex> = (0..nr).map(|i| p.node(Node::Read(i))).collect();
    let after_write = p.chain(Chain::AfterWrite, wc.len());
    let after_read = p.chain(Chain::AfterRead, rc.len());
    let supersedes = p.chain(Chain::Supersedes, wc.len());
    // Before every completion: reads of the initial value enter here, and reach every ok write
    // (those invoked before any ok write completed directly, the rest through the chain).
    let start = p.node(Node::Chain(Chain::Supersedes));
    if let Some(&first) = supersedes.first() {
        p.g.add_edge(start, first, ());
    }
    for (i, x) in key.writes.iter().enumerate() {
        if let Some(c) = x.cmp {
            p.g.add_edge(w[i], after_write[enter(&wc, c)], ());
            match hang(&wc, x.inv) {
                Some(j) => p.g.add_edge(supersedes[j], w[i], ()),
                None => p.g.add_edge(start, w[i], ()),
            };
        }
        if let Some(j) = hang(&wc, x.inv) {
            p.g.add_edge(after_write[j], w[i], ());
        }
        if let Some(j) = hang(&rc, x.inv) {
            p.g.add_edge(after_read[j], w[i], ());
        }
    }
    for (i, x) in key.reads.iter().enumerate() {
        p.g.add_edge(r[i], after_read[enter(&rc, x.cmp)], ());
        if let Some(j) = hang(&wc, x.inv) {
            p.g.add_edge(after_write[j], r[i], ());
        }
        match x.source {
            Source::Write(s) => {
                p.g.add_edge(w[s], r[i], ());
                if let Some(c) = key.writes[s].cmp {
                    // Every ok write invoked after c hangs off the chain at or past c's node.
                    p.g.add_edge(r[i], supersedes[enter(&wc, c)], ());
                }
            }
            Source::Initial => {
                p.g.add_edge(r[i], start, ());
            }
            Source::Never => {}
        }
    }
    (p, w, r)
}

/// One cycle per strongly connected component of the key's precedence graph that holds two
/// or more ops, in order of the component's first read.
pub fn cycles(key: &RegisterKey) -> Vec<Cycle> {
    if key.reads.is_empty() || key.writes.is_empty() {
        // Every cycle passes through a read and a write (no read→read or write→write cycle).
        return Vec::new();
    }
    let (p, _, r) = build(key);
    let mut comp = vec![u32::MAX; p.kind.len()];
    let mut starts: Vec<(usize, NodeIndex)> = Vec::new();
    let mut c = 0u32;
    strongly_connected(&p.g, |scc: &[NodeIndex]| {
        let ops = scc
            .iter()
            .filter(|n| !matches!(p.kind[n.index()], Node::Chain(_)))
            .count();
        if ops < 2 {
            return;
        }
        c += 1;
        for n in scc {
            comp[n.index()] = c;
        }
        let first = scc
            .iter()
            .filter_map(|n| match p.kind[n.index()] {
                Node::Read(i) => Some(i),
                _ => None,
            })
            .min();
        if let Some(i) = first {
            starts.push((i, r[i]));
        }
    });
    starts.sort_by_key(|s| key.reads[s.0].id);
    // One parent array for every search, reset where each search wrote: a key with many
    // components costs the sum of their sizes, not components × nodes.
    let mut parent: Vec<Option<NodeIndex>> = vec![None; p.kind.len()];
    starts
        .into_iter()
        .filter_map(|(_, s)| one_cycle(&p, &comp, s, key, &mut parent))
        .collect()
}

/// Tarjan's strongly connected components over the petgraph graph, calling `f` with each (no
/// allocation per component: nearly every node is one on its own). Iterative, with its own
/// call stack: petgraph 0.6's `tarjan_scc` and `TarjanScc` recurse once per node of a path,
/// and a key's time chains are paths as long as its history (a 10,000-op key overflowed a
/// thread's stack in a debug build).
fn strongly_connected(g: &DiGraph<(), (), u32>, mut f: impl FnMut(&[NodeIndex])) {
    const UNSEEN: u32 = u32::MAX;
    let n = g.node_count();
    let (mut index, mut low) = (vec![UNSEEN; n], vec![0u32; n]);
    let mut on_stack = vec![false; n];
    let mut stack: Vec<NodeIndex> = Vec::new();
    let mut call: Vec<(NodeIndex, Neighbors<'_, (), u32>)> = Vec::new();
    let mut next = 0u32;
    for root in g.node_indices() {
        if index[root.index()] != UNSEEN {
            continue;
        }
        // Entering a node: number it, stack it, and start on its edges.
        let mut found = Some(root);
        loop {
            if let Some(w) = found.take() {
                index[w.index()] = next;
                low[w.index()] = next;
                next += 1;
                stack.push(w);
                on_stack[w.index()] = true;
                call.push((w, g.neighbors(w)));
            }
            let Some((v, it)) = call.last_mut() else {
                break;
            };
            let v = *v;
            match it.next() {
                Some(w) if index[w.index()] == UNSEEN => found = Some(w),
                Some(w) => {
                    if on_stack[w.index()] {
                        low[v.index()] = low[v.index()].min(index[w.index()]);
                    }
                }
                None => {
                    call.pop();
                    if let Some((u, _)) = call.last() {
                        low[u.index()] = low[u.index()].min(low[v.index()]);
                    }
                    if low[v.index()] == index[v.index()] {
                        let from = stack.iter().rposition(|&x| x == v).unwrap_or(0);
                        for x in &stack[from..] {
                            on_stack[x.index()] = false;
                        }
                        f(&stack[from..]);
                        stack.truncate(from);
                    }
                }
            }
        }
    }
}

/// A shortest cycle through `start` inside its component (breadth-first), described.
fn one_cycle(
    p: &Precedence,
    comp: &[u32],
    start: NodeIndex,
    key: &RegisterKey,
    parent: &mut [Option<NodeIndex>],
) -> Option<Cycle> {
    let c = comp[start.index()];
    let mut touched = Vec::new();
    let mut queue = VecDeque::from([start]);
    let mut end = None;
    'bfs: while let Some(n) = queue.pop_front() {
        for m in p.g.neighbors_directed(n, Direction::Outgoing) {
            if comp[m.index()] != c {
                continue;
            }
            if m == start {
                end = Some(n);
                break 'bfs;
            }
            if parent[m.index()].is_none() {
                parent[m.index()] = Some(n);
                touched.push(m);
                queue.push_back(m);
            }
        }
    }
    let path = end.map(|end| {
        let mut path = vec![end];
        while let Some(prev) = path.last().and_then(|l| parent[l.index()]) {
            path.push(prev);
        }
        if path.last() != Some(&start) {
            path.push(start);
        }
        path.reverse();
        path.push(start);
        path
    });
    for n in touched {
        parent[n.index()] = None;
    }
    Some(describe(p, &path?, key))
}

/// The cycle's ops and one clause per edge between consecutive ops.
fn describe(p: &Precedence, path: &[NodeIndex], key: &RegisterKey) -> Cycle {
    let name = |n: Node| -> (u64, String) {
        match n {
            Node::Write(i) => {
                let w = &key.writes[i];
                let info = if w.cmp.is_none() {
                    " (outcome unknown)"
                } else {
                    ""
                };
                (w.id, format!("write of {} (op {}){info}", w.value, w.id))
            }
            Node::Read(i) => {
                let r = &key.reads[i];
                (r.id, format!("read of {} (op {})", r.value, r.id))
            }
            Node::Chain(_) => (0, String::new()),
        }
    };
    let mut ops = Vec::new();
    let mut clauses = Vec::new();
    let mut from: Option<(Node, Option<Chain>)> = None;
    for &n in path {
        match p.kind[n.index()] {
            Node::Chain(ch) => {
                if let Some((_, via @ None)) = from.as_mut() {
                    *via = Some(ch);
                }
            }
            op => {
                if let Some((a, via)) = from {
                    let (_, an) = name(a);
                    let (_, bn) = name(op);
                    clauses.push(match via {
                        None => format!("{an} wrote what the {bn} returned"),
                        Some(Chain::AfterWrite | Chain::AfterRead) => {
                            format!("{an} completed before the {bn} began")
                        }
                        Some(Chain::Supersedes) => match a {
                            Node::Read(i) if key.reads[i].source == Source::Initial => {
                                format!("{an} returned the initial value, which the {bn} supersedes")
                            }
                            _ => format!(
                                "{an} returned a value the {bn} supersedes (it began after that value's write completed)"
                            ),
                        },
                    });
                }
                let (id, _) = name(op);
                if ops.last() != Some(&id) && ops.first() != Some(&id) {
                    ops.push(id);
                }
                from = Some((op, None));
            }
        }
    }
    let sentence = format!(
        "cycle of {} ops in the precedence graph: the {}, so no order of them is possible",
        ops.len(),
        clauses.join("; the ")
    );
    Cycle { ops, sentence }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::{Read, Write};
    use serde_json::json;

    fn w(id: u64, inv: i64, cmp: Option<i64>, v: i64) -> Write {
        Write {
            id,
            process: id,
            inv,
            cmp,
            value: json!(v),
        }
    }

    fn r(id: u64, inv: i64, cmp: i64, source: Source, v: i64) -> Read {
        Read {
            id,
            process: id,
            inv,
            cmp,
            source,
            value: json!(v),
        }
    }

    #[test]
    fn a_stale_read_is_a_two_op_cycle() {
        let key = RegisterKey {
            key: "k".into(),
            writes: vec![w(0, 0, Some(10), 1), w(2, 20, Some(30), 2)],
            reads: vec![r(4, 40, 50, Source::Write(0), 1)],
        };
        let c = cycles(&key);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].ops, [4, 2]);
        assert!(c[0].sentence.contains("supersedes"), "{}", c[0].sentence);
        assert!(
            c[0].sentence.contains("completed before"),
            "{}",
            c[0].sentence
        );
    }

    #[test]
    fn concurrent_reads_of_old_and_new_are_no_cycle() {
        // Read 4 sees write 2 while it runs; read 6, after read 4, sees write 0: not
        // linearizable, yet no write superseding 0 had completed when read 6 began.
        let key = RegisterKey {
            key: "k".into(),
            writes: vec![w(0, 0, Some(10), 1), w(2, 20, Some(100), 2)],
            reads: vec![
                r(4, 30, 40, Source::Write(1), 2),
                r(6, 50, 60, Source::Write(0), 1),
            ],
        };
        assert!(cycles(&key).is_empty());
    }

    #[test]
    fn a_read_of_a_later_write_is_a_cycle() {
        let key = RegisterKey {
            key: "k".into(),
            writes: vec![w(2, 20, Some(30), 2)],
            reads: vec![r(0, 0, 10, Source::Write(0), 2)],
        };
        let c = cycles(&key);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].ops, [0, 2]);
        assert!(c[0].sentence.contains("wrote what"), "{}", c[0].sentence);
    }

    #[test]
    fn a_stale_read_of_the_initial_value_says_so() {
        let key = RegisterKey {
            key: "k".into(),
            writes: vec![w(0, 0, Some(10), 1)],
            reads: vec![r(2, 20, 30, Source::Initial, 0)],
        };
        let c = cycles(&key);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].ops, [2, 0]);
        assert!(
            c[0].sentence
                .contains("returned the initial value, which the write of 1 (op 0) supersedes"),
            "{}",
            c[0].sentence
        );
    }

    fn components(g: &DiGraph<(), (), u32>) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        strongly_connected(g, |scc| {
            let mut c: Vec<usize> = scc.iter().map(|n| n.index()).collect();
            c.sort_unstable();
            out.push(c);
        });
        out.sort();
        out
    }

    #[test]
    fn strongly_connected_agrees_with_petgraph_on_random_graphs() {
        use rand::{Rng, SeedableRng};
        for seed in 0..300 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let n = rng.gen_range(1..40);
            let mut g: DiGraph<(), (), u32> = DiGraph::new();
            let nodes: Vec<NodeIndex> = (0..n).map(|_| g.add_node(())).collect();
            for _ in 0..rng.gen_range(0..3 * n) {
                g.add_edge(nodes[rng.gen_range(0..n)], nodes[rng.gen_range(0..n)], ());
            }
            let mut theirs: Vec<Vec<usize>> = petgraph::algo::tarjan_scc(&g)
                .into_iter()
                .map(|c| {
                    let mut c: Vec<usize> = c.iter().map(|n| n.index()).collect();
                    c.sort_unstable();
                    c
                })
                .collect();
            theirs.sort();
            assert_eq!(components(&g), theirs, "seed {seed}");
        }
    }

    #[test]
    fn a_path_of_a_million_nodes_and_a_cycle_round_it_need_no_deep_stack() {
        let mut g: DiGraph<(), (), u32> = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..1_000_000).map(|_| g.add_node(())).collect();
        for w in nodes.windows(2) {
            g.add_edge(w[0], w[1], ());
        }
        assert_eq!(components(&g).len(), 1_000_000);
        g.add_edge(nodes[999_999], nodes[0], ());
        assert_eq!(components(&g).len(), 1);
    }

    #[test]
    fn info_writes_never_supersede() {
        let key = RegisterKey {
            key: "k".into(),
            writes: vec![w(0, 0, Some(10), 1), w(2, 20, None, 2)],
            reads: vec![r(4, 40, 50, Source::Write(0), 1)],
        };
        assert!(cycles(&key).is_empty());
    }
}
