-- Frozen: schema/mysql.sql as version 1 shipped it (commit d0a5a23), the database
-- the upgrade test migrates. Never regenerate it.

CREATE TABLE IF NOT EXISTS `expected_logins` (
    username VARBINARY(255) NOT NULL,
    serial BINARY(16) NOT NULL,
    token BINARY(32) NOT NULL,
    previous_token BINARY(32) NULL,
    previous_rotated_at BIGINT NULL,
    previous_sealed BINARY(64) NULL,
    session_digest BINARY(32) NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    client_ip VARCHAR(64) NULL,
    user_agent TEXT NULL,
    PRIMARY KEY (username, serial),
    INDEX `expected_logins_expires_at_idx` (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `expected_sessions` (
    username VARBINARY(255) NOT NULL,
    digest BINARY(32) NOT NULL,
    login_serial BINARY(16) NULL,
    data LONGTEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (username, digest),
    INDEX `expected_sessions_login_idx` (username, login_serial),
    INDEX `expected_sessions_expires_at_idx` (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `expected_migrations` (
    version BIGINT NOT NULL PRIMARY KEY,
    description VARCHAR(255) NOT NULL,
    applied_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO `expected_migrations` (version, description, applied_at) VALUES (1, 'logins and sessions', 0);
