//! Load test of Circuit sign-on: `ssogate serve` (release build) and the real OAuth server of the
//! tests (`tests/oauth-server/`: oidc-provider over https on loopback, `npm ci` there first), set
//! up through the CLI.
//!
//! ```sh
//! cargo build --release && cargo run --release --example circuit_load -- --rate 100 --seconds 60
//! cargo run --release --example circuit_load -- --stall 500 --saml-rate 1000 --stall-seconds 20
//! ```
//!
//! Logins (default): `--agents` agents each signed in at the provider once (its login and consent
//! pages, not measured), then logins at `--rate` per second for `--seconds` (open loop, latency
//! from each login's scheduled start): "Sign in with Circuit", the provider's authorization (the
//! agent's provider session answers at once), the callback (token and profile calls). ssogate's
//! own time in the callback is its `Server-Timing` total minus the two provider calls. The
//! provider counts the TCP connections it accepted from ssogate (the agents connect from
//! 127.0.0.2).
//!
//! Stall (`--stall N`): N sign-ins started, the provider SIGSTOPped, N callbacks sent at once
//! while the SAML load example's open loop runs at `--saml-rate` on the same server; each
//! callback's answer time, the server's RSS, the SAML p99.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ssogate::saml::xmldsig::SigningKey;

#[path = "support/mod.rs"]
mod support;
#[path = "../tests/common/tls.rs"]
mod tls;

use support::{cli, percentile, rss_kib};

struct Args {
    rate: u64,
    seconds: u64,
    agents: usize,
    stall: usize,
    saml_rate: u64,
    stall_seconds: u64,
    max_in_flight: usize,
}

