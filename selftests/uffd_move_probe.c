// SPDX-License-Identifier: GPL-2.0
/*
 * uffd_move_probe - does the running kernel offer UFFDIO_MOVE?
 *
 * Tests (KTAP):
 *   userfaultfd_available    userfaultfd(O_CLOEXEC|O_NONBLOCK) and the
 *                            UFFDIO_API handshake (api=UFFD_API,
 *                            features=0) work.  SKIP if the syscall is
 *                            ENOSYS (CONFIG_USERFAULTFD=n).
 *   uffd_feature_move        UFFDIO_API reports UFFD_FEATURE_MOVE (1<<16).
 *                            SKIP when absent (e.g. plain Linux 6.1).
 *   register_ioctls_has_move the UFFDIO_API ioctls mask never has
 *                            1<<_UFFDIO_MOVE; when the feature is offered,
 *                            UFFDIO_REGISTER (MISSING) of a private anon
 *                            range returns an ioctls mask that has it.
 *   uffdio_move_abi          struct uffdio_move is 40 bytes and
 *                            UFFDIO_MOVE == 0xc028aa05 (always runs).
 *
 * Why features=0: userfaultfd_api() (fs/userfaultfd.c, Linux 6.1) fills
 * uffdio_api.features with every feature the kernel supports and then
 * fails with EINVAL if the caller requested any bit outside that set; a
 * request of 0 therefore always succeeds and the reply is the full list.
 * ioctls is set to UFFD_API_IOCTLS (REGISTER|UNREGISTER|API); range ioctls
 * such as MOVE only show up in the UFFDIO_REGISTER reply.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>

#include "ktap.h"
#include "uffd_abi.h"

#define MOVE_BIT ((__u64)1 << _UFFDIO_MOVE)

/*
 * Open a userfaultfd.  As root the plain call works; when it fails with
 * EPERM (unprivileged and vm.unprivileged_userfaultfd=0) retry with
 * UFFD_USER_MODE_ONLY, which is enough for user-space faults.
 * Returns the fd or -errno.
 */
static int open_uffd(void)
{
	int fd = uffd_open_raw(O_CLOEXEC | O_NONBLOCK);

	if (fd >= 0)
		return fd;
	if (errno == EPERM) {
		fd = uffd_open_raw(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
		if (fd >= 0) {
			ktap_diag("userfaultfd: EPERM without UFFD_USER_MODE_ONLY, using it");
			return fd;
		}
		return -errno;
	}
	return -errno;
}

/*
 * Open + UFFDIO_API with features=0.  On success returns the fd and fills
 * *api.  On failure returns -1 and sets *verdict to what the test should
 * report (skip for ENOSYS, fail otherwise), having printed diagnostics.
 */
static int open_and_handshake(struct uffdio_api *api, int *verdict)
{
	int fd = open_uffd();

	if (fd < 0) {
		if (fd == -ENOSYS) {
			*verdict = ktap_skip_because("userfaultfd syscall not implemented (ENOSYS, CONFIG_USERFAULTFD=n?)");
			return -1;
		}
		ktap_diag("userfaultfd(O_CLOEXEC|O_NONBLOCK) failed: %s",
			  strerror(-fd));
		*verdict = KTAP_FAIL;
		return -1;
	}
	memset(api, 0, sizeof(*api));
	api->api = UFFD_API;
	api->features = 0;
	if (ioctl(fd, UFFDIO_API, api)) {
		ktap_diag("UFFDIO_API(api=0x%llx, features=0) failed: %s",
			  (unsigned long long)UFFD_API, strerror(errno));
		close(fd);
		*verdict = KTAP_FAIL;
		return -1;
	}
	return fd;
}

static int t_userfaultfd_available(void)
{
	struct uffdio_api api;
	struct utsname u;
	int verdict = KTAP_FAIL;
	int fd = open_and_handshake(&api, &verdict);

	if (fd < 0)
		return verdict;
	if (uname(&u) == 0)
		ktap_diag("kernel %s %s", u.release, u.machine);
	ktap_diag("UFFDIO_API: api=0x%llx features=0x%llx ioctls=0x%llx",
		  (unsigned long long)api.api,
		  (unsigned long long)api.features,
		  (unsigned long long)api.ioctls);
	close(fd);
	if (api.api != UFFD_API) {
		ktap_diag("expected api=0x%llx back, got 0x%llx",
			  (unsigned long long)UFFD_API,
			  (unsigned long long)api.api);
		return KTAP_FAIL;
	}
	return KTAP_PASS;
}

static int t_uffd_feature_move(void)
{
	struct uffdio_api api;
	int verdict = KTAP_FAIL;
	int fd = open_and_handshake(&api, &verdict);

	if (fd < 0)
		return verdict;
	close(fd);
	ktap_diag("UFFDIO_API features=0x%llx, UFFD_FEATURE_MOVE=0x%llx",
		  (unsigned long long)api.features,
		  (unsigned long long)UFFD_FEATURE_MOVE);
	if (!(api.features & UFFD_FEATURE_MOVE))
		return ktap_skip_because("UFFD_FEATURE_MOVE not offered by this kernel");
	return KTAP_PASS;
}

static int t_register_ioctls_has_move(void)
{
	struct uffdio_register reg;
	struct uffdio_api api;
	long psz = sysconf(_SC_PAGESIZE);
	size_t len = 4 * (size_t)psz;
	int verdict = KTAP_FAIL;
	int fd = open_and_handshake(&api, &verdict);
	int ret = KTAP_PASS;
	void *area;

	if (fd < 0)
		return verdict;

	if (api.ioctls & MOVE_BIT) {
		ktap_diag("UFFDIO_API ioctls=0x%llx has bit %d (_UFFDIO_MOVE); it must only be reported by UFFDIO_REGISTER",
			  (unsigned long long)api.ioctls, _UFFDIO_MOVE);
		ret = KTAP_FAIL;
	}
	if (!(api.features & UFFD_FEATURE_MOVE)) {
		close(fd);
		if (ret == KTAP_FAIL)
			return ret;
		return ktap_skip_because("UFFD_FEATURE_MOVE not offered by this kernel");
	}

	area = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) {
		ktap_diag("mmap(%zu) failed: %s", len, strerror(errno));
		close(fd);
		return KTAP_FAIL;
	}
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (unsigned long)area;
	reg.range.len = len;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(fd, UFFDIO_REGISTER, &reg)) {
		ktap_diag("UFFDIO_REGISTER(MISSING, anon %p len %zu) failed: %s",
			  area, len, strerror(errno));
		ret = KTAP_FAIL;
	} else {
		ktap_diag("UFFDIO_REGISTER ioctls=0x%llx (MOVE bit 0x%llx)",
			  (unsigned long long)reg.ioctls,
			  (unsigned long long)MOVE_BIT);
		if (!(reg.ioctls & MOVE_BIT)) {
			ktap_diag("expected UFFDIO_REGISTER ioctls to include 1<<_UFFDIO_MOVE since UFFD_FEATURE_MOVE is offered; got 0x%llx",
				  (unsigned long long)reg.ioctls);
			ret = KTAP_FAIL;
		}
	}
	munmap(area, len);
	close(fd);
	return ret;
}

