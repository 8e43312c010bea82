/* SPDX-License-Identifier: GPL-2.0 */
/*
 * uffd_move_race.h - time-bounded stress and race cases: threads, rmap walkers,
 * contention on a large folio, swapoff, MADV_DONTNEED.
 *
 * Part of uffd_move.c (one test binary; orch builds each .c file here
 * as one program, so the themes are headers included by it).
 */
#ifndef UFFD_MOVE_RACE_H
#define UFFD_MOVE_RACE_H

#include "uffd_move_common.h"

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
	const char *dev;	/* the swap device cycled (0: zram0) */
	size_t size;
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
		const char *dev = a->dev ? a->dev : "/dev/zram0";
		size_t size = a->dev ? a->size : (size_t)read_long(ZRAM "disksize");

		if (syscall(__NR_swapoff, dev) || write_swap_header(dev, size) ||
		    syscall(__NR_swapon, dev, 0)) {
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
/* contention: what user space sees of it                               */

#define CT_SECONDS	10.0
#define CT_THREADS	4
#define CT_PAGES	16	/* pages of the THP moved per round (contend_pte_mapped_thp) */
/*
 * contend_pmd_vs_pte: 6.12 itself answers EBUSY to a page mover racing
 * the PMD mover now and then (measured on 6.12.118 x86_64 in runs of
 * 20 s: 1 in 5,299 moves, and 1 in 403 on a loaded machine; 0 in four
 * other runs; 0 on arm64), so a few EBUSY are allowed: CT_PMD_BUSY_FREE
 * plus one per 1000 moves.  v2 gave 2,002, 448 and 1 on x86_64, 18,232
 * and 10,150 on arm64, in runs of 10 s.  EAGAIN never.
 */
#define CT_PMD_BUSY_FREE	2
#define CT_PMD_BUSY_PER_MILLE	1

/*
 * Cheap rounds, so that many of them fit in the time: the THP is faulted
 * in by writing one tagged word per page (pat(seed, page offset)), and
 * only that word is checked afterwards.
 */
static int ct_make_thp(struct hp *h, unsigned int seed)
{
	long kb;

	for (size_t o = 0; o < h->H; o += pg)
		*(volatile uint64_t *)(h->src + o) = pat(seed, o);
	kb = smaps_anon_huge_kb(h->src);
	if (kb < (long)(h->H >> 10)) {
		hp_teardown(h);
		return ktap_skip_because("src did not become a PMD-mapped THP (AnonHugePages %ld kB): no free huge page",
					 kb);
	}
	return 0;
}

/* the tagged word of each of n pages at p, pages numbered from first */
static int ct_check(const char *what, const char *p, size_t n, unsigned int seed,
		    size_t first)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t got = *(volatile const uint64_t *)(p + i * pg);
		uint64_t want = seed ? pat(seed, (first + i) * pg) : 0;

		if (got != want) {
			ktap_diag("%s page %zu: expected 0x%016llx, got 0x%016llx", what,
				  first + i, (unsigned long long)want, (unsigned long long)got);
			return -1;
		}
	}
	return 0;
}

struct ct_arg {
	int ufd;
	char *dst, *src;	/* moves src + i * pg to dst + i * pg */
	size_t first, stride, end;	/* pages first, first + stride, ... < end */
	size_t len;		/* > 0: one move of len bytes instead */
	__u64 mode;
	volatile int *go;
	long moves, busy, again, other;
	struct mv first_other;
};

/* one move, counted; 1 if it has to be tried again (EBUSY, EAGAIN) */
static int ct_move(struct ct_arg *a, char *dst, char *src, size_t len)
{
	struct mv r = do_move(a->ufd, dst, src, len, a->mode);

	a->moves++;
	if (r.ret == 0 && r.move == (__s64)len)
		return 0;
	if (r.ret == -1 && r.err == EBUSY) {
		a->busy++;
		return 1;
	}
	if (r.ret == -1 && r.err == EAGAIN) {
		a->again++;
		return r.move <= 0;
	}
	if (!a->other++)
		a->first_other = r;
	return 0;
}

static void *ct_mover(void *arg)
{
	struct ct_arg *a = arg;

	while (!*a->go)
		;
	if (a->len) {
		for (int tries = 0; ct_move(a, a->dst, a->src, a->len) && tries < 1000; tries++)
			sched_yield();
		return NULL;
	}
	for (size_t i = a->first; i < a->end; i += a->stride)
		for (int tries = 0; ct_move(a, a->dst + i * pg, a->src + i * pg, pg) &&
		     tries < 1000; tries++)
			sched_yield();
	return NULL;
}

/*
 * what user space saw, summed over the movers; a[0]'s EBUSY counts are
 * also given apart (the PMD mover of contend_pmd_vs_pte).  Passes with
 * no EAGAIN, no other error and at most busy_per_mille EBUSY per 1000
 * moves, plus busy_free.
 */
