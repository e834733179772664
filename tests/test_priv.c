/*
 * test_priv.c: process hardening (src/priv.c). Every case that changes the process
 * (rlimits, dumpable flag, credentials, seccomp) runs in a forked child, so the test
 * process itself is left as it was. Children end with _exit (no atexit handlers, no
 * leak checker running under a seccomp filter).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/netlink.h>

#include <cmocka.h>

#include "err.h"
#include "log.h"
#include "priv.h"

/* Child exit codes: 0 ok, anything else names the check that failed. */
#define CHILD_OK	0

/* Runs fn in a forked child; returns its wait status. Bounded: waitpid blocks until it ends. */
static int
in_child(int (*fn)(void *), void *arg)
{
	pid_t pid;
	int status = 0;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void
assert_child_ok(int status)
{
	if (WIFSIGNALED(status))
		fail_msg("child killed by signal %d", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), CHILD_OK);
}

/* valgrind (3.19) does not implement seccomp(2), and its own calls would not be listed. */
static int
under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");

	return p != NULL && strstr(p, "vgpreload") != NULL;
}

/* --- priv_no_core -------------------------------------------------------------- */

static int
child_no_core(void *arg)
{
	struct rlimit rl;

	(void)arg;
	if (priv_no_core() != 0)
		return 1;
	if (getrlimit(RLIMIT_CORE, &rl) != 0)
		return 2;
	if (rl.rlim_cur != 0 || rl.rlim_max != 0)
		return 3;
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		return 4;
	/* The hard limit is 0: the limit cannot be raised back by the process itself. */
	rl.rlim_cur = RLIM_INFINITY;
	rl.rlim_max = RLIM_INFINITY;
	if (getuid() != 0 && setrlimit(RLIMIT_CORE, &rl) == 0)
		return 5;
	return CHILD_OK;
}

static void
test_no_core_settings(void **state)
{
	(void)state;
	assert_child_ok(in_child(child_no_core, NULL));
}

/* Raises the core limit as far as allowed, optionally hardens, then aborts. */
static int
child_abort(void *arg)
{
	struct rlimit rl;
	int harden = *(int *)arg;

	if (getrlimit(RLIMIT_CORE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_CORE, &rl);
	}
	if (harden && priv_no_core() != 0)
		return 1;
	/* Default action, not a handler a sanitizer may have installed. */
	signal(SIGSEGV, SIG_DFL);
	raise(SIGSEGV);
	return 2;
}

/* Removes every core* file in dir (every file when all is set); returns how many core* there were. */
static int
remove_files(const char *dir, int all)
{
	DIR *dp;
	struct dirent *de;
	char path[PATH_MAX];
	int n = 0, i;

	assert_non_null(dp = opendir(dir));
	for (i = 0; i < 10000 && (de = readdir(dp)) != NULL; i++) {
		if (de->d_name[0] == '.')
			continue;
		if (strncmp(de->d_name, "core", 4) == 0)
			n++;
		else if (!all)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		(void)unlink(path);
	}
	closedir(dp);
	return n;
}

static void
test_no_core_segv(void **state)
{
	char tmpl[] = "/tmp/test_priv.XXXXXX", cwd[PATH_MAX];
	int status, harden, control_dumped;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_non_null(mkdtemp(tmpl));
	assert_int_equal(chdir(tmpl), 0);

	/* Control: whether this system dumps a core at all for an unhardened child. */
	harden = 0;
	status = in_child(child_abort, &harden);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSEGV);
	control_dumped = remove_files(tmpl, 0) > 0;
	control_dumped |= WCOREDUMP(status) != 0;

	harden = 1;
	status = in_child(child_abort, &harden);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSEGV);
	assert_false(WCOREDUMP(status));
	assert_int_equal(remove_files(tmpl, 0), 0);
	if (!control_dumped)
		print_message("note: this system dumped no core for the control child either "
		    "(core_pattern or limits); only the flags were checked\n");

	assert_int_equal(chdir(cwd), 0);
	/* valgrind leaves its own vgcore.PID files. */
	(void)remove_files(tmpl, 1);
	assert_int_equal(rmdir(tmpl), 0);
}

/* --- priv_drop -------------------------------------------------------------------- */

static void
test_drop_null(void **state)
{
	(void)state;
	/* No user configured: nothing to do, whoever we are. */
	assert_int_equal(priv_drop(NULL), 0);
}

static int
child_drop_refused(void *arg)
{
	uid_t r, e, s;

	(void)arg;
	if (priv_drop("cb-no-such-user-7f3a") != CB_ERR_NOTFOUND)
		return 1;
	/* A user whose uid is 0 is no privilege drop: refused. */
	if (priv_drop("root") != CB_ERR_CONFIG)
		return 2;
	if (getresuid(&r, &e, &s) != 0 || r != 0 || e != 0 || s != 0)
		return 3;
	return CHILD_OK;
}

