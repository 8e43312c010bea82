/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fuzz_env.h - the machine around a program: THP knobs, the swap devices
 * (zram: synchronous, no swap cache; a loop device over a tmpfs file: swap
 * cache and readahead), the kernel log while a program runs, and running a
 * program in a fresh process with a timeout.
 *
 * khugepaged is slowed down to a scan every ten minutes, so that no THP
 * appears or vanishes behind a program's back: only its own faults,
 * MADV_COLLAPSE and splits make them.
 */
#ifndef FUZZ_ENV_H
#define FUZZ_ENV_H

#include "fuzz_ops.h"

#define THP "/sys/kernel/mm/transparent_hugepage/"
#define ZRAM_DEV "/dev/zram0"
#define LOOP_FILE "/tmp/orch-fuzz-swap.img"
#define SWAP_BYTES (64UL << 20)
#define LOOP_NAME "/tmp/orch-fuzz-swap.dev"	/* setup writes the loop device's name here */

static char loop_dev[32];
static char active_swap[8] = "none";
static char active_thp[16] = "";

static int put(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, value, strlen(value)) == (ssize_t)strlen(value);
	close(fd);
	return ok ? 0 : -1;
}

static int put_new(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, value, strlen(value)) == (ssize_t)strlen(value);
	close(fd);
	return ok ? 0 : -1;
}

static int swap_header(const char *dev, unsigned long bytes)
{
	static char page[PGSZ];
	uint32_t *info = (uint32_t *)(page + 1024);
	int fd = open(dev, O_WRONLY | O_CLOEXEC), ok;

	memset(page, 0, sizeof(page));
	info[0] = 1;
	info[1] = (uint32_t)(bytes / PGSZ - 1);
	memcpy(page + PGSZ - 10, "SWAPSPACE2", 10);
	if (fd < 0)
		return -1;
	ok = pwrite(fd, page, PGSZ, 0) == (ssize_t)PGSZ && fsync(fd) == 0;
	close(fd);
	return ok ? 0 : -1;
}

/*
 * A loop device over `file` (a new one, truncated), with a swap header; its name is written
 * to `name_file` when not NULL (the executor's: each `run` finds it there).
 */
static int setup_loop(const char *file, const char *name_file)
{
	int ctl, nr, ffd, lfd;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -1;
	nr = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	if (nr < 0)
		return -1;
	snprintf(loop_dev, sizeof(loop_dev), "/dev/loop%d", nr);
	ffd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (ffd < 0 || ftruncate(ffd, SWAP_BYTES))
		return -1;
	lfd = open(loop_dev, O_RDWR | O_CLOEXEC);
	if (lfd < 0 || ioctl(lfd, LOOP_SET_FD, ffd))
		return -1;
	close(ffd);
	close(lfd);
	if (name_file && put_new(name_file, loop_dev))
		return -1;
	return swap_header(loop_dev, SWAP_BYTES);
}

