// SPDX-License-Identifier: GPL-2.0
/*
 * vma_merge - anonymous VMA merge scenarios from the linux-mm thread on
 * anon vm_pgoff ("RFC for new feature to move pages from one vma to
 * another without split", April 2023), each checked against the exact VMA
 * layout read from /proc/self/maps.
 *
 * Background: do_mmap() gives a private anonymous mapping
 *	pgoff = addr >> PAGE_SHIFT		(mm/mmap.c, Linux 6.1)
 * i.e. the whole address space is one virtual "anon file" and a VMA's
 * pgoff is its offset in it.  Two neighbouring anon VMAs therefore always
 * satisfy the file-like merge conditions
 *	can_vma_merge_before(next): next->vm_pgoff == pgoff + pglen
 *	can_vma_merge_after(prev):  prev->vm_pgoff + vma_pages(prev) == pgoff
 * and merge, as long as their flags match and is_mergeable_anon_vma()
 * accepts their anon_vmas.  A kernel that sets pgoff = 0 for anon mmaps
 * (Peter Xu's experiment in that thread) breaks both conditions: the
 * merge tests below then fail and report how many VMAs they found.
 *
 * /proc/self/maps prints 0 in the offset column of anonymous VMAs
 * (show_map_vma() in fs/proc/task_mmu.c only fills pgoff when vma->vm_file
 * is set), so vm_pgoff cannot be read directly; the mremap tests observe it
 * indirectly instead (copy_vma() re-bases pgoff only for unfaulted VMAs).
 *
 * Layout control: each test reserves a PROT_NONE private anon region and
 * places its mappings inside it with MAP_FIXED.  The leftover PROT_NONE
 * pieces lack VM_READ|VM_WRITE|VM_ACCOUNT, so is_mergeable_vma() (flags
 * must be equal) never lets them merge with the read-write mappings under
 * test, and no other mapping can appear inside the reservation.  Each test
 * runs in a fresh forked child (see ktap.h); it creates all of its
 * mappings after the fork, so their anon_vma_chains are singular like in a
 * freshly exec'd process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "ktap.h"

#ifndef MREMAP_FIXED
#define MREMAP_FIXED 2
#endif
#ifndef MREMAP_MAYMOVE
#define MREMAP_MAYMOVE 1
#endif

static unsigned long psz;

/* ------------------------------------------------------------------ */
/* /proc/self/maps parser                                              */

struct vma {
	unsigned long start, end;
	char perms[8];
	unsigned long long offset;
	char path[128];
};

#define MAX_VMAS 32
static char maps_buf[1 << 20];

/*
 * Fill out[] with the VMAs of this process that intersect [lo, hi),
 * in address order.  Returns the number found (at most max) or -1.
 */
