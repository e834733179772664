/*
 * priv.c: process hardening. No core dumps (a core of the broker would hold the
 * unwrapped keys), dropping root for the configured user, and the seccomp allowlist
 * of a serving daemon (`seccomp yes`, the default on Linux).
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <linux/netlink.h>

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
 * it listens: install the filter after server start-up and after priv_drop. The lists
 * were checked by running the whole integration suite (default and ASan builds) with the
 * filter on: put, mint, resolve, audit, data-key, signing-key and master-key rotation,
 * metrics, revoke, purge, SIGTERM drain; for the proxy also upstream DNS, reconnects to
 * the broker and SIGHUP reloads. SQLite calls fchown on new WAL files when running as
 * root, and the broker's main thread waits for signals with sigwait (rt_sigtimedwait).
 * Never listed: execve/execveat, ptrace (except in sanitizer builds, see below),
 * mount, kexec, bpf, module and key management, process_vm_*, and, for the broker,
 * socket/connect/bind/listen (it opens no socket once it serves).
 */
static const int priv_allow_common[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(close), SCMP_SYS(fstat),
	SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(stat), SCMP_SYS(lstat),
	SCMP_SYS(lseek), SCMP_SYS(openat), SCMP_SYS(open), SCMP_SYS(fcntl),
	SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(ftruncate), SCMP_SYS(unlink),
	SCMP_SYS(unlinkat), SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(access),
	SCMP_SYS(faccessat), SCMP_SYS(getcwd), SCMP_SYS(flock), SCMP_SYS(readlink),
	SCMP_SYS(getdents64), SCMP_SYS(dup), SCMP_SYS(dup3),
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

/*
 * The proxy also dials upstreams and the broker (libcurl), and resolves upstream names
 * with getaddrinfo (AI_ADDRCONFIG asks the kernel over NETLINK_ROUTE; nscd is tried over
 * a unix socket). socket() is limited to those families: see priv_allow_socket.
 */
static const int priv_allow_proxy[] = {
	SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(listen),
	SCMP_SYS(sendmmsg), SCMP_SYS(recvmmsg), SCMP_SYS(ioctl),
};

#ifdef CB_SANITIZERS
/*
 * AddressSanitizer/LeakSanitizer builds (tests only): the leak check at exit stops the
 * world from a helper task (a clone that shares the filter) which ptrace-attaches to
 * every thread, waits for them and lists /proc/self/task with getdents. Should one of
 * these calls be missing, the helper dies and the daemon hangs at exit. Never in a
 * release build.
 */
static const int priv_allow_sanitizer[] = {
	SCMP_SYS(ptrace), SCMP_SYS(wait4), SCMP_SYS(waitid), SCMP_SYS(getppid),
	SCMP_SYS(getdents), SCMP_SYS(kill), SCMP_SYS(sched_getparam),
	SCMP_SYS(sched_getscheduler), SCMP_SYS(getrlimit), SCMP_SYS(prlimit64),
	SCMP_SYS(munlockall),
};
#endif

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

/* socket(2) for the proxy: IPv4, IPv6, unix, netlink for routing queries; unix socketpair. */
static int
priv_allow_socket(scmp_filter_ctx ctx)
{
	static const int families[] = { AF_INET, AF_INET6, AF_UNIX };
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(families); i++)
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
		    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i])) != 0)
			return CB_ERR_INVAL;
	/* libcurl wakes its multi handle and its resolver threads over a unix socketpair. */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
	    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)AF_UNIX)) != 0)
		return CB_ERR_INVAL;
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
	    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)AF_NETLINK),
	    SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)NETLINK_ROUTE)) != 0)
		return CB_ERR_INVAL;
	return 0;
}

int
priv_seccomp(const char *profile)
{
	scmp_filter_ctx ctx;
	int rc;

	if (profile == NULL || (strcmp(profile, "broker") != 0 && strcmp(profile, "proxy") != 0))
		return CB_ERR_INVAL;
	/*
	 * Anything not listed kills the whole process (SIGSYS, no core: see priv_no_core):
	 * a compromised thread stops here instead of probing with EPERM answers, and a call
	 * we missed shows at once (the kernel logs it, the supervisor restarts the daemon;
	 * crash consistency is tested). See docs/threat-model.md.
	 */
	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		return CB_ERR_NOMEM;
	/* Every thread of the process, not only the caller; later threads inherit it. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) != 0) {
		rc = CB_ERR_INVAL;
		goto out;
	}
	if ((rc = priv_allow(ctx, priv_allow_common, UTIL_ARRAY_LEN(priv_allow_common))) != 0)
		goto out;
	if (strcmp(profile, "proxy") == 0 &&
	    ((rc = priv_allow(ctx, priv_allow_proxy, UTIL_ARRAY_LEN(priv_allow_proxy))) != 0 ||
	    (rc = priv_allow_socket(ctx)) != 0))
		goto out;
#ifdef CB_SANITIZERS
	if ((rc = priv_allow(ctx, priv_allow_sanitizer,
	    UTIL_ARRAY_LEN(priv_allow_sanitizer))) != 0)
		goto out;
	/* A sanitizer report (a SIGSEGV caught by ASan, say) asks isatty(stderr) for colours. */
	if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
	    SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)TCGETS)) != 0) {
		rc = CB_ERR_INVAL;
		goto out;
	}
#endif
	if ((rc = seccomp_load(ctx)) != 0) {
		log_warnx("cannot install the seccomp filter: %s (a kernel without seccomp, or "
		    "valgrind: set 'seccomp no')", strerror(-rc));
		rc = CB_ERR_PERM;
		goto out;
	}
	log_info("seccomp filter '%s' installed", profile);
	rc = 0;
out:
	seccomp_release(ctx);
	return rc;
}
