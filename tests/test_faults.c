/* SPDX-License-Identifier: MIT */
/*
 * Fault injection at every step of creating an object: each system call
 * and allocation the library makes on the way (memfd_create,
 * posix_fallocate, fcntl(F_ADD_SEALS), mmap, the domain's eventfds, calloc)
 * is made to fail in turn, with the errno the kernel gives when it runs out
 * (posix_fallocate's ENOSPC is tmpfs refusing pages; EMFILE a full fd
 * table; ENOMEM memory). Each failure must come back as the documented
 * -errno (docs/errors.md), leave no file descriptor, mapping or handle
 * behind, and leave the library able to create the object once the fault
 * is gone.
 *
 * The calls are intercepted with the linker's --wrap (tests/meson.build),
 * which redirects the library's references (the tests link it statically);
 * Criterion and libc themselves are untouched. Real exhaustion cannot be
 * arranged for each of these calls on every machine the suite runs on (a
 * memfd's tmpfs has no size cap; a memory cgroup's limit runs its OOM
 * killer instead, docs/security.md), so this is where the error paths are
 * tested; tests/test_resources.c hits the real fd, address-space and file
 * size limits.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "helpers.h"
#include "internal.h"

/* The library's references, as nm shows them with glibc (64-bit file
 * offsets: the *64 names). */
int __real_memfd_create(const char *name, unsigned flags);
int __real_posix_fallocate64(int fd, off_t off, off_t len);
int __real_fcntl64(int fd, int cmd, ...);
void *__real_mmap64(void *addr, size_t len, int prot, int flags, int fd,
		    off_t off);
int __real_eventfd(unsigned initval, int flags);
void *__real_calloc(size_t n, size_t size);
int __wrap_memfd_create(const char *name, unsigned flags);
int __wrap_posix_fallocate64(int fd, off_t off, off_t len);
int __wrap_fcntl64(int fd, int cmd, ...);
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd,
		    off_t off);
int __wrap_eventfd(unsigned initval, int flags);
void *__wrap_calloc(size_t n, size_t size);

enum fault { F_NONE, F_MEMFD, F_FALLOCATE, F_SEAL, F_MMAP, F_EVENTFD,
	     F_CALLOC, F_MAX };

static const char *const fault_names[F_MAX] = {
	[F_MEMFD] = "memfd_create", [F_FALLOCATE] = "posix_fallocate",
	[F_SEAL] = "fcntl(F_ADD_SEALS)", [F_MMAP] = "mmap",
	[F_EVENTFD] = "eventfd", [F_CALLOC] = "calloc",
};

/* the errno each call fails with, and what the library must return */
static const struct {
	int err, want;
} fault_codes[F_MAX] = {
	[F_MEMFD] = { EMFILE, -EMFILE },
	/* tmpfs refusing pages: reported as -ENOMEM */
	[F_FALLOCATE] = { ENOSPC, -ENOMEM },
	[F_SEAL] = { EPERM, -EPERM },
	[F_MMAP] = { ENOMEM, -ENOMEM },
	[F_EVENTFD] = { EMFILE, -EMFILE },
	[F_CALLOC] = { ENOMEM, -ENOMEM },
};

static enum fault armed;
static int countdown; /* the armed call fails when this reaches 0 */
static int fired;

/* true if this call of kind f is the one to fail */
static bool
hit(enum fault f)
{
	if (armed != f || countdown <= 0)
		return false;
	if (--countdown > 0)
		return false;
	fired++;
	errno = fault_codes[f].err;
	return true;
}

int
__wrap_memfd_create(const char *name, unsigned flags)
{
	return hit(F_MEMFD) ? -1 : __real_memfd_create(name, flags);
}

int
__wrap_posix_fallocate64(int fd, off_t off, off_t len)
{
	/* returns the error number, does not set errno */
	return hit(F_FALLOCATE) ? fault_codes[F_FALLOCATE].err
				: __real_posix_fallocate64(fd, off, len);
}

int
__wrap_fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	long arg;

	/* every fcntl command takes at most one argument, an int or a
	 * pointer: a long carries either on the ABIs Linux runs on */
	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	if (cmd == F_ADD_SEALS && hit(F_SEAL))
		return -1;
	return __real_fcntl64(fd, cmd, arg);
}

