//! `--backend ssh` for real: the "hosts" are network namespaces of this machine, each running
//! its own `sshd` (Debian's openssh-server) on the namespace's address with a config and keys
//! of the test's own, made in a temporary folder. The harness reaches them over a bridge by
//! ssh like remote hosts; only this fixture uses `ip netns exec` (to start `sshd` and to look
//! for leftovers), never the run.
//!
//! After every run — Ctrl-C included — no member is left in any namespace, no `quorate`
//! nftables table on any host, no member folder in the hosts' work dir; after every test no
//! `sshd` of ours and no namespace (asserted).
//!
//! Needs root (CI runs as root), `sshd` and `ssh`/`scp` (`scripts/install-deps.sh` installs
//! openssh-server and openssh-client). `QUORATE_SKIP_NETNS=1` skips every test that makes
//! hosts, as it skips the netns backend's tests.

mod common;

use common::{interrupt, results_of, run_dir, serial, stderr, stderr_tail};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// False when the namespace tests are explicitly skipped (`QUORATE_SKIP_NETNS=1`, as for the
/// netns backend's own tests: the hosts here are namespaces); otherwise they run, and fail
/// without root.
fn hosts_allowed() -> bool {
    if std::env::var("QUORATE_SKIP_NETNS").as_deref() == Ok("1") {
        eprintln!("ssh backend tests skipped: QUORATE_SKIP_NETNS=1");
        return false;
    }
    true
}

fn sshd_bin() -> PathBuf {
    let p = PathBuf::from("/usr/sbin/sshd");
    assert!(
        p.is_file(),
        "/usr/sbin/sshd is missing: these tests need openssh-server (scripts/install-deps.sh)"
    );
    p
}

/// Namespaces on a bridge, one `sshd` in each, and the hosts file that names them.
struct Hosts {
    dir: tempfile::TempDir,
    bridge: String,
    namespaces: Vec<String>,
    veths: Vec<String>,
    ips: Vec<Ipv4Addr>,
    sshd: Vec<Child>,
    closed: bool,
}

