/* SPDX-License-Identifier: GPL-2.0 */
/*
 * uffd_move_api.h - the ABI, argument and VMA checks, the values written
 * back, pending non-cooperative events, holes and partial progress.
 *
 * Part of uffd_move.c (one test binary; orch builds each .c file here
 * as one program, so the themes are headers included by it).
 */
#ifndef UFFD_MOVE_API_H
#define UFFD_MOVE_API_H

#include "uffd_move_common.h"

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

/* ------------------------------------------------------------------ */
/* hugetlb VMAs: refused on either side                                 */

/*
 * Layout: [hugetlb H][gap H][anon H] in one PROT_NONE reservation, both
 * H-aligned (H: the default huge page size), so that a PMD-sized move
 * between them would be possible if either side were allowed.  `share`:
 * MAP_PRIVATE (anonymous hugetlb, the kind that has an anon_vma and looks
 * most like anonymous memory) or MAP_SHARED.  The runner reserved the
 * huge pages (N_HUGETLB).
 */
struct hpair {
	int ufd;
	char *base, *huge, *anon;
	size_t total, H;
};

static void hpair_teardown(struct hpair *h)
{
	if (h->ufd >= 0)
		close(h->ufd);
	if (h->base)
		munmap(h->base, h->total);
	h->ufd = -1;
	h->base = NULL;
}

