-- ssogate schema 2 (SQLite).
-- A pending AuthnRequest now travels in the browser, in a MAC'd cookie: nothing is stored for an
-- anonymous visitor before the IdP answers.
DROP TABLE pending_requests;

-- Every SSO and SLO location the IdP offers, by binding (JSON: {"sso":[…],"slo":[…]}).
ALTER TABLE identity_providers ADD COLUMN endpoints TEXT NOT NULL DEFAULT '{}';

-- Failure records: the client address, and how many later refusals from it were folded in.
ALTER TABLE signin_failures ADD COLUMN client TEXT;
ALTER TABLE signin_failures ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0;
CREATE INDEX signin_failures_by_reference ON signin_failures (reference);

-- Secrets of the service shared by every instance (the pending-request MAC key).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