/* The loop device `setup` bound (each `run` is a process of its own). */
static void find_loop(void)
{
	int fd = open(LOOP_NAME, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	n = read(fd, loop_dev, sizeof(loop_dev) - 1);
	loop_dev[n > 0 ? n : 0] = 0;
	close(fd);
}

static const char *swap_dev(const char *kind)
{
	if (!strcmp(kind, "loop") && !loop_dev[0])
		find_loop();
	return !strcmp(kind, "zram") ? ZRAM_DEV : !strcmp(kind, "loop") ? loop_dev : NULL;
}

static void setup_thp(void)
{
	put(THP "defrag", "madvise");
	put(THP "khugepaged/defrag", "0");
	put(THP "khugepaged/scan_sleep_millisecs", "600000");
	put(THP "khugepaged/alloc_sleep_millisecs", "600000");
}

/* zram0 sized and with a swap header (reset first: someone may have used it). */
static int setup_zram(void)
{
	char size[32];

	syscall(__NR_swapoff, ZRAM_DEV);
	put("/sys/block/zram0/reset", "1");
	snprintf(size, sizeof(size), "%lu", SWAP_BYTES);
	if (put("/sys/block/zram0/disksize", size))
		return -1;
	return swap_header(ZRAM_DEV, SWAP_BYTES);
}

/*
 * No swap active: what an executor run starts from (the previous run may have left one
 * on), and what a reproducer starts from (the executor's swap may be on where it runs).
 */
static void env_reset(void)
{
	syscall(__NR_swapoff, ZRAM_DEV);
	if (swap_dev("loop") && loop_dev[0])
		syscall(__NR_swapoff, loop_dev);
	strcpy(active_swap, "none");
}

/* The program's THP mode and swap device, changed only when they differ. */
static int env_apply(const struct prog *p, char *why, size_t len)
{
	if (strcmp(active_thp, p->thp)) {
		if (put(THP "enabled", p->thp)) {
			snprintf(why, len, "thp=%s: %s", p->thp, strerror(errno));
			return -1;
		}
		snprintf(active_thp, sizeof(active_thp), "%s", p->thp);
	}
	if (strcmp(active_swap, p->swap)) {
		const char *old = swap_dev(active_swap), *new = swap_dev(p->swap);

		if (old && syscall(__NR_swapoff, old)) {
			snprintf(why, len, "swapoff %s: %s", old, strerror(errno));
			return -1;
		}
		strcpy(active_swap, "none");
		if (new && syscall(__NR_swapon, new, 0)) {
			snprintf(why, len, "swapon %s: %s", new, strerror(errno));
			return -1;
		}
		snprintf(active_swap, sizeof(active_swap), "%s", p->swap);
	}
	return 0;
}

/* /dev/kmsg from now on: each record's text, after the previous call. */
static int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

static void kmsg_drain(int fd, void (*line)(const char *text, void *ctx), void *ctx)
{
	char rec[8192];
	ssize_t n;

	if (fd < 0)
		return;
	while ((n = read(fd, rec, sizeof(rec) - 1)) != 0) {
		char *text, *nl;

		if (n < 0) {
			if (errno == EPIPE)	/* overwritten records: go on */
				continue;
			break;
		}
		rec[n] = 0;
		text = strchr(rec, ';');
		if (!text)
			continue;
		text++;
		nl = strchr(text, '\n');
		if (nl)
			*nl = 0;
		line(text, ctx);
	}
}

struct outcome {
	char status[64];	/* "exit 0", "signal 9", "timeout", "stuck" */
};

/*
 * Run `p` in a new process (its trace on trace_fd), within `timeout` seconds.
 * A hang is "timeout" (SIGKILL took) or "stuck" (it did not within 5 s: the
 * process sleeps where a signal cannot reach it).  The operation it hung in is
 * the one after its last trace record.
 */
static void run_isolated(const struct prog *p, double timeout, struct outcome *out)
{
	struct timespec start, now, nap = { 0, 2000000 };
	int status = 0;
	pid_t pid;

	clock_gettime(CLOCK_MONOTONIC, &start);
	pid = fork();
	if (pid == 0) {
		run_program(p, p->nthreads == 0);
		_exit(0);
	}
	if (pid < 0) {
		snprintf(out->status, sizeof(out->status), "fork %s", errname(errno));
		return;
	}
	for (;;) {
		double el;

		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		el = (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
		if (el > timeout) {
			kill(pid, SIGKILL);
			for (int i = 0; i < 2500; i++) {
				if (waitpid(pid, &status, WNOHANG) == pid) {
					snprintf(out->status, sizeof(out->status), "timeout");
					return;
				}
				nanosleep(&nap, NULL);
			}
			snprintf(out->status, sizeof(out->status), "stuck");
			return;
		}
		nanosleep(&nap, NULL);
	}
	if (WIFSIGNALED(status))
		snprintf(out->status, sizeof(out->status), "signal %d", WTERMSIG(status));
	else
		snprintf(out->status, sizeof(out->status), "exit %d", WEXITSTATUS(status));
}

#endif /* FUZZ_ENV_H */
