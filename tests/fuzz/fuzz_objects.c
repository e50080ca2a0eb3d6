/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: hostile shared memory (docs/security.md, issue 5).
 *
 * A peer that maps an object may write any bytes into it at any time. This
 * target lets the fuzzer own every byte of one object's shared memory (for a
 * Condition: of the condition's and of its lock's), then runs a small script
 * of operations of that primitive -- blocking calls with short timeouts, try
 * calls, coro ops on a libev loop, cancels, more hostile writes between calls
 * and from inside callbacks -- and checks what the library promises whatever
 * the memory holds: no crash, no out-of-bounds access or UB (ASan/UBSan), no
 * hang (every call returns near its deadline, every started coro op calls
 * back exactly once and never inside its start call), errno untouched, and
 * return values within their documented range.
 *
 * Input layout (all multi-byte values little endian):
 *   [0]       primitive selector (mod NPRIM, see prims[])
 *   [1]       flags (F_* below)
 *   [2..33]   script: SCRIPT_LEN bytes, decoded by run_script()
 *   [34..]    image: copied over the shared memory from offset 0; bytes
 *             past the end of the input keep their pristine values. For a
 *             Condition the first COND_SPLIT bytes go to the condition's
 *             memory and the rest to its lock's.
 *
 * "Target offsets" used by the script's patch ops are 0..255: for a
 * Condition, below COND_SPLIT is the condition's memory, above it the
 * lock's (minus COND_SPLIT); otherwise the object's memory.
 *
 * The objects are created once per process; before each input the whole
 * mapping is reset from a pristine snapshot, and every coro op is driven to
 * completion (cancelled if need be) before the input ends, so no state
 * leaks from one input to the next. The target never forks.
 *
 * tests/fuzz/gen_corpus.py writes the seed corpus in this format.
 */
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include <ev.h>

#include "aiop.h"
#include "aiop/ev.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* ---- input format -------------------------------------------------------- */

#define OFF_PRIM 0
#define OFF_FLAGS 1
#define OFF_SCRIPT 2
#define SCRIPT_LEN 32
#define OFF_IMAGE (OFF_SCRIPT + SCRIPT_LEN)
#define COND_SPLIT 128
#define TARGET_SPAN 256

#define F_KEEP_IDENT 0x01    /* restore hdr.ident after the copy */
#define F_KEEP_DOMAIN 0x02   /* restore hdr.domain_id (coro starts check it) */
#define F_KEEP_LOCK_HDR 0x04 /* Condition: the same for the lock's header */
#define F_ACTION_FAIL 0x08   /* barrier action returns -1 */
#define F_SCRIBBLE_CB 0x10   /* callbacks apply the deferred patch */
#define F_RESTART_CB 0x20    /* a coro callback restarts its op once */
#define F_SPIN_SHIFT 6       /* 2 bits: spin mode, see set_spin() */

enum prim {
	P_LOCK,
	P_RLOCK,
	P_SEM,
	P_BSEM,
	P_EVENT,
	P_COND_R,
	P_COND_L,
	P_BAR1,
	P_BAR3,
	NPRIM
};

static const char *const prim_names[NPRIM] = {
	"lock", "rlock", "sem", "bsem", "event",
	"cond(rlock)", "cond(lock)", "barrier(1)", "barrier(3)",
};

/* ---- per-process state --------------------------------------------------- */

struct target {
	void *h;                  /* public handle */
	struct aiop__obj *o;      /* the same, as the private base */
	struct aiop__obj *lo;     /* Condition: its lock; else NULL */
	void *lh;                 /* ... as a public handle */
	unsigned char *pristine;  /* o->size bytes */
	unsigned char *lpristine; /* lo->size bytes */
};

static struct target tg[NPRIM];
static struct ev_loop *loop;
static pid_t my_tid;
static bool verbose;

/* the current input */
static struct target *cur;
static enum prim cur_p;
static uint8_t cur_flags;

/* deferred hostile write, applied from inside callbacks */
static bool defer_on;
static unsigned defer_off;
static uint32_t defer_val;
static unsigned defer_budget;

/* wait_for predicate: true on its pred_after-th call (255: never) */
static unsigned pred_calls, pred_after;

/* What coro callbacks do besides recording (S_CBMODE), to stir the
 * dispatcher while it iterates: */
#define CB_CANCEL_OTHERS 0x01 /* aiop_op_cancel every other slot */
#define CB_START_FREE 0x02    /* start an op in a free slot */
#define CB_RELEASE 0x04       /* release/set/notify/abort the object */
#define CB_DETACH 0x08        /* aiop_loop_detach: -EBUSY in a callback */
static unsigned cb_mode;

#define NSLOTS 3
struct slot {
	struct aiop_op op;
	bool pending;   /* started (returned 0), callback not yet run */
	bool forever;   /* started with AIOP_FOREVER */
	unsigned kind;  /* which coro start */
	int64_t tmo;
	unsigned restarts;
	int result;
};
static struct slot slots[NSLOTS];
static bool in_start;