static int ct_report(const char *what, long rounds, struct ct_arg *a, int n,
		     long busy_free, long busy_per_mille)
{
	long moves = 0, busy = 0, again = 0, other = 0;
	struct mv fo = { 0, 0, 0 };

	for (int i = 0; i < n; i++) {
		moves += a[i].moves;
		busy += a[i].busy;
		again += a[i].again;
		if (a[i].other && !other)
			fo = a[i].first_other;
		other += a[i].other;
	}
	ktap_diag("%s: %ld rounds, %ld moves: %ld EBUSY (%ld by the first mover), %ld EAGAIN, %ld other errors",
		  what, rounds, moves, busy, a[0].busy, again, other);
	if (other)
		ktap_diag("first other error: ret %d errno %s move %s", fo.ret,
			  ename(fo.err), mvstr(fo.move));
	if (busy * 1000 > busy_free * 1000 + moves * busy_per_mille || again || other) {
		ktap_diag("expected every move done at once, but for %ld EBUSY and %ld per 1000 moves (as 6.12: contention on a large folio is retried in the kernel)",
			  busy_free, busy_per_mille);
		return -1;
	}
	return 0;
}

/*
 * contend_pte_mapped_thp: a PTE-mapped THP (PMD split by MADV_DONTNEED of
 * its last page); 4 threads start together and move its pages one by one,
 * interleaved (thread t: pages t, t + 4, ...), so that all of them meet
 * the one large folio, which has to be locked and split.  As 6.12
 * (measured: 0 EBUSY, 0 EAGAIN in 600 moves): every move succeeds at
 * once; the lock of a large folio held by another mover is retried
 * inside the kernel.  (v2: EBUSY.)  Counts over 10 s of rounds, each
 * with a fresh THP of which the first 16 pages are moved.
 */
static int t_contend_pte_mapped_thp(void)
{
	struct ct_arg a[CT_THREADS];
	long rounds = 0;
	int fails = 0;
	double t0 = now_s();

	memset(a, 0, sizeof(a));
	while (now_s() - t0 < CT_SECONDS && !fails) {
		volatile int go = 0;
		pthread_t t[CT_THREADS];
		struct hp h;
		size_t n;

		HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 1));
		HP_TRY(ct_make_thp(&h, 245));
		if (madvise(h.src + h.H - pg, pg, MADV_DONTNEED))
			goto fail;
		n = CT_PAGES;
		for (int i = 0; i < CT_THREADS; i++) {
			a[i].ufd = h.ufd;
			a[i].dst = h.dst;
			a[i].src = h.src;
			a[i].first = i;
			a[i].stride = CT_THREADS;
			a[i].end = n;
			a[i].go = &go;
			pthread_create(&t[i], NULL, ct_mover, &a[i]);
		}
		go = 1;
		for (int i = 0; i < CT_THREADS; i++)
			pthread_join(t[i], NULL);
		if (uffd_unreg(h.ufd, h.dst, h.H) ||
		    ct_check("dst", h.dst, n, 245, 0) ||
		    ct_check("src", h.src, n, 0, 0) ||
		    ct_check("src (not moved)", h.src + n * pg, h.H / pg - 1 - n, 245, n))
			fails++;
		hp_teardown(&h);
		rounds++;
	}
	if (ct_report("4 movers on one PTE-mapped THP", rounds, a, CT_THREADS, 0, 0))
		fails++;
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	return KTAP_FAIL;
}

/*
 * contend_pmd_vs_pte: a PMD-mapped THP; one thread moves all of it (a
 * PMD move, len H, aligned) while two others each move one of its pages
 * elsewhere (which splits the PMD and the folio); all with
 * ALLOW_SRC_HOLES, so whoever comes second to a page sees a hole, not
 * ENOENT.  As 6.12: every move succeeds at once, no EAGAIN and no
 * EBUSY but a rare one (see CT_PMD_BUSY_FREE; the PMD mover waits for
 * the folio lock), and no EFAULT from a PMD
 * classified without its lock while it is being split; every page ends
 * up exactly once at one of its destinations.  (v2: EBUSY.)  Counts over
 * 10 s of rounds.
 */
