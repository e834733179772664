-- 001_init.sql: the first schema of credbroker. Applied at start-up; see src/store.c.
-- Times are Unix seconds (UTC). Key material is never stored in clear.

-- Key/value facts about this database: the master-key check value ('kek_check'),
-- an interrupted rotation's state ('rotation'), and so on.
CREATE TABLE meta (
	k TEXT PRIMARY KEY,
	v BLOB NOT NULL
) STRICT;

-- Data keys (DEKs), each wrapped (AES-256-GCM) under the master key.
-- state: 'active' (new secret versions use it; exactly one), 'retiring' (being
-- rotated away from), 'retired' (no secret version uses it any more).
CREATE TABLE data_keys (
	id INTEGER PRIMARY KEY,
	wrapped BLOB NOT NULL,
	state TEXT NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
	created_at INTEGER NOT NULL
) STRICT;

-- Token signing keys (HMAC-SHA256, 256 bits), wrapped under the master key.
-- state: 'active' (signs new tokens; exactly one), 'verify' (old: verifies tokens
-- until retire_after), 'retired'.
CREATE TABLE signing_keys (
	kid TEXT PRIMARY KEY,
	wrapped BLOB NOT NULL,
	state TEXT NOT NULL CHECK (state IN ('active', 'verify', 'retired')),
	created_at INTEGER NOT NULL,
	retire_after INTEGER
) STRICT;

-- Secrets: metadata set by the admin. hosts is a JSON array of host names the
-- secret may ever be sent to.
CREATE TABLE secrets (
	name TEXT PRIMARY KEY,
	hosts TEXT NOT NULL,
	max_ttl_s INTEGER NOT NULL,
	current_version INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

-- Secret versions: ct is nonce || ciphertext || tag under data key key_id, with
-- associated data binding (name, version, key_id).
CREATE TABLE secret_versions (
	name TEXT NOT NULL REFERENCES secrets(name) ON DELETE CASCADE,
	version INTEGER NOT NULL,
	key_id INTEGER NOT NULL REFERENCES data_keys(id),
	ct BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	retired_at INTEGER,
	PRIMARY KEY (name, version)
) STRICT;
CREATE INDEX secret_versions_key ON secret_versions(key_id);

-- Grants: the authority for every token. bindings is a JSON array (see docs/api).
-- max_uses 0 means unlimited.
CREATE TABLE grants (
	id TEXT PRIMARY KEY,
	sandbox_id TEXT NOT NULL,
	minted_by TEXT NOT NULL,
	kid TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	not_before INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	max_uses INTEGER NOT NULL DEFAULT 0,
	uses INTEGER NOT NULL DEFAULT 0,
	revoked_at INTEGER,
	has_inject INTEGER NOT NULL DEFAULT 0,
	bindings TEXT NOT NULL
) STRICT;
CREATE INDEX grants_sandbox ON grants(sandbox_id, expires_at);
CREATE INDEX grants_expiry ON grants(expires_at);
CREATE INDEX grants_minted_by ON grants(minted_by);

-- The audit log: append-only, hash-chained. hash = SHA-256(prev_hash || canonical
-- encoding of this row's other columns); see src/audit.c.
CREATE TABLE audit (
	seq INTEGER PRIMARY KEY,
	ts INTEGER NOT NULL,
	actor TEXT NOT NULL,
	role TEXT NOT NULL,
	action TEXT NOT NULL,
	outcome TEXT NOT NULL,
	grant_id TEXT,
	sandbox_id TEXT,
	detail TEXT,
	prev_hash BLOB NOT NULL,
	hash BLOB NOT NULL
) STRICT;