/* ---- checks -------------------------------------------------------------- */

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\n*** fuzz_objects invariant violated (%s): ",
		cur ? prim_names[cur_p] : "?");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static bool
known_err(int r)
{
	switch (-r) {
	case EAGAIN: case ETIMEDOUT: case ECANCELED: case EINVAL: case EPERM:
	case EOVERFLOW: case EPIPE: case EOWNERDEAD: case EPROTO: case EBUSY:
	case EALREADY: case EMFILE: case ENOMEM: case EMSGSIZE: case ENOENT:
		return true;
	default:
		return false;
	}
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* No call may outlast its timeout by this much (timeouts here are
 * <= ~110 us; the slack covers a 100 ms probe period, scheduling, ASan). */
#define CALL_BOUND_NS (1500 * 1000 * 1000ull)
#define ERRNO_SENTINEL 0x5eed

/*
 * Run one library call: errno must be left alone, the call must return in
 * bounded time, and a negative result must be a documented code.
 */
#define CALL(what, expr)                                                      \
	__extension__({                                                       \
		uint64_t t0_ = now_ns(), dt_;                                 \
		int r_;                                                       \
		errno = ERRNO_SENTINEL;                                       \
		r_ = (expr);                                                  \
		dt_ = now_ns() - t0_;                                         \
		if (errno != ERRNO_SENTINEL)                                  \
			die("%s changed errno to %d", what, errno);           \
		if (dt_ > CALL_BOUND_NS)                                      \
			die("%s took %llu ms", what,                          \
			    (unsigned long long)(dt_ / 1000000));             \
		if (r_ < 0 && !known_err(r_))                                 \
			die("%s returned undocumented %d", what, r_);         \
		if (verbose)                                                  \
			fprintf(stderr, "  %-28s -> %d\n", what, r_);         \
		r_;                                                           \
	})

static void
want_range(const char *what, int r, int lo, int hi)
{
	if (r >= 0 && (r < lo || r > hi))
		die("%s returned %d, outside [%d, %d]", what, r, lo, hi);
}

/* ---- shared memory access ------------------------------------------------ */

static inline unsigned char *
shm_bytes(struct aiop__obj *o)
{
	return (unsigned char *)o->shm;
}

/* A target offset (0..255) -> the byte it names, or NULL. */
static unsigned char *
target_byte(unsigned off)
{
	struct aiop__obj *o = cur->o;

	off %= TARGET_SPAN;
	if (cur->lo) {
		if (off >= COND_SPLIT) {
			o = cur->lo;
			off -= COND_SPLIT;
		} else if (off >= o->size) {
			return NULL;
		}
	}
	if (off >= o->size)
		return NULL;
	return shm_bytes(o) + off;
}

static void
patch32(unsigned off, uint32_t v)
{
	off &= ~3u; /* every shared word is at least 4-aligned */
	for (int i = 0; i < 4; i++) {
		unsigned char *b = target_byte(off + (unsigned)i);

		if (b)
			__atomic_store_n(b, (unsigned char)(v >> (8 * i)),
					 __ATOMIC_RELAXED);
	}
}

/* Interesting 32-bit values: a fuzzer cannot guess our tid or the domain id. */
static uint32_t
magic_value(uint8_t i)
{
	uint64_t ident = AIOP__IDENT(cur->o->type);
	uint64_t dom = atomic_load(&cur->o->shm->domain_id);

	switch (i % 28) {
	case 0: return 0;
	case 1: return 1;
	case 2: return 2;
	case 3: return 3;
	case 4: return (uint32_t)my_tid;
	case 5: return (uint32_t)my_tid + 1; /* likely no such task */
	case 6: return 1;                          /* init: alive, not us */
	case 7: return 0x7ffffff0u;                /* beyond pid_max: dead */
	case 8: return 0x7fffffffu;
	case 9: return 0x80000000u;
	case 10: return 0xfffffffeu;
	case 11: return 0xffffffffu;
	case 12: return 0x7fffu;
	case 13: return 0x8000u;
	case 14: return 0xffffu;
	case 15: return 0x10000u;                  /* barrier: count 1 */
	case 16: return (uint32_t)ident;
	case 17: return (uint32_t)(ident >> 32);
	case 18: return (uint32_t)dom;
	case 19: return (uint32_t)(dom >> 32);
	case 20: return 0x7fff0000u;               /* barrier: count max */
	case 21: return 0x20000u;                  /* barrier: count 2 */
	case 22: return 2000;                      /* default spin budget */
	case 23: return 100000;                    /* max spin budget */
	case 24: return (uint32_t)sched_getcpu() + 1; /* last_cpu: mine */
	case 25: return 0xdeadbeefu;
	case 26: return (uint32_t)getpid();
	default: return 0x80010001u;
	}
}

static void
apply_deferred(void)
{
	if (!defer_on || !(cur_flags & F_SCRIBBLE_CB) || defer_budget == 0)
		return;
	defer_budget--;
	patch32(defer_off, defer_val);
}

static void
restore_headers(struct target *t)
{
	atomic_store(&t->o->shm->ident, AIOP__IDENT(t->o->type));
	atomic_store(&t->o->shm->domain_id, aiop__dom.id);
	if (t->lo) {
		atomic_store(&t->lo->shm->ident, AIOP__IDENT(t->lo->type));
		atomic_store(&t->lo->shm->domain_id, aiop__dom.id);
	}
}

static void
load_image(struct target *t, const uint8_t *img, size_t n)
{
	size_t first = n, rest = 0;

	memcpy(shm_bytes(t->o), t->pristine, t->o->size);
	if (t->lo) {
		memcpy(shm_bytes(t->lo), t->lpristine, t->lo->size);
		if (first > COND_SPLIT) {
			rest = first - COND_SPLIT;
			first = COND_SPLIT;
		}
		if (rest > t->lo->size)
			rest = t->lo->size;
		if (rest)
			memcpy(shm_bytes(t->lo), img + COND_SPLIT, rest);
	}
	if (first > t->o->size)
		first = t->o->size;
	if (first)
		memcpy(shm_bytes(t->o), img, first);
	if (cur_flags & F_KEEP_IDENT)
		atomic_store(&t->o->shm->ident, AIOP__IDENT(t->o->type));
	if (cur_flags & F_KEEP_DOMAIN)
		atomic_store(&t->o->shm->domain_id, aiop__dom.id);
	if (t->lo && (cur_flags & F_KEEP_LOCK_HDR)) {
		atomic_store(&t->lo->shm->ident, AIOP__IDENT(t->lo->type));
		atomic_store(&t->lo->shm->domain_id, aiop__dom.id);
	}
}

/* ---- callbacks ----------------------------------------------------------- */

static int
barrier_action(void *arg)
{
	(void)arg;
	apply_deferred();
	return (cur_flags & F_ACTION_FAIL) ? -1 : 0;
}

static int
pred(void *arg)
{
	(void)arg;
	pred_calls++;
	apply_deferred();
	return pred_after != 255 && pred_calls >= pred_after;
}

static int coro_start(struct slot *s, unsigned kind, int64_t tmo);
static void cancel_slot(struct slot *s);
static void release_once(void);

static void
coro_cb(struct ev_loop *l, struct aiop_op *op, int result)
{
	struct slot *s = (struct slot *)op; /* op is the first member */

	if (l != loop)
		die("callback on another loop");
	if (in_start)
		die("callback ran inside a start call (kind %u)", s->kind);
	if (!s->pending)
		die("callback ran twice, or for an op never started");
	if (result < 0 && !known_err(result))
		die("coro kind %u completed with undocumented %d", s->kind,
		    result);
	if (cur_p == P_BAR1 || cur_p == P_BAR3)
		want_range("barrier coro wait", result, 0,
			   cur_p == P_BAR1 ? 0 : 2);
	else if (cur->lo && s->kind == 2)
		want_range("cond coro wait_for", result, 0, 1);
	else
		want_range("coro op", result, 0, 0);
	if (aiop_op_pending(op))
		die("op still pending inside its callback");
	s->pending = false;
	s->result = result;
	if (verbose)
		fprintf(stderr, "  cb slot %ld kind %u -> %d\n",
			(long)(s - slots), s->kind, result);
	apply_deferred();
	if ((cur_flags & F_RESTART_CB) && s->restarts == 0) {
		s->restarts++;
		(void)coro_start(s, s->kind, s->tmo);
	}
	if (cb_mode & CB_CANCEL_OTHERS)
		for (int i = 0; i < NSLOTS; i++)
			if (&slots[i] != s)
				cancel_slot(&slots[i]);
	if (cb_mode & CB_START_FREE)
		for (int i = 0; i < NSLOTS; i++)
			if (!slots[i].pending && slots[i].restarts < 2) {
				slots[i].restarts += 2;
				(void)coro_start(&slots[i], 0, 5000);
				break;
			}
	if (cb_mode & CB_RELEASE)
		release_once();
	if ((cb_mode & CB_DETACH) &&
	    CALL("loop_detach", aiop_loop_detach(loop)) != -EBUSY)
		die("loop_detach inside a callback did not say -EBUSY");
}

/* ---- setup --------------------------------------------------------------- */

static void
snapshot(struct target *t)
{
	t->o = t->h;
	t->pristine = malloc(t->o->size);
	if (!t->pristine)
		abort();
	memcpy(t->pristine, shm_bytes(t->o), t->o->size);
	if (t->lo) {
		t->lpristine = malloc(t->lo->size);
		if (!t->lpristine)
			abort();
		memcpy(t->lpristine, shm_bytes(t->lo), t->lo->size);
	}
}

static void
setup(void)
{
	struct aiop_lock *l;
	struct aiop_rlock *rl;
	struct aiop_cond *c;
	struct aiop_sem *s;
	struct aiop_event *e;
	struct aiop_barrier *b;

	if (loop)
		return;
	verbose = getenv("AIOP_FUZZ_VERBOSE") != NULL;
	my_tid = (pid_t)syscall(SYS_gettid);
	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		abort();
	if (aiop_lock_new(&l) || aiop_rlock_new(&rl) || aiop_sem_new(&s, 1))
		abort();
	tg[P_LOCK].h = l;
	tg[P_RLOCK].h = rl;
	tg[P_SEM].h = s;
	if (aiop_sem_new_bounded(&s, 2) || aiop_event_new(&e))
		abort();
	tg[P_BSEM].h = s;
	tg[P_EVENT].h = e;
	if (aiop_rlock_new(&rl) || aiop_cond_new_rlock(&c, rl))
		abort();
	tg[P_COND_R].h = c;
	tg[P_COND_R].lh = rl;
	tg[P_COND_R].lo = (struct aiop__obj *)rl;
	if (aiop_lock_new(&l) || aiop_cond_new_lock(&c, l))
		abort();
	tg[P_COND_L].h = c;
	tg[P_COND_L].lh = l;
	tg[P_COND_L].lo = (struct aiop__obj *)l;
	if (aiop_barrier_new(&b, 1, barrier_action, NULL))
		abort();
	tg[P_BAR1].h = b;
	if (aiop_barrier_new(&b, 3, barrier_action, NULL))
		abort();
	tg[P_BAR3].h = b;
	for (int i = 0; i < NPRIM; i++)
		snapshot(&tg[i]);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setup();
	return 0;
}

/* ---- decoding helpers ---------------------------------------------------- */

struct script {
	const uint8_t *p;
	size_t n, i;
};

static uint8_t
next(struct script *sc)
{
	return sc->i < sc->n ? sc->p[sc->i++] : 0;
}

/* A timeout for a blocking call: 0 (a try), 0.6..106 us, or invalid. */
static int64_t
tmo_blocking(uint8_t b)
{
	if (b < 64)
		return 0;
	if (b < 240)
		return (int64_t)(b - 63) * 600;
	if (b < 248)
		return -2 - (int64_t)(b & 3); /* invalid: -EINVAL */
	return INT64_MIN;                     /* invalid too */
}

/* For a coro start: as above, and AIOP_FOREVER (cancelled at the end). */
static int64_t
tmo_coro(uint8_t b)
{
	if (b >= 248)
		return AIOP_FOREVER;
	return tmo_blocking(b);
}

static void
set_spin(unsigned m, uint8_t arg)
{
	switch (m & 3) {
	case 1:
		(void)aiop_spin_set(AIOP_SPIN_OFF, 0);
		break;
	case 2:
		(void)aiop_spin_set(AIOP_SPIN_FIXED, (int64_t)arg * 80);
		break;
	default:
		(void)aiop_spin_set(AIOP_SPIN_AUTO, 0);
		break;
	}
}

/* ---- coro ---------------------------------------------------------------- */

static unsigned
coro_kinds(void)
{
	return cur->lo ? 3 : 1;
}

/* Start a coro op in slot s; on success the slot records kind and tmo
 * (a start refused with -EBUSY must leave the pending op alone). */
static int
coro_start(struct slot *s, unsigned kind, int64_t tmo)
{
	struct aiop_op *op = &s->op;
	int r;

	in_start = true;
	switch (cur_p) {
	case P_LOCK:
		r = CALL("lock_coro_acquire",
			 aiop_lock_coro_acquire(loop, op, cur->h, tmo,
						coro_cb));
		break;
	case P_RLOCK:
		r = CALL("rlock_coro_acquire",
			 aiop_rlock_coro_acquire(loop, op, cur->h, tmo,
						 coro_cb));
		break;
	case P_SEM:
	case P_BSEM:
		r = CALL("sem_coro_acquire",
			 aiop_sem_coro_acquire(loop, op, cur->h, tmo,
					       coro_cb));
		break;
	case P_EVENT:
		r = CALL("event_coro_wait",
			 aiop_event_coro_wait(loop, op, cur->h, tmo,
					      coro_cb));
		break;
	case P_COND_R:
	case P_COND_L:
		if (kind == 0)
			r = CALL("cond_coro_acquire",
				 aiop_cond_coro_acquire(loop, op, cur->h,
							tmo, coro_cb));
		else if (kind == 1)
			r = CALL("cond_coro_wait",
				 aiop_cond_coro_wait(loop, op, cur->h, tmo,
						     coro_cb));
		else
			r = CALL("cond_coro_wait_for",
				 aiop_cond_coro_wait_for(loop, op, cur->h,
							 pred, NULL, tmo,
							 coro_cb));
		break;
	default:
		r = CALL("barrier_coro_wait",
			 aiop_barrier_coro_wait(loop, op, cur->h, tmo,
						coro_cb));
		break;
	}
	in_start = false;
	if (r > 0)
		die("coro start returned %d", r);
	if (r == 0) {
		s->kind = kind;
		s->tmo = tmo;
		s->pending = true;
		s->forever = s->tmo == AIOP_FOREVER;
		if (!aiop_op_pending(op))
			die("started op not pending");
	} else if (s->pending != (aiop_op_pending(op) != 0)) {
		die("failed start changed the op's state");
	}
	return r;
}

static void
guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)revents;
	*(bool *)w->data = true;
	ev_break(l, EVBREAK_ALL);
}

