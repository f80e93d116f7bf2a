//! `slow` and `flaky` on `--backend ssh`: the netns backend's link proxy
//! ([`crate::backend::netns::links`]: `SO_ORIGINAL_DST`, marked upstream sockets, pipelined
//! delays, resets) run on each host as a managed process, `quorate link-proxy` (this binary,
//! uploaded), and steered from the control machine over one TCP connection per host.
//!
//! On host `a`, an nftables `nat` chain `links` in the run's `inet quorate` table redirects
//! every TCP connection the member opens to another member's address and ports to the proxy's
//! port; the proxy dials the original destination from the host itself with a socket mark the
//! redirect skips, so partitions' drop rules still cut it. A link `a → b` is the connections
//! `a` opens to `b`, as on the other backends.
//!
//! The control protocol, one line each way: `delay <peer> <ms>`, `reset <peer>`, `heal` →
//! `ok` or `err <why>`. The proxy serves one control connection and exits when it closes (the
//! run is over, or the harness died), or when none came within [`FIRST_CONTACT`]; tear-down
//! also kills it by pid.

use crate::backend::netns::links::{marked_here, original_dst, serve as serve_conn, Dial};
use crate::proxy::LinkState;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// How long the proxy waits for the harness to connect before it exits by itself.
pub const FIRST_CONTACT: Duration = Duration::from_secs(60);
/// A member's link-proxy port and control port, above its first port.
pub const LINK_OFFSET: u16 = 900;
pub const CONTROL_OFFSET: u16 = 901;

/// `quorate link-proxy` (internal: started on each host by `--backend ssh`).
#[derive(clap::Args, Debug)]
pub struct ProxyArgs {
    /// Where redirected connections arrive (on every address of the host).
    #[arg(long)]
    pub port: u16,
    /// Where the harness steers it from.
    #[arg(long)]
    pub control: SocketAddr,
    /// The other members: `ID=IPv4`, repeatable.
    #[arg(long = "peer")]
    pub peers: Vec<String>,
}

/// The subcommand's body; exit 0 when the harness hung up, 3 on an error.
pub fn main(a: ProxyArgs) -> u8 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quorate link-proxy: {e}");
            return 3;
        }
    };
    match rt.block_on(serve(a)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("quorate link-proxy: {e}");
            3
        }
    }
}

async fn serve(a: ProxyArgs) -> Result<(), String> {
    let mut states: BTreeMap<String, watch::Sender<LinkState>> = BTreeMap::new();
    let mut peers = BTreeMap::new();
    for p in &a.peers {
        let (id, ip) = p
            .split_once('=')
            .and_then(|(id, ip)| Some((id.to_string(), ip.parse::<Ipv4Addr>().ok()?)))
            .ok_or_else(|| format!("--peer {p}: expected ID=IPv4"))?;
        let (tx, rx) = watch::channel(LinkState::default());
        peers.insert(ip, rx);
        states.insert(id, tx);
    }
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, a.port))
        .await
        .map_err(|e| format!("listen on port {}: {e}", a.port))?;
    let control = tokio::net::TcpListener::bind(a.control)
        .await
        .map_err(|e| format!("control on {}: {e}", a.control))?;
    let dial: Dial = Arc::new(marked_here);
    // The netns proxy's accept loop, counting the connections it carries (logged at exit, so
    // a run's folder shows its links really went through here).
    let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = served.clone();
    let links = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((down, _)) = accepted else { continue };
                    let Ok(dst) = original_dst(&down) else { continue };
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let state = peers.get(dst.ip()).cloned();
                    conns.spawn(serve_conn(down, SocketAddr::V4(dst), dial.clone(), state));
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    });
    eprintln!(
        "quorate link-proxy: ready on port {}, control {}",
        a.port, a.control
    );
    let (conn, from) = tokio::time::timeout(FIRST_CONTACT, control.accept())
        .await
        .map_err(|_| "no control connection within 60 s".to_string())?
        .map_err(|e| format!("control accept: {e}"))?;
    drop(control);
    eprintln!("quorate link-proxy: steered from {from}");
    let (r, mut w) = conn.into_split();
    let mut lines = tokio::io::BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match apply(&states, &line) {
            Ok(()) => "ok\n".to_string(),
            Err(e) => format!("err {e}\n"),
        };
        if w.write_all(reply.as_bytes()).await.is_err() {
            break;
        }
    }
    links.abort();
    eprintln!(
        "quorate link-proxy: the harness hung up; exiting after carrying {} connections",
        served.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

fn apply(states: &BTreeMap<String, watch::Sender<LinkState>>, line: &str) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let link = |id: &str| states.get(id).ok_or_else(|| format!("no link to {id}"));
    match words.as_slice() {
        ["delay", id, ms] => {
            let ms: u64 = ms.parse().map_err(|_| format!("delay {ms}: expected ms"))?;
            link(id)?.send_modify(|s| s.delay = Duration::from_millis(ms));
            Ok(())
        }
        ["reset", id] => {
            link(id)?.send_modify(|s| s.reset_gen += 1);
            Ok(())
        }
        ["heal"] => {
            for s in states.values() {
                s.send_modify(|s| s.delay = Duration::ZERO);
            }
            Ok(())
        }
        _ => Err(format!("{line:?}: expected delay ID MS, reset ID or heal")),
    }
}

/// The harness's end of one host's control connection.
pub struct LinkControl {
    conn: Mutex<(BufReader<TcpStream>, TcpStream)>,
}

impl LinkControl {
    /// Connect to a proxy just started, retrying until `deadline`.
    pub fn connect(addr: SocketAddr, deadline: Instant) -> Result<LinkControl, String> {
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s.set_read_timeout(Some(Duration::from_secs(5)))
                        .map_err(|e| e.to_string())?;
                    let r = s.try_clone().map_err(|e| e.to_string())?;
                    return Ok(LinkControl {
                        conn: Mutex::new((BufReader::new(r), s)),
                    });
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("link proxy control {addr}: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Send one command and wait for its answer.
    pub fn send(&self, line: &str) -> Result<(), String> {
        let mut c = self.conn.lock().unwrap();
        c.1.write_all(format!("{line}\n").as_bytes())
            .map_err(|e| format!("link proxy: {line}: {e}"))?;
        let mut reply = String::new();
        c.0.read_line(&mut reply)
            .map_err(|e| format!("link proxy: {line}: {e}"))?;
        match reply.trim() {
            "ok" => Ok(()),
            "" => Err(format!("link proxy: {line}: it hung up")),
            other => Err(format!("link proxy: {line}: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines_change_the_links_they_name() {
        let (tx, rx) = watch::channel(LinkState::default());
        let states = BTreeMap::from([("n2".to_string(), tx)]);
        apply(&states, "delay n2 40").unwrap();
        assert_eq!(rx.borrow().delay, Duration::from_millis(40));
        apply(&states, "reset n2").unwrap();
        assert_eq!(rx.borrow().reset_gen, 1);
        apply(&states, "heal").unwrap();
        assert_eq!(rx.borrow().delay, Duration::ZERO);
        for bad in ["delay n3 5", "delay n2 x", "shake"] {
            assert!(apply(&states, bad).is_err(), "{bad}");
        }
    }
}
