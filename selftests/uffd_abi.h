/* SPDX-License-Identifier: GPL-2.0 */
/*
 * uffd_abi.h - userfaultfd uAPI bits the orch selftests need, including
 * the UFFDIO_MOVE ABI (upstream since Linux 6.8) for builds against older
 * uAPI headers such as Linux 6.1's, which lack it.
 *
 * The values below are the upstream ABI, bit for bit:
 *   struct uffdio_move { __u64 dst, src, len, mode; __s64 move; }  40 bytes
 *   _UFFDIO_MOVE 0x05, UFFDIO_MOVE = _IOWR(0xAA, 0x05, struct uffdio_move)
 *                                  = 0xc028aa05
 *   UFFDIO_MOVE_MODE_DONTWAKE 1<<0, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES 1<<1
 *   UFFD_FEATURE_MOVE 1<<16 (reported by UFFDIO_API)
 */
#ifndef ORCH_SELFTESTS_UFFD_ABI_H
#define ORCH_SELFTESTS_UFFD_ABI_H

#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef UFFD_FEATURE_MOVE
/* uAPI headers older than 6.8: define the upstream move ABI locally. */
#define UFFD_FEATURE_MOVE		(1 << 16)

struct uffdio_move {
	__u64 dst;	/* destination address, page aligned */
	__u64 src;	/* source address, page aligned */
	__u64 len;	/* bytes, page aligned, non-zero */
	__u64 mode;	/* UFFDIO_MOVE_MODE_* bits, others are EINVAL */
	__s64 move;	/* out: bytes moved, or -errno; never 0 */
};
#endif /* UFFD_FEATURE_MOVE */

#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE			(0x05)
#endif
#ifndef UFFDIO_MOVE
#define UFFDIO_MOVE			_IOWR(UFFDIO, _UFFDIO_MOVE, \
					      struct uffdio_move)
#endif
#ifndef UFFDIO_MOVE_MODE_DONTWAKE
#define UFFDIO_MOVE_MODE_DONTWAKE	((__u64)1 << 0)
#endif
#ifndef UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
#endif

/* userfaultfd(2) flag, uAPI since 5.11; here in case of older headers. */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY		1
#endif

_Static_assert(sizeof(struct uffdio_move) == 40,
	       "struct uffdio_move must be 40 bytes (upstream ABI)");

#ifndef __NR_userfaultfd
#error "__NR_userfaultfd is not defined for this architecture"
#endif

/* glibc has no wrapper for userfaultfd(2) in all versions. */
static inline int uffd_open_raw(int flags)
{
	return (int)syscall(__NR_userfaultfd, flags);
}

#endif /* ORCH_SELFTESTS_UFFD_ABI_H */
