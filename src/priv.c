/*
 * priv.c: process hardening. No core dumps (a core of the broker would hold the
 * unwrapped keys), dropping root for the configured user, and an optional seccomp
 * allowlist for a serving daemon (never enabled by default).
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include <seccomp.h>

#include "err.h"
#include "log.h"
#include "priv.h"
#include "util.h"

int
priv_no_core(void)
{
	struct rlimit rl;

	rl.rlim_cur = 0;
	rl.rlim_max = 0;
	if (setrlimit(RLIMIT_CORE, &rl) == -1) {
		log_warn("setrlimit(RLIMIT_CORE)");
		return CB_ERR_IO;
	}
	/* Also keeps other processes of the same user from ptrace-attaching or reading /proc/PID/mem. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1) {
		log_warn("prctl(PR_SET_DUMPABLE)");
		return CB_ERR_IO;
	}
	return 0;
}

int
priv_drop(const char *user)
{
	struct passwd *pw;
	uid_t uid, ruid, euid, suid;
	gid_t gid, rgid, egid, sgid;
	int dumpable;

	if (user == NULL)
		return 0;
	if (geteuid() != 0) {
		log_debug("not root: staying uid %u (user %s not applied)", (unsigned)geteuid(),
		    user);
		return 0;
	}
	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		if (errno != 0)
			log_warn("getpwnam(%s)", user);
		else
			log_warnx("no such user: %s", user);
		return CB_ERR_NOTFOUND;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (uid == 0) {
		log_warnx("user %s is uid 0: refusing to serve as root", user);
		return CB_ERR_CONFIG;
	}
	/* Changing credentials resets the dumpable flag; keep what priv_no_core set. */
	dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	if (setgroups(1, &gid) == -1) {
		log_warn("setgroups");
		return CB_ERR_PERM;
	}
	if (setresgid(gid, gid, gid) == -1) {
		log_warn("setresgid(%u)", (unsigned)gid);
		return CB_ERR_PERM;
	}
	if (setresuid(uid, uid, uid) == -1) {
		log_warn("setresuid(%u)", (unsigned)uid);
		return CB_ERR_PERM;
	}
	if (dumpable == 0 && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1) {
		log_warn("prctl(PR_SET_DUMPABLE)");
		return CB_ERR_IO;
	}
	/* Verify: every ID is the user's, and root cannot be regained. */
	if (getresuid(&ruid, &euid, &suid) == -1 || getresgid(&rgid, &egid, &sgid) == -1 ||
	    ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid ||
	    sgid != gid) {
		log_warnx("privilege drop to %s did not take", user);
		return CB_ERR_PERM;
	}
	if (setuid(0) != -1 || seteuid(0) != -1 || setgid(0) != -1) {
		log_warnx("could regain root after dropping to %s", user);
		return CB_ERR_PERM;
	}
	log_info("running as %s (uid %u, gid %u)", user, (unsigned)uid, (unsigned)gid);
	return 0;
}

/*
 * System calls a serving daemon (threads, epoll, TLS, SQLite, files, time) needs once
 * it listens: install the filter after server start-up and after priv_drop. The broker
 * list was checked with strace over a full workload (put, mint, resolve, audit, key
 * rotation, metrics, revoke, SIGTERM drain); SQLite calls fchown on new WAL files when
 * running as root, and main waits for signals with sigwait (rt_sigtimedwait).
 */
static const int priv_allow_common[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(close), SCMP_SYS(fstat),
	SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(stat), SCMP_SYS(lstat),
	SCMP_SYS(lseek), SCMP_SYS(openat), SCMP_SYS(open), SCMP_SYS(fcntl),
	SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(ftruncate), SCMP_SYS(unlink),
	SCMP_SYS(unlinkat), SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(access),
	SCMP_SYS(faccessat), SCMP_SYS(getcwd), SCMP_SYS(flock), SCMP_SYS(readlink),
	SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect),
	SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(mlock), SCMP_SYS(munlock),
	SCMP_SYS(futex), SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(set_robust_list),
	SCMP_SYS(rseq), SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
	SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(gettid), SCMP_SYS(getpid),
	SCMP_SYS(tgkill), SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigtimedwait), SCMP_SYS(sigaltstack),
	SCMP_SYS(restart_syscall), SCMP_SYS(fchown), SCMP_SYS(fchmod),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
	SCMP_SYS(gettimeofday), SCMP_SYS(getrandom),
	SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait), SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(select),
	SCMP_SYS(pselect6), SCMP_SYS(eventfd2), SCMP_SYS(pipe2),
	SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(recvfrom), SCMP_SYS(sendto),
	SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(shutdown),
	SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(setsockopt),
	SCMP_SYS(getsockopt), SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid),
	SCMP_SYS(getegid), SCMP_SYS(uname), SCMP_SYS(prctl),
};

/* The proxy also dials upstreams and the broker. */
static const int priv_allow_proxy[] = {
	SCMP_SYS(socket), SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(listen),
	SCMP_SYS(sendmmsg), SCMP_SYS(recvmmsg), SCMP_SYS(ioctl),
};

static int
priv_allow(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		/* A call unknown to this architecture is negative: skip it. */
		if (calls[i] < 0)
			continue;
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0) != 0)
			return CB_ERR_INVAL;
	}
	return 0;
}

int
priv_seccomp(const char *profile)
{
	scmp_filter_ctx ctx;
	int rc;

	if (profile == NULL || (strcmp(profile, "broker") != 0 && strcmp(profile, "proxy") != 0))
		return CB_ERR_INVAL;
	/* Anything not listed kills the whole process: a compromised thread stops here. */
	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		return CB_ERR_NOMEM;
	/* Every thread of the process, not only the caller. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) != 0) {
		rc = CB_ERR_INVAL;
		goto out;
	}
	if ((rc = priv_allow(ctx, priv_allow_common, UTIL_ARRAY_LEN(priv_allow_common))) != 0)
		goto out;
	if (strcmp(profile, "proxy") == 0 &&
	    (rc = priv_allow(ctx, priv_allow_proxy, UTIL_ARRAY_LEN(priv_allow_proxy))) != 0)
		goto out;
	if (seccomp_load(ctx) != 0) {
		log_warnx("seccomp_load failed");
		rc = CB_ERR_PERM;
		goto out;
	}
	log_info("seccomp filter '%s' installed", profile);
	rc = 0;
out:
	seccomp_release(ctx);
	return rc;
}
