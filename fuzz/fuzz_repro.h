/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fuzz_repro.h - the main of a reproducer that `orch fuzz` writes for a
 * divergence: one KTAP test that runs the minimized program (the executor's
 * own code, inlined above it) in a fresh process and checks the trace
 * records where the prototype and the reference kernel differed against the
 * reference's values, and that the kernel logged no problem meanwhile.
 *
 * Exit 0 (ok) when the kernel behaves as the reference did, 1 (not ok)
 * otherwise; a kernel that crashes fails the run that runs it; 4 (KSFT_SKIP)
 * when the program uses userfaultfd and the kernel has no UFFDIO_MOVE.
 */
#ifndef FUZZ_REPRO_H
#define FUZZ_REPRO_H

#include <regex.h>

#include "fuzz_env.h"

#define REPRO_TRACE "/tmp/orch-fuzz-repro.trace"
#define ABSENT "<absent>"

/*
 * The kernel log lines that report a problem: orchestrator/kernel/problems.py's ERE, which
 * orch writes into the reproducer above its headers (repro.py), so that it is the table
 * every other consumer reads.
 */
#ifndef KLOG_PROBLEMS_ERE
#error "KLOG_PROBLEMS_ERE: the reproducer's source defines it (orchestrator/fuzz/repro.py)"
#endif

#define REPRO_LOOP_FILE "/tmp/orch-fuzz-repro-swap.img"

static int repro_loop;	/* the loop device is the reproducer's own (teardown detaches it) */

/*
 * Only what one program needs (a reproducer): THP knobs, its swap device. Every swap is
 * turned off first (orch fuzz runs it on the machines the executor ran on: the executor's
 * swap may be on). The loop swap is a device and file of its own: the executor's (its
 * /tmp/orch-fuzz-swap.img and .dev) are left as they are, and its next run turns its own
 * swap on again.
 */
