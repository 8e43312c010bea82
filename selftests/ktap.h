/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ktap.h - tiny header-only KTAP (version 1) emitter for orch selftests.
 *
 * Output goes to stdout, which is usually a pipe to the orchestrator, so
 * every line is flushed as soon as it is written.  Layout produced:
 *
 *   KTAP version 1
 *   1..N
 *   # diagnostics belonging to test 1
 *   ok 1 first_test
 *   not ok 2 second_test
 *   ok 3 third_test # SKIP reason
 *
 * ktap_run_cases() also prints "# time=<ms>ms" just before each result
 * line: the test's wall time, which orch reports per testcase.
 *
 * Two ways to use it:
 *
 *  1. By hand: ktap_header(); ktap_plan(n); then for each test print
 *     diagnostics with ktap_diag() and finish it with exactly one of
 *     ktap_pass()/ktap_fail()/ktap_skip(); end with
 *     return ktap_finish();
 *
 *  2. With the runner: describe the tests in a struct ktap_case table and
 *     call ktap_run_cases(); each test function runs in a forked child
 *     (so a crash or a hang in one test is reported as "not ok" for that
 *     test and the others still run) and returns KTAP_PASS, KTAP_FAIL or
 *     ktap_skip_because("reason ...").
 *
 * Exit status convention (ktap_finish): 0 when nothing failed, 1 otherwise
 * (a plan/result count mismatch counts as a failure).
 */
#ifndef ORCH_SELFTESTS_KTAP_H
#define ORCH_SELFTESTS_KTAP_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KTAP_PASS 0
#define KTAP_FAIL 1
#define KTAP_SKIP 2

#define KTAP_PRINTF(a, b) __attribute__((format(printf, a, b)))

struct ktap_state {
	int planned;
	int reported;
	int passed;
	int failed;
	int skipped;
};

static struct ktap_state ktap_st;

/* Flush stdout (and stderr) so each KTAP line leaves the process at once. */
static inline void ktap_flush(void)
{
	fflush(stdout);
	fflush(stderr);
}

/* Monotonic time in microseconds, for the per-test "# time=" line. */
static inline long long ktap_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static inline void ktap_header(void)
{
	printf("KTAP version 1\n");
	ktap_flush();
}

static inline void ktap_plan(int n)
{
	ktap_st.planned = n;
	printf("1..%d\n", n);
	ktap_flush();
}

/*
 * Print a diagnostic.  Every line of the formatted text gets the "# "
 * prefix, so multi-line messages stay valid KTAP.  Call it BEFORE the
 * result line of the test it belongs to.
 */
static inline void ktap_vdiag(const char *fmt, va_list ap)
{
	char buf[4096];
	char *line, *nl;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	line = buf;
	for (;;) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (*line || !nl)
			printf("# %s\n", line);
		if (!nl || !nl[1])
			break;
		line = nl + 1;
	}
	ktap_flush();
}

static inline KTAP_PRINTF(1, 2) void ktap_diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ktap_vdiag(fmt, ap);
	va_end(ap);
}

static inline void ktap_pass(const char *name)
{
	ktap_st.reported++;
	ktap_st.passed++;
	printf("ok %d %s\n", ktap_st.reported, name);
	ktap_flush();
}

static inline void ktap_fail(const char *name)
{
	ktap_st.reported++;
	ktap_st.failed++;
	printf("not ok %d %s\n", ktap_st.reported, name);
	ktap_flush();
}

static inline KTAP_PRINTF(2, 3) void ktap_skip(const char *name,
					       const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	/* a reason must stay on the result line */
	for (char *p = reason; *p; p++)
		if (*p == '\n' || *p == '#')
			*p = ' ';
	ktap_st.reported++;
	ktap_st.skipped++;
	printf("ok %d %s # SKIP %s\n", ktap_st.reported, name, reason);
	ktap_flush();
}

/* Report pass/fail from a boolean. */
static inline void ktap_result(int passed, const char *name)
{
	if (passed)
		ktap_pass(name);
	else
		ktap_fail(name);
}

/* Final summary; returns the process exit status (0 ok, 1 failures). */
static inline int ktap_finish(void)
{
	if (ktap_st.reported != ktap_st.planned) {
		ktap_diag("planned %d tests but reported %d",
			  ktap_st.planned, ktap_st.reported);
		ktap_st.failed++;
	}
	ktap_diag("totals: pass:%d fail:%d skip:%d",
		  ktap_st.passed, ktap_st.failed, ktap_st.skipped);
	return ktap_st.failed ? 1 : 0;
}

/* ---------------------------------------------------------------------
 * Forking runner.
 */

struct ktap_case {
	const char *name;
	int (*fn)(void);	/* returns KTAP_PASS, KTAP_FAIL or KTAP_SKIP */
	unsigned int needs;	/* requirement bits, see ktap_needs_hook */
	unsigned int timeout_s;	/* 0: the runner's default */
};