static void
test_drop_refusals(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	assert_child_ok(in_child(child_drop_refused, NULL));
}

static int
child_drop_nobody(void *arg)
{
	const struct passwd *pw = arg;
	uid_t r, e, s;
	gid_t gr, ge, gs, groups[8];
	int n;

	if (priv_no_core() != 0)
		return 1;
	if (priv_drop("nobody") != 0)
		return 2;
	if (getresuid(&r, &e, &s) != 0 || r != pw->pw_uid || e != pw->pw_uid || s != pw->pw_uid)
		return 3;
	if (getresgid(&gr, &ge, &gs) != 0 || gr != pw->pw_gid || ge != pw->pw_gid ||
	    gs != pw->pw_gid)
		return 4;
	n = getgroups(8, groups);
	if (n < 0 || n > 1 || (n == 1 && groups[0] != pw->pw_gid))
		return 5;
	/* Root cannot be regained. */
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0)
		return 6;
	/* The credential change must not have made the process dumpable again. */
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		return 7;
	/* A root-only file is now out of reach. */
	if (open("/etc/shadow", O_RDONLY) != -1 || errno != EACCES)
		return 8;
	return CHILD_OK;
}

static void
test_drop_nobody(void **state)
{
	struct passwd *pw = NULL, copy;

	(void)state;
	if (geteuid() == 0)
		pw = getpwnam("nobody");
	if (pw == NULL || pw->pw_uid == 0) {
		skip();
		return;
	}
	copy = *pw;
	assert_child_ok(in_child(child_drop_nobody, &copy));
}

static int
child_drop_not_root(void *arg)
{
	(void)arg;
	/* As an ordinary user the call changes nothing and succeeds (the daemon was not started as root). */
	if (setresuid(65534, 65534, 65534) != 0)
		return 1;
	if (priv_drop("root") != 0 || getuid() != 65534)
		return 2;
	return CHILD_OK;
}

static void
test_drop_not_root(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	assert_child_ok(in_child(child_drop_not_root, NULL));
}

/* --- priv_seccomp ----------------------------------------------------------------- */

static void
test_seccomp_bad_profile(void **state)
{
	(void)state;
	assert_int_equal(priv_seccomp(NULL), CB_ERR_INVAL);
	assert_int_equal(priv_seccomp(""), CB_ERR_INVAL);
	assert_int_equal(priv_seccomp("Broker"), CB_ERR_INVAL);
	assert_int_equal(priv_seccomp("broker "), CB_ERR_INVAL);
}

/* Forbidden calls the tests make (any value but 0). */
enum sc_call {
	SC_NONE = 0, SC_SOCKET_INET, SC_SOCKET_PACKET, SC_SOCKET_NETLINK_OTHER, SC_EXECVE,
	SC_PTRACE, SC_MOUNT, SC_THREAD_EXECVE
};

struct sc_case {
	const char *profile;
	enum sc_call forbidden;
};

/* The forbidden call; returns only when it was not stopped. */
static int
sc_make_call(enum sc_call call)
{
	char *const argv[] = { (char *)"/bin/true", NULL };
	int fd;

	switch (call) {
	case SC_SOCKET_INET:
		/* The broker never opens a socket once it serves. */
		fd = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
		return fd >= 0 ? 20 : 21;
	case SC_SOCKET_PACKET:
		/* Link-layer sockets: not even the proxy (inet, inet6, unix, netlink route). */
		fd = (int)syscall(SYS_socket, AF_PACKET, SOCK_RAW, 0);
		return fd >= 0 ? 22 : 23;
	case SC_SOCKET_NETLINK_OTHER:
		fd = (int)syscall(SYS_socket, AF_NETLINK, SOCK_RAW, NETLINK_AUDIT);
		return fd >= 0 ? 24 : 25;
	case SC_EXECVE:
		(void)syscall(SYS_execve, "/bin/true", argv, NULL);
		return 26;
	case SC_PTRACE:
		(void)syscall(SYS_ptrace, PTRACE_TRACEME, 0, NULL, NULL);
		return 27;
	case SC_MOUNT:
		(void)syscall(SYS_mount, "none", "/nonexistent", "tmpfs", 0UL, NULL);
		return 28;
	default:
		return 29;
	}
}

/* A thread started before the filter: TSYNC must have given it the filter too. */
struct sc_thread {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int go;
	enum sc_call call;
	int result;
};

static void *
sc_thread_main(void *arg)
{
	struct sc_thread *t = arg;
	struct timespec ts;
	int i;

	pthread_mutex_lock(&t->mu);
	for (i = 0; i < 100 && !t->go; i++) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		(void)pthread_cond_timedwait(&t->cv, &t->mu, &ts);
	}
	pthread_mutex_unlock(&t->mu);
	t->result = t->go ? sc_make_call(t->call) : 30;
	return NULL;
}

