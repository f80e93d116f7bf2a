//! The `netns` backend with real namespaces, real nftables rules and real `quorate-node`
//! processes: partitions (both ways and one way), heal, kill/restart, pause, snapshot/restore,
//! the sweep of dead runs' leftovers, and that shutdown leaves nothing behind.
//!
//! Needs root (CI runs as root) and a built node (`cargo build -p quorate-node`, or
//! `QUORATE_NODE_BIN=PATH`). Without root these tests fail, saying so, unless
//! `QUORATE_SKIP_NETNS=1` is set.

use quorate::backend::netns::{self, NetnsCluster};
use quorate::backend::{node_ids, Cluster, ClusterSpec};
use quorate::targets::node::{find_node_bin, NodeLaunch};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// False when the tests are explicitly skipped; panics (fails the test) when not root.
fn netns_allowed() -> bool {
    if std::env::var("QUORATE_SKIP_NETNS").as_deref() == Ok("1") {
        eprintln!("netns backend tests skipped: QUORATE_SKIP_NETNS=1");
        return false;
    }
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the netns backend tests need root (network namespaces, nftables); run them as root \
         or set QUORATE_SKIP_NETNS=1 to skip them"
    );
    true
}

/// Real `quorate-node`s with the strict preset.
fn launch() -> Arc<NodeLaunch> {
    let explicit = std::env::var_os("QUORATE_NODE_BIN").map(PathBuf::from);
    let bin = find_node_bin(explicit.as_deref()).unwrap_or_else(|e| {
        panic!("{e}\n(the netns tests run real nodes: `cargo build -p quorate-node` first)")
    });
    Arc::new(NodeLaunch {
        bin,
        args: vec!["--preset".into(), "strict".into()],
    })
}

