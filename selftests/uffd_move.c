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
#include "uffd_move_common.h"
#include "uffd_move_thp.h"
#include "uffd_move_swap.h"
#include "uffd_move_api.h"
#include "uffd_move_pages.h"
#include "uffd_move_race.h"
#include "uffd_move_cov.h"

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
#define N_HUGETLB (1U << 6)	/* hugetlbfs, HUGETLB_NEED huge pages free (reserved here) */
#define N_THROWAWAY (1U << 7)	/* a machine booted for the run only (harm lasts to reboot) */

/* Written by the init of orch's own guests (orchestrator/targets/rootfs.py). */
#define THROWAWAY_MARK "/run/orch-throwaway-guest"

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
	if ((needs & N_THROWAWAY) && access(THROWAWAY_MARK, F_OK))
		return "not a guest booted for this run (" THROWAWAY_MARK " absent): the case harms the running kernel until reboot";
	if ((needs & N_HUGETLB) && !hugetlb_size())
		return "no Hugepagesize in /proc/meminfo: CONFIG_HUGETLBFS not built";
	if (needs & N_HUGETLB)
		return hugetlb_reserve(HUGETLB_NEED);	/* NULL, or why not */
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
	{ "thp_madv_free_move", t_thp_madv_free_move, N_MOVE | N_THP, 0 },
	{ "madv_free_pte_move", t_madv_free_pte_move, N_MOVE, 0 },
	{ "contend_pte_mapped_thp", t_contend_pte_mapped_thp, N_MOVE | N_THP, 60 },
	{ "contend_pmd_vs_pte", t_contend_pmd_vs_pte, N_MOVE | N_THP, 60 },
	{ "race_swapoff_loop", t_race_swapoff_loop, N_MOVE | N_LOOP, 60 },
	{ "eagain_event_unreadable_arg", t_eagain_event_unreadable_arg, N_MOVE, 0 },
	{ "thp_pte_mapped_unsplittable", t_thp_pte_mapped_unsplittable, N_MOVE | N_THP, 0 },
	{ "hwpoison_src_efault", t_hwpoison_src_efault, N_MOVE | N_THROWAWAY, 0 },
	{ "einval_src_hugetlb", t_einval_src_hugetlb, N_MOVE | N_HUGETLB, 0 },
	{ "einval_dst_hugetlb", t_einval_dst_hugetlb, N_MOVE | N_HUGETLB, 0 },
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
	/* huge pages reserved for the hugetlb cases: given back */
	hugetlb_restore();
	return ret;
}

