/* store_grant.h: SQL for the grant table (src/store_grant.c); included by store.h. Owned by the grants/audit work. */
#ifndef CB_STORE_GRANT_H
#define CB_STORE_GRANT_H

#endif
