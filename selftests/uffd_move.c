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
 *   R_WP     anonymous uffd-wp (uffd_wp_dst): offered by x86_64 since 5.7
 *            and arm64 since 6.10; where it is not (6.1 arm64), the
 *            registration must fail with EINVAL and nothing else is
 *            checked.  A property of the base kernel, not of the move.
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
	return einval_arg_case("UFFDIO_MOVE dst+1", 1, 0, pg, 0);
}

static int t_einval_unaligned_src(void)
{
	return einval_arg_case("UFFDIO_MOVE src+1", 0, 1, pg, 0);
}

static int t_einval_unaligned_len(void)
{
	return einval_arg_case("UFFDIO_MOVE len=page+page/2", 0, 0,
			       pg + pg / 2, 0);
}

static int t_einval_len_zero(void)
{
	return einval_arg_case("UFFDIO_MOVE len=0", 0, 0, 0, 0);
}

static int t_einval_mode_unknown(void)
{
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
#define ST_SECONDS	10.0

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
#define SW_SECONDS	10.0

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
 * different PMDs), one starting from each side, for 10 s, while page_idle
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

/*
 * Were the n pages at p swapped out as one large folio?  Then their swap
 * entries are one cluster: same type, consecutive offsets, the first one
 * aligned to n (pagemap bits 0-4 type, 5-54 offset).
 */
static int thp_swap_entries_whole(const char *p, size_t n, uint64_t *off0)
{
	uint64_t e0, e;

	if (pagemap_ent(p, &e0) || !(e0 & PM_SWAP) || (e0 & PM_PRESENT))
		return 0;
	*off0 = (e0 & PM_PFN_MASK) >> 5;
	if (*off0 % n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if (pagemap_ent(p + i * pg, &e) || !(e & PM_SWAP) || (e & PM_PRESENT) ||
		    (e & 0x1f) != (e0 & 0x1f) || ((e & PM_PFN_MASK) >> 5) != *off0 + i)
			return 0;
	}
	return 1;
}

/*
 * A PMD-mapped THP at h->src (filled with seed), paged out to the loop
 * device as one large folio (vmstat thp_swpout +1), which stays in the
 * swap cache under or after its asynchronous write-out.  0, -1, or
 * KTAP_SKIP with a reason.
 */
static int thp_swapped_to_cache(struct hp *h, unsigned int seed)
{
	long sw0, sw1, fb0, fb1;
	size_t n = h->H / pg, cached;
	uint64_t off0 = 0;
	int r, whole;

	r = swap_use(SWK_LOOP);
	if (r)
		return r;
	r = hp_make_thp(h, seed);
	if (r)
		return r;
	sw0 = vmstat_val("thp_swpout");
	fb0 = vmstat_val("thp_swpout_fallback");
	if (madvise(h->src, h->H, MADV_PAGEOUT)) {
		ktap_diag("madvise(MADV_PAGEOUT) failed: %s", ename(errno));
		return -1;
	}
	sw1 = vmstat_val("thp_swpout");
	fb1 = vmstat_val("thp_swpout_fallback");
	cached = n_resident(h->src, n);
	whole = thp_swap_entries_whole(h->src, n, &off0);
	ktap_diag("MADV_PAGEOUT of the THP: thp_swpout %ld -> %ld, thp_swpout_fallback %ld -> %ld; %zu swap PTEs (%s, first offset 0x%llx), %zu of %zu pages in the swap cache (mincore)",
		  sw0, sw1, fb0, fb1, n_swapped(h->src, n),
		  whole ? "one aligned cluster: written as one large folio" : "not one aligned cluster",
		  (unsigned long long)off0, cached, n);
	/* thp_swpout needs CONFIG_VM_EVENT_COUNTERS; the entries tell anyway */
	if ((sw0 >= 0 && sw1 != sw0 + 1) || !whole) {
		hp_teardown(h);
		return ktap_skip_because("the THP was not swapped out as one large folio (thp_swpout %ld -> %ld, entries %s): no THP_SWAP, or no swap cluster",
					 sw0, sw1, whole ? "contiguous" : "not one aligned cluster");
	}
	if (n_swapped(h->src, n) != n || cached != n) {
		hp_teardown(h);
		return ktap_skip_because("the large folio left the swap cache before the move (%zu swap PTEs, %zu cached)",
					 n_swapped(h->src, n), cached);
	}
	return 0;
}

/*
 * Move page `idx` of a THP sitting in the swap cache as a large folio, in
 * a process of its own with a watchdog of `secs` seconds (SIGKILL): a
 * move that never returns (a livelock under the mmap lock) is reported,
 * and the test goes on.  Returns 0 (result in *out), 1 hung, -1 error;
 * KTAP_SKIP is passed through (reason set by the child).
 */
struct thp_sw_res {
	int ret, err;
	__s64 move;
	volatile double t_move;	/* when the move was issued, 0 before */
	size_t swapped_after;
};

static int thp_swapcache_move_child(size_t idx, unsigned int secs,
				    struct thp_sw_res *out)
{
	struct thp_sw_res *res;
	int status, r = -1;
	double t0;
	pid_t pid;

	res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return -1;
	ktap_flush();
	pid = fork();
	if (pid < 0) {
		munmap(res, sizeof(*res));
		return -1;
	}
	if (pid == 0) {
		struct hp h;
		struct mv m;
		int s;

		if (hp_setup(&h, 0, MADV_HUGEPAGE, 1))
			_exit(KTAP_SKIP);
		s = thp_swapped_to_cache(&h, 200 + (unsigned int)idx);
		if (s)
			_exit(s == KTAP_SKIP ? KTAP_SKIP : KTAP_FAIL);
		ktap_diag("page %zu: UFFDIO_MOVE of one page (watchdog %u s)", idx, secs);
		res->t_move = now_s();
		m = do_move(h.ufd, h.dst + idx * pg, h.src + idx * pg, pg, 0);
		res->ret = m.ret;
		res->err = m.err;
		res->move = m.move;
		res->swapped_after = n_swapped(h.src, h.H / pg);
		/* the data must still be there (a failed move keeps it) */
		if (m.ret == -1 && check_pat_off("src after the failed move",
						 h.src + idx * pg, pg,
						 200 + (unsigned int)idx, idx * pg))
			_exit(KTAP_FAIL);
		hp_teardown(&h);
		_exit(KTAP_PASS);
	}
	t0 = now_s();
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		/* the watchdog runs from the move; the set-up gets 90 s */
		if (res->t_move > 0 && now_s() - res->t_move > secs) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ktap_diag("page %zu: UFFDIO_MOVE did not return within %u s: hung (killed with SIGKILL after %.1f s in the ioctl)",
				  idx, secs, now_s() - res->t_move);
			munmap(res, sizeof(*res));
			return 1;
		}
		if (res->t_move == 0 && now_s() - t0 > 90) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ktap_diag("page %zu: set-up (THP, page-out) not done in 90 s", idx);
			munmap(res, sizeof(*res));
			return -1;
		}
		sleep_ms(20);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == KTAP_PASS) {
		*out = *res;
		r = 0;
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == KTAP_SKIP) {
		r = KTAP_SKIP;
	} else {
		ktap_diag("page %zu: test process ended with status 0x%x", idx, status);
	}
	munmap(res, sizeof(*res));
	return r;
}

/*
 * swap_thp_cache_ebusy: a THP paged out to the loop device as one large
 * folio that stays in the swap cache; pages 0 (head), 1, 5 and 511 (or
 * the last) are moved one at a time, each with a fresh THP.  As 6.12:
 * EBUSY (move = -EBUSY) for every one, and the folio is not split (the
 * src PTEs stay swap entries, the data stays).  A tail page used to
 * livelock the series (the swap cache reports the head's entry, the
 * comparison fails, -EAGAIN, retried for ever under the mmap lock); each
 * move runs under a 10 s watchdog, and a hang fails the test.
 */
