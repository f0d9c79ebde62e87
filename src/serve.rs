//! `ssogate serve`: opens the store, makes sure there is something to sign in to, and serves.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, LogFormat};
use crate::domain::admin::{self, SpInput, bootstrap};
use crate::rng::{Rng, SystemRng};
use crate::store::Store;
use crate::store::postgres::EVENTS_CHANNEL;
use crate::store::sqlite::SqliteStore;
use crate::web::{AppState, admin_app, app, secure_cookies};

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SSOGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, never into a file or a journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The host URL of the service provider created on a first start: the listen address, with
/// `localhost` for an unspecified one.
fn default_host_url(listen: &str) -> String {
    let (host, port) = listen.rsplit_once(':').unwrap_or((listen, "8080"));
    let host = match host {
        "0.0.0.0" | "[::]" | "" => "localhost",
        h => h,
    };
    format!("http://{host}:{port}")
}

/// Opens the store named by `config` to read only: nothing is created, migrated or written (on
/// PostgreSQL, the schema must be there already). The secrets key is loaded when there is one
/// (without it, reading an SP's private key fails).
pub async fn open_store_read_only(config: &Config) -> Result<Arc<dyn Store>, String> {
    if let Some(o) = config.postgres() {
        let (store, ..) = open_postgres(config, o).await?;
        return Ok(store);
    }
    let path = config.database_path();
    let store = SqliteStore::open_read_only(&path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let file = config
        .secrets_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("secrets.key"));
    if config.secrets_key_file.is_some() || file.exists() {
        let key = crate::secrets::SecretsKey::read(&file)?;
        store
            .set_secrets(Arc::new(key))
            .map_err(|e| e.to_string())?;
    }
    Ok(Arc::new(store))
}

/// Opens the store named by `config` with its secrets key (see [`secrets_key`]): SP private keys
/// still in clear are encrypted, and every stored secret is read once, so that a wrong key stops
/// here naming the secret it cannot read.
pub async fn open_store(
    config: &Config,
) -> Result<(Arc<dyn Store>, Arc<crate::secrets::SecretsKey>), String> {
    if let Some(o) = config.postgres() {
        let (store, key, _) = open_postgres(config, o).await?;
        return Ok((store, key));
    }
    let path = config.database_path();
    let store = SqliteStore::open(&path, config.durability)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let key = Arc::new(secrets_key(&store, config, &SystemRng).await?);
    let sealed = store
        .use_secrets(key.clone())
        .map_err(|e| format!("cannot encrypt the stored SP private keys: {e}"))?;
    if sealed > 0 {
        tracing::info!(
            keys = sealed,
            key_id = key.id(),
            "encrypted the SP private keys stored in clear"
        );
    }
    let store: Arc<dyn Store> = Arc::new(store);
    check_secrets(store.as_ref(), &key).await?;
    Ok((store, key))
}

/// PostgreSQL (`database_url`): connects, migrates (once, whatever number of instances start
/// together), and checks the configured secrets key against the database's.
async fn open_postgres(
    config: &Config,
    o: crate::store::postgres::PgOptions,
) -> Result<
    (
        Arc<dyn Store>,
        Arc<crate::secrets::SecretsKey>,
        crate::store::postgres::PgStore,
    ),
    String,
> {
    let shown = crate::store::postgres::redact_url(&o.url);
    let pg = crate::store::postgres::PgStore::open(o)
        .await
        .map_err(|e| format!("database_url {shown}: {e}"))?;
    // The configuration is read once per instance and kept until it changes (anywhere).
    let cached = crate::store::cached::CachedStore::new(Arc::new(pg.clone()));
    cached.watch(pg.clone());
    let mut store: Arc<dyn Store> = cached;
    // Sessions and pending requests in Redis, when configured.
    if let Some(url) = &config.redis_url {
        let o = crate::store::redis_state::RedisOptions {
            url: url.expose().to_string(),
            prefix: "ssogate:".into(),
            timeout: std::time::Duration::from_millis(config.database_statement_timeout_ms),
        };
        let shown = crate::store::postgres::redact_url(&o.url);
        let redis = crate::store::redis_state::RedisState::open(store, o)
            .await
            .map_err(|e| format!("redis_url {shown}: {e}"))?;
        store = Arc::new(redis);
    }
    // Two instances starting at once with different keys: the first stores its key's ID, the
    // second finds it and stops.
    let key = {
        let _lock = store
            .startup_lock()
            .await
            .map_err(|e| format!("database_url {shown}: {e}"))?;
        Arc::new(secrets_key(store.as_ref(), config, &SystemRng).await?)
    };
    pg.use_secrets(key.clone()).map_err(|e| e.to_string())?;
    check_secrets(store.as_ref(), &key).await?;
    Ok((store, key, pg))
}

