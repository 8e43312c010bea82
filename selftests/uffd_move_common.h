/* SPDX-License-Identifier: GPL-2.0 */
/*
 * uffd_move_common.h - shared set-up of the uffd_move suite: utilities, /proc readers,
 * userfaultfd helpers, the src/dst layout, THP, KSM, page_idle, swap
 * devices (zram, loop), hugetlb pages, and the fault-handling threads.
 *
 * Part of uffd_move.c (one test binary; orch builds each .c file here
 * as one program, so the themes are headers included by it).
 */
#ifndef UFFD_MOVE_COMMON_H
#define UFFD_MOVE_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/io_uring.h>
#include <linux/loop.h>

#include "ktap.h"
#include "uffd_abi.h"

#ifndef MADV_SOFT_OFFLINE
#define MADV_SOFT_OFFLINE 101
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 1U
#endif

#define PM_PRESENT	(1ULL << 63)
#define PM_PFN_MASK	((1ULL << 55) - 1)
#define MOVE_SENTINEL	((__s64)0x5a5a5a5a5a5a5a5aLL)

static size_t pg;			/* base page size */
static int kv_major, kv_minor;		/* from uname -r */
static char kv_release[128];
static char kv_machine[72];		/* uname -m */
static int move_offered;		/* UFFD_FEATURE_MOVE reported */
static char offer_detail[256];		/* why it is not offered */

/* ------------------------------------------------------------------ */
/* small utilities                                                      */

static const char *ename(int e)
{
	static char buf[16];

	switch (e) {
	case 0: return "0 (no error)";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EINVAL: return "EINVAL";
	case ENOSPC: return "ENOSPC";
	case ENOSYS: return "ENOSYS";
	case ENOTTY: return "ENOTTY";
	case EOPNOTSUPP: return "EOPNOTSUPP";
#ifdef EHWPOISON
	case EHWPOISON: return "EHWPOISON";
#endif
	}
	snprintf(buf, sizeof(buf), "errno %d", e);
	return buf;
}

/* "-EINVAL", "4096", ... for a struct uffdio_move.move value */
static const char *mvstr(__s64 mv)
{
	static char buf[2][48];
	static int n;
	char *b = buf[n++ & 1];

	if (mv == MOVE_SENTINEL)
		snprintf(b, 48, "untouched");
	else if (mv < 0 && mv > -4096)
		snprintf(b, 48, "-%s", ename((int)-mv));
	else
		snprintf(b, 48, "%lld", (long long)mv);
	return b;
}

/*
 * Linux 6.8 is the only release whose rules differ from 6.12's (R_NOVMA,
 * R_ZERO); every other kernel offering the move, 6.1 + series included,
 * follows 6.9+ (checked against 6.12).
 */
static int kv_is_68(void)
{
	return kv_major == 6 && kv_minor == 8;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Page pattern: word i of page p of a region seeded with `seed`. */
static uint64_t pat(unsigned int seed, size_t byteoff)
{
	return ((uint64_t)seed << 40) ^ (byteoff / 8) ^ 0x9e3779b97f4a7c15ULL;
}

static void fill(char *p, size_t len, unsigned int seed)
{
	for (size_t o = 0; o < len; o += 8)
		*(volatile uint64_t *)(p + o) = pat(seed, o);
}

/* 0 when p[0..len) carries the pattern; else diag with the first offset */
static int check_pat(const char *what, const char *p, size_t len,
		     unsigned int seed)
{
	for (size_t o = 0; o < len; o += 8) {
		uint64_t got = *(volatile const uint64_t *)(p + o);

		if (got != pat(seed, o)) {
			ktap_diag("%s+0x%zx: expected 0x%016llx (pattern %u), got 0x%016llx",
				  what, o, (unsigned long long)pat(seed, o),
				  seed, (unsigned long long)got);
			return -1;
		}
	}
	return 0;
}

static int check_zero(const char *what, const char *p, size_t len)
{
	for (size_t o = 0; o < len; o += 8) {
		uint64_t got = *(volatile const uint64_t *)(p + o);

		if (got) {
			ktap_diag("%s+0x%zx: expected zero, got 0x%016llx",
				  what, o, (unsigned long long)got);
			return -1;
		}
	}
	return 0;
}

/* 0 if [p, p + len) reads zero, -1 if not (no diagnostic) */
static int check_zero_quiet(const char *p, size_t len)
{
	for (size_t o = 0; o < len; o += 8)
		if (*(volatile const uint64_t *)(p + o))
			return -1;
	return 0;
}

/* 1 if the page at p is populated (mincore), 0 if not, -1 on error */
static int resident(const void *p)
{
	unsigned char v = 0;

	if (mincore((void *)((uintptr_t)p & ~(pg - 1)), pg, &v)) {
		ktap_diag("mincore(%p) failed: %s", p, ename(errno));
		return -1;
	}
	return v & 1;
}

/* pagemap entry of the page at p (root sees PFNs) */
static int pagemap_ent(const void *p, uint64_t *ent)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	off_t off = (off_t)((uintptr_t)p / pg) * 8;
	ssize_t r;

	if (fd < 0)
		return -1;
	r = pread(fd, ent, 8, off);
	close(fd);
	return r == 8 ? 0 : -1;
}