fn spec(run_dir: &Path) -> ClusterSpec {
    ClusterSpec {
        nodes: node_ids(3),
        run_dir: run_dir.to_path_buf(),
        direct_clients: false,
        link_faults: false,
        power_loss: false,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// PUT a value; the status, or the transport error as text (a timeout, say).
async fn put(c: &reqwest::Client, addr: SocketAddr, key: &str, value: i64) -> Result<u16, String> {
    c.put(format!("http://{addr}/kv/{key}"))
        .json(&json!({ "value": value }))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

/// GET a key: the status and, on 200, the value.
async fn get(c: &reqwest::Client, addr: SocketAddr, key: &str) -> Result<(u16, Value), String> {
    let r = c
        .get(format!("http://{addr}/kv/{key}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    Ok((status, body["value"].clone()))
}

/// Retry a PUT until it answers 200, at most `tries` times a quarter second apart.
async fn put_eventually(
    c: &reqwest::Client,
    addr: SocketAddr,
    key: &str,
    value: i64,
    tries: usize,
) -> Result<u16, String> {
    let mut last = Err("not tried".to_string());
    for _ in 0..tries {
        last = put(c, addr, key, value).await;
        if last == Ok(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    last
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "`{}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything of the cluster with this tag still on the host: namespaces, links, and any
/// nftables table of ours in the root namespace (there should never be one).
fn leftovers(tag: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in sh(&["ip", "netns", "list"]).lines() {
        if line.starts_with(&format!("qrt{tag}-")) {
            found.push(format!("namespace {line}"));
        }
    }
    for line in sh(&["ip", "-o", "link", "show"]).lines() {
        let name = line.split(':').nth(1).unwrap_or("").trim();
        let name = name.split('@').next().unwrap_or(name);
        let veth = name
            .strip_prefix(&format!("qrv{tag}"))
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
        if name == format!("qrb{tag}") || veth {
            found.push(format!("link {name}"));
        }
    }
    if sh(&["nft", "list", "ruleset"]).contains("table inet quorate") {
        found.push("root nftables table inet quorate".into());
    }
    found
}

fn output_chain(cluster: &NetnsCluster, node: &str) -> String {
    let ns = cluster.namespace(node).unwrap();
    sh(&[
        "ip", "netns", "exec", ns, "nft", "list", "chain", "inet", "quorate", "output",
    ])
}

fn pid_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Shut down and check that no process, namespace, link or rule of the cluster remains;
/// a second shutdown is a no-op.
fn shutdown_clean(cluster: NetnsCluster) {
    let tag = cluster.tag().to_string();
    let pids: Vec<u32> = cluster
        .nodes()
        .iter()
        .filter_map(|n| cluster.pid(n))
        .collect();
    cluster.shutdown();
    cluster.shutdown();
    drop(cluster);
    assert_eq!(leftovers(&tag), Vec::<String>::new(), "left behind");
    for pid in pids {
        assert!(pid_gone(pid), "node pid {pid} still exists");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_isolates_a_node_and_heal_restores_it() {
    if !netns_allowed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster = NetnsCluster::start(spec(dir.path()), launch())
        .await
        .unwrap();
    let c = http();
    let (n1, n2) = (cluster.client_addr("n1"), cluster.client_addr("n2"));
    assert!(n1.ip().to_string().starts_with("169.254."), "{n1}");
    assert!(dir.path().join("nodes/n1.log").is_file());

    assert_eq!(put(&c, n1, "a", 1).await, Ok(200));
    assert_eq!(get(&c, n2, "a").await, Ok((200, json!(1))));

    for other in ["n2", "n3"] {
        cluster.drop_traffic("n1", other).unwrap();
        cluster.drop_traffic(other, "n1").unwrap();
    }
    // n1 still answers the harness (its address is never cut) but reaches no replica.
    assert_eq!(put(&c, n1, "b", 2).await, Ok(503));
    // n2 and n3 still form a write quorum (strict: N=3, W=2).
    assert_eq!(put(&c, n2, "c", 3).await, Ok(200));

    cluster.heal().unwrap();
    assert!(!output_chain(&cluster, "n1").contains("drop"));
    // Connections cut mid-flight recover at TCP's pace: poll, bounded.
    assert_eq!(put_eventually(&c, n1, "d", 4, 60).await, Ok(200));
    assert_eq!(get(&c, n1, "c").await, Ok((200, json!(3))));

    shutdown_clean(cluster);
}

/// From inside `from`'s namespace (as the member itself would), open a connection to `to`'s
/// port, send one keep-alive `GET /health` and read the answer's first chunk; returns the
/// open stream and how long the round trip took.
fn health_from(
    cluster: &NetnsCluster,
    from: &str,
    to: &str,
) -> std::io::Result<(std::net::TcpStream, Duration)> {
    use std::io::{Read, Write};
    let ns = std::fs::File::open(Path::new("/run/netns").join(cluster.namespace(from).unwrap()))?;
    let addr = cluster.admin_addr(to);
    // A thread of its own: the namespace it enters stays with it.
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let t0 = std::time::Instant::now();
        s.write_all(b"GET /health HTTP/1.1\r\nhost: n\r\n\r\n")?;
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf)?;
        if !buf[..n].starts_with(b"HTTP/1.1 200") {
            return Err(std::io::Error::other(format!(
                "unexpected answer {:?}",
                String::from_utf8_lossy(&buf[..n])
            )));
        }
        Ok((s, t0.elapsed()))
    })
    .join()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_faults_delay_and_reset_a_members_connections_and_drops_still_cut() {
    if !netns_allowed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path());
    s.link_faults = true;
    let cluster = NetnsCluster::start(s, launch()).await.unwrap();
    let nat = sh(&[
        "ip",
        "netns",
        "exec",
        cluster.namespace("n1").unwrap(),
        "nft",
        "list",
        "chain",
        "inet",
        "quorate",
        "links",
    ]);
    assert!(nat.contains("redirect to :7900"), "{nat}");

    // Delay n1 -> n2: the request and the answer each wait, so the round trip takes at
    // least twice the delay (a lower bound the delay guarantees, not a timing guess).
    let delay = Duration::from_millis(150);
    cluster.delay_traffic("n1", "n2", delay).unwrap();
    let (_, slow) = health_from(&cluster, "n1", "n2").unwrap();
    assert!(
        slow >= 2 * delay,
        "round trip {slow:?} under a {delay:?} delay each way"
    );
    // The link is directed: n2's own connections to n1 are not the delayed link, and n1's
    // connections to n3 are not either (only their absence of delay is not asserted: a
    // loaded machine may be slow on its own).
    cluster.delay_traffic("n1", "n2", Duration::ZERO).unwrap();

    // Reset: an open connection n1 -> n2 is closed with RST.
    let (mut open, _) = health_from(&cluster, "n1", "n2").unwrap();
    cluster.reset_connections("n1", "n2").unwrap();
    let mut buf = [0u8; 16];
    let got = std::io::Read::read(&mut open, &mut buf);
    assert!(
        matches!(&got, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "read after the reset: {got:?}"
    );

    // A drop still cuts the link: the upstream connection leaves from n1's namespace too.
    cluster.drop_traffic("n1", "n2").unwrap();
    assert!(health_from(&cluster, "n1", "n2").is_err());
    cluster.heal().unwrap();
    health_from(&cluster, "n1", "n2").unwrap();

    // A member's connection to its own address is redirected too (the rule matches the
    // whole subnet) and is no link: it passes, neither reset nor delayed.
    health_from(&cluster, "n1", "n1").unwrap();

    // A link to a member that is not in the cluster is an error, not a no-op.
    assert!(cluster.delay_traffic("n1", "n9", delay).is_err());
    shutdown_clean(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_drop_is_a_rule_in_the_senders_namespace_only() {
    if !netns_allowed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster = NetnsCluster::start(spec(dir.path()), launch())
        .await
        .unwrap();
    let c = http();
    let n2_ip = cluster.admin_addr("n2").ip().to_string();

    cluster.drop_traffic("n1", "n2").unwrap();
    cluster.drop_traffic("n1", "n2").unwrap(); // repeated: still one rule
    let chain = output_chain(&cluster, "n1");
    assert_eq!(
        chain.matches(&format!("ip daddr {n2_ip}")).count(),
        1,
        "{chain}"
    );
    assert!(!output_chain(&cluster, "n2").contains("drop"));
    assert!(!output_chain(&cluster, "n3").contains("drop"));

    // n1 → n3 still flows, so a write coordinated by n1 still gets W=2 (n1 and n3).
    assert_eq!(
        put_eventually(&c, cluster.client_addr("n1"), "a", 1, 20).await,
        Ok(200)
    );
    // Cut n1's other outgoing link: now nothing it sends reaches a replica.
    cluster.drop_traffic("n1", "n3").unwrap();
    assert_eq!(put(&c, cluster.client_addr("n1"), "b", 2).await, Ok(503));
    // Nothing was cut from n2's side, and it reaches n3: its writes go through.
    assert_eq!(put(&c, cluster.client_addr("n2"), "c", 3).await, Ok(200));

    cluster.heal().unwrap();
    assert!(!output_chain(&cluster, "n1").contains("drop"));
    assert_eq!(
        put_eventually(&c, cluster.client_addr("n1"), "d", 4, 60).await,
        Ok(200)
    );

    shutdown_clean(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_restart_pause_and_restore() {
    if !netns_allowed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster = NetnsCluster::start(spec(dir.path()), launch())
        .await
        .unwrap();
    let c = http();
    let addr = |n: &str| cluster.client_addr(n);

    assert_eq!(put(&c, addr("n1"), "k", 1).await, Ok(200));

    // Pause: the signal reaches the node itself (its pid is the node's, not a wrapper's).
    cluster.pause("n2").unwrap();
    let stat_path = format!("/proc/{}/stat", cluster.pid("n2").unwrap());
    let mut stat = String::new();
    for _ in 0..40 {
        stat = std::fs::read_to_string(&stat_path).unwrap();
        if stat.contains(") T ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stat.contains(") T "), "n2 not stopped: {stat}");
    assert_eq!(get(&c, addr("n1"), "k").await, Ok((200, json!(1))));
    cluster.resume("n2").unwrap();

    // Kill every node: only their data directories remember the write.
    let old: Vec<u32> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| cluster.pid(n).unwrap())
        .collect();
    for n in ["n1", "n2", "n3"] {
        cluster.kill(n).unwrap();
    }
    assert!(old.iter().all(|&p| pid_gone(p)), "killed nodes still exist");
    assert!(
        cluster.kill("n1").is_err(),
        "killing a dead node is an error"
    );
    for n in ["n1", "n2", "n3"] {
        cluster.restart(n).unwrap();
    }
    assert_eq!(cluster.client_addr("n1"), addr("n1"));
    assert_eq!(get(&c, addr("n3"), "k").await, Ok((200, json!(1))));

    // Snapshot n3 while paused, write on, then bring n3 back from the snapshot.
    cluster.pause("n3").unwrap();
    let snap = cluster.snapshot("n3").unwrap();
    cluster.resume("n3").unwrap();
    assert_eq!(put(&c, addr("n1"), "k", 2).await, Ok(200));
    assert!(
        cluster.restore(&snap).is_err(),
        "restore needs the node stopped"
    );
    cluster.kill("n3").unwrap();
    cluster.restore(&snap).unwrap();
    cluster.restart("n3").unwrap();
    // Which value wins depends on which replicas acknowledged the write (the stale-restore
    // anomaly the nemesis hunts for); here it only matters that n3 is back and serving.
    let (status, value) = get(&c, addr("n3"), "k").await.unwrap();
    assert_eq!(status, 200);
    assert!(value == json!(1) || value == json!(2), "{value}");

    shutdown_clean(cluster);
}

#[test]
fn sweep_removes_leftovers_of_dead_runs() {
    if !netns_allowed() {
        return;
    }
    netns::preflight().unwrap();
    // A pid that certainly belonged to a process now dead: one we just ran and reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let tag = format!("{dead}y");
    sh(&["ip", "netns", "add", &format!("qrt{tag}-n1")]);
    sh(&["ip", "link", "add", &format!("qrb{tag}"), "type", "bridge"]);

    let removed = netns::sweep_stale().unwrap();
    assert_eq!(
        leftovers(&tag),
        Vec::<String>::new(),
        "removed: {removed:?}"
    );

    // Our own live pid is never swept.
    let live = format!("{}y", std::process::id());
    sh(&["ip", "link", "add", &format!("qrb{live}"), "type", "bridge"]);
    netns::sweep_stale().unwrap();
    assert_eq!(leftovers(&live).len(), 1);
    sh(&["ip", "link", "delete", &format!("qrb{live}")]);
}
