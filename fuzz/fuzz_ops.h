/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fuzz_ops.h - running a program's operations, each one's result as a
 * trace record "oI<TAB>NAME RESULT" (I: the operation's index): a return
 * value and errno, UFFDIO_MOVE's `move`, the signal a memory access took.
 *
 * Regions: the N-th mmap of a program is region N; an operation names a
 * region by a number taken modulo the regions mapped so far, and a page
 * range inside it (clamped to the region).  Memory is written with a
 * pattern that says which write and which page of its region it came from,
 * so a checkpoint shows where data went ("v3.17": value 3, page 17).
 *
 * A program runs in a process of its own, made by the executor (or the
 * reproducer); its concurrent threads (T lines) start after the main
 * sequence and only issue system calls.
 */
#ifndef FUZZ_OPS_H
#define FUZZ_OPS_H

#include "fuzz_state.h"

#define MOVE_UNSET ((__s64)0x5a5a5a5a5a5a5a5aLL)

static int uffd = -1;
static pid_t children[MAXCHILD];
static int nchildren;
static sigjmp_buf fault_env;
static volatile sig_atomic_t fault_armed;

static void on_fault(int sig)
{
	if (fault_armed)
		siglongjmp(fault_env, sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

static struct region *reg(long r)
{
	return nregs ? &regs[(unsigned long)r % nregs] : NULL;
}

/* Page range [pg, pg+n) of a region, clamped into it; 0 when there is none. */
static int range(const struct op *o, int first, struct region **rp, unsigned long *pg,
		 unsigned long *n)
{
	struct region *r = reg(o->a[first]);

	if (!r || !r->npages)
		return 0;
	*rp = r;
	*pg = (unsigned long)o->a[first + 1] % r->npages;
	*n = (unsigned long)o->a[first + 2];
	if (*n < 1)
		*n = 1;
	if (*n > r->npages - *pg)
		*n = r->npages - *pg;
	return 1;
}

static void result(const char *key, const char *name, long ret, int err, const char *extra)
{
	emit(key, "%s %ld %s%s%s", name, ret, ret < 0 ? errname(err) : "ok",
	     extra && *extra ? " " : "", extra ? extra : "");
}

static int open_uffd(__u64 features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		return errno;
	if (ioctl(uffd, UFFDIO_API, &api)) {
		int e = errno;

		close(uffd);
		uffd = -1;
		return e;
	}
	return 0;
}

/*
 * The program's userfaultfd, with UFFD_FEATURE_MOVE. A kernel without it (bare 6.1: the
 * base kernel orch fuzz attributes divergences with) refuses the feature with EINVAL:
 * then one without it, so that registration and the rest run there as on the others,
 * and only UFFDIO_MOVE itself fails.
 */
static int ensure_uffd(void)
{
	int e;

	if (uffd >= 0)
		return 0;
	e = open_uffd(UFFD_FEATURE_MOVE | UFFD_FEATURE_SIGBUS);
	if (e == EINVAL)
		e = open_uffd(UFFD_FEATURE_SIGBUS);
	return e;
}

static int madv_of(const char *w)
{
	static const struct { const char *n; int v; } t[] = {
		{"hugepage", MADV_HUGEPAGE}, {"nohugepage", MADV_NOHUGEPAGE},
		{"dontneed", MADV_DONTNEED}, {"free", MADV_FREE}, {"pageout", MADV_PAGEOUT},
		{"cold", MADV_COLD}, {"dontfork", MADV_DONTFORK}, {"dofork", MADV_DOFORK},
		{"mergeable", MADV_MERGEABLE}, {"unmergeable", MADV_UNMERGEABLE},
		{"willneed", MADV_WILLNEED}, {"collapse", MADV_COLLAPSE},
		{"populate_write", MADV_POPULATE_WRITE}, {"soft_offline", MADV_SOFT_OFFLINE},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(t[i].n, w))
			return t[i].v;
	return -1;
}

static void reap(void)
{
	for (int i = 0; i < nchildren; i++) {
		kill(children[i], SIGKILL);
		waitpid(children[i], NULL, 0);
	}
	nchildren = 0;
}

/* write or read pages; a fault ends the operation, its signal and page recorded */
static void access_pages(const char *key, const struct op *o)
{
	struct region *r;
	unsigned long pg, n;
	volatile unsigned long done = 0;
	volatile uint64_t h = 1469598103934665603ULL;
	int sig;

	if (!range(o, 0, &r, &pg, &n)) {
		emit(key, "%s none", opnames[o->kind]);
		return;
	}
	sig = sigsetjmp(fault_env, 1);
	if (sig) {
		fault_armed = 0;
		emit(key, "%s %s@%lu", opnames[o->kind], sig == SIGBUS ? "SIGBUS" : "SIGSEGV",
		     pg + done);
		return;
	}
	fault_armed = 1;
	for (; done < n; done++) {
		volatile uint64_t *w = (volatile uint64_t *)(r->base + (pg + done) * PGSZ);

		for (unsigned long j = 0; j < PGSZ / 8; j++) {
			if (o->kind == OP_WRITE)
				w[j] = pattern_word((int)o->a[3], pg + done, j);
			else
				h = (h ^ w[j]) * 1099511628211ULL;
		}
	}
	fault_armed = 0;
	if (o->kind == OP_WRITE)
		emit(key, "write ok");
	else
		emit(key, "read h%08llx", (unsigned long long)(h & 0xffffffffULL));
}

static void do_fork(const char *key, const struct op *o)
{
	struct region *r = reg(o->a[1]);
	int status = 0;
	pid_t pid;

	if (nchildren >= MAXCHILD) {
		emit(key, "fork full");
		return;
	}
	pid = fork();
	if (pid < 0) {
		result(key, "fork", -1, errno, NULL);
		return;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		if (!strcmp(o->word, "live"))
			for (;;)
				pause();
		if (!strcmp(o->word, "write") && r && r->npages) {
			unsigned long p = (unsigned long)o->a[2] % r->npages;
			volatile uint64_t *w = (volatile uint64_t *)(r->base + p * PGSZ);

			for (unsigned long j = 0; j < PGSZ / 8; j++)
				w[j] = pattern_word(0xee, p, j);
		}
		_exit(0);
	}
	if (!strcmp(o->word, "live")) {
		children[nchildren++] = pid;
		emit(key, "fork live");
		return;
	}
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		emit(key, "fork %s child-signal %d", o->word, WTERMSIG(status));
	else
		emit(key, "fork %s child-exit %d", o->word, WEXITSTATUS(status));
}

static void do_move(const char *key, const struct op *o, int brief)
{
	struct region *d = reg(o->a[0]), *s = reg(o->a[2]);
	struct uffdio_move m;
	char extra[48];
	int e = ensure_uffd();
	long ret;

	if (!d || !s || !d->npages || !s->npages) {
		emit(key, "move none");
		return;
	}
	if (e) {
		emit(key, "move uffd %s", errname(e));
		return;
	}
	memset(&m, 0, sizeof(m));
	m.dst = d->base + ((unsigned long)o->a[1] % d->npages) * PGSZ;
	m.src = s->base + ((unsigned long)o->a[3] % s->npages) * PGSZ;
	m.len = (unsigned long)o->a[4] % (ARENA_PAGES + 1) * PGSZ;
	m.mode = (__u64)o->a[5];
	m.move = MOVE_UNSET;
	if (o->a[6] == 1)
		m.dst += 1;
	else if (o->a[6] == 2)
		m.len += 1;
	else if (o->a[6] == 3)
		m.len = 0;
	ret = ioctl(uffd, UFFDIO_MOVE, &m);
	e = errno;
	if (brief) {
		emit(key, "move %s", ret ? errname(e) : "ok");
		return;
	}
	if (m.move == MOVE_UNSET)
		snprintf(extra, sizeof(extra), "move=unset");
	else
		snprintf(extra, sizeof(extra), "move=%lld", (long long)m.move);
	result(key, "move", ret, e, extra);
}

static void do_uffd_range(const char *key, const struct op *o, int brief)
{
	struct region *r;
	unsigned long pg, n;
	char extra[48] = "";
	long ret;
	int e = ensure_uffd();

	if (!range(o, 0, &r, &pg, &n)) {
		emit(key, "%s none", opnames[o->kind]);
		return;
	}
	if (e) {
		emit(key, "%s uffd %s", opnames[o->kind], errname(e));
		return;
	}
	struct uffdio_range rg = { .start = r->base + pg * PGSZ, .len = n * PGSZ };

	if (o->kind == OP_UREG) {
		struct uffdio_register u = { .range = rg };

		u.mode = (strchr(o->word, 'm') ? UFFDIO_REGISTER_MODE_MISSING : 0) |
			 (strchr(o->word, 'w') ? UFFDIO_REGISTER_MODE_WP : 0);
		ret = ioctl(uffd, UFFDIO_REGISTER, &u);
		if (!ret)
			snprintf(extra, sizeof(extra), "ioctls=0x%llx", (unsigned long long)u.ioctls);
	} else if (o->kind == OP_UNREG) {
		ret = ioctl(uffd, UFFDIO_UNREGISTER, &rg);
	} else {
		struct uffdio_writeprotect wp = { .range = rg,
						  .mode = o->a[3] ? UFFDIO_WRITEPROTECT_MODE_WP : 0 };
		ret = ioctl(uffd, UFFDIO_WRITEPROTECT, &wp);
	}
	e = errno;
	if (brief)
		emit(key, "%s %s", opnames[o->kind], ret ? errname(e) : "ok");
	else
		result(key, opnames[o->kind], ret, e, extra);
}

static void do_map_op(const char *key, const struct op *o)
{
	struct region *r;
	unsigned long pg, n;
	long ret;

	if (o->kind == OP_MMAP) {
		unsigned long off = (unsigned long)o->a[0] % ARENA_PAGES, np = (unsigned long)o->a[1];
		void *want = (void *)(ARENA_BASE + off * PGSZ), *got;

		if (np < 1)
			np = 1;
		if (np > ARENA_PAGES - off)
			np = ARENA_PAGES - off;
		got = mmap(want, np * PGSZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
			   MAP_FIXED_NOREPLACE | (o->a[2] & 1 ? MAP_POPULATE : 0), -1, 0);
		if (nregs < MAXREG) {
			regs[nregs].base = (unsigned long)want;
			regs[nregs++].npages = np;
		}
		if (got == MAP_FAILED)
			result(key, "mmap", -1, errno, NULL);
		else
			emit(key, "mmap %s", got == want ? "ok" : "elsewhere");
		return;
	}
	if (o->kind == OP_MREMAP) {
		unsigned long newn = (unsigned long)o->a[1], dst = (unsigned long)o->a[3];
		int fl = 0;
		void *got, *to = NULL;

		r = reg(o->a[0]);
		if (!r) {
			emit(key, "mremap none");
			return;
		}
		if (newn < 1)
			newn = 1;
		if (newn > ARENA_PAGES)
			newn = ARENA_PAGES;
		dst %= ARENA_PAGES;
		if (dst + newn > ARENA_PAGES)
			dst = ARENA_PAGES - newn;
		if (strcmp(o->word, "grow")) {
			fl = MREMAP_MAYMOVE | MREMAP_FIXED;
			to = (void *)(ARENA_BASE + dst * PGSZ);
			if (!strcmp(o->word, "dontunmap")) {
				fl |= MREMAP_DONTUNMAP;
				newn = r->npages;
			}
		}
		got = mremap((void *)r->base, r->npages * PGSZ, newn * PGSZ, fl, to);
		if (got == MAP_FAILED) {
			result(key, "mremap", -1, errno, NULL);
			return;
		}
		r->base = (unsigned long)got;
		r->npages = newn;
		emit(key, "mremap @%ld", in_arena(r->base) ? (long)((r->base - ARENA_BASE) / PGSZ)
						     : -1L);
		return;
	}
	if (!range(o, 0, &r, &pg, &n)) {
		emit(key, "%s none", opnames[o->kind]);
		return;
	}
	void *addr = (void *)(r->base + pg * PGSZ);

	if (o->kind == OP_MADV) {
		int adv = madv_of(o->word);

		/* a soft-offlined page leaves the machine's memory for good: a few at a time */
		if (adv == MADV_SOFT_OFFLINE && n > 16)
			n = 16;
		ret = madvise(addr, n * PGSZ, adv);
	} else if (o->kind == OP_MPROT) {
		int prot = !strcmp(o->word, "none") ? PROT_NONE :
			   !strcmp(o->word, "r") ? PROT_READ : PROT_READ | PROT_WRITE;
		ret = mprotect(addr, n * PGSZ, prot);
	} else {
		ret = munmap(addr, n * PGSZ);
	}
	result(key, opnames[o->kind], ret, errno, NULL);
}

static void run_op(const struct op *o, const char *key, int brief)
{
	switch (o->kind) {
	case OP_MMAP: case OP_MADV: case OP_MPROT: case OP_MREMAP: case OP_MUNMAP:
		do_map_op(key, o);
		break;
	case OP_WRITE: case OP_READ:
		access_pages(key, o);
		break;
	case OP_FORK:
		do_fork(key, o);
		break;
	case OP_REAP:
		reap();
		emit(key, "reap ok");
		break;
	case OP_UREG: case OP_UNREG: case OP_WP:
		do_uffd_range(key, o, brief);
		break;
	case OP_MOVE:
		do_move(key, o, brief);
		break;
	case OP_CLEAR_REFS: {
		char v[16];
		int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
		long ret = -1;

		snprintf(v, sizeof(v), "%ld", o->a[0]);
		if (fd >= 0) {
			ret = write(fd, v, strlen(v)) < 0 ? -1 : 0;
			close(fd);
		}
		result(key, "clear_refs", ret, errno, NULL);
		break;
	}
	case OP_CHECK:
		checkpoint(key + 1);
		break;
	}
}

struct thread_arg {
	const struct prog *p;
	int tid;
};

static void *thread_main(void *arg)
{
	const struct thread_arg *t = arg;
	char key[32];

	for (int i = 0; i < t->p->nops; i++) {
		if (t->p->ops[i].tid != t->tid)
			continue;
		snprintf(key, sizeof(key), "t%d.%d", t->tid, i);
		run_op(&t->p->ops[i], key, 1);
	}
	return NULL;
}

/* Run a program in this process: its operations, its threads, the last checkpoint. */
static void run_program(const struct prog *p, int pin)
{
	pthread_t th[MAXTHREADS];
	struct thread_arg ta[MAXTHREADS];
	char key[32];

	if (pin) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(0, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	signal(SIGSEGV, on_fault);
	signal(SIGBUS, on_fault);
	nregs = 0;
	nchildren = 0;
	state_baseline();
	for (int i = 0; i < p->nops; i++) {
		if (p->ops[i].tid)
			continue;
		snprintf(key, sizeof(key), p->ops[i].kind == OP_CHECK ? "c%d" : "o%d", i);
		run_op(&p->ops[i], key, 0);
	}
	for (int t = 0; t < p->nthreads; t++) {
		ta[t].p = p;
		ta[t].tid = t + 1;
		pthread_create(&th[t], NULL, thread_main, &ta[t]);
	}
	for (int t = 0; t < p->nthreads; t++)
		pthread_join(th[t], NULL);
	reap();
	checkpoint("end");
	emit("end", "ok");
}

#endif /* FUZZ_OPS_H */