void *
__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return hit(F_MMAP) ? MAP_FAILED
			   : __real_mmap64(addr, len, prot, flags, fd, off);
}

int
__wrap_eventfd(unsigned initval, int flags)
{
	return hit(F_EVENTFD) ? -1 : __real_eventfd(initval, flags);
}

void *
__wrap_calloc(size_t n, size_t size)
{
	return hit(F_CALLOC) ? NULL : __real_calloc(n, size);
}

/*
 * What the library's calls leave open: fds that are an aiop memfd or an
 * eventfd, and mappings of an aiop memfd. Only those are counted: the
 * test process has other fds and mappings, and Criterion (or valgrind)
 * may open and close its own at any time.
 */
static bool
fd_is_ours(const char *name, char *target, size_t len)
{
	char path[300];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%s", name);
	n = readlink(path, target, len - 1);
	target[n < 0 ? 0 : n] = 0;
	return strncmp(target, "/memfd:aiop", 11) == 0 ||
	       strcmp(target, "anon_inode:[eventfd]") == 0;
}

/* with dump, print every fd (a failure's message) */
static int
count_fds(bool dump)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char target[256];
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		n += fd_is_ours(e->d_name, target, sizeof(target));
		if (dump)
			fprintf(stderr, "  fd %s -> %s\n", e->d_name, target);
	}
	closedir(d);
	return n;
}

static int
count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "/memfd:aiop") != NULL;
	fclose(f);
	return n;
}

/* One constructor and the matching free, behind one signature. */
struct maker {
	const char *name;
	int (*make)(void **out);
	int (*drop)(void *h);
};

/* make_T(void **out) and drop_T(void *h) for each type T */
#define MAKER(t, type, ...)                                                 \
	static int make_##t(void **o)                                       \
	{                                                                   \
		return aiop_##type##_new((struct aiop_##type **)o,          \
					 ##__VA_ARGS__);                    \
	}                                                                   \
	static int drop_##t(void *h)                                        \
	{                                                                   \
		return aiop_##type##_free(h);                               \
	}

static const struct aiop_queue_attr jattr = {
	.capacity = 1 << 16, .flags = AIOP_QUEUE_JOINABLE
};

MAKER(lock, lock)
MAKER(rlock, rlock)
MAKER(sem, sem, 2)
MAKER(event, event)
MAKER(cond, cond)
MAKER(barrier, barrier, 3, NULL, NULL)
MAKER(queue, queue, NULL)
MAKER(jqueue, queue, &jattr)
MAKER(squeue, simplequeue)

static int
make_bsem(void **o)
{
	return aiop_sem_new_bounded((struct aiop_sem **)o, 2);
}

static const struct maker makers[] = {
	{ "lock", make_lock, drop_lock },
	{ "rlock", make_rlock, drop_rlock },
	{ "semaphore", make_sem, drop_sem },
	{ "bounded semaphore", make_bsem, drop_sem },
	{ "event", make_event, drop_event },
	{ "condition", make_cond, drop_cond },
	{ "barrier", make_barrier, drop_barrier },
	{ "queue", make_queue, drop_queue },
	{ "joinable queue", make_jqueue, drop_jqueue },
	{ "simple queue", make_squeue, drop_squeue },
};

/*
 * Fail the k-th call of kind f during m's constructor, for k = 1, 2, ...
 * until a constructor runs without reaching a k-th call. Returns how many
 * failures were injected. Asserts each one's result and that it leaked
 * nothing.
 */
