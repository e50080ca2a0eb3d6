/* SPDX-License-Identifier: MIT */
/*
 * Private declarations: shared-memory layouts, the per-process handle base,
 * and the one wait/wake engine (src/wait.c). See docs/design.md.
 */
#ifndef AIOP_INTERNAL_H
#define AIOP_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <time.h>
#include <sys/types.h>
#include <pthread.h>

#include "aiop.h"

#define AIOP_LIKELY(x) __builtin_expect(!!(x), 1)
#define AIOP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define AIOP__CACHELINE 64

/* errno is never changed by aiop (CONVENTIONS): wrap syscall-making code. */
#define AIOP__SAVE_ERRNO(stmt)                                                 \
	do {                                                                  \
		int aiop__saved_errno_ = errno;                               \
		__attribute__((cleanup(aiop__restore_errno))) int *aiop__e_ = \
			&aiop__saved_errno_;                                  \
		(void)aiop__e_;                                               \
		stmt;                                                         \
	} while (0)

static inline void
aiop__restore_errno(int **saved)
{
	errno = **saved;
}

#define aiop__container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/* ---- shared-memory header: first bytes of every object ---------------- */

#define AIOP__SHM_MAGIC 0x706f6961u /* "aiop" */
/* 2: a Lock's owner word carries a grant serial; 3: a Condition counts
 * its closed groups (gen) beside its word, a Barrier keeps when a waiter
 * last probed its parties */
#define AIOP__ABI 3u

enum aiop__type {
	AIOP__T_DOMAIN = 1,
	AIOP__T_LOCK,
	AIOP__T_RLOCK,
	AIOP__T_SEM,
	AIOP__T_EVENT,
	AIOP__T_COND,
	AIOP__T_BARRIER,
	AIOP__T_QUEUE,
	AIOP__T_MAX,
};

#define AIOP__IDENT(type) \
	((uint64_t)AIOP__SHM_MAGIC | ((uint64_t)AIOP__ABI << 32) | \
	 ((uint64_t)(type) << 48))

struct aiop__shm_hdr {
	_Atomic uint64_t ident; /* magic | abi << 32 | type << 48 */
	_Atomic uint32_t size;  /* bytes mapped (validated, never trusted) */
	_Atomic uint32_t flags;
	_Atomic uint64_t domain_id;
};

/* ---- the wait queue embedded in every object that can be waited on ---- */

#define AIOP__DOORBELLS_MAX 128
#define AIOP__ARMED_WORDS (AIOP__DOORBELLS_MAX / 64)

struct aiop__waitq {
	_Atomic uint32_t seq;     /* futex word, bumped by each wake */
	_Atomic uint32_t nsleep;  /* blocking waiters armed or asleep,
				     with a generation (see below) */
	_Atomic uint32_t spin_ns; /* adaptive spin budget (a hint) */
	_Atomic uint32_t last_cpu; /* last waker: (1+CPU) << 22 | tid (hint) */
	_Atomic uint64_t armed[AIOP__ARMED_WORDS]; /* loops to ring */
};

#define AIOP__WAKE_ALL 0x7fffffff

/* nsleep = arrivals (8 bits) << 24 | generation (8) << 16 | count (16).
 * The count is of blocking waiters between arming and return; each arming
 * also bumps the arrivals tag. A waker whose FUTEX_WAKE found nobody in
 * the kernel starts a new generation at count 0 if the word is as it read
 * it before its wake (the tag tells a new arrival from one that left), so
 * a waiter killed while counted is forgotten at the next such wake; a
 * live waiter counted in an older generation does not take its count
 * back (design.md 2.2). */
#define AIOP__NSLEEP_COUNT 0x0000ffffu
#define AIOP__NSLEEP_GEN 0x00010000u
#define AIOP__NSLEEP_GEN_MASK 0x00ff0000u
#define AIOP__NSLEEP_ARRIVE 0x01000000u

/* ---- per-process handle base ------------------------------------------ */

#define AIOP__HANDLE_MAGIC 0x68706f61u

struct aiop__obj {
	uint32_t hmagic;          /* AIOP__HANDLE_MAGIC while valid */
	uint16_t type;            /* enum aiop__type */
	uint16_t pad;
	int fd;                   /* the object's memfd, kept to be sent
				     (aiop_X_send, design.md 10) */
	_Atomic uint32_t users;   /* conditions of this process made over
				     this lock handle: its free waits */
	size_t size;              /* mapping length (local, trusted) */
	struct aiop__shm_hdr *shm;
	/* coro ops of this process pending on it: fork generation << 32 |
	 * count, one word, so that loops in two threads starting their first
	 * op on it at once cannot lose a count (wait.c) */
	_Atomic uint64_t pend;
};

