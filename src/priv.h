/* priv.h: process hardening: no core dumps, privilege drop, seccomp. */
#ifndef CB_PRIV_H
#define CB_PRIV_H

/* Disables core dumps (RLIMIT_CORE 0, PR_SET_DUMPABLE 0). Returns 0 or CB_ERR_IO. */
int priv_no_core(void);
/* When running as root and user is not NULL: setgroups/setgid/setuid to user. */
int priv_drop(const char *user);
/*
 * Installs the seccomp allowlist of a serving daemon ("broker" or "proxy") on every
 * thread of the process (TSYNC; threads created later inherit it). A call outside the
 * list kills the process with SIGSYS. Returns 0, CB_ERR_INVAL (bad profile), or
 * CB_ERR_PERM when the kernel (or valgrind) refuses the filter.
 */
int priv_seccomp(const char *profile);

#endif
