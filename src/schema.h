/* schema.h: the SQL migrations in schema/, embedded at build time (src/schema_sql.c). */
#ifndef CB_SCHEMA_H
#define CB_SCHEMA_H

struct schema_migration {
	int version;		/* NNN of NNN_name.sql; applied in order, tracked by PRAGMA user_version */
	const char *name;
	const char *sql;
};

extern const struct schema_migration schema_migrations[];
extern const int schema_migration_count;

#endif