/*
 * Requirements: a case's `needs` bits are handed to this hook (set by the
 * binary before ktap_run_cases()) in the parent, before the case is
 * forked.  It returns NULL when they are met, else the skip reason; the
 * case is then reported skipped without running.
 */
static const char *(*ktap_needs_hook)(unsigned int needs);

/* Skip reason is passed from the child to the parent through this page. */
static char *ktap_skip_reason_buf;
#define KTAP_REASON_MAX 512

/*
 * Record the skip reason and return KTAP_SKIP:
 *	return ktap_skip_because("UFFD_FEATURE_MOVE not offered");
 */
static inline KTAP_PRINTF(1, 2) int ktap_skip_because(const char *fmt, ...)
{
	static char local[KTAP_REASON_MAX];
	char *dst = ktap_skip_reason_buf ? ktap_skip_reason_buf : local;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, KTAP_REASON_MAX, fmt, ap);
	va_end(ap);
	return KTAP_SKIP;
}

/*
 * Run the cases, each in its own child process with a timeout of
 * the case's timeout_s, else timeout_s seconds (0: none).  Arguments after argv[0], if any, select
 * tests by exact name (the plan then counts only the selected ones).
 * Prints header, plan, all results; returns the exit status.
 */
static inline int ktap_run_cases(const struct ktap_case *cases, int n,
				 unsigned int timeout_s, int argc, char **argv)
{
	int selected = 0;
	int i, j;

	for (j = 1; j < argc; j++) {
		for (i = 0; i < n; i++)
			if (!strcmp(argv[j], cases[i].name))
				break;
		if (i == n) {
			fprintf(stderr, "unknown test name: %s\n", argv[j]);
			return 2;
		}
	}

	ktap_skip_reason_buf = mmap(NULL, KTAP_REASON_MAX,
				    PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ktap_skip_reason_buf == MAP_FAILED)
		ktap_skip_reason_buf = NULL;

	for (i = 0; i < n; i++) {
		int want = argc <= 1;

		for (j = 1; j < argc; j++)
			if (!strcmp(argv[j], cases[i].name))
				want = 1;
		selected += want;
	}

	ktap_header();
	ktap_plan(selected);

	for (i = 0; i < n; i++) {
		int want = argc <= 1, status = 0, res;
		unsigned int tmo;
		long long start, us;
		pid_t pid, w;

		for (j = 1; j < argc; j++)
			if (!strcmp(argv[j], cases[i].name))
				want = 1;
		if (!want)
			continue;

		if (cases[i].needs && ktap_needs_hook) {
			const char *why = ktap_needs_hook(cases[i].needs);

			if (why) {
				ktap_skip(cases[i].name, "%s", why);
				continue;
			}
		}
		tmo = cases[i].timeout_s ? cases[i].timeout_s : timeout_s;
		if (ktap_skip_reason_buf)
			ktap_skip_reason_buf[0] = '\0';
		ktap_flush();
		start = ktap_now_us();
		pid = fork();
		if (pid < 0) {
			ktap_diag("fork failed: %s", strerror(errno));
			ktap_fail(cases[i].name);
			continue;
		}
		if (pid == 0) {
			if (tmo) {
				signal(SIGALRM, SIG_DFL);
				alarm(tmo);
			}
			res = cases[i].fn();
			ktap_flush();
			_exit(res);
		}
		do {
			w = waitpid(pid, &status, 0);
		} while (w < 0 && errno == EINTR);
		us = ktap_now_us() - start;
		ktap_diag("time=%lld.%03lldms", us / 1000, us % 1000);

		if (w < 0) {
			ktap_diag("waitpid failed: %s", strerror(errno));
			ktap_fail(cases[i].name);
		} else if (WIFSIGNALED(status)) {
			if (WTERMSIG(status) == SIGALRM)
				ktap_diag("test timed out after %u s", tmo);
			else
				ktap_diag("test process killed by signal %d (%s)",
					  WTERMSIG(status),
					  strsignal(WTERMSIG(status)));
			ktap_fail(cases[i].name);
		} else if (WEXITSTATUS(status) == KTAP_PASS) {
			ktap_pass(cases[i].name);
		} else if (WEXITSTATUS(status) == KTAP_SKIP) {
			ktap_skip(cases[i].name, "%s",
				  ktap_skip_reason_buf && ktap_skip_reason_buf[0]
				  ? ktap_skip_reason_buf : "no reason given");
		} else {
			if (WEXITSTATUS(status) != KTAP_FAIL)
				ktap_diag("test process exited with status %d",
					  WEXITSTATUS(status));
			ktap_fail(cases[i].name);
		}
	}
	return ktap_finish();
}

#define KTAP_ARRAY_SIZE(a) ((int)(sizeof(a) / sizeof((a)[0])))

#endif /* ORCH_SELFTESTS_KTAP_H */