static int env_setup_for(const struct prog *p, char *why, size_t len)
{
	setup_thp();
	env_reset();
	loop_dev[0] = 0;
	if (!strcmp(p->swap, "zram") && setup_zram()) {
		snprintf(why, len, "zram: %s", strerror(errno));
		return -1;
	}
	if (!strcmp(p->swap, "loop")) {
		repro_loop = 1;
		if (setup_loop(REPRO_LOOP_FILE, NULL)) {
			snprintf(why, len, "loop swap: %s", strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Undoes only what env_setup_for did: its swap off, its own loop device and file gone. */
static void env_teardown(void)
{
	const char *dev = swap_dev(active_swap);

	if (dev)
		syscall(__NR_swapoff, dev);
	strcpy(active_swap, "none");
	if (repro_loop && loop_dev[0]) {
		int lfd = open(loop_dev, O_RDWR | O_CLOEXEC);

		if (lfd >= 0) {
			ioctl(lfd, LOOP_CLR_FD, 0);
			close(lfd);
		}
	}
	if (repro_loop)
		unlink(REPRO_LOOP_FILE);
	repro_loop = 0;
}

/*
 * Whether the program moves pages and this kernel has no UFFDIO_MOVE (before 6.8, the
 * series not applied): the program cannot run here, which says nothing of the behaviour
 * it checks. Its other userfaultfd operations run on such a kernel (the executor falls
 * back to a userfaultfd without UFFD_FEATURE_MOVE).
 */
static int uffd_move_absent(const struct prog *p)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int uses = 0, fd, ok;

	for (int i = 0; i < p->nops; i++)
		uses |= p->ops[i].kind == OP_MOVE;
	if (!uses)
		return 0;
	fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return 1;
	ok = !ioctl(fd, UFFDIO_API, &api) && (api.features & UFFD_FEATURE_MOVE);
	close(fd);
	return !ok;
}

static int klog_bad;

static void repro_klog(const char *text, void *ctx)
{
	static regex_t re;
	static int compiled;

	(void)ctx;
	if (!compiled) {
		if (regcomp(&re, KLOG_PROBLEMS_ERE, REG_EXTENDED | REG_NOSUB)) {
			printf("# the kernel problem ERE does not compile: every line counts\n");
			klog_bad++;
			return;
		}
		compiled = 1;
	}
	if (!regexec(&re, text, 0, NULL, 0)) {
		printf("# kernel: %s\n", text);
		klog_bad++;
	}
}

/* The value of the last record with `key` in the trace text (NULL: none). */
static const char *record_of(char *text, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);
	const char *found = NULL, *ln = text;

	while (ln && *ln) {
		const char *nl = strchr(ln, '\n');

		if (!strncmp(ln, key, kl) && ln[kl] == '\t') {
			size_t n = nl ? (size_t)(nl - ln - kl - 1) : strlen(ln + kl + 1);

			if (n >= len)
				n = len - 1;
			memcpy(out, ln + kl + 1, n);
			out[n] = 0;
			found = out;
		}
		ln = nl ? nl + 1 : NULL;
	}
	return found;
}

/*
 * Whether a record is as expected. An expectation "~TOKENS" names only what differed in a
 * record of fields (smaps, status): each space-separated token must be a word of the
 * record, "!TOKEN" must not be; the record's other fields are not the divergence and may
 * be anything. Any other expectation is the whole record.
 */
static int record_matches(const char *v, const char *want)
{
	char tok[256];
	const char *t;

	if (want[0] != '~')
		return !strcmp(v, want);
	for (t = want + 1; *t; ) {
		size_t n = strcspn(t, " ");
		int neg = *t == '!', found = 0;
		const char *w = v;

		if (n - neg >= sizeof(tok) || n == (size_t)neg)
			return 0;
		memcpy(tok, t + neg, n - neg);
		tok[n - neg] = 0;
		while (*w) {
			size_t m = strcspn(w, " ");

			if (m == strlen(tok) && !strncmp(w, tok, m))
				found = 1;
			w += m;
			w += strspn(w, " ");
		}
		if (found == neg)
			return 0;
		t += n;
		t += strspn(t, " ");
	}
	return 1;
}

static int repro_main(const char *name, const char *text, const char *const (*expect)[2],
		      int nexpect)
{
	static struct prog p;
	static char trace[1 << 20], got[8192];
	struct outcome out;
	char why[256];
	int fd, kfd, bad = 0, keep_env = getenv("ORCH_FUZZ_KEEP_ENV") != NULL;
	ssize_t n;

	printf("TAP version 13\n1..1\n");
	fflush(stdout);
	if (parse_program(text, &p)) {
		printf("not ok 1 %s # the program does not parse\n", name);
		return 1;
	}
	if (uffd_move_absent(&p)) {	/* kselftest's convention: a missing feature skips */
		printf("ok 1 %s # SKIP this kernel has no UFFDIO_MOVE (UFFD_FEATURE_MOVE)\n",
		       name);
		return 4;
	}
	/* ORCH_FUZZ_KEEP_ENV: leave THP and swap alone (orch's own tests, on a host) */
	if (!keep_env && (env_setup_for(&p, why, sizeof(why)) ||
			  env_apply(&p, why, sizeof(why)))) {
		printf("# setting the machine up failed: %s\nok 1 %s # SKIP %s\n", why, name, why);
		env_teardown();
		return 4;
	}
	fd = open(REPRO_TRACE, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		printf("not ok 1 %s # %s: %s\n", name, REPRO_TRACE, strerror(errno));
		return 1;
	}
	trace_fd = fd;
	kfd = kmsg_open();
	run_isolated(&p, 60.0, &out);
	kmsg_drain(kfd, repro_klog, NULL);
	trace_fd = 1;
	if (!keep_env)
		env_teardown();
	n = pread(fd, trace, sizeof(trace) - 1, 0);
	trace[n > 0 ? n : 0] = 0;
	close(fd);
	unlink(REPRO_TRACE);
	/*
	 * "?KEY": a precondition, an operation both kernels answered alike before the
	 * divergence. A kernel that answers it otherwise did not run the program as they did
	 * (a series prefix without what the program needs, say): it cannot show the
	 * divergence either way, which is kselftest's skip, not a failure.
	 */
	for (int i = 0; i < nexpect; i++) {
		const char *v;

		if (expect[i][0][0] != '?')
			continue;
		v = record_of(trace, expect[i][0] + 1, got, sizeof(got));
		if (!v || strcmp(v, expect[i][1])) {
			printf("# %s: '%s', both kernels gave '%s'\n", expect[i][0] + 1,
			       v ? v : ABSENT, expect[i][1]);
			printf("ok 1 %s # SKIP the program did not run as on both kernels before "
			       "the divergence\n", name);
			return 4;
		}
	}
	for (int i = 0; i < nexpect; i++) {
		const char *v = !strcmp(expect[i][0], "E") ? out.status :
				record_of(trace, expect[i][0], got, sizeof(got));

		if (expect[i][0][0] == '?')
			continue;
		if (!v)
			v = ABSENT;
		if (!record_matches(v, expect[i][1])) {
			printf("# %s: '%s', the reference kernel gave '%s'\n", expect[i][0], v,
			       expect[i][1]);
			bad++;
		}
	}
	if (strcmp(out.status, "exit 0") && !bad) {
		printf("# the program ended with %s\n", out.status);
		bad++;
	}
	bad += klog_bad;
	printf("%s 1 %s\n", bad ? "not ok" : "ok", name);
	return bad ? 1 : 0;
}

#endif /* FUZZ_REPRO_H */