/* The handle, process-local and trusted: its mapping may be written. */
static inline bool
aiop__handle_ok(const struct aiop__obj *o, unsigned type)
{
	return AIOP_LIKELY(o && o->hmagic == AIOP__HANDLE_MAGIC &&
			   o->type == type);
}

/* The shared header, which a peer may have overwritten. */
static inline bool
aiop__ident_ok(const struct aiop__obj *o, unsigned type)
{
	return AIOP_LIKELY(atomic_load_explicit(&o->shm->ident,
						memory_order_relaxed) ==
			   AIOP__IDENT(type));
}

/* Check a handle and its shared header; 0 or -EINVAL/-EPROTO. */
static inline int
aiop__obj_check(const struct aiop__obj *o, unsigned type)
{
	if (!aiop__handle_ok(o, type))
		return -EINVAL;
	if (!aiop__ident_ok(o, type))
		return -EPROTO;
	return 0;
}

/* Pending coro ops of this process on a handle. A child inherits the
 * parent's count with the handle; the ops are not its own, so a count from
 * another fork generation reads as zero. */
static inline int
aiop__pending(struct aiop__obj *o)
{
	extern _Atomic unsigned aiop__fork_gen;
	uint64_t v = atomic_load(&o->pend);

	if ((uint32_t)(v >> 32) != atomic_load_explicit(&aiop__fork_gen,
							memory_order_relaxed))
		return 0;
	return (int)(uint32_t)v;
}

/* shm.c */
int aiop__obj_new(unsigned type, size_t shm_size, size_t handle_size,
		  void **handle_out);
int aiop__obj_free(struct aiop__obj *o, unsigned type);
/* unmap, close and free a handle, checked or not (may change errno) */
void aiop__obj_destroy(struct aiop__obj *o);
int aiop__shm_map(const char *name, size_t size, void **out, int *fd_out);
void aiop__obj_init(struct aiop__obj *o, unsigned type, void *map,
		    size_t size, int fd);
size_t aiop__page_round(size_t size);

/* share.c: sending and receiving objects (design.md 10) */
struct aiop__share_type {
	unsigned type;
	uint16_t flags;     /* wire flags this face sends and expects */
	size_t handle_size;
	size_t max_size;    /* bound on the mapping, checked before mmap */
	/* derive the handle's trusted copies from the mapping (o->size is
	 * the checked file size); -EPROTO if new() could not have made it.
	 * NULL: new() makes every object max_size bytes (page-rounded) */
	int (*attach)(struct aiop__obj *o);
};
int aiop__share_send(int sock, struct aiop__obj *o, unsigned type,
		     uint16_t flags, struct aiop__obj *o2, int64_t timeout_ns);
/* t2: the types a second object (a Condition's lock) may have, or NULL */
int aiop__share_recv(int sock, const struct aiop__share_type *t,
		     const struct aiop__share_type *const *t2, void **out,
		     void **out2, int64_t timeout_ns);

/* ---- per-process state (domain.c) ------------------------------------- */

struct aiop__domain {
	struct aiop__domain_shm *shm;
	uint64_t id;
	int nbells;
	int fd; /* the domain's memfd, kept to be sent (design.md 10) */
	int efd[AIOP__DOORBELLS_MAX];
};

extern struct aiop__domain aiop__dom;
extern _Atomic unsigned aiop__fork_gen;
extern pthread_mutex_t aiop__reg_mu;

int aiop__domain_ensure(void);
void aiop__atfork_ensure(void);
/* Adopt a received domain (share.c has checked its fds and mapping):
 * 0 adopted, 1 this process already is in it (nothing taken), -EXDEV it
 * is in another one. On 0 the domain owns d's fds and mapping. */
int aiop__domain_join(const struct aiop__domain *d);
/* Is this process in a domain? Then *r = 1 if it is `id`, else -EXDEV. */
bool aiop__domain_joined(uint64_t id, int *r);
size_t aiop__domain_shm_size(void); /* the mapping: whole pages */
uint32_t aiop__domain_shm_nbells(const struct aiop__domain *d);
int aiop__bell_claim(void);
void aiop__bell_release(int bell);
/* the pid that claimed a doorbell, 0 if free (tests) */
pid_t aiop__bell_owner(int bell);

/* Kernel thread id of the caller, cached per thread and per fork
 * (inline: every queue and lock operation asks for it). initial-exec: no
 * __tls_get_addr call. */
extern __thread pid_t aiop__t_tid __attribute__((tls_model("initial-exec")));
extern __thread unsigned aiop__t_gen
	__attribute__((tls_model("initial-exec")));
pid_t aiop__tid_slow(void);

static inline pid_t
aiop__tid(void)
{
	if (AIOP_UNLIKELY(aiop__t_gen !=
			  atomic_load_explicit(&aiop__fork_gen,
					       memory_order_relaxed)))
		return aiop__tid_slow();
	return aiop__t_tid;
}

