-- ssogate schema 3 (SQLite): the Web Manager and the JSON API.

-- Every editable object carries a version: an update names the version it was read at and
-- changes nothing when another change came in between (409 "changed by X at T").
ALTER TABLE service_providers ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
-- Certificate rollover: the next certificate (and its key) is published beside the current one.
ALTER TABLE service_providers ADD COLUMN next_certificate_pem TEXT;
ALTER TABLE service_providers ADD COLUMN next_private_key_pem TEXT;
ALTER TABLE identity_providers ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE identity_providers ADD COLUMN metadata_url TEXT;
ALTER TABLE tenants ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tenants ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
-- A one-time password (the first administrator's) must be replaced at the first sign-in.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;

-- The user name a refused sign-in named, when it named one (the activity view filters by it).
ALTER TABLE signin_failures ADD COLUMN username TEXT;

-- Web Manager sessions: only the SHA-256 of the cookie's token is kept.
CREATE TABLE admin_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX admin_sessions_by_expiry ON admin_sessions (expires_at);

-- API clients: a bearer token, of which only the SHA-256 and the first 8 characters are kept.
CREATE TABLE api_clients (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    token_prefix TEXT NOT NULL,
    role TEXT NOT NULL,
    tenant_id INTEGER REFERENCES tenants(id),
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    version INTEGER NOT NULL DEFAULT 1
);

-- Every change by the Web Manager, the API or the CLI: who, what, when, before and after
-- (JSON views without secrets).
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    before TEXT,
    after TEXT
);
CREATE INDEX audit_log_by_object ON audit_log (object, id);

-- Settings shared by every instance (the configuration file only seeds an empty store).
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
