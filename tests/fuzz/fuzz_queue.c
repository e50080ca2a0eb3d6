/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the message queue over hostile shared memory (issue 5).
 *
 * A sibling of fuzz_objects.c rather than a part of it: a queue's shared
 * state is a 4096-byte ring of records plus a header, far more than the
 * 256-byte "target offsets" and the one-object image that target is built
 * around, and its operations carry buffers, lengths and held messages.
 *
 * The fuzzer owns the whole shared state of a small queue (capacity 4096; a
 * plain one, or a joinable one with maxsize 3): every header word (tail, its
 * consumers' cached copy tail_seen, release, its producers' cached copy
 * rel_seen, the head hint, plock, plock_wait, closed, nres, nfin, ncommit,
 * nclaimed, res_stop, need, ndone, ndrop, the journals, the three wait queues)
 * and every ring byte, record headers and lengths included. The input gives an
 * image of it, then a script of operations: try_put, put (short timeouts, up to
 * 1 ms), try_get and get with small and large buffers, try_put_many,
 * try_get_many, reserve + commit/abort, peek + release/unpeek, qsize, empty,
 * full, msg_max, task_done and join on a JoinableQueue, close, the coro forms
 * of put, get, put_many, get_many, reserve, peek and join, with cancels, wrong
 * uses of held messages, calls from short-lived threads (whose first try probes
 * for dead owners, and which can die holding a claim or a reservation), and
 * hostile writes between calls and from inside callbacks (between a coro op's
 * grant and its completion, where the library reads the record again). What is
 * checked, whatever the memory holds:
 *
 *  - no crash, no out-of-bounds access, no UB (ASan, UBSan; a PROT_NONE
 *    page right after each queue's mapping, when the address space allows
 *    it, turns a read past the ring's end into a crash: ASan does not see
 *    into shared mappings);
 *  - no hang: every call returns within 1.5 s of its deadline (with
 *    AIOP_FUZZ_LATE_MS=n: n ms), every coro op calls back exactly once,
 *    never inside its start call; errno untouched;
 *  - every result is one this call documents (aiop/queue.h, aiop/ev.h):
 *    a get returns 0..min(cap, msg_max) bytes and says so in *msg_len; an
 *    -EMSGSIZE get reports a length above cap; a get_many 1..max messages
 *    whose lengths fit the buffer; put_many n; a reserved or peeked
 *    message lies inside the ring and has at most msg_max bytes.
 *
 * And while the memory is only ever written by the library (a pristine
 * image, no hostile write, no coro op: a single thread, so the outcome of
 * every call is determined), a model of the queue must agree with it
 * exactly: the result of every call, the bytes of every message (each
 * carries a pattern derived from its sequence number), and the shared
 * words tail, release, nres - nfin, closed and nres - ndrop - ndone.
 *
 * Input layout:
 *   [0]            flags (F_* below)
 *   [1..64]        script: SCRIPT_LEN bytes, decoded by run_script()
 *   [65..]         image: the first IMG_HDR bytes go over the header at
 *                  offset 0, the next QCAP over the ring; bytes past the
 *                  end of the input keep their pristine values (an empty
 *                  queue)
 *
 * The queues are created once per process; before each input their whole
 * mapping is reset from a pristine snapshot, and every coro op is driven to
 * completion (cancelled if need be) before the input ends. Never forks.
 *
 * tests/fuzz/gen_corpus.py writes the seed corpus (corpus-queue/).
 */
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <ev.h>

#include "aiop.h"
#include "aiop/ev.h"
#include "internal.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* ---- the shared layout (src/queue_shm.h, checked at setup) -------------- */

#include "queue_shm.h"

#define QCAP 4096u
#define fq_rec rec
#define fq_shm q_shm

/* the ring starts at the next page boundary after the header */
#define RING_OFF ((sizeof(struct fq_shm) + 4095) & ~(size_t)4095)
#define IMG_HDR sizeof(struct fq_shm)

/* ---- input format -------------------------------------------------------- */

#define OFF_FLAGS 0
#define OFF_SCRIPT 1
#define SCRIPT_LEN 64
#define OFF_IMAGE (OFF_SCRIPT + SCRIPT_LEN)

#define F_JOINABLE 0x01    /* the small joinable queue (maxsize 3) */
#define F_KEEP_IDENT 0x02  /* restore hdr.ident after the image */
#define F_KEEP_DOMAIN 0x04 /* restore hdr.domain_id (coro starts check it) */
#define F_SCRIBBLE_CB 0x08 /* callbacks apply the deferred patch */
#define F_SPIN_SHIFT 6     /* 2 bits: spin mode, see set_spin() */

/* ---- per-process state --------------------------------------------------- */

struct target {
	struct aiop_queue *q;
	struct aiop__obj *o;
	unsigned char *shm;       /* the mapping, o->size bytes */
	unsigned char *ring;      /* shm + RING_OFF, QCAP bytes */
	unsigned char *pristine;  /* o->size bytes */
	uint32_t msg_max, maxsize;
	bool joinable, guarded;
};

static struct target tg[2];
static struct ev_loop *loop;
static uint32_t my_tid; /* as the library records it (TID_MASK) */
static bool verbose;

static struct target *cur;
static uint8_t cur_flags;

static inline struct fq_shm *
S(void)
{
	return (struct fq_shm *)cur->shm;
}

/* ---- checks -------------------------------------------------------------- */

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\n*** fuzz_queue invariant violated (%s queue): ",
		cur && cur->joinable ? "joinable" : "plain");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* the -errno values aiop/queue.h and aiop/ev.h document for a queue */
#define E_AGAIN (1u << 0)
#define E_TIMEDOUT (1u << 1)
#define E_CANCELED (1u << 2)
#define E_INVAL (1u << 3)
#define E_PIPE (1u << 4)
#define E_PROTO (1u << 5)
#define E_MSGSIZE (1u << 6)
#define E_OVERFLOW (1u << 7)
#define E_BUSY (1u << 8)
#define E_ALREADY (1u << 9)

static unsigned
err_bit(int r)
{
	switch (-r) {
	case EAGAIN: return E_AGAIN;
	case ETIMEDOUT: return E_TIMEDOUT;
	case ECANCELED: return E_CANCELED;
	case EINVAL: return E_INVAL;
	case EPIPE: return E_PIPE;
	case EPROTO: return E_PROTO;
	case EMSGSIZE: return E_MSGSIZE;
	case EOVERFLOW: return E_OVERFLOW;
	case EBUSY: return E_BUSY;
	case EALREADY: return E_ALREADY;
	default: return 0;
	}
}

/* what a wait with this timeout may give besides its own errors */
static unsigned
tmo_errs(int64_t t)
{
	if (t == 0)
		return E_AGAIN;
	if (t < 0 && t != AIOP_FOREVER)
		return E_INVAL;
	return E_TIMEDOUT;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* No call may outlast its timeout (<= 1 ms here) by this much: the slack
 * covers the 100 ms owner probe period, scheduling and ASan. */
#define CALL_BOUND_NS (1500 * 1000 * 1000ull)
#define ERRNO_SENTINEL 0x5eed

/* AIOP_FUZZ_LATE_MS=n: also fail a call that returns more than n ms after
 * its deadline (docs/security.md: a waiter returns at its deadline
 * whatever a peer writes). Off by default: on a loaded machine scheduling
 * alone can make a call late by that much. */
static uint64_t late_ns;

/* AIOP_FUZZ_NO_PLOCK=1: never leave the producer lock held by anyone
 * (crashes-queue/plock-dead-holder-*: on a busy machine a held one makes
 * calls take seconds), to look for other bugs while that one is open. */
static bool no_plock;

/*
 * Run one library call that may wait up to tmo ns (0: none): errno must
 * be left alone, the call must return in bounded time, and a negative
 * result must be one of `allowed`.
 */
#define CALL_T(what, tmo, allowed, expr)                                      \
	__extension__({                                                       \
		uint64_t t0_ = now_ns(), dt_, tmo_ = (tmo) > 0 ? (tmo) : 0;  \
		int r_;                                                       \
		errno = ERRNO_SENTINEL;                                       \
		r_ = (expr);                                                  \
		dt_ = now_ns() - t0_;                                         \
		if (errno != ERRNO_SENTINEL)                                  \
			die("%s changed errno to %d", what, errno);           \
		if (dt_ > CALL_BOUND_NS ||                                    \
		    (late_ns && dt_ > tmo_ + late_ns))                        \
			die("%s took %llu us (timeout %llu us)", what,        \
			    (unsigned long long)(dt_ / 1000),                 \
			    (unsigned long long)(tmo_ / 1000));               \
		if (r_ < 0 && !(err_bit(r_) & (allowed)))                     \
			die("%s returned undocumented %d (%s)", what, r_,     \
			    aiop_strerror(r_));                               \
		if (verbose)                                                  \
			fprintf(stderr, "  %-24s -> %d (%llu us)\n", what,   \
				r_, (unsigned long long)(dt_ / 1000));        \
		r_;                                                           \
	})
#define CALL(what, allowed, expr) CALL_T(what, 0, allowed, expr)

static void
want_range(const char *what, int r, long lo, long hi)
{
	if (r >= 0 && (r < lo || r > hi))
		die("%s returned %d, outside [%ld, %ld]", what, r, lo, hi);
}

/* Read every byte the library handed out: a range that runs past the
 * ring's end faults on the guard page. */
static unsigned
touch(const unsigned char *p, size_t n)
{
	unsigned s = 0;

	for (size_t i = 0; i < n; i++)
		s += ((const volatile unsigned char *)p)[i];
	return s;
}

/* A message handed out by reserve or peek lies inside the ring. */
static void
check_msg(const char *what, const struct aiop_msg *m)
{
	const unsigned char *d = m->data, *end = cur->ring + QCAP;

	if (d < cur->ring + HDR || d > end)
		die("%s: data %p outside the ring [%p, %p)", what, m->data,
		    (void *)cur->ring, (void *)end);
	if (m->len > cur->msg_max)
		die("%s: len %zu above msg_max %u", what, m->len,
		    cur->msg_max);
	if (m->len > (size_t)(end - d))
		die("%s: data + len runs %zu bytes past the ring's end (data "
		    "at ring offset %td, len %zu)",
		    what, m->len - (size_t)(end - d), d - cur->ring, m->len);
	(void)touch(d, m->len);
}

/* ---- payloads ------------------------------------------------------------ */

static inline uint8_t
pat(uint32_t seq, size_t i)
{
	return (uint8_t)(seq * 167u + (uint32_t)i * 13u + 1u);
}

static void
fill(unsigned char *p, size_t n, uint32_t seq)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(seq, i);
}