static int t_swap_thp_cache_ebusy(void)
{
	size_t H = 0, idxs[4] = { 0, 1, 5, 0 };
	char why[160];
	int fails = 0, skips = 0;

	if (thp_usable(&H, why, sizeof(why)))
		return ktap_skip_because("%s", why);
	idxs[3] = H / pg - 1;
	for (int i = 0; i < 4; i++) {
		struct thp_sw_res r = { 0 };
		int c = thp_swapcache_move_child(idxs[i], 10, &r);

		if (c == KTAP_SKIP) {
			skips++;
			break;
		}
		if (c == 1) {
			fails++;
			continue;
		}
		if (c < 0) {
			fails++;
			continue;
		}
		ktap_diag("page %zu: ret %d errno %s move %s; %zu src swap PTEs after",
			  idxs[i], r.ret, ename(r.err), mvstr(r.move), r.swapped_after);
		if (r.ret != -1 || r.err != EBUSY || r.move != -EBUSY) {
			ktap_diag("page %zu: expected -1/EBUSY, move -EBUSY (a large folio in the swap cache is not moved)",
				  idxs[i]);
			fails++;
		}
		if (r.swapped_after != H / pg) {
			ktap_diag("page %zu: expected all %zu src PTEs still swap entries", idxs[i], H / pg);
			fails++;
		}
	}
	if (skips && !fails)
		return KTAP_SKIP;
	return fails ? KTAP_FAIL : KTAP_PASS;
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

/*
 * swap_loop_cache_rmap: 8 small pages paged out to the loop device; their
 * folios stay in the swap cache (asynchronous write-out; read back with
 * MADV_WILLNEED if reclaimed meanwhile).  As 6.12: moved (move == len),
 * the swap entries at dst; the fault at dst maps the swap-cache folio,
 * which must now belong to dst: page_idle sees an access through dst
 * (the rmap walk finds the dst PTE), and MADV_SOFT_OFFLINE migrates it
 * with the data intact.
 */
static int t_swap_loop_cache_rmap(void)
{
	const size_t n = 8;
	struct pair pr;
	int fails = 0, fd = -1, b, ok_idle = 0;
	size_t cached;
	uint64_t pfn;
	double t0;

	SWAP_TRY(swap_use(SWK_LOOP));
	pin_cpu();
	if (pair_setup(&pr, n, 1))
		goto fail;
	madvise(pr.src, pr.len, MADV_NOHUGEPAGE);
	fill(pr.src, pr.len, 210);
	if (page_out(pr.src, n))
		goto fail;
	madvise(pr.src, pr.len, MADV_WILLNEED);
	t0 = now_s();
	while ((cached = n_resident(pr.src, n)) < n && now_s() - t0 < 2)
		sleep_ms(10);
	ktap_diag("after MADV_PAGEOUT (loop): %zu swap PTEs, %zu of %zu in the swap cache",
		  n_swapped(pr.src, n), cached, n);
	if (cached != n || n_swapped(pr.src, n) != n) {
		pair_teardown(&pr);
		return ktap_skip_because("could not keep swap-cache folios behind swap PTEs (%zu cached)",
					 cached);
	}
	if (expect_moved("UFFDIO_MOVE of 8 swap entries with swap-cache folios (loop)",
			 do_move(pr.ufd, pr.dst, pr.src, pr.len, 0), pr.len))
		fails++;
	if (n_swapped(pr.dst, n) != n || n_swapped(pr.src, n) != 0) {
		ktap_diag("expected %zu swap entries at dst and none at src, got %zu and %zu",
			  n, n_swapped(pr.dst, n), n_swapped(pr.src, n));
		fails++;
	}
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("dst (swapped in from the swap cache)", pr.dst, pr.len, 210) ||
	    check_zero("src", pr.src, pr.len))
		fails++;
	fd = open(IDLE_BITMAP, O_RDWR | O_CLOEXEC);
	for (size_t i = 0; fd >= 0 && i < n; i++) {
		pfn = pfn_of(pr.dst + i * pg);
		if (!pfn)
			continue;
		drain_lru_and_flush();
		if (idle_bit(fd, pfn, 1) || idle_bit(fd, pfn, 0) != 1)
			continue;	/* not on the LRU yet */
		drain_lru_and_flush();
		(void)*(volatile char *)(pr.dst + i * pg);
		b = idle_bit(fd, pfn, 0);
		if (b != 0) {
			ktap_diag("dst page %zu (pfn 0x%llx): idle bit still set after an access through dst: the rmap walk does not find the dst PTE",
				  i, (unsigned long long)pfn);
			fails++;
		} else {
			ok_idle++;
		}
	}
	ktap_diag("page_idle: %d of %zu dst pages checked through rmap", ok_idle, n);
	if (fd >= 0)
		close(fd);
	pfn = pfn_of(pr.dst);
	for (int t = 0;; t++) {
		/*
		 * Migration needs every reference but the mappings' and the
		 * swap cache's gone: the per-CPU LRU batches can hold one
		 * for a while (the rotate batch of the CPU where the loop
		 * device's write-out ended, the activation batch).
		 */
		lru_drain_all_cpus();
		if (madvise(pr.dst, pg, MADV_SOFT_OFFLINE) == 0) {
			ktap_diag("MADV_SOFT_OFFLINE of dst page 0: pfn 0x%llx -> 0x%llx (try %d)",
				  (unsigned long long)pfn,
				  (unsigned long long)pfn_of(pr.dst), t + 1);
			if (check_pat("dst after soft offline", pr.dst, pr.len, 210))
				fails++;
			break;
		}
		if (errno == EINVAL)	/* no MEMORY_FAILURE */
			break;
		if (errno != EBUSY || t == 4) {
			ktap_diag("MADV_SOFT_OFFLINE of dst page 0 failed: %s (try %d)",
				  ename(errno), t + 1);
			fails++;
			break;
		}
		sleep_ms(100);
	}
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

/*
 * swap_cache_race_stress: for 10 s, one page at a time: the page is paged
 * out to the loop device, then a thread faults it back in at src (through
 * the swap cache) and pages it out again, over and over, while the main
 * thread moves the swap entry to dst.  The entry can then be reused with
 * a folio that entered the swap cache after the move looked for one.
 * Every move must end with the page at dst (after -1/EAGAIN or EBUSY
 * retries), its data intact, and the folio reachable by rmap from dst
 * (page_idle, when the idle bit sticks).
 */
#define RS_SECONDS	10.0
#define RS_SLOTS	64

struct rstress {
	char *volatile cur;	/* src page being raced, NULL: idle */
	volatile int stop;
	long cycles;
};

static void *rs_cycler(void *arg)
{
	struct rstress *s = arg;

	while (!s->stop) {
		char *p = s->cur;

		if (!p) {
			sched_yield();
			continue;
		}
		(void)*(volatile char *)p;	/* swap-in (or zero page once moved) */
		madvise(p, pg, MADV_PAGEOUT);
		s->cycles++;
	}
	return NULL;
}

static int t_swap_cache_race_stress(void)
{
	struct rstress s = { 0 };
	struct pair pr;
	pthread_t t;
	int fails = 0, fd, started = 0;
	long iters = 0, eagain = 0, ebusy = 0, idle_checked = 0, bad = 0;
	double t0;

	SWAP_TRY(swap_use(SWK_LOOP));
	if (pair_setup(&pr, RS_SLOTS, 1))
		goto fail;
	madvise(pr.src, pr.len, MADV_NOHUGEPAGE);
	madvise(pr.dst, pr.len, MADV_NOHUGEPAGE);
	fd = open(IDLE_BITMAP, O_RDWR | O_CLOEXEC);
	if (pthread_create(&t, NULL, rs_cycler, &s))
		goto fail;
	started = 1;
	t0 = now_s();
	while (now_s() - t0 < RS_SECONDS && !bad) {
		size_t k = (size_t)iters % RS_SLOTS;
		char *src = pr.src + k * pg, *dst = pr.dst + k * pg;
		unsigned int seed = 300 + (unsigned int)(iters & 0xffff);
		struct mv r;
		int tries = 0;
		uint64_t pfn;

		madvise(dst, pg, MADV_DONTNEED);
		fill(src, pg, seed);
		madvise(src, pg, MADV_PAGEOUT);
		s.cur = src;
		for (;;) {
			r = do_move(pr.ufd, dst, src, pg, 0);
			if (r.ret == 0)
				break;
			if (r.ret == -1 && (r.err == EAGAIN || r.err == EBUSY) &&
			    ++tries < 100000) {
				if (r.err == EAGAIN)
					eagain++;
				else
					ebusy++;
				continue;
			}
			ktap_diag("iteration %ld: UFFDIO_MOVE: ret %d errno %s move %s after %d tries",
				  iters, r.ret, ename(r.err), mvstr(r.move), tries);
			bad++;
			break;
		}
		s.cur = NULL;
		sleep_ms(0);
		if (bad)
			break;
		/* dst is populated (page or swap entry): reading it does not block */
		if (check_pat("dst", dst, pg, seed)) {
			ktap_diag("iteration %ld: data lost", iters);
			bad++;
			break;
		}
		pfn = pfn_of(dst);
		if (fd >= 0 && pfn && (iters & 7) == 0) {
			drain_lru_and_flush();
			if (!idle_bit(fd, pfn, 1) && idle_bit(fd, pfn, 0) == 1) {
				drain_lru_and_flush();
				(void)*(volatile char *)dst;
				if (idle_bit(fd, pfn, 0) != 0) {
					ktap_diag("iteration %ld: dst pfn 0x%llx idle after an access through dst: the folio is not reachable by rmap from dst",
						  iters, (unsigned long long)pfn);
					bad++;
				}
				idle_checked++;
			}
		}
		iters++;
	}
	s.stop = 1;
	pthread_join(t, NULL);
	started = 0;
	ktap_diag("%.1f s: %ld pages moved, %ld EAGAIN and %ld EBUSY retries, %ld swap-in/page-out cycles at src, %ld rmap checks",
		  now_s() - t0, iters, eagain, ebusy, s.cycles, idle_checked);
	if (fd >= 0)
		close(fd);
	if (bad || iters == 0)
		fails++;
	return pair_end(&pr, fails);
fail:
	if (started) {
		s.stop = 1;
		pthread_join(t, NULL);
	}
	return pair_end(&pr, 1);
}

/* ------------------------------------------------------------------ */
/* huge pages: shared after fork, rmap after a PMD move, fault-driven    */

/*
 * thp_fork_{aligned,misaligned}_ebusy: a PMD-mapped THP shared with a
 * forked child.  As 6.12: the aligned 2 MiB move and a misaligned one
 * (4 pages from the middle; dst one page off) give -1/EBUSY with nothing
 * moved, and the THP stays PMD-mapped (AnonHugePages unchanged): a move
 * that fails does not split it.
 */
static int thp_fork_case(int misaligned)
{
	long kb0, kb1;
	struct hp h;
	int fails = 0, wfd;
	pid_t pid;
	struct mv r;

	HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 1));
	HP_TRY(hp_make_thp(&h, misaligned ? 221 : 220));
	pid = fork_holder(&wfd);
	if (pid < 0)
		goto fail;
	kb0 = smaps_anon_huge_kb(h.src);
	if (misaligned)
		r = do_move(h.ufd, h.dst + pg, h.src + h.H / 2, 4 * pg, 0);
	else
		r = do_move(h.ufd, h.dst, h.src, h.H, 0);
	kb1 = smaps_anon_huge_kb(h.src);
	release_holder(pid, wfd);
	if (expect_fail(misaligned ? "misaligned 4-page move from a THP shared after fork" :
			"aligned 2 MiB move of a THP shared after fork", r, EBUSY, 0))
		fails++;
	ktap_diag("src AnonHugePages %ld kB before, %ld kB after the failed move", kb0, kb1);
	if (kb1 != kb0) {
		ktap_diag("expected AnonHugePages unchanged (the failed move must not split the THP)");
		fails++;
	}
	if (n_resident(h.dst, h.H / pg) != 0) {
		ktap_diag("dst populated although the move failed");
		fails++;
	}
	if (check_pat("src", h.src, h.H, misaligned ? 221 : 220))
		fails++;
	hp_teardown(&h);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	hp_teardown(&h);
	return KTAP_FAIL;
}