static int
child_seccomp(void *arg)
{
	const struct sc_case *c = arg;
	struct sc_thread t;
	pthread_t th;
	char buf[1];
	int p[2], sv[2], fd;

	/* Like the daemon: no core of the killed child. */
	if (priv_no_core() != 0)
		return 1;
	if (pipe(p) != 0)
		return 2;
	memset(&t, 0, sizeof(t));
	pthread_mutex_init(&t.mu, NULL);
	pthread_cond_init(&t.cv, NULL);
	t.call = SC_EXECVE;
	if (c->forbidden == SC_THREAD_EXECVE && pthread_create(&th, NULL, sc_thread_main, &t) != 0)
		return 3;
	if (priv_seccomp(c->profile) != 0)
		return 4;
	/* What a serving daemon does keeps working. */
	if (write(p[1], "x", 1) != 1 || read(p[0], buf, 1) != 1 || buf[0] != 'x')
		return 5;
	(void)getpid();
	if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return 6;
	close(fd);
	if (c->forbidden == SC_THREAD_EXECVE) {
		/* The other thread, not this one, makes the call. */
		pthread_mutex_lock(&t.mu);
		t.go = 1;
		pthread_cond_signal(&t.cv);
		pthread_mutex_unlock(&t.mu);
		(void)pthread_join(th, NULL);
		return t.result != 0 ? t.result : 31;
	}
	if (c->forbidden != SC_NONE)
		return sc_make_call(c->forbidden);
	/* The proxy dials (inet, inet6), resolves (netlink route, unix to nscd) and libcurl
	 * wakes itself over a unix socketpair. */
	if (strcmp(c->profile, "proxy") == 0) {
		if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			return 10;
		close(fd);
		if ((fd = socket(AF_INET6, SOCK_DGRAM, 0)) < 0 && errno != EAFNOSUPPORT)
			return 11;
		if (fd >= 0)
			close(fd);
		if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) < 0)
			return 12;
		close(fd);
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
			return 13;
		close(fd);
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
			return 14;
		close(sv[0]);
		close(sv[1]);
	}
	/* A thread started under the filter works (it inherits the filter). */
	t.go = 1;
	t.call = SC_NONE;
	if (pthread_create(&th, NULL, sc_thread_main, &t) != 0)
		return 15;
	(void)pthread_join(th, NULL);
	if (t.result != 29)
		return 16;
	return CHILD_OK;
}

static void
test_seccomp_allowed(void **state)
{
	static const struct sc_case cases[] = {
		{ "broker", SC_NONE },
		{ "proxy", SC_NONE },
	};
	size_t i;

	(void)state;
	if (under_valgrind())
		skip();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_child_ok(in_child(child_seccomp, (void *)&cases[i]));
}

static void
test_seccomp_forbidden(void **state)
{
	static const struct sc_case cases[] = {
		{ "broker", SC_SOCKET_INET },
		{ "broker", SC_SOCKET_PACKET },
		{ "broker", SC_EXECVE },
		{ "broker", SC_MOUNT },
		{ "broker", SC_THREAD_EXECVE },
		{ "proxy", SC_SOCKET_PACKET },
		{ "proxy", SC_SOCKET_NETLINK_OTHER },
		{ "proxy", SC_EXECVE },
		{ "proxy", SC_MOUNT },
		{ "proxy", SC_THREAD_EXECVE },
#ifndef CB_SANITIZERS
		/* Sanitizer builds allow ptrace: LeakSanitizer stops the world with it at exit. */
		{ "broker", SC_PTRACE },
		{ "proxy", SC_PTRACE },
#endif
	};
	size_t i;
	int status;

	(void)state;
	/* valgrind 3.19 does not implement the seccomp system call. */
	if (under_valgrind())
		skip();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		status = in_child(child_seccomp, (void *)&cases[i]);
		/* The whole process is killed (SCMP_ACT_KILL_PROCESS), never an EPERM answer. */
		if (!WIFSIGNALED(status))
			fail_msg("%s: forbidden call %d not killed (exit %d)", cases[i].profile,
			    (int)cases[i].forbidden, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		assert_int_equal(WTERMSIG(status), SIGSYS);
		assert_false(WCOREDUMP(status));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_core_settings),
		cmocka_unit_test(test_no_core_segv),
		cmocka_unit_test(test_drop_null),
		cmocka_unit_test(test_drop_refusals),
		cmocka_unit_test(test_drop_nobody),
		cmocka_unit_test(test_drop_not_root),
		cmocka_unit_test(test_seccomp_bad_profile),
		cmocka_unit_test(test_seccomp_allowed),
		cmocka_unit_test(test_seccomp_forbidden),
	};

	log_init("test_priv", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
