//! Link faults the kernel's firewall cannot make: delay and reset, per directed link, inside
//! the namespaces (`--nemesis slow,flaky` on `--backend netns`).
//!
//! nftables can drop packets but not hold them (this kernel has no `netem`), so the delay is
//! done in user space, netem-like but per connection: each namespace gets one listener of
//! ours on [`LINK_PORT`], created inside that namespace, and a `nat` rule redirects every TCP
//! connection the member opens to another member's address there. The accepted connection's
//! original destination (`SO_ORIGINAL_DST`) says which member it was for; the upstream
//! connection is opened from the same namespace, so the member's address is still the source
//! its peer sees and the namespace's drop rules still cut it, and it carries a socket mark
//! that the `nat` rule skips, so it is not redirected again.
//!
//! A link `a→b` is the connections `a` opens to `b`, as for the local backend's proxy: its
//! delay holds both directions of those connections (`a`'s requests and `b`'s answers to
//! them). Unlike that proxy, chunks are delayed in a pipeline — each is due `delay` after it
//! was read, and a later chunk never overtakes an earlier one — as netem delays packets, so a
//! busy multiplexed connection is late, not throttled. Resetting a link closes its open
//! connections with RST on both ends.
//!
//! Nothing here outlives the cluster: the listeners live in namespaces the cluster deletes,
//! and dropping [`Links`] aborts every task.

use crate::proxy::{rst, LinkState};
use nix::sched::CloneFlags;
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType};
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Where the redirected connections land, in every namespace (members use 7000 and up).
pub const LINK_PORT: u16 = 7900;
/// The mark on our upstream sockets, which the redirect rule leaves alone.
pub const MARK: u32 = 0x7172;

/// The `nat` chain that sends a member's connections to its peers through [`LINK_PORT`]:
/// every TCP connection to `subnet` except to the harness's own address.
pub fn redirect_rules(table: &str, chain: &str, subnet: u8, harness: Ipv4Addr) -> String {
    format!(
        "add chain inet {table} {chain} {{ type nat hook output priority -100; policy accept; }}\n\
         add rule inet {table} {chain} meta mark != {MARK:#x} ip daddr 169.254.{subnet}.0/24 \
         ip daddr != {harness} meta l4proto tcp redirect to :{LINK_PORT} \
         comment \"quorate link faults\"\n"
    )
}

/// One namespace's member: its id, its namespace and its address.
pub struct Member<'a> {
    pub id: &'a str,
    pub ns: &'a File,
    pub ip: Ipv4Addr,
}

/// The running link proxies of one cluster.
pub struct Links {
    states: BTreeMap<(String, String), watch::Sender<LinkState>>,
    tasks: JoinSet<()>,
}

impl Links {
    /// A listener in every member's namespace. Call from inside the tokio runtime.
    pub fn start(members: &[Member]) -> io::Result<Links> {
        let mut states = BTreeMap::new();
        for a in members {
            for b in members {
                if a.id != b.id {
                    let (tx, _) = watch::channel(LinkState::default());
                    states.insert((a.id.to_string(), b.id.to_string()), tx);
                }
            }
        }
        let mut tasks = JoinSet::new();
        for m in members {
            let ns = Arc::new(m.ns.try_clone()?);
            let std_listener = in_namespace(&ns, || {
                let l = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, LINK_PORT))?;
                l.set_nonblocking(true)?;
                Ok(l)
            })?;
            let listener = TcpListener::from_std(std_listener)?;
            let dial: Dial = Arc::new(move || marked_socket(&ns));
            // Where each original destination address leads: the peer's id and its link state.
            let peers: BTreeMap<Ipv4Addr, watch::Receiver<LinkState>> = members
                .iter()
                .filter(|p| p.id != m.id)
                .map(|p| {
                    (
                        p.ip,
                        states[&(m.id.to_string(), p.id.to_string())].subscribe(),
                    )
                })
                .collect();
            tasks.spawn(accept_loop(listener, dial, peers));
        }
        Ok(Links { states, tasks })
    }

    fn modify(&self, from: &str, to: &str, f: impl FnOnce(&mut LinkState)) -> bool {
        match self.states.get(&(from.to_string(), to.to_string())) {
            Some(s) => {
                s.send_modify(f);
                true
            }
            None => false,
        }
    }

    /// Delay the connections `from` opens to `to`; false if there is no such link.
    pub fn delay(&self, from: &str, to: &str, delay: Duration) -> bool {
        self.modify(from, to, |s| s.delay = delay)
    }

    /// Reset every open connection `from` opened to `to`; false if there is no such link.
    pub fn reset(&self, from: &str, to: &str) -> bool {
        self.modify(from, to, |s| s.reset_gen += 1)
    }

    /// Every link back to no delay.
    pub fn heal_all(&self) {
        for s in self.states.values() {
            s.send_modify(|s| s.delay = Duration::ZERO);
        }
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Run `f` on a fresh thread that has entered the namespace `ns`: sockets made there belong
/// to it. (Never on a pooled thread: it would stay in the namespace.)
fn in_namespace<T: Send + 'static>(
    ns: &Arc<File>,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let ns = ns.clone();
    std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("netns link thread panicked"))?
}

