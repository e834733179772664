/* err.h: the one error enum of credbroker; every function returns 0 or one of these. */
#ifndef CB_ERR_H
#define CB_ERR_H

enum cb_err {
	CB_OK = 0,
	CB_ERR_NOMEM = -1,	/* allocation failed */
	CB_ERR_IO = -2,		/* file or socket I/O failed (errno is set) */
	CB_ERR_INVAL = -3,	/* malformed input or argument */
	CB_ERR_CRYPTO = -4,	/* a crypto library call failed */
	CB_ERR_DB = -5,		/* SQLite failed */
	CB_ERR_NOTFOUND = -6,	/* no such object */
	CB_ERR_EXISTS = -7,	/* object already exists */
	CB_ERR_PERM = -8,	/* file ownership or mode is unsafe */
	CB_ERR_VERSION = -9,	/* database schema newer than this binary */
	CB_ERR_AUTH = -10,	/* authentication failed (bad MAC, wrong key) */
	CB_ERR_CONFIG = -11,	/* configuration invalid */
	CB_ERR_DENIED = -12,	/* refused by policy */
	CB_ERR_LIMIT = -13,	/* a size or count limit was exceeded */
	CB_ERR_CORRUPT = -14,	/* stored data is damaged */
	CB_ERR_BUSY = -15,	/* try again later (queue full, shutting down) */
};

/* Returns a static, human-readable description of an error code. */
const char *cb_strerror(int err);

#endif
