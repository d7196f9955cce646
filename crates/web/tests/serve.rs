//! `chime_web::serve_with` on a real socket: clients cannot hold it open.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chime_core::Scheduler;
use chime_web::ServeOptions;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(options: ServeOptions) -> Server {
    let app = chime_web::router(chime_web::Handle::new(Scheduler::builder().node_id("serve-test").build()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(chime_web::serve_with(listener, app, options, async move {
        let _ = stopped.await;
    }));
    Server { addr, stop: Some(stop), task }
}

fn quick() -> ServeOptions {
    ServeOptions {
        header_read_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(800),
        idle_timeout: Duration::from_secs(5),
        max_connections: 4,
        busy_idle_timeout: Duration::from_millis(400),
        shutdown_timeout: Duration::from_secs(2),
    }
}

/// Reads until the server closes the connection (or `limit` passes: a panic).
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut out))
        .await
        .unwrap_or_else(|_| panic!("the server kept the connection open past {limit:?}"))
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

fn get(path: &str, close: bool) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n", if close { "Connection: close\r\n" } else { "" })
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed() {
    let server = start(quick()).await;
    // Connected, never a byte.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    // Half a request line, then silence (slowloris).
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await.unwrap();
    let start = Instant::now();
    read_to_close(&mut idle, Duration::from_secs(3)).await;
    read_to_close(&mut slow, Duration::from_secs(3)).await;
    assert!(start.elapsed() >= Duration::from_millis(400), "closed by the timeout, not at once");

    // A keep-alive connection serves several requests, then is closed when idle.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    for _ in 0..2 {
        kept.write_all(get("/api/v1/openapi.json", false).as_bytes()).await.unwrap();
        let mut buf = [0u8; 64];
        let n = kept.read(&mut buf).await.unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        // Drain the rest of this answer.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut rest = vec![0u8; 1 << 16];
        let _ = tokio::time::timeout(Duration::from_millis(50), kept.read(&mut rest)).await;
    }
    read_to_close(&mut kept, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_gets_408() {
    let server = start(quick()).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\"",
    )
    .await
    .unwrap();
    let answer = read_to_close(&mut s, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
}

#[tokio::test]
async fn a_connection_on_which_nothing_moves_is_closed() {
    // The idle timeout below the request timeout: a stalled body upload is
    // cut by the former, without an answer.
    let server = start(ServeOptions {
        idle_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(30),
        header_read_timeout: Duration::from_secs(30),
        ..quick()
    })
    .await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let start = Instant::now();
    let answer = read_to_close(&mut s, Duration::from_secs(3)).await;
    assert!(answer.is_empty(), "{answer}");
    assert!(start.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn past_the_connection_limit_clients_wait_and_are_then_served() {
    let server = start(ServeOptions { max_connections: 2, ..quick() }).await;
    // Idle sockets far beyond the limit: each holds a slot only until the
    // header-read timeout closes it.
    let mut hogs = Vec::new();
    for _ in 0..6 {
        hogs.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(get("/api/v1/openapi.json", true).as_bytes()).await.unwrap();
    let answer = read_to_close(&mut s, Duration::from_secs(15)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(300), "it waited for a slot: {waited:?}");
    drop(hogs);
}

#[tokio::test]
async fn silent_sockets_holding_every_slot_give_them_back_fast_when_others_wait() {
    // A header-read timeout far longer than the test: only shedding under
    // pressure can free the slots.
    let long = Duration::from_secs(60);
    let options = ServeOptions { header_read_timeout: long, idle_timeout: long, max_connections: 4, ..quick() };
    let server = start(options).await;
    let mut hogs = Vec::new();
    for _ in 0..12 {
        hogs.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(get("/api/v1/openapi.json", true).as_bytes()).await.unwrap();
    let answer = read_to_close(&mut s, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "served while 12 silent sockets wanted 4 slots: {answer}");
    // Without the pressure a silent socket keeps its slot (nobody waits).
    drop(hogs);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut quiet = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    quiet.write_all(get("/api/v1/openapi.json", true).as_bytes()).await.unwrap();
    let answer = read_to_close(&mut quiet, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "a slow but lone client is still served: {answer}");
}

#[tokio::test]
async fn shutdown_returns_with_connections_open() {
    let mut server = start(ServeOptions { header_read_timeout: Duration::from_secs(30), ..quick() }).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(get("/api/v1/openapi.json", false).as_bytes()).await.unwrap();
    let mut buf = [0u8; 16];
    kept.read_exact(&mut buf).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(3), &mut server.task).await.expect("serve returned").unwrap().unwrap();
    assert!(start.elapsed() < Duration::from_secs(2), "idle connections do not hold up shutdown");
    read_to_close(&mut idle, Duration::from_secs(1)).await;
    assert!(TcpStream::connect(server.addr).await.is_err(), "no longer listening");
}