static int t_thp_fork_aligned_ebusy(void)
{
	return thp_fork_case(0);
}

static int t_thp_fork_misaligned_ebusy(void)
{
	return thp_fork_case(1);
}

/*
 * thp_move_rmap_split: a THP moved whole (PMD move), then the dst PMD is
 * split (MADV_DONTNEED of its last page) and page_idle is used on dst
 * pages 0 and 100: the rmap walk of the (now PTE-mapped) large folio must
 * find the dst PTEs, which needs the folio's index and anon_vma of dst.
 */
static int t_thp_move_rmap_split(void)
{
	size_t idx[2] = { 0, 100 };
	int fails = 0, fd, checked = 0;
	struct hp h;

	fd = open(IDLE_BITMAP, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return ktap_skip_because(IDLE_BITMAP " absent: CONFIG_IDLE_PAGE_TRACKING not built");
	HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 1));
	HP_TRY(hp_make_thp(&h, 222));
	if (expect_moved("UFFDIO_MOVE of a PMD-mapped THP", do_move(h.ufd, h.dst, h.src, h.H, 0), h.H))
		goto fail;
	if (uffd_unreg(h.ufd, h.dst, h.H))
		goto fail;
	if (madvise(h.dst + h.H - pg, pg, MADV_DONTNEED))
		goto fail;
	ktap_diag("dst after MADV_DONTNEED of its last page: AnonHugePages %ld kB",
		  smaps_anon_huge_kb(h.dst));
	for (int i = 0; i < 2; i++) {
		uint64_t pfn = pfn_of(h.dst + idx[i] * pg);

		if (!pfn)
			continue;
		drain_lru_and_flush();
		if (idle_bit(fd, pfn, 1) || idle_bit(fd, pfn, 0) != 1) {
			ktap_diag("dst page %zu: idle bit did not stick", idx[i]);
			continue;
		}
		drain_lru_and_flush();
		(void)*(volatile char *)(h.dst + idx[i] * pg);
		if (idle_bit(fd, pfn, 0) != 0) {
			ktap_diag("dst page %zu (pfn 0x%llx): still idle after an access through dst: rmap misses the dst PTE",
				  idx[i], (unsigned long long)pfn);
			fails++;
		}
		checked++;
	}
	if (!checked) {
		close(fd);
		hp_teardown(&h);
		return ktap_skip_because("the idle bit of the dst pages did not stick");
	}
	if (check_pat("dst", h.dst, h.H - pg, 222))
		fails++;
	close(fd);
	hp_teardown(&h);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	close(fd);
	hp_teardown(&h);
	return KTAP_FAIL;
}

/* fault-driven PMD moves: the handler moves the whole 2 MiB chunk */
struct pmdf {
	struct hp *h;
	volatile int stop, reader_done;
	int nmoves, herr, bad;
};

