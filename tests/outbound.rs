//! The service's outbound client and the IdP metadata refresh, against an HTTPS server on
//! loopback with a CA of the test's own (given as `outbound_ca_file`) and an HTTP CONNECT proxy:
//! new signing certificates are taken (the ACS then trusts them, the audit log has both sets);
//! a failed refresh keeps the certificates and shows on the IdP's row with its cause (an
//! unknown CA, a redirect, an answer over 1 MiB, not metadata, a private address when that is
//! not allowed, a server that does not answer within 10 s); calls in flight are capped.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::X509;
use serde_json::json;
use ssogate::config::Config;

use common::admin::{Auth, call, json, page, root};
use common::app::{TestApp, answering};
use common::generate::{IDP, idp, idp2};

use common::tls::{cert, key};

/// What the HTTPS server answers, by path.
#[derive(Clone, Default)]
struct Site {
    metadata: Arc<Mutex<Vec<u8>>>,
}

fn serve_https(acceptor: Arc<SslAcceptor>, site: Site) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let (acceptor, site) = (acceptor.clone(), site.clone());
            std::thread::spawn(move || {
                let Ok(mut tls) = acceptor.accept(s) else {
                    return;
                };
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if tls.read(&mut b).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let line = String::from_utf8_lossy(&head);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, extra, body): (&str, &str, Vec<u8>) = match path.as_str() {
                    "/metadata.xml" => ("200 OK", "", site.metadata.lock().unwrap().clone()),
                    "/moved" => (
                        "302 Found",
                        "Location: https://elsewhere.example/m\r\n",
                        vec![],
                    ),
                    "/big" => ("200 OK", "", vec![b'<'; 1024 * 1024 + 1]),
                    "/slow" => {
                        std::thread::sleep(Duration::from_secs(13));
                        ("200 OK", "", vec![])
                    }
                    _ => ("404 Not Found", "", vec![]),
                };
                let _ = write!(
                    tls,
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(&body);
                let _ = tls.shutdown();
            });
        }
    });
    port
}

/// An HTTP CONNECT proxy on loopback; records every CONNECT target.
fn serve_proxy(seen: Arc<Mutex<Vec<String>>>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                r.read_line(&mut first).unwrap();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let target = first.split_whitespace().nth(1).unwrap_or("").to_string();
                seen.lock().unwrap().push(first.trim().to_string());
                let Ok(upstream) = TcpStream::connect(&target) else {
                    let _ = (&s).write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                    return;
                };
                (&s).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut a, mut b) = (s.try_clone().unwrap(), upstream.try_clone().unwrap());
                let (mut c, mut d) = (upstream, s);
                std::thread::spawn(move || std::io::copy(&mut a, &mut b));
                let _ = std::io::copy(&mut c, &mut d);
            });
        }
    });
    port
}

fn metadata_with(cert_pem: &[u8]) -> Vec<u8> {
    let der = X509::from_pem(cert_pem).unwrap().to_der().unwrap();
    let b64 = common::generate::b64_raw(&der);
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.test/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#
    )
    .into_bytes()
}

struct Lab {
    https: u16,
    ca_file: std::path::PathBuf,
    site: Site,
}

fn lab(dir: &Path) -> Lab {
    let ca_key = key();
    let ca = cert("ssogate test CA", &ca_key, None, true);
    let leaf_key = key();
    let leaf = cert("localhost", &leaf_key, Some((&ca, &ca_key)), false);
    let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    a.set_private_key(&leaf_key).unwrap();
    a.set_certificate(&leaf).unwrap();
    let site = Site::default();
    *site.metadata.lock().unwrap() = metadata_with(&idp().cert_pem);
    let https = serve_https(Arc::new(a.build()), site.clone());
    std::fs::create_dir_all(dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.to_pem().unwrap()).unwrap();
    Lab {
        https,
        ca_file,
        site,
    }
}

async fn app(l: &Lab, allow_private: bool, ca: bool, proxy: Option<u16>) -> (TestApp, Auth) {
    let config = Config {
        outbound_ca_file: ca.then(|| l.ca_file.clone()),
        outbound_allow_private: allow_private,
        outbound_proxy: proxy.map(|p| format!("http://127.0.0.1:{p}")),
        ..Config::default()
    };
    let t = TestApp::with_config(config).await;
    let s = root(&t).await;
    (t, s)
}

