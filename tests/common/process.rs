//! The real binary for end-to-end tests: `ssogate` commands on a data directory, and a running
//! `ssogate serve` stopped when dropped.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub fn ssogate() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ssogate"))
}

/// Runs an ssogate CLI command on `data`; panics with its stderr when it fails.
pub fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(ssogate())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("ssogate runs");
    assert!(
        out.status.success(),
        "ssogate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// `ssogate serve` on `127.0.0.1:port` with its data in `data`, its output in `log`; killed when
/// dropped, whatever the test's outcome.
pub struct Server {
    child: Child,
    pub log: PathBuf,
}

impl Server {
    pub fn start(data: &Path, port: u16, log: &Path) -> Server {
        Server::start_with(data, port, log, None)
    }

    /// As [`Server::start`], with a configuration file.
    pub fn start_with(data: &Path, port: u16, log: &Path, config: Option<&Path>) -> Server {
        let file = std::fs::File::create(log).expect("server log");
        let mut cmd = Command::new(ssogate());
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let child = cmd
            .env("SSOGATE_LOG", "info")
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .expect("ssogate serve starts");
        let server = Server {
            child,
            log: log.to_path_buf(),
        };
        assert!(
            wait_for_port(port, Duration::from_secs(20)),
            "ssogate did not listen on {port}"
        );
        server
    }

    /// The process ID (to kill or pause it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB (Linux), or 0.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// What the server printed and logged so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the output.
    pub fn tail(&self, n: usize) -> String {
        let out = self.output();
        let lines: Vec<&str> = out.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