static void *pmdf_reader(void *arg)
{
	struct pmdf *f = arg;

	if (check_pat("dst (read through the fault)", f->h->dst, f->h->H, 223))
		f->bad++;
	f->reader_done = 1;
	return NULL;
}

static void *pmdf_handler(void *arg)
{
	struct pmdf *f = arg;
	struct hp *h = f->h;
	struct uffd_msg msg;

	while (!f->stop) {
		int g = uffd_get_msg(h->ufd, &msg, 50);
		struct mv r;

		if (g < 0) {
			f->herr++;
			break;
		}
		if (!g)
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT) {
			f->herr++;
			continue;
		}
		/* the whole PMD-sized chunk around the fault */
		r = do_move(h->ufd, h->dst, h->src, h->H,
			    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
		if (r.ret == -1 && r.err == EEXIST) {
			/* resolved by an earlier move: wake the reader */
			struct uffdio_range wr = { (uintptr_t)h->dst, h->H };

			ioctl(h->ufd, UFFDIO_WAKE, &wr);
			continue;
		}
		if (expect_moved("handler: UFFDIO_MOVE of the 2 MiB chunk", r, h->H))
			f->herr++;
		else
			f->nmoves++;
	}
	return NULL;
}

static int fault_pmd_case(int dst_advice)
{
	struct pmdf f;
	pthread_t rd, hd;
	struct hp h;
	long kb, want;
	int fails = 0;

	HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 1));
	if (madvise(h.dst, h.H, dst_advice))
		goto fail;
	HP_TRY(hp_make_thp(&h, 223));
	memset(&f, 0, sizeof(f));
	f.h = &h;
	if (pthread_create(&hd, NULL, pmdf_handler, &f))
		goto fail;
	if (pthread_create(&rd, NULL, pmdf_reader, &f)) {
		f.stop = 1;
		pthread_join(hd, NULL);
		goto fail;
	}
	if (!wait_flag(&f.reader_done, 10)) {
		ktap_diag("reader still blocked after 10 s; unregistering dst");
		fails++;
		uffd_unreg(h.ufd, h.dst, h.H);
	}
	pthread_join(rd, NULL);
	f.stop = 1;
	pthread_join(hd, NULL);
	kb = smaps_anon_huge_kb(h.dst);
	ktap_diag("dst (%s): AnonHugePages %ld kB after %d fault-driven 2 MiB moves, %d handler errors",
		  dst_advice == MADV_HUGEPAGE ? "MADV_HUGEPAGE" : "MADV_NOHUGEPAGE",
		  kb, f.nmoves, f.herr);
	if (f.nmoves != 1 || f.herr || f.bad) {
		ktap_diag("expected 1 move of the whole chunk, 0 errors, data intact");
		fails++;
	}
	/*
	 * MADV_HUGEPAGE: the missing fault came from the huge PMD path,
	 * which leaves the dst PMD none, so the PMD moves whole.
	 * MADV_NOHUGEPAGE: the fault allocated a page table at dst before
	 * it was reported, so the THP is split and moved page by page.
	 */
	want = dst_advice == MADV_HUGEPAGE ? (long)(h.H >> 10) : 0;
	if (kb != want) {
		ktap_diag("dst: expected AnonHugePages %ld kB, got %ld kB", want, kb);
		fails++;
	}
	if (check_zero("src", h.src, h.H))
		fails++;
	hp_teardown(&h);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	hp_teardown(&h);
	return KTAP_FAIL;
}

static int t_fault_pmd_hugepage(void)
{
	return fault_pmd_case(MADV_HUGEPAGE);
}

static int t_fault_pmd_nohugepage(void)
{
	return fault_pmd_case(MADV_NOHUGEPAGE);
}

/* ------------------------------------------------------------------ */
/* bits of the moved entry: soft-dirty, uffd-wp                          */

#define PM_SOFT_DIRTY	(1ULL << 55)
#define PM_UFFD_WP	(1ULL << 57)

/* 1 if soft-dirty tracking works here (a write after clear_refs 4 sets it) */
static int softdirty_usable(void)
{
	char *p = mmap(NULL, pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t e = 0;
	int ok;

	if (p == MAP_FAILED)
		return 0;
	p[0] = 1;
	ok = !write_str("/proc/self/clear_refs", "4");
	p[0] = 2;
	ok = ok && !pagemap_ent(p, &e) && (e & PM_SOFT_DIRTY);
	munmap(p, pg);
	return ok;
}

static int sd_bit(const void *p)
{
	uint64_t e = 0;

	if (pagemap_ent(p, &e))
		return -1;
	return !!(e & PM_SOFT_DIRTY);
}

/*
 * softdirty_{present,swap,thp}: soft-dirty cleared everywhere (clear_refs
 * 4) after src was populated, then the move.  As 6.12: the moved entry is
 * soft-dirty at dst, for a present page, a swap entry (zram) and a PMD.
 */
static int softdirty_case(int kind)
{
	struct pair pr = { .ufd = -1 };
	struct hp h = { .ufd = -1 };
	char *src, *dst;
	size_t len;
	int fails = 0, b;

	if (!softdirty_usable())
		return ktap_skip_because("no soft-dirty tracking (CONFIG_MEM_SOFT_DIRTY=n)");
	if (kind == 2) {
		HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 1));
		HP_TRY(hp_make_thp(&h, 230));
		src = h.src;
		dst = h.dst;
		len = h.H;
	} else {
		if (kind == 1)
			SWAP_TRY(swap_use(SWK_ZRAM));
		pin_cpu();
		if (pair_setup(&pr, 1, 1))
			goto fail;
		madvise(pr.src, pg, MADV_NOHUGEPAGE);
		fill(pr.src, pg, 230);
		if (kind == 1 && page_out(pr.src, 1))
			goto fail;
		src = pr.src;
		dst = pr.dst;
		len = pg;
	}
	if (write_str("/proc/self/clear_refs", "4"))
		goto fail;
	ktap_diag("src soft-dirty after clear_refs 4: %d", sd_bit(src));
	if (expect_moved("UFFDIO_MOVE", do_move(kind == 2 ? h.ufd : pr.ufd, dst, src, len, 0), len))
		fails++;
	b = sd_bit(dst);
	ktap_diag("dst soft-dirty after the move: %d", b);
	if (b != 1) {
		ktap_diag("expected the moved %s soft-dirty at dst",
			  kind == 0 ? "PTE" : kind == 1 ? "swap entry" : "PMD");
		fails++;
	}
	if (check_pat("dst", dst, len, 230))
		fails++;
	if (kind == 2)
		hp_teardown(&h);
	pair_teardown(&pr);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	hp_teardown(&h);
	pair_teardown(&pr);
	return KTAP_FAIL;
}

static int t_softdirty_present(void)
{
	return softdirty_case(0);
}

static int t_softdirty_swap(void)
{
	return softdirty_case(1);
}

static int t_softdirty_thp(void)
{
	return softdirty_case(2);
}

/* R_WP: does this kernel's architecture offer anonymous uffd-wp? */
static int wp_arch_expected(void)
{
	if (!strcmp(kv_machine, "x86_64"))
		return kv_major > 5 || (kv_major == 5 && kv_minor >= 7);
	if (!strcmp(kv_machine, "aarch64"))
		return kv_major > 6 || (kv_major == 6 && kv_minor >= 10);
	return 0;
}

static int uffd_reg_mode(int fd, void *p, size_t len, __u64 mode)
{
	struct uffdio_register r = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = mode,
	};

	return ioctl(fd, UFFDIO_REGISTER, &r);
}

static int uffd_wp(int fd, void *p, size_t len, int on)
{
	struct uffdio_writeprotect w = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &w);
}

