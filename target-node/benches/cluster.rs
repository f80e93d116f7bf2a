//! `make bench-node`: throughput and latency of a 3-node cluster, per preset and fsync policy.
//!
//! For each configuration a fresh cluster of the release `quorate-node` binary is started on
//! loopback; a load client (this process: tokio + hyper's HTTP/1 connections used directly,
//! `CONCURRENCY` connections spread over the three nodes, request targets built once) first
//! writes for `BENCH_SECS` seconds over a small key space, then reads for as long. Each op is one client request, i.e. one quorum operation. The figures
//! are printed and written into BENCHMARKS.md between the node markers.
//!
//! Bounded: a fixed list of configurations, each phase a fixed time; every node is SIGKILLed
//! and reaped when its cluster is dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;

const BIN: &str = env!("CARGO_BIN_EXE_quorate-node");
const KEYS: usize = 1000;

struct Nodes {
    children: Vec<Child>,
    urls: Vec<String>,
    /// `127.0.0.1:PORT` of each node.
    addrs: Vec<String>,
    _dir: tempfile::TempDir,
}

/// One HTTP/1 keep-alive connection to `addr`, driven by its own task.
async fn connect(addr: &str) -> Option<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (send, conn) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(send)
}

/// Sends `req` and reads the whole answer (frame by frame, nothing gathered); its status.
async fn exchange(send: &mut SendRequest<Full<Bytes>>, req: Request<Full<Bytes>>) -> Option<u16> {
    send.ready().await.ok()?;
    let resp = send.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    while let Some(f) = body.frame().await {
        f.ok()?;
    }
    Some(status)
}

