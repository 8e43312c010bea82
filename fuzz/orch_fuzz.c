// SPDX-License-Identifier: GPL-2.0
/*
 * orch_fuzz - the in-guest executor of `orch fuzz`.
 *
 *   orch_fuzz setup              THP knobs and the swap devices, once a boot
 *   orch_fuzz run FILE [SECS [keep-env]]
 *                                every program of FILE, each in a fresh
 *                                process with a timeout (default 20 s);
 *                                keep-env: leave THP and swap as they are
 *                                (on a machine that is not a test guest)
 *
 * FILE holds programs ("P ID", a header "H ...", operations, "end"), as
 * orchestrator/fuzz/model.py writes them.  For each program the output is
 *
 *   P<TAB>ID
 *   ...its trace records (fuzz_ops.h, fuzz_state.h)...
 *   K<TAB>TEXT        each kernel log record written while it ran
 *   E<TAB>STATUS      exit N, signal N, timeout, stuck, or "env WHY"
 *
 * The host compares the records of two kernels key by key.
 */
#include "fuzz_env.h"

/* Once per boot: THP knobs and both swap devices (none of them active yet). */
static int env_setup(char *why, size_t len)
{
	setup_thp();
	if (setup_zram()) {
		snprintf(why, len, "zram: %s", strerror(errno));
		return -1;
	}
	if (setup_loop(LOOP_FILE, LOOP_NAME)) {
		snprintf(why, len, "loop swap: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void klog_line(const char *text, void *ctx)
{
	(void)ctx;
	emit("K", "%s", text);
}

static void klog_skip(const char *text, void *ctx)
{
	(void)text;
	(void)ctx;
}

static char *slurp(const char *path)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0 || !buf)
		return NULL;
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += n;
		if (len + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (!buf)
				return NULL;
		}
	}
	close(fd);
	buf[len] = 0;
	return buf;
}

static int run_file(const char *path, double timeout, int keep_env)
{
	static struct prog p;
	char *text = slurp(path), *cur;
	int kfd = kmsg_open(), n = 0;

	if (!text) {
		fprintf(stderr, "orch_fuzz: cannot read %s: %s\n", path, strerror(errno));
		return 2;
	}
	if (!keep_env)
		env_reset();
	for (cur = strstr(text, "P "); cur; n++) {
		char *next = strstr(cur + 2, "\nP "), why[256];
		struct outcome out;

		if (next)
			*next = 0;
		if (parse_program(cur, &p)) {
			emit("P", "%s", p.id[0] ? p.id : "?");
			emit("E", "parse error");
		} else if (!keep_env && env_apply(&p, why, sizeof(why))) {
			emit("P", "%s", p.id);
			emit("E", "env %s", why);
		} else {
			kmsg_drain(kfd, klog_skip, NULL);	/* env_apply's swapon lines */
			emit("P", "%s", p.id);
			run_isolated(&p, timeout, &out);
			kmsg_drain(kfd, klog_line, NULL);
			emit("E", "%s", out.status);
		}
		cur = next ? next + 1 : NULL;
	}
	free(text);
	return n ? 0 : 2;
}

int main(int argc, char **argv)
{
	char why[256];

	if (sysconf(_SC_PAGESIZE) != (long)PGSZ) {
		fprintf(stderr, "orch_fuzz: needs 4 KiB pages (this kernel has %ld)\n",
			sysconf(_SC_PAGESIZE));
		return 2;
	}
	if (argc >= 2 && !strcmp(argv[1], "setup")) {
		if (env_setup(why, sizeof(why))) {
			printf("setup failed: %s\n", why);
			return 1;
		}
		printf("setup ok\n");
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "run"))
		return run_file(argv[2], argc >= 4 ? atof(argv[3]) : 20.0,
				argc >= 5 && !strcmp(argv[4], "keep-env"));
	fprintf(stderr, "usage: orch_fuzz setup | orch_fuzz run FILE [SECS [keep-env]]\n");
	return 2;
}