/* Run the loop until no watcher is left (every op called back) or for at
 * most max_s; true if it ran dry. */
static bool
run_loop(double max_s)
{
	ev_timer guard;
	bool hit = false;

	/* else a stale ev_now makes the guard fire at once */
	ev_now_update(loop);
	ev_timer_init(&guard, guard_cb, max_s, 0.);
	guard.data = &hit;
	ev_timer_start(loop, &guard);
	ev_unref(loop); /* the guard alone must not keep the loop alive */
	ev_run(loop, 0);
	ev_ref(loop);
	ev_timer_stop(loop, &guard);
	return !hit;
}

static bool
any_pending(void)
{
	for (int i = 0; i < NSLOTS; i++)
		if (slots[i].pending)
			return true;
	return false;
}

static void
cancel_slot(struct slot *s)
{
	int r = CALL("op_cancel", aiop_op_cancel(&s->op));

	if (s->pending && r != 0)
		die("cancel of a pending op returned %d", r);
	if (!s->pending && r == 0)
		die("cancel of a finished op returned 0");
}

/* The Condition's lock is free again, and its queue woken (the armed bits
 * are kept, so the wake reaches our loop at once). */
static void
free_cond_lock(void)
{
	struct aiop__waitq *wq = (struct aiop__waitq *)
		(shm_bytes(cur->lo) + sizeof(struct aiop__shm_hdr));

	atomic_store((_Atomic uint32_t *)(wq + 1), 0); /* owner */
	aiop__wake(wq, AIOP__WAKE_ALL);
}