/// Several instances: the event stream of the Web Manager and the API shows what every instance
/// sees. While someone in the cluster watches (an instance with an open stream says so every
/// 2 s, in a shared counter), each instance sends its events in batches by `NOTIFY`, and
/// publishes those of the others to its own streams.
fn relay_events(state: AppState, pg: crate::store::postgres::PgStore) {
    let me = hex::encode(&state.rng.bytes16()[..6]);
    let Some(mut outgoing) = state.events.relay_to_cluster() else {
        return;
    };
    let (send_pg, send_me) = (pg.clone(), me.clone());
    tokio::spawn(async move {
        while let Some(first) = outgoing.recv().await {
            let mut batch = vec![first];
            let until = tokio::time::Instant::now() + Duration::from_millis(200);
            while batch.len() < 500 {
                match tokio::time::timeout_at(until, outgoing.recv()).await {
                    Ok(Some(e)) => batch.push(e),
                    _ => break,
                }
            }
            // NOTIFY payloads are limited to 8,000 bytes: several messages when needed (an event
            // bigger than a message is dropped).
            let mut chunks: Vec<(Vec<serde_json::Value>, usize)> = vec![(Vec::new(), 0)];
            for e in batch {
                let v = serde_json::to_value(&e).unwrap_or_default();
                let n = v.to_string().len();
                if n > 7000 {
                    continue;
                }
                if chunks.last().is_some_and(|(_, size)| size + n > 7000) {
                    chunks.push((Vec::new(), 0));
                }
                if let Some((events, size)) = chunks.last_mut() {
                    events.push(v);
                    *size += n;
                }
            }
            for (events, _) in chunks.into_iter().filter(|(e, _)| !e.is_empty()) {
                let payload = serde_json::json!({"from": send_me, "events": events}).to_string();
                let _ = send_pg.notify(EVENTS_CHANNEL, &payload).await;
            }
        }
    });
    let listen_state = state.clone();
    let mut incoming = pg.notifications(EVENTS_CHANNEL);
    tokio::spawn(async move {
        loop {
            let payload = match incoming.recv().await {
                Ok(p) => p,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&payload) else {
                continue;
            };
            if v["from"].as_str() == Some(me.as_str()) {
                continue;
            }
            if let Some(events) = v["events"].as_array() {
                for e in events {
                    if let Ok(e) = serde_json::from_value(e.clone()) {
                        listen_state.events.publish_relayed(e);
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            let now = state.clock.now();
            if state.events.open_streams() > 0 {
                let _ = state
                    .store
                    .counter_add("events-watchers", 1, now, now.plus_secs(6))
                    .await;
            }
            if let Ok(Some(w)) = state.store.counter_get("events-watchers", now).await {
                state.events.set_cluster_watching(w.is_some());
            }
        }
    });
}

/// Reads every stored secret once with `key`: the first that does not decrypt is named.
async fn check_secrets(store: &dyn Store, key: &crate::secrets::SecretsKey) -> Result<(), String> {
    let why = |e: crate::store::StoreError| {
        format!(
            "{e} (secrets key {}: is it the one this database was encrypted with?)",
            key.id()
        )
    };
    store.sp_list().await.map_err(why)?;
    for c in store.circuit_list().await.map_err(why)? {
        crate::domain::circuit::client_secret(key, &c).map_err(|e| {
            format!(
                "the Circuit client secret of tenant {} cannot be read: {e} (secrets key {})",
                c.tenant,
                key.id()
            )
        })?;
    }
    Ok(())
}

/// A shared setting: the stored one (a differing configured value is logged, never applied),
/// else the configured one, stored.
async fn seeded_text(store: &dyn Store, key: &str, configured: String) -> Result<String, String> {
    match store.setting(key).await.map_err(|e| e.to_string())? {
        Some(stored) => {
            if stored != configured {
                tracing::warn!(
                    setting = key,
                    stored = %stored,
                    configured = %configured,
                    "the stored setting applies (shared by every instance, or changed in the Web Manager); the configured value only seeds a new store"
                );
            }
            Ok(stored)
        }
        None => {
            store
                .setting_put(key, &configured)
                .await
                .map_err(|e| e.to_string())?;
            Ok(configured)
        }
    }
}

/// An on/off setting (see [`seeded_text`]).
async fn seeded(store: &dyn Store, key: &str, configured: bool) -> Result<bool, String> {
    Ok(seeded_text(store, key, configured.to_string()).await? == "true")
}

/// A number of seconds shared by every instance (see [`seeded_text`]).
async fn seeded_secs(store: &dyn Store, key: &str, configured: i64) -> Result<i64, String> {
    let v = seeded_text(store, key, configured.to_string()).await?;
    v.parse()
        .map_err(|_| format!("the stored setting {key} is {v:?}, not a number of seconds"))
}

/// The secrets key: configured, or the data directory's (made on the first start). The store
/// remembers its ID, and a start with another key stops here rather than failing on every value.
pub async fn secrets_key(
    store: &dyn Store,
    config: &Config,
    rng: &dyn Rng,
) -> Result<crate::secrets::SecretsKey, String> {
    let key = crate::secrets::SecretsKey::load_or_create(
        config.secrets_key_file.as_deref(),
        &config.data_dir,
        rng,
    )?;
    let setting = crate::secrets::SETTING_KEY_ID;
    match store.setting(setting).await.map_err(|e| e.to_string())? {
        Some(id) if id != key.id() => Err(format!(
            "the secrets key {} has ID {}, but this database's secrets were encrypted with key {id}: \
             configure that key (secrets_key_file)",
            config
                .secrets_key_file
                .clone()
                .unwrap_or_else(|| config.data_dir.join("secrets.key"))
                .display(),
            key.id()
        )),
        Some(_) => Ok(key),
        None => {
            store
                .setting_put(setting, key.id())
                .await
                .map_err(|e| e.to_string())?;
            Ok(key)
        }
    }
}

pub fn run(config: Config) -> i32 {
    init_logging(config.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ssogate: cannot start the runtime: {e}");
            return 2;
        }
    };
    rt.block_on(async move {
        match serve(config).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ssogate: {e}");
                1
            }
        }
    })
}

