/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fuzz_state.h - what user space can observe of a program's memory, at a
 * checkpoint, as trace records:
 *
 *   cK.maps    the VMAs inside the arena: "start+pages perms" (in pages from
 *              the arena base), in address order: boundaries and merges;
 *   cK.vmaS    per VMA (S: its start page): smaps Rss, Private_Dirty,
 *              AnonHugePages, Swap (kB) and VmFlags (not LazyFree: it counts
 *              folios whose per-CPU LRU batch has drained, and the batch sizes
 *              differ between versions: 15 in 6.1, 31 in 6.12);
 *   cK.rR      per region: each page's pagemap bits (P present, S swapped,
 *              X exclusive, W uffd-wp, D soft-dirty) and its content (0, a
 *              pattern "vV.K" as written by `write`, or a hash), run-length
 *              encoded;
 *   cK.status  RssAnon and VmSwap of /proc/self/status, in kB, as the change
 *              since the program started.
 *
 * K is the index of the checkpoint's operation ("end" after the last one).
 * Contents are read through /proc/self/mem, only for present or swapped
 * pages: a page that is neither reads as zero, and reading it would fault
 * it in.
 */
#ifndef FUZZ_STATE_H
#define FUZZ_STATE_H

#include "fuzz_core.h"

#define PM_PRESENT	(1ULL << 63)
#define PM_SWAP		(1ULL << 62)
#define PM_UFFD_WP	(1ULL << 57)
#define PM_EXCLUSIVE	(1ULL << 56)
#define PM_SOFT_DIRTY	(1ULL << 55)
#define PATTERN_MAGIC	0x4f52ULL

struct region {
	unsigned long base;	/* address of page 0 */
	unsigned long npages;
};

static struct region regs[MAXREG];
static int nregs;
static long base_rss_anon, base_vm_swap;
/* The checkpoint's buffers: faulted in before the baseline, so they are not counted. */
static char smaps_text[1 << 18], maps_out[16384], pages_out[1 << 16];
static uint64_t pm_buf[ARENA_PAGES], page_buf[PGSZ / 8];

static uint64_t pattern_word(int val, unsigned long k, unsigned long j)
{
	return (PATTERN_MAGIC << 48) | ((uint64_t)(val & 0xff) << 40) |
	       ((uint64_t)(k & 0xfffffff) << 12) | (j & 0xfff);
}

/* A page's content as a label: "0", "v<val>.<k>", or "h<hash>". */
static void content_label(const uint64_t *w, char *out, size_t len, int *val, long *k)
{
	uint64_t h = 1469598103934665603ULL;
	int zero = 1, pat = 1;

	*val = -1;
	*k = -1;
	for (unsigned long j = 0; j < PGSZ / 8; j++) {
		if (w[j])
			zero = 0;
		h = (h ^ w[j]) * 1099511628211ULL;
	}
	if (zero) {
		snprintf(out, len, "0");
		return;
	}
	if ((w[0] >> 48) == PATTERN_MAGIC) {
		int v = (int)((w[0] >> 40) & 0xff);
		unsigned long kk = (w[0] >> 12) & 0xfffffff;

		for (unsigned long j = 0; j < PGSZ / 8 && pat; j++)
			pat = w[j] == pattern_word(v, kk, j);
		if (pat) {
			*val = v;
			*k = (long)kk;
			snprintf(out, len, "v%d.%lu", v, kk);
			return;
		}
	}
	snprintf(out, len, "h%08llx", (unsigned long long)(h & 0xffffffffULL));
}

static volatile char *rss_scratch;

/*
 * 6.1 caches each task's RSS counter updates and adds them to the mm's counters (what
 * /proc/self/status shows) only every 64 faults (SPLIT_RSS_COUNTING, which 6.12 no longer has): its
 * RssAnon and VmSwap lag by up to 64 pages, by how many depending on the faults before.
 * A zap in the task's own mm syncs them (add_mm_rss_vec): map the zero page into a
 * scratch page (no counter moves) and zap it. Harmless on kernels that count exactly.
 */
