//! The TCP fault proxy: one listener per directed link, so partitions need no root.
//!
//! A link `a→b` is the listener that `a` dials to reach `b` (node `a`'s `--peers` entry for
//! `b`, or a client's address for node `b`). Every accepted connection is pumped to `b`'s real
//! address by two tasks, one per direction. Faults are described per direction of *traffic*,
//! like a firewall rule on packets from `a` to `b`: dropping `a→b` stalls the request bytes on
//! connections `a` opened to `b` **and** the response bytes on connections `b` opened to `a`.
//! That is what makes a one-way cut one-way: `a` still hears `b`'s requests but can never answer.
//!
//! A dropped direction is a **blackhole**, not a refusal: connections are still accepted and
//! bytes are read and held, so the sender sees a hung request until its own timeout — the way
//! an iptables `DROP` behaves. When the link heals, connections that held bytes are reset
//! rather than replaying stale requests (TCP would retransmit them; a reset is the simpler
//! and still-legal outcome, and the sender has long since given up).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// One end of a link: a node id, or [`CLIENT`] for the harness's clients.
pub type Endpoint = String;

/// The endpoint name clients use when dialling nodes through the proxy.
pub const CLIENT: &str = "client";

/// What happens to the bytes flowing in one direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flow {
    #[default]
    Pass,
    /// Bytes are read and held; the connection hangs (a firewall `DROP`).
    Blackhole,
}

/// The fault state of one listener (connections initiated by `from` towards `to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkState {
    /// Bytes from the dialler (`from`) to the listener's target (`to`).
    pub forward: Flow,
    /// Bytes coming back from `to` to `from`.
    pub back: Flow,
    /// Added latency per chunk, both directions.
    pub delay: Duration,
    /// Bumped to reset every open connection of this link (RST, not FIN).
    pub reset_gen: u64,
}

struct Link {
    listen: SocketAddr,
    state: watch::Sender<LinkState>,
}

/// The running proxy. Dropping it (or [`Proxy::shutdown`]) closes every listener and
/// connection: nothing outlives the harness.
pub struct Proxy {
    links: BTreeMap<(Endpoint, Endpoint), Link>,
    tasks: JoinSet<()>,
}

impl Proxy {
    /// Start one listener on `127.0.0.1:0` per `(from, to, upstream)` triple.
    pub async fn start(links: Vec<(Endpoint, Endpoint, SocketAddr)>) -> io::Result<Proxy> {
        let mut map = BTreeMap::new();
        let mut tasks = JoinSet::new();
        for (from, to, upstream) in links {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let listen = listener.local_addr()?;
            let (tx, rx) = watch::channel(LinkState::default());
            tasks.spawn(accept_loop(listener, upstream, rx));
            map.insert((from, to), Link { listen, state: tx });
        }
        Ok(Proxy { links: map, tasks })
    }

    /// The address `from` dials to reach `to`.
    pub fn addr(&self, from: &str, to: &str) -> Option<SocketAddr> {
        self.links
            .get(&(from.to_string(), to.to_string()))
            .map(|l| l.listen)
    }

    /// Every link, in a fixed order.
    pub fn links(&self) -> impl Iterator<Item = (&str, &str)> {
        self.links.keys().map(|(a, b)| (a.as_str(), b.as_str()))
    }

    pub fn state(&self, from: &str, to: &str) -> Option<LinkState> {
        self.link(from, to).map(|l| *l.state.borrow())
    }

    fn link(&self, from: &str, to: &str) -> Option<&Link> {
        self.links.get(&(from.to_string(), to.to_string()))
    }

    fn modify(&self, from: &str, to: &str, f: impl FnOnce(&mut LinkState)) {
        if let Some(l) = self.link(from, to) {
            l.state.send_modify(f);
        }
    }

    /// Drop (blackhole) all traffic from `from` to `to`, in both connection directions that
    /// carry it. Traffic from `to` to `from` is untouched.
    pub fn drop_traffic(&self, from: &str, to: &str) {
        self.modify(from, to, |s| s.forward = Flow::Blackhole);
        self.modify(to, from, |s| s.back = Flow::Blackhole);
    }

    /// Drop traffic both ways between `a` and `b`.
    pub fn cut(&self, a: &str, b: &str) {
        self.drop_traffic(a, b);
        self.drop_traffic(b, a);
    }

    /// Add latency to the connections `from` opens to `to`.
    pub fn delay(&self, from: &str, to: &str, delay: Duration) {
        self.modify(from, to, |s| s.delay = delay);
    }

    /// Reset every open connection of link `from→to`.
    pub fn reset(&self, from: &str, to: &str) {
        self.modify(from, to, |s| s.reset_gen += 1);
    }