async fn serve(config: Config) -> Result<(), String> {
    let (store, secrets, pg) = match config.postgres() {
        Some(o) => {
            let (store, key, pg) = open_postgres(&config, o).await?;
            (store, key, Some(pg))
        }
        None => {
            let (store, key) = open_store(&config).await?;
            (store, key, None)
        }
    };
    let rng: Arc<dyn Rng> = Arc::new(SystemRng);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Instances started together on an empty shared database: one makes the administrator, the
    // SP and the settings while the others wait, then find them.
    let startup = store.startup_lock().await.map_err(|e| e.to_string())?;
    if let Some((user, password)) = bootstrap(&store, rng.as_ref())
        .await
        .map_err(|e| e.to_string())?
    {
        // Printed once; only its argon2 hash is stored.
        println!(
            "Created the central administrator {user:?} with the one-time password: {password}"
        );
        println!(
            "Change it with: ssogate user set {user} --tenant {} --password-stdin",
            admin::DEFAULT_TENANT
        );
    }
    let mut sps = store.sp_list().await.map_err(|e| e.to_string())?;
    if sps.is_empty() {
        let host_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| default_host_url(&config.listen));
        let sp = admin::sp_add(
            store.as_ref(),
            rng.as_ref(),
            SpInput {
                host_url,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        println!(
            "Created service provider {} for {} (its metadata: {})",
            sp.id,
            sp.host_url,
            sp.metadata_url()
        );
        sps.push(sp);
    }
    let secure = secure_cookies(&config, &sps);
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Several tenants or one, and whether central administrators need a second factor: the
    // stored settings; the configuration only seeds an empty store (the Web Manager switches
    // them, and no restart undoes that).
    let multi_tenant = seeded(
        store.as_ref(),
        admin::SETTING_MULTI_TENANT,
        config.multi_tenant,
    )
    .await?;
    let require_totp = seeded(
        store.as_ref(),
        admin::SETTING_REQUIRE_TOTP,
        config.admin_require_totp,
    )
    .await?;
    // The time limits every instance of a shared database must apply alike (one instance on
    // SQLite takes its configuration as it is).
    let mut config = config;
    if config.database_url.is_some() {
        config.clock_skew_secs =
            seeded_secs(store.as_ref(), "clock_skew_secs", config.clock_skew_secs).await?;
        config.session_max_secs =
            seeded_secs(store.as_ref(), "session_max_secs", config.session_max_secs).await?;
        config.session_idle_secs = seeded_secs(
            store.as_ref(),
            "session_idle_secs",
            config.session_idle_secs,
        )
        .await?;
    }
    drop(startup);
    let config = Arc::new(config);
    let state =
        AppState::new(store.clone(), clock.clone(), rng, config.clone()).with_secrets(secrets);
    state.set_multi_tenant(multi_tenant);
    state.set_require_totp(require_totp);
    if let Some(problem) = state.outbound.problem() {
        return Err(problem.to_string());
    }

    if let Some(pg) = pg {
        relay_events(state.clone(), pg);
    }

    // A setting switched on another instance (or by the CLI) is in force here within a second:
    // read through the configuration cache, which costs nothing while nothing changes.
    let settings_state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let s = &settings_state;
            if let Ok(Some(v)) = s.store.setting(admin::SETTING_MULTI_TENANT).await {
                s.set_multi_tenant(v == "true");
            }
            if let Ok(Some(v)) = s.store.setting(admin::SETTING_REQUIRE_TOTP).await {
                s.set_require_totp(v == "true");
            }
        }
    });

    // The sign-in chart's counts go to the store every 10 seconds (none written per login).
    let flush_state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            if let Err(e) = flush_state.flush_activity().await {
                tracing::warn!(error = %e, "cannot store the sign-in counts; they wait for the next try");
            }
        }
    });

    // IdP metadata URLs: each fetched every 6 hours (checked every minute), one at a time.
    let refresh_state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let s = &refresh_state;
            let admin = crate::domain::audit::Admin {
                store: s.store.as_ref(),
                rng: s.rng.as_ref(),
                actor: crate::domain::refresh::ACTOR.into(),
                now: s.clock.now(),
                on_change: None,
            };
            if let Err(e) = crate::domain::refresh::refresh_due(&admin, &s.outbound).await {
                tracing::warn!(error = %e, "IdP metadata refresh could not run");
            }
        }
    });

    // Expired pending requests, replay entries and sessions go every second, in small batches
    // with pauses between them: deleting is as much work as inserting, and a big delete would
    // hold the writer (and every login behind it) for a long time.
    let purge_store = store.clone();
    let purge_clock = clock.clone();
    let failure_rows = config.failure_rows();
    tokio::spawn(async move {
        const BATCH: u32 = 100;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        // Logged when purging starts failing and when it works again, not every second.
        let mut failing = false;
        loop {
            tick.tick().await;
            loop {
                match purge_store
                    .purge_expired(purge_clock.now(), BATCH, failure_rows)
                    .await
                {
                    Ok(n) => {
                        if std::mem::take(&mut failing) {
                            tracing::info!("purging expired state works again");
                        }
                        if n < u64::from(BATCH) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await
                    }
                    Err(e) => {
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(error = %e, "cannot purge expired state (retried every second)");
                        }
                        break;
                    }
                }
            }
        }
    });

    let data = match &config.database_url {
        Some(url) => format!("PostgreSQL {url:?}"),
        None => config.data_dir.display().to_string(),
    };
    tracing::info!(%addr, data = %data, secure_cookies = secure, multi_tenant, "ssogate listening");
    println!("ssogate listening on http://{addr} (data in {data})");
    // Connections need a file descriptor each: the cap stays below the open-files limit (with
    // room for the database and the log).
    let max_connections = match crate::web::server::raise_fd_limit() {
        Some(n) if (n as usize) < config.max_connections + 64 => {
            let cap = (n as usize).saturating_sub(64).max(16);
            tracing::warn!(
                open_files_limit = n,
                max_connections = cap,
                "max_connections lowered to fit the open-files limit"
            );
            cap
        }
        _ => config.max_connections,
    };
    let limits = crate::web::server::ServerLimits {
        max_connections,
        max_connections_per_client: config.max_connections_per_client,
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        trusted_proxies: Arc::from(config.trusted_proxy_blocks()),
    };
    // One shutdown signal for every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let admin = match &config.admin_listen {
        Some(a) => {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| format!("cannot listen on {a} (admin_listen): {e}"))?;
            let admin_addr = l.local_addr().map_err(|e| e.to_string())?;
            println!("Web Manager on http://{admin_addr}/webmanager/ (JSON API on /api/v1)");
            Some(tokio::spawn(crate::web::server::serve(
                l,
                admin_app(state.clone(), secure),
                limits.clone(),
                Arc::default(),
                stopped(stop_rx.clone()),
            )))
        }
        None => {
            println!("Web Manager on http://{addr}/webmanager/ (JSON API on /api/v1)");
            None
        }
    };
    crate::web::server::serve(
        listener,
        app(state.clone(), secure),
        limits,
        Arc::default(),
        stopped(stop_rx),
    )
    .await;
    if let Some(a) = admin {
        let _ = a.await;
    }
    // The last seconds of sign-in counts.
    if let Err(e) = state.flush_activity().await {
        tracing::warn!(error = %e, "the last sign-in counts could not be stored");
    }
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_host_url_from_listen_address() {
        assert_eq!(
            super::default_host_url("127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            super::default_host_url("0.0.0.0:9000"),
            "http://localhost:9000"
        );
    }
}
