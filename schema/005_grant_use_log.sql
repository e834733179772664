-- 005_grant_use_log.sql: the uses of unlimited grants, appended instead of counted in place.
--
-- A grant without a use limit needs its uses only for display (GET /v1/grants/{id}).
-- Counting each of them in grant_uses dirtied one random page of grant_uses per resolve
-- in every group commit (~16 pages of WAL per batch in bench/ scenario 1; ~20 % of the
-- broker's CPU per resolve, docs/performance.md D13). Such a use is now a row appended
-- here, in the same transaction as the resolve's audit record (as durable as before):
-- appends share the log's last page. Once the log holds STORE_USE_LOG_FOLD rows
-- (store_grant.h), the commit thread folds it into grant_uses (one upsert per grant)
-- and empties it, in the same transaction.
--
-- A grant's uses are grants.uses + its grant_uses row + its rows here. Grants with a
-- use limit are still counted in grant_uses at once: their limit is checked in the
-- transaction. A grant purged before the fold leaves a grant_uses row without a grant,
-- never read (reads join from grants); the next purge of its expiry's range deletes it.

CREATE TABLE grant_use_log (
	seq INTEGER PRIMARY KEY,
	expires_at INTEGER NOT NULL,
	id TEXT NOT NULL
) STRICT;