/// `GET /health` on a fresh connection answered 2xx.
async fn healthy(addr: &str) -> bool {
    let Some(mut send) = connect(addr).await else {
        return false;
    };
    let req = Request::get("/health")
        .header(HOST, addr)
        .body(Full::default());
    match req {
        Ok(req) => matches!(exchange(&mut send, req).await, Some(s) if (200..300).contains(&s)),
        Err(_) => false,
    }
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

async fn start(preset: &str, fsync: &str) -> Nodes {
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
    let addrs = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let nodes = Nodes {
        children,
        urls,
        addrs,
        _dir: dir,
    };
    for a in &nodes.addrs {
        let mut up = false;
        for _ in 0..200 {
            if healthy(a).await {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(up, "node at {a} did not start");
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
    nodes_cpu(pids) + cpu_secs("self")
}

/// CPU seconds used so far by the nodes alone (what a wrk row is charged: wrk's own CPU is
/// not the system under test).
fn nodes_cpu(pids: &[String]) -> f64 {
    pids.iter().map(|p| cpu_secs(p)).sum::<f64>()
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

/// The project's load client: `conc` tasks, each with its own keep-alive connection to one
/// node (spread evenly), each sending its next request as soon as the last answer is read.
/// Per request: a `Uri` clone (shared bytes), two header values, and for writes the body.
async fn load(nodes: &Nodes, op: Op, secs: f64, conc: usize) -> Figures {
    let pids: Vec<String> = nodes.children.iter().map(|c| c.id().to_string()).collect();
    let targets: Arc<Vec<Uri>> = Arc::new(match op {
        Op::Health => vec![Uri::from_static("/health")],
        _ => (0..KEYS)
            .map(|k| Uri::try_from(format!("/kv/k{k}")).expect("valid path"))
            .collect(),
    });
    let cpu0 = cluster_cpu(&pids);
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..conc {
        let addr = nodes.addrs[t % nodes.addrs.len()].clone();
        let targets = targets.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(65536);
            let mut errors = 0u64;
            let host = HeaderValue::from_str(&addr).expect("host header");
            let json = HeaderValue::from_static("application/json");
            let mut conn = connect(&addr).await;
            let mut i = t * 7919;
            while Instant::now() < until {
                let Some(send) = conn.as_mut() else {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    conn = connect(&addr).await;
                    continue;
                };
                i += 1;
                let uri = targets[(i * 31) % targets.len()].clone();
                let mut req = Request::new(Full::default());
                *req.uri_mut() = uri;
                req.headers_mut().insert(HOST, host.clone());
                if op == Op::Write {
                    *req.method_mut() = Method::PUT;
                    req.headers_mut().insert(CONTENT_TYPE, json.clone());
                    *req.body_mut() = Full::new(Bytes::from(format!("{{\"value\":{i}}}")));
                }
                let t0 = Instant::now();
                match exchange(send, req).await {
                    Some(s) if (200..300).contains(&s) || s == 404 => {
                        lat.push(t0.elapsed().as_micros() as u32)
                    }
                    Some(_) => errors += 1,
                    None => {
                        errors += 1;
                        conn = connect(&addr).await;
                    }
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

/// The Lua script wrk runs for one op: PUTs and GETs walk the same key space as the project's
/// client (`k0`..`k{KEYS-1}`), each wrk thread from its own offset; `/health` needs none.
fn wrk_script(op: Op) -> Option<String> {
    let call = match op {
        Op::Health => return None,
        Op::Write => {
            "wrk.format(\"PUT\", \"/kv/k\" .. ((i * 31) % KEYS), \
             {[\"Content-Type\"] = \"application/json\"}, '{\"value\":' .. i .. '}')"
        }
        Op::Read => "wrk.format(\"GET\", \"/kv/k\" .. ((i * 31) % KEYS))",
    };
    Some(format!(
        "local KEYS = {KEYS}\nlocal i = math.random(0, 1000000)\n\
         request = function()\n  i = i + 1\n  return {call}\nend\n"
    ))
}

/// `wrk` on PATH, installed with apt when missing and running as root; None (with a note on
/// stderr) when it cannot be had, so the wrk rows are left out rather than invented.
fn wrk_available() -> bool {
    let have = || {
        Command::new("wrk")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if have() {
        return true;
    }
    if nix_is_root() {
        eprintln!("wrk missing: installing it with apt-get");
        let _ = Command::new("apt-get")
            .args(["install", "-y", "wrk"])
            .stdout(Stdio::null())
            .status();
    }
    let ok = have();
    if !ok {
        eprintln!("wrk not available: the wrk rows are left out");
    }
    ok
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A wrk duration such as `812.00us`, `3.21ms` or `1.02s`, in ms.
fn wrk_ms(s: &str) -> Option<f64> {
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

/// What one wrk run printed: requests, non-2xx/socket errors, p50 and p99 in ms.
struct WrkOut {
    requests: f64,
    per_sec: f64,
    errors: u64,
    p50: f64,
    p99: f64,
}

fn parse_wrk(out: &str) -> Option<WrkOut> {
    let mut w = WrkOut {
        requests: f64::NAN,
        per_sec: 0.0,
        errors: 0,
        p50: 0.0,
        p99: 0.0,
    };
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["50%", v] => w.p50 = wrk_ms(v)?,
            ["99%", v] => w.p99 = wrk_ms(v)?,
            [n, "requests", "in", ..] => w.requests = n.parse().ok()?,
            ["Requests/sec:", n] => w.per_sec = n.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => w.errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                for pair in rest.chunks(2) {
                    if let [_, n] = pair {
                        w.errors += n.trim_end_matches(',').parse::<u64>().unwrap_or(0);
                    }
                }
            }
            _ => {}
        }
    }
    (!w.requests.is_nan()).then_some(w)
}

/// Drives the three nodes with one wrk process each (`conc` connections in all) for `secs`,
/// charging only the nodes' CPU. Bounded: wrk stops itself after `secs`; a wrk that is still
/// running `secs + 10` s later is killed and its row dropped.
fn wrk_load(
    nodes: &Nodes,
    op: Op,
    secs: f64,
    conc: usize,
    dir: &std::path::Path,
) -> Option<Figures> {
    let pids: Vec<String> = nodes.children.iter().map(|c| c.id().to_string()).collect();
    let script = wrk_script(op).map(|text| {
        let path = dir.join(format!("wrk-{}.lua", op_name(op)));
        std::fs::write(&path, text).expect("write wrk script");
        path
    });
    let per = (conc / nodes.urls.len()).max(1);
    let cpu0 = nodes_cpu(&pids);
    let start = Instant::now();
    let mut kids = Vec::new();
    for u in &nodes.urls {
        let mut cmd = Command::new("wrk");
        cmd.args([
            "-t1",
            &format!("-c{per}"),
            &format!("-d{}s", secs.ceil() as u64),
        ])
        .args(["--timeout", "5s", "--latency"]);
        if let Some(p) = &script {
            cmd.arg("-s").arg(p);
        }
        let url = if op == Op::Health {
            format!("{u}/health")
        } else {
            u.clone()
        };
        kids.push(
            cmd.arg(url)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .ok()?,
        );
    }
    let deadline = start + Duration::from_secs_f64(secs + 10.0);
    let mut outs = Vec::new();
    for mut k in kids {
        loop {
            match k.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = k.kill();
                    let _ = k.wait();
                    return None;
                }
            }
        }
        let mut text = String::new();
        use std::io::Read;
        k.stdout.take()?.read_to_string(&mut text).ok()?;
        outs.push(parse_wrk(&text)?);
    }
    let cpu = nodes_cpu(&pids) - cpu0;
    let requests: f64 = outs.iter().map(|o| o.requests).sum();
    let per_sec: f64 = outs.iter().map(|o| o.per_sec).sum();
    let errors: u64 = outs.iter().map(|o| o.errors).sum();
    let good = (requests - errors as f64).max(0.0);
    Some(Figures {
        cpu_us_per_op: if good > 0.0 { cpu * 1e6 / good } else { 0.0 },
        ops_per_s: if requests > 0.0 {
            per_sec * good / requests
        } else {
            0.0
        },
        // The worst of the three wrk processes (one per node).
        p50_ms: outs.iter().map(|o| o.p50).fold(0.0, f64::max),
        p99_ms: outs.iter().map(|o| o.p99).fold(0.0, f64::max),
        errors,
    })
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Write => "write",
        Op::Read => "read",
        Op::Health => "health",
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
    // The client's own threads: one by default — on 2 cores shared with three nodes a second
    // worker mostly adds cross-thread wake-ups (BENCH_CLIENT_THREADS overrides).
    let threads: usize = std::env::var("BENCH_CLIENT_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("runtime");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut rows = Vec::new();
    let wrk = wrk_available();
    let scripts = tempfile::tempdir().expect("tempdir");
    // CPU per plain request, per driver, measured on the first cluster: the yardstick.
    let mut base_client: Option<f64> = None;
    let mut base_wrk: Option<f64> = None;
    rt.block_on(async {
        for preset in ["strict", "abd", "lww", "dynamo", "weak"] {
            if let Some(o) = &only {
                if !o.split(',').any(|p| p == preset) {
                    continue;
                }
            }
            for fsync in ["never", "always"] {
                let nodes = start(preset, fsync).await;
                // Warm the connection pools and fill the key space.
                let _ = load(&nodes, Op::Write, 0.5, conc).await;
                let mut results = Vec::new();
                let ops = [Op::Health, Op::Write, Op::Read];
                for op in ops {
                    if op == Op::Health && base_client.is_some() {
                        continue;
                    }
                    let f = load(&nodes, op, secs, conc).await;
                    if op == Op::Health {
                        base_client = Some(f.cpu_us_per_op.max(0.1));
                    }
                    results.push(("client", op, f, base_client));
                    if !wrk || (op == Op::Health && base_wrk.is_some()) {
                        continue;
                    }
                    let dir = scripts.path();
                    let f = wrk_load(&nodes, op, secs, conc, dir);
                    match f {
                        Some(f) => {
                            if op == Op::Health {
                                base_wrk = Some(f.cpu_us_per_op.max(0.1));
                            }
                            results.push(("wrk", op, f, base_wrk));
                        }
                        None => eprintln!("wrk {preset}/{fsync}/{} gave no figures", op_name(op)),
                    }
                }
                for (driver, op, f, base) in &results {
                    let name = if *op == Op::Health {
                        "GET /health (plain: the yardstick)"
                    } else {
                        op_name(*op)
                    };
                    let line = format!(
                        "| {preset} | {fsync} | {name} | {driver} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.1} |",
                        f.ops_per_s,
                        f.p50_ms,
                        f.p99_ms,
                        f.errors,
                        f.cpu_us_per_op,
                        f.cpu_us_per_op / base.unwrap_or(1.0),
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
that load. Each op is driven twice: by the project's client (tokio + hyper HTTP/1 \
connections used directly, {threads} runtime thread(s), this process) and by `wrk` (one process per node, {conc} connections in all, a Lua script for varied keys; \
p50/p99 are the worst of the three). `cpu µs/op` is the CPU time per op of the three nodes \
and the project's client (`client` rows) or of the three nodes alone (`wrk` rows; inflated \
too when the machine is oversubscribed); `× plain` divides it by the CPU of one plain \
`GET /health` request under the same driver in the same run, a ratio that load affects far \
less. Every \
figure is measured; none is estimated. Targets (issue 11): under wrk, `strict` \
write ≤ 6× plain, read ≤ 5×, `abd` write ≤ 10×; `strict`/`never` ≥ 15,000 writes/s and \
≥ 20,000 reads/s; the project's client ≥ 50,000 `/health`/s.\n\n\
| preset | fsync | op | driver | ops/s | p50 ms | p99 ms | errors | cpu µs/op | × plain |\n\
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n{}\n",
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