static int t_contend_pmd_vs_pte(void)
{
	struct ct_arg a[3];
	long rounds = 0, pte_won = 0;
	int fails = 0;
	double t0 = now_s();

	memset(a, 0, sizeof(a));
	while (now_s() - t0 < CT_SECONDS && !fails) {
		volatile int go = 0;
		pthread_t t[3];
		size_t k[2], n;
		char *dst2;
		struct hp h;

		HP_TRY(hp_setup(&h, 0, MADV_HUGEPAGE, 1));
		HP_TRY(ct_make_thp(&h, 246));
		n = h.H / pg;
		k[0] = 1 + (size_t)rounds * 37 % (n - 1);
		k[1] = (k[0] + n / 2) % n;
		dst2 = carve(h.src + 4 * h.H, 2 * pg, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS);
		if (!dst2 || uffd_reg(h.ufd, dst2, 2 * pg, NULL))
			goto fail;
		for (int i = 0; i < 3; i++) {
			a[i].ufd = h.ufd;
			a[i].mode = UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES;
			a[i].go = &go;
			a[i].dst = i ? dst2 + (i - 1) * pg : h.dst;
			a[i].src = i ? h.src + k[i - 1] * pg : h.src;
			a[i].len = i ? pg : h.H;
		}
		for (int i = 0; i < 3; i++)
			pthread_create(&t[i], NULL, ct_mover, &a[i]);
		go = 1;
		for (int i = 0; i < 3; i++)
			pthread_join(t[i], NULL);
		if (uffd_unreg(h.ufd, h.dst, h.H) || uffd_unreg(h.ufd, dst2, 2 * pg))
			goto fail;
		for (size_t p = 0; p < n && !fails; p++) {
			int j = p == k[0] ? 0 : p == k[1] ? 1 : -1;
			int at_dst2 = j >= 0 && !check_zero_quiet(h.dst + p * pg, pg);

			pte_won += at_dst2;
			if (ct_check(at_dst2 ? "dst2" : "dst", at_dst2 ? dst2 + j * pg : h.dst + p * pg,
				     1, 246, p) ||
			    (j >= 0 && ct_check(at_dst2 ? "dst" : "dst2",
						at_dst2 ? h.dst + p * pg : dst2 + j * pg, 1, 0, p)))
				fails++;
		}
		if (ct_check("src", h.src, n, 0, 0))
			fails++;
		hp_teardown(&h);
		rounds++;
	}
	ktap_diag("%ld of %ld single pages went to the page movers", pte_won, 2 * rounds);
	if (ct_report("a PMD move against two page moves of the same THP", rounds, a, 3,
		      CT_PMD_BUSY_FREE, CT_PMD_BUSY_PER_MILLE))
		fails++;
	return fails ? KTAP_FAIL : KTAP_PASS;
fail:
	return KTAP_FAIL;
}

/*
 * race_swapoff_loop: as race_swapoff, on the loop device (swap through
 * the swap cache), counting what user space sees: 16 pages paged out and
 * moved back and forth while swap on the loop device is turned off and
 * on.  As 6.12: every move succeeds at once; a swap device that is going
 * away (get_swap_device() failing) is retried inside the kernel, never
 * EAGAIN to user space.  (v2: EAGAIN, in a window no run has hit so
 * far: see the README.)  10 s.
 */
static int t_race_swapoff_loop(void)
{
	const size_t n = 16;
	struct so_arg so = { 0 };
	char dev[32];
	struct pair pr;
	pthread_t t;
	long moves = 0, again = 0, swapped = 0;
	int fails = 0, dir = 0;
	double t0;

	SWAP_TRY(swap_use(SWK_LOOP));
	loop_name(dev, sizeof(dev), sws->loopnr);
	so.dev = dev;
	so.size = LOOP_SWAP_SIZE;
	if (pair_setup(&pr, n, 1))
		goto fail;
	madvise(pr.src, pr.len, MADV_NOHUGEPAGE);
	madvise(pr.dst, pr.len, MADV_NOHUGEPAGE);
	fill(pr.src, pr.len, 247);
	if (uffd_reg(pr.ufd, pr.src, pr.len, NULL))
		goto fail;
	so.ballast_len = 2048 * pg;
	so.ballast = mmap(NULL, so.ballast_len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (so.ballast == MAP_FAILED)
		goto fail;
	madvise(so.ballast, so.ballast_len, MADV_NOHUGEPAGE);
	fill(so.ballast, so.ballast_len, 248);
	if (pthread_create(&t, NULL, so_cycler, &so))
		goto fail;
	t0 = now_s();
	while (now_s() - t0 < CT_SECONDS && !fails) {
		char *from = dir ? pr.dst : pr.src, *to = dir ? pr.src : pr.dst;
		size_t done = 0;
		int tries = 0;

		madvise(from, pr.len, MADV_PAGEOUT);
		swapped += n_swapped(from, n);
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
	ktap_diag("%ld moves of 16 pages (%ld swap entries among them), %ld EAGAIN, %ld swapoff/swapon cycles of %s (%ld errors)",
		  moves, swapped, again, so.cycles, dev, so.errs);
	if (so.errs)
		fails++;
	if (again) {
		ktap_diag("expected no EAGAIN (as 6.12: a swapoff racing the move is retried in the kernel)");
		fails++;
	}
	if (check_pat("ballast", so.ballast, so.ballast_len, 248))
		fails++;
	if (uffd_unreg(pr.ufd, pr.src, pr.len) || uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (check_pat("data", dir ? pr.dst : pr.src, pr.len, 247))
		fails++;
	munmap(so.ballast, so.ballast_len);
	return pair_end(&pr, fails);
fail:
	so.stop = 1;
	return pair_end(&pr, 1);
}

#endif /* UFFD_MOVE_RACE_H */
