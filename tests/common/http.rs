//! A minimal HTTP/1.1 client over std's TcpStream for tests against a running `ssogate serve`
//! (one request per connection).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// `name=value` of a cookie this answer sets.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.split(';').next().unwrap_or("").to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
    }
}

/// Sends one request; `Err` when the connection fails (a server that is down).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> std::io::Result<HttpAnswer> {
    request_to(
        port,
        &format!("127.0.0.1:{port}"),
        method,
        path,
        cookie,
        form,
    )
}

/// The same, with `Host: host` (to reach the SP of another host name on the same server).
pub fn request_to(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> std::io::Result<HttpAnswer> {
    request_with(port, host, method, path, cookie, form, &[])
}

/// [`request_to`] with more header lines (`name`, `value`).
pub fn request_with(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpAnswer> {
    send(
        port,
        host,
        method,
        path,
        cookie,
        form.map(|f| ("application/x-www-form-urlencoded", f)),
        headers,
    )
}

/// A JSON API request to `127.0.0.1:port` (`body` sent as `application/json`).
pub fn request_json(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpAnswer> {
    send(
        port,
        &format!("127.0.0.1:{port}"),
        method,
        path,
        None,
        body.map(|b| ("application/json", b)),
        headers,
    )
}

fn send(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<(&str, &str)>,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpAnswer> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some((kind, b)) = body {
        req.push_str(&format!(
            "Content-Type: {kind}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some((_, b)) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(HttpAnswer {
        status,
        headers,
        body: body.to_string(),
    })
}

/// `SAMLResponse=<base64 of xml>` as a form body.
pub fn saml_form(xml: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(xml.as_bytes());
    format!(
        "SAMLResponse={}",
        percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC)
    )
}