fn args() -> Args {
    let mut a = Args {
        rate: 100,
        seconds: 60,
        agents: 50,
        stall: 0,
        saml_rate: 1000,
        stall_seconds: 20,
        max_in_flight: 16,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let val = v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--rate" => a.rate = val.parse().expect("--rate N"),
            "--seconds" => a.seconds = val.parse().expect("--seconds N"),
            "--agents" => a.agents = val.parse().expect("--agents N"),
            "--stall" => a.stall = val.parse().expect("--stall N"),
            "--saml-rate" => a.saml_rate = val.parse().expect("--saml-rate N"),
            "--stall-seconds" => a.stall_seconds = val.parse().expect("--stall-seconds N"),
            "--max-in-flight" => a.max_in_flight = val.parse().expect("--max-in-flight N"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

/// The OAuth server (killed when dropped, resumed first if stopped).
struct Provider {
    child: Child,
    issuer: String,
    ca_file: PathBuf,
}

impl Provider {
    fn start(dir: &Path, callback: &str, agents: usize) -> Provider {
        let pki = tls::pki(dir);
        let port = support::free_port();
        let users: serde_json::Map<String, serde_json::Value> = (0..agents)
            .map(|i| {
                (
                    format!("c{i}"),
                    serde_json::json!({"email": format!("c{i}@load.example")}),
                )
            })
            .collect();
        let config = serde_json::json!({
            "port": port, "cert": pki.cert_file, "key": pki.key_file,
            "clients": [{"client_id": "load-app", "client_secret": "load-client-secret-1",
                         "redirect_uris": [callback], "pkce": false}],
            "users": users,
        });
        std::fs::write(dir.join("oauth.json"), config.to_string()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oauth-server/server.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .arg("--config")
            .arg(dir.join("oauth.json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node (npm ci in tests/oauth-server first)");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
        assert!(line.starts_with("READY"), "the OAuth server did not start");
        Provider {
            child,
            issuer: format!("https://localhost:{port}"),
            ca_file: pki.ca_file,
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's PID.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser of one agent: its cookies, the test CA, connecting from 127.0.0.2.
fn browser(ca: &Path) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .pool_max_idle_per_host(2)
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// One login; (ok, ssogate's own ms, the provider calls' ms).
async fn login(
    b: &reqwest::Client,
    base: &str,
    issuer: &str,
    first: bool,
    agent: usize,
) -> Result<(f64, f64), String> {
    let r = b
        .post(format!("{base}/oauth/circuit/start"))
        .form(&[("tenant", "acme"), ("target", "/")])
        .send()
        .await
        .map_err(|e| format!("start: {e}"))?;
    let mut next = location(&r).ok_or("start: no location")?;
    for _ in 0..8 {
        if next.starts_with(base) {
            break;
        }
        let url = if next.starts_with('/') {
            format!("{issuer}{next}")
        } else {
            next.clone()
        };
        let r = b
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("provider: {e}"))?;
        if let Some(l) = location(&r) {
            next = l;
            continue;
        }
        if !first {
            return Err(format!("the provider asked again ({})", r.status()));
        }
        // The first login of the agent: the provider's login and consent forms.
        let page = r.text().await.map_err(|e| e.to_string())?;
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|a| a.split('"').next())
            .ok_or("no form")?
            .replace("&amp;", "&");
        let action = if action.starts_with('/') {
            format!("{issuer}{action}")
        } else {
            action
        };
        let form: Vec<(&str, String)> = if page.contains("value=\"login\"") {
            vec![
                ("prompt", "login".into()),
                ("login", format!("c{agent}")),
                ("password", "x".into()),
            ]
        } else {
            vec![("prompt", "consent".into())]
        };
        let r = b
            .post(action)
            .form(&form)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        next = location(&r).ok_or("form: no location")?;
    }
    let r = b
        .get(&next)
        .send()
        .await
        .map_err(|e| format!("callback: {e}"))?;
    let status = r.status().as_u16();
    let timing = r
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if status != 303 || timing.is_empty() {
        let body = r.text().await.unwrap_or_default();
        return Err(format!(
            "callback answered {status}: {}",
            &body[..body.len().min(300)]
        ));
    }
    let dur = |name: &str| -> f64 {
        timing
            .split(',')
            .find(|p| p.trim().starts_with(name))
            .and_then(|p| p.split("dur=").nth(1))
            .and_then(|d| d.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let (provider, total) = (dur("provider"), dur("total"));
    Ok((total - provider, provider))
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

fn main() {
    let a = args();
    let bin = support::ssogate_bin();
    let dir = std::env::temp_dir().join(format!("ssogate-circuit-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("data");
    let port = support::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let provider = Provider::start(&dir, &format!("{base}/oauth/circuit/callback"), a.agents);

    cli(&bin, &data, &["sp", "add", "--host-url", &base]);
    cli(
        &bin,
        &data,
        &["tenant", "add", "acme", "--login-domain", "acme.example"],
    );
    for i in 0..a.agents {
        cli(
            &bin,
            &data,
            &[
                "user",
                "add",
                &format!("c{i}"),
                "--tenant",
                "acme",
                "--circuit-user",
                &format!("c{i}@load.example"),
            ],
        );
    }
    std::fs::write(dir.join("secret"), "load-client-secret-1\n").unwrap();
    cli(
        &bin,
        &data,
        &[
            "circuit",
            "set",
            "acme",
            "--enabled",
            "on",
            "--client-id",
            "load-app",
            "--client-secret-file",
            dir.join("secret").to_str().unwrap(),
            "--portal-url",
            &base,
            "--login-url",
            &provider.issuer,
        ],
    );
    // The SAML side for the stall run: the load IdP, IdP-initiated logins of agent0…49.
    let saml_key = (a.stall > 0).then(|| support::acs::load_idp(&bin, &data, &dir, "rsa"));
    let max_in_flight = a.max_in_flight.to_string();
    let ca = provider.ca_file.to_string_lossy().into_owned();
    let server = support::serve(
        &bin,
        &data,
        port,
        &[
            ("SSOGATE_OUTBOUND_CA_FILE", &ca),
            ("SSOGATE_OUTBOUND_ALLOW_PRIVATE", "true"),
            ("SSOGATE_OUTBOUND_MAX_IN_FLIGHT", &max_in_flight),
            ("SSOGATE_OAUTH_STARTS_PER_MINUTE", "1000000"),
            ("SSOGATE_OAUTH_STARTS_PER_MINUTE_TOTAL", "1000000"),
            // The stall run's callbacks and the SAML loop all come from 127.0.0.1.
            ("SSOGATE_MAX_CONNECTIONS_PER_CLIENT", "2048"),
        ],
    );
    let pid = server.0.id();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "ssogate {} on {base}; oidc-provider on {}; outbound_max_in_flight {}; RSS at start {} KiB",
        bin.display(),
        provider.issuer,
        a.max_in_flight,
        rss_kib(pid).0
    );

    if let Some(key) = saml_key {
        stall(&a, &rt, &base, port, pid, &provider, key);
    } else {
        logins(&a, &rt, &base, pid, &provider);
    }
    drop(server);
    drop(provider);
    let _ = std::fs::remove_dir_all(&dir);
}

fn logins(a: &Args, rt: &tokio::runtime::Runtime, base: &str, pid: u32, p: &Provider) {
    let agents: Arc<Vec<reqwest::Client>> =
        Arc::new((0..a.agents).map(|_| browser(&p.ca_file)).collect());
    // Each agent signs in at the provider once (login and consent), not measured.
    rt.block_on(async {
        for (i, b) in agents.iter().enumerate() {
            login(b, base, &p.issuer, true, i)
                .await
                .unwrap_or_else(|e| panic!("warm-up of agent c{i}: {e}"));
        }
    });
    let connections_before = provider_connections(&p.issuer, &p.ca_file);
    let total = a.rate * a.seconds;
    let cpu0 = support::cpu_secs(pid);
    let started = Instant::now();
    let results = rt.block_on(async {
        let start = tokio::time::Instant::now() + Duration::from_millis(50);
        let tasks: Vec<_> = (0..total)
            .map(|i| {
                let agents = agents.clone();
                let (base, issuer) = (base.to_string(), p.issuer.clone());
                let due = start + Duration::from_nanos(i * 1_000_000_000 / a.rate);
                tokio::spawn(async move {
                    tokio::time::sleep_until(due).await;
                    let agent = i as usize % agents.len();
                    let r = login(&agents[agent], &base, &issuer, false, agent).await;
                    (r, due.elapsed())
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let elapsed = started.elapsed();
    let cpu = support::cpu_secs(pid) - cpu0;
    let connections_after = provider_connections(&p.issuer, &p.ca_file);
    let mut own = Vec::new();
    let mut prov = Vec::new();
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    for (r, l) in results {
        lat.push(l.as_micros() as u64);
        match r {
            Ok((o, pr)) => {
                own.push((o * 1000.0) as u64);
                prov.push((pr * 1000.0) as u64);
            }
            Err(e) => errors.push(e),
        }
    }
    let (own, prov, lat) = (sorted(own), sorted(prov), sorted(lat));
    println!(
        "{} logins offered at {}/s over {:.1} s: {} signed in, {} errors{}",
        total,
        a.rate,
        elapsed.as_secs_f64(),
        own.len(),
        errors.len(),
        errors
            .first()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    println!(
        "  login (start, provider, callback) p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    println!(
        "  ssogate's own time in the callback p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; the provider's two calls p50 {:.1} ms, p99 {:.1} ms",
        percentile(&own, 0.5),
        percentile(&own, 0.99),
        percentile(&own, 1.0),
        percentile(&prov, 0.5),
        percentile(&prov, 0.99)
    );
    let opened = connections_after.saturating_sub(connections_before);
    println!(
        "  TCP connections ssogate opened to the provider during the run: {opened} (before it: {connections_before}; pool {}); server CPU {cpu:.1} s; RSS {} KiB",
        a.max_in_flight,
        rss_kib(pid).0
    );
    println!(
        "{}",
        serde_json::json!({"offered": total, "rate": a.rate, "ok": own.len(), "errors": errors.len(),
            "login_p50_ms": percentile(&lat, 0.5), "login_p99_ms": percentile(&lat, 0.99),
            "own_p50_ms": percentile(&own, 0.5), "own_p99_ms": percentile(&own, 0.99), "own_max_ms": percentile(&own, 1.0),
            "provider_p50_ms": percentile(&prov, 0.5), "provider_p99_ms": percentile(&prov, 0.99),
            "connections_opened": opened, "connections_before": connections_before, "pool": a.max_in_flight,
            "server_cpu_seconds": cpu})
    );
}

/// Connections the provider accepted from 127.0.0.1 (ssogate; the agents come from 127.0.0.2).
fn provider_connections(issuer: &str, ca: &Path) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap(),
            )
            .local_address(IpAddr::from([127, 0, 0, 3]))
            .build()
            .unwrap();
        let v: serde_json::Value = c
            .get(format!("{issuer}/__connections"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .map(|t| serde_json::from_str(&t).unwrap_or_default())
            .unwrap();
        ["127.0.0.1", "::ffff:127.0.0.1"]
            .iter()
            .filter_map(|k| v.get(*k).and_then(|n| n.as_u64()))
            .sum()
    })
}

fn stall(
    a: &Args,
    rt: &tokio::runtime::Runtime,
    base: &str,
    port: u16,
    pid: u32,
    p: &Provider,
    key: Arc<SigningKey>,
) {
    // N sign-ins started (each a pending request); their states and binding cookies.
    let starts: Vec<(String, String)> = rt.block_on(async {
        let c = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut v = Vec::new();
        for _ in 0..a.stall {
            let r = c
                .post(format!("{base}/oauth/circuit/start"))
                .form(&[("tenant", "acme")])
                .send()
                .await
                .unwrap();
            let loc = location(&r).expect("location");
            let state = loc
                .split("state=")
                .nth(1)
                .and_then(|s| s.split('&').next())
                .unwrap()
                .to_string();
            let binding = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|c| c.starts_with("ssogate_oauth="))
                .and_then(|c| c.split(';').next())
                .unwrap()
                .to_string();
            v.push((state, binding));
        }
        v
    });
    let total = a.saml_rate * a.stall_seconds;
    let t = Instant::now();
    let forms = Arc::new(support::acs::presign(&key, base, 0, total));
    println!(
        "signed {} assertions in {:.1} s",
        forms.len(),
        t.elapsed().as_secs_f64()
    );
    // The SAML open loop, on its own thread and runtime.
    let saml = {
        let (forms, rate) = (forms.clone(), a.saml_rate);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let source: Arc<dyn Fn(u64) -> String + Send + Sync> =
                Arc::new(move |i| forms[i as usize].clone());
            rt.block_on(support::acs::open_loop(&[port], source, rate, total, 64))
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let rss_before = rss_kib(pid).0;
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampling = Arc::new(AtomicBool::new(true));
    {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid).0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    }
    p.signal(libc::SIGSTOP);
    let answers: Vec<(u16, u64)> = rt.block_on(async {
        let c = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let tasks: Vec<_> = starts
            .into_iter()
            .map(|(state, binding)| {
                let c = c.clone();
                let url = format!("{base}/oauth/circuit/callback?code=stalled-code&state={state}");
                tokio::spawn(async move {
                    let t = Instant::now();
                    let s = c
                        .get(url)
                        .header("cookie", binding)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    (s, t.elapsed().as_micros() as u64)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    p.signal(libc::SIGCONT);
    let (mut saml_tally, saml_elapsed) = saml.join().unwrap();
    sampling.store(false, Ordering::Relaxed);
    let mut statuses = std::collections::BTreeMap::new();
    for (s, _) in &answers {
        *statuses.entry(*s).or_insert(0u64) += 1;
    }
    let times = sorted(answers.iter().map(|(_, t)| *t).collect());
    let peak = peak.load(Ordering::Relaxed);
    println!(
        "{} callbacks against the stopped provider: statuses {statuses:?}; answered in p50 {:.0} ms, max {:.0} ms",
        answers.len(),
        percentile(&times, 0.5),
        percentile(&times, 1.0)
    );
    println!(
        "  server RSS before {rss_before} KiB, peak {peak} KiB (+{} KiB)",
        peak.saturating_sub(rss_before)
    );
    let saml_json = support::acs::report(
        &format!("SAML open loop at {}/s alongside", a.saml_rate),
        &mut saml_tally,
        saml_elapsed,
        0.0,
    );
    println!(
        "{}",
        serde_json::json!({"callbacks": answers.len(), "statuses": statuses, "answer_p50_ms": percentile(&times, 0.5),
            "answer_max_ms": percentile(&times, 1.0), "rss_before_kib": rss_before, "rss_peak_kib": peak,
            "saml": saml_json})
    );
}
