/* SPDX-License-Identifier: MIT */
/* Resource exhaustion: a clean -errno at creation time, never a crash, a
 * half-made object, or a SIGBUS later. Each case runs in a child so its
 * limits die with it. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(resources, .timeout = 120);

/* valgrind keeps file descriptors and address space of its own, so
 * resource limits mean something else under it (its setup sets this) */
static bool
under_valgrind(void)
{
	return getenv("AIOP_UNDER_VALGRIND") != NULL;
}


static int
low_nofile_domain(void *arg)
{
	struct rlimit rl, low;
	struct aiop_lock *l;
	int r;

	(void)arg;
	/* first aiop call of this process: the domain needs 64 eventfds */
	getrlimit(RLIMIT_NOFILE, &rl);
	low = rl;
	low.rlim_cur = 16;
	if (setrlimit(RLIMIT_NOFILE, &low) < 0)
		return 90;
	r = aiop_lock_new(&l);
	if (r != -EMFILE)
		return 1;
	/* nothing half-made: with room, the same call works */
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 91;
	r = aiop_lock_new(&l);
	if (r != 0)
		return 2;
	if (aiop_lock_acquire(l, 0) != 0 || aiop_lock_release(l) != 0)
		return 3;
	return aiop_lock_free(l) == 0 ? 0 : 4;
}

Test(resources, nofile_at_domain_creation)
{
	if (under_valgrind())
		cr_skip_test("RLIMIT_NOFILE under valgrind");
	int rc = t_reap(t_fork(low_nofile_domain, NULL), T_REAP_MS);

	cr_assert_eq(rc, 0, "child: %d", rc);
}

static int
no_fd_for_object(void *arg)
{
	struct aiop_sem *s;
	struct rlimit rl;
	int fd, last = -1, r;

	(void)arg;
	if (aiop_sem_new(&s, 1) != 0) /* the domain exists now */
		return 1;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = 200;
	setrlimit(RLIMIT_NOFILE, &rl);
	while ((fd = open("/dev/null", O_RDONLY)) >= 0)
		last = fd;
	r = aiop_sem_new(&s, 1); /* memfd_create has no fd left */
	if (r != -EMFILE)
		return 2;
	close(last);
	return aiop_sem_new(&s, 1) == 0 ? 0 : 3;
}

Test(resources, nofile_at_object_creation)
{
	if (under_valgrind())
		cr_skip_test("RLIMIT_NOFILE under valgrind");
	cr_assert_eq(t_reap(t_fork(no_fd_for_object, NULL), T_REAP_MS), 0);
}

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif

static int
low_address_space(void *arg)
{
	struct aiop_barrier *b;
	struct aiop_event *e;
	struct rlimit rl;
	long vm = 0;
	char line[256];
	FILE *f;

	(void)arg;
	if (aiop_event_new(&e) != 0)
		return 1;
	f = fopen("/proc/self/status", "r");
	if (!f)
		return 0; /* no /proc: nothing to measure against */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %ld kB", &vm) == 1)
			break;
	fclose(f);
	/* room for small allocations, not for a 256 KiB object */
	rl.rlim_cur = rl.rlim_max = (rlim_t)(vm + 128) * 1024;
	if (setrlimit(RLIMIT_AS, &rl) < 0)
		return 90;
	if (aiop_barrier_new(&b, AIOP_BARRIER_PARTIES_MAX, NULL, NULL) !=
	    -ENOMEM)
		return 2;
	/* the objects that exist still work */
	if (aiop_event_set(e) != 0 || aiop_event_wait(e, 0) != 0)
		return 3;
	return 0;
}

Test(resources, address_space_exhausted)
{
#ifdef T_ASAN
	cr_skip_test("RLIMIT_AS cannot be used under AddressSanitizer");
#else
	if (under_valgrind())
		cr_skip_test("RLIMIT_AS under valgrind");
	int rc = t_reap(t_fork(low_address_space, NULL), T_REAP_MS);

	cr_assert_eq(rc, 0, "child: %d", rc);
#endif
}
