// SPDX-License-Identifier: GPL-2.0
/*
 * uffd_move.c - UFFDIO_MOVE selftest suite for orch.
 *
 * Runs against three kinds of kernels:
 *   - Linux 6.1 without the project series: UFFD_FEATURE_MOVE is not
 *     offered, every test reports "# SKIP UFFD_FEATURE_MOVE not offered";
 *   - Linux 6.1 + the project series (upstream ABI, 6.8-like scope);
 *   - Linux >= 6.8 with UFFDIO_MOVE natively (6.12 reference, 6.18 host).
 *
 * Each test runs in its own forked child (ktap_run_cases), builds its own
 * mappings inside a PROT_NONE reservation (PROT_NONE guard pages between
 * src and dst keep the VMAs from merging with each other or with anything
 * else, so their bounds and the VMA count are stable), and reads dst only
 * after UFFDIO_UNREGISTER or after mincore() showed the page populated: a
 * MISSING-registered hole would otherwise block the reader forever.
 *
 * Version rules encoded here (kernel version from uname -r):
 *   R_NOVMA  no VMA at dst/src: EINVAL before 6.9 (6.8, the 6.1 series),
 *            ENOENT from 6.9 (VMA lookup by per-VMA-lock helpers).
 *   R_ZERO   src maps the shared zero page: EBUSY before 6.9, moved from
 *            6.9 (dst then maps the zero page).
 *   R_THP    PMD-mapped THP src: a 6.1.x kernel (the project series) may
 *            refuse it with EBUSY; from 6.8 it must move (whole or split).
 *   partial  a later page failing after k pages moved: -1/EAGAIN with
 *            move = k pages (all versions; see t_partial_eagain).
 */
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
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

static int kver_ge(int maj, int min)
{
	return kv_major > maj || (kv_major == maj && kv_minor >= min);
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

/* AnonHugePages (kB) of the VMA starting at start; -1 if not found. */
static long smaps_anon_huge_kb(const void *start)
{
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
			if (!strncmp(l, "AnonHugePages:", 14))
				return strtol(l + 14, NULL, 10);
		}
		return 0;
	}
	return -1;
}