    /// Heal every link: traffic passes, no delay. Connections that held bytes are reset.
    pub fn heal_all(&self) {
        for l in self.links.values() {
            l.state.send_modify(|s| {
                s.forward = Flow::Pass;
                s.back = Flow::Pass;
                s.delay = Duration::ZERO;
            });
        }
    }

    /// Close every listener and connection now.
    pub fn shutdown(&mut self) {
        self.tasks.abort_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    state: watch::Receiver<LinkState>,
) {
    // Connections live in their own set so aborting this loop (Proxy drop) aborts them too.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((down, _)) = accepted else { continue };
                conns.spawn(serve(down, upstream, state.clone()));
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve(down: TcpStream, upstream: SocketAddr, state: watch::Receiver<LinkState>) {
    let _ = down.set_nodelay(true);
    let gen0 = state.borrow().reset_gen;
    // Connect upstream eagerly: the target's own refusal (a killed node) should show as a
    // closed connection, as it would without the proxy.
    let up = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(_) => {
            rst(down);
            return;
        }
    };
    let _ = up.set_nodelay(true);
    let (dr, dw) = down.into_split();
    let (ur, uw) = up.into_split();
    // When one direction decides to reset, the other must stop too, or it would wait forever
    // on a response that is never coming.
    let (abort_tx, abort_rx) = watch::channel(false);
    let abort_tx = Arc::new(abort_tx);
    let forward = pump(
        dr,
        uw,
        state.clone(),
        abort_tx.clone(),
        abort_rx.clone(),
        gen0,
        true,
    );
    let back = pump(ur, dw, state, abort_tx, abort_rx, gen0, false);
    let (a, b) = tokio::join!(forward, back);
    if a.reset || b.reset {
        // Reunite the halves and close with RST on both sides, so each end sees a reset
        // rather than a clean close.
        if let Ok(s) = a.reader.reunite(b.writer) {
            rst(s);
        }
        if let Ok(s) = b.reader.reunite(a.writer) {
            rst(s);
        }
    }
}

/// Close with RST. `set_linger` is deprecated because a non-zero linger blocks the thread on
/// drop; a zero linger never blocks, it just discards and resets.
#[allow(deprecated)]
pub(crate) fn rst(s: TcpStream) {
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

struct PumpEnd {
    reset: bool,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
}

/// Copy one direction until EOF, error or reset. Returns the halves (for an RST) and whether a
/// reset was the reason it ended.
async fn pump(
    mut r: OwnedReadHalf,
    mut w: OwnedWriteHalf,
    mut state: watch::Receiver<LinkState>,
    abort_tx: Arc<watch::Sender<bool>>,
    mut abort: watch::Receiver<bool>,
    gen0: u64,
    forward: bool,
) -> PumpEnd {
    let flow_of = |s: &LinkState| if forward { s.forward } else { s.back };
    let mut buf = vec![0u8; 32 * 1024];
    let mut reset = false;
    // What ends the pump besides EOF — a reset of the link or of the other direction — as one
    // future made once and polled beside every read, on clones of the receivers: building the
    // `changed()` futures afresh for each chunk registered and dropped two waiters per chunk.
    let (mut watch_state, mut watch_abort) = (state.clone(), abort.clone());
    let ended = async move {
        let reset_seen = async {
            loop {
                if watch_state.changed().await.is_err() || watch_state.borrow().reset_gen != gen0 {
                    return;
                }
            }
        };
        tokio::select! {
            _ = reset_seen => {}
            _ = watch_abort.changed() => {}
        }
    };
    tokio::pin!(ended);
    'outer: loop {
        let n = tokio::select! {
            biased;
            res = r.read(&mut buf) => match res {
                Ok(0) | Err(_) => {
                    let _ = w.shutdown().await;
                    break 'outer;
                }
                Ok(n) => n,
            },
            _ = &mut ended => { reset = true; break 'outer; }
        };
        let mut held = false;
        loop {
            let s = *state.borrow_and_update();
            if s.reset_gen != gen0 {
                reset = true;
                break 'outer;
            }
            if flow_of(&s) == Flow::Pass {
                break;
            }
            held = true;
            tokio::select! {
                changed = state.changed() => if changed.is_err() { reset = true; break 'outer; },
                _ = abort.changed() => { reset = true; break 'outer; }
            }
        }
        if held {
            // The link healed while we held bytes: reset instead of replaying a stale request.
            reset = true;
            break;
        }
        let delay = state.borrow().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if reset {
        let _ = abort_tx.send(true);
    }
    PumpEnd {
        reset,
        reader: r,
        writer: w,
    }
}

/// A shared handle, so the nemesis and the backend can both reach the proxy.
pub type SharedProxy = Arc<std::sync::Mutex<Proxy>>;
