-- Version 1: logins and sessions.

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

-- Version 2: anonymous sessions, authentication method and time.

SET @expected_ddl = IF(EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'expected_logins' AND column_name = 'authenticated_at'), 'DO 0', 'ALTER TABLE `expected_logins` ADD COLUMN authenticated_at BIGINT NULL');

PREPARE expected_ddl FROM @expected_ddl;

EXECUTE expected_ddl;

DEALLOCATE PREPARE expected_ddl;

UPDATE `expected_logins` SET authenticated_at = created_at WHERE authenticated_at IS NULL;

SET @expected_ddl = IF(EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'expected_sessions' AND column_name = 'method'), 'DO 0', 'ALTER TABLE `expected_sessions` ADD COLUMN method VARCHAR(16) NULL, ADD COLUMN authenticated_at BIGINT NULL');

PREPARE expected_ddl FROM @expected_ddl;

EXECUTE expected_ddl;

DEALLOCATE PREPARE expected_ddl;

UPDATE `expected_sessions` SET method = 'remembered', authenticated_at = created_at WHERE method IS NULL AND username <> '';

-- This crate's record of the versions applied.

CREATE TABLE IF NOT EXISTS `expected_migrations` (
    version BIGINT NOT NULL PRIMARY KEY,
    description VARCHAR(255) NOT NULL,
    applied_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO `expected_migrations` (version, description, applied_at) VALUES (1, 'logins and sessions', 0);
INSERT IGNORE INTO `expected_migrations` (version, description, applied_at) VALUES (2, 'anonymous sessions, authentication method and time', 0);
