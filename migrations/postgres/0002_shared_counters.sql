-- ssogate schema 2 (PostgreSQL): counters every instance adds to, so that the per-client limits
-- (failure records, Circuit starts, password delays) hold for the cluster, not per instance.
-- A key names its window (e.g. the minute); a row is dropped by the purge once it expires.
CREATE TABLE shared_counters (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX shared_counters_by_expiry ON shared_counters (expires_at);
