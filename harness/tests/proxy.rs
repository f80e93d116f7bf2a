//! The fault proxy on real loopback sockets: pass, blackhole (hangs, not refused), one-way,
//! delay, reset, heal.

use quorate::proxy::Proxy;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server that counts the bytes it received.
async fn echo() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut c, _) = l.accept().await.unwrap();
            let seen = s2.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match c.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            seen.fetch_add(n, Ordering::SeqCst);
                            if c.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// Send `msg` and wait up to `wait` for the echo. `Ok(None)` = timed out (hung).
async fn roundtrip(
    c: &mut TcpStream,
    msg: &[u8],
    wait: Duration,
) -> std::io::Result<Option<Vec<u8>>> {
    c.write_all(msg).await?;
    let mut buf = vec![0u8; msg.len()];
    match tokio::time::timeout(wait, c.read_exact(&mut buf)).await {
        Err(_) => Ok(None),
        Ok(Ok(_)) => Ok(Some(buf)),
        Ok(Err(e)) => Err(e),
    }
}

async fn two_way() -> (Proxy, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    // "b" is served by echo server B, "a" by echo server A.
    let (a_addr, a_seen) = echo().await;
    let (b_addr, b_seen) = echo().await;
    let p = Proxy::start(vec![
        ("a".into(), "b".into(), b_addr),
        ("b".into(), "a".into(), a_addr),
    ])
    .await
    .unwrap();
    (p, a_seen, b_seen)
}

const WAIT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn passes_bytes_both_ways() {
    let (p, _, b_seen) = two_way().await;
    let mut c = TcpStream::connect(p.addr("a", "b").unwrap()).await.unwrap();
    assert_eq!(
        roundtrip(&mut c, b"hello", WAIT).await.unwrap().unwrap(),
        b"hello"
    );
    assert_eq!(b_seen.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn blackhole_hangs_instead_of_refusing_and_heal_resets() {
    let (p, _, b_seen) = two_way().await;
    p.drop_traffic("a", "b");
    p.drop_traffic("b", "a");
    // The connection is accepted (no refusal) ...
    let mut c = TcpStream::connect(p.addr("a", "b").unwrap()).await.unwrap();
    // ... but the request hangs: nothing reaches the server.
    assert!(roundtrip(&mut c, b"lost", WAIT).await.unwrap().is_none());
    assert_eq!(b_seen.load(Ordering::SeqCst), 0);
    p.heal_all();
    // The held connection is reset rather than replaying a stale request.
    let mut buf = [0u8; 4];
    let r = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "held connection should be closed: {r:?}"
    );
    assert_eq!(b_seen.load(Ordering::SeqCst), 0);
    // New connections pass again.
    let mut c = TcpStream::connect(p.addr("a", "b").unwrap()).await.unwrap();
    assert_eq!(
        roundtrip(&mut c, b"back", WAIT).await.unwrap().unwrap(),
        b"back"
    );
}

#[tokio::test]
async fn one_way_cut_drops_only_one_direction_of_traffic() {
    let (p, a_seen, b_seen) = two_way().await;
    // a cannot send to b; b can still send to a.
    p.drop_traffic("a", "b");
    // a's requests to b never arrive.
    let mut ab = TcpStream::connect(p.addr("a", "b").unwrap()).await.unwrap();
    assert!(roundtrip(&mut ab, b"x", WAIT).await.unwrap().is_none());
    assert_eq!(b_seen.load(Ordering::SeqCst), 0);
    // b's requests reach a, but a's answers (traffic a→b) are dropped.
    let mut ba = TcpStream::connect(p.addr("b", "a").unwrap()).await.unwrap();
    assert!(roundtrip(&mut ba, b"yz", WAIT).await.unwrap().is_none());
    assert_eq!(a_seen.load(Ordering::SeqCst), 2);
    p.heal_all();
    let mut ab = TcpStream::connect(p.addr("a", "b").unwrap()).await.unwrap();
    assert_eq!(
        roundtrip(&mut ab, b"ok", WAIT).await.unwrap().unwrap(),
        b"ok"
    );
}

#[tokio::test]
async fn delay_adds_latency() {
    let (p, _, _) = two_way().await;
    p.delay("a", "b", Duration::from_millis(100));
    let mut c = TcpStream::connect(p.addr("a", "b").unwrap()).await.unwrap();
    let t = Instant::now();
    assert!(roundtrip(&mut c, b"slow", Duration::from_secs(2))
        .await
        .unwrap()
        .is_some());
    // One delay each way.
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn reset_kills_open_connections() {
    let (p, _, _) = two_way().await;
    let mut c = TcpStream::connect(p.addr("a", "b").unwrap()).await.unwrap();
    assert!(roundtrip(&mut c, b"1", WAIT).await.unwrap().is_some());
    p.reset("a", "b");
    let mut buf = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
}
