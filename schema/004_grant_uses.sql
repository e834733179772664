-- 004_grant_uses.sql: the uses a resolve counts, in a narrow table of their own.
--
-- Every granted resolve counts a use in the commit thread's transaction. Counting it in
-- grants rewrote the whole row (its bindings with it) and dirtied a grants page per
-- resolve in each group commit (~11 % of the broker's CPU per resolve in bench/,
-- docs/performance.md D10). grant_uses holds only the count, keyed like grants on
-- (expires_at, id) so that the grants in use together (minted together) share pages and
-- the purge deletes a contiguous range of it with the same bounds as grants.
--
-- A grant's uses are grants.uses (the uses it was stored with: 0 when minted; counted
-- there before this schema) plus its grant_uses row's, if it has one. A row without a
-- grant (deleted by a tool) is never read, since every read joins from grants, and goes
-- with the next purge of its range.

CREATE TABLE grant_uses (
	expires_at INTEGER NOT NULL,
	id TEXT NOT NULL,
	uses INTEGER NOT NULL,
	PRIMARY KEY (expires_at, id)
) STRICT, WITHOUT ROWID;
