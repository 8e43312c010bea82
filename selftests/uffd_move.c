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
 * Version rules encoded here (kernel version from uname -r).  There is one
 * set of expectations, Linux 6.12's, for every kernel that offers
 * UFFD_FEATURE_MOVE; a 6.1.x kernel with the feature (the project series,
 * which follows the latest upstream) is held to it too.  The only rules
 * left name true differences between upstream releases:
 *   R_NOVMA  no VMA at dst/src: EINVAL on 6.8, ENOENT from 6.9 (VMA lookup
 *            by the per-VMA-lock helpers) and on 6.1 + series.
 *   R_ZERO   src maps the zero page (small or huge): EBUSY on 6.8, moved
 *            from 6.9 and on 6.1 + series.
 *   R_DIO    a page held by O_DIRECT in flight: 6.1's O_DIRECT takes
 *            plain references (moved), 6.12's pins (EBUSY).  A property
 *            of the base kernel, not of the move code.
 *   partial  a later page failing after k pages moved: -1/EAGAIN with
 *            move = k pages (all versions; see t_partial_eagain).
 * Bare 6.1 (no UFFD_FEATURE_MOVE): every test skips.
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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/io_uring.h>

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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

/*
 * R_NOVMA: no VMA at the address.  6.8 -> EINVAL; from 6.9 (and on the
 * 6.1 series, which follows 6.12) ENOENT.
 */
static int t_no_vma(void)
{
	int want = kv_is_68() ? EINVAL : ENOENT;
	struct pair pr;
	int fails = 0;

	NEED_MOVE();
	ktap_diag("rule R_NOVMA: kernel %d.%d -> expect %s (EINVAL on 6.8, ENOENT from 6.9 and on 6.1 + series)",
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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

/*
 * thp_source: a PMD-mapped THP, src and dst H-aligned, len H.  As 6.12:
 * the PMD moves whole (dst PMD-mapped, AnonHugePages == H at dst, the
 * same PFN), src becomes empty.
 */
static int t_thp_source(void)
{
	uint64_t pfn0, pfn1;
	long kb_dst, kb_src;
	struct hp h;
	int fails = 0;

	NEED_MOVE();
	HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 1));
	HP_TRY(hp_make_thp(&h, 90));
	pfn0 = pfn_of(h.src);
	if (expect_moved("UFFDIO_MOVE of a PMD-mapped THP (both H-aligned)",
			 do_move(h.ufd, h.dst, h.src, h.H, 0), h.H)) {
		fails++;
		goto out;
	}
	kb_dst = smaps_anon_huge_kb(h.dst);
	kb_src = smaps_anon_huge_kb(h.src);
	pfn1 = pfn_of(h.dst);
	ktap_diag("after the move: dst AnonHugePages %ld kB, src %ld kB; PFN 0x%llx -> 0x%llx",
		  kb_dst, kb_src, (unsigned long long)pfn0,
		  (unsigned long long)pfn1);
	if (kb_dst != (long)(h.H >> 10)) {
		ktap_diag("dst: expected PMD-mapped (AnonHugePages %zu kB), got %ld kB",
			  h.H >> 10, kb_dst);
		fails++;
	}
	if (kb_src != 0) {
		ktap_diag("src: expected AnonHugePages 0 kB, got %ld kB", kb_src);
		fails++;
	}
	if (pfn0 && pfn1 != pfn0) {
		ktap_diag("dst PFN: expected the src huge page 0x%llx (moved, not copied), got 0x%llx",
			  (unsigned long long)pfn0, (unsigned long long)pfn1);
		fails++;
	}
	for (size_t o = 0; o < h.H; o += 64 * pg)
		if (resident(h.src + o) != 0) {
			ktap_diag("src+0x%zx: expected unpopulated after the move", o);
			fails++;
			break;
		}
	if (uffd_unreg(h.ufd, h.dst, h.H))
		goto fail;
	if (check_pat("dst", h.dst, h.H, 90))
		fails++;
	if (check_zero("src", h.src, h.H))
		fails++;
out:
	hp_teardown(&h);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	hp_teardown(&h);
	return KTAP_FAIL;
}

/*
 * thp_split_partial: 4 pages from the middle of a PMD-mapped THP.  As
 * 6.12: the THP is split, the 4 pages move, the rest of src stays in
 * place and is no longer PMD-mapped.
 */
static int t_thp_split_partial(void)
{
	const size_t n = 4;
	size_t off;
	long kb_src, kb_dst;
	struct hp h;
	int fails = 0;

	NEED_MOVE();
	HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 1));
	HP_TRY(hp_make_thp(&h, 91));
	off = h.H / 2;
	if (expect_moved("UFFDIO_MOVE of 4 pages from the middle of a THP",
			 do_move(h.ufd, h.dst + off, h.src + off, n * pg, 0),
			 n * pg))
		fails++;
	kb_src = smaps_anon_huge_kb(h.src);
	kb_dst = smaps_anon_huge_kb(h.dst);
	ktap_diag("after the move: src AnonHugePages %ld kB, dst %ld kB", kb_src, kb_dst);
	if (kb_src != 0 || kb_dst != 0) {
		ktap_diag("expected src split (AnonHugePages 0) and dst PTE-mapped (0), got src %ld dst %ld kB",
			  kb_src, kb_dst);
		fails++;
	}
	for (size_t i = 0; i < n; i++)
		if (resident(h.src + off + i * pg) != 0 ||
		    resident(h.dst + off + i * pg) != 1) {
			ktap_diag("page %zu: expected src unpopulated, dst populated", i);
			fails++;
			break;
		}
	if (resident(h.dst) != 0 || resident(h.dst + off - pg) != 0) {
		ktap_diag("dst outside the moved range: expected unpopulated");
		fails++;
	}
	if (uffd_unreg(h.ufd, h.dst, h.H))
		goto fail;
	if (check_pat("src before the range", h.src, off, 91))
		fails++;
	if (check_zero("src range", h.src + off, n * pg))
		fails++;
	for (size_t o = off + n * pg; o < h.H; o += 8) {
		if (*(volatile uint64_t *)(h.src + o) != pat(91, o)) {
			ktap_diag("src+0x%zx after the range: pattern lost", o);
			fails++;
			break;
		}
	}
	for (size_t o = off; o < off + n * pg; o += 8) {
		if (*(volatile uint64_t *)(h.dst + o) != pat(91, o)) {
			ktap_diag("dst+0x%zx: expected the moved src pattern", o);
			fails++;
			break;
		}
	}
	hp_teardown(&h);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	hp_teardown(&h);
	return KTAP_FAIL;
}

/* p[0..len) carries pattern seed at offsets base_off.. (a moved slice) */
static int check_pat_off(const char *what, const char *p, size_t len,
			 unsigned int seed, size_t base_off)
{
	for (size_t o = 0; o < len; o += 8) {
		uint64_t got = *(volatile const uint64_t *)(p + o);

		if (got != pat(seed, base_off + o)) {
			ktap_diag("%s+0x%zx: expected 0x%016llx (pattern %u at 0x%zx), got 0x%016llx",
				  what, o, (unsigned long long)pat(seed, base_off + o),
				  seed, base_off + o, (unsigned long long)got);
			return -1;
		}
	}
	return 0;
}

/*
 * thp_split_misaligned_dst: a whole PMD-mapped THP (len H, src aligned)
 * to a dst one page off the PMD boundary.  As 6.12: split, every page
 * moved, dst PTE-mapped.
 */
static int t_thp_split_misaligned_dst(void)
{
	long kb_src, kb_dst;
	struct hp h;
	int fails = 0;

	NEED_MOVE();
	HP_TRY(hp_setup(&h, pg, MADV_HUGEPAGE, 1));
	HP_TRY(hp_make_thp(&h, 92));
	if (expect_moved("UFFDIO_MOVE of a whole THP to dst = PMD boundary + 1 page",
			 do_move(h.ufd, h.dst, h.src, h.H, 0), h.H))
		fails++;
	kb_src = smaps_anon_huge_kb(h.src);
	kb_dst = smaps_anon_huge_kb(h.dst);
	ktap_diag("after the move: src AnonHugePages %ld kB, dst %ld kB (split: 0)",
		  kb_src, kb_dst);
	if (kb_src != 0 || kb_dst != 0) {
		ktap_diag("expected AnonHugePages 0 at src and dst (split, PTE-mapped), got %ld and %ld kB",
			  kb_src, kb_dst);
		fails++;
	}
	for (size_t o = 0; o < h.H; o += 32 * pg)
		if (resident(h.src + o) != 0) {
			ktap_diag("src+0x%zx: expected unpopulated after the move", o);
			fails++;
			break;
		}
	if (uffd_unreg(h.ufd, h.dst, h.H))
		goto fail;
	if (check_pat("dst", h.dst, h.H, 92))
		fails++;
	if (check_zero("src", h.src, h.H))
		fails++;
	hp_teardown(&h);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	hp_teardown(&h);
	return KTAP_FAIL;
}

/*
 * thp_pte_mapped: a THP whose PMD was split by MADV_DONTNEED of one
 * subpage (a PTE-mapped large folio with a hole).  Move the whole range
 * with ALLOW_SRC_HOLES to an aligned dst.  As 6.12: every page moves (the
 * folio is split), the hole stays a hole, dst PTE-mapped.
 */
