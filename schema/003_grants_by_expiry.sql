-- 003_grants_by_expiry.sql: grants clustered by expiry, so that purging the grants
-- that expired (however many at once) deletes contiguous pages instead of one random
-- page of every index per grant.
--
-- grants is keyed on (expires_at, id) WITHOUT ROWID: the rows that expire together sit
-- together, and a purge is a range delete from the front of the table. Lookups by ID
-- and by sandbox go through two lookup tables that the triggers below fill on insert
-- and that are NOT touched when a grant is deleted: a lookup joins them to grants, so
-- an entry whose grant is gone finds nothing. The purge sweeps their stale entries
-- (expires_at past) later, walking each table in its own key order (contiguous again);
-- see store_grant_sweep in src/store_grant.c. expires_at never changes in the broker;
-- the update trigger keeps the lookup tables right for tools that change it anyway.

CREATE TABLE grants_new (
	expires_at INTEGER NOT NULL,
	id TEXT NOT NULL,
	sandbox_id TEXT NOT NULL,
	minted_by TEXT NOT NULL,
	kid TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	not_before INTEGER NOT NULL,
	max_uses INTEGER NOT NULL DEFAULT 0,
	uses INTEGER NOT NULL DEFAULT 0,
	revoked_at INTEGER,
	has_inject INTEGER NOT NULL DEFAULT 0,
	bindings TEXT NOT NULL,
	PRIMARY KEY (expires_at, id)
) STRICT, WITHOUT ROWID;

INSERT INTO grants_new (expires_at, id, sandbox_id, minted_by, kid, created_at, not_before,
    max_uses, uses, revoked_at, has_inject, bindings)
    SELECT expires_at, id, sandbox_id, minted_by, kid, created_at, not_before,
    max_uses, uses, revoked_at, has_inject, bindings FROM grants;
DROP TABLE grants;
ALTER TABLE grants_new RENAME TO grants;
CREATE INDEX grants_revoked ON grants(revoked_at) WHERE revoked_at IS NOT NULL;

-- Grant ID -> its key in grants. The primary key also keeps grant IDs unique.
CREATE TABLE grant_ids (
	id TEXT PRIMARY KEY,
	expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO grant_ids (id, expires_at) SELECT id, expires_at FROM grants;

-- Sandbox -> its grants' keys (token-less resolve, revoke by sandbox).
CREATE TABLE grant_sandboxes (
	sandbox_id TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	id TEXT NOT NULL,
	PRIMARY KEY (sandbox_id, expires_at, id)
) STRICT, WITHOUT ROWID;
INSERT INTO grant_sandboxes (sandbox_id, expires_at, id)
    SELECT sandbox_id, expires_at, id FROM grants;

CREATE TRIGGER grants_lookup_insert AFTER INSERT ON grants BEGIN
	INSERT INTO grant_ids (id, expires_at) VALUES (NEW.id, NEW.expires_at);
	INSERT INTO grant_sandboxes (sandbox_id, expires_at, id)
	    VALUES (NEW.sandbox_id, NEW.expires_at, NEW.id);
END;

CREATE TRIGGER grants_lookup_update AFTER UPDATE OF id, sandbox_id, expires_at ON grants BEGIN
	DELETE FROM grant_ids WHERE id = OLD.id;
	INSERT INTO grant_ids (id, expires_at) VALUES (NEW.id, NEW.expires_at);
	DELETE FROM grant_sandboxes
	    WHERE sandbox_id = OLD.sandbox_id AND expires_at = OLD.expires_at AND id = OLD.id;
	INSERT INTO grant_sandboxes (sandbox_id, expires_at, id)
	    VALUES (NEW.sandbox_id, NEW.expires_at, NEW.id);
END;
