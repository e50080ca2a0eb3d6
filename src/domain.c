/* SPDX-License-Identifier: MIT */
/*
 * The domain: one per process tree, created by the first aiop_*_new().
 * It owns the doorbell eventfds (created before any object exists, so every
 * process that inherits an object inherits every doorbell) and a shared page
 * recording which process claimed which doorbell. Also: per-thread tid
 * cache, liveness probes, and the fork handlers. See docs/design.md 1, 5, 6.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

struct aiop__bell_shm {
	_Atomic uint32_t owner; /* pid of the claimant, 0 = free */
	uint32_t pad[AIOP__CACHELINE / 4 - 1];
};

struct aiop__domain_shm {
	struct aiop__shm_hdr hdr;
	_Atomic uint32_t nbells;
	uint32_t pad[AIOP__CACHELINE / 4 - 7];
	struct aiop__bell_shm bell[AIOP__DOORBELLS_MAX];
};

_Static_assert(sizeof(struct aiop__bell_shm) == AIOP__CACHELINE, "bell");

struct aiop__domain aiop__dom;
_Atomic unsigned aiop__fork_gen = 1;
pthread_mutex_t aiop__reg_mu = PTHREAD_MUTEX_INITIALIZER;

static pthread_mutex_t dom_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int dom_ready;
static pid_t cached_pid;

__thread pid_t aiop__t_tid __attribute__((tls_model("initial-exec")));
__thread unsigned aiop__t_gen __attribute__((tls_model("initial-exec")));
__thread uint32_t aiop__t_serial __attribute__((tls_model("initial-exec")));

/* aiop__tid() (internal.h) when this thread has not asked since the last
 * fork (or ever) */
pid_t
aiop__tid_slow(void)
{
	aiop__t_tid = (pid_t)syscall(SYS_gettid);
	aiop__t_gen = atomic_load_explicit(&aiop__fork_gen,
					   memory_order_relaxed);
	return aiop__t_tid;
}

static pid_t
self_pid(void)
{
	return cached_pid ? cached_pid : (cached_pid = getpid());
}

/*
 * Is a thread (process == false) or a process (true) alive? kill(id, 0)
 * answers for anything that is not a zombie. A zombie is dead: a holder
 * that was killed but whose parent has not reaped it yet. The exception is
 * a process whose main thread exited while other threads run: its leader
 * shows Z but the process lives on (num_threads > 1).
 */
