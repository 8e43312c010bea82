/* SPDX-License-Identifier: GPL-2.0 */
/*
 * uffd_move_cov.h - cases for lines of the series that no test ran, found
 * with `orch run --coverage` (README "Patch coverage"); the lines still not
 * run, and why, are in the cover letter ("Patch coverage").
 */
#ifndef MADV_HWPOISON
#define MADV_HWPOISON 100
#endif

/*
 * A hardware-poisoned page at src cannot be moved: memory_failure() (here
 * injected with MADV_HWPOISON) unmaps the page and leaves a hwpoison entry
 * in the PTE, a non-swap entry, and UFFDIO_MOVE gives EFAULT for it, as
 * 6.12's move_pages_pte() does.  The next page still moves.  (The poisoned
 * page stays poisoned until reboot: N_THROWAWAY, only in a guest booted for
 * the run.)
 */
static volatile sig_atomic_t hwpoison_sigbus;

static void on_hwpoison_sigbus(int sig)
{
	(void)sig;
	hwpoison_sigbus = 1;
}

static int t_hwpoison_src_efault(void)
{
	struct sigaction sa = { .sa_handler = on_hwpoison_sigbus };
	struct pair pr;
	uint64_t ent = 0;
	int fails = 0, e;

	if (pair_setup(&pr, 2, 1))
		goto fail;
	fill(pr.src, pg, 130);
	fill(pr.src + pg, pg, 131);
	drain_lru_and_flush();	/* on the LRU: memory_failure() can unmap it */
	/*
	 * 6.12.118 sends the caller SIGBUS for the injection (measured: the
	 * case was killed by signal 7 there); 6.1.192 sends none.  Caught by
	 * a handler, as the signal is not the observable under test.
	 */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	e = madvise(pr.src, pg, MADV_HWPOISON) ? errno : 0;
	signal(SIGBUS, SIG_DFL);
	if (hwpoison_sigbus)
		ktap_diag("madvise(MADV_HWPOISON): SIGBUS to the caller (as 6.12 does)");
	if (e) {
		pair_teardown(&pr);
		if (e == EINVAL || e == ENOSYS)
			return ktap_skip_because("madvise(MADV_HWPOISON): %s: CONFIG_MEMORY_FAILURE not built",
						 ename(e));
		if (e == EPERM)
			return ktap_skip_because("madvise(MADV_HWPOISON): EPERM (needs CAP_SYS_ADMIN)");
		ktap_diag("madvise(src, MADV_HWPOISON): expected 0, got %s", ename(e));
		return KTAP_FAIL;
	}
	if (pagemap_ent(pr.src, &ent) || (ent & PM_PRESENT) || !(ent & PM_SWAP)) {
		pair_teardown(&pr);
		return ktap_skip_because("memory_failure() left the page mapped (pagemap 0x%016llx): no hwpoison entry to move",
					 (unsigned long long)ent);
	}
	if (expect_fail("UFFDIO_MOVE of a hwpoisoned src page",
			do_move(pr.ufd, pr.dst, pr.src, pg, 0), EFAULT, 0))
		fails++;
	if (resident(pr.dst) != 0) {
		ktap_diag("dst: expected unpopulated after EFAULT, got populated");
		fails++;
	}
	if (expect_moved("UFFDIO_MOVE of the next src page",
			 do_move(pr.ufd, pr.dst + pg, pr.src + pg, pg, 0), pg))
		fails++;
	else if (check_pat("dst page 1", pr.dst + pg, pg, 131))
		fails++;
	return pair_end(&pr, fails);
fail:
	return pair_end(&pr, 1);
}