static bool
pat_ok(const unsigned char *p, size_t n, uint32_t seq)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat(seq, i))
			return false;
	return true;
}

static uint32_t next_seq; /* sequence of the next message we make */

/* Message lengths a script byte selects: small, at the ring's and the
 * queue's limits, and far above them. */
static size_t
len_sel(uint8_t b)
{
	static const size_t t[16] = {
		0, 1, 7, 15, 16, 17, 31, 100, 101, 500, 1000, 2000,
		0 /* msg_max */, 1 /* msg_max + 1 */, 4096, (size_t)1 << 40,
	};
	size_t v = t[b % 16];

	if (b % 16 == 12)
		return cur->msg_max;
	if (b % 16 == 13)
		return cur->msg_max + 1;
	return v;
}

/* Receive buffer sizes. */
static size_t
cap_sel(uint8_t b)
{
	static const size_t t[12] = {
		0, 1, 15, 16, 17, 100, 101, 2016, 4096, 7, 500, 2017,
	};

	return t[b % 12];
}

/* A timeout: 0.5..100 us mostly, 1 ms, a try, or invalid. */
static int64_t
tmo_sel(uint8_t b)
{
	if (b < 200)
		return (int64_t)(b + 1) * 500;
	if (b < 244)
		return 1000000;
	if (b < 252)
		return 0;
	return -5 - (int64_t)(b & 3); /* -EINVAL */
}

/* For a coro start: as above, and AIOP_FOREVER (cancelled at the end). */
static int64_t
tmo_coro(uint8_t b)
{
	return b >= 254 ? AIOP_FOREVER : tmo_sel(b);
}

/* A buffer for len bytes of message seq (huge lengths, which the library
 * must reject before reading, get a page). */
static unsigned char *
payload(size_t len, uint32_t seq)
{
	size_t n = len > 4096 ? 4096 : len;
	unsigned char *p = malloc(n ? n : 1);

	if (!p)
		abort();
	fill(p, n, seq);
	return p;
}

/* ---- the model: what a correct queue does, single-threaded --------------- */

enum { M_RES, M_COMMIT, M_CLAIM, M_FREE, M_PAD };

struct ment {
	uint64_t pos;
	uint32_t rsize, len;
	uint32_t seq;
	uint8_t st;
};

#define MAXENT 512
static struct ment mq[MAXENT]; /* records from release to tail, in order */
static unsigned mn;
static uint64_t mtail;
static bool mclosed;
/* nres - ndrop - ndone: a task_done accepted against an open reservation
 * that is then aborted takes it below 0 (docs/queue.md) */
static int64_t munfinished;
static bool model_on; /* the memory is the library's alone */

static void
model_off(const char *why)
{
	if (model_on && verbose)
		fprintf(stderr, "  (model off: %s)\n", why);
	model_on = false;
}

static uint64_t
mrel(void)
{
	return mn ? mq[0].pos : mtail;
}

static unsigned
mlive(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < mn; i++)
		n += mq[i].st == M_RES || mq[i].st == M_COMMIT ||
		     mq[i].st == M_CLAIM;
	return n;
}

/* release passes FREE and PAD records at the front */
static void
mpop(void)
{
	unsigned k = 0;

	while (k < mn && (mq[k].st == M_FREE || mq[k].st == M_PAD))
		k++;
	memmove(mq, mq + k, (mn - k) * sizeof(mq[0]));
	mn -= k;
}

static struct ment *
mfind(uint64_t pos)
{
	for (unsigned i = 0; i < mn; i++)
		if (mq[i].pos == pos)
			return &mq[i];
	return NULL;
}

static inline uint64_t
rsize_of(size_t len)
{
	return HDR + (((uint64_t)len + 15u) & ~(uint64_t)15u);
}

/*
 * Where release may be: the first record, or (lazy) past the PADs at the
 * front. A PAD that a put left at the front is passed only when release
 * is next advanced: after a consume or a drop, or when a producer out of
 * room probes for dead peers (every 100 ms per thread: timing decides).
 */
static uint64_t
mrel_lazy(void)
{
	unsigned k = 0;

	while (k < mn && (mq[k].st == M_FREE || mq[k].st == M_PAD))
		k++;
	return k < mn ? mq[k].pos : mtail;
}

/* Where a batch laid out from mtail ends (a PAD where one would cross the
 * end of the ring); *sum: its records' bytes alone. */
static uint64_t
mlayout(const size_t *lens, unsigned n, uint64_t *sum)
{
	uint64_t p = mtail;

	*sum = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t rs = rsize_of(lens[i]);

		if (QCAP - (p & (QCAP - 1)) < rs)
			p += QCAP - (p & (QCAP - 1));
		p += rs;
		*sum += rs;
	}
	return p;
}

/*
 * A put of n messages with release at rel: its result as the library must
 * give it (ok for success), in the order the checks are made: a bad
 * timeout, a message over msg_max, closed, more than the ring or maxsize
 * can ever hold, no room now (-EAGAIN for a try, else -ETIMEDOUT).
 */
static int
mput_result(const size_t *lens, unsigned n, int64_t t, uint64_t rel, int ok)
{
	uint64_t need, sum;
	int busy = t == 0 ? -EAGAIN : -ETIMEDOUT;

	if (t < 0)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		if (lens[i] > cur->msg_max)
			return -EMSGSIZE;
	if (mclosed)
		return -EPIPE;
	need = mlayout(lens, n, &sum) - mtail; /* above QCAP: mlead() */
	if (sum > QCAP)
		return -EMSGSIZE;
	if (cur->maxsize) {
		if (n > cur->maxsize)
			return -EMSGSIZE;
		if (mlive() > cur->maxsize - n)
			return busy;
	}
	if (need > QCAP - (mtail - rel))
		return busy;
	return ok;
}

/*
 * A batch that fits from the start of a lap but not from mtail: reserve()
 * first publishes a PAD to the end of the lap (when there is room for it,
 * and whether or not the batch then fits) and moves release over the PADs
 * and FREE records at the front. Whether it did, the real tail says.
 */
static void
mlead(const size_t *lens, unsigned n)
{
	uint64_t sum, lead, p = mlayout(lens, n, &sum);

	if (sum > QCAP || p - mtail <= QCAP ||
	    atomic_load(&S()->tail) == mtail)
		return;
	if (mn + 1 > MAXENT)
		die("model: more than %d records", MAXENT);
	lead = QCAP - (mtail & (QCAP - 1));
	mq[mn++] = (struct ment){ .pos = mtail, .rsize = (uint32_t)lead,
				  .st = M_PAD };
	mtail += lead;
	mpop();
}

/* The model predicted `want`, the library said `r`. */
static void
model_want(const char *what, int r, int want)
{
	if (model_on && r != want)
		die("%s returned %d (%s), the model says %d (%s)", what, r,
		    r < 0 ? aiop_strerror(r) : "ok", want,
		    want < 0 ? aiop_strerror(want) : "ok");
}

/* The library's put said r: one of the two outcomes the model allows. */
static void
mput_expect(const char *what, int r, const size_t *lens, unsigned n,
	    int64_t t, int ok)
{
	int now = mput_result(lens, n, t, mrel(), ok);
	int lazy = mput_result(lens, n, t, mrel_lazy(), ok);

	if (r == now)
		return;
	if (r != lazy)
		model_want(what, r, now);
	mpop(); /* a probe passed the PADs at the front, then it fitted */
}

/* Append n records (RES or COMMIT); the first one's position. */
static uint64_t
mput_do(const size_t *lens, const uint32_t *seqs, unsigned n, uint8_t st)
{
	uint64_t first = 0;

	for (unsigned i = 0; i < n; i++) {
		uint64_t rs = rsize_of(lens[i]), left;

		if (mn + 2 > MAXENT)
			die("model: more than %d records", MAXENT);
		left = QCAP - (mtail & (QCAP - 1));
		if (left < rs) { /* a PAD to the end of the ring */
			mq[mn++] = (struct ment){ .pos = mtail,
						  .rsize = (uint32_t)left,
						  .st = M_PAD };
			mtail += left;
		}
		mq[mn++] = (struct ment){ .pos = mtail, .rsize = (uint32_t)rs,
					  .len = (uint32_t)lens[i],
					  .seq = seqs[i], .st = st };
		if (i == 0)
			first = mtail;
		mtail += rs;
	}
	if (cur->joinable) /* counted from the reservation */
		munfinished += n;
	return first;
}

