-- Revoked grants are purged through this index (store_grant_purge_revoked_indexed):
-- without it every purge of revocations walked the whole grants table. Partial:
-- only revoked rows are in it, so minting and resolving never touch it.
CREATE INDEX grants_revoked ON grants(revoked_at) WHERE revoked_at IS NOT NULL;