impl Hosts {
    /// `n` hosts. Names carry this process's pid, so two test processes never collide.
    fn new(n: usize) -> Hosts {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "the ssh backend tests need root (namespaces for the hosts, nftables on them)"
        );
        let dir = tempfile::tempdir().unwrap();
        // A letter per fixture: a namespace can outlive its deletion for a while (an orphaned
        // socket of a host cut off mid-run still holds it), so names are never reused.
        static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
        let letter = (b'a' + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 26) as char;
        let pid = std::process::id();
        let tag = format!("{pid}{letter}");
        let bridge = format!("qsb{tag}");
        let addrs = sh(&["ip", "-4", "-o", "addr", "show"]);
        let routes = sh(&["ip", "-4", "route", "show", "table", "all"]);
        let subnet = (0..250)
            .map(|k| (1 + (pid as usize * 17 + k) % 250) as u8)
            .find(|x| {
                let needle = format!("169.254.{x}.");
                *x != 169 && !addrs.contains(&needle) && !routes.contains(&needle)
            })
            .expect("a free 169.254.X.0/24");
        let mut hosts = Hosts {
            dir,
            bridge: bridge.clone(),
            namespaces: Vec::new(),
            veths: Vec::new(),
            ips: Vec::new(),
            sshd: Vec::new(),
            closed: false,
        };
        sh(&["ip", "link", "add", &bridge, "type", "bridge"]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("169.254.{subnet}.1/24"),
            "dev",
            &bridge,
        ]);
        sh(&["ip", "link", "set", &bridge, "up"]);
        let d = hosts.dir.path().to_path_buf();
        sh(&[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            &d.join("host_key").display().to_string(),
        ]);
        sh(&[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            &d.join("id").display().to_string(),
        ]);
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        std::fs::create_dir_all(d.join("work")).unwrap();
        for i in 1..=n {
            let ns = format!("qst{tag}-h{i}");
            let ip = Ipv4Addr::new(169, 254, subnet, 10 + i as u8);
            sh(&["ip", "netns", "add", &ns]);
            hosts.namespaces.push(ns.clone());
            hosts.ips.push(ip);
            let veth = format!("qsv{tag}{i}");
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            sh(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            hosts.veths.push(veth.clone());
            sh(&["ip", "link", "set", &veth, "master", &bridge, "up"]);
            sh(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]);
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            let cfg = d.join(format!("sshd-h{i}.conf"));
            std::fs::write(
                &cfg,
                format!(
                    "ListenAddress {ip}:22\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                     PidFile {d}/sshd-h{i}.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                     Subsystem sftp internal-sftp\nMaxSessions 100\nMaxStartups 100:30:200\nLogLevel ERROR\n",
                    d = d.display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(d.join(format!("sshd-h{i}.log"))).unwrap();
            let child = Command::new("ip")
                .args(["netns", "exec", &ns])
                .arg(sshd_bin())
                .args(["-D", "-e", "-f"])
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            hosts.sshd.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for ip in &hosts.ips {
            let a = SocketAddr::from((*ip, 22));
            while TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "sshd on {a} did not listen within 20 s"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        hosts
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The hosts file for these hosts (`extra` appended, e.g. one more `[[host]]`), with or
    /// without a known-hosts file made from the hosts' key.
    fn hosts_file(&self, extra: &str, known_hosts: bool) -> PathBuf {
        let d = self.path();
        let mut text = String::new();
        if known_hosts {
            let key = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
            let key: Vec<&str> = key.split_whitespace().take(2).collect();
            let lines: String = self
                .ips
                .iter()
                .map(|ip| format!("{ip} {}\n", key.join(" ")))
                .collect();
            std::fs::write(d.join("known_hosts"), lines).unwrap();
            text.push_str(&format!("known_hosts = \"{}/known_hosts\"\n", d.display()));
        }
        text.push_str(&format!(
            "[defaults]\nuser = \"root\"\nidentity = \"{d}/id\"\nwork_dir = \"{d}/work\"\n",
            d = d.display()
        ));
        for (i, ip) in self.ips.iter().enumerate() {
            text.push_str(&format!(
                "\n[[host]]\nname = \"h{}\"\naddress = \"{ip}\"\n",
                i + 1
            ));
        }
        text.push_str(extra);
        let p = d.join("hosts.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// What a run left on the hosts: processes other than `sshd` in their namespaces (members,
    /// link proxies, lazyfs servers), a `quorate` nftables table, a lazyfs mount, a member
    /// folder in the work dir. Waits (bounded) for ssh
    /// sessions that are closing.
    fn leftovers(&self) -> Vec<String> {
        self.leftovers_except(None)
    }

    /// [`Hosts::leftovers`] on every host but `skip` (1-based), whose member folder is `n<skip>`'s.
    fn leftovers_except(&self, skip: Option<usize>) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut found = Vec::new();
            for (i, ns) in self.namespaces.iter().enumerate() {
                if skip == Some(i + 1) {
                    continue;
                }
                for pid in sh(&["ip", "netns", "pids", ns]).lines() {
                    let comm = std::fs::read_to_string(format!("/proc/{}/comm", pid.trim()))
                        .unwrap_or_default();
                    let comm = comm.trim();
                    if !comm.is_empty() && comm != "sshd" && !comm.starts_with("sshd") {
                        found.push(format!("process {pid} ({comm}) in {ns}"));
                    }
                }
                let tables = sh(&["ip", "netns", "exec", ns, "nft", "list", "tables"]);
                if tables.contains("quorate") {
                    found.push(format!("nftables table in {ns}: {}", tables.trim()));
                }
                // The host's mount table is its sshd's (every session shares it).
                let info =
                    std::fs::read_to_string(format!("/proc/{}/mountinfo", self.sshd[i].id()))
                        .unwrap_or_default();
                for l in info.lines().filter(|l| l.contains("quorate-lazyfs")) {
                    found.push(format!("lazyfs mount in {ns}: {l}"));
                }
            }
            for e in std::fs::read_dir(self.path().join("work"))
                .unwrap()
                .flatten()
            {
                let name = e.file_name().to_string_lossy().to_string();
                if skip.is_some_and(|k| name.ends_with(&format!("-n{k}"))) {
                    continue;
                }
                found.push(format!("remote folder {}", e.path().display()));
            }
            if found.is_empty() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Cut host `i` (1-based) off from the control machine: its packets to the bridge's own
    /// address are dropped, so its ssh connection dies as a lost network would kill it.
    fn cut_off(&self, i: usize) {
        let ns = &self.namespaces[i - 1];
        let o = self.ips[0].octets();
        let control = Ipv4Addr::new(o[0], o[1], o[2], 1);
        let script = format!(
            "add table inet qtest\nadd chain inet qtest out {{ type filter hook output priority 0; policy accept; }}\n\
             add rule inet qtest out ip daddr {control} drop\n"
        );
        let mut c = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(c.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
        drop(c.stdin.take());
        assert!(c.wait().unwrap().success());
    }

    /// Restart host `i`'s (1-based) sshd in a mount namespace of its own where `/dev/fuse`
    /// is a plain file: a host without FUSE, as far as its sessions can tell.
    fn hide_fuse(&mut self, i: usize) {
        let c = &mut self.sshd[i - 1];
        let _ = c.kill();
        let _ = c.wait();
        let d = self.path().to_path_buf();
        std::fs::write(d.join("nofuse"), "").unwrap();
        let cfg = d.join(format!("sshd-h{i}.conf"));
        let log = std::fs::File::create(d.join(format!("sshd-h{i}.log"))).unwrap();
        let script = format!(
            "mount --bind {d}/nofuse /dev/fuse && exec {sshd} -D -e -f {cfg}",
            d = d.display(),
            sshd = sshd_bin().display(),
            cfg = cfg.display()
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &self.namespaces[i - 1]])
            .args([
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.sshd[i - 1] = child;
        let a = SocketAddr::from((self.ips[i - 1], 22));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd on {a} did not listen again"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop every sshd and remove the namespaces and the bridge; what is still there after.
    fn close(&mut self) -> Vec<String> {
        self.closed = true;
        let pids: Vec<u32> = self.sshd.iter().map(Child::id).collect();
        for c in &mut self.sshd {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            // Sessions the sshd forked (closing) die with it: kill what is left.
            if let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for p in String::from_utf8_lossy(&o.stdout).lines() {
                    let _ = Command::new("kill").args(["-9", p.trim()]).status();
                }
            }
        }
        // The root ends first: a deleted namespace is torn down later by the kernel (and an
        // orphaned socket can hold it for a while), its veth with it.
        for link in self.veths.iter().chain([&self.bridge]) {
            let _ = Command::new("ip").args(["link", "delete", link]).status();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
        let mut left = Vec::new();
        for p in pids {
            if Path::new(&format!("/proc/{p}")).exists() {
                left.push(format!("sshd {p}"));
            }
        }
        let list = sh(&["ip", "netns", "list"]);
        for ns in &self.namespaces {
            if list
                .lines()
                .any(|l| l.split_whitespace().next() == Some(ns.as_str()))
            {
                left.push(format!("namespace {ns}"));
            }
        }
        let links = sh(&["ip", "-o", "link", "show"]);
        for link in self.veths.iter().chain([&self.bridge]) {
            if links.contains(&format!(" {link}:")) || links.contains(&format!(" {link}@")) {
                left.push(format!("link {link}"));
            }
        }
        left
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if !self.closed {
            self.close();
        }
    }
}

/// `quorate run --backend ssh --hosts HOSTS --nodes N ARGS…`.
fn ssh_command(results: &Path, hosts: &Path, nodes: usize, args: &[&str]) -> Command {
    let mut c = Command::new(common::quorate());
    c.arg("run")
        .arg("--results")
        .arg(results)
        .arg("--backend")
        .arg("ssh")
        .arg("--hosts")
        .arg(hosts)
        .arg("--nodes")
        .arg(nodes.to_string())
        .args(args)
        .stdin(Stdio::null());
    c
}

/// A run on `h`, then the check that it left nothing on the hosts.
fn ssh_run(h: &Hosts, results: &Path, args: &[&str]) -> Output {
    let hosts = h.hosts_file("", false);
    let mut c = ssh_command(results, &hosts, h.ips.len(), args);
    if !args.contains(&"--target") {
        c.arg("--node-bin").arg(common::node_bin());
    }
    let o = c.output().unwrap();
    let left = h.leftovers();
    assert!(
        left.is_empty(),
        "the run left on the hosts: {left:?}\n{}",
        stderr_tail(&o, 20)
    );
    o
}

/// The nemesis events of a run: `(f, value)`, in order.
fn nemesis_events(dir: &Path) -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["process"] == "nemesis")
        .map(|e| {
            (
                e["f"].as_str().unwrap_or("").to_string(),
                e["value"].clone(),
            )
        })
        .collect()
}

const SHORT: &[&str] = &[
    "--time-limit",
    "8",
    "--nemesis-interval",
    "2",
    "--concurrency",
    "6",
    "--ops-per-key",
    "60",
    "--check-time-limit",
    "20",
];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = SHORT.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn a_typo_in_the_hosts_file_is_refused_with_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let hosts = t.path().join("hosts.toml");
    std::fs::write(
        &hosts,
        "[defaults]\nuser = \"root\"\n\n[[host]]\naddres = \"127.0.0.1\"\n",
    )
    .unwrap();
    let o = ssh_command(&t.path().join("results"), &hosts, 3, &["--nemesis", "kill"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("{}:5: unknown field `addres`", hosts.display())),
        "{e}"
    );
    assert!(
        !t.path().join("results").exists(),
        "a refused run made a folder"
    );
    // --hosts belongs to --backend ssh.
    let o = Command::new(common::quorate())
        .args(["run", "--hosts"])
        .arg(&hosts)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("expected --backend ssh"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_unreachable_host_is_exit_3_naming_it_before_anything_starts() {
    if !hosts_allowed() {
        return;
    }
    let _g = serial();
    let mut h = Hosts::new(2);
    let t = tempfile::tempdir().unwrap();
    // A third host on the bridge's subnet where no one answers.
    let ghost = {
        let o = h.ips[0].octets();
        Ipv4Addr::new(o[0], o[1], o[2], 99)
    };
    let hosts = h.hosts_file(
        &format!("\n[[host]]\nname = \"ghost\"\naddress = \"{ghost}\"\n"),
        true,
    );
    let results = t.path().join("results");
    let mut c = ssh_command(&results, &hosts, 3, &["--time-limit", "5"]);
    c.arg("--node-bin").arg(common::node_bin());
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("host ghost: unreachable"), "{e}");
    assert!(!results.exists(), "nothing should have started: {e}");
    assert_eq!(h.leftovers(), Vec::<String>::new());
    assert_eq!(h.close(), Vec::<String>::new());
}

/// `abd` holds over ssh under partitions, kills and pauses, tear-down fetches every member's
/// log and data, and the same seed on `--backend netns` gives the same fault schedule (the
/// nemesis events' kinds and targets).
#[test]
fn abd_holds_over_ssh_and_the_same_seed_gives_netns_the_same_fault_schedule() {
    if !hosts_allowed() {
        return;
    }
    let _g = serial();
    let mut h = Hosts::new(3);
    let t = tempfile::tempdir().unwrap();
    let a = args(&[
        "--preset",
        "abd",
        "--nemesis",
        "partition,kill,pause",
        "--seed",
        "2",
    ]);
    let ssh = ssh_run(&h, t.path(), &a);
    let r = results_of(&ssh);
    assert_eq!(ssh.status.code(), Some(0), "{}", stderr_tail(&ssh, 20));
    assert_eq!(r["checks"]["linearizable"]["valid"], true);
    assert!(r["run"]["ok"].as_u64().unwrap() > 20, "{}", r["run"]);
    let dir = run_dir(&ssh);
    for n in ["n1", "n2", "n3"] {
        let log = std::fs::read_to_string(dir.join("nodes").join(format!("{n}.log"))).unwrap();
        assert!(!log.is_empty(), "{n}.log is empty");
        assert!(dir.join("data").join(n).is_dir(), "data/{n} not fetched");
    }
    assert!(dir.join("ssh").join("known_hosts").is_file());
    assert!(dir.join("ssh").join("hosts.toml").is_file());
    assert_eq!(h.close(), Vec::<String>::new());

    let mut netns_args = vec!["--backend", "netns", "--nodes", "3"];
    netns_args.extend_from_slice(&a);
    let netns = common::run(t.path(), &netns_args);
    results_of(&netns);
    // Kinds and targets: which fault, which links or nodes (not timings or offsets).
    let shape = |dir: &Path| -> Vec<(String, Value)> {
        nemesis_events(dir)
            .into_iter()
            .map(|(f, mut v)| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("snapshot_age_ms");
                }
                (f, v)
            })
            .collect()
    };
    let (s, n) = (shape(&dir), shape(&run_dir(&netns)));
    // One schedule: the same faults on the same targets in the same order. How many windows
    // fit in the time limit depends on how long each step took (a restart over ssh waits
    // longer), so the shorter run's events are compared with the same first ones of the other.
    let k = s.len().min(n.len());
    assert!(k >= 4, "too few faults to compare: ssh {s:?}, netns {n:?}");
    assert!(s[..k].iter().any(|(f, _)| f == "partition-start"), "{s:?}");
    assert_eq!(s[..k], n[..k], "ssh and netns schedules differ for seed 2");
}

#[test]
fn weak_is_caught_within_five_seeds() {
    if !hosts_allowed() {
        return;
    }
    let _g = serial();
    let mut h = Hosts::new(3);
    let t = tempfile::tempdir().unwrap();
    let mut tried = Vec::new();
    let mut caught = false;
    for seed in 1..=5 {
        let s = seed.to_string();
        let o = ssh_run(
            &h,
            t.path(),
            &args(&[
                "--preset",
                "weak",
                "--nemesis",
                "partition,kill",
                "--seed",
                &s,
            ]),
        );
        let r = results_of(&o);
        let lin = &r["checks"]["linearizable"]["valid"];
        tried.push(format!("seed {seed}: {lin}"));
        if *lin == false {
            caught = true;
            break;
        }
    }
    assert_eq!(h.close(), Vec::<String>::new());
    assert!(caught, "weak not caught in 5 seeds: {tried:?}");
}

fn garage_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QUORATE_GARAGE_BIN") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("garage"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let p = PathBuf::from(std::env::var_os("HOME")?).join(".cargo/bin/garage");
        p.is_file().then_some(p)
    })
}

#[test]
fn garage_consistent_reads_its_writes_over_ssh() {
    if !hosts_allowed() {
        return;
    }
    let _g = serial();
    let Some(garage) = garage_bin() else {
        panic!("garage is not installed: scripts/install-deps.sh builds it (or set QUORATE_GARAGE_BIN)");
    };
    let mut h = Hosts::new(3);
    let t = tempfile::tempdir().unwrap();
    let garage = garage.display().to_string();
    let o = ssh_run(
        &h,
        t.path(),
        &[
            "--target",
            "garage",
            "--garage-bin",
            &garage,
            "--garage-consistency",
            "consistent",
            "--nemesis",
            "partition,kill",
            "--time-limit",
            "12",
            "--nemesis-interval",
            "3",
            "--ops-per-key",
            "60",
            "--check-time-limit",
            "20",
            "--seed",
            "1",
        ],
    );
    let r = results_of(&o);
    let stale = &r["checks"]["stale-reads"];
    assert_eq!(stale["valid"], true, "{stale}");
    assert!(stale["reads"].as_u64().unwrap() > 20, "{stale}");
    let lost = &r["checks"]["lost-writes"];
    assert_eq!(lost["lost"], 0, "{lost}");
    assert!(lost["acknowledged"].as_u64().unwrap() > 10, "{lost}");
    let kinds: Vec<String> = nemesis_events(&run_dir(&o))
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert!(
        kinds
            .iter()
            .any(|f| f == "partition-start" || f == "kill-start"),
        "{kinds:?}"
    );
    assert_eq!(h.close(), Vec::<String>::new());
}

/// `--target etcd` over ssh: etcd (Debian's, uploaded to each host) holds under partitions
/// and kills, each member told every member's peer address (`--initial-cluster`).
#[test]
fn etcd_holds_over_ssh_under_partition_and_kill() {
    if !hosts_allowed() {
        return;
    }
    let _g = serial();
    let mut h = Hosts::new(3);
    let t = tempfile::tempdir().unwrap();
    let o = ssh_run(
        &h,
        t.path(),
        &[
            "--target",
            "etcd",
            "--nemesis",
            "partition,kill",
            "--time-limit",
            "10",
            "--nemesis-interval",
            "3",
            "--concurrency",
            "9",
            "--op-timeout-ms",
            "1000",
            "--ops-per-key",
            "60",
            "--check-time-limit",
            "20",
            "--seed",
            "1",
        ],
    );
    let r = results_of(&o);
    assert_eq!(
        r["checks"]["linearizable"]["valid"],
        true,
        "{}",
        stderr_tail(&o, 20)
    );
    assert!(r["run"]["ok"].as_u64().unwrap() > 50, "{}", r["run"]);
    let dir = run_dir(&o);
    let events = nemesis_events(&dir);
    assert!(
        events.iter().any(|(f, _)| f.ends_with("-start")),
        "no fault: {events:?}"
    );
    assert!(
        events.iter().all(|(_, v)| v.get("error").is_none()),
        "a fault failed: {events:?}"
    );
    let log = std::fs::read_to_string(dir.join("nodes/n2.log")).unwrap();
    assert!(log.contains("n3="), "n2 was not told of n3:\n{log}");
    assert_eq!(h.close(), Vec::<String>::new());
}

/// A target file over ssh: the node described by `examples/targets/node.toml`, its member
/// program (found beside `quorate`) uploaded to each host, its adapter on this machine.
#[test]
fn a_target_file_runs_over_ssh() {
    if !hosts_allowed() {
        return;
    }
    let _g = serial();
    let mut h = Hosts::new(3);
    let t = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/targets/node.toml");
    let hosts = h.hosts_file("", false);
    let mut a = vec!["--target-file", file.to_str().unwrap()];
    a.extend(args(&["--nemesis", "partition,kill", "--seed", "1"]));
    let o = ssh_command(t.path(), &hosts, 3, &a).output().unwrap();
    let left = h.leftovers();
    assert!(
        left.is_empty(),
        "the run left: {left:?}\n{}",
        stderr_tail(&o, 20)
    );
    let r = results_of(&o);
    assert_eq!(
        r["checks"]["linearizable"]["valid"],
        true,
        "{}",
        stderr_tail(&o, 20)
    );
    assert!(r["run"]["ok"].as_u64().unwrap() > 20, "{}", r["run"]);
    let dir = run_dir(&o);
    let events = nemesis_events(&dir);
    assert!(
        events.iter().all(|(_, v)| v.get("error").is_none()),
        "a fault failed: {events:?}"
    );
    for n in ["n1", "n2", "n3"] {
        assert!(dir.join("nodes").join(format!("{n}.log")).is_file());
    }
    assert_eq!(h.close(), Vec::<String>::new());
}

/// `power-loss` over ssh: each member's lazyfs server runs on its host inside an ssh session;
/// with `--fsync always` a majority of a key's replicas losing power loses nothing. After the
/// run no lazyfs mount is left in any host's mount table, and no lazyfs server or ssh session
/// for one on either side.
#[test]
fn power_loss_runs_lazyfs_on_the_hosts_and_leaves_no_mount() {
    if !hosts_allowed() {
        return;
    }
    let _g = serial();
    let mut h = Hosts::new(3);
    let t = tempfile::tempdir().unwrap();
    let o = ssh_run(
        &h,
        t.path(),
        &[
            "--preset",
            "abd",
            "--fsync",
            "always",
            "--nemesis",
            "power-loss",
            "--power-loss-scope",
            "majority",
            "--time-limit",
            "8",
            "--nemesis-interval",
            "2",
            "--concurrency",
            "6",
            "--check-time-limit",
            "20",
            "--seed",
            "1",
        ],
    );
    let r = results_of(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr_tail(&o, 20));
    assert_eq!(r["checks"]["lost-writes"]["lost"], 0);
    let dir = run_dir(&o);
    let cuts: Vec<Value> = nemesis_events(&dir)
        .into_iter()
        .filter(|(f, _)| f == "power-loss-start")
        .map(|(_, v)| v)
        .collect();
    assert!(!cuts.is_empty(), "no power cut happened");
    for v in &cuts {
        assert!(v.get("error").is_none(), "{v}");
        for n in v["nodes"].as_array().unwrap() {
            let d = &v["dropped"][n.as_str().unwrap()];
            assert!(d["bytes"].is_u64() && d["metadata_ops"].is_u64(), "{v}");
        }
    }
    for n in ["n1", "n2", "n3"] {
        let log = dir.join("nodes").join(format!("{n}.lazyfs.log"));
        assert!(log.is_file(), "{} missing", log.display());
        assert!(
            dir.join("durable").join(n).is_dir(),
            "durable/{n} not fetched"
        );
    }
    // Each host's mount table is its sshd's (every session shares it).
    for (i, c) in h.sshd.iter().enumerate() {
        let info = std::fs::read_to_string(format!("/proc/{}/mountinfo", c.id())).unwrap();
        assert!(
            !info.contains("quorate-lazyfs"),
            "a lazyfs mount is left on h{}:\n{info}",
            i + 1
        );
    }
    let needle = h.path().join("work").display().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let zombie =
            std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| s.contains(") Z "));
        assert!(
            zombie || !(cmd.contains("lazyfs") && cmd.contains(&needle)),
            "left: {cmd}"
        );
    }
    assert_eq!(h.close(), Vec::<String>::new());
}