/* PFN of the page at p, 0 if not present or hidden */
static uint64_t pfn_of(const void *p)
{
	uint64_t ent;

	if (pagemap_ent(p, &ent) || !(ent & PM_PRESENT))
		return 0;
	return ent & PM_PFN_MASK;
}

static int read_file_str(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0)
		return -1;
	r = read(fd, buf, n - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = '\0';
	return 0;
}

static long read_long(const char *path)
{
	char b[64];

	if (read_file_str(path, b, sizeof(b)))
		return -1;
	return strtol(b, NULL, 10);
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0)
		return -1;
	r = write(fd, s, strlen(s));
	close(fd);
	return r == (ssize_t)strlen(s) ? 0 : -1;
}

static int write_long(const char *path, long v)
{
	char b[32];

	snprintf(b, sizeof(b), "%ld", v);
	return write_str(path, b);
}

/* Whole /proc/self/{maps,smaps} into a static buffer (no malloc/mmap). */
static char procbuf[1 << 20];

static int slurp(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	ssize_t r;

	if (fd < 0)
		return -1;
	while (n < sizeof(procbuf) - 1 &&
	       (r = read(fd, procbuf + n, sizeof(procbuf) - 1 - n)) > 0)
		n += r;
	close(fd);
	procbuf[n] = '\0';
	return 0;
}

/* Number of VMAs overlapping [lo, hi); lo=0, hi=-1 counts all lines. */
static int maps_count(uintptr_t lo, uintptr_t hi)
{
	int n = 0;

	if (slurp("/proc/self/maps"))
		return -1;
	for (char *l = procbuf; *l; ) {
		unsigned long s, e;
		char *nl = strchr(l, '\n');

		if (sscanf(l, "%lx-%lx", &s, &e) == 2 && s < hi && e > lo)
			n++;
		if (!nl)
			break;
		l = nl + 1;
	}
	return n;
}

/* Bounds of the VMA containing addr; -1 if none. */
static int vma_bounds(const void *addr, uintptr_t *start, uintptr_t *end)
{
	uintptr_t a = (uintptr_t)addr;

	if (slurp("/proc/self/maps"))
		return -1;
	for (char *l = procbuf; *l; ) {
		unsigned long s, e;
		char *nl = strchr(l, '\n');

		if (sscanf(l, "%lx-%lx", &s, &e) == 2 && s <= a && a < e) {
			*start = s;
			*end = e;
			return 0;
		}
		if (!nl)
			break;
		l = nl + 1;
	}
	return -1;
}

/*
 * A "Field:  N kB" line of the /proc/self/smaps entry of the VMA that
 * starts at start; 0 when the VMA has no such line, -1 if no VMA starts
 * there.
 */
static long smaps_kb(const void *start, const char *field)
{
	size_t fl = strlen(field);
	char key[40];
	char *l, *next;

	if (slurp("/proc/self/smaps"))
		return -1;
	snprintf(key, sizeof(key), "%lx-", (unsigned long)(uintptr_t)start);
	for (l = procbuf; l && *l; l = next) {
		next = strchr(l, '\n');
		if (next)
			next++;
		if (strncmp(l, key, strlen(key)))
			continue;
		/* scan the fields of this VMA up to the next header */
		for (l = next; l && *l; l = next) {
			unsigned long s, e;

			next = strchr(l, '\n');
			if (next)
				next++;
			if (sscanf(l, "%lx-%lx ", &s, &e) == 2)
				return 0;	/* next VMA: field absent */
			if (!strncmp(l, field, fl) && l[fl] == ':')
				return strtol(l + fl + 1, NULL, 10);
		}
		return 0;
	}
	return -1;
}

/* AnonHugePages (kB) of the VMA starting at start; -1 if not found. */
static long smaps_anon_huge_kb(const void *start)
{
	return smaps_kb(start, "AnonHugePages");
}

/* "Key:  N kB" of a /proc file such as /proc/self/status; -1 if absent */
static long proc_kb(const char *path, const char *key)
{
	size_t kl = strlen(key);
	char *l;

	if (slurp(path))
		return -1;
	for (l = procbuf; l && *l; ) {
		if (!strncmp(l, key, kl) && l[kl] == ':')
			return strtol(l + kl + 1, NULL, 10);
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	return -1;
}

/* Pin the calling process to one CPU (per-CPU LRU batches, TLB). */
static void pin_cpu(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (CPU_ISSET(c, &set)) {
			CPU_ZERO(&set);
			CPU_SET(c, &set);
			sched_setaffinity(0, sizeof(set), &set);
			return;
		}
	}
}

/*
 * Fault in, then unmap, a scratch region: the faults overflow this CPU's
 * LRU add batch (so earlier pages reach the LRU, which page_idle and
 * migration need) and the unmap of that many pages makes x86 (> 33 pages)
 * and arm64 (>= 512 pages) flush the whole TLB of this mm, so a later
 * access sets the accessed bit in the PTE again (clearing "young" for
 * page_idle does not flush the TLB).
 */