/*
 * uffd_wp_dst: src and dst registered MISSING|WP.  Page 0 of src present
 * and write-protected, page 1 write-protected and swapped out (zram).
 * Both are moved.  As upstream: the moved swap entry keeps its uffd-wp
 * bit (pagemap bit 57 at dst); the present page is mapped at dst without
 * it (checked on the 6.18 host too).
 */
static int t_uffd_wp_dst(void)
{
	uint64_t e0 = 0, e1 = 0, s0 = 0, s1 = 0;
	struct pair pr;
	int fails = 0;

	SWAP_TRY(swap_use(SWK_ZRAM));
	pin_cpu();
	if (pair_setup(&pr, 2, 0))
		goto fail;
	madvise(pr.src, pr.len, MADV_NOHUGEPAGE);
	fill(pr.src, pr.len, 231);
	if (uffd_reg_mode(pr.ufd, pr.dst, pr.len,
			  UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP) ||
	    uffd_reg_mode(pr.ufd, pr.src, pr.len,
			  UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP)) {
		int e = errno;

		/*
		 * Rule R_WP: anonymous uffd-wp is an architecture feature of
		 * the base kernel (x86_64 since 5.7, arm64 since 6.10).
		 * Without it there is no uffd-wp bit for a move to keep:
		 * the registration must be refused with EINVAL, which is all
		 * there is to check.
		 */
		pair_teardown(&pr);
		if (e == EINVAL && !wp_arch_expected()) {
			ktap_diag("rule R_WP: %s %d.%d has no anonymous uffd-wp: UFFDIO_REGISTER_MODE_WP refused with EINVAL, as it must be",
				  kv_machine, kv_major, kv_minor);
			return KTAP_PASS;
		}
		ktap_diag("UFFDIO_REGISTER_MODE_WP on anonymous memory: %s (%s %d.%d: expected to work)",
			  ename(e), kv_machine, kv_major, kv_minor);
		return KTAP_FAIL;
	}
	ktap_diag("rule R_WP: %s %d.%d offers anonymous uffd-wp", kv_machine, kv_major, kv_minor);
	if (uffd_wp(pr.ufd, pr.src, pr.len, 1)) {
		ktap_diag("UFFDIO_WRITEPROTECT failed: %s", ename(errno));
		goto fail;
	}
	if (page_out(pr.src + pg, 1))
		goto fail;
	pagemap_ent(pr.src, &s0);
	pagemap_ent(pr.src + pg, &s1);
	if (expect_moved("UFFDIO_MOVE into a uffd-wp registered dst",
			 do_move(pr.ufd, pr.dst, pr.src, pr.len, 0), pr.len))
		fails++;
	pagemap_ent(pr.dst, &e0);
	pagemap_ent(pr.dst + pg, &e1);
	ktap_diag("uffd-wp (pagemap bit 57): present page src %d -> dst %d; swap entry src %d -> dst %d",
		  !!(s0 & PM_UFFD_WP), !!(e0 & PM_UFFD_WP), !!(s1 & PM_UFFD_WP),
		  !!(e1 & PM_UFFD_WP));
	if (!(s1 & PM_UFFD_WP) || !(e1 & PM_SWAP) || !(e1 & PM_UFFD_WP)) {
		ktap_diag("expected the write-protected swap entry to keep uffd-wp at dst");
		fails++;
	}
	if (!(s0 & PM_UFFD_WP) || !(e0 & PM_PRESENT) || (e0 & PM_UFFD_WP)) {
		ktap_diag("expected the write-protected present page mapped at dst without uffd-wp");
		fails++;
	}
	if (uffd_wp(pr.ufd, pr.dst, pr.len, 0))
		fails++;
	if (check_pat("dst", pr.dst, pr.len, 231))
		fails++;
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

/* ------------------------------------------------------------------ */
/* mmap_changing, anon_vma, page tables                                 */

/*
 * eagain_event_invalid_args: while a REMOVE event is pending (mmap_changing),
 * as 6.12 every call gives -1/EAGAIN with move = -EAGAIN, before anything
 * else is checked: unaligned dst, len 0, an unknown mode bit, a range past
 * user space, no VMA, and a call from a forked child (another mm).
 */
static int t_eagain_event_invalid_args(void)
{
	struct pair pr;
	struct dn_arg a;
	struct uffd_msg msg;
	struct pollfd pf;
	pthread_t t;
	struct mv r[7], *cr;
	const char *what[7] = { "unaligned dst", "len 0", "unknown mode bit",
				"range past user space", "dst in a PROT_NONE VMA",
				"valid call", "forked child (other mm)" };
	int fails = 0, fd, st;
	pid_t c;

	cr = mmap(NULL, sizeof(*cr), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (cr == MAP_FAILED)
		return KTAP_FAIL;
	if (pair_setup(&pr, 2, 0))
		goto fail;
	fd = uffd_new(UFFD_FEATURE_MOVE | UFFD_FEATURE_EVENT_REMOVE, NULL);
	if (fd < 0)
		goto fail;
	close(pr.ufd);
	pr.ufd = fd;
	fill(pr.src, pg, 232);
	fill(pr.dst + pg, pg, 233);
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
	} else {
		r[0] = do_move(pr.ufd, pr.dst + 1, pr.src, pg, 0);
		r[1] = do_move(pr.ufd, pr.dst, pr.src, 0, 0);
		r[2] = do_move(pr.ufd, pr.dst, pr.src, pg, 1ULL << 5);
		r[3] = do_move(pr.ufd, (void *)(uintptr_t)(-16 * pg), pr.src, 8 * pg, 0);
		r[4] = do_move(pr.ufd, pr.base, pr.src, pg, 0);
		r[5] = do_move(pr.ufd, pr.dst, pr.src, pg, 0);
		ktap_flush();
		c = fork();
		if (c == 0) {
			*cr = do_move(pr.ufd, pr.dst, pr.src, pg, 0);
			_exit(0);
		}
		waitpid(c, &st, 0);
		r[6] = *cr;
		for (int i = 0; i < 7; i++) {
			ktap_diag("%s: ret %d errno %s move %s", what[i], r[i].ret,
				  ename(r[i].err), mvstr(r[i].move));
			if (r[i].ret != -1 || r[i].err != EAGAIN || r[i].move != -EAGAIN) {
				ktap_diag("%s: expected -1/EAGAIN, move -EAGAIN while the event is pending",
					  what[i]);
				fails++;
			}
		}
	}
	if (uffd_get_msg(pr.ufd, &msg, 5000) != 1)
		fails++;
	pthread_join(t, NULL);
	if (resident(pr.dst) != 0) {
		ktap_diag("dst page 0 populated while the event was pending");
		fails++;
	}
	r[0] = do_move(pr.ufd, pr.dst + 1, pr.src, pg, 0);
	if (expect_fail("unaligned dst after the event was read", r[0], EINVAL, 1))
		fails++;
	munmap(cr, sizeof(*cr));
	return pair_end(&pr, fails);
fail:
	munmap(cr, sizeof(*cr));
	return pair_end(&pr, 1);
}

/*
 * anon_vma_after_failed_move: a move into an unfaulted dst VMA that fails
 * on the VMA checks (src read-only, dst read-write: EINVAL).  As 6.12, dst
 * gets its anon_vma anyway (it is prepared before the checks).  Seen
 * through mremap: an unfaulted anonymous VMA without anon_vma is re-based
 * to its new address by mremap and merges with an unfaulted neighbour
 * there; with an anon_vma it keeps its pgoff and does not merge.
 */
static int t_anon_vma_after_failed_move(void)
{
	char *base, *src, *dst, *nb;
	int ufd = -1, fails = 0, n;
	struct mv r;

	base = mmap(NULL, 16 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return KTAP_FAIL;
	src = carve(base + pg, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
	dst = carve(base + 3 * pg, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	nb = carve(base + 10 * pg, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	if (!src || !dst || !nb)
		goto fail;
	(void)*(volatile char *)src;	/* the zero page */
	ufd = uffd_move_fd();
	if (ufd < 0 || uffd_reg(ufd, dst, 2 * pg, NULL))
		goto fail;
	r = do_move(ufd, dst, src, pg, 0);
	if (expect_fail("move from a read-only src into a read-write dst", r, EINVAL, 0))
		fails++;
	if (uffd_unreg(ufd, dst, 2 * pg))
		goto fail;
	/* dst to just below nb */
	if (mremap(dst, 2 * pg, 2 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, nb - 2 * pg) == MAP_FAILED) {
		ktap_diag("mremap failed: %s", ename(errno));
		goto fail;
	}
	n = maps_count((uintptr_t)(nb - 2 * pg), (uintptr_t)(nb + 2 * pg));
	ktap_diag("dst mremap'ed next to an unfaulted neighbour: %d VMA(s)", n);
	if (n != 2) {
		ktap_diag("expected 2 VMAs (dst got an anon_vma from the failed move, keeps its pgoff, no merge), got %d",
			  n);
		fails++;
	}
	close(ufd);
	munmap(base, 16 * pg);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	if (ufd >= 0)
		close(ufd);
	munmap(base, 16 * pg);
	return KTAP_FAIL;
}

/*
 * src_holes_tables_allocated: ALLOW_SRC_HOLES over a src and a dst that
 * have no page table yet (both PMDs none, in THP-enabled VMAs).  As 6.12
 * the move counts the hole as moved and gives both sides a page table:
 * a later fault at dst maps a small page, not a THP.
 */
static int t_src_holes_tables_allocated(void)
{
	struct hp h;
	int fails = 0;
	long kb;

	HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 1));
	if (expect_moved("ALLOW_SRC_HOLES move of one page, both PMDs empty",
			 do_move(h.ufd, h.dst, h.src, pg, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES), pg))
		fails++;
	if (uffd_unreg(h.ufd, h.dst, h.H))
		goto fail;
	fill(h.dst, h.H, 234);
	kb = smaps_anon_huge_kb(h.dst);
	ktap_diag("dst after faulting it in: AnonHugePages %ld kB", kb);
	if (kb != 0) {
		ktap_diag("expected 0 (the move allocated a page table at dst)");
		fails++;
	}
	hp_teardown(&h);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	hp_teardown(&h);
	return KTAP_FAIL;
}

/*
 * src_no_pmd_level: src in a 1 GiB region of its own that has never been
 * touched (no PUD entry: no PMD table), dst a PMD-mapped THP.  As 6.12:
 * -1/ENOENT (the missing src level is seen before the dst checks).
 */
static int t_src_no_pmd_level(void)
{
	const size_t G = 1UL << 30;
	char *res = MAP_FAILED, *src;
	struct hp h;
	int fails = 0;

	HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 0));
	res = mmap(NULL, 3 * G, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED) {
		hp_teardown(&h);
		return ktap_skip_because("no 3 GiB of address space");
	}
	src = (char *)(((uintptr_t)res + G - 1) & ~(uintptr_t)(G - 1));
	if (!carve(src, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS))
		goto fail;
	fill(h.dst, h.H, 235);
	if (uffd_reg(h.ufd, h.dst, h.H, NULL))
		goto fail;
	ktap_diag("dst AnonHugePages %ld kB", smaps_anon_huge_kb(h.dst));
	if (expect_fail("move from a src without PMD level to a populated THP dst",
			do_move(h.ufd, h.dst, src, pg, 0), ENOENT, 0))
		fails++;
	munmap(res, 3 * G);
	hp_teardown(&h);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	if (res != MAP_FAILED)
		munmap(res, 3 * G);
	hp_teardown(&h);
	return KTAP_FAIL;
}

/* ------------------------------------------------------------------ */
/* concurrency                                                           */

struct tm_arg {
	int ufd;
	char *dst, *src;
	size_t npages;
	volatile int *go;
	long busy, again, errs;
};

static void *tm_mover(void *arg)
{
	struct tm_arg *a = arg;

	while (!*a->go)
		;
	for (size_t i = 0; i < a->npages; i++) {
		for (int tries = 0;; tries++) {
			struct mv r = do_move(a->ufd, a->dst + i * pg, a->src + i * pg, pg, 0);

			if (r.ret == 0)
				break;
			if (r.ret == -1 && (r.err == EBUSY || r.err == EAGAIN) && tries < 100000) {
				if (r.err == EBUSY)
					a->busy++;
				else
					a->again++;
				sched_yield();
				continue;
			}
			ktap_diag("mover: page %zu: ret %d errno %s move %s", i, r.ret,
				  ename(r.err), mvstr(r.move));
			a->errs++;
			break;
		}
	}
	return NULL;
}

/*
 * race_two_movers_thp: a PTE-mapped THP (PMD split by MADV_DONTNEED of its
 * last page); two threads move its first and second half, page by page,
 * at the same time, both having to split the same large folio.  Every
 * move ends done (EBUSY/EAGAIN retried); all data arrives; repeated for 3 s.
 */
static int t_race_two_movers_thp(void)
{
	long rounds = 0, busy = 0, again = 0;
	int fails = 0;
	double t0 = now_s();

	while (now_s() - t0 < 3.0 && !fails) {
		struct tm_arg a[2];
		volatile int go = 0;
		pthread_t t[2];
		size_t half;
		struct hp h;

		HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 1));
		HP_TRY(hp_make_thp(&h, 236));
		if (madvise(h.src + h.H - pg, pg, MADV_DONTNEED))
			goto fail;
		half = (h.H / pg - 1) / 2;
		for (int i = 0; i < 2; i++) {
			a[i] = (struct tm_arg){ h.ufd, h.dst + i * half * pg,
						h.src + i * half * pg, half, &go, 0, 0, 0 };
			pthread_create(&t[i], NULL, tm_mover, &a[i]);
		}
		go = 1;
		for (int i = 0; i < 2; i++) {
			pthread_join(t[i], NULL);
			busy += a[i].busy;
			again += a[i].again;
			if (a[i].errs)
				fails++;
		}
		if (uffd_unreg(h.ufd, h.dst, h.H) ||
		    check_pat("dst", h.dst, 2 * half * pg, 236) ||
		    check_zero("src", h.src, 2 * half * pg))
			fails++;
		hp_teardown(&h);
		rounds++;
	}
	ktap_diag("%ld THPs moved by two racing movers, %ld EBUSY and %ld EAGAIN retries",
		  rounds, busy, again);
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	return KTAP_FAIL;
}