static void rss_sync(void)
{
	if (!rss_scratch) {
		rss_scratch = mmap(NULL, PGSZ, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (rss_scratch == MAP_FAILED) {
			rss_scratch = NULL;
			return;
		}
	}
	(void)rss_scratch[0];
	madvise((void *)rss_scratch, PGSZ, MADV_DONTNEED);
}

static long status_kb(const char *field)
{
	char buf[4096], *p;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, field);
	return p ? strtol(p + strlen(field), NULL, 10) : -1;
}

/* Fault in the stack a checkpoint will use: where in its page the stack starts is random
 * (ASLR), so the same depth would touch one page more or less from run to run. */
static void __attribute__((noinline)) touch_stack(void)
{
	volatile char pad[128 * 1024];

	for (size_t i = 0; i < sizeof(pad); i += 512)
		pad[i] = 0;
}

/*
 * The process's own memory, outside the arena, kept out of the status counters: no THP
 * for it (whether one is available would change RssAnon by 2 MiB from run to run), the
 * stack and the checkpoint's buffers faulted in before the baseline.
 */
static void state_baseline(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3 && perms[1] == 'w' &&
		    perms[3] == 'p' && !(s >= ARENA_BASE && s < ARENA_BASE + ARENA_PAGES * PGSZ))
			madvise((void *)s, e - s, MADV_NOHUGEPAGE);
	}
	if (f)
		fclose(f);
	memset(smaps_text, 0, sizeof(smaps_text));
	memset(maps_out, 0, sizeof(maps_out));
	memset(pages_out, 0, sizeof(pages_out));
	memset(pm_buf, 0, sizeof(pm_buf));
	memset(page_buf, 0, sizeof(page_buf));
	touch_stack();
	rss_sync();
	base_rss_anon = status_kb("RssAnon:");
	base_vm_swap = status_kb("VmSwap:");
}

static int in_arena(unsigned long a)
{
	return a >= ARENA_BASE && a < ARENA_BASE + ARENA_PAGES * PGSZ;
}

static void append(char *buf, size_t cap, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n >= cap - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, cap - n, fmt, ap);
	va_end(ap);
}

/* maps and smaps of the arena's VMAs. */
static void check_vmas(const char *ck)
{
	char *text = smaps_text, *maps = maps_out, rec[512], key[64];
	unsigned long start = 0, end = 0;
	int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC), cur = 0;
	ssize_t n, got = 0;
	long rss = 0, ahp = 0, swp = 0, pd = 0;

	maps[0] = 0;
	if (fd < 0) {
		emit(ck, "maps unreadable %s", errname(errno));
		return;
	}
	while ((n = read(fd, text + got, sizeof(smaps_text) - 1 - got)) > 0)
		got += n;
	close(fd);
	text[got] = 0;
	for (char *save = NULL, *ln = strtok_r(text, "\n", &save); ln;
	     ln = strtok_r(NULL, "\n", &save)) {
		unsigned long s, e;
		char perms[8];

		if (sscanf(ln, "%lx-%lx %7s", &s, &e, perms) == 3 && strchr(ln, '-') < strchr(ln, ' ')) {
			cur = in_arena(s);
			if (!cur)
				continue;
			start = (s - ARENA_BASE) / PGSZ;
			end = (e - ARENA_BASE) / PGSZ;
			append(maps, sizeof(maps_out), "%s%lu+%lu %s", maps[0] ? "," : "", start,
			       end - start, perms);
			rss = ahp = swp = pd = 0;
		} else if (cur && !strncmp(ln, "Rss:", 4)) {
			rss = strtol(ln + 4, NULL, 10);
		} else if (cur && !strncmp(ln, "AnonHugePages:", 14)) {
			ahp = strtol(ln + 14, NULL, 10);
		} else if (cur && !strncmp(ln, "Swap:", 5)) {
			swp = strtol(ln + 5, NULL, 10);
		} else if (cur && !strncmp(ln, "Private_Dirty:", 14)) {
			pd = strtol(ln + 14, NULL, 10);

		} else if (cur && !strncmp(ln, "VmFlags:", 8)) {
			size_t fl = strlen(ln);

			while (fl > 9 && ln[fl - 1] == ' ')
				ln[--fl] = 0;
			snprintf(key, sizeof(key), "%s.vma%lu", ck, start);
			snprintf(rec, sizeof(rec), "rss=%ld dirty=%ld ahp=%ld swap=%ld flags=%s",
				 rss, pd, ahp, swp, ln + 9);
			emit(key, "%s", rec);
			cur = 0;
		}
	}
	snprintf(key, sizeof(key), "%s.maps", ck);
	emit(key, "%s", maps[0] ? maps : "-");
}