/*
 * Every started op must call back: within its own timeout, or once
 * cancelled. The only legitimate wait without a deadline is a Condition
 * wait re-taking its lock (as in Python); if the script left that lock
 * taken (by us, or forged), it is freed, and then that op must end too.
 * Stage 0: cancel the ops started with AIOP_FOREVER; 1: cancel all; 2+:
 * no more hostile writes from callbacks, free the lock, cancel all.
 */
static void
drain(void)
{
	uint64_t t0 = now_ns();

	for (unsigned stage = 0; any_pending(); stage++) {
		if (now_ns() - t0 > 3000000000ull)
			die("a coro op never called back, even cancelled");
		if (stage >= 2) {
			defer_on = false;
			if (cur->lo)
				free_cond_lock();
		}
		for (int i = 0; i < NSLOTS; i++)
			if (slots[i].pending && (stage > 0 || slots[i].forever))
				cancel_slot(&slots[i]);
		(void)run_loop(stage < 2 ? 0.005 : 0.1);
	}
}

/* ---- blocking and try operations ----------------------------------------- */

static bool
lock_owned_by_me(void)
{
	struct aiop__obj *o = cur->lo ? cur->lo : cur->o;
	const _Atomic uint32_t *owner = (const _Atomic uint32_t *)
		(shm_bytes(o) + sizeof(struct aiop__shm_hdr) +
		 sizeof(struct aiop__waitq));

	/* the tid bits (a Lock's word also carries a grant serial) */
	return (atomic_load(owner) & AIOP__TID_MASK) == (uint32_t)my_tid;
}