static bool
task_alive(pid_t id, bool process)
{
	char path[48], buf[512], *p;
	long nthreads = 0;
	ssize_t n;
	int fd;

	AIOP__COUNT(owner_probes);
	if (id <= 0)
		return false;
	if (kill(id, 0) < 0 && errno == ESRCH)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	/* No entry: /proc not mounted, hidepid, or the task just vanished.
	 * kill() said it exists, so call it alive; a vanished task is seen
	 * by the next probe. Calling a live holder dead would steal its
	 * lock. */
	if (fd < 0)
		return true;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return true;
	if (p[2] != 'Z' && p[2] != 'X')
		return true;
	if (!process)
		return false;
	/* fields after ')': state(3) ... num_threads(20) */
	p += 2;
	for (int field = 3; field < 20 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (p)
		nthreads = strtol(p, NULL, 10);
	return nthreads > 1;
}

bool
aiop__tid_alive(pid_t tid)
{
	AIOP__SAVE_ERRNO(return task_alive(tid, false));
}

static bool
pid_alive(pid_t pid)
{
	AIOP__SAVE_ERRNO(return task_alive(pid, true));
}

/* dom_mu too: a fork while another thread creates or joins the domain
 * must not leave the child a locked dom_mu (its first object would wait
 * for it for ever). Lock order: dom_mu, then reg_mu. */
static void
fork_prepare(void)
{
	pthread_mutex_lock(&dom_mu);
	pthread_mutex_lock(&aiop__reg_mu);
}

static void
fork_parent(void)
{
	pthread_mutex_unlock(&aiop__reg_mu);
	pthread_mutex_unlock(&dom_mu);
}

static void
fork_child(void)
{
	cached_pid = 0;
	atomic_fetch_add(&aiop__fork_gen, 1);
	pthread_mutex_unlock(&aiop__reg_mu);
	pthread_mutex_unlock(&dom_mu);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void
atfork_register(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Before the first lock of dom_mu or aiop__reg_mu: aiop_loop_detach()
 * takes reg_mu with no domain yet ("0, also for a loop that never used
 * aiop"), and a fork meanwhile must not leave the child that lock held */
void
aiop__atfork_ensure(void)
{
	pthread_once(&atfork_once, atfork_register);
}

static void
release_all_bells(void)
{
	pid_t me = getpid();
	int i;

	if (!aiop__dom.shm)
		return;
	for (i = 0; i < aiop__dom.nbells; i++) {
		uint32_t o = (uint32_t)me;
		atomic_compare_exchange_strong(
			&aiop__dom.shm->bell[i].owner, &o, 0);
	}
}

static int
env_doorbells(void)
{
	const char *s = getenv("AIOP_DOORBELLS");
	char *end;
	long v;

	if (!s || *s < '0' || *s > '9')
		return 64; /* strtol() would take " 5" and "+5" (coro.md) */
	v = strtol(s, &end, 10);
	if (*end || v < 1 || v > AIOP__DOORBELLS_MAX)
		return 64;
	return (int)v;
}

/* The process-wide part of having a domain, made or received. */
static void
domain_installed(void)
{
	atexit(release_all_bells);
	aiop__spin_env();
}

static int
domain_create(void)
{
	struct aiop__domain_shm *shm;
	size_t size = aiop__domain_shm_size();
	int i, n = env_doorbells(), r, fd;
	uint64_t id = 0;

	r = aiop__shm_map("aiop-domain", size, (void **)&shm, &fd);
	if (r < 0)
		return r;
	for (i = 0; i < n; i++) {
		aiop__dom.efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (aiop__dom.efd[i] < 0) {
			r = -errno;
			while (i-- > 0)
				close(aiop__dom.efd[i]);
			munmap(shm, size);
			close(fd);
			return r;
		}
	}
	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
		id = aiop__now_ns() ^ ((uint64_t)getpid() << 40);
	if (id == 0) /* 0 is "no domain" (a received one is refused) */
		id = 1;
	atomic_store(&shm->nbells, (uint32_t)n);
	atomic_store(&shm->hdr.size, (uint32_t)size);
	atomic_store(&shm->hdr.domain_id, id);
	atomic_store(&shm->hdr.ident, AIOP__IDENT(AIOP__T_DOMAIN));
	aiop__dom.shm = shm;
	aiop__dom.id = id;
	aiop__dom.nbells = n;
	aiop__dom.fd = fd;
	domain_installed();
	return 0;
}

/* whole pages, like every object: a receiver checks it so */
size_t
aiop__domain_shm_size(void)
{
	return aiop__page_round(sizeof(struct aiop__domain_shm));
}

uint32_t
aiop__domain_shm_nbells(const struct aiop__domain *d)
{
	return atomic_load(&d->shm->nbells);
}

bool
aiop__domain_joined(uint64_t id, int *r)
{
	if (!atomic_load_explicit(&dom_ready, memory_order_acquire))
		return false;
	*r = aiop__dom.id == id ? 1 : -EXDEV;
	return true;
}

int
aiop__domain_join(const struct aiop__domain *d)
{
	int r;

	pthread_once(&atfork_once, atfork_register); /* before dom_mu */
	pthread_mutex_lock(&dom_mu);
	if (atomic_load_explicit(&dom_ready, memory_order_relaxed)) {
		r = aiop__dom.id == d->id ? 1 : -EXDEV;
	} else {
		aiop__dom = *d;
		domain_installed();
		atomic_store_explicit(&dom_ready, 1, memory_order_release);
		r = 0;
	}
	pthread_mutex_unlock(&dom_mu);
	return r;
}

int
aiop__domain_ensure(void)
{
	int r = 0, saved;

	if (AIOP_LIKELY(atomic_load_explicit(&dom_ready,
					     memory_order_acquire)))
		return 0;
	saved = errno;
	pthread_once(&atfork_once, atfork_register); /* before dom_mu */
	pthread_mutex_lock(&dom_mu);
	if (!atomic_load_explicit(&dom_ready, memory_order_relaxed)) {
		r = domain_create();
		if (r == 0)
			atomic_store_explicit(&dom_ready, 1,
					      memory_order_release);
	}
	pthread_mutex_unlock(&dom_mu);
	errno = saved;
	return r;
}

int
aiop__bell_claim(void)
{
	uint32_t me = (uint32_t)self_pid();
	int pass, i;

	if (!aiop__dom.shm)
		return -EINVAL;
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < aiop__dom.nbells; i++) {
			_Atomic uint32_t *ow = &aiop__dom.shm->bell[i].owner;
			uint32_t o = atomic_load(ow);

			if (pass == 0 && o != 0)
				continue;
			if (pass == 1 &&
			    (o == 0 || o == me || pid_alive((pid_t)o)))
				continue;
			if (atomic_compare_exchange_strong(ow, &o, me)) {
				uint64_t v;
				int saved = errno;
				/* a dead claimant may have left a count */
				if (read(aiop__dom.efd[i], &v, sizeof(v)) < 0)
					errno = saved;
				return i;
			}
		}
	}
	return -EMFILE;
}

void
aiop__bell_release(int bell)
{
	uint32_t me = (uint32_t)self_pid();

	if (bell < 0 || bell >= aiop__dom.nbells)
		return;
	atomic_compare_exchange_strong(&aiop__dom.shm->bell[bell].owner, &me,
				       0);
}

pid_t
aiop__bell_owner(int bell)
{
	if (!aiop__dom.shm || bell < 0 || bell >= aiop__dom.nbells)
		return 0;
	return (pid_t)atomic_load(&aiop__dom.shm->bell[bell].owner);
}

unsigned
aiop__try_flags(void)
{
	static __thread uint64_t last;
	uint64_t t = aiop__now_ns();

	if (t - last < (uint64_t)AIOP__RECHECK_OWNER_NS)
		return 0;
	last = t;
	return AIOP__ATT_PROBE;
}
