/* SPDX-License-Identifier: GPL-2.0 */
/*
 * uffd_move_pages.h - moving small pages: data, the zero page, exclusivity
 * (fork, KSM), pins and references, fault-driven moves, rmap after a
 * move, the bits of the moved entry.
 *
 * Part of uffd_move.c (one test binary; orch builds each .c file here
 * as one program, so the themes are headers included by it).
 */
#ifndef UFFD_MOVE_PAGES_H
#define UFFD_MOVE_PAGES_H

#include "uffd_move_common.h"

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
/* exclusivity: fork, MADV_DONTFORK, KSM                                 */


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
 * through vmsplice().  As 6.12 (measured): the page moves; the
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
 * one page.  As 6.12 (measured): moved (pages are taken in order,
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
/* the dirty bit of a moved PTE: MADV_FREE, move, reclaim               */

#ifndef MADV_FREE
#define MADV_FREE 8
#endif

/*
 * madv_free_pte_move: 4 small pages MADV_FREE'd (clean, lazily freeable),
 * moved by PTE, then paged out at dst.  As 6.12 (measured): a moved PTE
 * keeps the source's dirty bit, so the clean pages are discarded by
 * reclaim and dst reads zero, unlike a moved PMD (thp_madv_free_move).
 * A page written after MADV_FREE (dirty again) keeps its data.
 */
static int t_madv_free_pte_move(void)
{
	const size_t n = 4;
	struct pair pr;
	int fails = 0;

	if (pair_setup(&pr, n, 1))
		goto fail;
	madvise(pr.src, pr.len, MADV_NOHUGEPAGE);
	madvise(pr.dst, pr.len, MADV_NOHUGEPAGE);
	pin_cpu();
	fill(pr.src, pr.len, 243);
	lru_drain_all_cpus();
	if (madvise(pr.src, pr.len, MADV_FREE)) {
		ktap_diag("madvise(MADV_FREE) failed: %s", ename(errno));
		goto fail;
	}
	/* page 3 written again: dirty, no longer lazily freeable */
	fill(pr.src + 3 * pg, pg, 244);
	lru_drain_all_cpus();
	if (expect_moved("PTE move of MADV_FREE'd pages",
			 do_move(pr.ufd, pr.dst, pr.src, pr.len, 0), pr.len))
		fails++;
	if (uffd_unreg(pr.ufd, pr.dst, pr.len))
		goto fail;
	if (madvise(pr.dst, pr.len, MADV_PAGEOUT)) {
		ktap_diag("madvise(MADV_PAGEOUT) failed: %s", ename(errno));
		goto fail;
	}
	for (size_t i = 0; i < 3; i++) {
		int zero = !check_zero_quiet(pr.dst + i * pg, pg);

		ktap_diag("dst page %zu (clean, moved) after MADV_PAGEOUT: %s", i,
			  zero ? "discarded (reads zero)" : "kept");
		if (!zero) {
			ktap_diag("expected it discarded: a moved PTE keeps the clean bit (as 6.12)");
			fails++;
		}
	}
	if (check_pat("dst page 3 (written after MADV_FREE)", pr.dst + 3 * pg, pg, 244))
		fails++;
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}

#endif /* UFFD_MOVE_PAGES_H */