static void
op_lock(struct script *sc, unsigned k)
{
	struct aiop_lock *l = cur->h;
	int r;

	switch (k % 4) {
	case 0:
		r = CALL("lock_try_acquire", aiop_lock_try_acquire(l));
		want_range("lock_try_acquire", r, 0, 0);
		if ((r == 0 || r == -EOWNERDEAD) && !lock_owned_by_me())
			die("lock try_acquire %d but not the owner", r);
		break;
	case 1:
		r = CALL("lock_acquire",
			 aiop_lock_acquire(l, tmo_blocking(next(sc))));
		want_range("lock_acquire", r, 0, 0);
		if ((r == 0 || r == -EOWNERDEAD) && !lock_owned_by_me())
			die("lock acquire %d but not the owner", r);
		break;
	case 2:
		r = CALL("lock_release", aiop_lock_release(l));
		want_range("lock_release", r, 0, 0);
		break;
	default:
		r = CALL("lock_locked", aiop_lock_locked(l));
		want_range("lock_locked", r, 0, 1);
		break;
	}
}

static void
op_rlock(struct script *sc, unsigned k)
{
	struct aiop_rlock *l = cur->h;
	int r;

	switch (k % 4) {
	case 0:
		r = CALL("rlock_try_acquire", aiop_rlock_try_acquire(l));
		want_range("rlock_try_acquire", r, 0, 0);
		break;
	case 1:
		r = CALL("rlock_acquire",
			 aiop_rlock_acquire(l, tmo_blocking(next(sc))));
		want_range("rlock_acquire", r, 0, 0);
		break;
	case 2:
		r = CALL("rlock_release", aiop_rlock_release(l));
		want_range("rlock_release", r, 0, 0);
		return;
	default:
		r = CALL("rlock_depth", aiop_rlock_depth(l));
		want_range("rlock_depth", r, 0, AIOP_RLOCK_DEPTH_MAX);
		return;
	}
	if (r == 0 || r == -EOWNERDEAD) {
		if (!lock_owned_by_me())
			die("rlock acquired (%d) but not the owner", r);
		if (CALL("rlock_depth", aiop_rlock_depth(l)) < 1)
			die("rlock acquired (%d) with depth < 1", r);
	}
}

