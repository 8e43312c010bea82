/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fuzz_core.h - the program model of `orch fuzz` in C: one program is a
 * header line and a list of operations on anonymous memory and userfaultfd,
 * in a text format (one operation a line) that orchestrator/fuzz/model.py
 * writes.  This file parses it and writes the canonical trace: one record a
 * line, "KEY<TAB>VALUE", compared key by key between two kernels.
 *
 * Every mapping of a program lives in a fixed arena (ARENA_BASE), so that
 * /proc/self/maps, addresses and results are relative to it and the same on
 * two kernels whatever their mmap layout.
 *
 * The executor (orch_fuzz.c) and every reproducer (a generated KTAP program)
 * include these headers: a reproducer runs the very code that found it.
 */
#ifndef FUZZ_CORE_H
#define FUZZ_CORE_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/loop.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>

/* The upstream UFFDIO_MOVE ABI, for uAPI headers older than 6.8 (6.1's). */
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode;
	__s64 move;
};
#endif
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
#endif
#ifndef UFFDIO_MOVE
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MADV_SOFT_OFFLINE
#define MADV_SOFT_OFFLINE 101
#endif

#define PGSZ		4096UL
#define ARENA_BASE	0x4000000000UL	/* 256 GiB: under a 39-bit VA top (6.1 arm64 tinyconfig) */
#define ARENA_PAGES	(80UL * 512)		/* 160 MiB */
#define MAXOPS		256
#define MAXREG		32
#define MAXCHILD	16
#define MAXTHREADS	4

enum opkind {
	OP_MMAP, OP_WRITE, OP_READ, OP_MADV, OP_MPROT, OP_MREMAP, OP_MUNMAP, OP_FORK,
	OP_REAP, OP_UREG, OP_UNREG, OP_MOVE, OP_WP, OP_CLEAR_REFS, OP_CHECK, OP_NKINDS
};

static const char *const opnames[OP_NKINDS] = {
	"mmap", "write", "read", "madv", "mprot", "mremap", "munmap", "fork",
	"reap", "ureg", "unreg", "move", "wp", "clear_refs", "check",
};

struct op {
	int kind;
	int tid;		/* 0: the main sequence; 1..: a concurrent thread */
	long a[7];
	char word[16];		/* the symbolic argument (madvise, prot, mode) */
};

struct prog {
	char id[48];
	char thp[16];		/* always, madvise, never */
	char swap[8];		/* none, zram, loop */
	int nthreads;
	int nops;
	struct op ops[MAXOPS];
};

/* ------------------------------------------------------------------ */
/* the trace                                                            */

static int trace_fd = 1;

static void emit(const char *key, const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "%s\t", key);
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	for (int off = 0; off < n;) {
		ssize_t w = write(trace_fd, buf + off, n - off);

		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return;
		}
		off += w;
	}
}

static const char *errname(int e)
{
	static __thread char buf[16];

	switch (e) {
	case 0: return "ok";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENOSPC: return "ENOSPC";
	case ERANGE: return "ERANGE";
	case ENOSYS: return "ENOSYS";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ETXTBSY: return "ETXTBSY";
	case ESPIPE: return "ESPIPE";
	}
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

/* ------------------------------------------------------------------ */
/* parsing                                                              */

static int kind_of(const char *name)
{
	for (int k = 0; k < OP_NKINDS; k++)
		if (!strcmp(opnames[k], name))
			return k;
	return -1;
}

/* The symbolic word each kind takes, by its position among the arguments. */
static int word_pos(int kind)
{
	switch (kind) {
	case OP_MADV: case OP_MPROT: case OP_UREG: return 3;
	case OP_MREMAP: return 2;
	case OP_FORK: return 0;
	default: return -1;
	}
}

static int parse_header(struct prog *p, char *line)
{
	char *save = NULL;

	strcpy(p->thp, "always");
	strcpy(p->swap, "none");
	p->nthreads = 0;
	for (char *t = strtok_r(line + 2, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (!strncmp(t, "thp=", 4))
			snprintf(p->thp, sizeof(p->thp), "%s", t + 4);
		else if (!strncmp(t, "swap=", 5))
			snprintf(p->swap, sizeof(p->swap), "%s", t + 5);
		else if (!strncmp(t, "threads=", 8))
			p->nthreads = atoi(t + 8);
	}
	return p->nthreads >= 0 && p->nthreads <= MAXTHREADS ? 0 : -1;
}

/* One operation line ("T <tid> " prefixed in a concurrent thread's ops). */
static int parse_op(struct prog *p, char *line)
{
	char *save = NULL, *t;
	struct op *o;
	int i = 0, tid = 0;

	t = strtok_r(line, " \t", &save);
	if (!t)
		return 0;
	if (!strcmp(t, "T")) {
		t = strtok_r(NULL, " \t", &save);
		tid = t ? atoi(t) : 0;
		t = strtok_r(NULL, " \t", &save);
		if (tid < 1 || tid > MAXTHREADS || !t)
			return -1;
	}
	if (p->nops >= MAXOPS)
		return -1;
	o = &p->ops[p->nops];
	memset(o, 0, sizeof(*o));
	o->kind = kind_of(t);
	o->tid = tid;
	if (o->kind < 0)
		return -1;
	while ((t = strtok_r(NULL, " \t", &save)) && i < 7) {
		if (i == word_pos(o->kind))
			snprintf(o->word, sizeof(o->word), "%s", t);
		else
			o->a[i] = strtol(t, NULL, 0);
		i++;
	}
	p->nops++;
	return 0;
}

/* Parse one program (lines up to "end" or the end of the text); 0 or -1. */
static int parse_program(const char *text, struct prog *p)
{
	char *copy = strdup(text), *save = NULL;
	int rc = 0;

	memset(p, 0, sizeof(*p));
	strcpy(p->thp, "always");
	strcpy(p->swap, "none");
	for (char *ln = strtok_r(copy, "\n", &save); ln && !rc; ln = strtok_r(NULL, "\n", &save)) {
		while (*ln == ' ')
			ln++;
		if (!*ln || *ln == '#')
			continue;
		if (!strncmp(ln, "P ", 2))
			snprintf(p->id, sizeof(p->id), "%s", ln + 2);
		else if (!strncmp(ln, "H ", 2))
			rc = parse_header(p, ln);
		else if (!strcmp(ln, "end"))
			break;
		else
			rc = parse_op(p, ln);
	}
	free(copy);
	return rc;
}

#endif /* FUZZ_CORE_H */