static int t_thp_pte_mapped(void)
{
	const size_t hole = 5;
	long kb_src, kb_dst;
	uint64_t f0 = 0, f1 = 0, pfn0;
	int fails = 0, ok0 = 0, ok1 = 0;
	struct hp h;

	NEED_MOVE();
	HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 1));
	HP_TRY(hp_make_thp(&h, 93));
	if (madvise(h.src + hole * pg, pg, MADV_DONTNEED)) {
		ktap_diag("madvise(MADV_DONTNEED) of src page %zu failed: %s", hole,
			  ename(errno));
		goto fail;
	}
	kb_src = smaps_anon_huge_kb(h.src);
	pfn0 = pfn_of(h.src);
	if (pfn0)
		f0 = kpflags(pfn0, &ok0);
	ktap_diag("src after MADV_DONTNEED of page %zu: AnonHugePages %ld kB, page 0 %s",
		  hole, kb_src, !ok0 ? "kpageflags unreadable" :
		  (f0 >> KPF_THP) & 1 ? "still in a large folio (THP flag)" :
		  "not THP");
	if (kb_src != 0) {
		ktap_diag("setup: expected the PMD split by MADV_DONTNEED (AnonHugePages 0), got %ld kB",
			  kb_src);
		goto fail;
	}
	if (expect_moved("UFFDIO_MOVE ALLOW_SRC_HOLES of a PTE-mapped THP range",
			 do_move(h.ufd, h.dst, h.src, h.H,
				 UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES), h.H))
		fails++;
	kb_dst = smaps_anon_huge_kb(h.dst);
	if (pfn_of(h.dst))
		f1 = kpflags(pfn_of(h.dst), &ok1);
	ktap_diag("after the move: dst AnonHugePages %ld kB, dst page 0 %s", kb_dst,
		  !ok1 ? "kpageflags unreadable" :
		  (f1 >> KPF_THP) & 1 ? "THP flag set" : "small folio (split)");
	if (kb_dst != 0) {
		ktap_diag("dst: expected PTE-mapped (AnonHugePages 0), got %ld kB", kb_dst);
		fails++;
	}
	if (resident(h.dst + hole * pg) != 0) {
		ktap_diag("dst page %zu: expected a hole (moved hole), got populated", hole);
		fails++;
	}
	for (size_t i = 0; i < h.H / pg; i += 7)
		if (resident(h.src + i * pg) != 0) {
			ktap_diag("src page %zu: expected unpopulated after the move", i);
			fails++;
			break;
		}
	if (uffd_unreg(h.ufd, h.dst, h.H))
		goto fail;
	if (check_pat("dst pages before the hole", h.dst, hole * pg, 93) ||
	    check_zero("dst hole page", h.dst + hole * pg, pg) ||
	    check_pat_off("dst pages after the hole", h.dst + (hole + 1) * pg,
			  h.H - (hole + 1) * pg, 93, (hole + 1) * pg))
		fails++;
	if (check_zero("src", h.src, h.H))
		fails++;
	hp_teardown(&h);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	hp_teardown(&h);
	return KTAP_FAIL;
}

/*
 * thp_huge_zero: a read fault on an H-aligned MADV_HUGEPAGE range maps
 * the huge zero page (THP enabled, use_zero_page=1).  Rule R_ZERO: EBUSY
 * on 6.8; from 6.9 (and 6.1 + series) it moves: dst maps the huge zero
 * page (same PFNs as src had), src becomes empty.
 */
static int t_thp_huge_zero(void)
{
	uint64_t pfn0, pfn0b, pfn1, pfn1b, fl;
	const int moves = !kv_is_68();
	int fails = 0, ok = 0;
	struct hp h;
	struct mv r;

	NEED_MOVE();
	if (read_long(THP_DIR "use_zero_page") != 1)
		return ktap_skip_because(THP_DIR "use_zero_page is not 1: no huge zero page");
	HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 1));
	(void)*(volatile char *)h.src;	/* read fault: huge zero page */
	pfn0 = pfn_of(h.src);
	pfn0b = pfn_of(h.src + h.H - pg);
	fl = pfn0 ? kpflags(pfn0, &ok) : 0;
	ktap_diag("src after a read fault: PFN 0x%llx .. 0x%llx, %s",
		  (unsigned long long)pfn0, (unsigned long long)pfn0b,
		  !ok ? "kpageflags unreadable" :
		  (fl >> KPF_ZERO_PAGE) & 1 ? "zero page" : "NOT the zero page");
	if (!pfn0 || pfn0b != pfn0 + h.H / pg - 1 || (ok && !((fl >> KPF_ZERO_PAGE) & 1))) {
		hp_teardown(&h);
		return ktap_skip_because("the read fault did not map the huge zero page (PFNs 0x%llx..0x%llx)",
					 (unsigned long long)pfn0,
					 (unsigned long long)pfn0b);
	}
	ktap_diag("rule R_ZERO: kernel %d.%d -> %s", kv_major, kv_minor,
		  moves ? "the huge zero page moves (6.9+, 6.1 + series)" : "EBUSY (6.8)");
	r = do_move(h.ufd, h.dst, h.src, h.H, 0);
	if (!moves) {
		if (expect_fail("UFFDIO_MOVE of the huge zero page", r, EBUSY, 0))
			fails++;
		goto out;
	}
	if (expect_moved("UFFDIO_MOVE of the huge zero page", r, h.H))
		fails++;
	pfn1 = pfn_of(h.dst);
	pfn1b = pfn_of(h.dst + h.H - pg);
	ktap_diag("dst after the move: PFN 0x%llx .. 0x%llx", (unsigned long long)pfn1,
		  (unsigned long long)pfn1b);
	if (pfn1 != pfn0 || pfn1b != pfn0b) {
		ktap_diag("dst: expected the huge zero page mapped whole (PFNs 0x%llx..0x%llx), got 0x%llx..0x%llx",
			  (unsigned long long)pfn0, (unsigned long long)pfn0b,
			  (unsigned long long)pfn1, (unsigned long long)pfn1b);
		fails++;
	}
	if (resident(h.src) != 0 || resident(h.src + h.H - pg) != 0) {
		ktap_diag("src: expected unpopulated after the move");
		fails++;
	}
out:
	if (uffd_unreg(h.ufd, h.dst, h.H))
		goto fail;
	if (check_zero("dst", h.dst, h.H) || check_zero("src", h.src, h.H))
		fails++;
	hp_teardown(&h);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	hp_teardown(&h);
	return KTAP_FAIL;
}

/*
 * thp_dst_populated: PMD-mapped THP src, dst PMD range with one page
 * populated (dst page table present).  As 6.12 (to be confirmed): the
 * first page fails EEXIST -> -1/EEXIST, move = -EEXIST; src data intact.
 */
static int t_thp_dst_populated(void)
{
	struct hp h;
	int fails = 0;

	NEED_MOVE();
	HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 0));
	/* dst page 0 populated before registering: a small page (no THP) */
	madvise(h.dst, h.H, MADV_NOHUGEPAGE);
	fill(h.dst, pg, 94);
	madvise(h.dst, h.H, MADV_HUGEPAGE);
	if (uffd_reg(h.ufd, h.dst, h.H, NULL))
		goto fail;
	HP_TRY(hp_make_thp(&h, 95));
	if (expect_fail("UFFDIO_MOVE of a THP onto a dst PMD range whose page 0 is populated",
			do_move(h.ufd, h.dst, h.src, h.H, 0), EEXIST, 0))
		fails++;
	ktap_diag("after: src AnonHugePages %ld kB", smaps_anon_huge_kb(h.src));
	if (uffd_unreg(h.ufd, h.dst, h.H))
		goto fail;
	if (check_pat("src", h.src, h.H, 95))
		fails++;
	if (check_pat("dst page 0", h.dst, pg, 94) ||
	    check_zero("dst pages 1..", h.dst + pg, h.H - pg))
		fails++;
	hp_teardown(&h);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	hp_teardown(&h);
	return KTAP_FAIL;
}

/*
 * R_ZERO: a read-faulted src maps the shared zero page.  6.8 refuses it
 * with EBUSY; from 6.9 (and on the 6.1 series) it is moved and dst maps
 * the zero page (populated, reads zero).
 */
static int t_zero_page(void)
{
	const int moves = !kv_is_68();
	struct pair pr;
	int fails = 0;
	struct mv r;

	NEED_MOVE();
	ktap_diag("rule R_ZERO: kernel %d.%d -> %s", kv_major, kv_minor,
		  moves ? "zero page is moved (6.9+, 6.1 + series)" : "EBUSY (6.8)");
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
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
/* holes against a populated dst: EEXIST comes first                    */

/*
 * src_hole_dst_populated: the dst page is populated and the src page is a
 * hole.  As 6.12 (and 6.18):
 *  (a) src PTE none in a present page table: EEXIST in both modes;
 *  (b) src without a page table (empty PMD): mode 0 -> ENOENT (the empty
 *      src PMD is refused before the dst page is looked at),
 *      ALLOW_SRC_HOLES -> EEXIST;
 *  (c) ALLOW_SRC_HOLES, src holes at pages 1-2, dst page 3 populated:
 *      the holes count as moved: -1/EAGAIN, move = 2 pages.
 * move = -errno in (a) and (b).
 */
static int t_src_hole_dst_populated(void)
{
	static const __u64 modes[2] = { 0, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES };
	struct hp h;
	struct mv r;
	int fails = 0;

	NEED_MOVE();
	/* src: H-aligned, its PMD empty; dst two PMDs away */
	HP_TRY(hp_setup(&h, 0, MADV_NOHUGEPAGE, 0));
	fill(h.dst, pg, 130);			/* dst page 0 populated */
	fill(h.dst + 3 * pg, pg, 133);		/* dst page 3 populated */
	fill(h.src + 8 * pg, pg, 138);		/* src page table present */
	if (uffd_reg(h.ufd, h.dst, h.H, NULL))
		goto fail;
	for (int m = 0; m < 2; m++) {
		const char *mn = m ? "ALLOW_SRC_HOLES" : "mode 0";
		char what[160];

		/* (a) src PTE none, page table present (src page 0) */
		snprintf(what, sizeof(what),
			 "%s: src PTE none (page table present), dst page populated", mn);
		if (expect_fail(what, do_move(h.ufd, h.dst, h.src, pg, modes[m]),
				EEXIST, 0))
			fails++;
	}
	/* (b) no src page table: a fresh H-aligned src PMD past dst */
	{
		char *src2 = h.dst + 2 * h.H;	/* inside the reservation */

		src2 = (char *)(((uintptr_t)src2) & ~(uintptr_t)(h.H - 1));
		if (src2 + h.H > h.base + h.total || src2 < h.dst + h.H) {
			ktap_diag("setup: no room for a second src PMD");
			goto fail;
		}
		if (!carve(src2, h.H, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS) ||
		    madvise(src2, h.H, MADV_NOHUGEPAGE))
			goto fail;
		for (int m = 0; m < 2; m++) {
			char what[160];

			snprintf(what, sizeof(what),
				 "%s: src without page table (empty PMD), dst page populated",
				 m ? "ALLOW_SRC_HOLES" : "mode 0");
			/* 6.12: mode 0 fails on the empty src PMD first */
			if (expect_fail(what, do_move(h.ufd, h.dst, src2, pg, modes[m]),
					m ? EEXIST : ENOENT, 0))
				fails++;
		}
		/* (c) holes at src pages 1,2 moved, dst page 3 populated */
		r = do_move(h.ufd, h.dst + pg, src2 + pg, 3 * pg,
			    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
		if (r.ret != -1 || r.err != EAGAIN || r.move != (__s64)(2 * pg)) {
			ktap_diag("ALLOW_SRC_HOLES, src holes at pages 1-2, dst page 3 populated: expected -1/EAGAIN move %zu (2 pages), got ret %d errno %s move %s",
				  2 * pg, r.ret, ename(r.err), mvstr(r.move));
			fails++;
		}
		if (resident(src2) != 0 || resident(h.dst + pg) != 0 ||
		    resident(h.dst + 2 * pg) != 0) {
			ktap_diag("holes: expected src2 and dst pages 1-2 unpopulated");
			fails++;
		}
	}
	if (uffd_unreg(h.ufd, h.dst, h.H))
		goto fail;
	if (check_pat("dst page 0", h.dst, pg, 130) ||
	    check_pat("dst page 3", h.dst + 3 * pg, pg, 133) ||
	    check_pat("src page 8", h.src + 8 * pg, pg, 138))
		fails++;
	hp_teardown(&h);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	hp_teardown(&h);
	return KTAP_FAIL;
}

/*
 * src_hole_pmd_dst_thp: src PMD empty, dst a PMD-mapped THP (populated
 * through a huge page).  As 6.12 (to be confirmed): EEXIST in both modes.
 */
static int t_src_hole_pmd_dst_thp(void)
{
	static const __u64 modes[2] = { 0, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES };
	struct hp h;
	int fails = 0;
	long kb;

	NEED_MOVE();
	HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 0));
	fill(h.dst, h.H, 131);
	kb = smaps_anon_huge_kb(h.dst);
	if (kb < (long)(h.H >> 10)) {
		hp_teardown(&h);
		return ktap_skip_because("dst did not become a PMD-mapped THP (AnonHugePages %ld kB)", kb);
	}
	if (uffd_reg(h.ufd, h.dst, h.H, NULL))
		goto fail;
	for (int m = 0; m < 2; m++) {
		char what[160];

		snprintf(what, sizeof(what), "%s: src PMD empty, dst PMD-mapped THP, len H",
			 m ? "ALLOW_SRC_HOLES" : "mode 0");
		if (expect_fail(what, do_move(h.ufd, h.dst, h.src, h.H, modes[m]),
				EEXIST, 0))
			fails++;
		snprintf(what, sizeof(what), "%s: src PMD empty, dst PMD-mapped THP, len 1 page",
			 m ? "ALLOW_SRC_HOLES" : "mode 0");
		if (expect_fail(what, do_move(h.ufd, h.dst, h.src, pg, modes[m]),
				EEXIST, 0))
			fails++;
	}
	kb = smaps_anon_huge_kb(h.dst);
	ktap_diag("dst AnonHugePages after: %ld kB", kb);
	if (kb != (long)(h.H >> 10)) {
		ktap_diag("dst: expected still PMD-mapped (%zu kB), got %ld kB", h.H >> 10, kb);
		fails++;
	}
	if (uffd_unreg(h.ufd, h.dst, h.H))
		goto fail;
	if (check_pat("dst", h.dst, h.H, 131))
		fails++;
	hp_teardown(&h);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	hp_teardown(&h);
	return KTAP_FAIL;
}