async fn point_at(t: &TestApp, s: &Auth, url: &str) {
    let r = call(
        t,
        "PUT",
        "/api/v1/idps/idp",
        Some(&json!({"metadata_url": url})),
        s,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn refresh(t: &TestApp, s: &Auth) -> serde_json::Value {
    let r = call(t, "POST", "/api/v1/idps/idp/refresh", None, s).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    json(&r)
}

async fn accepted_from(t: &TestApp, keys: &common::generate::Keys) -> bool {
    let (id, binding) = t.start_login("/login").await;
    // A fresh assertion ID each time (the replay cache would refuse a second one).
    let template = common::generate::Template {
        assertion_id: format!("_a{id}"),
        ..answering(&id)
    };
    let a = t.acs(&template.signed_assertion(keys), &[&binding]).await;
    a.status == StatusCode::SEE_OTHER
}

#[tokio::test]
async fn new_signing_certificates_are_taken_from_the_metadata_url() {
    let dir = common::scratch_dir("outbound-refresh");
    let l = lab(&dir);
    let (t, s) = app(&l, true, true, None).await;
    let url = format!("https://localhost:{}/metadata.xml", l.https);
    point_at(&t, &s, &url).await;
    // The same certificate: nothing changes, the fetch is recorded.
    let r = refresh(&t, &s).await;
    assert_eq!(r["outcome"], "unchanged", "{r}");
    assert!(r["idp"]["metadata_status"]["error"].is_null(), "{r}");
    assert!(accepted_from(&t, idp()).await);
    // The IdP rolls over: the new certificate is taken, the old one no longer trusted.
    *l.site.metadata.lock().unwrap() = metadata_with(&idp2().cert_pem);
    let r = refresh(&t, &s).await;
    assert_eq!(r["outcome"], "changed", "{r}");
    assert!(
        accepted_from(&t, idp2()).await,
        "a response signed with the new key"
    );
    assert!(
        !accepted_from(&t, idp()).await,
        "the old key is no longer trusted"
    );
    let audit = call(&t, "GET", "/api/v1/audit?object=idp:1", None, &s).await;
    let entry = json(&audit)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "idp.metadata_refresh")
        .cloned()
        .unwrap_or_else(|| panic!("no refresh in the audit log: {}", audit.body));
    assert_ne!(entry["before"], entry["after"]);
    assert!(
        entry["after"].as_str().unwrap().contains("sha256"),
        "{entry}"
    );

    // Not metadata: the failure is kept and shown on the row; the certificates stay.
    *l.site.metadata.lock().unwrap() = b"<html>maintenance</html>".to_vec();
    let r = refresh(&t, &s).await;
    assert_eq!(r["outcome"], "failed");
    assert!(
        r["idp"]["metadata_status"]["error"]
            .as_str()
            .unwrap()
            .contains("metadata"),
        "{r}"
    );
    assert!(accepted_from(&t, idp2()).await);
    let list = page(&t, "/webmanager/idps", &s).await;
    assert!(list.body.contains("Refresh failed at"), "{}", list.body);
    // Metadata without a signing certificate never empties the trusted set.
    *l.site.metadata.lock().unwrap() = String::from_utf8(metadata_with(&idp().cert_pem))
        .unwrap()
        .replace(r#"use="signing""#, r#"use="encryption""#)
        .into_bytes();
    let r = refresh(&t, &s).await;
    assert_eq!(r["outcome"], "failed");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("no signing certificate"),
        "{r}"
    );
    assert!(accepted_from(&t, idp2()).await);

    // Each kind of failure, said precisely.
    for (path, says) in [
        ("/moved", "redirects to \"https://elsewhere.example/m\""),
        ("/big", "larger than 1048576 bytes"),
        ("/missing", "HTTP 404"),
    ] {
        point_at(&t, &s, &format!("https://localhost:{}{path}", l.https)).await;
        let r = refresh(&t, &s).await;
        assert_eq!(r["outcome"], "failed", "{path}");
        assert!(r["error"].as_str().unwrap().contains(says), "{path}: {r}");
    }
    // A URL that is not https (off loopback), or no metadata URL at all: refused before a call.
    point_at(&t, &s, "http://idp.example.com/metadata").await;
    let r = refresh(&t, &s).await;
    assert!(r["error"].as_str().unwrap().contains("only https"), "{r}");
    point_at(&t, &s, "").await;
    let r = call(&t, "POST", "/api/v1/idps/idp/refresh", None, &s).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json(&r)["field"], "metadata_url");
}

