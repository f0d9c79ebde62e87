-- ssogate schema 4 (SQLite): a second factor for Web Manager accounts; IdP metadata refresh; the sign-in chart kept; failing responses captured for the tracer.

-- TOTP (RFC 6238) enrolled by the account itself. The shared secret must be read back to check
-- a code, so it is encrypted (AES-256-GCM under the secrets key, `v1.<key id>.<base64>`), never
-- kept in clear. `last_step` is the time step of the last code taken: a code is good once.
CREATE TABLE admin_totp (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    last_step INTEGER NOT NULL,
    enabled_at INTEGER NOT NULL
);

-- The periodic refresh of an IdP's metadata URL: when it was last fetched, and why it failed
-- (empty when it worked). Not an edit: the version stays.
ALTER TABLE identity_providers ADD COLUMN metadata_checked_at INTEGER;
ALTER TABLE identity_providers ADD COLUMN metadata_error TEXT;

-- Sign-ins per tenant and hour (the Web Manager's chart): counted in memory and added here
-- every 10 seconds (no write per login); rows older than a day and an hour are dropped.
CREATE TABLE activity_hours (
    tenant TEXT NOT NULL,
    hour INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    PRIMARY KEY (tenant, hour)
) WITHOUT ROWID;
CREATE INDEX activity_hours_by_hour ON activity_hours (hour);

-- SAML responses the ACS refused while their tenant captured failures (15 minutes at a time),
-- for the tracer: at most 50 per tenant, 200 in all, none older than 24 hours.
CREATE TABLE failure_captures (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    reference TEXT NOT NULL,
    at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX failure_captures_by_tenant ON failure_captures (tenant, id);
