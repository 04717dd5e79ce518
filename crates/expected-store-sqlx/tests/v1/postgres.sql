-- Frozen: schema/postgres.sql as version 1 shipped it (commit d0a5a23), the database
-- the upgrade test migrates. Never regenerate it.

CREATE TABLE IF NOT EXISTS "expected_logins" (
    username TEXT NOT NULL,
    serial BYTEA NOT NULL,
    token BYTEA NOT NULL,
    previous_token BYTEA,
    previous_rotated_at BIGINT,
    previous_sealed BYTEA,
    session_digest BYTEA,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    client_ip TEXT,
    user_agent TEXT,
    PRIMARY KEY (username, serial)
);

CREATE INDEX IF NOT EXISTS "expected_logins_expires_at_idx" ON "expected_logins" (expires_at);

CREATE TABLE IF NOT EXISTS "expected_sessions" (
    username TEXT NOT NULL,
    digest BYTEA NOT NULL,
    login_serial BYTEA,
    data JSON NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (username, digest)
);

CREATE INDEX IF NOT EXISTS "expected_sessions_login_idx" ON "expected_sessions" (username, login_serial);

CREATE INDEX IF NOT EXISTS "expected_sessions_expires_at_idx" ON "expected_sessions" (expires_at);

CREATE TABLE IF NOT EXISTS "expected_migrations" (
    version BIGINT NOT NULL PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at BIGINT NOT NULL
);

INSERT INTO "expected_migrations" (version, description, applied_at) VALUES (1, 'logins and sessions', 0) ON CONFLICT DO NOTHING;