#[tokio::test]
async fn tls_private_addresses_the_proxy_and_slow_servers() {
    let dir = common::scratch_dir("outbound-edges");
    let l = lab(&dir);
    let url = format!("https://localhost:{}/metadata.xml", l.https);
    // The test CA is not a system CA: without outbound_ca_file the certificate is refused.
    let (t, s) = app(&l, true, false, None).await;
    point_at(&t, &s, &url).await;
    let r = refresh(&t, &s).await;
    let e = r["error"].as_str().unwrap().to_lowercase();
    assert!(e.contains("certificate"), "{r}");
    // Loopback is a private destination: refused unless outbound_allow_private.
    let (t, s) = app(&l, false, true, None).await;
    point_at(&t, &s, &url).await;
    let r = refresh(&t, &s).await;
    assert!(r["error"].as_str().unwrap().contains("private"), "{r}");
    // Through a CONNECT proxy (which may itself be on a private network).
    let seen = Arc::new(Mutex::new(Vec::new()));
    let proxy = serve_proxy(seen.clone());
    let (t, s) = app(&l, true, true, Some(proxy)).await;
    point_at(&t, &s, &url).await;
    let r = refresh(&t, &s).await;
    assert_eq!(r["outcome"], "unchanged", "{r}");
    assert_eq!(
        seen.lock().unwrap().first().map(String::as_str),
        Some(format!("CONNECT localhost:{} HTTP/1.1", l.https).as_str())
    );
    // A server that does not answer: given up after 10 s, said so.
    let (t, s) = app(&l, true, true, None).await;
    point_at(&t, &s, &format!("https://localhost:{}/slow", l.https)).await;
    let started = std::time::Instant::now();
    let r = refresh(&t, &s).await;
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("no answer in time (5 s to connect, 10 s in all)"),
        "{r}"
    );
    assert!(started.elapsed() < Duration::from_secs(12));
}

#[tokio::test]
async fn calls_in_flight_are_capped() {
    let dir = common::scratch_dir("outbound-cap");
    let l = lab(&dir);
    let config = Config {
        outbound_ca_file: Some(l.ca_file.clone()),
        outbound_allow_private: true,
        outbound_max_in_flight: 1,
        ..Config::default()
    };
    let out = ssogate::outbound::Outbound::new(&config);
    let slow = format!("https://localhost:{}/slow", l.https);
    let first = {
        let (out, slow) = (out.clone(), slow.clone());
        tokio::spawn(async move { out.get(&slow, 1024).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The second waits for the first's place: it goes once the first is given up.
    let began = std::time::Instant::now();
    let second = {
        let (out, url) = (
            out.clone(),
            format!("https://localhost:{}/metadata.xml", l.https),
        );
        tokio::spawn(async move { out.get(&url, 1 << 20).await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !second.is_finished(),
        "the second waits while the first runs"
    );
    first.abort();
    let second = second.await.unwrap();
    assert!(second.is_ok(), "{second:?}");
    assert!(began.elapsed() < Duration::from_secs(5));
    // Waiting counts in a call's 10 s: a call behind one that hangs ends within them.
    let hung = {
        let (out, slow) = (out.clone(), slow.clone());
        tokio::spawn(async move { out.get(&slow, 1024).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let began = std::time::Instant::now();
    let behind = out.get(&slow, 1024).await;
    assert!(
        matches!(
            behind,
            Err(ssogate::outbound::OutboundError::Timeout
                | ssogate::outbound::OutboundError::Busy(1))
        ),
        "{behind:?}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(11),
        "{:?}",
        began.elapsed()
    );
    hung.abort();
}
