-- ssogate schema 1 (SQLite). Times are Unix milliseconds.
CREATE TABLE service_providers (
    id INTEGER PRIMARY KEY,
    entity_id TEXT NOT NULL UNIQUE,
    host_url TEXT NOT NULL UNIQUE,
    certificate_pem TEXT,
    private_key_pem TEXT
);

CREATE TABLE identity_providers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    entity_id TEXT NOT NULL UNIQUE,
    sso_url TEXT NOT NULL,
    sso_binding TEXT NOT NULL,
    slo_url TEXT,
    slo_response_url TEXT,
    slo_binding TEXT NOT NULL,
    username_mapping TEXT NOT NULL,
    trust TEXT NOT NULL,
    allow_sha1 INTEGER NOT NULL DEFAULT 0,
    name_id_format TEXT,
    authn_context TEXT
);

CREATE TABLE tenants (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    login_domains TEXT NOT NULL DEFAULT '[]',
    sso_enabled INTEGER NOT NULL DEFAULT 0,
    idp_id INTEGER REFERENCES identity_providers(id),
    slo_enabled INTEGER NOT NULL DEFAULT 0,
    idp_initiated INTEGER NOT NULL DEFAULT 0,
    strip_domain INTEGER NOT NULL DEFAULT 1,
    case_insensitive INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    username TEXT NOT NULL,
    username_norm TEXT NOT NULL,
    display_name TEXT NOT NULL,
    circuit_user TEXT,
    circuit_user_norm TEXT,
    password_hash TEXT,
    roles TEXT NOT NULL DEFAULT '["agent"]',
    UNIQUE (tenant_id, username_norm),
    UNIQUE (tenant_id, circuit_user_norm)
);

CREATE TABLE pending_requests (
    id TEXT PRIMARY KEY,
    sp_id INTEGER NOT NULL,
    tenant_id INTEGER NOT NULL,
    idp_id INTEGER NOT NULL,
    relay_target TEXT NOT NULL,
    binding_hash TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX pending_requests_by_expiry ON pending_requests (expires_at);

CREATE TABLE pending_logouts (
    id TEXT PRIMARY KEY,
    idp_id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE replay_cache (
    key TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX replay_cache_by_expiry ON replay_cache (expires_at);

-- A rowid table (rows of ~500 bytes are far too big for WITHOUT ROWID on 1 KiB pages: they
-- spill into overflow pages): new rows go at the end of the table and expire from its start,
-- and only the small id index takes random writes.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    tenant_id INTEGER,
    user_id INTEGER,
    idp_id INTEGER,
    name_id TEXT,
    session_index TEXT
);
CREATE INDEX sessions_by_saml ON sessions (idp_id, name_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE signin_failures (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    reference TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    tenant TEXT,
    idp TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL
);