static int hpair_setup(struct hpair *h, int share)
{
	memset(h, 0, sizeof(*h));
	h->ufd = -1;
	h->H = hugetlb_size();
	if (!h->H) {
		ktap_diag("no Hugepagesize in /proc/meminfo");
		return -1;
	}
	h->total = 4 * h->H;
	h->base = mmap(NULL, h->total, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (h->base == MAP_FAILED) {
		ktap_diag("reserve %zu MiB failed: %s", h->total >> 20, ename(errno));
		h->base = NULL;
		return -1;
	}
	h->huge = (char *)(((uintptr_t)h->base + h->H - 1) & ~(uintptr_t)(h->H - 1));
	h->anon = h->huge + 2 * h->H;
	if (!carve(h->huge, h->H, PROT_READ | PROT_WRITE,
		   share | MAP_ANONYMOUS | MAP_HUGETLB) ||
	    !carve(h->anon, h->H, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS))
		return -1;
	h->ufd = uffd_move_fd();
	return h->ufd < 0 ? -1 : 0;
}

/*
 * The moves both cases try, hugetlb on one side: the whole huge page
 * and one base page inside it, with and without ALLOW_SRC_HOLES.  All
 * are EINVAL with move = -EINVAL (the VMA is not private anonymous),
 * and nothing changes: the data stays, the anon side stays a hole if it
 * was one, no VMA is split or merged.
 */
static int hugetlb_moves(struct hpair *h, char *dst, char *src,
			 const char *what)
{
	static const __u64 modes[] = { 0, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES };
	int fails = 0, c0 = maps_count((uintptr_t)h->base,
				       (uintptr_t)(h->base + h->total));
	char msg[160];

	for (size_t m = 0; m < 2; m++) {
		snprintf(msg, sizeof(msg), "%s, %zu kB, mode 0x%llx", what,
			 h->H >> 10, (unsigned long long)modes[m]);
		if (expect_fail(msg, do_move(h->ufd, dst, src, h->H, modes[m]),
				EINVAL, 0))
			fails++;
		snprintf(msg, sizeof(msg), "%s, one page at +%zu, mode 0x%llx",
			 what, pg, (unsigned long long)modes[m]);
		if (expect_fail(msg, do_move(h->ufd, dst + pg, src + pg, pg,
					     modes[m]), EINVAL, 0))
			fails++;
	}
	if (maps_count((uintptr_t)h->base, (uintptr_t)(h->base + h->total)) != c0) {
		ktap_diag("%s: VMA count in the layout changed from %d", what, c0);
		fails++;
	}
	return fails;
}

static const char *share_name(int share)
{
	return share == MAP_SHARED ? "MAP_SHARED" : "MAP_PRIVATE";
}

static int t_einval_src_hugetlb(void)
{
	static const int shares[] = { MAP_PRIVATE, MAP_SHARED };
	struct hpair h;
	int fails = 0;
	char what[96];

	for (size_t i = 0; i < 2; i++) {
		if (hpair_setup(&h, shares[i])) {
			hpair_teardown(&h);
			return KTAP_FAIL;
		}
		if (uffd_reg(h.ufd, h.anon, h.H, NULL)) {
			fails++;
			hpair_teardown(&h);
			continue;
		}
		fill(h.huge, h.H, 60 + i);	/* faults one huge page */
		snprintf(what, sizeof(what), "UFFDIO_MOVE from a %s|MAP_HUGETLB src",
			 share_name(shares[i]));
		ktap_diag("src: %s|MAP_HUGETLB at %p (%zu kB pages), dst anon registered MISSING",
			  share_name(shares[i]), (void *)h.huge, h.H >> 10);
		fails += hugetlb_moves(&h, h.anon, h.huge, what);
		if (check_pat("hugetlb src", h.huge, h.H, 60 + i))
			fails++;
		if (resident(h.anon) != 0 || resident(h.anon + pg) != 0) {
			ktap_diag("dst populated although every move failed");
			fails++;
		}
		hpair_teardown(&h);
	}
	return fails ? KTAP_FAIL : KTAP_PASS;
}

/*
 * dst hugetlb: registered MISSING (6.1 and 6.12 accept hugetlb ranges);
 * its register reply must not offer UFFDIO_MOVE (UFFD_API_RANGE_IOCTLS_BASIC).
 */
static int t_einval_dst_hugetlb(void)
{
	static const int shares[] = { MAP_PRIVATE, MAP_SHARED };
	const __u64 bit = (__u64)1 << _UFFDIO_MOVE;
	struct hpair h;
	__u64 ioctls = 0;
	int fails = 0;
	char what[96];

	for (size_t i = 0; i < 2; i++) {
		if (hpair_setup(&h, shares[i])) {
			hpair_teardown(&h);
			return KTAP_FAIL;
		}
		if (uffd_reg(h.ufd, h.huge, h.H, &ioctls)) {
			fails++;
			hpair_teardown(&h);
			continue;
		}
		ktap_diag("dst: %s|MAP_HUGETLB at %p (%zu kB pages) registered MISSING, ioctls 0x%llx",
			  share_name(shares[i]), (void *)h.huge, h.H >> 10,
			  (unsigned long long)ioctls);
		if (ioctls & bit) {
			ktap_diag("UFFDIO_REGISTER(hugetlb) ioctls: expected bit %d (_UFFDIO_MOVE) clear",
				  _UFFDIO_MOVE);
			fails++;
		}
		fill(h.anon, h.H, 62 + i);
		snprintf(what, sizeof(what), "UFFDIO_MOVE into a %s|MAP_HUGETLB dst",
			 share_name(shares[i]));
		fails += hugetlb_moves(&h, h.huge, h.anon, what);
		if (check_pat("anon src", h.anon, h.H, 62 + i))
			fails++;
		if (resident(h.huge) != 0) {
			ktap_diag("hugetlb dst populated although every move failed");
			fails++;
		}
		hpair_teardown(&h);
	}
	return fails ? KTAP_FAIL : KTAP_PASS;
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
 * through a huge page).  As 6.12 (measured): EEXIST in both modes.
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
 * readable but read-only: as 6.12 (measured) the move is done,
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

/*
 * eagain_event_unreadable_arg: while a REMOVE event is pending, a call
 * whose struct cannot be read: (1) its first 32 bytes in a PROT_NONE
 * page, "move" in a writable one; (2) a NULL argument.  As 6.12
 * (measured): mmap_changing is tested before the struct is read, so (1)
 * gives -1/EAGAIN with move = -EAGAIN written, and (2) -1/EFAULT ("move"
 * cannot be written either).  (v2 read the struct first: EFAULT for (1).)
 */
static int t_eagain_event_unreadable_arg(void)
{
	struct uffdio_move *um;
	struct pair pr;
	struct dn_arg a;
	struct uffd_msg msg;
	struct pollfd pf;
	pthread_t t;
	char *two = MAP_FAILED;
	int fails = 0, fd, r1, e1, r2, e2;
	__s64 mv1;

	if (pair_setup(&pr, 2, 0))
		goto fail;
	fd = uffd_new(UFFD_FEATURE_MOVE | UFFD_FEATURE_EVENT_REMOVE, NULL);
	if (fd < 0)
		goto fail;
	close(pr.ufd);
	pr.ufd = fd;
	two = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (two == MAP_FAILED)
		goto fail;
	/* the struct ends 8 bytes into the second page: "move" is there */
	um = (struct uffdio_move *)(two + 2 * pg - pg - 32);
	um->move = MOVE_SENTINEL;
	if (mprotect(two, pg, PROT_NONE))
		goto fail;
	fill(pr.src, pg, 249);
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
		errno = 0;
		r1 = ioctl(pr.ufd, UFFDIO_MOVE, um);
		e1 = r1 < 0 ? errno : 0;
		mv1 = um->move;
		errno = 0;
		r2 = ioctl(pr.ufd, UFFDIO_MOVE, NULL);
		e2 = r2 < 0 ? errno : 0;
		ktap_diag("struct unreadable, move writable: ret %d errno %s move %s",
			  r1, ename(e1), mvstr(mv1));
		ktap_diag("NULL argument: ret %d errno %s", r2, ename(e2));
		if (r1 != -1 || e1 != EAGAIN || mv1 != -EAGAIN) {
			ktap_diag("unreadable struct: expected -1/EAGAIN, move -EAGAIN (event tested first, as 6.12)");
			fails++;
		}
		if (r2 != -1 || e2 != EFAULT) {
			ktap_diag("NULL argument: expected -1/EFAULT (move cannot be written)");
			fails++;
		}
	}
	if (uffd_get_msg(pr.ufd, &msg, 5000) != 1)
		fails++;
	pthread_join(t, NULL);
	errno = 0;
	r1 = ioctl(pr.ufd, UFFDIO_MOVE, um);
	e1 = r1 < 0 ? errno : 0;
	if (r1 != -1 || e1 != EFAULT) {
		ktap_diag("unreadable struct, no event pending: expected -1/EFAULT, got ret %d errno %s",
			  r1, ename(e1));
		fails++;
	}
	munmap(two, 2 * pg);
	return pair_end(&pr, fails);
fail:
	if (two != MAP_FAILED)
		munmap(two, 2 * pg);
	return pair_end(&pr, 1);
}

#endif /* UFFD_MOVE_API_H */
