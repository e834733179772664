/* store_audit.h: SQL for the audit table (src/store_audit.c); included by store.h. Owned by the grants/audit work. */
#ifndef CB_STORE_AUDIT_H
#define CB_STORE_AUDIT_H

#endif