/*
 * A get of up to max messages with a buffer of cap bytes (peek: no cap):
 * the index of the first record it takes and how many, or the error.
 * Scans as claim() does: skip records others hold or that are gone, stop
 * at an uncommitted one (FIFO), then take a run of committed ones (PADs
 * between them do not end it) that fits.
 */
static int
mget(size_t cap, unsigned max, bool peek, unsigned *first, uint32_t *flen)
{
	unsigned i = 0, n = 0;
	size_t bytes = 0;

	while (i < mn && (mq[i].st == M_CLAIM || mq[i].st == M_FREE ||
			  mq[i].st == M_PAD))
		i++;
	if (i == mn)
		return mclosed ? -EPIPE : -EAGAIN;
	if (mq[i].st == M_RES)
		return -EAGAIN; /* not -EPIPE even if closed: one is coming */
	*first = i;
	*flen = mq[i].len;
	if (!peek && mq[i].len > cap)
		return -EMSGSIZE;
	for (unsigned j = i; j < mn && n < max; j++) {
		if (mq[j].st == M_PAD)
			continue;
		if (mq[j].st != M_COMMIT)
			break;
		if (n > 0 && mq[j].len > cap - bytes)
			break;
		n++;
		bytes += mq[j].len;
	}
	return (int)n;
}

/* The shared words agree with the model. */
static void
model_check(const char *after)
{
	struct fq_shm *s = S();
	uint64_t tail, rel, live;

	if (!model_on)
		return;
	tail = atomic_load(&s->tail);
	rel = atomic_load(&s->release);
	if (rel != mrel() && rel == mrel_lazy())
		mpop(); /* a put out of room probed: release passed PADs */
	live = atomic_load(&s->nres) - atomic_load(&s->nfin);
	if (tail != mtail || rel != mrel() || live != mlive())
		die("after %s: tail %llu release %llu live %llu, the model "
		    "says %llu %llu %u",
		    after, (unsigned long long)tail, (unsigned long long)rel,
		    (unsigned long long)live, (unsigned long long)mtail,
		    (unsigned long long)mrel(), mlive());
	if ((atomic_load(&s->closed) != 0) != mclosed)
		die("after %s: closed %u, the model says %d", after,
		    atomic_load(&s->closed), mclosed);
	if (cur->joinable &&
	    (int64_t)(atomic_load(&s->nres) - atomic_load(&s->ndrop) -
		      atomic_load(&s->ndone)) != munfinished)
		die("after %s: unfinished %lld, the model says %lld", after,
		    (long long)(atomic_load(&s->nres) -
				atomic_load(&s->ndrop) -
				atomic_load(&s->ndone)),
		    (long long)munfinished);
	if (atomic_load(&s->plock) != 0)
		die("after %s: plock left held (%u)", after,
		    atomic_load(&s->plock));
}


/* ---- hostile writes ------------------------------------------------------ */

/* a thread id nobody has: beyond pid_max, within TID_MASK */
#define DEAD_TID 0x3ffff0u

/* Header words the fuzzer may set, and what kind of value suits them. */
enum fk { FK_POS, FK_COUNT, FK_TID, FK_FLAG, FK_HEAD, FK_NEED, FK_RAW };

struct field {
	uint16_t off;
	uint8_t size;
	uint8_t kind;
};

#define FLD(m, k)                                                             \
	{ offsetof(struct fq_shm, m), sizeof(((struct fq_shm *)0)->m), k }
#define WQF(w)                                                                \
	FLD(w.seq, FK_RAW), FLD(w.nsleep, FK_COUNT),                          \
		FLD(w.spin_ns, FK_RAW), FLD(w.last_cpu, FK_TID),              \
		FLD(w.armed[0], FK_RAW), FLD(w.armed[1], FK_RAW)

