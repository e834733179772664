/* err.c: descriptions of the error codes in err.h. */
#include "config.h"

#include "err.h"

const char *
cb_strerror(int err)
{
	switch (err) {
	case CB_OK:		return "success";
	case CB_ERR_NOMEM:	return "out of memory";
	case CB_ERR_IO:		return "I/O error";
	case CB_ERR_INVAL:	return "invalid input";
	case CB_ERR_CRYPTO:	return "cryptographic library failure";
	case CB_ERR_DB:		return "database error";
	case CB_ERR_NOTFOUND:	return "not found";
	case CB_ERR_EXISTS:	return "already exists";
	case CB_ERR_PERM:	return "unsafe file ownership or permissions";
	case CB_ERR_VERSION:	return "database schema is newer than this program";
	case CB_ERR_AUTH:	return "authentication failed";
	case CB_ERR_CONFIG:	return "invalid configuration";
	case CB_ERR_DENIED:	return "denied by policy";
	case CB_ERR_LIMIT:	return "limit exceeded";
	case CB_ERR_CORRUPT:	return "stored data is damaged";
	case CB_ERR_BUSY:	return "busy";
	}
	return "unknown error";
}