static int
fail_each_call(const struct maker *m, enum fault f)
{
	int injected = 0;

	for (int k = 1; k < 200; k++) {
		int fds = count_fds(false), maps = count_maps(), r;
		bool had_domain = aiop__dom.shm != NULL;
		void *h = NULL;

		fired = 0;
		countdown = k;
		armed = f;
		r = m->make(&h);
		armed = F_NONE;
		if (!had_domain && aiop__dom.shm) {
			/* the domain was made before the failure: it stays,
			 * with its memfd, mapping and an eventfd per bell */
			fds += aiop__dom.nbells + 1;
			maps++;
		}
		if (!fired) {
			/* k is past the calls this constructor makes */
			cr_assert_eq(r, 0, "%s: %d", m->name, r);
			cr_assert_eq(m->drop(h), 0);
			return injected;
		}
		injected++;
		cr_assert_eq(r, fault_codes[f].want,
			     "%s, %s call %d failing: %d, want %d", m->name,
			     fault_names[f], k, r, fault_codes[f].want);
		cr_assert_null(h, "%s: a handle after a failure", m->name);
		if (count_fds(false) != fds)
			(void)count_fds(true);
		cr_assert_eq(count_fds(false), fds,
			     "%s, %s call %d: fds leaked", m->name,
			     fault_names[f], k);
		cr_assert_eq(count_maps(), maps,
			     "%s, %s call %d: mappings leaked", m->name,
			     fault_names[f], k);
	}
	cr_assert_fail("%s: more than 200 %s calls", m->name, fault_names[f]);
	return injected;
}

/*
 * One kind of call failing in turn in every constructor. Criterion runs
 * each test in a process of its own, in which no domain exists yet: the
 * first constructor also creates the doorbell domain (a memfd and its
 * eventfds), whose calls fail first, as cleanly, and are tried again by
 * the next constructor.
 */
static void
sweep(enum fault f)
{
	bool fresh = aiop__dom.shm == NULL;
	struct aiop_lock *l;
	int n = 0;

	for (size_t i = 0; i < sizeof(makers) / sizeof(makers[0]); i++)
		n += fail_each_call(&makers[i], f);
	/* the calls were reached: the sweep tested something */
	cr_assert_geq(n, f == F_CALLOC	   ? 1
			 : f == F_EVENTFD ? (fresh ? 64 : 0)
					  : 10,
		      "%s failed only %d times", fault_names[f], n);
	/* and the library still works after it all */
	cr_assert_eq(aiop_lock_new(&l), 0);
	cr_assert_eq(aiop_lock_try_acquire(l), 0);
	cr_assert_eq(aiop_lock_release(l), 0);
	cr_assert_eq(aiop_lock_free(l), 0);
}

Test(faults, memfd_create_fails) { sweep(F_MEMFD); }
Test(faults, posix_fallocate_finds_no_room) { sweep(F_FALLOCATE); }
Test(faults, sealing_is_refused) { sweep(F_SEAL); }
Test(faults, mmap_fails) { sweep(F_MMAP); }
Test(faults, eventfd_fails) { sweep(F_EVENTFD); }
Test(faults, calloc_fails) { sweep(F_CALLOC); }

/*
 * The first coro op of a loop allocates the loop's registration: a failed
 * allocation is -ENOMEM from the start call (no callback, nothing taken,
 * the doorbell given back), and the next op works.
 */
Test(faults, coro_start_without_memory, .timeout = 60)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct aiop_lock *l;
	struct t_op op = { 0 };

	cr_assert_not_null(loop);
	cr_assert_eq(aiop_lock_new(&l), 0);
	cr_assert_eq(aiop_lock_try_acquire(l), 0); /* so the op must wait */
	fired = 0;
	countdown = 1;
	armed = F_CALLOC;
	int r = aiop_lock_coro_acquire(loop, &op.op, l, T_SEC, t_op_cb);
	armed = F_NONE;
	cr_assert_eq(fired, 1, "the start call allocated nothing");
	cr_assert_eq(r, -ENOMEM);
	cr_assert_eq(aiop_op_pending(&op.op), 0);
	cr_assert(t_run(loop, 1000));
	cr_assert_eq(op.calls, 0, "a callback after a failed start");
	/* without the fault the same op waits and is granted */
	cr_assert_eq(aiop_lock_coro_acquire(loop, &op.op, l, 5 * T_SEC,
					    t_op_cb), 0);
	cr_assert_eq(aiop_lock_release(l), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(op.calls, 1);
	cr_assert_eq(op.result, 0);
	cr_assert_eq(aiop_lock_release(l), 0);
	cr_assert_eq(aiop_lock_free(l), 0);
	ev_loop_destroy(loop);
}