/* the bits a tid takes in shared words (owner words, queue records):
 * pid_max is at most 2^22 */
#define AIOP__TID_MASK 0x003fffffu

/* Is the thread with this tid alive? (not ESRCH, not a zombie) */
bool aiop__tid_alive(pid_t tid);

/* Flags for a try call: PROBE for a dead owner, at most every 100 ms per
 * thread, so a loop of failing tries does not turn into syscalls. */
unsigned aiop__try_flags(void);

/*
 * Owner words (Lock, RLock): the holder's tid in the low 22 bits (pid_max is
 * at most 2^22), 0 = free. A Lock's word also carries a grant serial in the
 * high 10 bits: 0 for a blocking or try hold, 1..1023 for a coro grant (the
 * thread's count of its coro grants), so that a cancelled coro grant gives
 * back its own hold and never a later one of the same thread (design.md
 * 2.3). An RLock's word is the bare tid.
 */
#define AIOP__OWNER_SERIAL_SHIFT 22
extern __thread uint32_t aiop__t_serial
	__attribute__((tls_model("initial-exec")));

static inline uint32_t
aiop__owner_tid(uint32_t word)
{
	return word & AIOP__TID_MASK;
}

/* the serial bits this thread's next coro Lock grant writes (never 0) */
static inline uint32_t
aiop__owner_serial(void)
{
	return (aiop__t_serial % 1023u + 1u) << AIOP__OWNER_SERIAL_SHIFT;
}

/* lock.c: write `word` into a free owner word, or (PROBE) into one whose
 * owner died (the owner's tid: the word's tid_mask bits; an RLock passes
 * UINT32_MAX, its word being the bare tid); 0, -EOWNERDEAD or -EAGAIN. */
int aiop__owner_take(_Atomic uint32_t *owner, uint32_t word,
		     uint32_t tid_mask, unsigned flags);

/*
 * Owner value of a lock whose holder died and whose recovery was given back
 * (a cancelled coro acquire that had got -EOWNERDEAD): the next acquirer
 * takes it at once with -EOWNERDEAD, so the notice is never lost. Its tid
 * bits are 0, so no holder's word equals it.
 */
#define AIOP__OWNER_ABANDONED 0x40000000u
void aiop__owner_give_back(_Atomic uint32_t *owner, struct aiop__waitq *wq,
			   int result, uint32_t word);

/* ---- counters (error.c) ----------------------------------------------- */

struct aiop__counters {
	_Atomic uint64_t futex_waits, futex_wakes, rings, reads, spins_ok,
		spins_failed, owner_probes;
};
extern struct aiop__counters aiop__cnt;
#define AIOP__COUNT(field) \
	atomic_fetch_add_explicit(&aiop__cnt.field, 1, memory_order_relaxed)
/* On a hand-off's critical path (a spin that succeeded): no locked
 * instruction, which cost a third of a Lock hand-off across CPUs here
 * (measured: 145 -> 98 ns a round trip). Threads of one process counting
 * at the same instant can lose a count. */
#define AIOP__COUNT_HOT(field)                                               \
	atomic_store_explicit(                                               \
		&aiop__cnt.field,                                            \
		atomic_load_explicit(&aiop__cnt.field, memory_order_relaxed) + \
			1,                                                   \
		memory_order_relaxed)

/* ---- the engine (wait.c) ---------------------------------------------- */

/* attempt() flags */
#define AIOP__ATT_PROBE 1u /* periodic recheck: test peers for death */
#define AIOP__ATT_LAST 2u  /* the attempt at the deadline */
/* a poll of the engine's spin: fail at once rather than wait inside the
 * attempt (the spin reads its clock only every 16 polls) */
#define AIOP__ATT_SPIN 4u

/*
 * What a primitive tells the engine about one kind of wait.
 * attempt: the non-blocking try; >= 0 done, -EAGAIN would wait, other < 0
 *          done with an error. It wakes others itself if it frees anything.
 *          It may move the op to another phase by updating args.
 * undo:    give back what a granted result took (cancel of a granted coro
 *          op) and return the result the callback then gets: -ECANCELED,
 *          or -EOWNERDEAD when the op keeps a lock taken over from a dead
 *          holder (Condition); may be NULL when nothing was taken.
 * recheck_ns: bound on each sleep, so a dead holder or a wake-up swallowed
 *          by a dead waiter is noticed (docs/design.md section 5).
 * Optional, for multi-phase waits (design.md section 8):
 * wq_of:   the wait queue the op waits on now (default: the one given);
 * expire:  at the deadline, instead of a last attempt: the final result,
 *          or -EAGAIN to go on waiting with no deadline;
 * cancel:  cancel of a waiting coro op: the final result, or -EAGAIN to go
 *          on waiting (the op then ends through attempt()).
 * begin:   coro start only, after every check that can fail and before the
 *          first attempt; < 0 aborts the start with nothing changed.
 * no_try:  timeout 0 means a minimal wait, not a try (Condition, Barrier).
 * regroups: a failed attempt may have registered the op anew.
 * finish:  coro only: runs just before the callback with the result the
 *          attempt gave, and returns the one the callback gets. An attempt
 *          may leave its grant half done (a message claimed, not yet
 *          copied and freed) so that undo can still give it back; finish
 *          completes it. It must ignore a result whose grant undo took
 *          back (the queue keeps a flag in args).
 */