/* AnonHugePages (kB) from /proc/meminfo, system-wide; -1 if absent. */
static long meminfo_anon_huge_kb(void)
{
	char *p;

	if (slurp("/proc/meminfo"))
		return -1;
	p = strstr(procbuf, "AnonHugePages:");
	return p ? strtol(p + 14, NULL, 10) : -1;
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
 * its arguments before looking at any VMA (alignment, len 0, mode bits),
 * upstream returns before writing `move`: with move_may_stay the field
 * may also be left untouched.
 */
static int expect_fail(const char *what, struct mv r, int want, int move_may_stay)
{
	int ok = r.ret == -1 && r.err == want &&
		 (r.move == -(__s64)want ||
		  (move_may_stay && r.move == MOVE_SENTINEL));

	if (ok)
		return 0;
	ktap_diag("%s: expected ret -1 errno %s, move -%s%s; got ret %d errno %s, move %s",
		  what, ename(want), ename(want),
		  move_may_stay ? " (or untouched)" : "",
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

#define NEED_MOVE()							\
	do {								\
		if (!move_offered)					\
			return ktap_skip_because("UFFD_FEATURE_MOVE not offered"); \
	} while (0)

/* ------------------------------------------------------------------ */
/* feature / ABI tests                                                  */

static int t_feature_bit(void)
{
	struct uffdio_api api;
	int fd;

	if (!move_offered) {
		ktap_diag("kernel %s: %s", kv_release, offer_detail);
		return ktap_skip_because("UFFD_FEATURE_MOVE not offered");
	}
	fd = uffd_new(0, &api);
	if (fd < 0)
		return KTAP_FAIL;
	close(fd);
	ktap_diag("kernel %s, page size %zu", kv_release, pg);
	ktap_diag("UFFDIO_API features=0x%llx", (unsigned long long)api.features);
	if (!(api.features & UFFD_FEATURE_MOVE)) {
		ktap_diag("expected UFFD_FEATURE_MOVE (0x%llx) in features, got 0x%llx",
			  (unsigned long long)UFFD_FEATURE_MOVE,
			  (unsigned long long)api.features);
		return KTAP_FAIL;
	}
	/* requesting the feature explicitly must be accepted too */
	fd = uffd_new(UFFD_FEATURE_MOVE, &api);
	if (fd < 0)
		return KTAP_FAIL;
	close(fd);
	return KTAP_PASS;
}

static int t_register_mask(void)
{
	const __u64 bit = (__u64)1 << _UFFDIO_MOVE;
	struct uffdio_api api;
	__u64 ioctls = 0;
	int fd, fails = 0;
	char *p;

	NEED_MOVE();
	fd = uffd_new(UFFD_FEATURE_MOVE, &api);
	if (fd < 0)
		return KTAP_FAIL;
	if (api.ioctls & bit) {
		ktap_diag("UFFDIO_API ioctls: expected bit %d (_UFFDIO_MOVE) clear, got mask 0x%llx",
			  _UFFDIO_MOVE, (unsigned long long)api.ioctls);
		fails++;
	}
	p = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		ktap_diag("mmap failed: %s", ename(errno));
		close(fd);
		return KTAP_FAIL;
	}
	if (uffd_reg(fd, p, 4 * pg, &ioctls)) {
		fails++;
	} else if (!(ioctls & bit)) {
		ktap_diag("UFFDIO_REGISTER(anon) ioctls: expected bit %d (_UFFDIO_MOVE) set, got mask 0x%llx",
			  _UFFDIO_MOVE, (unsigned long long)ioctls);
		fails++;
	} else {
		ktap_diag("UFFDIO_API ioctls=0x%llx, UFFDIO_REGISTER ioctls=0x%llx",
			  (unsigned long long)api.ioctls,
			  (unsigned long long)ioctls);
	}
	munmap(p, 4 * pg);
	close(fd);
	return fails ? KTAP_FAIL : KTAP_PASS;
}

static int t_abi(void)
{
	int fails = 0;

	NEED_MOVE();
	if (sizeof(struct uffdio_move) != 40) {
		ktap_diag("sizeof(struct uffdio_move): expected 40, got %zu",
			  sizeof(struct uffdio_move));
		fails++;
	}
	if ((unsigned long)UFFDIO_MOVE != 0xc028aa05UL) {
		ktap_diag("UFFDIO_MOVE: expected 0xc028aa05, got 0x%lx",
			  (unsigned long)UFFDIO_MOVE);
		fails++;
	}
	if (offsetof(struct uffdio_move, dst) != 0 ||
	    offsetof(struct uffdio_move, src) != 8 ||
	    offsetof(struct uffdio_move, len) != 16 ||
	    offsetof(struct uffdio_move, mode) != 24 ||
	    offsetof(struct uffdio_move, move) != 32) {
		ktap_diag("struct uffdio_move offsets: expected dst 0 src 8 len 16 mode 24 move 32, got %zu %zu %zu %zu %zu",
			  offsetof(struct uffdio_move, dst),
			  offsetof(struct uffdio_move, src),
			  offsetof(struct uffdio_move, len),
			  offsetof(struct uffdio_move, mode),
			  offsetof(struct uffdio_move, move));
		fails++;
	}
	if (_UFFDIO_MOVE != 5 || UFFD_FEATURE_MOVE != (1 << 16) ||
	    UFFDIO_MOVE_MODE_DONTWAKE != 1 ||
	    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES != 2) {
		ktap_diag("constants: expected _UFFDIO_MOVE 5, UFFD_FEATURE_MOVE 0x10000, DONTWAKE 0x1, ALLOW_SRC_HOLES 0x2; got %d 0x%llx 0x%llx 0x%llx",
			  _UFFDIO_MOVE, (unsigned long long)UFFD_FEATURE_MOVE,
			  (unsigned long long)UFFDIO_MOVE_MODE_DONTWAKE,
			  (unsigned long long)UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
		fails++;
	}
	return fails ? KTAP_FAIL : KTAP_PASS;
}

/* ------------------------------------------------------------------ */
/* basic data movement                                                  */

static int t_basic_move(void)
{
	const size_t n = 8;
	uintptr_t ss0, se0, ds0, de0, ss1, se1, ds1, de1;
	struct pair pr;
	int fails = 0, c0, c1;
	struct mv r;

	NEED_MOVE();
	if (pair_setup(&pr, n, 1))
		goto fail;
	fill(pr.src, pr.len, 1);
	if (vma_bounds(pr.src, &ss0, &se0) || vma_bounds(pr.dst, &ds0, &de0)) {
		ktap_diag("src/dst VMA not found in /proc/self/maps");
		goto fail;
	}
	c0 = maps_count(0, UINTPTR_MAX);

	r = do_move(pr.ufd, pr.dst, pr.src, pr.len, 0);
	if (expect_moved("UFFDIO_MOVE 8 pages", r, pr.len))
		fails++;

	c1 = maps_count(0, UINTPTR_MAX);
	if (c0 != c1) {
		ktap_diag("/proc/self/maps lines: expected %d (unchanged), got %d",
			  c0, c1);
		fails++;
	}
	if (vma_bounds(pr.src, &ss1, &se1) || vma_bounds(pr.dst, &ds1, &de1)) {
		ktap_diag("src/dst VMA vanished from /proc/self/maps");
		goto fail;
	}
	if (ss0 != ss1 || se0 != se1 || ds0 != ds1 || de0 != de1) {
		ktap_diag("VMA bounds: expected src %lx-%lx dst %lx-%lx, got src %lx-%lx dst %lx-%lx",
			  (unsigned long)ss0, (unsigned long)se0,
			  (unsigned long)ds0, (unsigned long)de0,
			  (unsigned long)ss1, (unsigned long)se1,
			  (unsigned long)ds1, (unsigned long)de1);
		fails++;
	}
	for (size_t i = 0; i < n; i++) {
		if (resident(pr.src + i * pg) != 0) {
			ktap_diag("src page %zu (offset 0x%zx): expected unpopulated after the move, got populated",
				  i, i * pg);
			fails++;
			break;
		}
	}
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("dst", pr.dst, pr.len, 1))
		fails++;
	if (check_zero("src", pr.src, pr.len))
		fails++;
	ktap_diag("moved %zu pages, maps lines %d -> %d", n, c0, c1);
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

static int t_dst_populated_eexist(void)
{
	struct pair pr;
	int fails = 0;

	NEED_MOVE();
	if (pair_setup(&pr, 1, 0))
		goto fail;
	fill(pr.src, pg, 2);
	fill(pr.dst, pg, 3);		/* populate dst before registering */
	if (uffd_reg(pr.ufd, pr.dst, pg, NULL))
		goto fail;
	if (expect_fail("UFFDIO_MOVE onto populated dst",
			do_move(pr.ufd, pr.dst, pr.src, pg, 0), EEXIST, 0))
		fails++;
	if (check_pat("src (must be untouched)", pr.src, pg, 2))
		fails++;
	if (check_pat("dst (must keep its page)", pr.dst, pg, 3))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

static int t_src_hole_enoent(void)
{
	struct pair pr;
	int fails = 0;

	NEED_MOVE();
	if (pair_setup(&pr, 2, 1))
		goto fail;
	/* src never touched: no page tables at all */
	if (expect_fail("UFFDIO_MOVE from an untouched src",
			do_move(pr.ufd, pr.dst, pr.src, pr.len, 0), ENOENT, 0))
		fails++;
	/* src page table present, the PTE none */
	fill(pr.src + pg, pg, 4);
	if (expect_fail("UFFDIO_MOVE of a none PTE next to a populated one",
			do_move(pr.ufd, pr.dst, pr.src, pg, 0), ENOENT, 0))
		fails++;
	if (resident(pr.dst) != 0 || resident(pr.dst + pg) != 0) {
		ktap_diag("dst: expected unpopulated after ENOENT, got populated");
		fails++;
	}
	if (check_pat("src page 1", pr.src + pg, pg, 4))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

static int t_src_hole_allow(void)
{
	const size_t n = 4;
	struct pair pr;
	int fails = 0;

	NEED_MOVE();
	if (pair_setup(&pr, n, 1))
		goto fail;
	/* pages 0 and 2 populated, 1 and 3 holes */
	fill(pr.src, pg, 10);
	fill(pr.src + 2 * pg, pg, 12);
	if (expect_moved("UFFDIO_MOVE ALLOW_SRC_HOLES over pages {0,2} + holes {1,3}",
			 do_move(pr.ufd, pr.dst, pr.src, pr.len,
				 UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES), pr.len))
		fails++;
	for (size_t i = 0; i < n; i++) {
		int want = !(i & 1), got = resident(pr.dst + i * pg);

		if (got != want) {
			ktap_diag("dst page %zu (offset 0x%zx): expected %s, got %s (mincore)",
				  i, i * pg, want ? "populated" : "unpopulated (hole moved)",
				  got == 1 ? "populated" : "unpopulated");
			fails++;
		}
	}
	/* a wholly unpopulated src: no page tables */
	{
		struct pair p2;

		if (pair_setup(&p2, 2, 1)) {
			fails++;
		} else {
			if (expect_moved("UFFDIO_MOVE ALLOW_SRC_HOLES from an untouched src",
					 do_move(p2.ufd, p2.dst, p2.src, p2.len,
						 UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES),
					 p2.len))
				fails++;
			if (resident(p2.dst) != 0 || resident(p2.dst + pg) != 0) {
				ktap_diag("untouched src: expected dst unpopulated, got populated");
				fails++;
			}
		}
		pair_teardown(&p2);
	}
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("dst page 0", pr.dst, pg, 10) ||
	    check_pat("dst page 2", pr.dst + 2 * pg, pg, 12) ||
	    check_zero("dst page 1", pr.dst + pg, pg) ||
	    check_zero("dst page 3", pr.dst + 3 * pg, pg))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

/* ------------------------------------------------------------------ */
/* EINVAL cases                                                          */

/* Populated src, registered dst, one bad argument. */
static int einval_arg_case(const char *what, ptrdiff_t dst_off,
			   ptrdiff_t src_off, size_t len, __u64 mode)
{
	struct pair pr;
	int fails = 0;

	if (pair_setup(&pr, 2, 1))
		goto fail;
	fill(pr.src, pr.len, 20);
	if (expect_fail(what, do_move(pr.ufd, pr.dst + dst_off,
				      pr.src + src_off, len, mode),
			EINVAL, 1))
		fails++;
	if (resident(pr.dst) != 0) {
		ktap_diag("%s: dst populated although the call failed", what);
		fails++;
	}
	if (check_pat("src", pr.src, pr.len, 20))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

static int t_einval_unaligned_dst(void)
{
	NEED_MOVE();
	return einval_arg_case("UFFDIO_MOVE dst+1", 1, 0, pg, 0);
}

static int t_einval_unaligned_src(void)
{
	NEED_MOVE();
	return einval_arg_case("UFFDIO_MOVE src+1", 0, 1, pg, 0);
}

static int t_einval_unaligned_len(void)
{
	NEED_MOVE();
	return einval_arg_case("UFFDIO_MOVE len=page+page/2", 0, 0,
			       pg + pg / 2, 0);
}

static int t_einval_len_zero(void)
{
	NEED_MOVE();
	return einval_arg_case("UFFDIO_MOVE len=0", 0, 0, 0, 0);
}

static int t_einval_mode_unknown(void)
{
	NEED_MOVE();
	if (einval_arg_case("UFFDIO_MOVE mode=1<<2", 0, 0, pg,
			    (__u64)1 << 2) != KTAP_PASS)
		return KTAP_FAIL;
	return einval_arg_case("UFFDIO_MOVE mode=1<<63|ALLOW_SRC_HOLES", 0, 0, pg,
			       ((__u64)1 << 63) | UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
}

static int t_einval_spans_two_vmas(void)
{
	uintptr_t s, e;
	struct pair pr;
	int fails = 0;

	NEED_MOVE();
	/* (a) src range covers two VMAs: MADV_DONTFORK splits src */
	if (pair_setup(&pr, 4, 1))
		goto fail;
	fill(pr.src, pr.len, 30);
	if (madvise(pr.src + 2 * pg, 2 * pg, MADV_DONTFORK)) {
		ktap_diag("madvise(MADV_DONTFORK) failed: %s", ename(errno));
		goto fail;
	}
	if (vma_bounds(pr.src, &s, &e) || e != (uintptr_t)(pr.src + 2 * pg)) {
		ktap_diag("setup: expected src VMA split at +0x%zx", 2 * pg);
		goto fail;
	}
	if (expect_fail("UFFDIO_MOVE with src spanning two VMAs",
			do_move(pr.ufd, pr.dst, pr.src, pr.len, 0), EINVAL, 0))
		fails++;
	if (resident(pr.dst) != 0) {
		ktap_diag("src spanning: dst page 0 populated although the call failed");
		fails++;
	}
	if (check_pat("src", pr.src, pr.len, 30))
		fails++;
	pair_teardown(&pr);

	/* (b) dst range covers two VMAs: only half of dst registered */
	if (pair_setup(&pr, 4, 0))
		goto fail;
	fill(pr.src, pr.len, 31);
	if (uffd_reg(pr.ufd, pr.dst, 2 * pg, NULL))
		goto fail;
	if (vma_bounds(pr.dst, &s, &e) || e != (uintptr_t)(pr.dst + 2 * pg)) {
		ktap_diag("setup: expected dst VMA split at +0x%zx", 2 * pg);
		goto fail;
	}
	if (expect_fail("UFFDIO_MOVE with dst spanning two VMAs",
			do_move(pr.ufd, pr.dst, pr.src, pr.len, 0), EINVAL, 0))
		fails++;
	if (resident(pr.dst) != 0) {
		ktap_diag("dst spanning: dst page 0 populated although the call failed");
		fails++;
	}
	if (check_pat("src", pr.src, pr.len, 31))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

static int t_einval_dst_file_vma(void)
{
	const char *kind = "MAP_PRIVATE memfd (shmem file)";
	struct pair pr;
	int fails = 0, mfd, e1;
	char *p;

	NEED_MOVE();
	if (pair_setup(&pr, 1, 0))
		goto fail;
	fill(pr.src, pg, 40);
	mfd = (int)syscall(__NR_memfd_create, "uffd_move_dst", MFD_CLOEXEC);
	if (mfd >= 0 && ftruncate(mfd, (off_t)pg) == 0) {
		p = mmap(pr.dst, pg, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_FIXED, mfd, 0);
		close(mfd);
		if (p == MAP_FAILED) {
			ktap_diag("mmap(memfd) failed: %s", ename(errno));
			goto fail;
		}
	} else {
		ktap_diag("memfd_create/ftruncate failed (%s); using a MAP_SHARED anonymous dst instead",
			  ename(errno));
		if (mfd >= 0)
			close(mfd);
		kind = "MAP_SHARED|MAP_ANONYMOUS";
		if (!carve(pr.dst, pg, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS))
			goto fail;
	}
	if (ioctl(pr.ufd, UFFDIO_REGISTER, &(struct uffdio_register){
			.range = { (uintptr_t)pr.dst, pg },
			.mode = UFFDIO_REGISTER_MODE_MISSING })) {
		e1 = errno;
		pair_teardown(&pr);
		return ktap_skip_because("cannot register a %s VMA with userfaultfd (%s): no shmem support in this kernel",
					 kind, ename(e1));
	}
	ktap_diag("dst is a %s VMA registered MISSING", kind);
	if (expect_fail("UFFDIO_MOVE into a non-anonymous dst",
			do_move(pr.ufd, pr.dst, pr.src, pg, 0), EINVAL, 0))
		fails++;
	if (check_pat("src", pr.src, pg, 40))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

static int t_einval_src_shared_anon(void)
{
	struct pair pr;
	int fails = 0;

	NEED_MOVE();
	if (pair_setup(&pr, 1, 1))
		goto fail;
	if (!carve(pr.src, pg, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS))
		goto fail;
	fill(pr.src, pg, 41);
	if (expect_fail("UFFDIO_MOVE from a MAP_SHARED|MAP_ANONYMOUS src",
			do_move(pr.ufd, pr.dst, pr.src, pg, 0), EINVAL, 0))
		fails++;
	if (resident(pr.dst) != 0) {
		ktap_diag("dst populated although the call failed");
		fails++;
	}
	if (check_pat("src", pr.src, pg, 41))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

static int t_einval_dst_unregistered(void)
{
	struct pair pr;
	int fails = 0;

	NEED_MOVE();
	if (pair_setup(&pr, 1, 0))	/* uffd exists, nothing registered */
		goto fail;
	fill(pr.src, pg, 42);
	if (expect_fail("UFFDIO_MOVE into an unregistered dst",
			do_move(pr.ufd, pr.dst, pr.src, pg, 0), EINVAL, 0))
		fails++;
	if (resident(pr.dst) != 0) {
		ktap_diag("dst populated although the call failed");
		fails++;
	}
	if (check_pat("src", pr.src, pg, 42))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

/*
 * R_NOVMA: no VMA at the address.  6.8 (and the 6.1 series, which follows
 * 6.8) uses find_vma() + range checks -> EINVAL; from 6.9 the VMA lookup
 * helpers of the per-VMA-lock rework return ENOENT.
 */
static int t_no_vma(void)
{
	int want = kver_ge(6, 9) ? ENOENT : EINVAL;
	struct pair pr;
	int fails = 0;

	NEED_MOVE();
	ktap_diag("rule R_NOVMA: kernel %d.%d -> expect %s (EINVAL before 6.9, ENOENT from 6.9)",
		  kv_major, kv_minor, ename(want));
	/* (a) dst in a hole */
	if (pair_setup(&pr, 1, 0))
		goto fail;
	fill(pr.src, pg, 43);
	if (munmap(pr.dst, pg))
		goto fail;
	if (expect_fail("UFFDIO_MOVE to a dst without VMA",
			do_move(pr.ufd, pr.dst, pr.src, pg, 0), want, 0))
		fails++;
	if (check_pat("src", pr.src, pg, 43))
		fails++;
	pair_teardown(&pr);
	/* (b) src in a hole, dst registered */
	if (pair_setup(&pr, 1, 1))
		goto fail;
	if (munmap(pr.src, pg))
		goto fail;
	if (expect_fail("UFFDIO_MOVE from a src without VMA",
			do_move(pr.ufd, pr.dst, pr.src, pg, 0), want, 0))
		fails++;
	if (expect_fail("UFFDIO_MOVE ALLOW_SRC_HOLES from a src without VMA",
			do_move(pr.ufd, pr.dst, pr.src, pg,
				UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES), want, 0))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

/* ------------------------------------------------------------------ */
/* partial progress                                                      */

/*
 * Rule applied: pages are moved in order; when page k fails (here EEXIST
 * on the populated 3rd dst page) after k > 0 pages were moved, the ioctl
 * returns -1/EAGAIN and move = k * page size (bytes done); the pages from
 * k on are left where they were.  (Only when nothing moved does the call
 * fail with the page's own errno and move = -errno.)
 */
static int t_partial_eagain(void)
{
	const size_t n = 4;
	struct pair pr;
	int fails = 0;
	struct mv r;

	NEED_MOVE();
	if (pair_setup(&pr, n, 0))
		goto fail;
	for (size_t i = 0; i < n; i++)
		fill(pr.src + i * pg, pg, 50 + i);
	fill(pr.dst + 2 * pg, pg, 60);	/* 3rd dst page populated */
	if (uffd_reg(pr.ufd, pr.dst, pr.len, NULL))
		goto fail;
	r = do_move(pr.ufd, pr.dst, pr.src, pr.len, 0);
	if (r.ret != -1 || r.err != EAGAIN || r.move != (__s64)(2 * pg)) {
		ktap_diag("UFFDIO_MOVE 4 pages, dst page 2 populated: expected ret -1 errno EAGAIN, move %zu (2 pages); got ret %d errno %s, move %s",
			  2 * pg, r.ret, ename(r.err), mvstr(r.move));
		fails++;
	}
	if (resident(pr.dst + 3 * pg) != 0) {
		ktap_diag("dst page 3 (offset 0x%zx): expected unpopulated (not reached), got populated",
			  3 * pg);
		fails++;
	}
	if (resident(pr.src) != 0 || resident(pr.src + pg) != 0) {
		ktap_diag("src pages 0-1: expected unpopulated (moved), got populated");
		fails++;
	}
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("dst page 0", pr.dst, pg, 50) ||
	    check_pat("dst page 1", pr.dst + pg, pg, 51) ||
	    check_pat("dst page 2 (pre-populated)", pr.dst + 2 * pg, pg, 60) ||
	    check_zero("dst page 3", pr.dst + 3 * pg, pg))
		fails++;
	if (check_zero("src page 0", pr.src, pg) ||
	    check_zero("src page 1", pr.src + pg, pg) ||
	    check_pat("src page 2", pr.src + 2 * pg, pg, 52) ||
	    check_pat("src page 3", pr.src + 3 * pg, pg, 53))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

/* ------------------------------------------------------------------ */
/* exclusivity: fork, MADV_DONTFORK, KSM                                 */

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

static int t_fork_ebusy(void)
{
	struct pair pr;
	int fails = 0, wfd;
	pid_t pid;

	NEED_MOVE();
	if (pair_setup(&pr, 1, 1))
		goto fail;
	fill(pr.src, pg, 70);
	pid = fork_holder(&wfd);
	if (pid < 0)
		goto fail;
	if (expect_fail("UFFDIO_MOVE of a page shared with a forked child",
			do_move(pr.ufd, pr.dst, pr.src, pg, 0), EBUSY, 0))
		fails++;
	release_holder(pid, wfd);
	if (resident(pr.dst) != 0) {
		ktap_diag("dst populated although the call failed");
		fails++;
	}
	if (check_pat("src", pr.src, pg, 70))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

static int t_fork_dontfork_moves(void)
{
	struct pair pr;
	int fails = 0, wfd;
	pid_t pid;

	NEED_MOVE();
	if (pair_setup(&pr, 2, 1))
		goto fail;
	fill(pr.src, pr.len, 71);
	if (madvise(pr.src, pr.len, MADV_DONTFORK)) {
		ktap_diag("madvise(MADV_DONTFORK) failed: %s", ename(errno));
		goto fail;
	}
	pid = fork_holder(&wfd);
	if (pid < 0)
		goto fail;
	if (expect_moved("UFFDIO_MOVE of a MADV_DONTFORK page after fork",
			 do_move(pr.ufd, pr.dst, pr.src, pr.len, 0), pr.len))
		fails++;
	release_holder(pid, wfd);
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("dst", pr.dst, pr.len, 71))
		fails++;
	if (check_zero("src", pr.src, pr.len))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
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

static int t_ksm_ebusy(void)
{
	struct ksm_saved sv;
	long scans0, scans, shared;
	uint64_t pfn0 = 0, pfn1 = 0;
	int fails = 0, merged = 0;
	struct pair pr;
	double t0;

	NEED_MOVE();
	if (access(KSM_DIR "run", W_OK))
		return ktap_skip_because("/sys/kernel/mm/ksm missing: CONFIG_KSM not built");
	if (pair_setup(&pr, 2, 1))
		goto fail;
	/* two identical, non-zero pages */
	fill(pr.src, pg, 80);
	fill(pr.src + pg, pg, 80);
	if (madvise(pr.src, pr.len, MADV_MERGEABLE)) {
		int e = errno;

		pair_teardown(&pr);
		return ktap_skip_because("madvise(MADV_MERGEABLE) failed: %s", ename(e));
	}
	ksm_save(&sv);
	if (!sv.valid) {
		pair_teardown(&pr);
		return ktap_skip_because("cannot read " KSM_DIR " settings");
	}
	write_long(KSM_DIR "pages_to_scan", 10000);
	write_long(KSM_DIR "sleep_millisecs", 0);
	if (write_long(KSM_DIR "run", 1)) {
		int e = errno;

		ksm_restore(&sv);
		pair_teardown(&pr);
		return ktap_skip_because("cannot start ksmd (write run=1: %s)", ename(e));
	}
	scans0 = read_long(KSM_DIR "full_scans");
	t0 = now_s();
	for (;;) {
		/*
		 * Scans first: a merge done by the scans counted here is
		 * visible in the PFNs read next (two full scans merge two
		 * identical pages: checksum, then unstable-tree match).
		 */
		scans = read_long(KSM_DIR "full_scans");
		pfn0 = pfn_of(pr.src);
		pfn1 = pfn_of(pr.src + pg);
		shared = read_long(KSM_DIR "pages_shared");
		if (pfn0 && pfn1)
			merged = pfn0 == pfn1;	/* both PTEs on one KSM page */
		else
			merged = shared > 0;	/* PFNs hidden: global count */
		if (merged || scans - scans0 >= 3 || now_s() - t0 > 10)
			break;
		sleep_ms(20);
	}
	ktap_diag("KSM after %.1f s: pages_shared=%ld full_scans +%ld, src PFNs 0x%llx 0x%llx",
		  now_s() - t0, shared, scans - scans0,
		  (unsigned long long)pfn0, (unsigned long long)pfn1);
	if (!merged) {
		ksm_restore(&sv);
		pair_teardown(&pr);
		return ktap_skip_because("KSM did not merge the two src pages (2 full scans / 10 s)");
	}
	if (expect_fail("UFFDIO_MOVE of a KSM page",
			do_move(pr.ufd, pr.dst, pr.src, pg, 0), EBUSY, 0))
		fails++;
	ksm_restore(&sv);
	if (resident(pr.dst) != 0) {
		ktap_diag("dst populated although the call failed");
		fails++;
	}
	if (check_pat("src page 0", pr.src, pg, 80) ||
	    check_pat("src page 1", pr.src + pg, pg, 80))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

/* ------------------------------------------------------------------ */
/* THP and zero page                                                     */

/*
 * R_THP: a PMD-mapped THP src, src and dst PMD-aligned, whole PMD moved.
 * From 6.8 upstream moves it (whole PMD, or after splitting): require
 * success and intact data.  On 6.1.x (the project series, whose scope may
 * exclude large folios) EBUSY with move = -EBUSY is accepted as well.
 */
static int t_thp_source(void)
{
	const char *thp = "/sys/kernel/mm/transparent_hugepage/";
	char buf[128];
	size_t H, total;
	char *base, *src, *dst;
	long kb, h, sys0;
	int fd = -1, fails = 0;
	struct mv r;

	NEED_MOVE();
	if (read_file_str("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof(buf)))
		return ktap_skip_because("%s missing: THP not built", thp);
	if (strstr(buf, "[never]"))
		return ktap_skip_because("THP disabled (enabled=[never])");
	h = read_long("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");
	H = h > 0 ? (size_t)h : 2UL << 20;
	if (H > (64UL << 20))
		return ktap_skip_because("PMD size %zu MiB too large for this test", H >> 20);

	/* [..][src H][gap H][dst H][..], src and dst H-aligned */
	total = 5 * H;
	base = mmap(NULL, total, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		ktap_diag("reserve %zu MiB failed: %s", total >> 20, ename(errno));
		return KTAP_FAIL;
	}
	src = (char *)(((uintptr_t)base + pg + H - 1) & ~(uintptr_t)(H - 1));
	dst = src + 2 * H;
	if (!carve(src, H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS) ||
	    !carve(dst, H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS))
		goto fail;
	if (madvise(src, H, MADV_HUGEPAGE)) {
		int e = errno;

		munmap(base, total);
		return ktap_skip_because("madvise(MADV_HUGEPAGE): %s", ename(e));
	}
	sys0 = meminfo_anon_huge_kb();
	fill(src, H, 90);
	kb = smaps_anon_huge_kb(src);
	if (kb < 0 && sys0 >= 0) {
		/* no /proc/self/smaps (PROC_PAGE_MONITOR=n): global delta */
		kb = meminfo_anon_huge_kb() - sys0;
		ktap_diag("/proc/self/smaps unavailable, using the /proc/meminfo AnonHugePages delta");
	}
	ktap_diag("src %p: AnonHugePages %ld kB (PMD size %zu kB)", (void *)src,
		  kb, H >> 10);
	if (kb < (long)(H >> 10)) {
		munmap(base, total);
		return ktap_skip_because("src did not become a THP (AnonHugePages %ld kB)", kb);
	}
	fd = uffd_move_fd();
	if (fd < 0 || uffd_reg(fd, dst, H, NULL))
		goto fail;
	r = do_move(fd, dst, src, H, 0);
	if (kv_major == 6 && kv_minor == 1 && r.ret == -1 && r.err == EBUSY && r.move == -EBUSY) {
		ktap_diag("rule R_THP: kernel %d.%d (project series) refused the PMD-mapped THP with EBUSY: accepted",
			  kv_major, kv_minor);
		if (check_pat("src (must be untouched)", src, H, 90))
			fails++;
		goto out;
	}
	ktap_diag("rule R_THP: kernel %d.%d -> %s", kv_major, kv_minor,
		  kver_ge(6, 8) ? "must move the THP (>= 6.8)" :
		  (kv_major == 6 && kv_minor == 1) ?
		  "move or EBUSY (6.1 series)" : "must move the THP");
	if (expect_moved("UFFDIO_MOVE of a PMD-mapped THP (2 MiB-aligned)", r, H)) {
		fails++;
		goto out;
	}
	kb = smaps_anon_huge_kb(dst);
	ktap_diag("dst after move: AnonHugePages %ld kB (%s)", kb,
		  kb >= (long)(H >> 10) ? "moved as a PMD" : "split or PTE-mapped");
	if (uffd_unreg(fd, dst, H))
		goto fail;
	if (check_pat("dst", dst, H, 90))
		fails++;
	if (check_zero("src", src, H))
		fails++;
out:
	close(fd);
	munmap(base, total);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	if (fd >= 0)
		close(fd);
	munmap(base, total);
	return KTAP_FAIL;
}

/*
 * R_ZERO: a read-faulted src maps the shared zero page.  6.8 (and the 6.1
 * series) refuse it with EBUSY; from 6.9 it is moved and dst maps the
 * zero page (populated, reads zero).
 */
static int t_zero_page(void)
{
	const int moves = kver_ge(6, 9);
	struct pair pr;
	int fails = 0;
	struct mv r;

	NEED_MOVE();
	ktap_diag("rule R_ZERO: kernel %d.%d -> %s", kv_major, kv_minor,
		  moves ? "zero page is moved (>= 6.9)" : "EBUSY (before 6.9)");
	if (pair_setup(&pr, 2, 1))
		goto fail;
	madvise(pr.src, pr.len, MADV_NOHUGEPAGE);	/* no huge zero page */
	for (size_t o = 0; o < pr.len; o += pg)
		(void)*(volatile char *)(pr.src + o);
	if (resident(pr.src) != 1) {
		ktap_diag("setup: read fault on src did not map a page");
		goto fail;
	}
	r = do_move(pr.ufd, pr.dst, pr.src, pr.len, 0);
	if (!moves) {
		if (expect_fail("UFFDIO_MOVE of the zero page", r, EBUSY, 0))
			fails++;
		if (resident(pr.dst) != 0) {
			ktap_diag("dst populated although the call failed");
			fails++;
		}
	} else {
		if (expect_moved("UFFDIO_MOVE of the zero page", r, pr.len))
			fails++;
		for (size_t i = 0; i < 2; i++) {
			if (resident(pr.dst + i * pg) != 1) {
				ktap_diag("dst page %zu: expected populated (zero page moved), got unpopulated",
					  i);
				fails++;
			}
			if (resident(pr.src + i * pg) != 0) {
				ktap_diag("src page %zu: expected unpopulated after the move, got populated",
					  i);
				fails++;
			}
		}
	}
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_zero("dst", pr.dst, pr.len) || check_zero("src", pr.src, pr.len))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

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

static int t_fault_driven_move(void)
{
	const size_t n = 4;
	pthread_t rd, hd;
	struct fctx f;
	struct pair pr;
	int fails = 0;

	NEED_MOVE();
	if (pair_setup(&pr, n, 1))
		goto fail;
	for (size_t i = 0; i < n; i++)
		fill(pr.src + i * pg, pg, 100 + i);
	memset(&f, 0, sizeof(f));
	f.pr = &pr;
	f.npages = n;
	if (pthread_create(&hd, NULL, handler_fn, &f))
		goto fail;
	if (pthread_create(&rd, NULL, reader_fn, &f)) {
		f.stop = 1;
		pthread_join(hd, NULL);
		goto fail;
	}
	if (!wait_flag(&f.reader_done, 10)) {
		ktap_diag("reader: expected to finish within 10 s, still blocked after %d resolved faults; unregistering dst to wake it",
			  f.nfaults);
		fails++;
		uffd_unreg(pr.ufd, pr.dst, pr.len);
	}
	pthread_join(rd, NULL);
	f.stop = 1;
	pthread_join(hd, NULL);
	if (f.nfaults != (int)n || f.herr || f.bad_pages) {
		ktap_diag("expected %zu faults resolved by UFFDIO_MOVE, 0 handler errors, 0 bad pages; got %d, %d, %d",
			  n, f.nfaults, f.herr, f.bad_pages);
		fails++;
	}
	for (size_t i = 0; i < n; i++) {
		if (resident(pr.src + i * pg) != 0) {
			ktap_diag("src page %zu: expected unpopulated after the move, got populated", i);
			fails++;
			break;
		}
	}
	if (check_zero("src", pr.src, pr.len))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

static int t_fault_dontwake(void)
{
	struct uffdio_range wr;
	struct uffd_msg msg;
	pthread_t rd;
	struct fctx f;
	struct pair pr;
	int fails = 0, g;

	NEED_MOVE();
	if (pair_setup(&pr, 1, 1))
		goto fail;
	fill(pr.src, pg, 100);
	memset(&f, 0, sizeof(f));
	f.pr = &pr;
	f.npages = 1;
	if (pthread_create(&rd, NULL, reader_fn, &f))
		goto fail;
	g = uffd_get_msg(pr.ufd, &msg, 5000);
	if (g != 1 || msg.event != UFFD_EVENT_PAGEFAULT) {
		ktap_diag("expected a page fault message within 5 s, got %s",
			  g == 1 ? "another event" : g ? "an error" : "nothing");
		uffd_unreg(pr.ufd, pr.dst, pr.len);
		pthread_join(rd, NULL);
		goto fail;
	}
	if (expect_moved("UFFDIO_MOVE DONTWAKE|ALLOW_SRC_HOLES",
			 do_move(pr.ufd, pr.dst, pr.src, pg,
				 UFFDIO_MOVE_MODE_DONTWAKE |
				 UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES), pg))
		fails++;
	sleep_ms(100);
	if (f.reader_done) {
		ktap_diag("reader: expected still blocked 100 ms after a DONTWAKE move, got woken");
		fails++;
	}
	wr.start = (uintptr_t)pr.dst;
	wr.len = pg;
	if (ioctl(pr.ufd, UFFDIO_WAKE, &wr)) {
		ktap_diag("UFFDIO_WAKE failed: %s", ename(errno));
		fails++;
	}
	if (!wait_flag(&f.reader_done, 5)) {
		ktap_diag("reader: expected to finish after UFFDIO_WAKE, still blocked after 5 s; unregistering dst");
		fails++;
		uffd_unreg(pr.ufd, pr.dst, pr.len);
	}
	pthread_join(rd, NULL);
	if (f.bad_pages) {
		ktap_diag("reader saw wrong data at dst");
		fails++;
	}
	if (resident(pr.src) != 0 || check_zero("src", pr.src, pg))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
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

/* one page moved from src to dst, dst unregistered again; pfn of dst */
static int moved_page(struct pair *pr, unsigned int seed, uint64_t *pfn)
{
	if (pair_setup(pr, 1, 1))
		return -1;
	fill(pr->src, pg, seed);
	if (expect_moved("UFFDIO_MOVE 1 page", do_move(pr->ufd, pr->dst, pr->src, pg, 0), pg))
		return -1;
	if (uffd_unreg(pr->ufd, pr->dst, pg))
		return -1;
	*pfn = pfn_of(pr->dst);
	return 0;
}

static int t_rmap_page_idle(void)
{
	struct pair pr = { .ufd = -1 };
	uint64_t pfn;
	int fd, b, fails = 0;

	NEED_MOVE();
	fd = open(IDLE_BITMAP, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return ktap_skip_because(IDLE_BITMAP " absent (%s): CONFIG_IDLE_PAGE_TRACKING not built",
					 ename(errno));
	pin_cpu();
	if (moved_page(&pr, 110, &pfn))
		goto fail;
	if (!pfn) {
		close(fd);
		pair_teardown(&pr);
		return ktap_skip_because("no PFN for dst in /proc/self/pagemap (absent, or PFNs hidden without CAP_SYS_ADMIN)");
	}
	drain_lru_and_flush();
	if (idle_bit(fd, pfn, 1)) {
		ktap_diag("writing the idle bit of pfn 0x%llx failed: %s",
			  (unsigned long long)pfn, ename(errno));
		goto fail;
	}
	b = idle_bit(fd, pfn, 0);
	if (b != 1) {
		close(fd);
		pair_teardown(&pr);
		return ktap_skip_because("idle bit of pfn 0x%llx did not stick (read %d): page not on the LRU",
					 (unsigned long long)pfn, b);
	}
	drain_lru_and_flush();	/* x86: drop the cached TLB entry */
	(void)*(volatile char *)pr.dst;
	b = idle_bit(fd, pfn, 0);
	if (b != 0) {
		ktap_diag("pfn 0x%llx after access through dst: expected idle bit clear (rmap walk finds the dst PTE young), got %d",
			  (unsigned long long)pfn, b);
		fails++;
	}
	if (pfn_of(pr.dst) != pfn) {
		ktap_diag("dst PFN changed during the test (0x%llx -> 0x%llx)",
			  (unsigned long long)pfn, (unsigned long long)pfn_of(pr.dst));
	}
	if (check_pat("dst", pr.dst, pg, 110))
		fails++;
	close(fd);
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	close(fd);
	pair_teardown(&pr);
	return KTAP_FAIL;
}

static int t_rmap_soft_offline(void)
{
	struct pair pr = { .ufd = -1 };
	uint64_t pfn0, pfn1;
	int fails = 0, e;

	NEED_MOVE();
	pin_cpu();
	if (moved_page(&pr, 120, &pfn0))
		goto fail;
	drain_lru_and_flush();
	if (madvise(pr.dst, pg, MADV_SOFT_OFFLINE)) {
		e = errno;
		pair_teardown(&pr);
		if (e == EINVAL || e == ENOSYS)
			return ktap_skip_because("madvise(MADV_SOFT_OFFLINE): %s: CONFIG_MEMORY_FAILURE not built",
						 ename(e));
		if (e == EPERM)
			return ktap_skip_because("madvise(MADV_SOFT_OFFLINE): EPERM (needs CAP_SYS_ADMIN)");
		if (e == EOPNOTSUPP)
			return ktap_skip_because("madvise(MADV_SOFT_OFFLINE): EOPNOTSUPP (vm.enable_soft_offline=0)");
		ktap_diag("madvise(dst, MADV_SOFT_OFFLINE): expected 0 (migration through rmap), got %s",
			  ename(e));
		return KTAP_FAIL;
	}
	pfn1 = pfn_of(pr.dst);
	ktap_diag("dst PFN 0x%llx -> 0x%llx", (unsigned long long)pfn0,
		  (unsigned long long)pfn1);
	if (!pfn0 || !pfn1)
		ktap_diag("PFN not visible in /proc/self/pagemap: PFN-change check not done");
	if (pfn0 && pfn0 == pfn1) {
		ktap_diag("dst PFN: expected a new PFN after soft offline, got the same 0x%llx",
			  (unsigned long long)pfn1);
		fails++;
	}
	if (check_pat("dst", pr.dst, pg, 120))
		fails++;
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	return KTAP_FAIL;
}

/* ------------------------------------------------------------------ */
/* stress                                                                */

#define ST_THREADS	4
#define ST_SLOTS	8	/* chunks per thread */
#define ST_CHUNK	4	/* pages per chunk */
#define ST_SECONDS	4.0

struct stress {
	int ufd;
	char *a, *b;		/* the two VMAs */
	size_t len;		/* bytes per VMA */
	volatile int stop;
};

struct sthread {
	struct stress *s;
	int id;
	unsigned char where[ST_SLOTS];	/* 0: in a, 1: in b */
	long moves;
	long mismatches;
	long errors;
	char first[256];	/* first problem, reported by main */
};

static uint64_t st_tag(int t, int slot, size_t page)
{
	return 0x7a6700000000ULL | ((uint64_t)t << 24) |
	       ((uint64_t)slot << 12) | page;
}

static void st_fill(char *p, uint64_t tag)
{
	for (size_t o = 0; o < pg; o += 8)
		*(uint64_t *)(p + o) = tag ^ (o << 40);
}

/* full check of one page; returns the first bad byte offset or -1 */
static long st_check(const char *p, uint64_t tag)
{
	for (size_t o = 0; o < pg; o += 8)
		if (*(const volatile uint64_t *)(p + o) != (tag ^ (o << 40)))
			return (long)o;
	return -1;
}

static void *st_worker(void *arg)
{
	struct sthread *th = arg;
	struct stress *s = th->s;
	const size_t chunk = ST_CHUNK * pg;

	while (!s->stop) {
		for (int k = 0; k < ST_SLOTS && !s->stop; k++) {
			int slot = th->id * ST_SLOTS + k;
			size_t off = (size_t)slot * chunk, done = 0;
			char *from = (th->where[k] ? s->b : s->a) + off;
			char *to = (th->where[k] ? s->a : s->b) + off;

			while (done < chunk) {
				struct mv r = do_move(s->ufd, to + done, from + done,
						      chunk - done, 0);

				if (r.ret == 0 && r.move == (__s64)(chunk - done)) {
					done = chunk;
				} else if (r.ret == -1 && r.err == EAGAIN && r.move > 0) {
					done += r.move;	/* partial: go on */
				} else {
					if (!th->errors++)
						snprintf(th->first, sizeof(th->first),
							 "slot %d: UFFDIO_MOVE 0x%zx bytes at +0x%zx: expected 0/move %zu, got ret %d errno %s move %s",
							 slot, chunk - done, off + done,
							 chunk - done, r.ret, ename(r.err),
							 mvstr(r.move));
					break;
				}
			}
			if (done < chunk) {
				s->stop = 1;
				break;
			}
			th->where[k] ^= 1;
			th->moves++;
			/* the tag travels: check word 0 of each page */
			for (size_t i = 0; i < ST_CHUNK; i++) {
				uint64_t want = st_tag(th->id, slot, i), got;

				if (resident(to + i * pg) != 1) {
					if (!th->mismatches++ && !th->errors)
						snprintf(th->first, sizeof(th->first),
							 "slot %d page %zu: expected populated at %s+0x%zx after the move, got unpopulated",
							 slot, i, th->where[k] ? "b" : "a",
							 off + i * pg);
					continue;
				}
				got = *(volatile uint64_t *)(to + i * pg);
				if (got != want && !th->mismatches++ && !th->errors)
					snprintf(th->first, sizeof(th->first),
						 "slot %d page %zu at %s+0x%zx: expected tag 0x%llx, got 0x%llx",
						 slot, i, th->where[k] ? "b" : "a",
						 off + i * pg,
						 (unsigned long long)want,
						 (unsigned long long)got);
			}
		}
	}
	return NULL;
}

static int t_stress_threads(void)
{
	struct sthread th[ST_THREADS];
	pthread_t tid[ST_THREADS];
	const size_t chunk = ST_CHUNK * pg;
	struct stress s;
	size_t total;
	char *base;
	long moves = 0, bad = 0, errs = 0;
	int fails = 0, c0, c1, started = 0;
	uintptr_t lo, hi;
	double t0;

	NEED_MOVE();
	memset(&s, 0, sizeof(s));
	memset(th, 0, sizeof(th));
	s.len = (size_t)ST_THREADS * ST_SLOTS * chunk;
	total = 2 * s.len + 3 * pg;
	base = mmap(NULL, total, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		ktap_diag("reserve failed: %s", ename(errno));
		return KTAP_FAIL;
	}
	lo = (uintptr_t)base;
	hi = lo + total;
	s.a = carve(base + pg, s.len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS);
	s.b = carve(base + 2 * pg + s.len, s.len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS);
	s.ufd = -1;
	if (!s.a || !s.b)
		goto fail;
	for (int t = 0; t < ST_THREADS; t++)
		for (int k = 0; k < ST_SLOTS; k++) {
			int slot = t * ST_SLOTS + k;

			for (size_t i = 0; i < ST_CHUNK; i++)
				st_fill(s.a + slot * chunk + i * pg,
					st_tag(t, slot, i));
		}
	s.ufd = uffd_move_fd();
	if (s.ufd < 0 || uffd_reg(s.ufd, s.a, s.len, NULL) ||
	    uffd_reg(s.ufd, s.b, s.len, NULL))
		goto fail;
	c0 = maps_count(lo, hi);

	t0 = now_s();
	for (int t = 0; t < ST_THREADS; t++) {
		th[t].s = &s;
		th[t].id = t;
		if (pthread_create(&tid[t], NULL, st_worker, &th[t])) {
			ktap_diag("pthread_create failed");
			s.stop = 1;
			fails++;
			break;
		}
		started++;
	}
	while (!s.stop && now_s() - t0 < ST_SECONDS)
		sleep_ms(20);
	s.stop = 1;
	for (int t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
	c1 = maps_count(lo, hi);

	for (int t = 0; t < started; t++) {
		moves += th[t].moves;
		bad += th[t].mismatches;
		errs += th[t].errors;
		if (th[t].first[0])
			ktap_diag("thread %d: %s", t, th[t].first);
	}
	ktap_diag("%d threads, %.1f s: %ld chunk moves of %zu bytes, %ld errors, %ld tag mismatches",
		  started, now_s() - t0, moves, chunk, errs, bad);
	if (c0 != c1) {
		ktap_diag("VMAs in the test reservation: expected %d (unchanged), got %d",
			  c0, c1);
		fails++;
	}
	if (!moves) {
		ktap_diag("expected some moves, got none");
		fails++;
	}
	if (uffd_unreg(s.ufd, s.a, s.len) || uffd_unreg(s.ufd, s.b, s.len))
		goto fail;
	/* full-page check of every chunk where its thread left it */
	for (int t = 0; t < started; t++) {
		for (int k = 0; k < ST_SLOTS; k++) {
			int slot = t * ST_SLOTS + k;
			char *here = (th[t].where[k] ? s.b : s.a) + slot * chunk;
			char *there = (th[t].where[k] ? s.a : s.b) + slot * chunk;

			for (size_t i = 0; i < ST_CHUNK; i++) {
				long o = st_check(here + i * pg, st_tag(t, slot, i));

				if (o >= 0 && bad++ < 4)
					ktap_diag("final: slot %d page %zu in %s at +0x%lx: expected tag 0x%llx pattern, got 0x%016llx",
						  slot, i, th[t].where[k] ? "b" : "a",
						  (long)(slot * chunk + i * pg) + o,
						  (unsigned long long)st_tag(t, slot, i),
						  (unsigned long long)*(uint64_t *)(here + i * pg + o));
				if (resident(there + i * pg) != 0 && bad++ < 4)
					ktap_diag("final: slot %d page %zu: expected the vacated side unpopulated, got populated",
						  slot, i);
			}
		}
	}
	if (bad || errs) {
		ktap_diag("expected 0 data mismatches and 0 move errors, got %ld and %ld",
			  bad, errs);
		fails++;
	}
	close(s.ufd);
	munmap(base, total);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	if (s.ufd >= 0)
		close(s.ufd);
	munmap(base, total);
	return KTAP_FAIL;
}

/* ------------------------------------------------------------------ */

static const struct ktap_case cases[] = {
	{ "feature_bit", t_feature_bit },
	{ "register_mask", t_register_mask },
	{ "abi", t_abi },
	{ "basic_move", t_basic_move },
	{ "dst_populated_eexist", t_dst_populated_eexist },
	{ "src_hole_enoent", t_src_hole_enoent },
	{ "src_hole_allow", t_src_hole_allow },
	{ "einval_unaligned_dst", t_einval_unaligned_dst },
	{ "einval_unaligned_src", t_einval_unaligned_src },
	{ "einval_unaligned_len", t_einval_unaligned_len },
	{ "einval_len_zero", t_einval_len_zero },
	{ "einval_mode_unknown", t_einval_mode_unknown },
	{ "einval_spans_two_vmas", t_einval_spans_two_vmas },
	{ "einval_dst_file_vma", t_einval_dst_file_vma },
	{ "einval_src_shared_anon", t_einval_src_shared_anon },
	{ "einval_dst_unregistered", t_einval_dst_unregistered },
	{ "no_vma", t_no_vma },
	{ "partial_eagain", t_partial_eagain },
	{ "fork_ebusy", t_fork_ebusy },
	{ "fork_dontfork_moves", t_fork_dontfork_moves },
	{ "ksm_ebusy", t_ksm_ebusy },
	{ "thp_source", t_thp_source },
	{ "zero_page", t_zero_page },
	{ "fault_driven_move", t_fault_driven_move },
	{ "fault_dontwake", t_fault_dontwake },
	{ "rmap_page_idle", t_rmap_page_idle },
	{ "rmap_soft_offline", t_rmap_soft_offline },
	{ "stress_threads", t_stress_threads },
};

/* Probe once in the parent; every test skips when the move is absent. */
static void probe(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd = uffd_open_raw(O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 && errno == EPERM)
		fd = uffd_open_raw(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0) {
		snprintf(offer_detail, sizeof(offer_detail),
			 "userfaultfd() failed: %s",
			 ename(errno));
		return;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		snprintf(offer_detail, sizeof(offer_detail),
			 "UFFDIO_API failed: %s",
			 ename(errno));
	} else if (!(api.features & UFFD_FEATURE_MOVE)) {
		snprintf(offer_detail, sizeof(offer_detail),
			 "UFFDIO_API features=0x%llx lack UFFD_FEATURE_MOVE (0x%llx)",
			 (unsigned long long)api.features,
			 (unsigned long long)UFFD_FEATURE_MOVE);
	} else {
		move_offered = 1;
	}
	close(fd);
}

int main(int argc, char **argv)
{
	struct utsname u;
	int ret;

	pg = (size_t)sysconf(_SC_PAGESIZE);
	if (!uname(&u)) {
		snprintf(kv_release, sizeof(kv_release), "%s", u.release);
		sscanf(u.release, "%d.%d", &kv_major, &kv_minor);
	}
	probe();
	ksm_save(&ksm_saved);
	ret = ktap_run_cases(cases, KTAP_ARRAY_SIZE(cases), 30, argc, argv);
	/* a ksm_ebusy child killed mid-test must not leave ksmd running */
	ksm_restore(&ksm_saved);
	return ret;
}
