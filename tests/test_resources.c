/* SPDX-License-Identifier: MIT */
/* Resource exhaustion: a clean -errno at creation time, never a crash, a
 * half-made object, a SIGBUS later or a signal that kills the caller. Each
 * case runs in a child so its limits die with it. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#ifndef T_ASAN
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
#endif

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

/* exit code of a child whose hard limit leaves no room to raise */
#define T_FSIZE_HARD 77

/* RLIMIT_FSIZE cases: the kernel answers a posix_fallocate past the limit
 * with SIGXFSZ, whose default action kills the process. The child keeps
 * that default, so a library that let the fallocate pass the limit kills
 * it and the test sees -SIGXFSZ; no core file either way.
 * @return 0, 90 (set-up failed) or T_FSIZE_HARD (the child's exit code) */
static int
fsize_setup(struct rlimit *saved)
{
	struct rlimit core = { 0, 0 };

	if (signal(SIGXFSZ, SIG_DFL) == SIG_ERR ||
	    setrlimit(RLIMIT_CORE, &core) < 0 ||
	    getrlimit(RLIMIT_FSIZE, saved) < 0)
		return 90;
	if (saved->rlim_max != RLIM_INFINITY && saved->rlim_max < (4u << 20))
		return T_FSIZE_HARD;
	return 0;
}

/* only the soft limit moves, so it can go back up unprivileged */
static int
fsize_set(const struct rlimit *saved, rlim_t cur)
{
	struct rlimit rl = *saved;

	rl.rlim_cur = cur;
	return setrlimit(RLIMIT_FSIZE, &rl);
}

static int
fsize_small_objects(void *arg)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct aiop_event *e;
	struct aiop_sem *s;
	struct rlimit rl;
	int fds, rc;

	(void)arg;
	if ((rc = fsize_setup(&rl)) != 0)
		return rc;
	/* first aiop call of this process: the domain's memory is over the
	 * limit too; nothing is kept and the next call tries again */
	fds = t_fd_count();
	if (fsize_set(&rl, 0) < 0)
		return 91;
	if (aiop_sem_new(&s, 1) != -ENOMEM)
		return 1;
	if (t_fd_count() != fds)
		return 2;
	if (fsize_set(&rl, rl.rlim_max) < 0)
		return 92;
	if (aiop_event_new(&e) != 0)
		return 3;
	/* a semaphore needs a page of memfd, one byte more than allowed */
	fds = t_fd_count();
	if (fsize_set(&rl, (rlim_t)pg - 1) < 0)
		return 93;
	if (aiop_sem_new(&s, 1) != -ENOMEM)
		return 4;
	if (t_fd_count() != fds)
		return 5;
	if (aiop_event_set(e) != 0 || aiop_event_wait(e, 0) != 0)
		return 6;
	/* exactly at the limit is allowed */
	if (fsize_set(&rl, (rlim_t)pg) < 0)
		return 94;
	if (aiop_sem_new(&s, 1) != 0)
		return 7;
	if (aiop_sem_acquire(s, 0) != 0 || aiop_sem_release(s) != 0)
		return 8;
	if (aiop_sem_free(s) != 0 || aiop_event_free(e) != 0)
		return 9;
	return 0;
}

/* Run an RLIMIT_FSIZE case in a child (its limits die with it). */
static void
fsize_case(int (*fn)(void *))
{
	int rc = t_reap(t_fork(fn, NULL), T_REAP_MS);

	if (rc == T_FSIZE_HARD)
		cr_skip_test("hard RLIMIT_FSIZE too low to raise again");
	cr_assert_eq(rc, 0, "child: %d (-%d is SIGXFSZ)", rc, SIGXFSZ);
}

Test(resources, fsize_small_objects)
{
	fsize_case(fsize_small_objects);
}

static int
fsize_queue(void *arg)
{
	struct aiop_queue_attr big = { .capacity = 1u << 20 };
	struct aiop_queue_attr little = { .capacity = AIOP_QUEUE_CAPACITY_MIN };
	struct aiop_queue *small, *q;
	struct aiop_lock *l;
	struct rlimit rl;
	char buf[16];
	int fds, rc;

	(void)arg;
	if ((rc = fsize_setup(&rl)) != 0)
		return rc;
	if (aiop_lock_new(&l) != 0)
		return 1;
	if (aiop_queue_new(&small, &little) != 0)
		return 2;
	fds = t_fd_count();
	if (fsize_set(&rl, 64u << 10) < 0)
		return 91;
	if (aiop_queue_new(&q, &big) != -ENOMEM)
		return 3;
	if (t_fd_count() != fds)
		return 4;
	/* the objects that exist still work: writing into a mapping is not
	 * growing a file */
	if (aiop_lock_acquire(l, 0) != 0 || aiop_lock_release(l) != 0)
		return 5;
	if (aiop_queue_put(small, "before", 6, 0) != 0 ||
	    aiop_queue_get(small, buf, sizeof(buf), NULL, 0) != 6 ||
	    memcmp(buf, "before", 6) != 0)
		return 6;
	/* nothing half-made: with room, the same call works */
	if (fsize_set(&rl, rl.rlim_max) < 0)
		return 92;
	if (aiop_queue_new(&q, &big) != 0)
		return 7;
	if (aiop_queue_put(q, "after", 5, 0) != 0 ||
	    aiop_queue_get(q, buf, sizeof(buf), NULL, 0) != 5 ||
	    memcmp(buf, "after", 5) != 0)
		return 8;
	if (aiop_queue_free(q) != 0 || aiop_queue_free(small) != 0 ||
	    aiop_lock_free(l) != 0)
		return 9;
	return 0;
}

Test(resources, fsize_queue)
{
	fsize_case(fsize_queue);
}
