/* SPDX-License-Identifier: GPL-2.0 */
/*
 * uffd_move_swap.h - swap entries and the swap cache (zram and a loop device).
 *
 * Part of uffd_move.c (one test binary; orch builds each .c file here
 * as one program, so the themes are headers included by it).
 */
#ifndef UFFD_MOVE_SWAP_H
#define UFFD_MOVE_SWAP_H

#include "uffd_move_common.h"

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
 * swap-cache pages resident).  As 6.12 (measured): moved, data
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
 * swap entry is no longer exclusive).  As 6.12 (measured): EBUSY.
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

#endif /* UFFD_MOVE_SWAP_H */
