//! Connection floods against a running `ssogate serve` on loopback (other clients are other
//! loopback addresses, 127.0.0.2 and up): one client's idle connections stop at its cap and leave
//! others served; a trickled header and an idle kept-alive connection are closed on time; a
//! flood beyond the process's open-files limit leaves the server answering; a slow body ends in
//! 408. Bounded in count and time; the limits are set small through the environment.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn ssogate() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ssogate"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ssogate serve` with the given `SSOGATE_*` settings, under `ulimit -n nofile` when given.
fn serve(data: &Path, env: &[(&str, &str)], nofile: Option<u32>) -> Server {
    let port = free_port();
    let mut cmd = match nofile {
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(ssogate());
            c
        }
        None => Command::new(ssogate()),
    };
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data)
    .env("SSOGATE_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("serve starts");
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the server did not come up"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    Server { child, port }
}

async fn connect_from(from: &str, port: u16) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from.parse::<IpAddr>().expect("ip"), 0))?;
    s.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// `GET path` on a fresh connection from `from`; the status, within `within`.
async fn get_status(from: &str, port: u16, path: &str, within: Duration) -> Option<u16> {
    let f = async {
        let mut s = connect_from(from, port).await.ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        text.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(within, f).await.ok().flatten()
}

/// Whether the server closes `s` within `within` (reads until EOF, discarding what comes).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let t = Instant::now();
    loop {
        let left = within.saturating_sub(t.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_clients_idle_connections_stop_at_its_cap_and_others_are_served() {
    let dir = common::scratch_dir("hostile_conn_cap");
    let srv = serve(
        &dir,
        &[
            ("SSOGATE_MAX_CONNECTIONS_PER_CLIENT", "40"),
            ("SSOGATE_HEADER_READ_TIMEOUT_SECS", "20"),
        ],
        None,
    );
    let port = srv.port;
    // 200 idle connections from one client: the first 40 are held, the rest closed at once.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        let mut s = connect_from("127.0.0.1", port).await.expect("connect");
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
            Ok(Ok(n)) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(n == 0 || text.starts_with("HTTP/1.1 503"), "{text}");
                refused += 1;
            }
            Ok(Err(_)) => refused += 1,
            Err(_) => held.push(s),
        }
        if held.len() > 40 {
            break;
        }
    }
    assert_eq!(held.len(), 40, "the client's cap");
    assert!(refused >= 1);
    // Another client is served at once, again and again.
    for i in 0..20 {
        let from = format!("127.0.0.{}", 2 + i % 5);
        let status = get_status(&from, port, "/auth/check", Duration::from_secs(2)).await;
        assert_eq!(status, Some(401), "client {from}");
    }
    // Closing the held ones frees the client's places.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        get_status("127.0.0.1", port, "/auth/check", Duration::from_secs(2)).await,
        Some(401)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_idle_connections_and_slow_bodies_are_cut_off() {
    let dir = common::scratch_dir("hostile_conn_timeouts");
    let srv = serve(
        &dir,
        &[
            ("SSOGATE_HEADER_READ_TIMEOUT_SECS", "1"),
            ("SSOGATE_REQUEST_TIMEOUT_SECS", "2"),
            ("SSOGATE_IDLE_TIMEOUT_SECS", "30"),
        ],
        None,
    );
    let port = srv.port;
    // A header line every 300 ms, never ending: closed after about a second.
    let mut s = connect_from("127.0.0.2", port).await.expect("connect");
    s.write_all(b"GET /auth/check HTTP/1.1\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let trickle = async {
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if s.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(6), trickle)
        .await
        .ok();
    assert!(closed_within(&mut s, Duration::from_secs(1)).await);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the trickling connection stayed {:?}",
        started.elapsed()
    );
    // A kept-alive connection after its answer: closed once idle for the header timeout.
    let mut s = connect_from("127.0.0.3", port).await.expect("connect");
    s.write_all(format!("GET /auth/check HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401"));
    assert!(
        closed_within(&mut s, Duration::from_secs(4)).await,
        "idle kept-alive connection"
    );
    // A body that trickles: the request ends in 408 after the request timeout.
    let mut s = connect_from("127.0.0.4", port).await.expect("connect");
    s.write_all(
        format!(
            "POST /saml/acs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nSAMLResponse="
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let t = Instant::now();
    let mut got = Vec::new();
    let body = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(b"A").await.is_err() {
                break;
            }
            let mut b = [0u8; 512];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await
            {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&b[..n]);
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(8), body)
        .await
        .ok();
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 408"),
        "{text:?} after {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_the_open_files_limit_leaves_the_server_answering() {
    let dir = common::scratch_dir("hostile_conn_nofile");
    // 256 open files for the whole process; clients from ten addresses try 600 connections.
    let srv = serve(
        &dir,
        &[
            ("SSOGATE_MAX_CONNECTIONS", "100000"),
            ("SSOGATE_MAX_CONNECTIONS_PER_CLIENT", "100000"),
            ("SSOGATE_HEADER_READ_TIMEOUT_SECS", "20"),
        ],
        Some(256),
    );
    let port = srv.port;
    let mut held = Vec::new();
    for i in 0..600 {
        let from = format!("127.0.1.{}", 1 + i % 10);
        if let Ok(s) = connect_from(&from, port).await {
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // While the flood is held, new clients are refused or served, never left hanging forever,
    // and the process is alive.
    let during = get_status("127.0.0.9", port, "/auth/check", Duration::from_secs(3)).await;
    assert!(matches!(during, None | Some(401) | Some(503)), "{during:?}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Once it is gone, everyone is served again.
    for _ in 0..10 {
        assert_eq!(
            get_status("127.0.0.8", port, "/auth/check", Duration::from_secs(3)).await,
            Some(401)
        );
    }
    let mut srv = srv;
    assert!(
        srv.child.try_wait().expect("wait").is_none(),
        "the server is running"
    );
}