/// How a link proxy opens its upstream sockets: unconnected and marked with [`MARK`] (in the
/// member's namespace on `netns`; on the host itself for `--backend ssh`'s `link-proxy`).
pub(crate) type Dial = Arc<dyn Fn() -> io::Result<TcpSocket> + Send + Sync>;

/// A TCP socket of this process's own network namespace, marked so the redirect skips it.
pub(crate) fn marked_here() -> io::Result<TcpSocket> {
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::Mark, &MARK)?;
    Ok(TcpSocket::from_std_stream(std::net::TcpStream::from(fd)))
}

/// A TCP socket of `ns`, not yet connected, marked so the redirect skips it.
fn marked_socket(ns: &Arc<File>) -> io::Result<TcpSocket> {
    let fd: OwnedFd = in_namespace(ns, || {
        let fd = socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        socket::setsockopt(&fd, sockopt::Mark, &MARK)?;
        Ok(fd)
    })?;
    Ok(TcpSocket::from_std_stream(std::net::TcpStream::from(fd)))
}

/// Accept redirected connections and serve each through the link of its original
/// destination (`peers`, by address).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    dial: Dial,
    peers: BTreeMap<Ipv4Addr, watch::Receiver<LinkState>>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((down, _)) = accepted else { continue };
                let Ok(dst) = original_dst(&down) else { continue };
                // A connection to the member itself or to an address that is no member's
                // passes undelayed.
                let state = peers.get(dst.ip()).cloned();
                conns.spawn(serve(down, SocketAddr::V4(dst), dial.clone(), state));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Where a redirected connection was going.
pub(crate) fn original_dst(s: &TcpStream) -> io::Result<SocketAddrV4> {
    // SAFETY: `s` owns the fd and outlives this call.
    let fd = unsafe { BorrowedFd::borrow_raw(s.as_raw_fd()) };
    let a = socket::getsockopt(&fd, sockopt::OriginalDst)?;
    let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
    Ok(SocketAddrV4::new(ip, u16::from_be(a.sin_port)))
}

/// Serve one redirected connection to `dst` through its link `state` (none: undelayed).
pub(crate) async fn serve(
    mut down: TcpStream,
    dst: SocketAddr,
    dial: Dial,
    state: Option<watch::Receiver<LinkState>>,
) {
    // No link (a connection to the member itself): a state no one changes. Its sender lives
    // as long as the connection, or the closed channel would read as a reset at once.
    let (_idle, idle_state) = watch::channel(LinkState::default());
    let state = state.unwrap_or(idle_state);
    let gen0 = state.borrow().reset_gen;
    let up = match tokio::task::spawn_blocking(move || dial()).await {
        Ok(Ok(sock)) => sock.connect(dst).await,
        Ok(Err(e)) => Err(e),
        Err(e) => Err(io::Error::other(e)),
    };
    let Ok(mut up) = up else {
        // The peer refused (killed) or the connect failed: the member sees its connection
        // reset, as it would have without us.
        rst(down);
        return;
    };
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let reset = {
        // Borrowed halves: unlike owned ones they send no FIN when dropped, so a reset can
        // still close both sockets with an RST below.
        let (dr, dw) = down.split();
        let (ur, uw) = up.split();
        tokio::select! {
            _ = async { tokio::join!(pipe(dr, uw, state.clone()), pipe(ur, dw, state.clone())) } => false,
            _ = reset_seen(state.clone(), gen0) => true,
        }
    };
    if reset {
        rst(down);
        rst(up);
    }
}

/// Resolves when the link's reset generation moves past `gen0` (or the link is gone).
async fn reset_seen(mut state: watch::Receiver<LinkState>, gen0: u64) {
    loop {
        if state.borrow_and_update().reset_gen != gen0 {
            return;
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// Copy one direction, each chunk written `delay` after it was read (the delay in force when
/// it was read), never before an earlier chunk.
async fn pipe(
    mut r: impl AsyncRead + Unpin,
    mut w: impl AsyncWrite + Unpin,
    state: watch::Receiver<LinkState>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut last_due = Instant::now();
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let due = (Instant::now() + state.borrow().delay).max(last_due);
                    last_due = due;
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        let mut pending: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
        while let Some(item) = rx.recv().await {
            pending.push_back(item);
            while let Ok(more) = rx.try_recv() {
                pending.push_back(more);
            }
            while let Some((due, bytes)) = pending.pop_front() {
                tokio::time::sleep_until(due).await;
                if w.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
        let _ = w.shutdown().await;
    };
    tokio::join!(reader, writer);
}