/// `power-loss` on a host without FUSE: exit 3 before anything starts, naming the host and
/// the step.
#[test]
fn a_host_without_fuse_is_refused_for_power_loss() {
    if !hosts_allowed() {
        return;
    }
    let _g = serial();
    let mut h = Hosts::new(3);
    h.hide_fuse(2);
    let t = tempfile::tempdir().unwrap();
    let hosts = h.hosts_file("", true);
    let results = t.path().join("results");
    let mut c = ssh_command(
        &results,
        &hosts,
        3,
        &["--nemesis", "power-loss", "--time-limit", "5"],
    );
    let o = c
        .arg("--node-bin")
        .arg(common::node_bin())
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert!(
        e.contains("host h2 (") && e.contains("power-loss needs FUSE on the host"),
        "{e}"
    );
    assert!(!e.contains("host h1 (") && !e.contains("host h3 ("), "{e}");
    assert!(!results.exists(), "nothing should have started: {e}");
    assert_eq!(h.leftovers(), Vec::<String>::new());
    assert_eq!(h.close(), Vec::<String>::new());
}

#[test]
fn ctrl_c_leaves_no_member_rule_or_folder_on_the_hosts() {
    if !hosts_allowed() {
        return;
    }
    let _g = serial();
    let mut h = Hosts::new(3);
    let t = tempfile::tempdir().unwrap();
    let hosts = h.hosts_file("", true);
    let mut c = ssh_command(
        t.path(),
        &hosts,
        3,
        &[
            "--preset",
            "strict",
            "--nemesis",
            "partition,pause,stale-restore,power-loss",
            "--time-limit",
            "60",
            "--nemesis-interval",
            "1",
        ],
    );
    let mut child = c
        .arg("--node-bin")
        .arg(common::node_bin())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until a fault is in force, so there is a rule or a paused member.
    let deadline = Instant::now() + Duration::from_secs(90);
    let history = t.path().join("latest").join("history.jsonl");
    loop {
        let text = std::fs::read_to_string(&history).unwrap_or_default();
        if text.contains("-start") && text.len() > 2000 {
            break;
        }
        assert!(Instant::now() < deadline, "no fault within 90 s");
        if child.try_wait().unwrap().is_some() {
            let o = child.wait_with_output().unwrap();
            panic!("the run ended early: {}", stderr_tail(&o, 20));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    interrupt(child, 10);
    assert_eq!(h.leftovers(), Vec::<String>::new());
    assert_eq!(h.close(), Vec::<String>::new());
}

#[test]
fn slow_and_flaky_links_go_through_a_link_proxy_on_each_host() {
    if !hosts_allowed() {
        return;
    }
    let _g = serial();
    let mut h = Hosts::new(3);
    let t = tempfile::tempdir().unwrap();
    let o = ssh_run(
        &h,
        t.path(),
        &args(&["--preset", "abd", "--nemesis", "slow,flaky", "--seed", "3"]),
    );
    let r = results_of(&o);
    assert_eq!(
        r["checks"]["linearizable"]["valid"],
        true,
        "{}",
        stderr_tail(&o, 20)
    );
    let dir = run_dir(&o);
    let events = nemesis_events(&dir);
    let starts: Vec<&String> = events
        .iter()
        .map(|(f, _)| f)
        .filter(|f| f.as_str() == "slow-start" || f.as_str() == "flaky-start")
        .collect();
    assert!(!starts.is_empty(), "no slow or flaky window: {events:?}");
    assert!(
        events.iter().all(|(_, v)| v.get("error").is_none()),
        "a link fault failed: {events:?}"
    );
    for n in ["n1", "n2", "n3"] {
        let log =
            std::fs::read_to_string(dir.join("nodes").join(format!("{n}.link-proxy.log"))).unwrap();
        let carried: u64 = log
            .split("after carrying ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{n}'s link proxy did not say what it carried:\n{log}"));
        assert!(
            carried > 0,
            "{n}'s peer connections did not go through its proxy:\n{log}"
        );
    }
    assert_eq!(h.close(), Vec::<String>::new());
}

/// The node's launch with libfaketime preloaded, as Garage's is under `clock-skew`.
struct FaketimeLaunch {
    node: quorate::targets::node::NodeLaunch,
    clock: quorate::targets::faketime::Faketime,
}

impl quorate::backend::launch::Launch for FaketimeLaunch {
    fn command(&self, m: &quorate::backend::launch::Member) -> std::io::Result<Command> {
        let mut c = self.node.command(m)?;
        self.clock.prepare(m.id, &mut c)?;
        Ok(c)
    }
    fn program(&self) -> PathBuf {
        quorate::backend::launch::Launch::program(&self.node)
    }
}

/// Clock skew for a store that is not the node: the member gets its host's libfaketime and
/// the host's copy of its offset file, which a new offset rewrites. `--keep-remote` keeps the
/// members' folders (and nothing running). The namespace `Remote` drives the same hosts.
#[test]
fn a_remote_member_reads_its_hosts_offset_file_and_keep_remote_keeps_folders() {
    if !hosts_allowed() {
        return;
    }
    use quorate::backend::remote::{NamespaceRemote, Remote};
    use quorate::backend::ssh::{Needs, SshCluster, SshHosts};
    use quorate::backend::{node_ids, Cluster, ClusterSpec};
    use quorate::targets::Clock;
    let _g = serial();
    let mut h = Hosts::new(2);
    let t = tempfile::tempdir().unwrap();
    let hosts_file = h.hosts_file("", true);
    // Host 1 keeps the node's program itself (bin_dir): it is run from there, not uploaded.
    let bin_dir = common::node_bin().parent().unwrap().display().to_string();
    let text = std::fs::read_to_string(&hosts_file).unwrap().replacen(
        "name = \"h1\"\n",
        &format!("name = \"h1\"\nbin_dir = \"{bin_dir}\"\n"),
        1,
    );
    std::fs::write(&hosts_file, text).unwrap();
    let needs = Needs {
        nft: false,
        faketime: true,
        fuse: false,
    };
    let hosts = std::sync::Arc::new(SshHosts::connect(&hosts_file, 2, needs, true).unwrap());
    let lib = hosts.libfaketime[0]
        .clone()
        .expect("libfaketime found on the host");
    let clock = quorate::targets::faketime::Faketime::new(
        quorate::targets::faketime::find_library().unwrap(),
        t.path().join("clock"),
    );
    let launch = std::sync::Arc::new(FaketimeLaunch {
        node: quorate::targets::node::NodeLaunch {
            bin: common::node_bin(),
            args: ["--preset", "strict", "--n", "2", "--r", "1", "--w", "2"]
                .map(String::from)
                .to_vec(),
        },
        clock: clock.clone(),
    });
    let spec = ClusterSpec {
        nodes: node_ids(2),
        run_dir: t.path().to_path_buf(),
        direct_clients: false,
        link_faults: false,
        power_loss: false,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = rt
        .block_on(SshCluster::start(spec, launch, hosts.clone(), needs))
        .unwrap();
    let pid = cluster.pid("n1").unwrap();
    let rdir = cluster.remote_dir("n1").unwrap().to_string();
    let exe = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe(pid), common::node_bin());
    let n2 = cluster.pid("n2").unwrap();
    let uploaded = PathBuf::from(cluster.remote_dir("n2").unwrap()).join("bin/quorate-node");
    assert_eq!(exe(n2), uploaded);
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let env = String::from_utf8_lossy(&env).replace('\0', "\n");
    assert!(
        env.lines().any(|l| l == format!("LD_PRELOAD={lib}")),
        "{env}"
    );
    let offset_file = format!("{rdir}/files/n1.faketime");
    assert!(
        env.lines()
            .any(|l| l == format!("FAKETIME_TIMESTAMP_FILE={offset_file}")),
        "{env}"
    );
    rt.block_on(clock.set_offset(&cluster, "n1", 3_600_000))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&offset_file).unwrap().trim(),
        "+3600.000"
    );
    // The same host through the namespace seam: the member's pid file is where ssh left it.
    let ns = NamespaceRemote {
        namespace: h.namespaces[0].clone(),
    };
    let pid_file = ns
        .exec(
            &format!("cat {rdir}/member.pid"),
            None,
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(pid_file.trim(), pid.to_string());
    cluster.shutdown();
    drop(cluster);
    drop(hosts);
    // Gone, or a zombie waiting for this machine's pid 1 to reap it (no longer running).
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = state.rsplit(')').next().unwrap_or("").trim_start();
    assert!(
        state.is_empty() || state.starts_with('Z'),
        "n1 still runs: {state}"
    );
    assert!(t.path().join("nodes/n1.log").is_file());
    // --keep-remote: both folders stay, with their logs; nothing else does.
    let work = h.path().join("work");
    let kept: Vec<PathBuf> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        kept.iter().all(|d| d.join("member.log").is_file()),
        "{kept:?}"
    );
    for d in kept {
        std::fs::remove_dir_all(d).unwrap();
    }
    assert_eq!(h.leftovers(), Vec::<String>::new());
    assert_eq!(h.close(), Vec::<String>::new());
}