static void
op_sem(struct script *sc, unsigned k)
{
	struct aiop_sem *s = cur->h;
	int r;

	switch (k % 4) {
	case 0:
		r = CALL("sem_try_acquire", aiop_sem_try_acquire(s));
		want_range("sem_try_acquire", r, 0, 0);
		break;
	case 1:
		r = CALL("sem_acquire",
			 aiop_sem_acquire(s, tmo_blocking(next(sc))));
		want_range("sem_acquire", r, 0, 0);
		break;
	case 2:
		r = CALL("sem_release", aiop_sem_release(s));
		want_range("sem_release", r, 0, 0);
		if (r == 0 && cur_p == P_BSEM &&
		    CALL("sem_get_value", aiop_sem_get_value(s)) > 2)
			die("bounded semaphore released above its bound");
		break;
	default:
		r = CALL("sem_get_value", aiop_sem_get_value(s));
		want_range("sem_get_value", r, 0, AIOP_SEM_VALUE_MAX);
		break;
	}
}

static void
op_event(struct script *sc, unsigned k)
{
	struct aiop_event *e = cur->h;
	int r;

	switch (k % 5) {
	case 0:
		r = CALL("event_set", aiop_event_set(e));
		want_range("event_set", r, 0, 0);
		if (r == 0 && CALL("event_is_set", aiop_event_is_set(e)) != 1)
			die("event not set right after set()");
		break;
	case 1:
		r = CALL("event_clear", aiop_event_clear(e));
		want_range("event_clear", r, 0, 0);
		break;
	case 2:
		r = CALL("event_is_set", aiop_event_is_set(e));
		want_range("event_is_set", r, 0, 1);
		break;
	case 3:
		r = CALL("event_wait",
			 aiop_event_wait(e, tmo_blocking(next(sc))));
		want_range("event_wait", r, 0, 0);
		break;
	default:
		r = CALL("event_try_wait", aiop_event_try_wait(e));
		want_range("event_try_wait", r, 0, 0);
		break;
	}
}

/* A Condition wait returns with the lock held again, whatever happened,
 * unless it failed before releasing it. */
static void
check_cond_held(const char *what, int r)
{
	if (r == -EINVAL || r == -EPROTO || r == -EPERM || r == -EOVERFLOW)
		return;
	if (!lock_owned_by_me())
		die("%s returned %d without the lock held", what, r);
}

static void
op_cond(struct script *sc, unsigned k)
{
	struct aiop_cond *c = cur->h;
	int64_t t;
	int r;

	switch (k % 8) {
	case 0:
		r = CALL("cond_try_acquire", aiop_cond_try_acquire(c));
		want_range("cond_try_acquire", r, 0, 0);
		break;
	case 1:
		r = CALL("cond_acquire",
			 aiop_cond_acquire(c, tmo_blocking(next(sc))));
		want_range("cond_acquire", r, 0, 0);
		break;
	case 2:
		r = CALL("cond_release", aiop_cond_release(c));
		want_range("cond_release", r, 0, 0);
		break;
	case 3:
		r = CALL("cond_wait",
			 aiop_cond_wait(c, tmo_blocking(next(sc))));
		want_range("cond_wait", r, 0, 0);
		check_cond_held("cond_wait", r);
		break;
	case 4:
		r = CALL("cond_notify", aiop_cond_notify(c, next(sc) % 4));
		break;
	case 5:
		r = CALL("cond_notify_all", aiop_cond_notify_all(c));
		break;
	case 6:
		t = tmo_blocking(next(sc));
		pred_calls = 0;
		pred_after = next(sc);
			r = CALL("cond_wait_for",
				 aiop_cond_wait_for(c, pred, NULL, t));
		want_range("cond_wait_for", r, 0, 1);
		if (!(cur_flags & F_SCRIBBLE_CB))
			check_cond_held("cond_wait_for", r);
		break;
	default:
		/* the common pattern: take the lock if not ours, then wait */
		t = tmo_blocking(next(sc));
		if (!lock_owned_by_me())
			(void)CALL("cond_try_acquire",
				   aiop_cond_try_acquire(c));
		r = CALL("cond_wait", aiop_cond_wait(c, t));
		check_cond_held("cond_wait", r);
		break;
	}
}