static int maps_in_range(unsigned long lo, unsigned long hi,
			 struct vma *out, int max)
{
	size_t used = 0;
	ssize_t n;
	char *line, *next;
	int fd, count = 0;

	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ktap_diag("open /proc/self/maps: %s", strerror(errno));
		return -1;
	}
	while (used < sizeof(maps_buf) - 1) {
		n = read(fd, maps_buf + used, sizeof(maps_buf) - 1 - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ktap_diag("read /proc/self/maps: %s", strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	close(fd);
	maps_buf[used] = '\0';

	for (line = maps_buf; line && *line; line = next) {
		struct vma v;
		char *p, *end;
		int i;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';

		memset(&v, 0, sizeof(v));
		v.start = strtoul(line, &end, 16);
		if (*end != '-')
			goto bad;
		v.end = strtoul(end + 1, &end, 16);
		if (*end != ' ')
			goto bad;
		p = end + 1;
		for (i = 0; i < 4 && p[i] && p[i] != ' '; i++)
			v.perms[i] = p[i];
		if (i != 4 || p[4] != ' ')
			goto bad;
		p += 5;
		v.offset = strtoull(p, &end, 16);
		if (*end != ' ')
			goto bad;
		p = end + 1;
		/* dev and inode */
		p = strchr(p, ' ');
		if (!p)
			goto bad;
		strtoul(p + 1, &end, 10);
		p = end;
		while (*p == ' ')
			p++;
		snprintf(v.path, sizeof(v.path), "%s", p);

		if (v.end <= lo || v.start >= hi)
			continue;
		if (count < max)
			out[count] = v;
		count++;
		continue;
bad:
		ktap_diag("cannot parse /proc/self/maps line: %s", line);
		return -1;
	}
	if (count > max) {
		ktap_diag("more than %d VMAs in range, only %d kept", max, max);
		count = max;
	}
	return count;
}

/* ------------------------------------------------------------------ */
/* Expected layouts                                                    */

/* A VMA expected at [base + s pages, base + e pages) with given perms. */
struct span {
	long s, e;
	const char *perms;
};

struct layout {
	const char *rule;	/* kernel rule that predicts this layout */
	int n;
	struct span sp[4];
};

static void describe_found(char *dst, size_t size, unsigned long base,
			   const struct vma *v, int n)
{
	size_t off = 0;
	int i;

	dst[0] = '\0';
	for (i = 0; i < n && off < size; i++) {
		long s = ((long)v[i].start - (long)base) / (long)psz;
		long e = ((long)v[i].end - (long)base) / (long)psz;

		off += (size_t)snprintf(dst + off, size - off,
				"%s%lx-%lx %s [base%+ldp,base%+ldp)%s%s",
				i ? ", " : "", v[i].start, v[i].end,
				v[i].perms, s, e, v[i].path[0] ? " " : "",
				v[i].path);
	}
}

static void describe_layout(char *dst, size_t size, const struct layout *l)
{
	size_t off = 0;
	int i;

	dst[0] = '\0';
	for (i = 0; i < l->n && off < size; i++)
		off += (size_t)snprintf(dst + off, size - off,
				"%s[base%+ldp,base%+ldp) %s", i ? ", " : "",
				l->sp[i].s, l->sp[i].e, l->sp[i].perms);
}

static int layout_matches(unsigned long base, const struct layout *l,
			  const struct vma *v, int n)
{
	int i;

	if (n != l->n)
		return 0;
	for (i = 0; i < n; i++) {
		if (v[i].start != base + (unsigned long)l->sp[i].s * psz ||
		    v[i].end != base + (unsigned long)l->sp[i].e * psz)
			return 0;
		if (l->sp[i].perms && strcmp(v[i].perms, l->sp[i].perms))
			return 0;
	}
	return 1;
}

/*
 * Read the VMAs intersecting [base + lo pages, base + hi pages) and check
 * they match one of the nalt acceptable layouts.  On mismatch print what
 * was expected and exactly what was found.  Returns 1 on match.
 */
static int check_layout(const char *what, unsigned long base, long lo,
			long hi, const struct layout *alt, int nalt)
{
	struct vma v[MAX_VMAS];
	char found[2048], exp[512];
	int n, i;

	n = maps_in_range(base + (unsigned long)lo * psz,
			  base + (unsigned long)hi * psz, v, MAX_VMAS);
	if (n < 0)
		return 0;
	for (i = 0; i < nalt; i++) {
		if (layout_matches(base, &alt[i], v, n)) {
			if (alt[i].rule)
				ktap_diag("%s: %d VMA%s as expected (%s)", what,
					  n, n == 1 ? "" : "s", alt[i].rule);
			return 1;
		}
	}
	describe_found(found, sizeof(found), base, v, n);
	ktap_diag("%s: unexpected VMA layout in [base%+ldp,base%+ldp), base=%lx, page=%lu",
		  what, lo, hi, base, psz);
	for (i = 0; i < nalt; i++) {
		describe_layout(exp, sizeof(exp), &alt[i]);
		ktap_diag("  expected %d VMA%s: %s%s%s%s", alt[i].n,
			  alt[i].n == 1 ? "" : "s", exp,
			  alt[i].rule ? " (rule: " : "",
			  alt[i].rule ? alt[i].rule : "",
			  alt[i].rule ? ")" : "");
	}
	ktap_diag("  found %d: %s", n, n ? found : "(none)");
	return 0;
}

/* Convenience: a single expected layout. */
static int expect1(const char *what, unsigned long base, long lo, long hi,
		   const struct layout *l)
{
	return check_layout(what, base, lo, hi, l, 1);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static int kver_major, kver_minor;
static char kver_release[65];

static void read_kernel_version(void)
{
	struct utsname u;

	if (uname(&u) == 0) {
		snprintf(kver_release, sizeof(kver_release), "%s", u.release);
		if (sscanf(u.release, "%d.%d", &kver_major, &kver_minor) != 2)
			kver_major = kver_minor = 0;
	}
}

static int kver_ge(int major, int minor)
{
	return kver_major > major ||
	       (kver_major == major && kver_minor >= minor);
}

static int kver_is(int major, int minor)
{
	return kver_major == major && kver_minor == minor;
}

/* Reserve npages of PROT_NONE address space; returns base or 0. */
static unsigned long reserve(long npages)
{
	void *p = mmap(NULL, (size_t)npages * psz, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		ktap_diag("reserve %ld pages: mmap failed: %s", npages,
			  strerror(errno));
		return 0;
	}
	return (unsigned long)p;
}

/* Private anonymous RW mapping at base + pg pages, npages long. */
static int map_anon(unsigned long base, long pg, long npages)
{
	unsigned long addr = base + (unsigned long)pg * psz;
	void *p = mmap((void *)addr, (size_t)npages * psz,
		       PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	if (p == MAP_FAILED || (unsigned long)p != addr) {
		ktap_diag("mmap anon MAP_FIXED at %lx (%ld pages) failed: %s",
			  addr, npages, p == MAP_FAILED ? strerror(errno)
							: "wrong address");
		return -1;
	}
	return 0;
}

/* Write one byte per page: tag + page index.  Allocates the anon_vma. */
static void fault_in(unsigned long base, long pg, long npages,
		     unsigned char tag)
{
	long i;

	for (i = 0; i < npages; i++)
		*(volatile unsigned char *)(base + (unsigned long)(pg + i) * psz) =
			(unsigned char)(tag + i);
}

/* Check the bytes written by fault_in(), or zero when tag == 0. */
static int check_data(const char *what, unsigned long base, long pg,
		      long npages, unsigned char tag)
{
	long i;

	for (i = 0; i < npages; i++) {
		unsigned long a = base + (unsigned long)(pg + i) * psz;
		unsigned char want = tag ? (unsigned char)(tag + i) : 0;
		unsigned char got = *(volatile unsigned char *)a;

		if (got != want) {
			ktap_diag("%s: byte at %lx (base%+ldp) is 0x%02x, expected 0x%02x",
				  what, a, pg + i, got, want);
			return 0;
		}
	}
	return 1;
}

/*
 * A file mapping for the [anon0][file][anon1] scenario: a file in /tmp
 * (unlinked right after mapping), or a memfd if /tmp is unusable.
 */
static int map_file(unsigned long base, long pg, long npages)
{
	unsigned long addr = base + (unsigned long)pg * psz;
	char path[] = "/tmp/orch_vma_merge.XXXXXX";
	size_t len = (size_t)npages * psz;
	int fd, from_tmp = 1;
	void *p;

	fd = mkstemp(path);
	if (fd < 0) {
		ktap_diag("mkstemp in /tmp failed (%s), using memfd_create",
			  strerror(errno));
		from_tmp = 0;
		fd = memfd_create("orch_vma_merge", MFD_CLOEXEC);
		if (fd < 0) {
			ktap_diag("memfd_create failed: %s", strerror(errno));
			return -1;
		}
	}
	if (ftruncate(fd, (off_t)len)) {
		ktap_diag("ftruncate: %s", strerror(errno));
		goto fail;
	}
	p = mmap((void *)addr, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED || (unsigned long)p != addr) {
		ktap_diag("mmap file MAP_FIXED at %lx failed: %s", addr,
			  p == MAP_FAILED ? strerror(errno) : "wrong address");
		goto fail;
	}
	if (from_tmp)
		unlink(path);
	close(fd);
	return 0;
fail:
	if (from_tmp)
		unlink(path);
	close(fd);
	return -1;
}

#define RW "rw-p"
#define RO "r--p"
#define NONE "---p"

#define RULE_LINEAR "anon vm_pgoff = addr>>PAGE_SHIFT, so the new VMA lines up with its neighbour and merges"

/* ------------------------------------------------------------------ */
/* 1. new anon mapping placed right before an existing one             */

/*
 * __mmap_region() (6.1) checks next first: can_vma_merge_before(next,
 * ..., pgoff + pglen) holds because next->vm_pgoff == (addr + len) >>
 * PAGE_SHIFT; the anon_vma check passes whether next is unfaulted (both
 * NULL) or faulted (next's anon_vma_chain is singular).  vma_expand()
 * then grows next downwards: one VMA.  Same on later kernels.
 */
/*
 * An existing 2-page anon VMA at page `existing`, a new 2-page one mapped at
 * page `added` right next to it (before or after): one VMA [2, 6) results.
 */
static int new_adjacent(long existing, long added,
			const char *what, int faulted)
{
	const struct layout before = { NULL, 1, { { existing, existing + 2, RW } } };
	static const struct layout merged = { RULE_LINEAR, 1, { { 2, 6, RW } } };
	unsigned long base = reserve(8);
	int ok = 1;

	if (!base)
		return KTAP_FAIL;
	if (map_anon(base, existing, 2))
		return KTAP_FAIL;
	if (faulted)
		fault_in(base, existing, 2, 0xa0);
	if (!expect1("existing anon VMA", base, existing, existing + 2, &before))
		return KTAP_FAIL;
	if (map_anon(base, added, 2))
		return KTAP_FAIL;
	ok &= expect1(what, base, 2, 6, &merged);
	ok &= check_data("existing pages", base, existing, 2, faulted ? 0xa0 : 0);
	ok &= check_data("new pages", base, added, 2, 0);
	return ok ? KTAP_PASS : KTAP_FAIL;
}

static int new_before(int faulted)
{
	return new_adjacent(4, 2, "new anon VMA mapped right before it", faulted);
}

static int t_new_before_existing_unfaulted(void) { return new_before(0); }
static int t_new_before_existing_faulted(void) { return new_before(1); }

/* ------------------------------------------------------------------ */
/* 2. new anon mapping placed right after an existing one              */

/*
 * The thread notes that merging "after" would need pgoff chosen from the
 * size of the previous VMA -- and with pgoff = addr >> PAGE_SHIFT that is
 * exactly what happens: prev->vm_pgoff + vma_pages(prev) ==
 * prev->vm_end >> PAGE_SHIFT == addr >> PAGE_SHIFT == pgoff, so
 * can_vma_merge_after(prev) holds (6.1 __mmap_region) and prev is
 * expanded upwards: one VMA.  The anon_vma check passes for an unfaulted
 * prev (both NULL) and a faulted one (singular anon_vma_chain).
 */
static int new_after(int faulted)
{
	return new_adjacent(2, 4, "new anon VMA mapped right after it", faulted);
}

static int t_new_after_existing_unfaulted(void) { return new_after(0); }
static int t_new_after_existing_faulted(void) { return new_after(1); }

/* ------------------------------------------------------------------ */
/* 3. [anon0][file][anon1], munmap the file, mmap anon into the hole   */

/*
 * Layout (pages from base): anon0 [1,3), file [3,5), anon1 [5,7); after
 * munmap(file) + mmap(anon, [3,5)) the possible results are
 *	ALL  [1,7)            one VMA
 *	NEXT [1,3) [3,7)      the hole joined anon1 only
 *	PREV [1,5) [5,7)      the hole joined anon0 only
 *
 * Linux 6.1 (__mmap_region, maple-tree version):
 *   1. next: can_vma_merge_before(anon1, flags, anon_vma=NULL, ...)
 *      is_mergeable_anon_vma(NULL, anon1->anon_vma, anon1) is true when
 *      anon1 is unfaulted (NULL == NULL) or faulted (its anon_vma_chain
 *      is singular).  So the hole first becomes "vma = anon1".
 *   2. prev: can_vma_merge_after(anon0, flags, anon1->anon_vma, ...)
 *      is_mergeable_anon_vma(anon1->anon_vma, anon0->anon_vma, anon0):
 *        - both NULL                     -> true  (NULL == NULL)
 *        - anon0 faulted, anon1 not      -> true  (anon0 chain singular)
 *        - anon1 faulted, anon0 not      -> FALSE: anon0's
 *          anon_vma_chain is empty, list_is_singular() is false, and
 *          anon1->anon_vma != NULL
 *        - both faulted (different anon_vmas: they were faulted while
 *          not adjacent)                  -> false
 *   So 6.1 gives: neither -> ALL, prev only -> ALL, next only -> NEXT,
 *   both -> NEXT.
 *
 * Linux 6.16+ (mm/vma.c, vma_merge_new_range): prev is tried first, next
 * must then have an anon_vma compatible with prev's (equal or one NULL),
 * and is_mergeable_anon_vma() lets a faulted VMA merge with an unfaulted
 * one in either direction (an unfaulted VMA has no "uncowed parents";
 * the 6.16 fix of incorrectly disallowed anonymous merges).  So:
 * neither -> ALL, prev only -> ALL, next only -> ALL, both -> PREV.
 *
 * Kernels between 6.2 and 6.15 and before 6.1 are not pinned here: the
 * expectation accepts either rule's layout and says so.
 */
static const struct layout hole_all_61 = {
	"6.1 __mmap_region: next accepted, then prev accepted with next's anon_vma; " RULE_LINEAR,
	1, { { 1, 7, RW } } };
static const struct layout hole_all_new = {
	"6.16+ vma_merge_new_range: prev and next accepted, their anon_vmas are compatible (equal or one NULL); " RULE_LINEAR,
	1, { { 1, 7, RW } } };
static const struct layout hole_next_61 = {
	"6.1 __mmap_region: hole merges with next first; prev then fails is_mergeable_anon_vma(next->anon_vma, prev->anon_vma, prev) (prev unfaulted with empty anon_vma_chain, or a different anon_vma)",
	2, { { 1, 3, RW }, { 3, 7, RW } } };
static const struct layout hole_prev_new = {
	"6.16+ vma_merge_new_range: hole merges with prev first; next is refused because prev and next have different anon_vmas",
	2, { { 1, 5, RW }, { 5, 7, RW } } };

enum { NEITHER, PREV_ONLY, NEXT_ONLY, BOTH };

static int hole_fill(int which)
{
	static const struct layout three = { NULL, 3,
		{ { 1, 3, RW }, { 3, 5, RW }, { 5, 7, RW } } };
	static const struct layout hole = { NULL, 2,
		{ { 1, 3, RW }, { 5, 7, RW } } };
	const struct layout *k61, *knew;
	struct layout alts[2];
	unsigned long base = reserve(8);
	int prev_f = which == PREV_ONLY || which == BOTH;
	int next_f = which == NEXT_ONLY || which == BOTH;
	int nalt, ok = 1;

	if (!base)
		return KTAP_FAIL;
	if (map_anon(base, 1, 2) || map_file(base, 3, 2) ||
	    map_anon(base, 5, 2))
		return KTAP_FAIL;
	if (prev_f)
		fault_in(base, 1, 2, 0xa0);
	if (next_f)
		fault_in(base, 5, 2, 0xb0);
	if (!expect1("[anon0][file][anon1]", base, 1, 7, &three))
		return KTAP_FAIL;
	if (munmap((void *)(base + 3 * psz), 2 * psz)) {
		ktap_diag("munmap file: %s", strerror(errno));
		return KTAP_FAIL;
	}
	if (!expect1("[anon0][hole][anon1]", base, 1, 7, &hole))
		return KTAP_FAIL;
	if (map_anon(base, 3, 2))
		return KTAP_FAIL;

	switch (which) {
	case NEITHER:
	case PREV_ONLY:
		k61 = &hole_all_61;
		knew = &hole_all_new;
		break;
	case NEXT_ONLY:
		k61 = &hole_next_61;
		knew = &hole_all_new;
		break;
	default:
		k61 = &hole_next_61;
		knew = &hole_prev_new;
		break;
	}
	if (kver_is(6, 1)) {
		alts[0] = *k61;
		nalt = 1;
	} else if (kver_ge(6, 16)) {
		alts[0] = *knew;
		nalt = 1;
	} else {
		ktap_diag("kernel %s: merge rule not pinned for this version, accepting the 6.1 or the 6.16+ layout",
			  kver_release);
		alts[0] = *k61;
		alts[1] = *knew;
		nalt = 2;
	}
	ok &= check_layout("anon mapped into the hole", base, 1, 7, alts,
			   nalt);
	ok &= check_data("anon0 pages", base, 1, 2, prev_f ? 0xa0 : 0);
	ok &= check_data("anon1 pages", base, 5, 2, next_f ? 0xb0 : 0);
	ok &= check_data("hole pages", base, 3, 2, 0);
	return ok ? KTAP_PASS : KTAP_FAIL;
}

static int t_hole_fill_neither_faulted(void) { return hole_fill(NEITHER); }
static int t_hole_fill_prev_faulted(void) { return hole_fill(PREV_ONLY); }
static int t_hole_fill_next_faulted(void) { return hole_fill(NEXT_ONLY); }
static int t_hole_fill_both_faulted(void) { return hole_fill(BOTH); }

/* ------------------------------------------------------------------ */
/* 4. mprotect split and re-merge                                      */

/*
 * mprotect_fixup() (6.1): making the middle page of a 3-page anon VMA
 * read-only cannot merge with anything (different flags on both sides),
 * so the VMA is split twice: 3 VMAs.  Restoring PROT_READ|PROT_WRITE calls
 * vma_merge(prev=left, middle, ...) with pgoff = middle->vm_pgoff; the
 * split kept the pieces' pgoffs contiguous, flags are equal again
 * (VM_ACCOUNT stays set across the RO period), and the anon_vmas are all
 * NULL (unfaulted) or all the same one (faulted before the split, the
 * split clones it), so case 1 of vma_merge() applies: one VMA.
 */
static int mprotect_split(int faulted)
{
	static const struct layout one = { NULL, 1, { { 2, 5, RW } } };
	static const struct layout split = {
		"mprotect of the middle page splits the VMA in three", 3,
		{ { 2, 3, RW }, { 3, 4, RO }, { 4, 5, RW } } };
	static const struct layout merged = {
		"vma_merge case 1: prev, middle and next have contiguous pgoff, equal flags and compatible anon_vmas",
		1, { { 2, 5, RW } } };
	unsigned long base = reserve(8);
	int ok = 1;

	if (!base)
		return KTAP_FAIL;
	if (map_anon(base, 2, 3))
		return KTAP_FAIL;
	if (faulted)
		fault_in(base, 2, 3, 0xc0);
	if (!expect1("3-page anon VMA", base, 2, 5, &one))
		return KTAP_FAIL;
	if (mprotect((void *)(base + 3 * psz), psz, PROT_READ)) {
		ktap_diag("mprotect(PROT_READ): %s", strerror(errno));
		return KTAP_FAIL;
	}
	if (!expect1("after mprotect(middle, PROT_READ)", base, 2, 5, &split))
		return KTAP_FAIL;
	if (mprotect((void *)(base + 3 * psz), psz, PROT_READ | PROT_WRITE)) {
		ktap_diag("mprotect(PROT_READ|PROT_WRITE): %s", strerror(errno));
		return KTAP_FAIL;
	}
	ok &= expect1("after mprotect(middle, PROT_READ|PROT_WRITE)", base,
		      2, 5, &merged);
	ok &= check_data("pages", base, 2, 3, faulted ? 0xc0 : 0);
	return ok ? KTAP_PASS : KTAP_FAIL;
}

static int t_mprotect_split_remerge_unfaulted(void) { return mprotect_split(0); }
static int t_mprotect_split_remerge_faulted(void) { return mprotect_split(1); }

/* ------------------------------------------------------------------ */
/* 5. mremap                                                           */

static int move(unsigned long base, long from, long npages, long to)
{
	void *p = mremap((void *)(base + (unsigned long)from * psz),
			 (size_t)npages * psz, (size_t)npages * psz,
			 MREMAP_MAYMOVE | MREMAP_FIXED,
			 (void *)(base + (unsigned long)to * psz));

	if (p == MAP_FAILED ||
	    (unsigned long)p != base + (unsigned long)to * psz) {
		ktap_diag("mremap base%+ldp -> base%+ldp (%ld pages) failed: %s",
			  from, to, npages,
			  p == MAP_FAILED ? strerror(errno) : "wrong address");
		return -1;
	}
	return 0;
}

/*
 * copy_vma() (6.1 mm/mmap.c): an anonymous VMA without anon_vma gets
 * pgoff = new_addr >> PAGE_SHIFT when moved, so at its destination it
 * lines up with an unfaulted anon neighbour and vma_merge() merges them.
 * With pgoff = 0 for anon mmaps the neighbour's pgoff is 0 and the moved
 * VMA's is new_addr >> PAGE_SHIFT: no merge.
 */
static int t_mremap_unfaulted_merges_at_dest(void)
{
	static const struct layout merged = {
		"copy_vma re-bases pgoff of an unfaulted anon VMA to its new address, which lines up with the neighbour",
		1, { { 4, 8, RW } } };
	static const struct layout none = { NULL, 0, { { 0, 0, NULL } } };
	unsigned long base = reserve(10);
	int ok = 1;

	if (!base)
		return KTAP_FAIL;
	if (map_anon(base, 1, 2) || map_anon(base, 6, 2))
		return KTAP_FAIL;
	if (move(base, 1, 2, 4))
		return KTAP_FAIL;
	ok &= expect1("unfaulted anon VMA moved right before another", base,
		      4, 8, &merged);
	ok &= expect1("old location", base, 1, 3, &none);
	return ok ? KTAP_PASS : KTAP_FAIL;
}

/*
 * A faulted anon VMA keeps its pgoff when moved (its pages' indices were
 * computed from it), so at the destination it does not line up with a
 * freshly mmapped neighbour.  6.1 refuses this merge already in
 * is_mergeable_anon_vma() (the unfaulted neighbour's anon_vma_chain is
 * empty); 6.16+ accepts the anon_vmas but the pgoff check fails.  Either
 * way: 2 VMAs.
 */
static int t_mremap_faulted_no_merge_at_dest(void)
{
	static const struct layout two = {
		"a faulted anon VMA keeps its old pgoff when moved, so it cannot line up with the new neighbour",
		2, { { 4, 6, RW }, { 6, 8, RW } } };
	unsigned long base = reserve(10);
	int ok = 1;

	if (!base)
		return KTAP_FAIL;
	if (map_anon(base, 1, 2) || map_anon(base, 6, 2))
		return KTAP_FAIL;
	fault_in(base, 1, 2, 0xd0);
	if (move(base, 1, 2, 4))
		return KTAP_FAIL;
	ok &= expect1("faulted anon VMA moved right before an unfaulted one",
		      base, 4, 8, &two);
	ok &= check_data("moved pages", base, 4, 2, 0xd0);
	return ok ? KTAP_PASS : KTAP_FAIL;
}

/*
 * Move the first half of a faulted 4-page anon VMA away and back.  Away,
 * the moved part is its own VMA (keeps pgoff and anon_vma).  Back at its
 * original address its pgoff lines up again with the second half, which
 * has the same anon_vma: vma_merge() (called from copy_vma) merges them
 * into one VMA again, and the data is intact.
 */
static int t_mremap_faulted_roundtrip_remerges(void)
{
	static const struct layout rest = { NULL, 1, { { 3, 5, RW } } };
	static const struct layout away = { NULL, 1, { { 8, 10, RW } } };
	static const struct layout back = {
		"moved part keeps pgoff and anon_vma, so back at its old address it merges with the rest",
		1, { { 1, 5, RW } } };
	unsigned long base = reserve(12);
	int ok = 1;

	if (!base)
		return KTAP_FAIL;
	if (map_anon(base, 1, 4))
		return KTAP_FAIL;
	fault_in(base, 1, 4, 0xe0);
	if (move(base, 1, 2, 8))
		return KTAP_FAIL;
	if (!expect1("remaining half", base, 1, 5, &rest) ||
	    !expect1("moved half", base, 8, 10, &away))
		return KTAP_FAIL;
	if (move(base, 8, 2, 1))
		return KTAP_FAIL;
	ok &= expect1("moved half back in place", base, 1, 5, &back);
	ok &= check_data("pages", base, 1, 4, 0xe0);
	return ok ? KTAP_PASS : KTAP_FAIL;
}

/* ------------------------------------------------------------------ */

static const struct ktap_case cases[] = {
	{ .name = "new_before_existing_unfaulted", .fn = t_new_before_existing_unfaulted },
	{ .name = "new_before_existing_faulted", .fn = t_new_before_existing_faulted },
	{ .name = "new_after_existing_unfaulted", .fn = t_new_after_existing_unfaulted },
	{ .name = "new_after_existing_faulted", .fn = t_new_after_existing_faulted },
	{ .name = "hole_fill_neither_faulted", .fn = t_hole_fill_neither_faulted },
	{ .name = "hole_fill_prev_faulted", .fn = t_hole_fill_prev_faulted },
	{ .name = "hole_fill_next_faulted", .fn = t_hole_fill_next_faulted },
	{ .name = "hole_fill_both_faulted", .fn = t_hole_fill_both_faulted },
	{ .name = "mprotect_split_remerge_unfaulted", .fn = t_mprotect_split_remerge_unfaulted },
	{ .name = "mprotect_split_remerge_faulted", .fn = t_mprotect_split_remerge_faulted },
	{ .name = "mremap_unfaulted_merges_at_dest", .fn = t_mremap_unfaulted_merges_at_dest },
	{ .name = "mremap_faulted_no_merge_at_dest", .fn = t_mremap_faulted_no_merge_at_dest },
	{ .name = "mremap_faulted_roundtrip_remerges", .fn = t_mremap_faulted_roundtrip_remerges },
};

int main(int argc, char **argv)
{
	psz = (unsigned long)sysconf(_SC_PAGESIZE);
	read_kernel_version();
	return ktap_run_cases(cases, KTAP_ARRAY_SIZE(cases), 20, argc, argv);
}
