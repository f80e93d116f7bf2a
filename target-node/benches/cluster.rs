//! `make bench-node`: throughput and latency of a 3-node cluster, per preset and fsync policy.
//!
//! For each configuration a fresh cluster of the release `quorate-node` binary is started on
//! loopback; a load client (this process: tokio + reqwest, `CONCURRENCY` connections spread
//! over the three nodes) first writes for `BENCH_SECS` seconds over a small key space, then
//! reads for as long. Each op is one client request, i.e. one quorum operation. The figures
//! are printed and written into BENCHMARKS.md between the node markers.
//!
//! Bounded: a fixed list of configurations, each phase a fixed time; every node is SIGKILLed
//! and reaped when its cluster is dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_quorate-node");
const KEYS: usize = 1000;

struct Nodes {
    children: Vec<Child>,
    urls: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn start(preset: &str, fsync: &str, http: &reqwest::Client) -> Nodes {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers = (0..3)
        .map(|i| format!("n{}=127.0.0.1:{}", i + 1, ports[i]))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let child = Command::new(BIN)
            .args([
                "--id",
                &format!("n{}", i + 1),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--peers", &peers, "--preset", preset, "--fsync", fsync])
            .arg("--data-dir")
            .arg(dir.path().join(format!("n{}", i + 1)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn quorate-node");
        children.push(child);
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let nodes = Nodes {
        children,
        urls,
        _dir: dir,
    };
    for u in &nodes.urls {
        let mut up = false;
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{u}/health")).send().await {
                if r.status().is_success() {
                    up = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(up, "node at {u} did not start");
    }
    nodes
}

/// utime + stime of a process, in seconds (from /proc; clock ticks assumed 100/s, Linux's
/// USER_HZ everywhere that matters).
fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds used so far by the nodes and by this load client together.
fn cluster_cpu(pids: &[String]) -> f64 {
    pids.iter().map(|p| cpu_secs(p)).sum::<f64>() + cpu_secs("self")
}

struct Figures {
    /// CPU time (nodes + client) per op, in µs: what the op costs whatever else runs.
    cpu_us_per_op: f64,
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Write,
    Read,
    /// `GET /health`: one plain HTTP exchange, no quorum — the machine's baseline.
    Health,
}

async fn load(http: &reqwest::Client, nodes: &Nodes, op: Op, secs: f64, conc: usize) -> Figures {
    let pids: Vec<String> = nodes.children.iter().map(|c| c.id().to_string()).collect();
    let cpu0 = cluster_cpu(&pids);
    let urls = Arc::new(nodes.urls.clone());
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..conc {
        let (http, urls) = (http.clone(), urls.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            let mut errors = 0u64;
            let mut i = t * 7919;
            while Instant::now() < until {
                i += 1;
                let url = &urls[i % urls.len()];
                let key = format!("k{}", (i * 31) % KEYS);
                let t0 = Instant::now();
                let r = if op == Op::Health {
                    http.get(format!("{url}/health")).send().await
                } else if op == Op::Write {
                    http.put(format!("{url}/kv/{key}"))
                        .body(format!("{{\"value\":{i}}}"))
                        .header("content-type", "application/json")
                        .send()
                        .await
                } else {
                    http.get(format!("{url}/kv/{key}")).send().await
                };
                let ok = match r {
                    Ok(r) => {
                        let good = r.status().is_success() || r.status().as_u16() == 404;
                        let _ = r.bytes().await;
                        good
                    }
                    Err(_) => false,
                };
                if ok {
                    lat.push(t0.elapsed().as_micros() as u32);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cluster_cpu(&pids) - cpu0;
    all.sort_unstable();
    let pct = |p: f64| {
        if all.is_empty() {
            0.0
        } else {
            all[((all.len() - 1) as f64 * p) as usize] as f64 / 1000.0
        }
    };
    Figures {
        cpu_us_per_op: if all.is_empty() {
            0.0
        } else {
            cpu * 1e6 / all.len() as f64
        },
        ops_per_s: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let conc: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let only: Option<String> = std::env::var("BENCH_PRESETS").ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut rows = Vec::new();
    // CPU per plain request, measured on the first cluster: the yardstick for every row.
    let mut baseline_cpu: Option<f64> = None;
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(conc)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        for preset in ["strict", "abd", "lww", "dynamo", "weak"] {
            if let Some(o) = &only {
                if !o.split(',').any(|p| p == preset) {
                    continue;
                }
            }
            for fsync in ["never", "always"] {
                let nodes = start(preset, fsync, &http).await;
                // Warm the connection pools and fill the key space.
                let _ = load(&http, &nodes, Op::Write, 0.5, conc).await;
                let mut results = Vec::new();
                if baseline_cpu.is_none() {
                    let h = load(&http, &nodes, Op::Health, secs, conc).await;
                    baseline_cpu = Some(h.cpu_us_per_op.max(1.0));
                    results.push(("GET /health (1 plain request: the yardstick)", h));
                }
                results.push(("write", load(&http, &nodes, Op::Write, secs, conc).await));
                results.push(("read", load(&http, &nodes, Op::Read, secs, conc).await));
                for (op, f) in &results {
                    let cost = f.cpu_us_per_op / baseline_cpu.unwrap_or(1.0);
                    let line = format!(
                        "| {preset} | {fsync} | {op} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.1} |",
                        f.ops_per_s,
                        f.p50_ms,
                        f.p99_ms,
                        f.errors,
                        f.cpu_us_per_op,
                        cost,
                    );
                    println!("{line}");
                    rows.push(line);
                }
                drop(nodes);
            }
        }
    });
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let section = format!(
        "Measured by `make bench-node` (`cargo bench -p quorate-node --bench cluster`): a 3-node \
cluster of the release `quorate-node` on loopback, one load client in the same machine \
({conc} concurrent connections spread over the nodes, keys drawn from {KEYS}), {secs} s of \
writes then {secs} s of reads per row; every op is one quorum operation (N=3). Machine: \
{cores} cores, {cpu}; the nodes and the client share them, and so does whatever else runs \
(load average before: {}, after: {}); `ops/s` and the latencies are what was measured under \
that load. `cpu µs/op` is the CPU time the three nodes and the client spent per op (inflated \
too when the machine is oversubscribed); `× plain` divides it by the CPU of one plain \
`GET /health` request measured in the same run, a ratio that load affects far less. Every \
figure is measured; none is estimated. Target: ≥ 10,000 ops/s for \
`strict` with `--fsync never`.\n\n\
| preset | fsync | op | ops/s | p50 ms | p99 ms | errors | cpu µs/op | × plain |\n\
| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n{}\n",
        load_avg.split_whitespace().next().unwrap_or("?"),
        load_after.split_whitespace().next().unwrap_or("?"),
        rows.join("\n")
    );
    if only.is_none() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../BENCHMARKS.md");
        match std::fs::read_to_string(path) {
            Ok(doc) => {
                let (b, e) = ("<!-- bench:node:begin -->", "<!-- bench:node:end -->");
                match (doc.find(b), doc.find(e)) {
                    (Some(i), Some(j)) if i < j => {
                        let new = format!("{}{b}\n{section}{}", &doc[..i], &doc[j..]);
                        if let Err(err) = std::fs::write(path, new) {
                            eprintln!("could not write {path}: {err}");
                        } else {
                            eprintln!("wrote the node section of BENCHMARKS.md");
                        }
                    }
                    _ => eprintln!("BENCHMARKS.md has no node markers; figures only printed"),
                }
            }
            Err(err) => eprintln!("could not read {path}: {err}"),
        }
    }
    print!("{section}");
}