static void drain_lru_and_flush(void)
{
	size_t n = 1024 * pg;
	char *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	madvise(p, n, MADV_NOHUGEPAGE);	/* small folios: many LRU adds */
	for (size_t o = 0; o < n; o += pg)
		p[o] = 1;
	munmap(p, n);
}

/* ------------------------------------------------------------------ */
/* userfaultfd helpers                                                  */

static int uffd_new(__u64 features, struct uffdio_api *api_out)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = uffd_open_raw(O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 && errno == EPERM)
		fd = uffd_open_raw(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0) {
		ktap_diag("userfaultfd() failed: %s", ename(errno));
		return -1;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		ktap_diag("UFFDIO_API(features=0x%llx) failed: %s",
			  (unsigned long long)features, ename(errno));
		close(fd);
		return -1;
	}
	if (api_out)
		*api_out = api;
	return fd;
}

/* uffd for the tests: the move feature requested explicitly */
static int uffd_move_fd(void)
{
	return uffd_new(UFFD_FEATURE_MOVE, NULL);
}

static int uffd_reg(int fd, void *p, size_t len, __u64 *ioctls)
{
	struct uffdio_register r = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &r)) {
		ktap_diag("UFFDIO_REGISTER(%p, 0x%zx, MISSING) failed: %s",
			  p, len, ename(errno));
		return -1;
	}
	if (ioctls)
		*ioctls = r.ioctls;
	return 0;
}

static int uffd_unreg(int fd, void *p, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)p, .len = len };

	if (ioctl(fd, UFFDIO_UNREGISTER, &r)) {
		ktap_diag("UFFDIO_UNREGISTER(%p, 0x%zx) failed: %s",
			  p, len, ename(errno));
		return -1;
	}
	return 0;
}

struct mv {
	int ret;	/* ioctl return */
	int err;	/* errno when ret < 0, else 0 */
	__s64 move;	/* uffdio_move.move after the call */
};

static struct mv do_move(int fd, const void *dst, const void *src,
			 size_t len, __u64 mode)
{
	struct uffdio_move m = {
		.dst = (uintptr_t)dst, .src = (uintptr_t)src,
		.len = len, .mode = mode, .move = MOVE_SENTINEL,
	};
	struct mv r;

	errno = 0;
	r.ret = ioctl(fd, UFFDIO_MOVE, &m);
	r.err = r.ret < 0 ? errno : 0;
	r.move = m.move;
	return r;
}

/* success protocol: returns 0 and move == len */
static int expect_moved(const char *what, struct mv r, size_t len)
{
	if (r.ret == 0 && r.move == (__s64)len)
		return 0;
	ktap_diag("%s: expected ret 0, move %zu; got ret %d errno %s, move %s",
		  what, len, r.ret, ename(r.err), mvstr(r.move));
	return -1;
}

/*
 * failure protocol: -1/errno with move = -errno.  When the ioctl rejects
 * its arguments before looking at any VMA (alignment, len 0, mode bits,
 * range past user space), 6.12 returns before writing `move`: with
 * move_untouched the field must keep its sentinel.
 */
static int expect_fail(const char *what, struct mv r, int want, int move_untouched)
{
	int ok = r.ret == -1 && r.err == want &&
		 (move_untouched ? r.move == MOVE_SENTINEL : r.move == -(__s64)want);

	if (ok)
		return 0;
	ktap_diag("%s: expected ret -1 errno %s, move %s%s; got ret %d errno %s, move %s",
		  what, ename(want), move_untouched ? "untouched" : "-",
		  move_untouched ? "" : ename(want),
		  r.ret, ename(r.err), mvstr(r.move));
	return -1;
}

/* ------------------------------------------------------------------ */
/* mapping layout: [guard][src][guard][dst][guard] in one reservation    */

struct pair {
	int ufd;
	char *base;
	size_t total;
	char *src, *dst;
	size_t len;
};

static char *carve(char *at, size_t len, int prot, int flags)
{
	char *p = mmap(at, len, prot, flags | MAP_FIXED, -1, 0);

	if (p == MAP_FAILED) {
		ktap_diag("mmap(%p, 0x%zx, MAP_FIXED) failed: %s",
			  at, len, ename(errno));
		return NULL;
	}
	return p;
}

/*
 * Set up src and dst of npages each; dst is registered MISSING with a
 * fresh uffd unless reg_dst is 0.  Returns 0 or -1 (diag printed).
 */