static int t_uffdio_move_abi(void)
{
	int ret = KTAP_PASS;

	if (sizeof(struct uffdio_move) != 40) {
		ktap_diag("sizeof(struct uffdio_move) = %zu, expected 40",
			  sizeof(struct uffdio_move));
		ret = KTAP_FAIL;
	}
	if (offsetof(struct uffdio_move, move) != 32) {
		ktap_diag("offsetof(struct uffdio_move, move) = %zu, expected 32",
			  offsetof(struct uffdio_move, move));
		ret = KTAP_FAIL;
	}
	if ((unsigned long)UFFDIO_MOVE != 0xc028aa05UL) {
		ktap_diag("UFFDIO_MOVE = 0x%lx, expected 0xc028aa05",
			  (unsigned long)UFFDIO_MOVE);
		ret = KTAP_FAIL;
	}
	if (_UFFDIO_MOVE != 0x05 || UFFD_FEATURE_MOVE != (1 << 16) ||
	    UFFDIO_MOVE_MODE_DONTWAKE != 1 ||
	    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES != 2) {
		ktap_diag("constants differ: _UFFDIO_MOVE=%d UFFD_FEATURE_MOVE=0x%llx DONTWAKE=0x%llx ALLOW_SRC_HOLES=0x%llx (expected 5, 0x10000, 0x1, 0x2)",
			  _UFFDIO_MOVE, (unsigned long long)UFFD_FEATURE_MOVE,
			  (unsigned long long)UFFDIO_MOVE_MODE_DONTWAKE,
			  (unsigned long long)UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
		ret = KTAP_FAIL;
	}
	return ret;
}

static const struct ktap_case cases[] = {
	{ .name = "userfaultfd_available", .fn = t_userfaultfd_available },
	{ .name = "uffd_feature_move", .fn = t_uffd_feature_move },
	{ .name = "register_ioctls_has_move", .fn = t_register_ioctls_has_move },
	{ .name = "uffdio_move_abi", .fn = t_uffdio_move_abi },
};

int main(int argc, char **argv)
{
	return ktap_run_cases(cases, KTAP_ARRAY_SIZE(cases), 10, argc, argv);
}
