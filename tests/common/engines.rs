//! The shared engines `./run-tests` starts (`tests/engines/up`): a fresh PostgreSQL database per
//! test, so that tests never see each other's rows.

#![allow(dead_code)]

/// The test server's URL (`SSOGATE_TEST_DATABASE_URL`), or `None` after recording the opt-out
/// (`SSOGATE_SKIP=engines`); missing without opting out, the test fails naming it.
pub fn database_url() -> Option<String> {
    let url = std::env::var("SSOGATE_TEST_DATABASE_URL").ok();
    super::require(
        "engines",
        url.is_none().then(|| {
            "SSOGATE_TEST_DATABASE_URL is not set (./run-tests starts PostgreSQL: apt-get install postgresql)"
                .to_string()
        }),
    )?;
    url
}

/// `SSOGATE_TEST_REDIS_URL`, as [`database_url`].
pub fn redis_url() -> Option<String> {
    let url = std::env::var("SSOGATE_TEST_REDIS_URL").ok();
    super::require(
        "engines",
        url.is_none().then(|| {
            "SSOGATE_TEST_REDIS_URL is not set (./run-tests starts Redis: apt-get install redis-server)"
                .to_string()
        }),
    )?;
    url
}

/// A new, empty database on the test server, named after `label`; its URL.
pub async fn fresh_database(label: &str) -> Option<String> {
    let base = database_url()?;
    let name = format!(
        "t_{}_{}_{}",
        label.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL answers");
    tokio::spawn(conn);
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client
            .batch_execute(&sql)
            .await
            .expect("create a test database");
    }
    let mut u = url::Url::parse(&base).expect("URL");
    u.set_path(&format!("/{name}"));
    Some(u.to_string())
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A PostgreSQL server of one test's own (the fault tests stop, kill and pause it), on a free
/// loopback port in `dir`; stopped when dropped. As root, it runs as the `postgres` user.
pub struct PrivatePostgres {
    pub dir: std::path::PathBuf,
    pub port: u16,
    bin: std::path::PathBuf,
    as_postgres: bool,
    /// Connections only over TLS (`start_tls`): the server's certificate (PEM).
    pub tls_cert: Option<std::path::PathBuf>,
}

impl PrivatePostgres {
    /// `None` when the tests opted out of the engines (see [`database_url`]).
    pub fn start(dir: &std::path::Path) -> Option<PrivatePostgres> {
        Self::start_with(dir, false)
    }

    /// A server that accepts connections over TLS only, with a self-signed certificate for
    /// 127.0.0.1 (`tls_cert`).
    pub fn start_tls(dir: &std::path::Path) -> Option<PrivatePostgres> {
        Self::start_with(dir, true)
    }

    fn start_with(dir: &std::path::Path, tls: bool) -> Option<PrivatePostgres> {
        database_url()?;
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries (apt-get install postgresql)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("initdb");
        let as_postgres = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        // In the system's temporary directory, not under the test's scratch directory: run as
        // root, the server runs as `postgres`, who must reach its directory (a home directory
        // is closed to it). Removed when dropped.
        let _ = dir;
        let dir = std::env::temp_dir().join(format!(
            "ssogate-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pg dir");
        let mut pg = PrivatePostgres {
            dir,
            port: super::process::free_port(),
            bin,
            as_postgres,
            tls_cert: None,
        };
        if as_postgres {
            let ok = std::process::Command::new("chown")
                .args(["postgres"])
                .arg(&pg.dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown postgres {}", pg.dir.display());
        }
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.dir.join("data"))
            .args(["-A", "trust", "-U", "ssogate", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if tls {
            let (key, cert) = (pg.dir.join("server.key"), pg.dir.join("server.crt"));
            let ok = std::process::Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(ok, "openssl req");
            std::fs::write(
                pg.dir.join("pg_hba.conf"),
                "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\nlocal all all trust\n",
            )
            .expect("pg_hba.conf");
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
                    .expect("chmod");
            }
            if as_postgres {
                for f in [&key, &cert] {
                    let ok = std::process::Command::new("chown")
                        .arg("postgres")
                        .arg(f)
                        .status()
                        .is_ok_and(|s| s.success());
                    assert!(ok, "chown");
                }
            }
            pg.tls_cert = Some(cert);
        }
        pg.start_again();
        Some(pg)
    }

    fn command(&self, program: &str) -> std::process::Command {
        let mut c;
        if self.as_postgres {
            c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(program));
        } else {
            c = std::process::Command::new(self.bin.join(program));
        }
        c
    }

    pub fn url(&self) -> String {
        format!("postgres://ssogate@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn start_again(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("postgres.log"))
            .args(["-w", "-t", "30", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{}",
                self.port,
                self.dir.display(),
                match &self.tls_cert {
                    Some(cert) => format!(
                        " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c hba_file={}",
                        cert.display(),
                        self.dir.join("server.key").display(),
                        self.dir.join("pg_hba.conf").display()
                    ),
                    None => String::new(),
                }
            ))
            .arg("start")
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
        );
    }

    /// `pg_ctl stop -m immediate`: the server goes without a clean shutdown.
    pub fn stop_immediate(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server and every process of it: paused, it
    /// accepts connections (the kernel does) but answers nothing.
    pub fn signal_all(&self, signal: &str) {
        let pid = self.pid();
        let children = std::process::Command::new("pgrep")
            .args(["-P", &pid.to_string()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut pids: Vec<String> = children.split_whitespace().map(str::to_string).collect();
        pids.push(pid.to_string());
        let ok = std::process::Command::new("kill")
            .args(["-s", signal])
            .args(&pids)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -s {signal} {pids:?}");
    }

    /// The postmaster's process ID.
    pub fn pid(&self) -> i32 {
        std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
            .expect("postmaster.pid")
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop_immediate();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