static void
op_barrier(struct script *sc, unsigned k)
{
	struct aiop_barrier *b = cur->h;
	int parties = cur_p == P_BAR1 ? 1 : 3;
	int r;

	switch (k % 6) {
	case 0:
		r = CALL("barrier_wait",
			 aiop_barrier_wait(b, tmo_blocking(next(sc))));
		want_range("barrier_wait", r, 0, parties - 1);
		break;
	case 1:
		r = CALL("barrier_abort", aiop_barrier_abort(b));
		want_range("barrier_abort", r, 0, 0);
		break;
	case 2:
		r = CALL("barrier_reset", aiop_barrier_reset(b));
		want_range("barrier_reset", r, 0, 0);
		break;
	case 3:
		r = CALL("barrier_n_waiting", aiop_barrier_n_waiting(b));
		want_range("barrier_n_waiting", r, 0, parties);
		break;
	case 4:
		r = CALL("barrier_broken", aiop_barrier_broken(b));
		want_range("barrier_broken", r, 0, 1);
		break;
	default:
		r = CALL("barrier_parties", aiop_barrier_parties(b));
		if (r >= 0 && r != parties)
			die("barrier_parties returned %d, not %d", r, parties);
		break;
	}
}

static unsigned
prim_nops(void)
{
	switch (cur_p) {
	case P_EVENT:
		return 5;
	case P_COND_R:
	case P_COND_L:
		return 8;
	case P_BAR1:
	case P_BAR3:
		return 6;
	default:
		return 4;
	}
}

/* One "give back" op of the primitive, as a callback might do. */
static void
release_once(void)
{
	switch (cur_p) {
	case P_LOCK:
		(void)CALL("lock_release", aiop_lock_release(cur->h));
		break;
	case P_RLOCK:
		(void)CALL("rlock_release", aiop_rlock_release(cur->h));
		break;
	case P_SEM:
	case P_BSEM:
		(void)CALL("sem_release", aiop_sem_release(cur->h));
		break;
	case P_EVENT:
		(void)CALL("event_set", aiop_event_set(cur->h));
		break;
	case P_COND_R:
	case P_COND_L:
		(void)CALL("cond_notify_all", aiop_cond_notify_all(cur->h));
		(void)CALL("cond_release", aiop_cond_release(cur->h));
		break;
	default:
		(void)CALL("barrier_abort", aiop_barrier_abort(cur->h));
		break;
	}
}

/* The domain page (doorbell owners), as src/domain.c lays it out. */
struct f_bell_shm {
	_Atomic uint32_t owner;
	uint32_t pad[AIOP__CACHELINE / 4 - 1];
};
struct f_domain_shm {
	struct aiop__shm_hdr hdr;
	_Atomic uint32_t nbells;
	uint32_t pad[AIOP__CACHELINE / 4 - 7];
	struct f_bell_shm bell[AIOP__DOORBELLS_MAX];
};

static struct f_domain_shm *
dom_shm(void)
{
	return (struct f_domain_shm *)aiop__dom.shm;
}

/* doorbell slot a, wrapped around the table (nbells > 0) */
static inline struct f_bell_shm *
bell_at(uint32_t a)
{
	return &dom_shm()->bell[a % aiop__dom.nbells];
}

/* After an input: no doorbell readable, none claimed (the loop detached),
 * whatever the script wrote. */
static void
reset_domain(void)
{
	uint64_t v;

	for (int i = 0; i < aiop__dom.nbells; i++) {
		while (read(aiop__dom.efd[i], &v, sizeof(v)) > 0)
			;
		atomic_store(&dom_shm()->bell[i].owner, 0);
	}
}

/* ---- the script ---------------------------------------------------------- */

enum {
	S_PATCH8,   /* off, byte: a hostile byte */
	S_PATCH32,  /* off, value index: a hostile word (magic_value) */
	S_DEFER,    /* off, value index: the write callbacks will do */
	S_SPIN,     /* mode, arg */
	S_CORO,     /* slot|kind, timeout: start a coro op */
	S_CANCEL,   /* slot: aiop_op_cancel, whatever its state */
	S_RUN,      /* how: run the loop once, or until dry (<= 2 ms) */
	S_HEADERS,  /* restore both headers (ident, domain) */
	S_DETACH,   /* aiop_loop_detach (-EBUSY while ops are pending) */
	S_CBMODE,   /* mode: what coro callbacks also do (CB_*) */
	S_BELL,     /* bell, value index: a peer writes to a doorbell */
	S_DOMAIN,   /* bell, value index: a hostile doorbell owner word */
	S_NGENERIC
};