struct so_arg {
	volatile int stop;
	long cycles, errs;
	char *ballast;
	size_t ballast_len;
};

static void *so_cycler(void *arg)
{
	struct so_arg *a = arg;

	while (!a->stop) {
		/*
		 * Swapped-out ballast makes swapoff's walk of the page tables
		 * longer, and with it the window in which the swap device is
		 * already refused to get_swap_device() while the movers'
		 * entries are still in their PTEs.
		 */
		madvise(a->ballast, a->ballast_len, MADV_PAGEOUT);
		if (syscall(__NR_swapoff, "/dev/zram0") ||
		    write_swap_header("/dev/zram0", (size_t)read_long(ZRAM "disksize")) ||
		    syscall(__NR_swapon, "/dev/zram0", 0)) {
			a->errs++;
			break;
		}
		a->cycles++;
	}
	return NULL;
}

/*
 * race_swapoff: 16 pages paged out to zram and moved back and forth
 * between src and dst while another thread turns swap off and on again
 * (with 8 MiB of swapped-out ballast, so that swapoff takes a while).
 * Moves end with 0, or -1/EAGAIN (retried from where they stopped; as
 * upstream, a swap entry of a device being swapped off gives EAGAIN);
 * every page keeps its data.  3 s.
 */
static int t_race_swapoff(void)
{
	const size_t n = 16;
	struct so_arg so = { 0 };
	struct pair pr;
	pthread_t t;
	long moves = 0, again = 0;
	int fails = 0, dir = 0;
	double t0;

	SWAP_TRY(swap_use(SWK_ZRAM));
	if (pair_setup(&pr, n, 1))
		goto fail;
	madvise(pr.src, pr.len, MADV_NOHUGEPAGE);
	madvise(pr.dst, pr.len, MADV_NOHUGEPAGE);
	fill(pr.src, pr.len, 237);
	if (uffd_reg(pr.ufd, pr.src, pr.len, NULL))
		goto fail;
	so.ballast_len = 2048 * pg;
	so.ballast = mmap(NULL, so.ballast_len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (so.ballast == MAP_FAILED)
		goto fail;
	madvise(so.ballast, so.ballast_len, MADV_NOHUGEPAGE);
	fill(so.ballast, so.ballast_len, 238);
	if (pthread_create(&t, NULL, so_cycler, &so))
		goto fail;
	t0 = now_s();
	while (now_s() - t0 < 3.0 && !fails) {
		char *from = dir ? pr.dst : pr.src, *to = dir ? pr.src : pr.dst;
		size_t done = 0;
		int tries = 0;

		madvise(from, pr.len, MADV_PAGEOUT);
		while (done < pr.len) {
			struct mv r = do_move(pr.ufd, to + done, from + done, pr.len - done, 0);

			if (r.ret == 0)
				break;
			if (r.ret == -1 && r.err == EAGAIN && ++tries < 100000) {
				if (r.move > 0)
					done += r.move;
				again++;
				continue;
			}
			ktap_diag("move: ret %d errno %s move %s", r.ret, ename(r.err), mvstr(r.move));
			fails++;
			break;
		}
		dir ^= 1;
		moves++;
	}
	so.stop = 1;
	pthread_join(t, NULL);
	ktap_diag("%ld moves of 16 pages, %ld EAGAIN, %ld swapoff/swapon cycles (%ld errors)",
		  moves, again, so.cycles, so.errs);
	if (so.errs)
		fails++;
	if (check_pat("ballast", so.ballast, so.ballast_len, 238))
		fails++;
	if (uffd_unreg(pr.ufd, pr.src, pr.len) || uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("data", dir ? pr.dst : pr.src, pr.len, 237))
		fails++;
	return pair_end(&pr, fails);
fail:
	so.stop = 1;
	return pair_end(&pr, 1);
}

struct dz_arg {
	char *p;
	size_t len;
	volatile int stop;
	long zaps;
};

static void *dz_zapper(void *arg)
{
	struct dz_arg *a = arg;

	while (!a->stop) {
		madvise(a->p, a->len, MADV_DONTNEED);
		a->zaps++;
		sched_yield();
	}
	return NULL;
}

/*
 * race_dontneed: MADV_DONTNEED of src in a loop while 16-page moves with
 * ALLOW_SRC_HOLES run.  Each move returns 0 (zapped pages count as holes)
 * or -1/EAGAIN (retried); every dst page holds either its own data or
 * nothing, never another page's.  3 s.
 */
static int t_race_dontneed(void)
{
	const size_t n = 16;
	struct dz_arg z = { 0 };
	struct pair pr;
	pthread_t t;
	long rounds = 0, moved_pages = 0;
	int fails = 0;
	double t0;

	if (pair_setup(&pr, n, 1))
		goto fail;
	z.p = pr.src;
	z.len = pr.len;
	if (pthread_create(&t, NULL, dz_zapper, &z))
		goto fail;
	t0 = now_s();
	while (now_s() - t0 < 3.0 && !fails) {
		unsigned int seed = 400 + (unsigned int)(rounds & 0xff);
		size_t done = 0;

		long tries = 0;

		madvise(pr.dst, pr.len, MADV_DONTNEED);
		fill(pr.src, pr.len, seed);
		while (done < pr.len) {
			struct mv r = do_move(pr.ufd, pr.dst + done, pr.src + done, pr.len - done,
					      UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);

			if (r.ret == 0)
				break;
			if (r.ret == -1 && r.err == EAGAIN && ++tries < 100000) {
				if (r.move > 0)
					done += r.move;
				continue;
			}
			ktap_diag("move: ret %d errno %s move %s", r.ret, ename(r.err), mvstr(r.move));
			fails++;
			break;
		}
		for (size_t i = 0; i < n && !fails; i++) {
			char *d = pr.dst + i * pg;

			if (resident(d) != 1)
				continue;
			moved_pages++;
			for (size_t o = 0; o < pg; o += 8) {
				uint64_t v = *(volatile uint64_t *)(d + o);

				if (v != pat(seed, i * pg + o) && v != 0) {
					ktap_diag("round %ld dst page %zu +0x%zx: foreign data", rounds, i, o);
					fails++;
					break;
				}
			}
		}
		rounds++;
	}
	z.stop = 1;
	pthread_join(t, NULL);
	ktap_diag("%ld rounds, %ld pages found moved, %ld MADV_DONTNEED of src", rounds,
		  moved_pages, z.zaps);
	return pair_end(&pr, fails);
fail:
	z.stop = 1;
	return pair_end(&pr, 1);
}

/* ------------------------------------------------------------------ */
/* the case table                                                       */

/*
 * What a case needs.  The runner (ktap_run_cases) asks needs_check()
 * before forking the case and reports it skipped with the reason when
 * something is missing, so the bodies do not check these themselves.
 * Finer conditions (a THP that did not form, an idle bit that did not
 * stick, a swap device that could not be set up) are still found by the
 * case and reported with ktap_skip_because().
 */
#define N_MOVE	(1U << 0)	/* UFFD_FEATURE_MOVE offered */
#define N_THP	(1U << 1)	/* THP built and not disabled */
#define N_KSM	(1U << 2)	/* KSM built */
#define N_ZRAM	(1U << 3)	/* swap, and a zram device (synchronous) */
#define N_LOOP	(1U << 4)	/* swap, and a loop device (through the swap cache) */
#define N_IDLE	(1U << 5)	/* page_idle bitmap */

static const char *needs_check(unsigned int needs)
{
	static char why[320];
	char buf[128];

	if ((needs & N_MOVE) && !move_offered) {
		snprintf(why, sizeof(why), "UFFD_FEATURE_MOVE not offered (%s)", offer_detail);
		return why;
	}
	if (needs & N_THP) {
		if (read_file_str(THP_DIR "enabled", buf, sizeof(buf)))
			return THP_DIR "enabled missing: THP not built";
		if (strstr(buf, "[never]"))
			return "THP disabled (enabled=[never])";
	}
	if ((needs & N_KSM) && access(KSM_DIR "run", W_OK))
		return KSM_DIR "run absent: KSM not built";
	if ((needs & (N_ZRAM | N_LOOP)) && access("/proc/swaps", R_OK))
		return "/proc/swaps absent: kernel without swap (CONFIG_SWAP=n)";
	if ((needs & N_ZRAM) && access(ZRAM "disksize", W_OK))
		return ZRAM "disksize absent: no zram device (CONFIG_ZRAM=n)";
	if ((needs & N_LOOP) && access("/dev/loop-control", R_OK | W_OK))
		return "/dev/loop-control absent: no loop device (CONFIG_BLK_DEV_LOOP=n)";
	if ((needs & N_IDLE) && access(IDLE_BITMAP, R_OK | W_OK))
		return IDLE_BITMAP " absent: CONFIG_IDLE_PAGE_TRACKING not built";
	return NULL;
}

static const struct ktap_case cases[] = {
	/* name, body, what it needs (checked by the runner), timeout (s, 0: 30) */
	{ "feature_bit", t_feature_bit, 0, 0 },
	{ "register_mask", t_register_mask, N_MOVE, 0 },
	{ "abi", t_abi, N_MOVE, 0 },
	{ "basic_move", t_basic_move, N_MOVE, 0 },
	{ "dst_populated_eexist", t_dst_populated_eexist, N_MOVE, 0 },
	{ "src_hole_enoent", t_src_hole_enoent, N_MOVE, 0 },
	{ "src_hole_allow", t_src_hole_allow, N_MOVE, 0 },
	{ "src_hole_dst_populated", t_src_hole_dst_populated, N_MOVE, 0 },
	{ "src_hole_pmd_dst_thp", t_src_hole_pmd_dst_thp, N_MOVE | N_THP, 0 },
	{ "einval_unaligned_dst", t_einval_unaligned_dst, N_MOVE, 0 },
	{ "einval_unaligned_src", t_einval_unaligned_src, N_MOVE, 0 },
	{ "einval_unaligned_len", t_einval_unaligned_len, N_MOVE, 0 },
	{ "einval_len_zero", t_einval_len_zero, N_MOVE, 0 },
	{ "einval_mode_unknown", t_einval_mode_unknown, N_MOVE, 0 },
	{ "wb_range_overflow", t_wb_range_overflow, N_MOVE, 0 },
	{ "wb_efault", t_wb_efault, N_MOVE, 0 },
	{ "einval_spans_two_vmas", t_einval_spans_two_vmas, N_MOVE, 0 },
	{ "einval_dst_file_vma", t_einval_dst_file_vma, N_MOVE, 0 },
	{ "einval_src_shared_anon", t_einval_src_shared_anon, N_MOVE, 0 },
	{ "einval_dst_unregistered", t_einval_dst_unregistered, N_MOVE, 0 },
	{ "einval_access_flags", t_einval_access_flags, N_MOVE, 0 },
	{ "einval_mlock_mismatch", t_einval_mlock_mismatch, N_MOVE, 0 },
	{ "mlock_both", t_mlock_both, N_MOVE, 0 },
	{ "no_vma", t_no_vma, N_MOVE, 0 },
	{ "foreign_mm", t_foreign_mm, N_MOVE, 0 },
	{ "eagain_event_pending", t_eagain_event_pending, N_MOVE, 0 },
	{ "partial_eagain", t_partial_eagain, N_MOVE, 0 },
	{ "overlap_slide", t_overlap_slide, N_MOVE, 0 },
	{ "fork_ebusy", t_fork_ebusy, N_MOVE, 0 },
	{ "fork_dontfork_moves", t_fork_dontfork_moves, N_MOVE, 0 },
	{ "fork_after_move", t_fork_after_move, N_MOVE, 0 },
	{ "ksm_ebusy", t_ksm_ebusy, N_MOVE | N_KSM, 0 },
	{ "pin_io_uring_ebusy", t_pin_io_uring_ebusy, N_MOVE, 0 },
	{ "ref_vmsplice", t_ref_vmsplice, N_MOVE, 0 },
	{ "odirect_inflight", t_odirect_inflight, N_MOVE | N_ZRAM, 60 },
	{ "thp_source", t_thp_source, N_MOVE | N_THP, 0 },
	{ "thp_split_partial", t_thp_split_partial, N_MOVE | N_THP, 0 },
	{ "thp_split_misaligned_dst", t_thp_split_misaligned_dst, N_MOVE | N_THP, 0 },
	{ "thp_pte_mapped", t_thp_pte_mapped, N_MOVE | N_THP, 0 },
	{ "thp_dst_populated", t_thp_dst_populated, N_MOVE | N_THP, 0 },
	{ "thp_huge_zero", t_thp_huge_zero, N_MOVE | N_THP, 0 },
	{ "zero_page", t_zero_page, N_MOVE, 0 },
	{ "swap_move", t_swap_move, N_MOVE | N_ZRAM, 0 },
	{ "swap_cache_move", t_swap_cache_move, N_MOVE | N_ZRAM, 0 },
	{ "swap_shared_ebusy", t_swap_shared_ebusy, N_MOVE | N_ZRAM, 0 },
	{ "fault_driven_move", t_fault_driven_move, N_MOVE, 0 },
	{ "fault_dontwake", t_fault_dontwake, N_MOVE, 0 },
	{ "rmap_page_idle", t_rmap_page_idle, N_MOVE | N_IDLE, 0 },
	{ "rmap_soft_offline", t_rmap_soft_offline, N_MOVE, 0 },
	{ "stress_threads", t_stress_threads, N_MOVE, 60 },
	{ "stress_walkers", t_stress_walkers, N_MOVE | N_THP, 60 },
	{ "swap_thp_cache_ebusy", t_swap_thp_cache_ebusy, N_MOVE | N_THP | N_LOOP, 300 },
	{ "swap_loop_cache_rmap", t_swap_loop_cache_rmap, N_MOVE | N_LOOP, 0 },
	{ "swap_cache_race_stress", t_swap_cache_race_stress, N_MOVE | N_LOOP, 90 },
	{ "thp_fork_aligned_ebusy", t_thp_fork_aligned_ebusy, N_MOVE | N_THP, 0 },
	{ "thp_fork_misaligned_ebusy", t_thp_fork_misaligned_ebusy, N_MOVE | N_THP, 0 },
	{ "thp_move_rmap_split", t_thp_move_rmap_split, N_MOVE | N_THP | N_IDLE, 0 },
	{ "fault_pmd_hugepage", t_fault_pmd_hugepage, N_MOVE | N_THP, 0 },
	{ "fault_pmd_nohugepage", t_fault_pmd_nohugepage, N_MOVE | N_THP, 0 },
	{ "softdirty_present", t_softdirty_present, N_MOVE, 0 },
	{ "softdirty_swap", t_softdirty_swap, N_MOVE | N_ZRAM, 0 },
	{ "softdirty_thp", t_softdirty_thp, N_MOVE | N_THP, 0 },
	{ "uffd_wp_dst", t_uffd_wp_dst, N_MOVE | N_ZRAM, 0 },
	{ "eagain_event_invalid_args", t_eagain_event_invalid_args, N_MOVE, 0 },
	{ "anon_vma_after_failed_move", t_anon_vma_after_failed_move, N_MOVE, 0 },
	{ "src_holes_tables_allocated", t_src_holes_tables_allocated, N_MOVE | N_THP, 0 },
	{ "src_no_pmd_level", t_src_no_pmd_level, N_MOVE | N_THP, 0 },
	{ "race_two_movers_thp", t_race_two_movers_thp, N_MOVE | N_THP, 60 },
	{ "race_swapoff", t_race_swapoff, N_MOVE | N_ZRAM, 60 },
	{ "race_dontneed", t_race_dontneed, N_MOVE, 60 },
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
		snprintf(kv_machine, sizeof(kv_machine), "%s", u.machine);
		sscanf(u.release, "%d.%d", &kv_major, &kv_minor);
	}
	probe();
	ksm_save(&ksm_saved);
	sws = mmap(NULL, sizeof(*sws), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sws == MAP_FAILED)
		sws = NULL;
	ktap_needs_hook = needs_check;
	ret = ktap_run_cases(cases, KTAP_ARRAY_SIZE(cases), 30, argc, argv);
	/* a ksm_ebusy child killed mid-test must not leave ksmd running */
	ksm_restore(&ksm_saved);
	/* swap turned on by a test: off again (the guest runs other tests) */
	swap_teardown();
	return ret;
}