/* ------------------------------------------------------------------ */
/* write-back of `move` on the paths that return before any page       */

/*
 * wb_range_overflow: dst or src range past the end of user space, or
 * wrapping.  As 6.12: -1/EINVAL and move untouched (argument check
 * before any VMA lookup).
 */
static int t_wb_range_overflow(void)
{
	struct pair pr;
	int fails = 0;
	struct mv r;
	uintptr_t top = ~(uintptr_t)0 & ~(uintptr_t)(pg - 1);

	NEED_MOVE();
	if (pair_setup(&pr, 1, 1))
		goto fail;
	fill(pr.src, pg, 140);
	r = do_move(pr.ufd, pr.dst, pr.src, top - (uintptr_t)pr.src + 2 * pg, 0);
	if (r.ret != -1 || r.err != EINVAL || r.move != MOVE_SENTINEL) {
		ktap_diag("src+len wraps: expected -1/EINVAL, move untouched; got ret %d errno %s move %s",
			  r.ret, ename(r.err), mvstr(r.move));
		fails++;
	}
	r = do_move(pr.ufd, (void *)top, pr.src, pg, 0);
	if (r.ret != -1 || r.err != EINVAL || r.move != MOVE_SENTINEL) {
		ktap_diag("dst at the top of the address space: expected -1/EINVAL, move untouched; got ret %d errno %s move %s",
			  r.ret, ename(r.err), mvstr(r.move));
		fails++;
	}
	r = do_move(pr.ufd, pr.dst, (void *)((uintptr_t)1 << 62), pg, 0);
	if (r.ret != -1 || r.err != EINVAL || r.move != MOVE_SENTINEL) {
		ktap_diag("src above the user address limit: expected -1/EINVAL, move untouched; got ret %d errno %s move %s",
			  r.ret, ename(r.err), mvstr(r.move));
		fails++;
	}
	if (resident(pr.dst) != 0 || check_pat("src", pr.src, pg, 140))
		fails++;
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

/*
 * wb_efault: the argument struct unreadable -> EFAULT; the struct
 * readable but read-only: as 6.12 (to be confirmed) the move is done,
 * then writing `move` back fails -> -1/EFAULT with the data at dst.
 */
static int t_wb_efault(void)
{
	struct uffdio_move *m;
	struct pair pr;
	int fails = 0, ret, e;

	NEED_MOVE();
	if (pair_setup(&pr, 2, 1))
		goto fail;
	fill(pr.src, pr.len, 141);
	errno = 0;
	ret = ioctl(pr.ufd, UFFDIO_MOVE, (void *)pg);	/* unmapped page 1 */
	e = errno;
	if (ret != -1 || e != EFAULT) {
		ktap_diag("struct at an unmapped address: expected -1/EFAULT, got ret %d errno %s",
			  ret, ename(e));
		fails++;
	}
	m = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		goto fail;
	m->dst = (uintptr_t)pr.dst;
	m->src = (uintptr_t)pr.src;
	m->len = pr.len;
	m->mode = 0;
	m->move = MOVE_SENTINEL;
	if (mprotect(m, pg, PROT_READ))
		goto fail;
	errno = 0;
	ret = ioctl(pr.ufd, UFFDIO_MOVE, m);
	e = errno;
	ktap_diag("read-only struct: ret %d errno %s, move %s; dst page 0 %s",
		  ret, ename(e), mvstr(m->move),
		  resident(pr.dst) == 1 ? "populated" : "unpopulated");
	if (ret != -1 || e != EFAULT || m->move != MOVE_SENTINEL) {
		ktap_diag("read-only struct: expected -1/EFAULT with move untouched, got ret %d errno %s move %s",
			  ret, ename(e), mvstr(m->move));
		fails++;
	}
	if (resident(pr.dst) != 1 || resident(pr.dst + pg) != 1 ||
	    resident(pr.src) != 0) {
		ktap_diag("read-only struct: expected the pages moved before the write-back failed");
		fails++;
	}
	munmap(m, pg);
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("dst", pr.dst, pr.len, 141) || check_zero("src", pr.src, pr.len))
		fails++;
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

/* ------------------------------------------------------------------ */
/* VMA flag checks                                                       */

/* src and dst prots given; dst registered; expect EINVAL, data intact */
static int prot_case(const char *what, int sprot, int dprot, int want_err)
{
	struct pair pr;
	int fails = 0;

	if (pair_setup(&pr, 1, 0))
		goto fail;
	fill(pr.src, pg, 150);
	if (mprotect(pr.src, pg, sprot) || mprotect(pr.dst, pg, dprot)) {
		ktap_diag("mprotect failed: %s", ename(errno));
		goto fail;
	}
	if (uffd_reg(pr.ufd, pr.dst, pg, NULL))
		goto fail;
	if (want_err) {
		if (expect_fail(what, do_move(pr.ufd, pr.dst, pr.src, pg, 0),
				want_err, 0))
			fails++;
		if (resident(pr.dst) != 0) {
			ktap_diag("%s: dst populated although the call failed", what);
			fails++;
		}
		mprotect(pr.src, pg, PROT_READ);
		if (check_pat("src", pr.src, pg, 150))
			fails++;
	} else {
		if (expect_moved(what, do_move(pr.ufd, pr.dst, pr.src, pg, 0), pg))
			fails++;
		if (uffd_unreg(pr.ufd, pr.dst, pg))
			goto fail;
		mprotect(pr.dst, pg, PROT_READ);
		if (check_pat("dst", pr.dst, pg, 150))
			fails++;
	}
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

/* einval_access_flags: src and dst VMAs with different rwx -> EINVAL */
static int t_einval_access_flags(void)
{
	int fails = 0;

	NEED_MOVE();
	fails += prot_case("src rw-, dst r--", PROT_READ | PROT_WRITE, PROT_READ, EINVAL);
	fails += prot_case("src r--, dst rw-", PROT_READ, PROT_READ | PROT_WRITE, EINVAL);
	fails += prot_case("src rw-, dst rwx", PROT_READ | PROT_WRITE,
			   PROT_READ | PROT_WRITE | PROT_EXEC, EINVAL);
	/* same flags but not writable: refused too */
	fails += prot_case("src r--, dst r-- (both read-only)", PROT_READ, PROT_READ, EINVAL);
	/* control: same flags, both rwx: moves */
	fails += prot_case("src rwx, dst rwx", PROT_READ | PROT_WRITE | PROT_EXEC,
			   PROT_READ | PROT_WRITE | PROT_EXEC, 0);
	return fails ? KTAP_FAIL : KTAP_PASS;
}

/*
 * mlock: src mlocked and dst not (or the reverse) -> EINVAL; both
 * mlocked -> moved, the pages stay mlocked: PG_mlocked (kpageflags) set
 * at dst, VmLck unchanged, the VMAs' Locked (smaps) follows the pages;
 * meminfo Mlocked (system-wide, lags per-CPU batches) is printed only.
 */
static int t_einval_mlock_mismatch(void)
{
	struct pair pr;
	int fails = 0;

	NEED_MOVE();
	if (pair_setup(&pr, 2, 1))
		goto fail;
	fill(pr.src, pr.len, 151);
	if (mlock(pr.src, pr.len)) {
		int e = errno;

		pair_teardown(&pr);
		return ktap_skip_because("mlock: %s", ename(e));
	}
	if (expect_fail("src mlocked, dst not", do_move(pr.ufd, pr.dst, pr.src, pg, 0),
			EINVAL, 0))
		fails++;
	munlock(pr.src, pr.len);
	/* dst is registered MISSING: mlock() would fault it in and block */
	if (syscall(__NR_mlock2, pr.dst, pr.len, 1 /* MLOCK_ONFAULT */)) {
		ktap_diag("mlock2(dst, MLOCK_ONFAULT) failed: %s", ename(errno));
		goto fail;
	}
	if (expect_fail("dst mlocked, src not", do_move(pr.ufd, pr.dst, pr.src, pg, 0),
			EINVAL, 0))
		fails++;
	munlock(pr.dst, pr.len);
	if (resident(pr.dst) != 0 || check_pat("src", pr.src, pr.len, 151))
		fails++;
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

static int t_mlock_both(void)
{
	const size_t n = 64;
	long ml0, ml1, ml2, lck0, lck1, ls0, ld0, ls1, ld1;
	struct pair pr;
	int fails = 0;

	NEED_MOVE();
	if (pair_setup(&pr, n, 0))
		goto fail;
	if (mlock(pr.src, pr.len) || mlock(pr.dst, pr.len)) {
		int e = errno;

		pair_teardown(&pr);
		return ktap_skip_because("mlock: %s", ename(e));
	}
	/* mlock populated both; empty dst again (MADV_DONTNEED on a locked
	 * VMA is refused, so unlock, zap, relock: VM_LOCKONFAULT keeps it empty) */
	munlock(pr.dst, pr.len);
	madvise(pr.dst, pr.len, MADV_DONTNEED);
	if (syscall(__NR_mlock2, pr.dst, pr.len, 1 /* MLOCK_ONFAULT */)) {
		int e = errno;

		pair_teardown(&pr);
		return ktap_skip_because("mlock2(MLOCK_ONFAULT): %s", ename(e));
	}
	fill(pr.src, pr.len, 152);
	if (uffd_reg(pr.ufd, pr.dst, pr.len, NULL))
		goto fail;
	drain_lru_and_flush();
	ml0 = proc_kb("/proc/meminfo", "Mlocked");
	lck0 = proc_kb("/proc/self/status", "VmLck");
	ls0 = smaps_kb(pr.src, "Locked");
	ld0 = smaps_kb(pr.dst, "Locked");
	if (expect_moved("UFFDIO_MOVE between two mlocked VMAs",
			 do_move(pr.ufd, pr.dst, pr.src, pr.len, 0), pr.len))
		fails++;
	drain_lru_and_flush();
	ml1 = proc_kb("/proc/meminfo", "Mlocked");
	lck1 = proc_kb("/proc/self/status", "VmLck");
	ls1 = smaps_kb(pr.src, "Locked");
	ld1 = smaps_kb(pr.dst, "Locked");
	ktap_diag("Mlocked %ld -> %ld kB, VmLck %ld -> %ld kB, smaps Locked src %ld -> %ld, dst %ld -> %ld kB",
		  ml0, ml1, lck0, lck1, ls0, ls1, ld0, ld1);
	/*
	 * meminfo Mlocked is system-wide and lags behind per-CPU mlock
	 * batches of earlier tests' munlocks: informational only.  The
	 * per-page PG_mlocked bit (/proc/kpageflags) is exact.
	 */
	for (size_t i = 0; i < n; i++) {
		uint64_t pfn = pfn_of(pr.dst + i * pg), fl;
		int ok = 0;

		fl = pfn ? kpflags(pfn, &ok) : 0;
		if (!ok) {
			ktap_diag("dst page %zu: PFN/kpageflags unreadable: PG_mlocked check not done", i);
			break;
		}
		if (!((fl >> KPF_MLOCKED) & 1)) {
			ktap_diag("dst page %zu (pfn 0x%llx): expected PG_mlocked set (page stays mlocked), kpageflags 0x%llx",
				  i, (unsigned long long)pfn, (unsigned long long)fl);
			fails++;
			break;
		}
	}
	if (lck1 != lck0) {
		ktap_diag("VmLck: expected unchanged %ld kB, got %ld kB", lck0, lck1);
		fails++;
	}
	if (ls1 != 0 || ld1 != ls0 || ld0 != 0) {
		ktap_diag("smaps Locked: expected src %ld -> 0 and dst 0 -> %ld kB, got src %ld -> %ld, dst %ld -> %ld",
			  ls0, ls0, ls0, ls1, ld0, ld1);
		fails++;
	}
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("dst", pr.dst, pr.len, 152))
		fails++;
	munlock(pr.src, pr.len);
	munlock(pr.dst, pr.len);
	ml2 = proc_kb("/proc/meminfo", "Mlocked");
	ktap_diag("Mlocked after munlock of both: %ld kB (system-wide, informational)", ml2);
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

/* ------------------------------------------------------------------ */
/* swap: a zram swap device set up by the test itself                   */

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#define PM_SWAP		(1ULL << 62)
#define ZRAM "/sys/block/zram0/"
#define ZRAM_SIZE	(64UL << 20)

/* set in the parent's shared page when a test turned swap on */
static volatile int *swap_by_us;

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
static int swap_setup(void)
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
	if (swap_by_us)
		*swap_by_us = 1;
	ktap_diag("swap on /dev/zram0, %ld MiB (set up by this test)", ds >> 20);
	return 0;
}

static void swap_teardown(void)
{
	if (!swap_by_us || !*swap_by_us)
		return;
	syscall(__NR_swapoff, "/dev/zram0");
	write_long(ZRAM "reset", 1);
	*swap_by_us = 0;
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

/*
 * swap_move: 8 pages swapped out with MADV_PAGEOUT, then moved.  As
 * 6.12: move == len, the swap entries now sit at dst (pagemap), src is
 * empty; VmSwap and RssAnon unchanged by the move, smaps Swap moves from
 * the src VMA to the dst VMA; a fault at dst brings the data back
 * (VmSwap -32 kB, RssAnon +32 kB).
 */
static int t_swap_move(void)
{
	const size_t n = 8;
	const long nkb = (long)(n * pg >> 10);
	struct swcount c0, c1, c2;
	struct pair pr;
	int fails = 0;

	NEED_MOVE();
	SWAP_TRY(swap_setup());
	pin_cpu();
	if (pair_setup(&pr, n, 1))
		goto fail;
	madvise(pr.src, pr.len, MADV_NOHUGEPAGE);
	fill(pr.src, pr.len, 160);
	if (page_out(pr.src, n))
		goto fail;
	sw_read(&c0, &pr);
	if (expect_moved("UFFDIO_MOVE of 8 swapped-out pages",
			 do_move(pr.ufd, pr.dst, pr.src, pr.len, 0), pr.len))
		fails++;
	sw_read(&c1, &pr);
	ktap_diag("before/after the move: VmSwap %ld/%ld kB, RssAnon %ld/%ld kB, smaps Swap src %ld/%ld dst %ld/%ld kB",
		  c0.vmswap, c1.vmswap, c0.rssanon, c1.rssanon, c0.src_swap,
		  c1.src_swap, c0.dst_swap, c1.dst_swap);
	if (n_swapped(pr.dst, n) != n) {
		ktap_diag("dst: expected %zu swap entries (pagemap), got %zu", n,
			  n_swapped(pr.dst, n));
		fails++;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t ent = 0;

		if (pagemap_ent(pr.src + i * pg, &ent) || (ent & (PM_SWAP | PM_PRESENT))) {
			ktap_diag("src page %zu: expected empty (pagemap), got 0x%llx", i,
				  (unsigned long long)ent);
			fails++;
			break;
		}
	}
	if (c1.vmswap != c0.vmswap || c1.rssanon != c0.rssanon) {
		ktap_diag("VmSwap/RssAnon: expected unchanged by the move, got %ld -> %ld and %ld -> %ld kB",
			  c0.vmswap, c1.vmswap, c0.rssanon, c1.rssanon);
		fails++;
	}
	if (c0.src_swap != nkb || c0.dst_swap != 0 || c1.src_swap != 0 ||
	    c1.dst_swap != nkb) {
		ktap_diag("smaps Swap: expected src %ld -> 0, dst 0 -> %ld kB", nkb, nkb);
		fails++;
	}
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("dst (swapped in)", pr.dst, pr.len, 160))
		fails++;
	/*
	 * 6.1 (SPLIT_RSS_COUNTING) caches the swap-in fault's counter
	 * updates in the task and flushes them to the mm every 64 faults:
	 * fault 1024 scratch pages before reading VmSwap.  RssAnon stays
	 * informational (the scratch faults move it too); the dst VMA's
	 * smaps Rss/Swap come from a page-table walk and are exact.
	 */
	drain_lru_and_flush();
	sw_read(&c2, &pr);
	ktap_diag("after the swap-in at dst: VmSwap %ld kB, RssAnon %ld kB, dst smaps Swap %ld kB Rss %ld kB",
		  c2.vmswap, c2.rssanon, c2.dst_swap, smaps_kb(pr.dst, "Rss"));
	if (c2.vmswap != c1.vmswap - nkb || c2.dst_swap != 0 ||
	    smaps_kb(pr.dst, "Rss") != nkb) {
		ktap_diag("after the swap-in: expected VmSwap %ld kB, dst Swap 0 and Rss %ld kB, got %ld, %ld and %ld kB",
			  c1.vmswap - nkb, nkb, c2.vmswap, c2.dst_swap,
			  smaps_kb(pr.dst, "Rss"));
		fails++;
	}
	if (check_zero("src", pr.src, pr.len))
		fails++;
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

/*
 * swap_cache_move: pages swapped out, then read back into the swap cache
 * by MADV_WILLNEED (the PTEs stay swap entries; mincore reports the
 * swap-cache pages resident).  As 6.12 (to be confirmed): moved, data
 * right at dst, counters as in swap_move.
 */
static int t_swap_cache_move(void)
{
	const size_t n = 4;
	struct swcount c0, c1;
	size_t incache = 0;
	struct pair pr;
	int fails = 0;
	struct mv r;
	double t0;

	NEED_MOVE();
	SWAP_TRY(swap_setup());
	pin_cpu();
	if (pair_setup(&pr, n, 1))
		goto fail;
	madvise(pr.src, pr.len, MADV_NOHUGEPAGE);
	fill(pr.src, pr.len, 161);
	if (page_out(pr.src, n))
		goto fail;
	if (madvise(pr.src, pr.len, MADV_WILLNEED)) {
		ktap_diag("madvise(MADV_WILLNEED) failed: %s", ename(errno));
		goto fail;
	}
	t0 = now_s();
	do {
		incache = 0;
		for (size_t i = 0; i < n; i++)
			incache += resident(pr.src + i * pg) == 1;
		if (incache == n)
			break;
		sleep_ms(10);
	} while (now_s() - t0 < 2);
	ktap_diag("after MADV_WILLNEED: %zu of %zu pages in the swap cache (mincore), %zu swap PTEs",
		  incache, n, n_swapped(pr.src, n));
	if (incache != n || n_swapped(pr.src, n) != n) {
		pair_teardown(&pr);
		return ktap_skip_because("could not get swap-cache pages behind swap PTEs (%zu cached, %zu swap PTEs)",
					 incache, n_swapped(pr.src, n));
	}
	sw_read(&c0, &pr);
	r = do_move(pr.ufd, pr.dst, pr.src, pr.len, 0);
	if (expect_moved("UFFDIO_MOVE of swap entries whose pages sit in the swap cache",
			 r, pr.len))
		fails++;
	sw_read(&c1, &pr);
	ktap_diag("before/after: VmSwap %ld/%ld kB, RssAnon %ld/%ld kB, smaps Swap src %ld/%ld dst %ld/%ld kB; dst swap PTEs %zu",
		  c0.vmswap, c1.vmswap, c0.rssanon, c1.rssanon, c0.src_swap,
		  c1.src_swap, c0.dst_swap, c1.dst_swap, n_swapped(pr.dst, n));
	if (c1.vmswap != c0.vmswap || c1.src_swap != 0 ||
	    c1.dst_swap != c0.src_swap) {
		ktap_diag("counters: expected VmSwap unchanged and smaps Swap moved src -> dst");
		fails++;
	}
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("dst", pr.dst, pr.len, 161) || check_zero("src", pr.src, pr.len))
		fails++;
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

/*
 * swap_shared_ebusy: a swapped-out page shared with a forked child (the
 * swap entry is no longer exclusive).  As 6.12 (to be confirmed): EBUSY.
 */
static int t_swap_shared_ebusy(void)
{
	struct pair pr;
	int fails = 0, wfd;
	pid_t pid;

	NEED_MOVE();
	SWAP_TRY(swap_setup());
	pin_cpu();
	if (pair_setup(&pr, 1, 1))
		goto fail;
	madvise(pr.src, pr.len, MADV_NOHUGEPAGE);
	fill(pr.src, pg, 162);
	if (page_out(pr.src, 1))
		goto fail;
	pid = fork_holder(&wfd);
	if (pid < 0)
		goto fail;
	if (expect_fail("UFFDIO_MOVE of a swap entry shared with a forked child",
			do_move(pr.ufd, pr.dst, pr.src, pg, 0), EBUSY, 0))
		fails++;
	release_holder(pid, wfd);
	if (n_swapped(pr.src, 1) != 1 || resident(pr.dst) != 0) {
		ktap_diag("expected src still a swap entry and dst empty");
		fails++;
	}
	if (check_pat("src", pr.src, pg, 162))
		fails++;
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

/* ------------------------------------------------------------------ */
/* pins and references                                                   */

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

/*
 * pin_io_uring_ebusy: src pages registered as io_uring fixed buffers
 * (pin_user_pages(FOLL_WRITE | FOLL_LONGTERM)).  As 6.12: EBUSY, move =
 * -EBUSY, src intact, dst empty; after IORING_UNREGISTER_BUFFERS the
 * same move succeeds.
 */
static int t_pin_io_uring_ebusy(void)
{
	struct io_uring_params p;
	struct iovec iov;
	struct pair pr;
	int fails = 0, rfd, e;

	NEED_MOVE();
	if (pair_setup(&pr, 2, 1))
		goto fail;
	fill(pr.src, pr.len, 170);
	memset(&p, 0, sizeof(p));
	rfd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (rfd < 0) {
		e = errno;
		pair_teardown(&pr);
		if (e == ENOSYS)
			return ktap_skip_because("io_uring_setup: ENOSYS: CONFIG_IO_URING not built");
		return ktap_skip_because("io_uring_setup: %s (io_uring disabled?)", ename(e));
	}
	iov.iov_base = pr.src;
	iov.iov_len = pr.len;
	if (syscall(__NR_io_uring_register, rfd, IORING_REGISTER_BUFFERS, &iov, 1)) {
		ktap_diag("IORING_REGISTER_BUFFERS failed: %s", ename(errno));
		close(rfd);
		goto fail;
	}
	if (expect_fail("UFFDIO_MOVE of io_uring fixed-buffer (pinned) pages",
			do_move(pr.ufd, pr.dst, pr.src, pr.len, 0), EBUSY, 0))
		fails++;
	if (expect_fail("UFFDIO_MOVE ALLOW_SRC_HOLES of the pinned second page",
			do_move(pr.ufd, pr.dst + pg, pr.src + pg, pg,
				UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES), EBUSY, 0))
		fails++;
	if (resident(pr.dst) != 0 || resident(pr.dst + pg) != 0) {
		ktap_diag("dst populated although the move of pinned pages failed");
		fails++;
	}
	if (check_pat("src (pinned, must stay)", pr.src, pr.len, 170))
		fails++;
	if (syscall(__NR_io_uring_register, rfd, IORING_UNREGISTER_BUFFERS, NULL, 0)) {
		ktap_diag("IORING_UNREGISTER_BUFFERS failed: %s", ename(errno));
		fails++;
	}
	close(rfd);
	if (expect_moved("UFFDIO_MOVE after IORING_UNREGISTER_BUFFERS",
			 do_move(pr.ufd, pr.dst, pr.src, pr.len, 0), pr.len))
		fails++;
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("dst", pr.dst, pr.len, 170) || check_zero("src", pr.src, pr.len))
		fails++;
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

/*
 * ref_vmsplice: a pipe holds a plain reference (no pin) to the src page
 * through vmsplice().  As 6.12 (to be confirmed): the page moves; the
 * pipe still holds the same page, so reading the pipe gives the data.
 */
static int t_ref_vmsplice(void)
{
	uint64_t pfn0, pfn1;
	struct iovec iov;
	struct pair pr;
	int fails = 0, pp[2] = { -1, -1 };
	char *buf = NULL;
	ssize_t got;
	struct mv r;

	NEED_MOVE();
	if (pair_setup(&pr, 1, 1))
		goto fail;
	fill(pr.src, pg, 171);
	pfn0 = pfn_of(pr.src);
	if (pipe(pp))
		goto fail;
	iov.iov_base = pr.src;
	iov.iov_len = pg;
	if (vmsplice(pp[1], &iov, 1, 0) != (ssize_t)pg) {
		ktap_diag("vmsplice failed: %s", ename(errno));
		goto fail;
	}
	r = do_move(pr.ufd, pr.dst, pr.src, pg, 0);
	ktap_diag("move with a vmsplice reference held: ret %d errno %s move %s",
		  r.ret, ename(r.err), mvstr(r.move));
	if (expect_moved("UFFDIO_MOVE of a page referenced (not pinned) by a pipe", r, pg))
		fails++;
	pfn1 = pfn_of(pr.dst);
	if (pfn0 && pfn1 != pfn0) {
		ktap_diag("dst PFN: expected the src page 0x%llx, got 0x%llx",
			  (unsigned long long)pfn0, (unsigned long long)pfn1);
		fails++;
	}
	buf = malloc(pg);
	if (!buf)
		goto fail;
	got = read(pp[0], buf, pg);
	if (got != (ssize_t)pg || check_pat("pipe contents", buf, pg, 171)) {
		ktap_diag("pipe: expected %zu bytes of the src pattern, read %zd", pg, got);
		fails++;
	}
	if (uffd_unreg(pr.ufd, pr.dst, pg))
		goto fail;
	if (check_pat("dst", pr.dst, pg, 171) || check_zero("src", pr.src, pg))
		fails++;
	free(buf);
	close(pp[0]);
	close(pp[1]);
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	free(buf);
	if (pp[0] >= 0) {
		close(pp[0]);
		close(pp[1]);
	}
	pair_teardown(&pr);
	return KTAP_FAIL;
}

/* ------------------------------------------------------------------ */
/* O_DIRECT in flight                                                    */

struct dio_arg {
	int fd;
	char *buf;
	size_t len;
	ssize_t ret;
	int err;
	volatile int done;
};

static void *dio_writer(void *arg)
{
	struct dio_arg *a = arg;

	a->ret = pwrite(a->fd, a->buf, a->len, 0);
	a->err = a->ret < 0 ? errno : 0;
	a->done = 1;
	return NULL;
}

/* a second zram device for O_DIRECT (zram0 may be the swap device) */
static int zram_hot_add(char *dev, size_t n, int *id)
{
	char b[32], path[96];

	if (read_file_str("/sys/class/zram-control/hot_add", b, sizeof(b)))
		return -1;
	*id = atoi(b);
	snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", *id);
	if (write_long(path, 1 << 20))
		return -1;
	snprintf(dev, n, "/dev/zram%d", *id);
	return 0;
}

static void zram_hot_remove(int id)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/block/zram%d/reset", id);
	write_long(path, 1);
	write_long("/sys/class/zram-control/hot_remove", id);
}

/*
 * odirect_inflight: an O_DIRECT write from [src page 0][src page 1] where
 * page 1 is registered MISSING: the block layer's get-pages has taken
 * page 0 and blocks faulting page 1 (the uffd reports it).  Meanwhile
 * src page 0 is moved.  Rule R_DIO: 6.1 O_DIRECT takes plain references
 * (FOLL_GET): the page moves; 6.12 pins it (FOLL_PIN): EBUSY.  Either
 * way the write completes with page 0's data once the fault is resolved.
 */
static int t_odirect_inflight(void)
{
	char dev[32], *rb = NULL;
	struct uffdio_zeropage zp;
	struct uffd_msg msg;
	struct dio_arg a;
	struct pair pr;
	pthread_t t;
	int fails = 0, id = -1, fd = -1, g, started = 0;
	int want_ebusy = !(kv_major == 6 && kv_minor == 1);
	struct mv r;

	NEED_MOVE();
	if (access("/sys/class/zram-control/hot_add", R_OK))
		return ktap_skip_because("/sys/class/zram-control absent (CONFIG_ZRAM=n): no block device for O_DIRECT");
	if (pair_setup(&pr, 2, 1))
		goto fail;
	if (zram_hot_add(dev, sizeof(dev), &id)) {
		ktap_diag("zram hot_add failed: %s", ename(errno));
		goto fail;
	}
	fd = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		ktap_diag("open(%s, O_DIRECT) failed: %s", dev, ename(errno));
		goto fail;
	}
	fill(pr.src, pg, 220);
	if (uffd_reg(pr.ufd, pr.src, pr.len, NULL))	/* src page 1 missing */
		goto fail;
	memset(&a, 0, sizeof(a));
	a.fd = fd;
	a.buf = pr.src;
	a.len = pr.len;
	if (pthread_create(&t, NULL, dio_writer, &a))
		goto fail;
	started = 1;
	g = uffd_get_msg(pr.ufd, &msg, 5000);
	if (g != 1 || msg.event != UFFD_EVENT_PAGEFAULT ||
	    (msg.arg.pagefault.address & ~(__u64)(pg - 1)) != (uintptr_t)(pr.src + pg)) {
		ktap_diag("expected the O_DIRECT write to fault on src page 1, got %s",
			  g == 1 ? "another message" : "nothing in 5 s");
		fails++;
		goto resolve;
	}
	ktap_diag("rule R_DIO: kernel %d.%d -> %s", kv_major, kv_minor,
		  want_ebusy ? "O_DIRECT pins (6.12): EBUSY" :
		  "O_DIRECT takes references (6.1): the page moves");
	r = do_move(pr.ufd, pr.dst, pr.src, pg, 0);
	ktap_diag("move of src page 0 while the O_DIRECT write holds it: ret %d errno %s move %s",
		  r.ret, ename(r.err), mvstr(r.move));
	if (want_ebusy ? expect_fail("UFFDIO_MOVE of a page under O_DIRECT (pinned)", r, EBUSY, 0)
		       : expect_moved("UFFDIO_MOVE of a page under O_DIRECT (referenced)", r, pg))
		fails++;
resolve:
	zp.range.start = (uintptr_t)(pr.src + pg);
	zp.range.len = pg;
	zp.mode = 0;
	if (ioctl(pr.ufd, UFFDIO_ZEROPAGE, &zp) && errno != EEXIST)
		ktap_diag("UFFDIO_ZEROPAGE failed: %s", ename(errno));
	pthread_join(t, NULL);
	started = 0;
	if (a.ret != (ssize_t)pr.len) {
		ktap_diag("O_DIRECT write: expected %zu bytes, got %zd (%s)", pr.len,
			  a.ret, ename(a.err));
		fails++;
	}
	if (posix_memalign((void **)&rb, pg, pr.len) == 0 &&
	    pread(fd, rb, pr.len, 0) == (ssize_t)pr.len) {
		if (check_pat("device page 0 (written from the page that was at src)", rb, pg, 220) ||
		    check_zero("device page 1", rb + pg, pg))
			fails++;
	} else {
		ktap_diag("reading back %s failed: %s", dev, ename(errno));
		fails++;
	}
	free(rb);
	uffd_unreg(pr.ufd, pr.src, pr.len);
	uffd_unreg(pr.ufd, pr.dst, pr.len);
	if (want_ebusy ? check_pat("src page 0", pr.src, pg, 220) :
			 check_pat("dst page 0", pr.dst, pg, 220))
		fails++;
	close(fd);
	zram_hot_remove(id);
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	if (started) {
		uffd_unreg(pr.ufd, pr.src, pr.len);
		pthread_join(t, NULL);
	}
	if (fd >= 0)
		close(fd);
	if (id >= 0)
		zram_hot_remove(id);
	pair_teardown(&pr);
	return KTAP_FAIL;
}

/* ------------------------------------------------------------------ */
/* other processes                                                       */

static int send_fd(int sock, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct msghdr mh = { 0 };
	struct iovec iov;
	struct cmsghdr *c;
	char b = 'f';

	memset(cbuf, 0, sizeof(cbuf));
	iov.iov_base = &b;
	iov.iov_len = 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &mh, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct msghdr mh = { 0 };
	struct iovec iov;
	struct cmsghdr *c;
	char b;
	int fd = -1;

	iov.iov_base = &b;
	iov.iov_len = 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	if (recvmsg(sock, &mh, 0) != 1)
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/*
 * foreign_mm: the uffd used from a process whose mm is not the uffd's:
 * (a) a forked child (inherits the fd), (b) a process that got the fd by
 * SCM_RIGHTS.  Both call UFFDIO_MOVE with addresses valid in their own mm
 * (a populated src, an empty dst).  As 6.12: -1/EINVAL, move untouched,
 * nothing moved in either mm.
 */
static int t_foreign_mm(void)
{
	struct pair pr;
	struct mv *res;
	int fails = 0, sv[2] = { -1, -1 };
	pid_t pid;

	NEED_MOVE();
	res = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return KTAP_FAIL;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		goto fail0;
	/* (b)'s process exists before the uffd: it can only get it by fd passing */
	ktap_flush();
	pid = fork();
	if (pid == 0) {
		int fd;

		close(sv[0]);
		fd = recv_fd(sv[1]);
		if (fd < 0)
			_exit(3);
		/* own mappings at the parent's addresses */
		{
			uintptr_t a[2];

			if (read(sv[1], a, sizeof(a)) != sizeof(a))
				_exit(3);
			if (mmap((void *)a[0], pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED ||
			    mmap((void *)a[1], pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
				_exit(3);
			fill((char *)a[0], pg, 181);
			res[1] = do_move(fd, (void *)a[1], (void *)a[0], pg, 0);
			res[2].ret = resident((void *)a[1]);
		}
		_exit(0);
	}
	close(sv[1]);
	sv[1] = -1;
	if (pid < 0)
		goto fail0;
	if (pair_setup(&pr, 1, 1))
		goto fail;
	fill(pr.src, pg, 180);
	/* the parent's src page stays exclusive across the fork below */
	if (madvise(pr.src, pg, MADV_DONTFORK))
		goto fail;
	/* (a) forked child */
	ktap_flush();
	{
		pid_t c = fork();
		int st;

		if (c == 0) {
			/* src is MADV_DONTFORK: the child maps its own page */
			if (mmap(pr.src, pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
				_exit(3);
			fill(pr.src, pg, 182);
			res[0] = do_move(pr.ufd, pr.dst, pr.src, pg, 0);
			_exit(0);
		}
		waitpid(c, &st, 0);
	}
	/* (b) SCM_RIGHTS */
	{
		uintptr_t a[2] = { (uintptr_t)pr.src, (uintptr_t)pr.dst };
		int st;

		if (send_fd(sv[0], pr.ufd) || write(sv[0], a, sizeof(a)) != sizeof(a)) {
			ktap_diag("passing the uffd failed: %s", ename(errno));
			goto fail;
		}
		waitpid(pid, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			ktap_diag("SCM_RIGHTS child failed (status 0x%x)", st);
			goto fail;
		}
	}
	if (res[0].ret != -1 || res[0].err != EINVAL || res[0].move != MOVE_SENTINEL) {
		ktap_diag("forked child: expected -1/EINVAL, move untouched; got ret %d errno %s move %s",
			  res[0].ret, ename(res[0].err), mvstr(res[0].move));
		fails++;
	}
	if (res[1].ret != -1 || res[1].err != EINVAL || res[1].move != MOVE_SENTINEL) {
		ktap_diag("SCM_RIGHTS receiver: expected -1/EINVAL, move untouched; got ret %d errno %s move %s",
			  res[1].ret, ename(res[1].err), mvstr(res[1].move));
		fails++;
	}
	if (res[2].ret != 0) {
		ktap_diag("SCM_RIGHTS receiver: expected its dst unpopulated");
		fails++;
	}
	if (resident(pr.dst) != 0) {
		ktap_diag("parent: dst populated by a foreign call");
		fails++;
	}
	if (check_pat("parent src", pr.src, pg, 180))
		fails++;
	/* the owner can still move */
	if (expect_moved("owner's UFFDIO_MOVE afterwards",
			 do_move(pr.ufd, pr.dst, pr.src, pg, 0), pg))
		fails++;
	pair_teardown(&pr);
	close(sv[0]);
	munmap(res, pg);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
fail0:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	munmap(res, pg);
	return KTAP_FAIL;
}

/* ------------------------------------------------------------------ */
/* a non-cooperative event pending                                       */

struct dn_arg {
	char *p;
	size_t len;
	volatile int done;
	int ret;
};

static void *dontneed_fn(void *arg)
{
	struct dn_arg *a = arg;

	a->ret = madvise(a->p, a->len, MADV_DONTNEED);
	a->done = 1;
	return NULL;
}

/*
 * eagain_event_pending: uffd with UFFD_FEATURE_EVENT_REMOVE; a thread's
 * MADV_DONTNEED on registered dst page 1 queues a REMOVE event and waits
 * until it is read.  While it is pending: as 6.12, -1/EAGAIN with move =
 * -EAGAIN, nothing moved.  After reading the event: the same move works.
 */
static int t_eagain_event_pending(void)
{
	struct pair pr;
	struct dn_arg a;
	struct uffd_msg msg;
	pthread_t t;
	struct pollfd pf;
	int fails = 0, fd, g;
	struct mv r;

	NEED_MOVE();
	if (pair_setup(&pr, 2, 0))
		goto fail;
	fd = uffd_new(UFFD_FEATURE_MOVE | UFFD_FEATURE_EVENT_REMOVE, NULL);
	if (fd < 0)
		goto fail;
	close(pr.ufd);
	pr.ufd = fd;
	fill(pr.src, pg, 190);
	fill(pr.dst + pg, pg, 191);
	if (uffd_reg(pr.ufd, pr.dst, pr.len, NULL))
		goto fail;
	memset(&a, 0, sizeof(a));
	a.p = pr.dst + pg;
	a.len = pg;
	if (pthread_create(&t, NULL, dontneed_fn, &a))
		goto fail;
	pf.fd = pr.ufd;
	pf.events = POLLIN;
	if (poll(&pf, 1, 5000) != 1) {
		ktap_diag("expected a REMOVE event within 5 s, got none");
		fails++;
		goto join;
	}
	sleep_ms(20);
	if (a.done) {
		ktap_diag("MADV_DONTNEED returned before its event was read");
		fails++;
	}
	r = do_move(pr.ufd, pr.dst, pr.src, pg, 0);
	if (r.ret != -1 || r.err != EAGAIN || r.move != -EAGAIN) {
		ktap_diag("move while the REMOVE event is unread: expected -1/EAGAIN, move -EAGAIN; got ret %d errno %s move %s",
			  r.ret, ename(r.err), mvstr(r.move));
		fails++;
	}
	if (resident(pr.dst) != 0 || resident(pr.src) != 1) {
		ktap_diag("expected nothing moved while the event is pending");
		fails++;
	}
join:
	g = uffd_get_msg(pr.ufd, &msg, 5000);
	if (g != 1 || msg.event != UFFD_EVENT_REMOVE) {
		ktap_diag("expected a UFFD_EVENT_REMOVE message, got %s (event 0x%x)",
			  g == 1 ? "another" : "none", g == 1 ? msg.event : 0);
		fails++;
		uffd_unreg(pr.ufd, pr.dst, pr.len);
	} else if (msg.arg.remove.start != (uintptr_t)(pr.dst + pg) ||
		   msg.arg.remove.end != (uintptr_t)(pr.dst + 2 * pg)) {
		ktap_diag("REMOVE event range: expected %p-%p, got 0x%llx-0x%llx",
			  (void *)(pr.dst + pg), (void *)(pr.dst + 2 * pg),
			  (unsigned long long)msg.arg.remove.start,
			  (unsigned long long)msg.arg.remove.end);
		fails++;
	}
	pthread_join(t, NULL);
	if (a.ret) {
		ktap_diag("MADV_DONTNEED failed");
		fails++;
	}
	if (expect_moved("move after the event was read",
			 do_move(pr.ufd, pr.dst, pr.src, pg, 0), pg))
		fails++;
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("dst page 0", pr.dst, pg, 190) ||
	    check_zero("dst page 1 (DONTNEED)", pr.dst + pg, pg))
		fails++;
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

/* ------------------------------------------------------------------ */
/* fork after a move                                                     */

/*
 * fork_after_move: pages moved, then fork.  The child reads the moved
 * data at dst, writes one page (COW: the parent keeps its data), and
 * soft-offlines another (migration walks the rmap from the page: it must
 * find the dst PTEs in both processes, through the dst anon_vma and the
 * new index, so the parent's PFN changes too).  Without MADV_SOFT_OFFLINE,
 * page_idle is the rmap walk instead.
 */
static int t_fork_after_move(void)
{
	const size_t n = 4;
	struct pair pr;
	uint64_t *sh, pfn0;
	int fails = 0, st;
	pid_t pid;

	NEED_MOVE();
	pin_cpu();
	sh = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return KTAP_FAIL;
	if (pair_setup(&pr, n, 1))
		goto fail;
	fill(pr.src, pr.len, 200);
	if (expect_moved("UFFDIO_MOVE 4 pages", do_move(pr.ufd, pr.dst, pr.src, pr.len, 0),
			 pr.len))
		goto fail;
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	drain_lru_and_flush();
	pfn0 = pfn_of(pr.dst + 2 * pg);
	ktap_flush();
	pid = fork();
	if (pid == 0) {
		/* sh[0] result bits, sh[1] pfn after soft offline, sh[2] errno */
		if (check_pat("child: dst", pr.dst, pr.len, 200))
			sh[0] |= 1;
		fill(pr.dst, pg, 201);		/* COW */
		if (check_pat("child: dst page 0 after COW", pr.dst, pg, 201))
			sh[0] |= 2;
		drain_lru_and_flush();
		if (madvise(pr.dst + 2 * pg, pg, MADV_SOFT_OFFLINE)) {
			int ifd;
			uint64_t pfn;

			sh[2] = errno;
			ifd = open(IDLE_BITMAP, O_RDWR | O_CLOEXEC);
			pfn = pfn_of(pr.dst + 3 * pg);
			/* page_idle instead: the child's access through
			 * its dst PTE must be found by the rmap walk */
			if (ifd >= 0 && pfn && !idle_bit(ifd, pfn, 1) &&
			    idle_bit(ifd, pfn, 0) == 1) {
				drain_lru_and_flush();
				(void)*(volatile char *)(pr.dst + 3 * pg);
				sh[3] = 1 + idle_bit(ifd, pfn, 0);
			}
			if (ifd >= 0)
				close(ifd);
		} else {
			sh[1] = pfn_of(pr.dst + 2 * pg);
			if (check_pat_off("child: dst page 2 after soft offline",
					  pr.dst + 2 * pg, pg, 200, 2 * pg))
				sh[0] |= 4;
		}
		_exit(0);
	}
	if (pid < 0)
		goto fail;
	waitpid(pid, &st, 0);
	ktap_diag("child: flags 0x%llx, soft offline %s, dst page 2 PFN 0x%llx -> child 0x%llx, parent 0x%llx",
		  (unsigned long long)sh[0], sh[2] ? ename((int)sh[2]) : "ok",
		  (unsigned long long)pfn0, (unsigned long long)sh[1],
		  (unsigned long long)pfn_of(pr.dst + 2 * pg));
	if (sh[0]) {
		ktap_diag("child saw wrong data (flags 0x%llx: 1 moved data, 2 COW write, 4 after soft offline)",
			  (unsigned long long)sh[0]);
		fails++;
	}
	if (!sh[2]) {
		if (pfn0 && (sh[1] == pfn0 || pfn_of(pr.dst + 2 * pg) != sh[1])) {
			ktap_diag("soft offline in the child: expected one new PFN in child and parent (rmap found both dst PTEs), got old 0x%llx child 0x%llx parent 0x%llx",
				  (unsigned long long)pfn0, (unsigned long long)sh[1],
				  (unsigned long long)pfn_of(pr.dst + 2 * pg));
			fails++;
		}
	} else if (sh[2] != EINVAL && sh[2] != ENOSYS && sh[2] != EOPNOTSUPP) {
		ktap_diag("child: madvise(MADV_SOFT_OFFLINE): expected 0, got %s",
			  ename((int)sh[2]));
		fails++;
	} else if (sh[3] == 2) {
		ktap_diag("child: page_idle: idle bit still set after the child's access through dst (rmap walk missed its PTE)");
		fails++;
	} else {
		ktap_diag("MADV_SOFT_OFFLINE unavailable (%s): migration check not done; page_idle check %s",
			  ename((int)sh[2]), sh[3] == 1 ? "passed" : "not possible");
	}
	if (check_pat("parent dst", pr.dst, pr.len, 200))
		fails++;
	pair_teardown(&pr);
	munmap(sh, pg);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	pair_teardown(&pr);
	munmap(sh, pg);
	return KTAP_FAIL;
}

/* ------------------------------------------------------------------ */
/* overlapping ranges                                                    */

/*
 * overlap_slide: src and dst in one registered VMA, dst = src - 1 page,
 * len 2 pages, page 0 empty, pages 1-2 populated: the range slides down
 * one page.  As 6.12 (to be confirmed): moved (pages are taken in order,
 * each dst page empty when reached), pages 0-1 carry the data, page 2
 * empty.
 */
static int t_overlap_slide(void)
{
	struct pair pr;
	int fails = 0;

	NEED_MOVE();
	if (pair_setup(&pr, 4, 0))
		goto fail;
	fill(pr.dst + pg, pg, 211);
	fill(pr.dst + 2 * pg, pg, 212);
	if (uffd_reg(pr.ufd, pr.dst, pr.len, NULL))
		goto fail;
	if (expect_moved("UFFDIO_MOVE dst = src - 1 page, len 2 pages (overlapping)",
			 do_move(pr.ufd, pr.dst, pr.dst + pg, 2 * pg, 0), 2 * pg))
		fails++;
	if (resident(pr.dst) != 1 || resident(pr.dst + pg) != 1 ||
	    resident(pr.dst + 2 * pg) != 0) {
		ktap_diag("expected pages 0-1 populated and page 2 empty after the slide");
		fails++;
	}
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("page 0", pr.dst, pg, 211) ||
	    check_pat("page 1", pr.dst + pg, pg, 212) ||
	    check_zero("page 2", pr.dst + 2 * pg, pg))
		fails++;
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

/* ------------------------------------------------------------------ */
/* concurrency: moves across two PMDs against rmap walkers              */

#define SW_CHUNKS	16	/* per mover */
#define SW_CHUNK	4	/* pages */
#define SW_SECONDS	3.0

struct swalk {
	int ufd;
	char *a, *b;		/* in two different PMDs */
	size_t len;
	volatile int stop;
	long idle_rounds, compactions, pageouts, pageout_errs;
};

struct smover {
	struct swalk *s;
	int id;			/* 0: chunks start in a, 1: in b */
	unsigned char where[SW_CHUNKS];	/* 0 a, 1 b */
	long moves, retries, busy, errors;
	char first[256];
};

static void *sw_mover(void *arg)
{
	struct smover *m = arg;
	struct swalk *s = m->s;
	const size_t chunk = SW_CHUNK * pg;

	while (!s->stop) {
		for (int k = 0; k < SW_CHUNKS && !s->stop; k++) {
			size_t off = ((size_t)m->id * SW_CHUNKS + k) * chunk, done = 0;
			char *from = (m->where[k] ? s->b : s->a) + off;
			char *to = (m->where[k] ? s->a : s->b) + off;
			int tries = 0, hard = 0;

			while (done < chunk && !hard && tries++ < 1000) {
				struct mv r = do_move(s->ufd, to + done, from + done,
						      chunk - done, 0);

				if (r.ret == 0 && r.move == (__s64)(chunk - done)) {
					done = chunk;
				} else if (r.ret == -1 && r.err == EAGAIN) {
					if (r.move > 0)
						done += r.move;
					m->retries++;
				} else if (r.ret == -1 && r.err == EBUSY &&
					   r.move == -EBUSY) {
					/* 6.12: a page held by a walker */
					m->busy++;
					sched_yield();
				} else {
					hard = 1;
					if (!m->errors)
						snprintf(m->first, sizeof(m->first),
							 "chunk %d: UFFDIO_MOVE 0x%zx bytes at +0x%zx: got ret %d errno %s move %s",
							 k, chunk - done, off + done,
							 r.ret, ename(r.err), mvstr(r.move));
				}
			}
			if (done < chunk) {
				if (!hard && !m->errors)
					snprintf(m->first, sizeof(m->first),
						 "chunk %d: not moved after 1000 tries (%ld EBUSY so far)",
						 k, m->busy);
				m->errors++;
				s->stop = 1;
				break;
			}
			m->where[k] ^= 1;
			m->moves++;
		}
	}
	return NULL;
}

/* page_idle: mark every present page of a and b idle, read back (the
 * read runs the rmap walk that clears the bit of young pages) */
static void *sw_idle(void *arg)
{
	struct swalk *s = arg;
	int fd = open(IDLE_BITMAP, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	while (!s->stop) {
		for (int side = 0; side < 2; side++) {
			char *base = side ? s->b : s->a;

			for (size_t o = 0; o < s->len && !s->stop; o += pg) {
				uint64_t pfn = pfn_of(base + o);

				if (!pfn)
					continue;
				idle_bit(fd, pfn, 1);
				(void)idle_bit(fd, pfn, 0);
			}
		}
		s->idle_rounds++;
	}
	close(fd);
	return NULL;
}

static void *sw_pageout(void *arg)
{
	struct swalk *s = arg;
	unsigned int seed = 12345;

	while (!s->stop) {
		size_t nch = s->len / (SW_CHUNK * pg);
		size_t c = (seed = seed * 1103515245 + 12345) / 65536 % nch;
		char *base = (seed & 0x10000) ? s->b : s->a;

		if (madvise(base + c * SW_CHUNK * pg, SW_CHUNK * pg, MADV_PAGEOUT))
			s->pageout_errs++;
		else
			s->pageouts++;
		sleep_ms(2);
	}
	return NULL;
}

/*
 * stress_walkers: two movers move 4-page chunks between a and b (in two
 * different PMDs), one starting from each side, for 3 s, while page_idle
 * (set + read of the idle bits of every page), MADV_PAGEOUT (swap on zram
 * when it can be set up) and compaction (a child writing
 * /proc/sys/vm/compact_memory) run.  Moves may return -1/EAGAIN (partial
 * or transient: retried); any other error fails.  At the end every page
 * carries its pattern where its mover left it, the vacated side is empty
 * and the VMA count is unchanged.
 */
static int t_stress_walkers(void)
{
	struct smover mv[2];
	pthread_t tm[2], ti, tp;
	int have_idle, have_swap, fails = 0, c0, c1;
	struct swalk s;
	size_t H, total, nch;
	char *base, *al, why[160];
	pid_t comp = -1;
	long moves = 0, errs = 0, retries = 0, busy = 0, bad = 0;
	double t0;

	NEED_MOVE();
	if (thp_usable(&H, why, sizeof(why)))
		H = 2UL << 20;
	memset(&s, 0, sizeof(s));
	memset(mv, 0, sizeof(mv));
	s.ufd = -1;
	s.len = 2 * SW_CHUNKS * SW_CHUNK * pg;
	nch = s.len / (SW_CHUNK * pg);
	total = 4 * H;
	base = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		    -1, 0);
	if (base == MAP_FAILED)
		return KTAP_FAIL;
	al = (char *)(((uintptr_t)base + H - 1) & ~(uintptr_t)(H - 1));
	s.a = carve(al + 8 * pg, s.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	s.b = carve(al + H + 8 * pg, s.len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS);
	if (!s.a || !s.b)
		goto fail;
	madvise(s.a, s.len, MADV_NOHUGEPAGE);
	madvise(s.b, s.len, MADV_NOHUGEPAGE);
	/* the compaction child below must not share the pages (EBUSY) */
	if (madvise(s.a, s.len, MADV_DONTFORK) || madvise(s.b, s.len, MADV_DONTFORK)) {
		ktap_diag("madvise(MADV_DONTFORK) failed: %s", ename(errno));
		goto fail;
	}
	/* chunk c of mover m: pages tagged (m, c, page); m0 in a, m1 in b */
	for (int m = 0; m < 2; m++) {
		mv[m].s = &s;
		mv[m].id = m;
		for (int k = 0; k < SW_CHUNKS; k++) {
			size_t off = ((size_t)m * SW_CHUNKS + k) * SW_CHUNK * pg;

			mv[m].where[k] = (unsigned char)m;
			for (size_t i = 0; i < SW_CHUNK; i++)
				st_fill((m ? s.b : s.a) + off + i * pg, st_tag(m, k, i));
		}
	}
	s.ufd = uffd_move_fd();
	if (s.ufd < 0 || uffd_reg(s.ufd, s.a, s.len, NULL) ||
	    uffd_reg(s.ufd, s.b, s.len, NULL))
		goto fail;
	c0 = maps_count((uintptr_t)base, (uintptr_t)base + total);
	have_idle = access(IDLE_BITMAP, W_OK) == 0;
	have_swap = swap_setup() == 0;
	ktap_diag("walkers: page_idle %s, MADV_PAGEOUT %s, compaction %s",
		  have_idle ? "yes" : "no (no bitmap)",
		  have_swap ? "to zram swap" : "without swap (no-op for anon)",
		  access("/proc/sys/vm/compact_memory", W_OK) ? "no" : "yes");
	ktap_flush();
	comp = fork();
	if (comp == 0) {
		/* compaction: until killed */
		for (;;) {
			if (write_long("/proc/sys/vm/compact_memory", 1))
				_exit(0);
			sleep_ms(50);
		}
	}
	t0 = now_s();
	if (have_idle)
		pthread_create(&ti, NULL, sw_idle, &s);
	pthread_create(&tp, NULL, sw_pageout, &s);
	for (int m = 0; m < 2; m++)
		pthread_create(&tm[m], NULL, sw_mover, &mv[m]);
	while (!s.stop && now_s() - t0 < SW_SECONDS)
		sleep_ms(20);
	s.stop = 1;
	for (int m = 0; m < 2; m++)
		pthread_join(tm[m], NULL);
	pthread_join(tp, NULL);
	if (have_idle)
		pthread_join(ti, NULL);
	if (comp > 0) {
		kill(comp, SIGKILL);
		waitpid(comp, NULL, 0);
	}
	c1 = maps_count((uintptr_t)base, (uintptr_t)base + total);
	for (int m = 0; m < 2; m++) {
		moves += mv[m].moves;
		errs += mv[m].errors;
		retries += mv[m].retries;
		busy += mv[m].busy;
		if (mv[m].first[0])
			ktap_diag("mover %d: %s", m, mv[m].first);
	}
	ktap_diag("%.1f s: %ld chunk moves (%ld EAGAIN and %ld EBUSY retries, %ld errors); idle rounds %ld, pageouts %ld (%ld failed)",
		  now_s() - t0, moves, retries, busy, errs, s.idle_rounds,
		  s.pageouts, s.pageout_errs);
	if (c0 != c1) {
		ktap_diag("VMAs: expected %d (unchanged), got %d", c0, c1);
		fails++;
	}
	if (!moves) {
		ktap_diag("expected some moves, got none");
		fails++;
	}
	if (uffd_unreg(s.ufd, s.a, s.len) || uffd_unreg(s.ufd, s.b, s.len))
		goto fail;
	for (int m = 0; m < 2; m++)
		for (int k = 0; k < SW_CHUNKS; k++) {
			size_t off = ((size_t)m * SW_CHUNKS + k) * SW_CHUNK * pg;
			char *here = (mv[m].where[k] ? s.b : s.a) + off;
			char *there = (mv[m].where[k] ? s.a : s.b) + off;

			for (size_t i = 0; i < SW_CHUNK; i++) {
				uint64_t ent = 0;
				long o = st_check(here + i * pg, st_tag(m, k, i));

				if (o >= 0 && bad++ < 4)
					ktap_diag("final: mover %d chunk %d page %zu in %s: pattern wrong at +0x%lx",
						  m, k, i, mv[m].where[k] ? "b" : "a", o);
				if (!pagemap_ent(there + i * pg, &ent) &&
				    (ent & (PM_PRESENT | PM_SWAP)) && bad++ < 4)
					ktap_diag("final: mover %d chunk %d page %zu: vacated side not empty (pagemap 0x%llx)",
						  m, k, i, (unsigned long long)ent);
			}
		}
	(void)nch;
	if (bad || errs) {
		ktap_diag("expected 0 data mismatches and 0 move errors, got %ld and %ld",
			  bad, errs);
		fails++;
	}
	close(s.ufd);
	munmap(base, total);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	s.stop = 1;
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
	{ "src_hole_dst_populated", t_src_hole_dst_populated },
	{ "src_hole_pmd_dst_thp", t_src_hole_pmd_dst_thp },
	{ "einval_unaligned_dst", t_einval_unaligned_dst },
	{ "einval_unaligned_src", t_einval_unaligned_src },
	{ "einval_unaligned_len", t_einval_unaligned_len },
	{ "einval_len_zero", t_einval_len_zero },
	{ "einval_mode_unknown", t_einval_mode_unknown },
	{ "wb_range_overflow", t_wb_range_overflow },
	{ "wb_efault", t_wb_efault },
	{ "einval_spans_two_vmas", t_einval_spans_two_vmas },
	{ "einval_dst_file_vma", t_einval_dst_file_vma },
	{ "einval_src_shared_anon", t_einval_src_shared_anon },
	{ "einval_dst_unregistered", t_einval_dst_unregistered },
	{ "einval_access_flags", t_einval_access_flags },
	{ "einval_mlock_mismatch", t_einval_mlock_mismatch },
	{ "mlock_both", t_mlock_both },
	{ "no_vma", t_no_vma },
	{ "foreign_mm", t_foreign_mm },
	{ "eagain_event_pending", t_eagain_event_pending },
	{ "partial_eagain", t_partial_eagain },
	{ "overlap_slide", t_overlap_slide },
	{ "fork_ebusy", t_fork_ebusy },
	{ "fork_dontfork_moves", t_fork_dontfork_moves },
	{ "fork_after_move", t_fork_after_move },
	{ "ksm_ebusy", t_ksm_ebusy },
	{ "pin_io_uring_ebusy", t_pin_io_uring_ebusy },
	{ "ref_vmsplice", t_ref_vmsplice },
	{ "odirect_inflight", t_odirect_inflight },
	{ "thp_source", t_thp_source },
	{ "thp_split_partial", t_thp_split_partial },
	{ "thp_split_misaligned_dst", t_thp_split_misaligned_dst },
	{ "thp_pte_mapped", t_thp_pte_mapped },
	{ "thp_dst_populated", t_thp_dst_populated },
	{ "thp_huge_zero", t_thp_huge_zero },
	{ "zero_page", t_zero_page },
	{ "swap_move", t_swap_move },
	{ "swap_cache_move", t_swap_cache_move },
	{ "swap_shared_ebusy", t_swap_shared_ebusy },
	{ "fault_driven_move", t_fault_driven_move },
	{ "fault_dontwake", t_fault_dontwake },
	{ "rmap_page_idle", t_rmap_page_idle },
	{ "rmap_soft_offline", t_rmap_soft_offline },
	{ "stress_threads", t_stress_threads },
	{ "stress_walkers", t_stress_walkers },
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
	/* fault the /proc read buffer in now: a first touch while a test
	 * reads RssAnon would count as the test's own anon memory */
	memset(procbuf, 0, sizeof(procbuf));
	if (!uname(&u)) {
		snprintf(kv_release, sizeof(kv_release), "%s", u.release);
		sscanf(u.release, "%d.%d", &kv_major, &kv_minor);
	}
	probe();
	ksm_save(&ksm_saved);
	swap_by_us = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (swap_by_us == MAP_FAILED)
		swap_by_us = NULL;
	ret = ktap_run_cases(cases, KTAP_ARRAY_SIZE(cases), 30, argc, argv);
	/* a ksm_ebusy child killed mid-test must not leave ksmd running */
	ksm_restore(&ksm_saved);
	/* swap turned on by a test: off again (the guest runs other tests) */
	swap_teardown();
	return ret;
}