/// A host lost mid-run: the run ends with exit 3 naming it, and the other hosts are healed
/// and cleaned up all the same (no member, no rule, no folder left on them).
#[test]
fn a_host_lost_mid_run_is_named_and_the_others_are_cleaned_up() {
    if !hosts_allowed() {
        return;
    }
    let _g = serial();
    let mut h = Hosts::new(3);
    let t = tempfile::tempdir().unwrap();
    let hosts = h.hosts_file("", true);
    let mut c = ssh_command(
        t.path(),
        &hosts,
        3,
        &[
            "--preset",
            "abd",
            "--nemesis",
            "partition,kill",
            "--time-limit",
            "8",
            "--nemesis-interval",
            "2",
            "--seed",
            "5",
        ],
    );
    let child = c
        .arg("--node-bin")
        .arg(common::node_bin())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let history = t.path().join("latest").join("history.jsonl");
    while !std::fs::read_to_string(&history)
        .unwrap_or_default()
        .contains("-start")
    {
        assert!(Instant::now() < deadline, "no fault within 90 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    h.cut_off(2);
    let o = child.wait_with_output().unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert!(e.contains("host h2: unreachable"), "{e}");
    assert!(e.contains("tear-down of n2 on host h2"), "{e}");
    assert_eq!(h.leftovers_except(Some(2)), Vec::<String>::new(), "{e}");
    assert_eq!(h.close(), Vec::<String>::new());
}

/// A harness killed with SIGKILL cannot tear down, so its members run on on the hosts; the next
/// run from this machine removes what it left (members killed, folders gone) before laying out
/// its own, as Jepsen tears a node down before setting it up.
#[test]
fn the_next_run_sweeps_what_a_killed_harness_left_on_the_hosts() {
    if !hosts_allowed() {
        return;
    }
    let _g = serial();
    let mut h = Hosts::new(3);
    let t = tempfile::tempdir().unwrap();
    let hosts = h.hosts_file("", false);
    let mut child = ssh_command(
        t.path(),
        &hosts,
        3,
        &["--preset", "abd", "--nemesis", "none", "--time-limit", "60"],
    )
    .arg("--node-bin")
    .arg(common::node_bin())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    common::wait_recording(&mut child, t.path());
    child.kill().unwrap();
    child.wait().unwrap();
    let left = h.leftovers();
    assert!(
        left.iter().any(|l| l.starts_with("process"))
            && left.iter().any(|l| l.starts_with("remote folder")),
        "a SIGKILLed harness should have left its members and folders: {left:?}"
    );
    let results = t.path().join("next");
    let o = ssh_run(
        &h,
        &results,
        &[
            "--preset",
            "abd",
            "--nemesis",
            "none",
            "--time-limit",
            "2",
            "--quiet",
            "1",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr_tail(&o, 20));
    // Every folder the dead run left is named as removed (these test hosts share one work dir,
    // so which host's sweep found it may vary).
    for dead in left.iter().filter_map(|l| l.strip_prefix("remote folder ")) {
        assert!(
            err.lines().any(
                |l| l.contains(dead) && l.contains("left by an earlier run whose harness died")
            ),
            "{dead} not swept: {err}"
        );
    }
    assert_eq!(h.close(), Vec::<String>::new());
}