static int pair_setup(struct pair *pr, size_t npages, int reg_dst)
{
	memset(pr, 0, sizeof(*pr));
	pr->ufd = -1;
	pr->len = npages * pg;
	pr->total = 2 * pr->len + 3 * pg;
	pr->base = mmap(NULL, pr->total, PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (pr->base == MAP_FAILED) {
		ktap_diag("reserve mmap failed: %s", ename(errno));
		pr->base = NULL;
		return -1;
	}
	pr->src = carve(pr->base + pg, pr->len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS);
	pr->dst = carve(pr->base + 2 * pg + pr->len, pr->len,
			PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	if (!pr->src || !pr->dst)
		return -1;
	pr->ufd = uffd_move_fd();
	if (pr->ufd < 0)
		return -1;
	if (reg_dst && uffd_reg(pr->ufd, pr->dst, pr->len, NULL))
		return -1;
	return 0;
}

static void pair_teardown(struct pair *pr)
{
	if (pr->ufd >= 0)
		close(pr->ufd);
	if (pr->base)
		munmap(pr->base, pr->total);
	pr->ufd = -1;
	pr->base = NULL;
}

/* How a pair test ends, passed or after `goto fail`: the pair torn down, the verdict. */
static int pair_end(struct pair *pr, int fails)
{
	pair_teardown(pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
}


/* fork a child that holds the mm copy until the pipe is closed */
static pid_t fork_holder(int *wfd)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe(p)) {
		ktap_diag("pipe failed: %s", ename(errno));
		return -1;
	}
	ktap_flush();
	pid = fork();
	if (pid < 0) {
		ktap_diag("fork failed: %s", ename(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[1]);
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(p[0]);
	*wfd = p[1];
	return pid;
}

static void release_holder(pid_t pid, int wfd)
{
	close(wfd);
	waitpid(pid, NULL, 0);
}
#define KSM_DIR "/sys/kernel/mm/ksm/"

struct ksm_saved {
	long run, pages_to_scan, sleep_ms;
	int valid;
};

static struct ksm_saved ksm_saved;

static void ksm_save(struct ksm_saved *s)
{
	s->run = read_long(KSM_DIR "run");
	s->pages_to_scan = read_long(KSM_DIR "pages_to_scan");
	s->sleep_ms = read_long(KSM_DIR "sleep_millisecs");
	s->valid = s->run >= 0 && s->pages_to_scan >= 0 && s->sleep_ms >= 0;
}

static void ksm_restore(const struct ksm_saved *s)
{
	if (!s->valid)
		return;
	write_long(KSM_DIR "pages_to_scan", s->pages_to_scan);
	write_long(KSM_DIR "sleep_millisecs", s->sleep_ms);
	write_long(KSM_DIR "run", s->run);
}
/* ------------------------------------------------------------------ */
/* THP and zero page                                                     */

/*
 * THP layout: [..][src H][gap H][dst H][..] in one PROT_NONE reservation,
 * src H-aligned, dst = src + 2H + dst_off (dst_off 0: H-aligned too).
 * Both get MADV_HUGEPAGE (same vm_flags on both sides).
 */
struct hp {
	int ufd;
	char *base, *src, *dst;
	size_t total, H;
};

#define THP_DIR "/sys/kernel/mm/transparent_hugepage/"

/* 0 when THP is usable (H set), else the skip reason in why */
static int thp_usable(size_t *H, char *why, size_t n)
{
	char buf[128];
	long h;

	if (read_file_str(THP_DIR "enabled", buf, sizeof(buf))) {
		snprintf(why, n, THP_DIR "enabled missing: THP not built");
		return -1;
	}
	if (strstr(buf, "[never]")) {
		snprintf(why, n, "THP disabled (enabled=[never])");
		return -1;
	}
	h = read_long(THP_DIR "hpage_pmd_size");
	*H = h > 0 ? (size_t)h : 2UL << 20;
	if (*H > (64UL << 20)) {
		snprintf(why, n, "PMD size %zu MiB too large for this test", *H >> 20);
		return -1;
	}
	return 0;
}

static void hp_teardown(struct hp *h)
{
	if (h->ufd >= 0)
		close(h->ufd);
	if (h->base)
		munmap(h->base, h->total);
	h->ufd = -1;
	h->base = NULL;
}

/* returns 0, -1 (failure, diag printed) or KTAP_SKIP (reason set) */
static int hp_setup(struct hp *h, size_t dst_off, int advice, int reg_dst)
{
	char why[160];

	memset(h, 0, sizeof(*h));
	h->ufd = -1;
	if (thp_usable(&h->H, why, sizeof(why)))
		return ktap_skip_because("%s", why);
	h->total = 6 * h->H;
	h->base = mmap(NULL, h->total, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (h->base == MAP_FAILED) {
		ktap_diag("reserve %zu MiB failed: %s", h->total >> 20, ename(errno));
		h->base = NULL;
		return -1;
	}
	h->src = (char *)(((uintptr_t)h->base + pg + h->H - 1) &
			  ~(uintptr_t)(h->H - 1));
	h->dst = h->src + 2 * h->H + dst_off;
	if (!carve(h->src, h->H, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS) ||
	    !carve(h->dst, h->H, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS))
		return -1;
	if (madvise(h->src, h->H, advice) || madvise(h->dst, h->H, advice)) {
		int e = errno;

		hp_teardown(h);
		return ktap_skip_because("madvise(%s): %s",
					 advice == MADV_HUGEPAGE ? "MADV_HUGEPAGE" :
					 "MADV_NOHUGEPAGE", ename(e));
	}
	h->ufd = uffd_move_fd();
	if (h->ufd < 0)
		return -1;
	if (reg_dst && uffd_reg(h->ufd, h->dst, h->H, NULL))
		return -1;
	return 0;
}

/* fill src (seed) and require it PMD-mapped: 0, -1 or KTAP_SKIP */
static int hp_make_thp(struct hp *h, unsigned int seed)
{
	long kb;

	fill(h->src, h->H, seed);
	kb = smaps_anon_huge_kb(h->src);
	ktap_diag("src %p: AnonHugePages %ld kB (PMD size %zu kB)",
		  (void *)h->src, kb, h->H >> 10);
	if (kb < (long)(h->H >> 10)) {
		hp_teardown(h);
		return ktap_skip_because("src did not become a PMD-mapped THP (AnonHugePages %ld kB): no free huge page",
					 kb);
	}
	return 0;
}

#define KPF_THP		22
#define KPF_ZERO_PAGE	24
#define KPF_MLOCKED	33

/* /proc/kpageflags word of pfn; 0 with *ok = 0 when unreadable */
static uint64_t kpflags(uint64_t pfn, int *ok)
{
	int fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	uint64_t w = 0;

	*ok = 0;
	if (fd < 0)
		return 0;
	if (pread(fd, &w, 8, (off_t)pfn * 8) == 8)
		*ok = 1;
	close(fd);
	return w;
}

/* THP helper macro: run hp_setup/hp_make_thp, pass a skip through */
#define HP_TRY(expr)							\
	do {								\
		int _r = (expr);					\
		if (_r == KTAP_SKIP)					\
			return KTAP_SKIP;				\
		if (_r)							\
			goto fail;					\
	} while (0)

/* ------------------------------------------------------------------ */
/* fault-driven moves                                                    */

struct fctx {
	struct pair *pr;
	size_t npages;
	volatile int reader_done;
	volatile int stop;
	int bad_pages;		/* reader: pages with wrong data */
	int nfaults;		/* handler: faults resolved */
	int herr;		/* handler: errors */
};

static void *reader_fn(void *arg)
{
	struct fctx *f = arg;

	for (size_t i = 0; i < f->npages; i++) {
		char what[32];

		snprintf(what, sizeof(what), "dst page %zu", i);
		/* the first load faults and blocks until resolved */
		if (check_pat(what, f->pr->dst + i * pg, pg, 100 + i))
			f->bad_pages++;
	}
	f->reader_done = 1;
	return NULL;
}

/* poll + read one uffd message; 1 got one, 0 timeout, -1 error */
static int uffd_get_msg(int fd, struct uffd_msg *msg, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r = poll(&p, 1, timeout_ms);

	if (r <= 0)
		return r < 0 && errno != EINTR ? -1 : 0;
	if (read(fd, msg, sizeof(*msg)) != (ssize_t)sizeof(*msg))
		return errno == EAGAIN ? 0 : -1;
	return 1;
}

static void *handler_fn(void *arg)
{
	struct fctx *f = arg;
	struct pair *pr = f->pr;
	struct uffd_msg msg;

	while (!f->stop) {
		uintptr_t a, off;
		struct mv r;
		int g = uffd_get_msg(pr->ufd, &msg, 50);

		if (g < 0) {
			ktap_diag("handler: reading the uffd failed: %s", ename(errno));
			f->herr++;
			break;
		}
		if (!g)
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT) {
			ktap_diag("handler: expected UFFD_EVENT_PAGEFAULT (0x%x), got event 0x%x",
				  UFFD_EVENT_PAGEFAULT, msg.event);
			f->herr++;
			continue;
		}
		a = (uintptr_t)msg.arg.pagefault.address & ~(uintptr_t)(pg - 1);
		off = a - (uintptr_t)pr->dst;
		if (a < (uintptr_t)pr->dst || off >= pr->len) {
			ktap_diag("handler: fault at 0x%lx outside dst", (unsigned long)a);
			f->herr++;
			continue;
		}
		r = do_move(pr->ufd, (void *)a, pr->src + off, pg,
			    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
		if (expect_moved("handler: UFFDIO_MOVE resolving the fault", r, pg))
			f->herr++;
		else
			f->nfaults++;
	}
	return NULL;
}

static int wait_flag(volatile int *flag, double secs)
{
	double t0 = now_s();

	while (!*flag && now_s() - t0 < secs)
		sleep_ms(5);
	return *flag;
}

/* ------------------------------------------------------------------ */
/* rmap integrity after a move                                           */

#define IDLE_BITMAP "/sys/kernel/mm/page_idle/bitmap"

static int idle_bit(int fd, uint64_t pfn, int set)
{
	uint64_t w = 0;
	off_t off = (off_t)(pfn / 64) * 8;

	if (set) {
		w = 1ULL << (pfn % 64);
		return pwrite(fd, &w, 8, off) == 8 ? 0 : -1;
	}
	if (pread(fd, &w, 8, off) != 8)
		return -1;
	return (int)((w >> (pfn % 64)) & 1);
}

/*
 * Whether page_idle's bitmap can be read for pfn.  When memory ends inside
 * a 64-pfn chunk, page_idle_bitmap_read() and _write() act on that last
 * chunk but return 0 bytes (seen on 6.1; 6.12's mm/page_idle.c has the same
 * loop, not yet run there): a page there cannot be tested.
 */
static int idle_chunk_ok(uint64_t pfn)
{
	uint64_t w;
	int fd = open(IDLE_BITMAP, O_RDONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return 1;	/* the case reports an absent bitmap itself */
	ok = pread(fd, &w, 8, (off_t)(pfn / 64) * 8) == 8;
	close(fd);
	return ok;
}

#define MOVED_PAGE_TRIES 4

/*
 * One page moved from src to dst, dst unregistered again; pfn of dst.  A
 * page in page_idle's last, partial chunk (a fresh boot hands out the
 * highest pfns first) is kept while another pair is tried.
 */
static int moved_page(struct pair *pr, unsigned int seed, uint64_t *pfn)
{
	struct pair held[MOVED_PAGE_TRIES];
	int n = 0, rc = -1;

	for (;;) {
		if (pair_setup(pr, 1, 1))
			break;
		fill(pr->src, pg, seed);
		if (expect_moved("UFFDIO_MOVE 1 page",
				 do_move(pr->ufd, pr->dst, pr->src, pg, 0), pg))
			break;
		if (uffd_unreg(pr->ufd, pr->dst, pg))
			break;
		*pfn = pfn_of(pr->dst);
		if (!*pfn || idle_chunk_ok(*pfn) || n == MOVED_PAGE_TRIES) {
			rc = 0;
			break;
		}
		ktap_diag("pfn 0x%llx is in page_idle's last, partial chunk: another page",
			  (unsigned long long)*pfn);
		held[n++] = *pr;
	}
	while (n)
		pair_teardown(&held[--n]);
	return rc;
}

/* ------------------------------------------------------------------ */
/* swap: a zram swap device set up by the test itself                   */

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#define PM_SWAP		(1ULL << 62)
#define ZRAM "/sys/block/zram0/"
#define ZRAM_SIZE	(64UL << 20)

/*
 * Swap devices turned on by a test, in a page shared with the parent
 * (main turns them off after the last test).  Two kinds:
 *  - zram: a synchronous device (SWP_SYNCHRONOUS_IO): an anonymous
 *    swap-in skips the swap cache, and a folio is freed right after its
 *    (synchronous) write-out;
 *  - a loop device over a file on the guest's tmpfs root: an ordinary
 *    block device, asynchronous, non-rotational (so it has swap clusters
 *    and takes a THP as one large folio with THP_SWAP): folios go through
 *    the swap cache, and stay there after MADV_PAGEOUT until reclaimed.
 * A test asks for one kind (swap_use()); the other one is turned off, so
 * every page that test pages out goes to the kind it asked for.
 */
struct swstate {
	int zram, loop, loopnr;
};
static struct swstate *sws;

#define SWK_ZRAM	1
#define SWK_LOOP	2
#define LOOP_FILE	"/orch-uffd-move-swap.img"
#define LOOP_SWAP_SIZE	(128UL << 20)

static int on_swaps(const char *dev)
{
	char buf[4096];

	if (read_file_str("/proc/swaps", buf, sizeof(buf)))
		return -1;
	return strstr(buf, dev) != NULL;
}

/* A version-1 swap header for a device of `size` bytes (mkswap's job). */
static int write_swap_header(const char *dev, size_t size)
{
	char *page = calloc(1, pg);
	uint32_t *info;
	int fd, ok;

	if (!page)
		return -1;
	info = (uint32_t *)(page + 1024);
	info[0] = 1;				/* version */
	info[1] = (uint32_t)(size / pg - 1);	/* last_page */
	info[2] = 0;				/* nr_badpages */
	memcpy(page + pg - 10, "SWAPSPACE2", 10);
	fd = open(dev, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		free(page);
		return -1;
	}
	ok = pwrite(fd, page, pg, 0) == (ssize_t)pg && fsync(fd) == 0;
	close(fd);
	free(page);
	return ok ? 0 : -1;
}

/* 0: swap on /dev/zram0 is active; else KTAP_SKIP/-1 with a reason */
static int zram_on(void)
{
	long ds;
	int e;

	if (access("/proc/swaps", R_OK))
		return ktap_skip_because("/proc/swaps absent: kernel without swap (CONFIG_SWAP=n)");
	if (on_swaps("/dev/zram0") == 1)
		return 0;
	if (access(ZRAM "disksize", W_OK))
		return ktap_skip_because(ZRAM "disksize absent: no zram device (CONFIG_ZRAM=n)");
	ds = read_long(ZRAM "disksize");
	if (ds == 0 && write_long(ZRAM "disksize", (long)ZRAM_SIZE)) {
		ktap_diag("writing " ZRAM "disksize failed: %s", ename(errno));
		return -1;
	}
	ds = read_long(ZRAM "disksize");
	if (access("/dev/zram0", W_OK)) {
		ktap_diag("/dev/zram0 missing: %s", ename(errno));
		return -1;
	}
	if (write_swap_header("/dev/zram0", (size_t)ds)) {
		ktap_diag("writing the swap header to /dev/zram0 failed: %s", ename(errno));
		return -1;
	}
	if (syscall(__NR_swapon, "/dev/zram0", 0)) {
		e = errno;
		if (e == ENOSYS)
			return ktap_skip_because("swapon: ENOSYS: kernel without swap");
		ktap_diag("swapon(/dev/zram0) failed: %s", ename(e));
		return -1;
	}
	if (sws)
		sws->zram = 1;
	ktap_diag("swap on /dev/zram0, %ld MiB (set up by this test)", ds >> 20);
	return 0;
}

static void zram_off(void)
{
	if (!sws || !sws->zram)
		return;
	syscall(__NR_swapoff, "/dev/zram0");
	write_long(ZRAM "reset", 1);
	sws->zram = 0;
}

static void loop_name(char *dev, size_t n, int nr)
{
	snprintf(dev, n, "/dev/loop%d", nr);
}

/* 0: swap on a loop device over LOOP_FILE is active; else KTAP_SKIP/-1 */
static int loop_on(void)
{
	char dev[32];
	int ctl, nr, ffd, lfd, e;

	if (access("/proc/swaps", R_OK))
		return ktap_skip_because("/proc/swaps absent: kernel without swap (CONFIG_SWAP=n)");
	if (sws && sws->loop) {
		loop_name(dev, sizeof(dev), sws->loopnr);
		if (on_swaps(dev) == 1)
			return 0;
	}
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return ktap_skip_because("/dev/loop-control: %s: no loop device (CONFIG_BLK_DEV_LOOP=n)",
					 ename(errno));
	nr = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	if (nr < 0) {
		ktap_diag("LOOP_CTL_GET_FREE failed: %s", ename(errno));
		return -1;
	}
	loop_name(dev, sizeof(dev), nr);
	if (access(dev, F_OK))
		mknod(dev, S_IFBLK | 0600, makedev(7, nr));
	ffd = open(LOOP_FILE, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (ffd < 0 || ftruncate(ffd, LOOP_SWAP_SIZE)) {
		ktap_diag("creating " LOOP_FILE " failed: %s", ename(errno));
		if (ffd >= 0)
			close(ffd);
		return -1;
	}
	lfd = open(dev, O_RDWR | O_CLOEXEC);
	if (lfd < 0 || ioctl(lfd, LOOP_SET_FD, ffd)) {
		ktap_diag("binding %s to " LOOP_FILE " failed: %s", dev, ename(errno));
		if (lfd >= 0)
			close(lfd);
		close(ffd);
		unlink(LOOP_FILE);
		return -1;
	}
	close(ffd);
	close(lfd);
	if (sws) {
		sws->loop = 1;
		sws->loopnr = nr;
	}
	if (write_swap_header(dev, LOOP_SWAP_SIZE)) {
		ktap_diag("writing the swap header to %s failed: %s", dev, ename(errno));
		return -1;
	}
	if (syscall(__NR_swapon, dev, 0)) {
		e = errno;
		ktap_diag("swapon(%s) failed: %s", dev, ename(e));
		return -1;
	}
	ktap_diag("swap on %s (loop over " LOOP_FILE ", tmpfs), %lu MiB (set up by this test)",
		  dev, LOOP_SWAP_SIZE >> 20);
	return 0;
}

static void loop_off(void)
{
	char dev[32];
	int lfd;

	if (!sws || !sws->loop)
		return;
	loop_name(dev, sizeof(dev), sws->loopnr);
	syscall(__NR_swapoff, dev);
	lfd = open(dev, O_RDWR | O_CLOEXEC);
	if (lfd >= 0) {
		ioctl(lfd, LOOP_CLR_FD, 0);
		close(lfd);
	}
	unlink(LOOP_FILE);
	sws->loop = 0;
}

/* swap of one kind only: 0, KTAP_SKIP or -1 (reason or diag given) */
static int swap_use(int kind)
{
	if (kind == SWK_LOOP) {
		zram_off();
		return loop_on();
	}
	loop_off();
	return zram_on();
}

static int swap_setup(void)
{
	return swap_use(SWK_ZRAM);
}

static void swap_teardown(void)
{
	zram_off();
	loop_off();
}

/* number of pages of [p, p+n pages) whose pagemap entry is a swap entry */
static size_t n_swapped(const char *p, size_t n)
{
	size_t c = 0;
	uint64_t ent;

	for (size_t i = 0; i < n; i++)
		if (!pagemap_ent(p + i * pg, &ent) && (ent & PM_SWAP) &&
		    !(ent & PM_PRESENT))
			c++;
	return c;
}

/* MADV_PAGEOUT until every page is a swap entry (3 tries) */
static int page_out(char *p, size_t n)
{
	for (int t = 0; t < 3; t++) {
		drain_lru_and_flush();
		if (madvise(p, n * pg, MADV_PAGEOUT)) {
			ktap_diag("madvise(MADV_PAGEOUT) failed: %s", ename(errno));
			return -1;
		}
		if (n_swapped(p, n) == n)
			return 0;
	}
	ktap_diag("MADV_PAGEOUT: %zu of %zu pages swapped out after 3 tries",
		  n_swapped(p, n), n);
	return -1;
}

#define SWAP_TRY(expr)							\
	do {								\
		int _r = (expr);					\
		if (_r == KTAP_SKIP)					\
			return KTAP_SKIP;				\
		if (_r)							\
			return KTAP_FAIL;				\
	} while (0)

struct swcount {
	long vmswap, rssanon, src_swap, dst_swap;
};

static void sw_read(struct swcount *c, struct pair *pr)
{
	c->vmswap = proc_kb("/proc/self/status", "VmSwap");
	c->rssanon = proc_kb("/proc/self/status", "RssAnon");
	c->src_swap = smaps_kb(pr->src, "Swap");
	c->dst_swap = smaps_kb(pr->dst, "Swap");
}

/* ------------------------------------------------------------------ */
/* swap through the swap cache: a loop device                           */

/* a counter of /proc/vmstat; -1 if absent */
static long vmstat_val(const char *key)
{
	size_t kl = strlen(key);
	char *l;

	if (slurp("/proc/vmstat"))
		return -1;
	for (l = procbuf; l && *l; ) {
		if (!strncmp(l, key, kl) && l[kl] == ' ')
			return strtol(l + kl + 1, NULL, 10);
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	return -1;
}

/* pages of [p, p+n pages) that mincore() reports resident */
static size_t n_resident(const char *p, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += resident(p + i * pg) == 1;
	return c;
}

/* ------------------------------------------------------------------ */
/* hugetlb: huge pages reserved for the cases that need them            */

/*
 * A case that needs hugetlb pages (N_HUGETLB) gets HUGETLB_NEED of them
 * free and unreserved before it runs: the runner raises nr_hugepages as
 * kselftest's run_vmtests.sh does for its hugetlb programs (LTP's
 * .hugepages does the same per test), and main() writes the old value
 * back after the last case.  A guest has none reserved at boot.
 */
#define NR_HUGEPAGES	"/proc/sys/vm/nr_hugepages"
#define HUGETLB_NEED	2
static long hugetlb_saved = -1;	/* nr_hugepages before the suite raised it */

/* The default huge page size (Hugepagesize in /proc/meminfo), 0 without hugetlbfs */
static size_t hugetlb_size(void)
{
	long kb = proc_kb("/proc/meminfo", "Hugepagesize");

	return kb > 0 ? (size_t)kb << 10 : 0;
}

/* huge pages a new mapping can take: free ones not promised to a mapping */
static long hugetlb_available(void)
{
	long free_ = proc_kb("/proc/meminfo", "HugePages_Free");
	long rsvd = proc_kb("/proc/meminfo", "HugePages_Rsvd");

	return free_ < 0 || rsvd < 0 ? -1 : free_ - rsvd;
}

/* NULL once `need` huge pages are available, else why not (static buffer) */
static const char *hugetlb_reserve(long need)
{
	static char why[200];
	long have = hugetlb_available(), nr = read_long(NR_HUGEPAGES);

	if (have >= need)
		return NULL;
	if (nr < 0 || have < 0) {
		snprintf(why, sizeof(why), NR_HUGEPAGES " or HugePages_Free unreadable: no hugetlbfs");
		return why;
	}
	if (hugetlb_saved < 0)
		hugetlb_saved = nr;
	write_str("/proc/sys/vm/drop_caches", "3");
	if (write_long(NR_HUGEPAGES, nr + need - have))
		ktap_diag("writing %ld to " NR_HUGEPAGES " failed: %s",
			  nr + need - have, ename(errno));
	have = hugetlb_available();
	if (have >= need)
		return NULL;
	snprintf(why, sizeof(why),
		 "%ld of %ld huge pages available after raising nr_hugepages from %ld (memory too fragmented or too small)",
		 have, need, nr);
	return why;
}

/* nr_hugepages back to what it was before the suite raised it */
static void hugetlb_restore(void)
{
	if (hugetlb_saved >= 0 && write_long(NR_HUGEPAGES, hugetlb_saved))
		fprintf(stderr, "uffd_move: cannot restore nr_hugepages to %ld: %s\n",
			hugetlb_saved, ename(errno));
	hugetlb_saved = -1;
}

/*
 * Drain the LRU batches of every CPU.  A swap-cache folio whose write-out
 * ended on another CPU (the loop device's worker) sits in that CPU's
 * rotate batch, with a reference that makes its migration fail.
 * mlock() starts with lru_add_drain_all() on 6.1 (not on 6.12);
 * compaction of all nodes (/proc/sys/vm/compact_memory) does on both.
 */
static void lru_drain_all_cpus(void)
{
	char *p = mmap(NULL, pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p != MAP_FAILED) {
		p[0] = 1;
		if (!mlock(p, pg))
			munlock(p, pg);
		munmap(p, pg);
	}
	write_str("/proc/sys/vm/compact_memory", "1");
}

#endif /* UFFD_MOVE_COMMON_H */