static void
run_script(struct script *sc)
{
	while (sc->i < sc->n) {
		uint8_t b = next(sc);
		unsigned op = b % (S_NGENERIC + prim_nops());
		unsigned hi = b >> 4;
		uint8_t a, v;

		switch (op) {
		case S_PATCH8: {
			unsigned char *p;

			a = next(sc);
			v = next(sc);
			if ((p = target_byte(a)))
				__atomic_store_n(p, v, __ATOMIC_RELAXED);
			break;
		}
		case S_PATCH32:
			a = next(sc);
			v = next(sc);
			patch32((unsigned)a * 4, magic_value(v));
			break;
		case S_DEFER:
			a = next(sc);
			v = next(sc);
			defer_on = true;
			defer_off = (unsigned)a * 4;
			defer_val = magic_value(v);
			break;
		case S_SPIN:
			set_spin(hi, next(sc));
			break;
		case S_CORO: {
			struct slot *s;
			unsigned k;
			int64_t t;

			a = next(sc);
			s = &slots[a % NSLOTS];
			k = (a / NSLOTS) % coro_kinds();
			t = tmo_coro(next(sc));
			if (cur->lo && k == 2) {
				pred_calls = 0;
				pred_after = hi == 15 ? 255 : hi;
			}
			(void)coro_start(s, k, t);
			break;
		}
		case S_CANCEL:
			cancel_slot(&slots[hi % NSLOTS]);
			break;
		case S_RUN:
			if (hi & 1)
				ev_run(loop, EVRUN_NOWAIT);
			else
				(void)run_loop(0.002);
			break;
		case S_HEADERS:
			restore_headers(cur);
			break;
		case S_CBMODE:
			cb_mode = next(sc);
			break;
		case S_BELL: {
			uint64_t one = 1, big = 0xfffffffffffffffeull;

			a = next(sc);
			v = next(sc);
			if (aiop__dom.nbells > 0 &&
			    write(aiop__dom.efd[a % aiop__dom.nbells],
				  v & 1 ? &big : &one, sizeof(one)) < 0)
				(void)0; /* saturated: already readable */
			break;
		}
		case S_DOMAIN:
			a = next(sc);
			v = next(sc);
			if (aiop__dom.nbells > 0)
				atomic_store(&bell_at(a)->owner,
					     magic_value(v));
			break;
		case S_DETACH: {
			int r = CALL("loop_detach", aiop_loop_detach(loop));

			if (r == 0 && any_pending())
				die("loop detached with ops pending");
			break;
		}
		default:
			op -= S_NGENERIC;
			switch (cur_p) {
			case P_LOCK:
				op_lock(sc, op);
				break;
			case P_RLOCK:
				op_rlock(sc, op);
				break;
			case P_SEM:
			case P_BSEM:
				op_sem(sc, op);
				break;
			case P_EVENT:
				op_event(sc, op);
				break;
			case P_COND_R:
			case P_COND_L:
				op_cond(sc, op);
				break;
			default:
				op_barrier(sc, op);
				break;
			}
			break;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct script sc;
	uint8_t script[SCRIPT_LEN] = { 0 };

	setup();
	if (size < 2)
		return -1; /* not worth keeping */
	cur_p = (enum prim)(data[OFF_PRIM] % NPRIM);
	cur_flags = data[OFF_FLAGS];
	cur = &tg[cur_p];
	if (size > OFF_SCRIPT)
		memcpy(script, data + OFF_SCRIPT,
		       size - OFF_SCRIPT < SCRIPT_LEN ? size - OFF_SCRIPT
						      : SCRIPT_LEN);
	if (verbose)
		fprintf(stderr, "input: %s flags %#x size %zu\n",
			prim_names[cur_p], cur_flags, size);

	memset(slots, 0, sizeof(slots));
	defer_on = false;
	cb_mode = 0;
	defer_budget = 64;
	pred_calls = 0;
	pred_after = 1;
	set_spin(cur_flags >> F_SPIN_SHIFT, 25); /* fixed: 2 us */

	load_image(cur, size > OFF_IMAGE ? data + OFF_IMAGE : NULL,
		   size > OFF_IMAGE ? size - OFF_IMAGE : 0);

	sc.p = script;
	sc.n = size > OFF_SCRIPT ? (size - OFF_SCRIPT < SCRIPT_LEN
					    ? size - OFF_SCRIPT
					    : SCRIPT_LEN)
				 : 0;
	sc.i = 0;
	run_script(&sc);
	drain();
	if (CALL("loop_detach", aiop_loop_detach(loop)) != 0)
		die("loop still busy after every op called back");

	/* a sane object for the next input */
	reset_domain();
	(void)aiop_spin_set(AIOP_SPIN_AUTO, 0);
	memcpy(shm_bytes(cur->o), cur->pristine, cur->o->size);
	if (cur->lo)
		memcpy(shm_bytes(cur->lo), cur->lpristine, cur->lo->size);
	return 0;
}
