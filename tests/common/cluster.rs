//! Several `ssogate serve` instances on one PostgreSQL database behind nginx (round robin): the
//! shape of a scaled-out deployment, on loopback.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::{Server, free_port, ssogate, wait_for_port};

/// What the cluster tests need besides the engines: nginx.
pub fn missing() -> Option<String> {
    super::missing_programs(&[("nginx", "nginx")]).or_else(super::real_idp::missing)
}

/// The configuration every instance shares (one file), and the secrets key it names.
pub struct Shared {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub database_url: String,
    pub public_url: String,
    pub nginx_port: u16,
}

impl Shared {
    /// A fresh database, a secrets key, and the configuration naming them, `public_url` (nginx's
    /// port, chosen now) and nginx as trusted proxy. `extra`: more TOML lines.
    pub fn new(dir: &Path, database_url: String, extra: &str) -> Shared {
        let key = dir.join("secrets.key");
        let mut b = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
            .expect("random bytes");
        std::fs::write(&key, hex::encode(b)).expect("key file");
        let nginx_port = free_port();
        let public_url = format!("http://127.0.0.1:{nginx_port}");
        let config = dir.join("ssogate.toml");
        std::fs::write(
            &config,
            format!(
                "database_url = {database_url:?}\nsecrets_key_file = {key:?}\npublic_url = {public_url:?}\n\
                 trusted_proxies = [\"127.0.0.1\"]\n{extra}\n"
            ),
        )
        .expect("config");
        Shared {
            dir: dir.to_path_buf(),
            config,
            database_url,
            public_url,
            nginx_port,
        }
    }

    /// An ssogate CLI command on the shared database; panics with its stderr when it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(ssogate())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(self.dir.join("cli-data"))
            .output()
            .expect("ssogate runs");
        assert!(
            out.status.success(),
            "ssogate {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new central-administrator API client `name` (through the CLI); its token.
    pub fn api_token(&self, name: &str) -> String {
        let out = self.cli(&["api-client", "add", name]);
        out.lines()
            .find_map(|l| l.split("Bearer TOKEN): ").nth(1))
            .expect("the token is printed")
            .trim()
            .to_string()
    }

    /// An ssogate CLI command with `stdin` as its standard input.
    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write as _;
        let mut child = Command::new(ssogate())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(self.dir.join("cli-data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssogate runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("ssogate ends");
        assert!(
            out.status.success(),
            "ssogate {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Instance `n` on a free port (its own data directory, the shared configuration).
    pub fn instance(&self, n: usize) -> Instance {
        let port = free_port();
        let data = self.dir.join(format!("instance{n}"));
        let server = Server::start_with(
            &data,
            port,
            &self.dir.join(format!("instance{n}.log")),
            Some(&self.config),
        );
        Instance {
            port,
            url: format!("http://127.0.0.1:{port}"),
            server,
        }
    }
}

pub struct Instance {
    pub port: u16,
    pub url: String,
    pub server: Server,
}

/// nginx on `port`, round robin over `upstreams`, as the README's example configures it; stopped
/// when dropped.
pub struct Nginx {
    child: Child,
    pub dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The site part of the nginx configuration (the README shows the same): every request to the
/// instances with the client's address forwarded, and a protected location (`/app/`) that asks
/// ssogate's `/auth/check` first.
pub fn site(port: u16, upstreams: &[u16], www: &Path) -> String {
    let servers: String = upstreams
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n"))
        .collect();
    format!(
        r#"    upstream ssogate {{
{servers}        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://ssogate;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_next_upstream error timeout http_502;
        }}
        # The agent portal's own pages: only for a signed-in agent.
        location /app/ {{
            auth_request /_ssogate_check;
            auth_request_set $agent $upstream_http_x_auth_user;
            proxy_set_header X-Agent $agent;
            root {www};
        }}
        location = /_ssogate_check {{
            internal;
            proxy_pass http://ssogate/auth/check;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
"#,
        www = www.display()
    )
}

impl Nginx {
    pub fn start(dir: &Path, port: u16, upstreams: &[u16]) -> Nginx {
        let dir = dir.join("nginx");
        let www = dir.join("www");
        std::fs::create_dir_all(www.join("app")).expect("nginx dir");
        std::fs::create_dir_all(dir.join("tmp")).expect("nginx tmp");
        std::fs::write(www.join("app/index.html"), "agent portal app\n").expect("page");
        // Run as root (the test machine's CI), nginx's workers would become `nobody`, who cannot
        // read a home directory: they stay root here.
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let t = dir.join("tmp");
        let conf = format!(
            "{user}worker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\nhttp {{\n    access_log off;\n\
             client_body_temp_path {t}/body; proxy_temp_path {t}/proxy; fastcgi_temp_path {t}/fastcgi;\n\
             uwsgi_temp_path {t}/uwsgi; scgi_temp_path {t}/scgi;\n{site}}}\n",
            user = if root { "user root;\n" } else { "" },
            d = dir.display(),
            t = t.display(),
            site = site(port, upstreams, &www),
        );
        let conf_file = dir.join("nginx.conf");
        std::fs::write(&conf_file, conf).expect("nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_file)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts");
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "nginx did not listen on {port}: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        Nginx { child, dir }
    }
}