static int read_mem(int fd, unsigned long addr, uint64_t *page)
{
	ssize_t n = pread(fd, page, PGSZ, (off_t)addr);

	return n == (ssize_t)PGSZ ? 0 : (n < 0 ? errno : EIO);
}

/* One region's pages: bits and content, run-length encoded. */
static void check_region(const char *ck, int r, int pmfd, int memfd)
{
	uint64_t *pm = pm_buf, *page = page_buf;
	char *out = pages_out;
	char key[64], bits[8], label[32], prev_bits[8] = "", prev_label[32] = "";
	unsigned long np = regs[r].npages, run = 0;
	int prev_val = -2, v;
	long prev_k = -2, k;

	out[0] = 0;
	if (np > ARENA_PAGES)
		np = ARENA_PAGES;
	if (pread(pmfd, pm, np * 8, (off_t)(regs[r].base / PGSZ * 8)) != (ssize_t)(np * 8))
		memset(pm, 0, np * 8);
	for (unsigned long i = 0; i <= np; i++) {
		int b = 0, same;

		if (i < np) {
			uint64_t e = pm[i];

			if (e & PM_PRESENT) bits[b++] = 'P';
			if (e & PM_SWAP) bits[b++] = 'S';
			if (e & PM_EXCLUSIVE) bits[b++] = 'X';
			if (e & PM_UFFD_WP) bits[b++] = 'W';
			if (e & PM_SOFT_DIRTY) bits[b++] = 'D';
			if (!b) bits[b++] = '-';
			bits[b] = 0;
			label[0] = 0;
			v = -1;
			k = -1;
			if (e & (PM_PRESENT | PM_SWAP)) {
				int err = read_mem(memfd, regs[r].base + i * PGSZ, page);

				if (err)
					snprintf(label, sizeof(label), "!%s", errname(err));
				else
					content_label(page, label, sizeof(label), &v, &k);
			}
			same = run && !strcmp(bits, prev_bits) &&
			       (v >= 0 ? (v == prev_val && k == prev_k + 1) :
					 !strcmp(label, prev_label));
			if (same) {
				run++;
				prev_k = k;
				continue;
			}
		}
		if (run)
			append(out, sizeof(pages_out), "%s%lux%s%s%s%s", out[0] ? "," : "", run,
			       prev_bits, prev_label[0] ? ":" : "", prev_label,
			       prev_val >= 0 && run > 1 ? "+" : "");
		if (i == np)
			break;
		run = 1;
		strcpy(prev_bits, bits);
		strcpy(prev_label, label);
		prev_val = v;
		prev_k = k;
	}
	snprintf(key, sizeof(key), "%s.r%d", ck, r);
	emit(key, "@%lu+%lu %s", (regs[r].base - ARENA_BASE) / PGSZ, regs[r].npages, out);
}

static void checkpoint(const char *label)
{
	char ck[32], key[48];
	int pmfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int memfd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);

	snprintf(ck, sizeof(ck), "c%s", label);
	check_vmas(ck);
	for (int r = 0; r < nregs; r++)
		check_region(ck, r, pmfd, memfd);
	snprintf(key, sizeof(key), "%s.status", ck);
	rss_sync();
	emit(key, "rssanon=%+ld vmswap=%+ld", status_kb("RssAnon:") - base_rss_anon,
	     status_kb("VmSwap:") - base_vm_swap);
	close(pmfd);
	close(memfd);
}

#endif /* FUZZ_STATE_H */
