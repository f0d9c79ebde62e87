//! Nothing is lost: `ssogate serve` is SIGKILLed while logins and admin changes are going on; after
//! a restart on the same data directory every committed change is there: each session whose login
//! was answered is still signed in, each admin command that said "done" is in the store, and an
//! assertion used before the kill is still refused as a replay.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::generate::{USER_ATTR, idp};
use common::http::{request, saml_form};

fn ssogate() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ssogate"))
}

fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(ssogate())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .expect("ssogate runs")
}

fn serve(data: &Path, port: u16) -> Child {
    let child = Command::new(ssogate())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .env("SSOGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let t = Instant::now();
    while request(port, "GET", "/auth/check", None, None).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the server did not come up"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    child
}

#[test]
fn sigkill_during_logins_and_admin_changes_loses_nothing_committed() {
    let dir = common::scratch_dir("durability");
    let data = dir.join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let sp = format!("http://127.0.0.1:{port}");
    let cert = dir.join("idp.crt");
    std::fs::write(&cert, &idp().cert_pem).expect("cert");
    for args in [
        vec!["sp", "add", "--host-url", &sp],
        vec![
            "idp",
            "add",
            "idp",
            "--entity-id",
            common::generate::IDP,
            "--sso-url",
            "https://idp.example.test/sso",
            "--username-claim",
            USER_ATTR,
            "--cert",
            cert.to_str().expect("utf-8"),
        ],
        vec![
            "tenant",
            "set",
            "default",
            "--sso",
            "on",
            "--idp",
            "idp",
            "--idp-initiated",
            "on",
            // The IdP asserts EXAMPLE\agentN: its domain must be the tenant's.
            "--login-domain",
            "example",
        ],
        vec!["user", "add", "agent0"],
    ] {
        let o = cli(&data, &args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    let mut server = serve(&data, port);
    let stop = Arc::new(AtomicBool::new(false));
    // (session cookie, assertion form) of every login the server answered with a session.
    let sessions: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..2 {
        let (stop, sessions, sp) = (stop.clone(), sessions.clone(), sp.clone());
        workers.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let form = saml_form(&common::generate::signed_now(
                    "agent0",
                    &format!("_w{w}-{i}"),
                    &sp,
                ));
                match request(port, "POST", "/saml/acs", None, Some(&form)) {
                    Ok(a) if a.status == 303 => {
                        let c = a
                            .cookie("ssogate_session")
                            .expect("a session cookie with the 303");
                        sessions.lock().expect("lock").push((c, form));
                    }
                    Ok(a) => panic!(
                        "login refused while the server was up: {} {}",
                        a.status, a.body
                    ),
                    Err(_) => break, // killed
                }
            }
        }));
    }
    // Admin changes through the CLI while the logins run; record what it reported as done.
    let mut added = Vec::new();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        n += 1;
        let name = format!("user{n}");
        if cli(
            &data,
            &["user", "add", &name, "--display-name", &format!("User {n}")],
        )
        .status
        .success()
        {
            added.push(name);
        }
    }
    // SIGKILL (std's Child::kill sends SIGKILL on Unix): no shutdown, no flush.
    server.kill().expect("kill");
    server.wait().expect("reaped");
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("worker");
    }
    // One more admin change racing nothing: the store must be writable by the CLI right away.
    assert!(cli(&data, &["user", "add", "after-kill"]).status.success());
    added.push("after-kill".into());

    let sessions = sessions.lock().expect("lock").clone();
    assert!(
        sessions.len() >= 20,
        "too few logins before the kill to prove anything: {}",
        sessions.len()
    );
    assert!(added.len() >= 3, "too few admin changes: {}", added.len());

    let mut server = serve(&data, port);
    let users = String::from_utf8(cli(&data, &["user", "list"]).stdout).expect("utf-8");
    for name in &added {
        assert!(
            users
                .lines()
                .any(|l| l.split('\t').nth(1) == Some(name.as_str())),
            "user {name} was reported added but is gone:\n{users}"
        );
    }
    for (cookie, _) in &sessions {
        let a = request(port, "GET", "/auth/check", Some(cookie), None).expect("server up");
        assert_eq!(a.status, 200, "a committed session was lost: {cookie}");
        assert_eq!(a.header("x-auth-user"), Some("agent0"));
    }
    // The replay cache survived too.
    let (_, form) = &sessions[sessions.len() / 2];
    let a = request(port, "POST", "/saml/acs", None, Some(form)).expect("server up");
    assert_eq!(
        a.status, 403,
        "an assertion used before the kill was accepted again"
    );
    let failures =
        String::from_utf8(cli(&data, &["failures", "--limit", "1"]).stdout).expect("utf-8");
    assert!(failures.contains("\treplayed\t"), "{failures}");
    println!(
        "{} logins and {} admin changes committed before SIGKILL; all present after restart",
        sessions.len(),
        added.len()
    );
    server.kill().expect("kill");
    let _ = server.wait();
}
