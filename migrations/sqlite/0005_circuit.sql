-- ssogate schema 5 (SQLite): Circuit (OAuth 2.0 / OpenID Connect) sign-on per tenant.
-- SP private keys stored in clear before this schema are encrypted by the service when it first
-- opens the database with its secrets key (SqliteStore::use_secrets), not here: SQL has no key.

-- One provider per tenant. The client secret is encrypted (AES-256-GCM under the secrets key,
-- `v1.<key id>.<base64>`): it must be sent back to the provider, so it cannot be hashed.
CREATE TABLE circuit_settings (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    enabled INTEGER NOT NULL,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT,
    portal_url TEXT NOT NULL,
    login_url TEXT NOT NULL,
    authorize_path TEXT NOT NULL,
    token_path TEXT NOT NULL,
    profile_path TEXT NOT NULL,
    scope TEXT NOT NULL,
    profile_field TEXT NOT NULL,
    pkce INTEGER NOT NULL,
    token_auth TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- A "Sign in with Circuit" that waits for the provider's answer: found by the SHA-256 of its
-- state (the state itself is only in the browser and at the provider), bound to the browser by
-- the SHA-256 of its binding cookie, taken once, dropped after 10 minutes.
CREATE TABLE oauth_pending (
    state_hash TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    sp_id INTEGER NOT NULL REFERENCES service_providers(id) ON DELETE CASCADE,
    binding_hash TEXT NOT NULL,
    relay_target TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX oauth_pending_by_expiry ON oauth_pending (expires_at);