static const struct field fields[] = {
	FLD(tail, FK_POS),	    FLD(release, FK_POS),
	FLD(rel_seen, FK_POS),
	FLD(head, FK_HEAD),	    FLD(plock, FK_TID),
	FLD(closed, FK_FLAG),	    FLD(nres, FK_COUNT),
	FLD(nfin, FK_COUNT),	    FLD(need, FK_NEED),
	FLD(ndone, FK_COUNT),	    FLD(capacity, FK_RAW),
	FLD(msg_max, FK_RAW),	    FLD(maxsize, FK_RAW),
	FLD(flags, FK_RAW),	    FLD(hdr.size, FK_RAW),
	FLD(hdr.flags, FK_RAW),	    WQF(not_empty),
	WQF(not_full),		    WQF(all_done),
	/* the wake-up bookkeeping of 6bf56ba (appended: seeds name the
	 * fields above by index) */
	FLD(plock_wait, FK_FLAG),   FLD(ncommit, FK_COUNT),
	FLD(res_stop, FK_FLAG),	    FLD(nclaimed, FK_COUNT),
	/* the consumers' tail cache (appended likewise) */
	FLD(tail_seen, FK_POS),
	/* the journals of reserve and drop, and the drop count (appended;
	 * ndone took the place of the older unfinished) */
	FLD(j_tail, FK_RAW),	    FLD(j_nres, FK_RAW),
	FLD(ndrop, FK_COUNT),	    FLD(j_dpos, FK_POS),
	FLD(j_ndrop, FK_COUNT),	    FLD(nres_seen, FK_COUNT),
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static uint64_t
load_n(const unsigned char *p, unsigned size)
{
	return size == 8 ? __atomic_load_n((const uint64_t *)p,
					   __ATOMIC_RELAXED)
			 : __atomic_load_n((const uint32_t *)p,
					   __ATOMIC_RELAXED);
}

static void
store_n(unsigned char *p, unsigned size, uint64_t v)
{
	if (size == 8)
		__atomic_store_n((uint64_t *)p, v, __ATOMIC_RELAXED);
	else
		__atomic_store_n((uint32_t *)p, (uint32_t)v, __ATOMIC_RELAXED);
}

/* Offsets from a base: a record, a lap, the limits, carries past 2^32. */
static const int64_t deltas[32] = {
	0, 16, -16, 1, -1, 32, -32, QCAP, -(int64_t)QCAP, QCAP + 16,
	QCAP - 16, 4080, 2016, 2032, (int64_t)1 << 32, -((int64_t)1 << 32),
	(int64_t)1 << 48, INT64_MIN, 2, -2, 5, 6, -5, 48, 64, 4 * QCAP,
	-4 * (int64_t)QCAP, 8, 4095, (int64_t)1 << 44, 100, 0x7fffffff,
};

/*
 * A value for header field f: v's low 3 bits pick a base (0, the field's
 * own value, release, tail, the other counter, our tid, a dead tid, all
 * ones), the rest an offset from it. The head hint gets an encoded
 * position with its version bumped, as head_lower() writes it.
 */
static uint64_t
field_value(const struct field *f, uint8_t v)
{
	struct fq_shm *s = S();
	uint64_t base, cur_v = load_n(cur->shm + f->off, f->size), x;
	int64_t d = deltas[(v >> 3) & 31];

	switch (v & 7) {
	case 0: base = 0; break;
	case 1: base = cur_v; break;
	case 2: base = atomic_load(&s->release); break;
	case 3: base = atomic_load(&s->tail); break;
	case 4:
		base = f->off == offsetof(struct fq_shm, nres)
			       ? atomic_load(&s->nfin)
			       : atomic_load(&s->nres);
		break;
	case 5: base = my_tid; break;
	case 6: base = DEAD_TID; break;
	default: base = UINT64_MAX; break;
	}
	x = base + (uint64_t)d;
	if (f->kind == FK_HEAD && (v & 7) >= 2 && (v & 7) <= 4)
		x = ((cur_v >> H_BITS) + 1) << H_BITS | ((x >> 4) & H_MASK);
	if (f->kind == FK_TID && (v & 7) == 1)
		x = 1; /* init: alive, not us */
	return x;
}

static void
patch_field(uint8_t fsel, uint8_t v)
{
	const struct field *f = &fields[fsel % NFIELDS];

	store_n(cur->shm + f->off, f->size, field_value(f, v));
}

/* The position in [release, release + QCAP) at ring offset off. */
static uint64_t
pos_at(uint64_t off)
{
	uint64_t rel = atomic_load(&S()->release);

	return rel + ((off - rel) & (QCAP - 1));
}

static uint64_t
mk_st(uint64_t lap, unsigned kind, uint32_t tid)
{
	return lap << 32 | (uint64_t)kind << 28 | (tid & TID_MASK);
}

/*
 * A record header at ring slot `slot` (16 bytes each: every place a
 * header can be): sel & 3 picks the word, val its value. The state word is
 * built from a kind, an owner and a lap (right, next, previous, ...); the
 * lengths from tables of boundary values; sel & 3 == 3 forges a whole
 * committed record of val * 8 bytes.
 */
static void
patch_rec(uint8_t slot, uint8_t sel, uint8_t val)
{
	struct fq_rec *r = (struct fq_rec *)(cur->ring + (unsigned)slot * 16);
	uint64_t off = (unsigned)slot * 16, pos = pos_at(off);
	uint64_t lap = pos >> 12;
	const uint32_t tids[4] = { 0, my_tid, DEAD_TID, 1 /* init */ };
	uint32_t tid = tids[(val >> 3) & 3], len, rs;

	switch (sel & 3) {
	case 0: {
		static const int64_t dl[8] = { 0, 1, -1, 2, -2, 1 << 20,
					       0xffffffff, 0x80000000 };

		atomic_store(&r->st, mk_st((lap + (uint64_t)dl[val >> 5]) &
						   0xffffffffu,
					   val & 7, tid));
		break;
	}
	case 1: {
		uint32_t rsz = atomic_load(&r->rsize);
		const uint32_t t[16] = {
			0, 1, 15, 16, 17, cur->msg_max - 1, cur->msg_max,
			cur->msg_max + 1, rsz - 16, rsz - 15, rsz, 4080,
			4096, 0xffffffffu, 0x80000000u, 2000,
		};

		atomic_store(&r->len, t[val % 16]);
		break;
	}
	case 2: {
		uint32_t ln = atomic_load(&r->len);
		const uint32_t t[16] = {
			0, 8, 16, 17, 32, 48, 4080, 4096, 4112,
			(uint32_t)(QCAP - off), (uint32_t)(QCAP - off + 16),
			(uint32_t)(atomic_load(&S()->tail) - pos), 0xfffffff0u,
			0xffffffffu, (uint32_t)rsize_of(ln),
			(uint32_t)rsize_of(ln) + 16,
		};

		atomic_store(&r->rsize, t[val % 16]);
		break;
	}
	default:
		len = (uint32_t)val * 8;
		rs = (uint32_t)rsize_of(len);
		atomic_store(&r->len, len);
		atomic_store(&r->rsize, rs);
		atomic_store(&r->st, mk_st(lap & 0xffffffffu, K_COMMIT, 0));
		break;
	}
}

/* A raw byte anywhere in the mapping (header, padding, ring). */
static void
patch_raw(uint8_t hi, uint8_t lo, uint8_t v)
{
	size_t off = ((size_t)hi << 8 | lo) % cur->o->size;

	__atomic_store_n(cur->shm + off, v, __ATOMIC_RELAXED);
}

/* One hostile write, decoded from 4 bytes: kind, then its arguments. */
struct patch {
	uint8_t kind, a, b, c;
};

static void
steer(void)
{
	if (no_plock)
		atomic_store(&S()->plock, 0);
}

static void
apply_patch(const struct patch *p)
{
	if (verbose)
		fprintf(stderr, "  patch %s %u %u %u\n",
			p->kind % 3 == 0   ? "field"
			: p->kind % 3 == 1 ? "record"
					   : "raw",
			p->a, p->b, p->c);
	switch (p->kind % 3) {
	case 0:
		patch_field(p->a, p->b);
		break;
	case 1:
		patch_rec(p->a, p->b, p->c);
		break;
	default:
		patch_raw(p->a, p->b, p->c);
		break;
	}
	steer();
}

/* the write callbacks do (S_DEFER), a bounded number of times */
static struct patch deferred;
static bool defer_on;
static unsigned defer_budget;

static void
apply_deferred(void)
{
	if (!defer_on || !(cur_flags & F_SCRIBBLE_CB) || defer_budget == 0)
		return;
	defer_budget--;
	apply_patch(&deferred);
}

/* ---- held messages (reserved or peeked, not yet given back) -------------- */

#define NHELD 4
struct held {
	struct aiop_msg m;
	bool used;
	uint32_t seq; /* reserve: what we wrote; peek: what the model said */
	size_t len;   /* reserve: bytes reserved */
};
static struct held res_held[NHELD], peek_held[NHELD];

/* ---- coro ops ------------------------------------------------------------ */

enum ck { CK_PUT, CK_GET, CK_PUTV, CK_GETV, CK_RESERVE, CK_PEEK, CK_JOIN,
	  NCK };
static const char *const ck_names[NCK] = {
	"coro_put", "coro_get", "coro_put_many", "coro_get_many",
	"coro_reserve", "coro_peek", "coro_join",
};

#define NSLOTS 3
#define MANY 4
struct slot {
	struct aiop_op op; /* first: callbacks cast back */
	bool pending;      /* started (returned 0), callback not yet run */
	bool forever;
	unsigned kind;
	size_t cap;        /* get: buffer bytes */
	unsigned n;        /* put_many: messages; get_many: max */
	unsigned char *buf;
	unsigned char *bufs[MANY];
	struct iovec iov[MANY];
	size_t lens[MANY];
	size_t msg_len;
	size_t want_len;   /* reserve */
	struct aiop_msg msg;
};
static struct slot slots[NSLOTS];
static bool in_start;

/* What callbacks also do (S_CBMODE), to stir the loop while it delivers. */
#define CB_CANCEL_OTHERS 0x01 /* aiop_op_cancel every other slot */
#define CB_START_FREE 0x02    /* start a get in a free slot */
#define CB_GIVE_BACK 0x04     /* commit / release what the op got */
#define CB_CLOSE 0x08         /* close the queue */
#define CB_TRY_GET 0x10       /* a try_get from inside the callback */
static unsigned cb_mode;

static void
slot_free_bufs(struct slot *s)
{
	free(s->buf);
	s->buf = NULL;
	for (int i = 0; i < MANY; i++) {
		free(s->bufs[i]);
		s->bufs[i] = NULL;
	}
}

static int coro_start(struct slot *s, unsigned kind, int64_t tmo,
		      uint8_t arg);
static void cancel_slot(struct slot *s);
static void op_try_get(uint8_t capb);

/* keep a reserved / peeked message for the script, or give it back now */
static void
keep_msg(struct held *tab, const struct aiop_msg *m, bool reserve)
{
	int r;

	for (int i = 0; i < NHELD; i++)
		if (!tab[i].used) {
			tab[i] = (struct held){ .m = *m, .used = true,
						.len = m->len };
			if (reserve) {
				tab[i].seq = next_seq++;
				fill(m->data, m->len, tab[i].seq);
			}
			return;
		}
	/* every place taken: give it back at once */
	r = reserve ? CALL("commit", E_INVAL | E_PROTO,
			   aiop_queue_commit(cur->q, (struct aiop_msg *)m))
		    : CALL("release", E_INVAL | E_PROTO,
			   aiop_queue_release(cur->q, (struct aiop_msg *)m));
	want_range("commit/release", r, 0, 0);
}

static void
coro_cb(struct ev_loop *l, struct aiop_op *op, int result)
{
	struct slot *s = (struct slot *)op;
	const char *what = ck_names[s->kind];
	unsigned allowed = E_CANCELED | E_INVAL | E_PROTO | E_TIMEDOUT;

	if (l != loop)
		die("callback on another loop");
	if (in_start)
		die("%s: callback ran inside a start call", what);
	if (!s->pending)
		die("%s: callback ran twice, or for an op never started",
		    what);
	if (aiop_op_pending(op))
		die("%s: op still pending inside its callback", what);
	s->pending = false;
	if (s->kind == CK_PUT || s->kind == CK_PUTV || s->kind == CK_RESERVE)
		allowed |= E_MSGSIZE | E_PIPE | E_AGAIN;
	else if (s->kind != CK_JOIN)
		allowed |= E_PIPE | E_AGAIN |
			   (s->kind == CK_PEEK ? 0 : E_MSGSIZE);
	else
		allowed |= E_AGAIN;
	if (result < 0 && !(err_bit(result) & allowed))
		die("%s completed with undocumented %d (%s)", what, result,
		    aiop_strerror(result));
	if (verbose)
		fprintf(stderr, "  cb slot %ld %s -> %d\n",
			(long)(s - slots), what, result);
	switch (s->kind) {
	case CK_GET:
		want_range(what, result, 0,
			   (long)(s->cap < cur->msg_max ? s->cap
							: cur->msg_max));
		if (result >= 0 && s->msg_len != (size_t)result)
			die("%s: %d bytes but *msg_len %zu", what, result,
			    s->msg_len);
		if (result == -EMSGSIZE &&
		    (s->msg_len <= s->cap || s->msg_len > cur->msg_max))
			die("%s: -EMSGSIZE with *msg_len %zu, cap %zu", what,
			    s->msg_len, s->cap);
		break;
	case CK_GETV:
		want_range(what, result, 1, s->n);
		if (result > 0) {
			size_t sum = 0;

			for (int i = 0; i < result; i++) {
				if (s->lens[i] > cur->msg_max)
					die("%s: lens[%d] %zu", what, i,
					    s->lens[i]);
				sum += s->lens[i];
			}
			if (sum > s->cap)
				die("%s: %zu bytes into a %zu-byte buffer",
				    what, sum, s->cap);
		} else if (result == -EMSGSIZE &&
			   (s->lens[0] <= s->cap ||
			    s->lens[0] > cur->msg_max)) {
			die("%s: -EMSGSIZE with lens[0] %zu, cap %zu", what,
			    s->lens[0], s->cap);
		}
		break;
	case CK_PUTV:
		want_range(what, result, s->n, s->n);
		break;
	default:
		want_range(what, result, 0, 0);
		break;
	}
	if (result == 0 && s->kind == CK_RESERVE) {
		check_msg(what, &s->msg);
		/* the length asked for, whatever the record says now
		 * (issue 5: it was read back from the ring) */
		if (s->msg.len != s->want_len)
			die("%s: len %zu, asked for %zu", what, s->msg.len,
			    s->want_len);
		keep_msg(res_held, &s->msg, true);
	}
	if (result == 0 && s->kind == CK_PEEK) {
		check_msg(what, &s->msg);
		keep_msg(peek_held, &s->msg, false);
	}
	slot_free_bufs(s);
	apply_deferred();
	if (cb_mode & CB_CANCEL_OTHERS)
		for (int i = 0; i < NSLOTS; i++)
			if (&slots[i] != s)
				cancel_slot(&slots[i]);
	if (cb_mode & CB_START_FREE)
		for (int i = 0; i < NSLOTS; i++)
			if (!slots[i].pending && &slots[i] != s) {
				cb_mode &= ~(unsigned)CB_START_FREE; /* once */
				(void)coro_start(&slots[i], CK_GET, 5000, 7);
				break;
			}
	if (cb_mode & CB_GIVE_BACK)
		for (int i = 0; i < NHELD; i++) {
			if (res_held[i].used) {
				res_held[i].used = false;
				(void)CALL("commit", E_INVAL | E_PROTO,
					   aiop_queue_commit(cur->q,
							     &res_held[i].m));
			}
			if (peek_held[i].used) {
				peek_held[i].used = false;
				(void)CALL("release", E_INVAL | E_PROTO,
					   aiop_queue_release(cur->q,
							      &peek_held[i]
								       .m));
			}
		}
	if (cb_mode & CB_CLOSE)
		(void)CALL("close", E_INVAL | E_PROTO,
			   aiop_queue_close(cur->q));
	if (cb_mode & CB_TRY_GET)
		op_try_get(8);
}

/*
 * Start a coro op of this kind in slot s; arg picks lengths / capacity.
 * Buffers live in the slot until its callback (the API's contract).
 */
static int
coro_start(struct slot *s, unsigned kind, int64_t tmo, uint8_t arg)
{
	struct aiop_op *op = &s->op;
	unsigned allowed = E_INVAL | E_PROTO | E_BUSY;
	const char *what;
	int r;

	kind %= NCK;
	what = ck_names[kind];
	if (s->pending) {
		/* a pending op's slot and buffers are not ours to reuse:
		 * the start must refuse without touching them */
		r = CALL(what, allowed,
			 aiop_queue_coro_get(loop, op, cur->q, NULL, 0, NULL,
					     tmo, coro_cb));
		if (r != -EBUSY && r != -EINVAL && r != -EPROTO)
			die("start on a pending op returned %d", r);
		if (!aiop_op_pending(op))
			die("a refused start changed the pending op");
		return r;
	}
	model_off("coro op"); /* when the grant happens is the engine's */
	slot_free_bufs(s);
	s->kind = kind;
	s->cap = cap_sel(arg);
	s->n = 1 + (arg >> 4) % MANY;
	s->msg_len = 0;
	memset(s->lens, 0, sizeof(s->lens));
	memset(&s->msg, 0, sizeof(s->msg));
	in_start = true;
	switch (kind) {
	case CK_PUT: {
		size_t len = len_sel(arg);

		s->buf = payload(len, next_seq++);
		r = CALL(what, allowed,
			 aiop_queue_coro_put(loop, op, cur->q, s->buf, len,
					     tmo, coro_cb));
		break;
	}
	case CK_GET:
		s->buf = malloc(s->cap ? s->cap : 1);
		if (!s->buf)
			abort();
		r = CALL(what, allowed,
			 aiop_queue_coro_get(loop, op, cur->q, s->buf, s->cap,
					     &s->msg_len, tmo, coro_cb));
		break;
	case CK_PUTV:
		for (unsigned i = 0; i < s->n; i++) {
			size_t len = len_sel((uint8_t)(arg + i * 5));

			if (len > 4096)
				len = 16;
			s->bufs[i] = payload(len, next_seq++);
			s->iov[i] = (struct iovec){ s->bufs[i], len };
		}
		r = CALL(what, allowed,
			 aiop_queue_coro_put_many(loop, op, cur->q, s->iov,
						  s->n, tmo, coro_cb));
		break;
	case CK_GETV:
		s->buf = malloc(s->cap ? s->cap : 1);
		if (!s->buf)
			abort();
		r = CALL(what, allowed,
			 aiop_queue_coro_get_many(loop, op, cur->q, s->buf,
						  s->cap, s->lens, s->n, tmo,
						  coro_cb));
		break;
	case CK_RESERVE:
		s->want_len = len_sel(arg);
		r = CALL(what, allowed,
			 aiop_queue_coro_reserve(loop, op, cur->q, s->want_len,
						 &s->msg, tmo, coro_cb));
		break;
	case CK_PEEK:
		r = CALL(what, allowed,
			 aiop_queue_coro_peek(loop, op, cur->q, &s->msg, tmo,
					      coro_cb));
		break;
	default:
		r = CALL(what, allowed,
			 aiop_queue_coro_join(loop, op, cur->q, tmo, coro_cb));
		if (!cur->joinable && r != -EINVAL && r != -EPROTO)
			die("coro_join on a plain queue returned %d", r);
		break;
	}
	in_start = false;
	if (r > 0)
		die("%s start returned %d", what, r);
	if (r == 0) {
		s->pending = true;
		s->forever = tmo == AIOP_FOREVER;
		if (!aiop_op_pending(op))
			die("%s: started op not pending", what);
	} else {
		if (aiop_op_pending(op))
			die("%s: failed start left the op pending", what);
		if (r == -EINVAL && (tmo >= 0 || tmo == AIOP_FOREVER) &&
		    (cur->joinable || kind != CK_JOIN))
			die("%s: -EINVAL for valid arguments", what);
		slot_free_bufs(s);
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

/* Run the loop until no watcher is left or for at most max_s. */
static void
run_loop(double max_s)
{
	ev_timer guard;
	bool hit = false;

	ev_now_update(loop);
	ev_timer_init(&guard, guard_cb, max_s, 0.);
	guard.data = &hit;
	ev_timer_start(loop, &guard);
	ev_unref(loop); /* the guard alone must not keep the loop alive */
	ev_run(loop, 0);
	ev_ref(loop);
	ev_timer_stop(loop, &guard);
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
	int r = CALL("op_cancel", E_ALREADY | E_INVAL,
		     aiop_op_cancel(&s->op));

	if (s->pending && r != 0)
		die("cancel of a pending op returned %d", r);
}

/* Every started op must call back: within its timeout, or cancelled. */
static void
drain(void)
{
	uint64_t t0 = now_ns();

	for (unsigned stage = 0; any_pending(); stage++) {
		if (now_ns() - t0 > 3000000000ull)
			die("a coro op never called back, even cancelled");
		if (stage >= 2)
			defer_on = false;
		for (int i = 0; i < NSLOTS; i++)
			if (slots[i].pending && (stage > 0 || slots[i].forever))
				cancel_slot(&slots[i]);
		run_loop(stage < 2 ? 0.005 : 0.1);
	}
}

/* ---- blocking and try operations ----------------------------------------- */

#define PUT_ERRS (E_MSGSIZE | E_PIPE | E_INVAL | E_PROTO)
#define GET_ERRS (E_MSGSIZE | E_PIPE | E_INVAL | E_PROTO)
#define MSG_ERRS (E_INVAL | E_PROTO)

static void
op_put(uint8_t lenb, int64_t t)
{
	size_t len = len_sel(lenb);
	uint32_t seq = next_seq++;
	unsigned char *p = payload(len, seq);
	int r;

	r = t == 0 ? CALL("try_put", PUT_ERRS | E_AGAIN,
			  aiop_queue_try_put(cur->q, p, len))
		   : CALL_T("put", t, PUT_ERRS | tmo_errs(t),
			  aiop_queue_put(cur->q, p, len, t));
	free(p);
	want_range("put", r, 0, 0);
	if (model_on) {
		mput_expect("put", r, &len, 1, t, 0);
		if (r == 0)
			(void)mput_do(&len, &seq, 1, M_COMMIT);
		model_check("put");
	}
}

/* get into a buffer of cap bytes: the copy is the message, if modelled */
static void
op_get(uint8_t capb, int64_t t)
{
	size_t cap = cap_sel(capb), msg_len = (size_t)-1;
	unsigned char *buf = cap ? malloc(cap) : NULL;
	unsigned first = 0;
	uint32_t flen = 0;
	int want = 0, r;

	if (cap && !buf)
		abort();
	if (model_on) {
		want = mget(cap, 1, false, &first, &flen);
		if (t < 0)
			want = -EINVAL; /* checked before anything else */
		else if (want > 0)
			want = (int)flen;
		else if (want == -EAGAIN && t > 0)
			want = -ETIMEDOUT;
	}
	r = t == 0 ? CALL("try_get", GET_ERRS | E_AGAIN,
			  aiop_queue_try_get(cur->q, buf, cap, &msg_len))
		   : CALL_T("get", t, GET_ERRS | tmo_errs(t),
			  aiop_queue_get(cur->q, buf, cap, &msg_len, t));
	want_range("get", r, 0, cap < cur->msg_max ? cap : cur->msg_max);
	if (r >= 0 && msg_len != (size_t)r)
		die("get: %d bytes but *msg_len %zu", r, msg_len);
	if (r == -EMSGSIZE && (msg_len <= cap || msg_len > cur->msg_max))
		die("get: -EMSGSIZE with *msg_len %zu, cap %zu", msg_len, cap);
	if (model_on) {
		model_want("get", r, want);
		if (r == -EMSGSIZE && msg_len != flen)
			die("get: -EMSGSIZE says %zu bytes, the model %u",
			    msg_len, flen);
		if (r >= 0) {
			if (!pat_ok(buf, (size_t)r, mq[first].seq))
				die("get: message %u came back corrupt",
				    mq[first].seq);
			mq[first].st = M_FREE;
			mpop();
		}
		model_check("get");
	}
	free(buf);
}

static void
op_try_get(uint8_t capb)
{
	op_get(capb, 0);
}

/* n messages at once, lengths from the script */
static void
op_put_many_n(unsigned n, const uint8_t *lb)
{
	struct iovec v[MANY];
	size_t lens[MANY];
	uint32_t seqs[MANY];
	int r;

	for (unsigned i = 0; i < n; i++) {
		lens[i] = len_sel(lb[i]);
		seqs[i] = next_seq++;
		v[i] = (struct iovec){ payload(lens[i], seqs[i]), lens[i] };
	}
	r = CALL("try_put_many", PUT_ERRS | E_AGAIN,
		 aiop_queue_try_put_many(cur->q, v, n));
	want_range("try_put_many", r, n, n);
	if (model_on) {
		mlead(lens, n);
		mput_expect("try_put_many", r, lens, n, 0, (int)n);
		if (r > 0)
			(void)mput_do(lens, seqs, n, M_COMMIT);
		model_check("try_put_many");
	}
	for (unsigned i = 0; i < n; i++)
		free(v[i].iov_base);
}

static void
op_get_many(uint8_t capb, uint8_t maxb)
{
	size_t cap = cap_sel(capb), lens[MANY + 1], sum = 0;
	unsigned max = 1 + maxb % MANY, first = 0;
	/* cap 0 with a NULL buffer is valid: lens[] must still be filled
	 * (issue 5: it was not) */
	unsigned char *buf = cap ? malloc(cap) : NULL;
	uint32_t flen = 0;
	int want = 0, r;

	if (cap && !buf)
		abort();
	for (unsigned i = 0; i <= MANY; i++)
		lens[i] = (size_t)-1;
	if (model_on)
		want = mget(cap, max, false, &first, &flen);
	r = CALL("try_get_many", GET_ERRS | E_AGAIN,
		 aiop_queue_try_get_many(cur->q, buf, cap, lens, max));
	want_range("try_get_many", r, 1, max);
	if (lens[max] != (size_t)-1)
		die("try_get_many wrote lens[%u], past max", max);
	for (int i = 0; i < r; i++) {
		if (lens[i] > cur->msg_max)
			die("try_get_many: lens[%d] %zu", i, lens[i]);
		sum += lens[i];
	}
	if (sum > cap)
		die("try_get_many: %zu bytes into %zu", sum, cap);
	if (r == -EMSGSIZE && (lens[0] <= cap || lens[0] > cur->msg_max))
		die("try_get_many: -EMSGSIZE with lens[0] %zu, cap %zu",
		    lens[0], cap);
	if (model_on) {
		model_want("try_get_many", r, want);
		if (r == -EMSGSIZE && lens[0] != flen)
			die("try_get_many: -EMSGSIZE says %zu, model %u",
			    lens[0], flen);
		if (r > 0) {
			size_t off = 0;
			unsigned j = first;

			for (int i = 0; i < r; i++, j++) {
				while (mq[j].st == M_PAD)
					j++;
				/* buf is NULL when cap is 0 */
				if (lens[i] != mq[j].len ||
				    (lens[i] &&
				     !pat_ok(buf + off, lens[i], mq[j].seq)))
					die("try_get_many: message %d of %d "
					    "(seq %u) wrong",
					    i, r, mq[j].seq);
				off += lens[i];
				mq[j].st = M_FREE;
			}
			mpop();
		}
		model_check("try_get_many");
	}
	free(buf);
}

static void
op_reserve(uint8_t slot, uint8_t lenb, int64_t t)
{
	struct held *h = &res_held[slot % NHELD];
	size_t len = len_sel(lenb);
	struct aiop_msg m;
	uint32_t seq = next_seq++;
	int r;

	memset(&m, 0, sizeof(m));
	r = t == 0 ? CALL("try_reserve", PUT_ERRS | E_AGAIN,
			  aiop_queue_try_reserve(cur->q, len, &m))
		   : CALL_T("reserve", t, PUT_ERRS | tmo_errs(t),
			  aiop_queue_reserve(cur->q, len, &m, t));
	want_range("reserve", r, 0, 0);
	if (r == 0) {
		check_msg("reserve", &m);
		if (m.len != len)
			die("reserve: len %zu, asked for %zu", m.len, len);
		fill(m.data, len, seq);
		/* a message held there before is abandoned: it stays
		 * reserved (FIFO stops at it) until the input ends */
		*h = (struct held){ .m = m, .used = true, .seq = seq,
				    .len = len };
	}
	if (model_on) {
		mput_expect("reserve", r, &len, 1, t, 0);
		if (r == 0) {
			uint64_t pos = mput_do(&len, &seq, 1, M_RES);

			if ((unsigned char *)m.data !=
			    cur->ring + (pos & (QCAP - 1)) + HDR)
				die("reserve: data at ring offset %td, the "
				    "model says %llu",
				    (unsigned char *)m.data - cur->ring,
				    (unsigned long long)((pos & (QCAP - 1)) +
							 HDR));
		}
		model_check("reserve");
	}
}

/* how: 0 as reserved, 1 shorter, 2 longer (-EINVAL), 3 empty */
/* What a call on held message h must return by the model (when it is on):
 * -EINVAL unless the model has the message in state st. *e: its entry. */
static int
held_want(const struct held *h, int st, struct ment **e)
{
	*e = NULL;
	if (!model_on)
		return 0;
	*e = mfind(h->m.aiop_pos);
	return *e && (*e)->st == st ? 0 : -EINVAL;
}

static void
op_commit(uint8_t slot, uint8_t how)
{
	struct held *h = &res_held[slot % NHELD];
	size_t was;
	int want = 0, r;
	struct ment *e = NULL;

	if (!h->used)
		return;
	was = h->m.len;
	if (how % 4 == 1)
		h->m.len /= 2;
	else if (how % 4 == 2)
		h->m.len++;
	else if (how % 4 == 3)
		h->m.len = 0;
	want = held_want(h, M_RES, &e);
	if (want == 0 && e && h->m.len > e->len)
		want = -EINVAL;
	r = CALL("commit", MSG_ERRS, aiop_queue_commit(cur->q, &h->m));
	want_range("commit", r, 0, 0);
	if (model_on) {
		model_want("commit", r, want);
		if (r == 0) {
			e->st = M_COMMIT;
			e->len = (uint32_t)h->m.len;
		}
		model_check("commit");
	}
	if (r == -EINVAL && how % 4 == 2)
		h->m.len = was; /* still ours: the next commit may do */
	else
		h->used = false;
}

static void
op_abort(uint8_t slot)
{
	struct held *h = &res_held[slot % NHELD];
	struct ment *e = NULL;
	int want = 0, r;

	if (!h->used)
		return;
	want = held_want(h, M_RES, &e);
	r = CALL("abort", MSG_ERRS, aiop_queue_abort(cur->q, &h->m));
	want_range("abort", r, 0, 0);
	h->used = false;
	if (model_on) {
		model_want("abort", r, want);
		if (r == 0) {
			e->st = M_PAD;
			mpop();
			if (cur->joinable)
				munfinished--;
		}
		model_check("abort");
	}
}

static void
op_peek(uint8_t slot, int64_t t)
{
	struct held *h = &peek_held[slot % NHELD];
	struct aiop_msg m;
	unsigned first = 0;
	uint32_t flen = 0;
	int want = 0, r;

	memset(&m, 0, sizeof(m));
	if (model_on) {
		want = mget(SIZE_MAX, 1, true, &first, &flen);
		if (t < 0)
			want = -EINVAL;
		else if (want > 0)
			want = 0;
		else if (want == -EAGAIN && t > 0)
			want = -ETIMEDOUT;
	}
	r = t == 0 ? CALL("try_peek", GET_ERRS | E_AGAIN,
			  aiop_queue_try_peek(cur->q, &m))
		   : CALL_T("peek", t, GET_ERRS | tmo_errs(t),
			  aiop_queue_peek(cur->q, &m, t));
	want_range("peek", r, 0, 0);
	if (r == -EMSGSIZE)
		die("peek returned -EMSGSIZE");
	if (r == 0) {
		check_msg("peek", &m);
		*h = (struct held){ .m = m, .used = true, .len = m.len };
	}
	if (model_on) {
		model_want("peek", r, want);
		if (r == 0) {
			struct ment *e = &mq[first];

			if (m.aiop_pos != e->pos || m.len != e->len ||
			    !pat_ok(m.data, m.len, e->seq))
				die("peek: message (pos %llu len %zu) is not "
				    "the model's (pos %llu len %u seq %u)",
				    (unsigned long long)m.aiop_pos, m.len,
				    (unsigned long long)e->pos, e->len, e->seq);
			e->st = M_CLAIM;
			h->seq = e->seq;
		}
		model_check("peek");
	}
}

/* release (consumed) or unpeek (back, first in line) */
static void
op_unhold(uint8_t slot, bool release)
{
	struct held *h = &peek_held[slot % NHELD];
	struct ment *e = NULL;
	int want = 0, r;

	if (!h->used)
		return;
	want = held_want(h, M_CLAIM, &e);
	r = release ? CALL("release", MSG_ERRS,
			   aiop_queue_release(cur->q, &h->m))
		    : CALL("unpeek", MSG_ERRS,
			   aiop_queue_unpeek(cur->q, &h->m));
	want_range("release/unpeek", r, 0, 0);
	h->used = false;
	if (model_on) {
		model_want(release ? "release" : "unpeek", r, want);
		if (r == 0 && release) {
			e->st = M_FREE;
			mpop(); /* release advances: consume() */
		} else if (r == 0) {
			e->st = M_COMMIT; /* release does not move */
		}
		model_check(release ? "release" : "unpeek");
	}
}

/* Wrong uses of held messages and bad arguments: -EINVAL, nothing moves. */
static void
op_misuse(uint8_t which)
{
	struct aiop_msg m;
	struct iovec v = { NULL, 5 };
	size_t l;
	int r;

	switch (which % 6) {
	case 0: /* commit what was peeked */
		if (!peek_held[which / 8 % NHELD].used)
			return;
		m = peek_held[which / 8 % NHELD].m;
		r = CALL("commit(peeked)", MSG_ERRS,
			 aiop_queue_commit(cur->q, &m));
		break;
	case 1: /* release what was reserved */
		if (!res_held[which / 8 % NHELD].used)
			return;
		m = res_held[which / 8 % NHELD].m;
		r = CALL("release(reserved)", MSG_ERRS,
			 aiop_queue_release(cur->q, &m));
		break;
	case 2: /* a forged msg: another position */
		memset(&m, 0, sizeof(m));
		m.aiop_pos = (uint64_t)which * 16;
		m.data = cur->ring + (m.aiop_pos & (QCAP - 1)) + HDR;
		m.aiop_tag = atomic_load(
			&((struct fq_rec *)(cur->ring +
					    (m.aiop_pos & (QCAP - 1))))->st);
		r = CALL("unpeek(forged)", MSG_ERRS,
			 aiop_queue_unpeek(cur->q, &m));
		/* it may be a claim of ours: then it was really given back */
		if (r == 0)
			model_off("forged msg matched a claim");
		return;
	case 3:
		r = CALL("put(NULL, 5)", PUT_ERRS,
			 aiop_queue_try_put(cur->q, NULL, 5));
		break;
	case 4:
		r = CALL("put_many(NULL iov)", PUT_ERRS,
			 aiop_queue_try_put_many(cur->q, &v, 1));
		break;
	default:
		r = CALL("get_many(max 0)", GET_ERRS,
			 aiop_queue_try_get_many(cur->q, NULL, 0, &l, 0));
		break;
	}
	if (r != -EINVAL && r != -EPROTO)
		die("misuse %u returned %d, not -EINVAL", which % 6, r);
	if (model_on && r != -EINVAL)
		die("misuse %u returned %d on a sane queue", which % 6, r);
	model_check("misuse");
}

static void
op_sizes(void)
{
	int r;

	r = CALL("qsize", E_INVAL | E_PROTO, aiop_queue_qsize(cur->q));
	want_range("qsize", r, 0, INT32_MAX);
	if (model_on)
		model_want("qsize", r, (int)mlive());
	r = CALL("empty", E_INVAL | E_PROTO, aiop_queue_empty(cur->q));
	want_range("empty", r, 0, 1);
	if (model_on)
		model_want("empty", r, mlive() == 0);
	r = CALL("full", E_INVAL | E_PROTO, aiop_queue_full(cur->q));
	want_range("full", r, 0, 1);
	if (model_on)
		model_want("full", r,
			   (cur->maxsize && mlive() >= cur->maxsize) ||
				   QCAP - (mtail - mrel()) < HDR);
	r = CALL("msg_max", E_INVAL | E_PROTO, aiop_queue_msg_max(cur->q));
	if (r != (int)cur->msg_max && r != -EPROTO)
		die("msg_max returned %d, not %u", r, cur->msg_max);
}

static void
op_task_done(void)
{
	int r = CALL("task_done", E_OVERFLOW | E_INVAL | E_PROTO,
		     aiop_queue_task_done(cur->q));

	want_range("task_done", r, 0, 0);
	if (!cur->joinable && r != -EINVAL && r != -EPROTO)
		die("task_done on a plain queue returned %d", r);
	if (model_on && cur->joinable) {
		model_want("task_done", r, munfinished > 0 ? 0 : -EOVERFLOW);
		if (r == 0)
			munfinished--;
		model_check("task_done");
	}
}

static void
op_join(int64_t t)
{
	int r = t == 0 ? CALL("try_join", E_AGAIN | E_INVAL | E_PROTO,
			      aiop_queue_try_join(cur->q))
		       : CALL_T("join", t, tmo_errs(t) | E_INVAL | E_PROTO,
			      aiop_queue_join(cur->q, t));

	want_range("join", r, 0, 0);
	if (!cur->joinable && r != -EINVAL && r != -EPROTO)
		die("join on a plain queue returned %d", r);
	if (model_on && cur->joinable)
		model_want("join", r,
			   t < 0	      ? -EINVAL
			   : munfinished <= 0 ? 0
			   : t == 0	      ? -EAGAIN
					      : -ETIMEDOUT);
}

static void
op_close(void)
{
	int r = CALL("close", E_INVAL | E_PROTO, aiop_queue_close(cur->q));

	want_range("close", r, 0, 0);
	if (model_on) {
		model_want("close", r, 0);
		mclosed = true;
		model_check("close");
	}
}

/*
 * One call from a new thread. A try call's first attempt in a thread
 * probes for dead owners (later ones only every 100 ms per thread), which
 * makes the recovery paths reachable at every input; and a thread that
 * exits holding a peeked or reserved message leaves a dead owner behind,
 * as a process killed there would.
 */
struct helper {
	uint8_t what, arg;
};

static void *
helper_main(void *p)
{
	struct helper *h = p;
	struct aiop_msg m;
	int r;

	memset(&m, 0, sizeof(m));
	switch (h->what % 5) {
	case 0:
		op_get(h->arg, 0);
		break;
	case 1: /* exits holding it: a dead consumer's claim */
		r = CALL("try_peek (thread)", GET_ERRS | E_AGAIN,
			 aiop_queue_try_peek(cur->q, &m));
		want_range("try_peek", r, 0, 0);
		if (r == 0)
			check_msg("try_peek (thread)", &m);
		break;
	case 2: /* exits holding it: a dead producer's reservation */
		r = CALL("try_reserve (thread)", PUT_ERRS | E_AGAIN,
			 aiop_queue_try_reserve(cur->q, len_sel(h->arg), &m));
		want_range("try_reserve", r, 0, 0);
		if (r == 0)
			check_msg("try_reserve (thread)", &m);
		break;
	case 3: /* out of room: probes the ring for dead owners */
		op_put(h->arg, 0);
		break;
	default:
		op_get_many(h->arg, h->arg >> 4);
		break;
	}
	return NULL;
}

static void
op_thread(uint8_t what, uint8_t arg)
{
	struct helper h = { what, arg };
	pthread_t th;

	/* the owners it leaves, and its probes, depend on time: unmodelled */
	model_off("helper thread");
	if (pthread_create(&th, NULL, helper_main, &h) != 0)
		return; /* no thread (resource limit): nothing to test */
	if (pthread_join(th, NULL) != 0)
		abort();
}

/* ---- the script ---------------------------------------------------------- */

enum {
	S_PATCH,	/* kind, a, b, c: a hostile write (apply_patch) */
	S_DEFER,	/* kind, a, b, c: the write callbacks will do */
	S_CORO,		/* slot|kind, timeout, arg: start a coro op */
	S_CANCEL,	/* slot: aiop_op_cancel, whatever its state */
	S_RUN,		/* how: the loop once, or until dry (<= 2 ms) */
	S_HEADERS,	/* restore ident and domain id */
	S_CBMODE,	/* mode: what callbacks also do (CB_*) */
	S_TRY_PUT,	/* len */
	S_PUT,		/* len, timeout */
	S_TRY_GET,	/* cap */
	S_GET,		/* cap, timeout */
	S_PUT_MANY,	/* n, then n lens */
	S_GET_MANY,	/* cap, max */
	S_RESERVE,	/* slot, len, timeout (0: try) */
	S_COMMIT,	/* slot, how */
	S_ABORT,	/* slot */
	S_PEEK,		/* slot, timeout (0: try) */
	S_RELEASE,	/* slot */
	S_UNPEEK,	/* slot */
	S_SIZES,	/* qsize, empty, full, msg_max */
	S_TASK_DONE,
	S_JOIN,		/* timeout (0: try) */
	S_CLOSE,
	S_MISUSE,	/* which */
	S_THREAD,	/* what, arg: one call from a new thread (helper()) */
	S_NOPS
};

struct script {
	const uint8_t *p;
	size_t n, i;
};

static uint8_t
next(struct script *sc)
{
	return sc->i < sc->n ? sc->p[sc->i++] : 0;
}

/* a timeout byte where 0 means a try (the try forms are called then) */
static int64_t
tmo_or_try(uint8_t b)
{
	return b == 0 ? 0 : tmo_sel(b);
}

static void
run_script(struct script *sc)
{
	while (sc->i < sc->n) {
		uint8_t b = next(sc), a, c;
		struct patch p;

		switch (b % S_NOPS) {
		case S_PATCH:
		case S_DEFER:
			p.kind = next(sc);
			p.a = next(sc);
			p.b = next(sc);
			p.c = next(sc);
			if (b % S_NOPS == S_DEFER) {
				deferred = p;
				defer_on = true;
				break;
			}
			model_off("hostile write");
			apply_patch(&p);
			break;
		case S_CORO: {
			int64_t t;

			a = next(sc);
			t = tmo_coro(next(sc));
			c = next(sc);
			(void)coro_start(&slots[a % NSLOTS], a / NSLOTS, t, c);
			break;
		}
		case S_CANCEL:
			cancel_slot(&slots[next(sc) % NSLOTS]);
			break;
		case S_RUN:
			if (next(sc) & 1)
				ev_run(loop, EVRUN_NOWAIT);
			else
				run_loop(0.002);
			break;
		case S_HEADERS:
			atomic_store(&S()->hdr.ident,
				     AIOP__IDENT(AIOP__T_QUEUE));
			atomic_store(&S()->hdr.domain_id, aiop__dom.id);
			break;
		case S_CBMODE:
			cb_mode = next(sc);
			break;
		case S_TRY_PUT:
			op_put(next(sc), 0);
			break;
		case S_PUT:
			a = next(sc);
			op_put(a, tmo_sel(next(sc)));
			break;
		case S_TRY_GET:
			op_get(next(sc), 0);
			break;
		case S_GET:
			a = next(sc);
			op_get(a, tmo_sel(next(sc)));
			break;
		case S_PUT_MANY: {
			uint8_t lb[MANY];
			unsigned n = 1 + next(sc) % MANY;

			for (unsigned i = 0; i < n; i++)
				lb[i] = next(sc);
			op_put_many_n(n, lb);
			break;
		}
		case S_GET_MANY:
			a = next(sc);
			op_get_many(a, next(sc));
			break;
		case S_RESERVE:
			a = next(sc);
			c = next(sc);
			op_reserve(a, c, tmo_or_try(next(sc)));
			break;
		case S_COMMIT:
			a = next(sc);
			op_commit(a, next(sc));
			break;
		case S_ABORT:
			op_abort(next(sc));
			break;
		case S_PEEK:
			a = next(sc);
			op_peek(a, tmo_or_try(next(sc)));
			break;
		case S_RELEASE:
			op_unhold(next(sc), true);
			break;
		case S_UNPEEK:
			op_unhold(next(sc), false);
			break;
		case S_SIZES:
			op_sizes();
			break;
		case S_TASK_DONE:
			op_task_done();
			break;
		case S_JOIN:
			op_join(tmo_or_try(next(sc)));
			break;
		case S_CLOSE:
			op_close();
			break;
		case S_MISUSE:
			op_misuse(next(sc));
			break;
		default:
			a = next(sc);
			op_thread(a, next(sc));
			break;
		}
	}
}

/* ---- setup --------------------------------------------------------------- */

static void
set_spin(unsigned m)
{
	switch (m & 3) {
	case 1:
		(void)aiop_spin_set(AIOP_SPIN_OFF, 0);
		break;
	case 2:
		(void)aiop_spin_set(AIOP_SPIN_FIXED, 2000);
		break;
	default:
		(void)aiop_spin_set(AIOP_SPIN_AUTO, 0);
		break;
	}
}

/*
 * A PROT_NONE page right after the mapping: the library reads record
 * headers and payloads with computed offsets, and a read that runs past
 * the ring's end must fault, not quietly read a neighbouring mapping.
 * Mappings are placed top-down in the highest hole that fits: reserve
 * queue + guard, unmap the queue's part, and create the queue into that
 * hole. A queue that lands elsewhere (a higher hole of its size) is kept
 * until the end, so that the next try does not land there again.
 */
static bool
make_queue(struct target *t, const struct aiop_queue_attr *a)
{
	struct aiop_queue *spare[16];
	size_t qsz = RING_OFF + QCAP;
	int nspare = 0;
	bool ok = false;

	while (!ok && nspare < 16) {
		unsigned char *g = mmap(NULL, qsz + 4096, PROT_NONE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (g == MAP_FAILED || munmap(g, qsz) != 0)
			abort();
		if (aiop_queue_new(&t->q, a) != 0)
			abort();
		t->o = (struct aiop__obj *)t->q;
		t->shm = (unsigned char *)t->o->shm;
		ok = t->shm == g && t->o->size == qsz;
		if (!ok) {
			munmap(g + qsz, 4096);
			spare[nspare++] = t->q;
		} /* else the guard stays mapped for good: on purpose */
	}
	if (!ok) { /* keep the last one, unguarded */
		nspare--;
		t->o = (struct aiop__obj *)t->q;
		t->shm = (unsigned char *)t->o->shm;
	}
	for (int i = 0; i < nspare; i++)
		if (aiop_queue_free(spare[i]) != 0)
			abort();
	return ok;
}

static void
setup_one(struct target *t, bool joinable)
{
	struct aiop_queue_attr a = { .capacity = QCAP };
	struct fq_shm *s;
	struct fq_rec *r0;
	int m;

	if (joinable) {
		a.msg_max = 100;
		a.maxsize = 3; /* below MANY: a put_many can exceed it */
		a.flags = AIOP_QUEUE_JOINABLE;
	}
	t->guarded = make_queue(t, &a);
	t->joinable = joinable;
	t->ring = t->shm + RING_OFF;
	m = aiop_queue_msg_max(t->q);
	if (m <= 0)
		abort();
	t->msg_max = (uint32_t)m;
	t->maxsize = a.maxsize;
	s = (struct fq_shm *)t->shm;
	/* our copy of the layout must be the library's */
	if (t->o->size != RING_OFF + QCAP || s->capacity != QCAP ||
	    s->msg_max != t->msg_max || s->maxsize != a.maxsize ||
	    atomic_load(&s->need) != UINT64_MAX ||
	    atomic_load(&s->tail) != 0) {
		fprintf(stderr, "fuzz_queue: src/queue.c's layout changed; "
				"update struct fq_shm\n");
		abort();
	}
	t->pristine = malloc(t->o->size);
	if (!t->pristine)
		abort();
	memcpy(t->pristine, t->shm, t->o->size);
	r0 = (struct fq_rec *)t->ring;
	/* a nonsense cached release makes the put read the real one and
	 * store it there: rel_seen is where we think */
	atomic_store(&s->rel_seen, 16);
	if (aiop_queue_try_put(t->q, "x", 1) != 0 ||
	    atomic_load(&s->rel_seen) != 0 ||
	    atomic_load(&s->tail) != 32 || atomic_load(&s->nres) != 1 ||
	    atomic_load(&r0->st) != mk_st(0, K_COMMIT, 0) ||
	    atomic_load(&r0->len) != 1 || atomic_load(&r0->rsize) != 32) {
		fprintf(stderr, "fuzz_queue: the ring is not where (or as) "
				"fuzz_queue.c expects it\n");
		abort();
	}
	memcpy(t->shm, t->pristine, t->o->size);
	if (!t->guarded)
		fprintf(stderr, "fuzz_queue: no guard page after a queue; "
				"reads past the ring may go unnoticed\n");
}

static void
setup(void)
{
	if (loop)
		return;
	verbose = getenv("AIOP_FUZZ_VERBOSE") != NULL;
	no_plock = getenv("AIOP_FUZZ_NO_PLOCK") != NULL;
	if (getenv("AIOP_FUZZ_LATE_MS"))
		late_ns = (uint64_t)atoi(getenv("AIOP_FUZZ_LATE_MS")) * 1000000;
	my_tid = (uint32_t)syscall(SYS_gettid) & TID_MASK;
	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		abort();
	setup_one(&tg[0], false);
	setup_one(&tg[1], true);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setup();
	return 0;
}

static void
load_image(const uint8_t *img, size_t n)
{
	memcpy(cur->shm, cur->pristine, cur->o->size);
	if (n > 0)
		memcpy(cur->shm, img, n < IMG_HDR ? n : IMG_HDR);
	if (n > IMG_HDR)
		memcpy(cur->ring, img + IMG_HDR,
		       n - IMG_HDR < QCAP ? n - IMG_HDR : QCAP);
	if (cur_flags & F_KEEP_IDENT)
		atomic_store(&S()->hdr.ident, AIOP__IDENT(AIOP__T_QUEUE));
	if (cur_flags & F_KEEP_DOMAIN)
		atomic_store(&S()->hdr.domain_id, aiop__dom.id);
	steer();
}

/* After an input: no doorbell left readable. */
static void
reset_domain(void)
{
	uint64_t v;

	for (int i = 0; i < aiop__dom.nbells; i++)
		while (read(aiop__dom.efd[i], &v, sizeof(v)) > 0)
			;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct script sc;
	uint8_t script[SCRIPT_LEN] = { 0 };
	size_t img_n = size > OFF_IMAGE ? size - OFF_IMAGE : 0;

	setup();
	if (size < 2)
		return -1; /* not worth keeping */
	cur_flags = data[OFF_FLAGS];
	cur = &tg[cur_flags & F_JOINABLE];
	sc.n = size - OFF_SCRIPT < SCRIPT_LEN ? size - OFF_SCRIPT : SCRIPT_LEN;
	memcpy(script, data + OFF_SCRIPT, sc.n);
	sc.p = script;
	sc.i = 0;
	if (verbose)
		fprintf(stderr, "input: %s queue, flags %#x, size %zu\n",
			cur->joinable ? "joinable" : "plain", cur_flags, size);

	memset(slots, 0, sizeof(slots));
	memset(res_held, 0, sizeof(res_held));
	memset(peek_held, 0, sizeof(peek_held));
	defer_on = false;
	defer_budget = 64;
	cb_mode = 0;
	next_seq = 1;
	mn = 0;
	mtail = 0;
	mclosed = false;
	munfinished = 0;
	set_spin(cur_flags >> F_SPIN_SHIFT);

	load_image(img_n ? data + OFF_IMAGE : NULL, img_n);
	/* the model holds only while the memory is as the library left it */
	model_on = memcmp(cur->shm, cur->pristine, cur->o->size) == 0;

	run_script(&sc);
	drain();
	if (CALL("loop_detach", E_BUSY, aiop_loop_detach(loop)) != 0)
		die("loop still busy after every op called back");
	for (int i = 0; i < NSLOTS; i++)
		slot_free_bufs(&slots[i]);

	reset_domain();
	(void)aiop_spin_set(AIOP_SPIN_AUTO, 0);
	memcpy(cur->shm, cur->pristine, cur->o->size);
	return 0;
}