struct aiop__waitdesc {
	int (*attempt)(struct aiop__obj *obj, void *args, unsigned flags);
	int (*undo)(struct aiop__obj *obj, void *args, int result);
	int64_t recheck_ns;
	struct aiop__waitq *(*wq_of)(struct aiop__obj *obj, void *args);
	int (*expire)(struct aiop__obj *obj, void *args);
	int (*cancel)(struct aiop__obj *obj, void *args);
	int (*begin)(struct aiop__obj *obj, void *args);
	int (*finish)(struct aiop__obj *obj, void *args, int result);
	/* a wait that commits (it releases a lock, or arrives) has no try
	 * form: the engine turns timeout 0 into a minimal wait */
	bool no_try;
	/* an attempt that fails may have registered the op anew, behind
	 * younger ops (a Condition's wait_for whose predicate is still
	 * false): its failure says nothing about them (design.md 2.3) */
	bool regroups;
};

/* Lock and RLock as seen by Condition (lock.c, rlock.c). */
struct aiop__lockish {
	unsigned type;
	struct aiop__waitq *(*wq)(struct aiop__obj *lock);
	int (*attempt)(struct aiop__obj *lock, void *args, unsigned flags);
	bool (*owned)(struct aiop__obj *lock);
	/* release every level; the depth it had goes to *depth */
	int (*release_all)(struct aiop__obj *lock, uint32_t *depth);
	/* after a re-take (depth 1, or n+1 if already owned): add depth-1 */
	void (*restore)(struct aiop__obj *lock, uint32_t depth);
	/* give back the n levels this thread took last (the one a plain (0)
	 * attempt took; a wait's restored depth), keeping any others */
	int (*release)(struct aiop__obj *lock, uint32_t n);
	/* a re-take's -EOWNERDEAD reached the caller (NULL: nothing to do) */
	void (*told)(struct aiop__obj *lock);
};
extern const struct aiop__lockish aiop__lock_ish, aiop__rlock_ish;
extern const struct aiop__share_type aiop__lock_share, aiop__rlock_share;

#define AIOP__RECHECK_OWNER_NS (100 * 1000 * 1000LL)
#define AIOP__RECHECK_NS (1000 * 1000 * 1000LL)

int aiop__wait(struct aiop__obj *obj, struct aiop__waitq *wq,
	       const struct aiop__waitdesc *d, void *args, int64_t timeout_ns);
void aiop__wake_slow(struct aiop__waitq *wq, uint32_t nsleep, int n);

/*
 * Wake up to n blocking waiters and every armed loop. Called after the
 * state change (a seq_cst RMW), so these seq_cst loads complete the Dekker
 * pair of design.md 2.1. Inline: with nobody waiting it is two loads.
 */
static inline bool
aiop__has_waiters(struct aiop__waitq *wq, uint32_t *nsleep)
{
	uint64_t a = 0;

	*nsleep = atomic_load(&wq->nsleep);
	for (int w = 0; w < AIOP__ARMED_WORDS; w++)
		a |= atomic_load(&wq->armed[w]);
	return ((*nsleep & AIOP__NSLEEP_COUNT) | a) != 0;
}

static inline void
aiop__wake(struct aiop__waitq *wq, int n)
{
	uint32_t ns;

	if (AIOP_UNLIKELY(aiop__has_waiters(wq, &ns)))
		aiop__wake_slow(wq, ns, n);
}
void aiop__waitq_init(struct aiop__waitq *wq);

/* Shared by the start calls in aiop/ev.h. args (<= 48 bytes) is copied. */
struct aiop_op;
struct ev_loop;
int aiop__coro_start(struct ev_loop *loop, struct aiop_op *op,
		     struct aiop__obj *obj, struct aiop__waitq *wq,
		     const struct aiop__waitdesc *d, const void *args,
		     size_t args_size, int64_t timeout_ns,
		     void (*cb)(struct ev_loop *, struct aiop_op *, int));

/* Spin configuration (error.c) */
extern _Atomic int aiop__spin_mode;
extern _Atomic int64_t aiop__spin_fixed_ns;
void aiop__spin_env(void);
bool aiop__spin_single_cpu(void);

static inline uint64_t
aiop__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void
aiop__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

#endif /* AIOP_INTERNAL_H */
