/* SPDX-License-Identifier: MIT */
/*
 * Benchmark of issue 4 (performance section): the aiop Queue between
 * processes, next to kernel IPC and shared-memory baselines measured in
 * the same run. Sections (each can be picked with --only):
 *
 *  oneway     64-byte messages, one producer process (blocking sends) and
 *             one consumer process: msg/s. The kernel baselines and the
 *             aiop coro consumer run in a libev loop; a raw eventfd + shared
 *             ring and a busy-spin ring frame the aiop figure.
 *  roundtrip  64-byte ping-pong over two channels (one each way): ns per
 *             round trip, with the peers unpinned, split over two CPUs and
 *             pinned to one CPU; once more with two 64 KiB rings, whose
 *             records stay in a cache between laps.
 *  2MiB       2 MiB messages, GB/s: the copy API next to a SOCK_STREAM
 *             socketpair, the zero-copy API next to a one-process memcpy.
 *  scaling    M producers x N consumers (1, 2, 4, 8 each), msg/s per cell.
 *  idle       CPU used by a coro and a blocking consumer of an empty queue.
 *
 * Like sync_bench: every round measures every figure once, in a rotated
 * order; tables show medians with [min - max]; ratios are ratios of the
 * medians of the same run; nothing is asserted, the verdict column only
 * compares with the targets. Every message carries its sequence
 * number (first word) and its complement (last word) and every consumer
 * checks both, so a broken queue shows up as ERR instead of a figure.
 *
 * Usage: queue_bench [--quick] [--rounds N] [--only WORDS] [--verbose]
 *        (env AIOP_BENCH_QUICK=1 is --quick; --help lists the options)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <mqueue.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>

#include <aiop.h>
#include <aiop/ev.h>

#include "bench_harness.h"

/* No wait of the benchmark may outlive this; a late peer is a failure. */
#define OP_TIMEOUT_NS ((int64_t)(10 * BENCH_NS_PER_S))
#define GRACE_NS (10 * BENCH_NS_PER_S)
#define REAP_MS 20000

#define MSG 64u                 /* the small message */
#define MSG_WORDS (MSG / 8)
#define BIG ((size_t)2 << 20)   /* the large message */
#define RING_SLOTS 1024u        /* raw rings: 64 KiB of 64-byte slots */
#define BATCH_MIN 32u
#define BATCH_MAX 64u
#define STREAM_BUF (64u << 10)  /* bulk reads of the stream baselines */
#define MN_MAX 8
#define NCHILD (2 * MN_MAX)

/* ---- configuration ------------------------------------------------------ */

struct cfg {
	int rounds;        /* rounds of oneway, roundtrip and 2MiB */
	int mn_rounds;     /* rounds of the scaling table */
	uint64_t tp_warm_ns, tp_meas_ns; /* one throughput figure */
	uint64_t rt_warm_ns, rt_meas_ns; /* one round-trip figure */
	uint64_t mn_warm_ns, mn_meas_ns; /* one scaling cell */
	uint64_t idle_ns;
	bool quick;
	bool verbose;      /* every measurement on stderr */
	const char *only;
};

/* ---- state shared by the processes of a measurement --------------------- */

/* One 64-byte message, on its own cache line. */
struct slot {
	_Alignas(64) uint64_t w[MSG_WORDS];
};

struct padded_u64 {
	_Alignas(64) _Atomic uint64_t v;
};

struct mnsum {
	uint64_t cnt, sum; /* messages of one producer seen, sum of seqs */
};

/* what one consumer saw, on lines of its own (it updates them per
 * message) */
struct mnrow {
	_Alignas(64) struct mnsum p[MN_MAX];
};

/*
 * One MAP_SHARED mapping reused by every measurement. Words written by
 * different processes live on different cache lines, so no baseline pays
 * for false sharing.
 */
struct shared {
	_Alignas(64) _Atomic uint32_t stop;  /* parent: producers stop */
	_Atomic uint32_t phase;              /* parent: the timed part began */
	_Atomic uint32_t ready;              /* children: set up */
	_Atomic int child_rc[NCHILD];
	struct aiop_stats stats[NCHILD];     /* each child's, at its exit */
	uint64_t produced[MN_MAX];           /* scaling: messages put */
	/* raw SPSC rings (eventfd ring, busy-spin ring) */
	_Alignas(64) _Atomic uint64_t head;  /* consumer: next to read */
	_Alignas(64) _Atomic uint64_t tail;  /* producer: next to write */
	_Alignas(64) _Atomic uint32_t prod_wait; /* eventfd ring: asleep */
	/* round trips: one slot each way */
	struct slot ping, pong;
	/* scaling: consumed so far per consumer, and what each saw */
	struct padded_u64 ccount[MN_MAX];
	struct mnrow mn[MN_MAX + 1]; /* [consumer, or MN_MAX: the parent] */
	struct slot ring[RING_SLOTS];
};

/* What one measurement works with; children get a copy through fork(). */
struct run {
	const struct cfg *cfg;
	struct shared *sh;
	struct aiop_queue *q[2];
	int fd[2];       /* [0] consumer/parent end, [1] producer/child end */
	bool fd_split;   /* each process closes the other's end */
	mqd_t mq[2];     /* [0] consumer (non-blocking), [1] producer */
	unsigned char *buf;  /* scratch of the process that uses it */
	size_t buf_len;
	unsigned char *big;  /* 2 MiB source (producer) or destination */
	uint64_t warm_ns, meas_ns;
	uint64_t deadline;   /* absolute bound of the whole measurement */
	int child;           /* index in the shared per-child slots */
	bool c_reset;        /* child: stats were reset at the timed part */
	/* the consumer (parent) side */
	struct bench_loop lp;
	uint64_t n, next, stride, t_last, end;
	uint64_t t0, n0, t1, n1;
	uint64_t ops, ops0, ops1; /* receive calls (read, get, callback) */
	unsigned it0, it1;
	struct aiop_stats pst;
	int tphase;
	bool looped;     /* the consumer ran a libev loop */
	size_t carry;
	size_t lens[BATCH_MAX];
};

/* ---- small helpers ------------------------------------------------------ */

static inline uint64_t
ld64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void
st64(void *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* A message of len bytes carries seq in its first word and ~seq in its
 * last: a torn, short, stale or duplicated copy fails the check. */
static inline void
stamp(void *p, size_t len, uint64_t seq)
{
	st64(p, seq);
	st64((unsigned char *)p + len - 8, ~seq);
}

static inline bool
stamped(const void *p, size_t len, uint64_t seq)
{
	return ld64(p) == seq &&
	       ld64((const unsigned char *)p + len - 8) == ~seq;
}

static unsigned char *
big_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* touch every page now, not inside the timed part */
	memset(p, 0x5a, len);
	return p;
}

static void
big_free(unsigned char **p, size_t len)
{
	if (*p)
		munmap(*p, len);
	*p = NULL;
}

static void
stats_add(struct aiop_stats *a, const struct aiop_stats *b)
{
	a->futex_waits += b->futex_waits;
	a->futex_wakes += b->futex_wakes;
	a->doorbell_rings += b->doorbell_rings;
	a->doorbell_reads += b->doorbell_reads;
	a->spins_ok += b->spins_ok;
	a->spins_failed += b->spins_failed;
	a->owner_probes += b->owner_probes;
}

static bool
stop_seen(const struct run *r)
{
	return atomic_load_explicit(&r->sh->stop, memory_order_relaxed) != 0;
}

/*
 * A producer's periodic look at the control line: it restarts its aiop
 * counters when the consumer starts the timed part, so both processes'
 * syscalls cover the same window. The line is written twice per
 * measurement, so reading it costs a cache hit.
 */
static bool
child_stop(struct run *r)
{
	if (!r->c_reset &&
	    atomic_load_explicit(&r->sh->phase, memory_order_relaxed)) {
		aiop_stats_reset();
		r->c_reset = true;
	}
	return stop_seen(r);
}

static void
set_ready(struct run *r)
{
	atomic_fetch_add(&r->sh->ready, 1);
}

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* ---- timing of a throughput figure (consumer side) ----------------------- */

static void
tp_init(struct run *r)
{
	r->n = 0;
	r->next = 1;
	r->stride = 1;
	r->t_last = bench_now();
	r->end = r->t_last + r->warm_ns;
	r->tphase = 0;
}

/*
 * Read the clock only every `stride` messages (the stride adapts so that
 * a stride lasts 5..100 us), switch from warm-up to the timed part, and
 * say when the timed part is over. The aiop counters and the loop's
 * iteration count are taken at the same two instants as the clock.
 */
static bool
tp_tick(struct run *r)
{
	uint64_t t = bench_now();

	if (t - r->t_last < 5000 && r->stride < 65536)
		r->stride *= 2;
	else if (t - r->t_last > 100000 && r->stride > 1)
		r->stride /= 2;
	r->t_last = t;
	r->next = r->n + r->stride;
	if (t < r->end)
		return false;
	if (r->tphase == 0) {
		r->tphase = 1;
		r->t0 = t;
		r->n0 = r->n;
		r->ops0 = r->ops;
		r->end = t + r->meas_ns;
		if (r->lp.loop)
			r->it0 = ev_iteration(r->lp.loop);
		aiop_stats_reset();
		atomic_store(&r->sh->phase, 1);
		return false;
	}
	r->t1 = t;
	r->n1 = r->n;
	r->ops1 = r->ops;
	if (r->lp.loop)
		r->it1 = ev_iteration(r->lp.loop);
	aiop_stats_get(&r->pst);
	r->tphase = 2;
	return true;
}

static inline bool
tp_due(struct run *r)
{
	return r->n >= r->next && tp_tick(r);
}

/* ---- the consumer's libev loop ------------------------------------------ */

/* The consumer ran a libev loop: its iterations are counted too. */
static int
loop_open(struct run *r)
{
	int rc = bench_loop_open(&r->lp, r->deadline, r);

	if (rc == 0)
		r->looped = true;
	return rc;
}

/* Start the next coro get of one message from q[0] into r->buf; the run
 * fails if it cannot start. */
static void
next_get(struct ev_loop *loop, struct aiop_op *op, struct run *r,
	 aiop_op_cb cb)
{
	int rc = aiop_queue_coro_get(loop, op, r->q[0], r->buf, MSG, NULL,
				     OP_TIMEOUT_NS, cb);

	if (rc < 0)
		bench_loop_fail(&r->lp, rc);
}

static int
consume_io(struct run *r, void (*cb)(struct ev_loop *, ev_io *, int),
	   int fd)
{
	int rc = loop_open(r);

	if (rc < 0)
		return rc;
	bench_loop_watch(&r->lp, cb, fd, r);
	return bench_loop_run_close(&r->lp);
}

static int
scratch(struct run *r, size_t len)
{
	r->buf = big_alloc(len);
	r->buf_len = len;
	return r->buf ? 0 : -ENOMEM;
}

/* ==== oneway: 64-byte messages, one producer, one consumer =============== */

/* ---- kernel baselines: a blocking writer, an ev_io reader ---------------- */

static int
setup_pipe(struct run *r)
{
	if (pipe2(r->fd, O_CLOEXEC) < 0)
		return -errno;
	r->fd_split = true;
	return set_nonblock(r->fd[0]);
}

/* SO_SNDBUF and SO_RCVBUF as the kernel set them: [0] default, [1] asked
 * for a large buffer. Printed, so the baseline is known exactly. */
static int sock_buf[2][2];

static int
setup_sockpair(struct run *r, int type, int bufsz)
{
	socklen_t sl = sizeof(int);

	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, r->fd) < 0)
		return -errno;
	r->fd_split = true;
	/* the kernel caps these at net.core.[rw]mem_max; asked for, so the
	 * baseline gets the largest buffer it may have */
	for (int k = 0; bufsz && k < 2; k++) {
		(void)setsockopt(r->fd[k], SOL_SOCKET, SO_SNDBUF, &bufsz,
				 sizeof(bufsz));
		(void)setsockopt(r->fd[k], SOL_SOCKET, SO_RCVBUF, &bufsz,
				 sizeof(bufsz));
	}
	(void)getsockopt(r->fd[1], SOL_SOCKET, SO_SNDBUF,
			 &sock_buf[bufsz != 0][0], &sl);
	sl = sizeof(int);
	(void)getsockopt(r->fd[0], SOL_SOCKET, SO_RCVBUF,
			 &sock_buf[bufsz != 0][1], &sl);
	return 0;
}

static int
setup_stream(struct run *r)
{
	int rc = setup_sockpair(r, SOCK_STREAM, 0);

	return rc < 0 ? rc : set_nonblock(r->fd[0]);
}

static int
setup_seqpacket(struct run *r)
{
	int rc = setup_sockpair(r, SOCK_SEQPACKET, 0);

	return rc < 0 ? rc : set_nonblock(r->fd[0]);
}

static long mq_maxmsg_used;

static long
mq_maxmsg_limit(void)
{
	FILE *f = fopen("/proc/sys/fs/mqueue/msg_max", "re");
	long v = 10; /* the kernel's default */

	if (f) {
		if (fscanf(f, "%ld", &v) != 1 || v < 1)
			v = 10;
		fclose(f);
	}
	return v;
}

static int
setup_mq(struct run *r)
{
	struct mq_attr a = {.mq_msgsize = MSG};
	char name[64];

	snprintf(name, sizeof(name), "/aiop-queue-bench-%d", (int)getpid());
	(void)mq_unlink(name);
	/* the largest queue the system allows; RLIMIT_MSGQUEUE may refuse
	 * it, then halve */
	for (a.mq_maxmsg = mq_maxmsg_limit();; a.mq_maxmsg /= 2) {
		r->mq[0] = mq_open(name, O_RDONLY | O_CREAT | O_EXCL |
				   O_NONBLOCK | O_CLOEXEC, 0600, &a);
		if (r->mq[0] != (mqd_t)-1)
			break;
		if ((errno != EMFILE && errno != ENOMEM &&
		     errno != EINVAL) || a.mq_maxmsg <= 1)
			return -errno;
	}
	mq_maxmsg_used = a.mq_maxmsg;
	r->mq[1] = mq_open(name, O_WRONLY | O_CLOEXEC);
	(void)mq_unlink(name);
	return r->mq[1] == (mqd_t)-1 ? -errno : 0;
}

/* One write() per message, as an application without batching does. */
static int
produce_fd(struct run *r)
{
	struct slot m = {{0}};

	set_ready(r);
	for (uint64_t i = 0;; i++) {
		ssize_t w;

		if ((i & 63) == 0 && child_stop(r))
			return 0;
		stamp(m.w, MSG, i);
		w = write(r->fd[1], m.w, MSG);
		if (w == MSG)
			continue;
		/* the consumer closing its end is the normal end */
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET) &&
		    stop_seen(r))
			return 0;
		return w < 0 ? -errno : -EIO;
	}
}

static int
produce_mq(struct run *r)
{
	struct slot m = {{0}};

	set_ready(r);
	for (uint64_t i = 0;; i++) {
		if ((i & 63) == 0 && child_stop(r))
			return 0;
		stamp(m.w, MSG, i);
		if (mq_send(r->mq[1], (const char *)m.w, MSG, 0) < 0)
			return -errno;
	}
}

/* Stream baselines: the reader takes all that is there (64 KiB at most)
 * and splits it into messages, the most a stream consumer can save. */
static int
eat_stream(struct run *r, size_t got)
{
	size_t len = r->carry + got, off = 0;

	for (; len - off >= MSG; off += MSG) {
		if (!stamped(r->buf + off, MSG, r->n))
			return -EBADMSG;
		r->n++;
	}
	r->carry = len - off;
	if (r->carry)
		memmove(r->buf, r->buf + off, r->carry);
	return 0;
}

static void
on_stream(struct ev_loop *loop, ev_io *w, int revents)
{
	struct run *r = w->data;

	(void)loop;
	(void)revents;
	for (;;) {
		ssize_t got = read(w->fd, r->buf + r->carry,
				   STREAM_BUF - r->carry);
		int rc;

		if (got < 0 && errno == EAGAIN)
			return;
		if (got <= 0) {
			bench_loop_fail(&r->lp, got < 0 ? -errno : -EPIPE);
			return;
		}
		r->ops++;
		if ((rc = eat_stream(r, (size_t)got)) < 0) {
			bench_loop_fail(&r->lp, rc);
			return;
		}
		if (tp_due(r)) {
			bench_loop_done(&r->lp);
			return;
		}
	}
}

/* Message baselines: one read per message, until EAGAIN. */
static void
on_packet(struct ev_loop *loop, ev_io *w, int revents)
{
	struct run *r = w->data;

	(void)loop;
	(void)revents;
	for (;;) {
		ssize_t got;

		if (r->mq[0] != (mqd_t)-1)
			got = mq_receive(r->mq[0], (char *)r->buf, MSG, NULL);
		else
			got = read(w->fd, r->buf, MSG);
		if (got < 0 && errno == EAGAIN)
			return;
		if (got != MSG) {
			bench_loop_fail(&r->lp, got < 0 ? -errno : -EBADMSG);
			return;
		}
		if (!stamped(r->buf, MSG, r->n)) {
			bench_loop_fail(&r->lp, -EBADMSG);
			return;
		}
		r->n++;
		r->ops++;
		if (tp_due(r)) {
			bench_loop_done(&r->lp);
			return;
		}
	}
}

static int
consume_stream(struct run *r)
{
	int rc = scratch(r, STREAM_BUF);

	return rc < 0 ? rc : consume_io(r, on_stream, r->fd[0]);
}

static int
consume_packet(struct run *r)
{
	int rc = scratch(r, MSG);

	return rc < 0 ? rc : consume_io(r, on_packet, r->fd[0]);
}

static int
consume_mq(struct run *r)
{
	int rc = scratch(r, MSG);

	return rc < 0 ? rc : consume_io(r, on_packet, (int)r->mq[0]);
}

/* The producer may sleep in write(): closing the reading end wakes it. */
static void
stop_close(struct run *r)
{
	if (r->fd[0] >= 0)
		close(r->fd[0]);
	r->fd[0] = -1;
}

/* An mq has no "reader gone": drain until the producer, blocked on a full
 * queue, got its last message in and saw the stop flag. */
static void
stop_mq(struct run *r)
{
	char m[MSG];

	for (int k = 0; k < 20; k++) {
		while (mq_receive(r->mq[0], m, sizeof(m), NULL) >= 0)
			;
		bench_sleep_ns(BENCH_NS_PER_MS);
	}
}

/* ---- raw shared ring + one eventfd write per message --------------------- */

/*
 * The naive shared-memory design: the producer copies into a 64-byte
 * slot, publishes, and always writes the eventfd (no "is anyone asleep"
 * flag); the consumer's ev_io drains the ring. A full ring puts the
 * producer to sleep on a second eventfd (Dekker-style flag, seq_cst).
 */
static int
setup_efd_ring(struct run *r)
{
	/* fd[0] data (read in the loop), fd[1] space */
	return bench_efd_pair(r->fd, true);
}

static int
efd_ring_space(struct run *r, uint64_t i, uint64_t *h)
{
	struct shared *sh = r->sh;

	for (;;) {
		int rc;

		*h = atomic_load_explicit(&sh->head, memory_order_acquire);
		if (i - *h < RING_SLOTS)
			return 0;
		atomic_store(&sh->prod_wait, 1);
		*h = atomic_load(&sh->head);
		if (i - *h < RING_SLOTS) {
			atomic_store(&sh->prod_wait, 0);
			return 0;
		}
		if (stop_seen(r))
			return 1;
		if ((rc = bench_efd_get(r->fd[1])) < 0)
			return rc;
	}
}

static int
produce_efd_ring(struct run *r)
{
	struct shared *sh = r->sh;
	struct slot m = {{0}};
	uint64_t h = 0;
	int rc;

	set_ready(r);
	for (uint64_t i = 0;; i++) {
		if ((i & 63) == 0 && child_stop(r))
			return 0;
		if (i - h >= RING_SLOTS &&
		    (rc = efd_ring_space(r, i, &h)) != 0)
			return rc > 0 ? 0 : rc;
		stamp(m.w, MSG, i);
		memcpy(&sh->ring[i % RING_SLOTS], &m, MSG);
		atomic_store_explicit(&sh->tail, i + 1, memory_order_release);
		if ((rc = bench_efd_put(r->fd[0])) < 0)
			return rc;
	}
}

static void
efd_ring_free(struct run *r)
{
	struct shared *sh = r->sh;

	atomic_store(&sh->head, r->n); /* seq_cst: before the flag's load */
	if (atomic_load(&sh->prod_wait) && atomic_exchange(&sh->prod_wait, 0))
		(void)bench_efd_put(r->fd[1]);
}

static void
on_efd_ring(struct ev_loop *loop, ev_io *w, int revents)
{
	struct run *r = w->data;
	struct shared *sh = r->sh;
	uint64_t v, t;

	(void)loop;
	(void)revents;
	if (read(r->fd[0], &v, sizeof(v)) < 0 && errno != EAGAIN) {
		bench_loop_fail(&r->lp, -errno);
		return;
	}
	r->ops++;
	/* drain, and look again before going back to epoll */
	while ((t = atomic_load_explicit(&sh->tail, memory_order_acquire)) !=
	       r->n) {
		while (r->n < t) {
			memcpy(r->buf, &sh->ring[r->n % RING_SLOTS], MSG);
			if (!stamped(r->buf, MSG, r->n)) {
				bench_loop_fail(&r->lp, -EBADMSG);
				return;
			}
			r->n++;
			if (tp_due(r)) {
				efd_ring_free(r);
				bench_loop_done(&r->lp);
				return;
			}
		}
		efd_ring_free(r);
	}
}

static int
consume_efd_ring(struct run *r)
{
	int rc = scratch(r, MSG);

	return rc < 0 ? rc : consume_io(r, on_efd_ring, r->fd[0]);
}

static void
stop_efd_ring(struct run *r)
{
	(void)bench_efd_put(r->fd[1]);
}

/* ---- busy-spin SPSC ring: the limit ------------------------------------- */

/*
 * The consumer waits on the slot itself (its first word becomes seq + 1
 * last, with release), so a message costs one cache-line transfer; the
 * consumer hands slots back by publishing its head every 32 messages, and
 * the producer reads that only when it thinks the ring is full. Nobody
 * ever sleeps: with the peers on two CPUs this is what the memory system
 * allows for 64-byte messages.
 */
static int
setup_none(struct run *r)
{
	(void)r;
	return 0;
}

static int
produce_spin_ring(struct run *r)
{
	struct shared *sh = r->sh;
	uint64_t h = 0;
	unsigned k = 0;

	set_ready(r);
	for (uint64_t i = 0;; i++) {
		struct slot *s = &sh->ring[i % RING_SLOTS];

		if ((i & 63) == 0 && child_stop(r))
			return 0;
		while (i - h >= RING_SLOTS) {
			h = atomic_load_explicit(&sh->head,
						 memory_order_acquire);
			if (i - h < RING_SLOTS)
				break;
			bench_relax();
			if ((++k & 4095) == 0 && stop_seen(r))
				return 0;
		}
		for (unsigned w = 1; w < MSG_WORDS - 1; w++)
			s->w[w] = i + w;
		s->w[MSG_WORDS - 1] = ~i;
		__atomic_store_n(&s->w[0], i + 1, __ATOMIC_RELEASE);
	}
}

static int
consume_spin_ring(struct run *r)
{
	struct shared *sh = r->sh;
	unsigned k = 0;
	int rc = scratch(r, MSG);

	if (rc < 0)
		return rc;
	for (;;) {
		const struct slot *s = &sh->ring[r->n % RING_SLOTS];

		while (__atomic_load_n(&s->w[0], __ATOMIC_ACQUIRE) !=
		       r->n + 1) {
			bench_relax();
			if ((++k & 4095) == 0 && bench_now() > r->deadline)
				return -ETIMEDOUT;
		}
		memcpy(r->buf, s, MSG);
		if (ld64(r->buf + MSG - 8) != ~r->n)
			return -EBADMSG;
		r->n++;
		r->ops++;
		if ((r->n & 31) == 0)
			atomic_store_explicit(&sh->head, r->n,
					      memory_order_release);
		if (tp_due(r))
			return 0;
	}
}

/* ---- aiop ---------------------------------------------------------------- */

static int
setup_q1(struct run *r)
{
	/* the default ring (8 MiB) and message cap: what users get */
	return aiop_queue_new(&r->q[0], NULL);
}

static int
setup_q2(struct run *r)
{
	int rc = aiop_queue_new(&r->q[0], NULL);

	return rc < 0 ? rc : aiop_queue_new(&r->q[1], NULL);
}

/* Two 64 KiB rings: a round trip then reuses records whose lines are
 * still in a cache, where the default 8 MiB ring walks into lines last
 * written 100 000 messages ago (docs/performance.md). */
static int
setup_q2_small(struct run *r)
{
	struct aiop_queue_attr a = {.capacity = 65536};
	int rc = aiop_queue_new(&r->q[0], &a);

	return rc < 0 ? rc : aiop_queue_new(&r->q[1], &a);
}

/* Closing the queue wakes a producer blocked on a full ring (-EPIPE). */
static void
stop_q(struct run *r)
{
	(void)aiop_queue_close(r->q[0]);
}

static int
q_end(struct run *r, int rc)
{
	return rc == -EPIPE && stop_seen(r) ? 0 : rc;
}

static int
produce_q(struct run *r)
{
	struct slot m = {{0}};

	set_ready(r);
	for (uint64_t i = 0;; i++) {
		int rc;

		if ((i & 63) == 0 && child_stop(r))
			return 0;
		stamp(m.w, MSG, i);
		rc = aiop_queue_put(r->q[0], m.w, MSG, OP_TIMEOUT_NS);
		if (rc < 0)
			return q_end(r, rc);
	}
}

/* Batches of 32..64 messages (the size cycles, as bursts would). */
static int
produce_q_many(struct run *r)
{
	struct slot m[BATCH_MAX];
	struct iovec iov[BATCH_MAX];
	uint64_t i = 0;

	memset(m, 0, sizeof(m));
	for (unsigned j = 0; j < BATCH_MAX; j++)
		iov[j] = (struct iovec){m[j].w, MSG};
	set_ready(r);
	for (unsigned b = 0;; b++) {
		unsigned k = BATCH_MIN + b % (BATCH_MAX - BATCH_MIN + 1);
		int rc;

		if (child_stop(r))
			return 0;
		for (unsigned j = 0; j < k; j++)
			stamp(m[j].w, MSG, i + j);
		rc = aiop_queue_put_many(r->q[0], iov, k, OP_TIMEOUT_NS);
		if (rc < 0)
			return q_end(r, rc);
		if (rc != (int)k)
			return -EPROTO;
		i += k;
	}
}

static int
check_one(struct run *r, int res)
{
	r->ops++;
	if (res != (int)MSG)
		return res < 0 ? res : -EBADMSG;
	if (!stamped(r->buf, MSG, r->n))
		return -EBADMSG;
	r->n++;
	return 0;
}

/* get_many: n messages back to back, lengths in r->lens */
static int
check_many(struct run *r, int res)
{
	size_t off = 0;

	r->ops++;
	if (res < 1)
		return res < 0 ? res : -EBADMSG;
	for (int k = 0; k < res; k++) {
		if (r->lens[k] != MSG || off + MSG > r->buf_len ||
		    !stamped(r->buf + off, MSG, r->n))
			return -EBADMSG;
		off += r->lens[k];
		r->n++;
	}
	return 0;
}

static void
on_qget(struct ev_loop *loop, struct aiop_op *op, int res)
{
	struct run *r = op->data;
	int rc = check_one(r, res);

	if (rc < 0) {
		bench_loop_fail(&r->lp, rc);
		return;
	}
	if (tp_due(r)) {
		bench_loop_done(&r->lp);
		return;
	}
	next_get(loop, op, r, on_qget);
}

static int
consume_q_coro(struct run *r)
{
	int rc = scratch(r, MSG);

	if (rc < 0 || (rc = loop_open(r)) < 0)
		return rc;
	next_get(r->lp.loop, &r->lp.op, r, on_qget);
	return bench_loop_run_close(&r->lp);
}

static void
on_qget_many(struct ev_loop *loop, struct aiop_op *op, int res)
{
	struct run *r = op->data;
	int rc = check_many(r, res);

	if (rc < 0) {
		bench_loop_fail(&r->lp, rc);
		return;
	}
	if (tp_due(r)) {
		bench_loop_done(&r->lp);
		return;
	}
	rc = aiop_queue_coro_get_many(loop, op, r->q[0], r->buf, r->buf_len,
				      r->lens, BATCH_MAX, OP_TIMEOUT_NS,
				      on_qget_many);
	if (rc < 0)
		bench_loop_fail(&r->lp, rc);
}

static int
consume_q_coro_many(struct run *r)
{
	int rc = scratch(r, (size_t)BATCH_MAX * MSG);

	if (rc < 0 || (rc = loop_open(r)) < 0)
		return rc;
	rc = aiop_queue_coro_get_many(r->lp.loop, &r->lp.op, r->q[0], r->buf,
				      r->buf_len, r->lens, BATCH_MAX,
				      OP_TIMEOUT_NS, on_qget_many);
	if (rc < 0)
		bench_loop_fail(&r->lp, rc);
	return bench_loop_run_close(&r->lp);
}

static int
consume_q_get(struct run *r)
{
	int rc = scratch(r, MSG);

	while (rc == 0) {
		rc = aiop_queue_get(r->q[0], r->buf, MSG, NULL, OP_TIMEOUT_NS);
		if ((rc = check_one(r, rc)) == 0 && tp_due(r))
			return 0;
	}
	return rc;
}

static int
consume_q_get_many(struct run *r)
{
	int rc = scratch(r, (size_t)BATCH_MAX * MSG);

	while (rc == 0) {
		rc = aiop_queue_get_many(r->q[0], r->buf, r->buf_len, r->lens,
					 BATCH_MAX, OP_TIMEOUT_NS);
		if ((rc = check_many(r, rc)) == 0 && tp_due(r))
			return 0;
	}
	return rc;
}

/* ---- one process: what a queue operation costs without a peer ----------- */

/* Context for the two-process figures: the price of the calls alone, with
 * the ring's lines in this CPU's cache and nobody to wake. */
static int
local_q_pair(struct run *r)
{
	int rc = scratch(r, MSG);

	while (rc == 0) {
		stamp(r->buf, MSG, r->n);
		if ((rc = aiop_queue_try_put(r->q[0], r->buf, MSG)) < 0)
			break;
		rc = aiop_queue_try_get(r->q[0], r->buf, MSG, NULL);
		if ((rc = check_one(r, rc)) == 0 && tp_due(r))
			return 0;
	}
	return rc;
}

static int
local_q_many(struct run *r)
{
	struct iovec iov[BATCH_MAX];
	int rc = scratch(r, (size_t)2 * BATCH_MAX * MSG);
	unsigned char *src = r->buf + (size_t)BATCH_MAX * MSG;

	for (unsigned j = 0; j < BATCH_MAX; j++)
		iov[j] = (struct iovec){src + (size_t)j * MSG, MSG};
	/* get_many fills the first half of the scratch buffer only */
	r->buf_len /= 2;
	while (rc == 0) {
		for (unsigned j = 0; j < BATCH_MAX; j++)
			stamp(iov[j].iov_base, MSG, r->n + j);
		rc = aiop_queue_try_put_many(r->q[0], iov, BATCH_MAX);
		if (rc < 0)
			break;
		rc = aiop_queue_try_get_many(r->q[0], r->buf, r->buf_len,
					     r->lens, BATCH_MAX);
		if ((rc = check_many(r, rc)) == 0 && tp_due(r))
			break;
	}
	r->buf_len *= 2;
	return rc;
}

static void
on_local_coro(struct ev_loop *loop, struct aiop_op *op, int res)
{
	struct run *r = op->data;
	int rc = check_one(r, res);

	if (rc < 0) {
		bench_loop_fail(&r->lp, rc);
		return;
	}
	if (tp_due(r)) {
		bench_loop_done(&r->lp);
		return;
	}
	stamp(r->buf + MSG, MSG, r->n);
	if ((rc = aiop_queue_try_put(r->q[0], r->buf + MSG, MSG)) < 0)
		bench_loop_fail(&r->lp, rc);
	else
		next_get(loop, op, r, on_local_coro);
}

static int
local_q_coro(struct run *r)
{
	int rc = scratch(r, 2 * MSG);

	if (rc < 0 || (rc = loop_open(r)) < 0)
		return rc;
	stamp(r->buf + MSG, MSG, 0);
	if ((rc = aiop_queue_try_put(r->q[0], r->buf + MSG, MSG)) < 0)
		bench_loop_fail(&r->lp, rc);
	else
		next_get(r->lp.loop, &r->lp.op, r, on_local_coro);
	return bench_loop_run_close(&r->lp);
}

/* ==== 2MiB: large messages =============================================== */

/*
 * What each side touches, per message:
 *  - socketpair and aiop put/get: the producer stamps a 2 MiB source
 *    buffer and hands it over (write() / put copies it: 2 MiB read +
 *    2 MiB written), the consumer receives into a 2 MiB buffer (read() /
 *    get copies it out: 2 MiB read + 2 MiB written). Same work for both.
 *  - aiop zero-copy fill/sum: the producer memsets the reserved 2 MiB in
 *    the ring (2 MiB written), the consumer sums every word in place
 *    (2 MiB read). Together one read and one write of 2 MiB, exactly a
 *    memcpy's work, split over two processes: hence the memcpy baseline.
 *  - aiop zero-copy memcpy in/out: the producer copies the source into
 *    the ring, the consumer copies out of it: the copy API's work.
 */
static inline uint64_t
fill_pattern(uint64_t seq)
{
	return (uint64_t)(uint8_t)(seq * 131 + 7) * 0x0101010101010101ull;
}

static uint64_t
sum_words(const unsigned char *p, size_t len)
{
	uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
	size_t k = 0;

	/* four chains, so the adds keep up with the loads */
	for (; k + 32 <= len; k += 32) {
		a0 += ld64(p + k);
		a1 += ld64(p + k + 8);
		a2 += ld64(p + k + 16);
		a3 += ld64(p + k + 24);
	}
	for (; k + 8 <= len; k += 8)
		a0 += ld64(p + k);
	return a0 + a1 + a2 + a3;
}

/* The words between the stamps hold the pattern; seq + ~seq is all ones. */
static bool
filled_ok(const unsigned char *p, size_t len, uint64_t seq)
{
	return stamped(p, len, seq) &&
	       sum_words(p, len) ==
		       (uint64_t)(len / 8 - 2) * fill_pattern(seq) - 1;
}

/* Default socket buffers (net.core.wmem_default), and the largest the
 * system allows (asked for 4 MiB, capped at net.core.[rw]mem_max): the
 * target is judged against both. */
static int
setup_big_stream(struct run *r)
{
	return setup_sockpair(r, SOCK_STREAM, 0);
}

static int
setup_big_stream_4m(struct run *r)
{
	return setup_sockpair(r, SOCK_STREAM, 4 << 20);
}

static int
produce_big_stream(struct run *r)
{
	if (!(r->big = big_alloc(BIG)))
		return -ENOMEM;
	set_ready(r);
	for (uint64_t i = 0;; i++) {
		size_t off = 0;

		if (child_stop(r))
			return 0;
		stamp(r->big, BIG, i);
		while (off < BIG) {
			ssize_t w = write(r->fd[1], r->big + off, BIG - off);

			if (w < 0 && (errno == EPIPE || errno == ECONNRESET) &&
			    stop_seen(r))
				return 0;
			if (w <= 0)
				return w < 0 ? -errno : -EIO;
			off += (size_t)w;
		}
	}
}

static int
consume_big_stream(struct run *r)
{
	if (!(r->big = big_alloc(BIG)))
		return -ENOMEM;
	for (;;) {
		size_t off = 0;

		while (off < BIG) {
			ssize_t got = read(r->fd[0], r->big + off, BIG - off);

			if (got <= 0)
				return got < 0 ? -errno : -EPIPE;
			off += (size_t)got;
		}
		if (!stamped(r->big, BIG, r->n))
			return -EBADMSG;
		r->n++;
		r->ops++;
		if (tp_due(r))
			return 0;
	}
}

static int
produce_big_q(struct run *r)
{
	if (!(r->big = big_alloc(BIG)))
		return -ENOMEM;
	set_ready(r);
	for (uint64_t i = 0;; i++) {
		int rc;

		if (child_stop(r))
			return 0;
		stamp(r->big, BIG, i);
		rc = aiop_queue_put(r->q[0], r->big, BIG, OP_TIMEOUT_NS);
		if (rc < 0)
			return q_end(r, rc);
	}
}

static int
consume_big_q(struct run *r)
{
	if (!(r->big = big_alloc(BIG)))
		return -ENOMEM;
	for (;;) {
		int rc = aiop_queue_get(r->q[0], r->big, BIG, NULL,
					OP_TIMEOUT_NS);

		if (rc != (int)BIG)
			return rc < 0 ? rc : -EBADMSG;
		if (!stamped(r->big, BIG, r->n))
			return -EBADMSG;
		r->n++;
		if (tp_due(r))
			return 0;
	}
}

static int
produce_big_zc(struct run *r, bool copy)
{
	if (copy && !(r->big = big_alloc(BIG)))
		return -ENOMEM;
	set_ready(r);
	for (uint64_t i = 0;; i++) {
		struct aiop_msg m;
		int rc;

		if (child_stop(r))
			return 0;
		rc = aiop_queue_reserve(r->q[0], BIG, &m, OP_TIMEOUT_NS);
		if (rc < 0)
			return q_end(r, rc);
		if (m.len < BIG) {
			(void)aiop_queue_abort(r->q[0], &m);
			return -EPROTO;
		}
		if (copy) {
			stamp(r->big, BIG, i);
			memcpy(m.data, r->big, BIG);
		} else {
			memset(m.data, (int)(fill_pattern(i) & 0xff), BIG);
			stamp(m.data, BIG, i);
		}
		m.len = BIG;
		if ((rc = aiop_queue_commit(r->q[0], &m)) < 0)
			return rc;
	}
}

static int
produce_big_zc_fill(struct run *r)
{
	return produce_big_zc(r, false);
}

static int
produce_big_zc_copy(struct run *r)
{
	return produce_big_zc(r, true);
}

static int
consume_big_zc(struct run *r, bool copy)
{
	if (copy && !(r->big = big_alloc(BIG)))
		return -ENOMEM;
	for (;;) {
		struct aiop_msg m;
		bool ok;
		int rc = aiop_queue_peek(r->q[0], &m, OP_TIMEOUT_NS);

		if (rc < 0)
			return rc;
		if (m.len != BIG) {
			(void)aiop_queue_release(r->q[0], &m);
			return -EBADMSG;
		}
		if (copy) {
			memcpy(r->big, m.data, BIG);
			ok = stamped(r->big, BIG, r->n);
		} else {
			ok = filled_ok(m.data, BIG, r->n);
		}
		if ((rc = aiop_queue_release(r->q[0], &m)) < 0)
			return rc;
		if (!ok)
			return -EBADMSG;
		r->n++;
		if (tp_due(r))
			return 0;
	}
}

static int
consume_big_zc_sum(struct run *r)
{
	return consume_big_zc(r, false);
}

static int
consume_big_zc_copy(struct run *r)
{
	return consume_big_zc(r, true);
}

/* One process, cache-hot private buffers: memcpy's bandwidth. */
static int
local_memcpy(struct run *r)
{
	unsigned char *src = big_alloc(BIG);
	int rc = 0;

	if (!src || !(r->big = big_alloc(BIG))) {
		big_free(&src, BIG);
		return -ENOMEM;
	}
	for (;;) {
		stamp(src, BIG, r->n);
		memcpy(r->big, src, BIG);
		if (!stamped(r->big, BIG, r->n)) {
			rc = -EBADMSG;
			break;
		}
		r->n++;
		if (tp_due(r))
			break;
	}
	big_free(&src, BIG);
	return rc;
}

/* ==== roundtrip: 64-byte ping-pong ======================================= */

/* seq + 1 in the first word: a zeroed slot holds no message */
static void
slot_put(struct slot *s, uint64_t seq)
{
	for (unsigned k = 1; k < MSG_WORDS - 1; k++)
		s->w[k] = seq + k;
	s->w[MSG_WORDS - 1] = ~seq;
	__atomic_store_n(&s->w[0], seq + 1, __ATOMIC_RELEASE);
}

static bool
slot_ok(const struct slot *s, uint64_t seq)
{
	return __atomic_load_n(&s->w[0], __ATOMIC_ACQUIRE) == seq + 1 &&
	       s->w[MSG_WORDS - 1] == ~seq;
}

static int
spin_slot(const struct slot *s, uint64_t seq, uint64_t deadline)
{
	unsigned k = 0;

	while (__atomic_load_n(&s->w[0], __ATOMIC_ACQUIRE) != seq + 1) {
		bench_relax();
		if ((++k & 4095) == 0 && bench_now() > deadline)
			return -ETIMEDOUT;
	}
	return s->w[MSG_WORDS - 1] == ~seq ? 0 : -EBADMSG;
}

/* ---- cache-line spin: a 64-byte message in one line each way ------------- */

static int
rt_spin(struct run *r, uint64_t i)
{
	slot_put(&r->sh->ping, i);
	return spin_slot(&r->sh->pong, i, r->deadline);
}

static int
echo_spin(struct run *r)
{
	set_ready(r);
	for (uint64_t i = 0;; i++) {
		int rc = spin_slot(&r->sh->ping, i, r->deadline);
		bool stop;

		if (rc < 0)
			return rc;
		stop = stop_seen(r);
		slot_put(&r->sh->pong, i);
		if (stop)
			return 0;
	}
}

/* ---- eventfd + shared slot ----------------------------------------------- */

/* The child's end is non-blocking when it reads in a libev loop. */
static int
setup_rt_efd_ev(struct run *r)
{
	return bench_efd_pair(r->fd, true);
}

static int
setup_rt_efd_blk(struct run *r)
{
	return bench_efd_pair(r->fd, false);
}

static int
rt_efd(struct run *r, uint64_t i)
{
	int rc;

	slot_put(&r->sh->ping, i);
	if ((rc = bench_efd_put(r->fd[0])) < 0 ||
	    (rc = bench_efd_get(r->fd[1])) < 0)
		return rc;
	return slot_ok(&r->sh->pong, i) ? 0 : -EBADMSG;
}

static int
echo_efd_blk(struct run *r)
{
	set_ready(r);
	for (uint64_t i = 0;; i++) {
		int rc = bench_efd_get(r->fd[0]);
		bool stop;

		if (rc < 0)
			return rc;
		if (!slot_ok(&r->sh->ping, i))
			return -EBADMSG;
		stop = stop_seen(r);
		slot_put(&r->sh->pong, i);
		if ((rc = bench_efd_put(r->fd[1])) < 0)
			return rc;
		if (stop)
			return 0;
	}
}

/* The fair kernel baseline of the coro figure: the same loop and the same
 * epoll wake-up, with nothing of aiop in between. */
static void
on_rt_efd(struct ev_loop *loop, ev_io *w, int revents)
{
	struct run *r = w->data;
	uint64_t v;
	bool stop;
	int rc;

	(void)loop;
	(void)revents;
	if (read(r->fd[0], &v, sizeof(v)) != sizeof(v)) {
		if (errno != EAGAIN)
			bench_loop_fail(&r->lp, -errno);
		return;
	}
	if (!slot_ok(&r->sh->ping, r->n)) {
		bench_loop_fail(&r->lp, -EBADMSG);
		return;
	}
	stop = stop_seen(r);
	slot_put(&r->sh->pong, r->n);
	r->n++;
	if ((rc = bench_efd_put(r->fd[1])) < 0)
		bench_loop_fail(&r->lp, rc);
	else if (stop)
		bench_loop_done(&r->lp);
}

static int
echo_efd_ev(struct run *r)
{
	int rc = loop_open(r);

	if (rc < 0)
		return rc;
	r->n = 0;
	bench_loop_watch(&r->lp, on_rt_efd, r->fd[0], r);
	set_ready(r);
	return bench_loop_run_close(&r->lp);
}

/* ---- aiop: q[0] parent -> child, q[1] child -> parent -------------------- */

static int
rt_q(struct run *r, uint64_t i)
{
	int rc;

	stamp(r->buf, MSG, i);
	rc = aiop_queue_put(r->q[0], r->buf, MSG, OP_TIMEOUT_NS);
	if (rc < 0)
		return rc;
	rc = aiop_queue_get(r->q[1], r->buf, MSG, NULL, OP_TIMEOUT_NS);
	if (rc != (int)MSG)
		return rc < 0 ? rc : -EBADMSG;
	return stamped(r->buf, MSG, i) ? 0 : -EBADMSG;
}

static int
echo_q_blk(struct run *r)
{
	int rc = scratch(r, MSG);

	if (rc < 0)
		return rc;
	set_ready(r);
	for (uint64_t i = 0;; i++) {
		bool stop;

		rc = aiop_queue_get(r->q[0], r->buf, MSG, NULL, OP_TIMEOUT_NS);
		if (rc != (int)MSG)
			return rc < 0 ? rc : -EBADMSG;
		if (!stamped(r->buf, MSG, i))
			return -EBADMSG;
		stop = stop_seen(r);
		rc = aiop_queue_put(r->q[1], r->buf, MSG, OP_TIMEOUT_NS);
		if (rc < 0)
			return rc;
		if (stop)
			return 0;
	}
}

static void
on_rt_q(struct ev_loop *loop, struct aiop_op *op, int res)
{
	struct run *r = op->data;
	bool stop;
	int rc;

	if (res != (int)MSG) {
		bench_loop_fail(&r->lp, res < 0 ? res : -EBADMSG);
		return;
	}
	if (!stamped(r->buf, MSG, r->n)) {
		bench_loop_fail(&r->lp, -EBADMSG);
		return;
	}
	r->n++;
	stop = stop_seen(r);
	/* the answer queue is never full in a ping-pong: a try cannot fail
	 * for want of room, and a callback must not block */
	if ((rc = aiop_queue_try_put(r->q[1], r->buf, MSG)) < 0) {
		bench_loop_fail(&r->lp, rc);
		return;
	}
	if (stop) {
		bench_loop_done(&r->lp);
		return;
	}
	next_get(loop, op, r, on_rt_q);
}

static int
echo_q_coro(struct run *r)
{
	int rc = scratch(r, MSG);

	if (rc < 0 || (rc = loop_open(r)) < 0)
		return rc;
	r->n = 0;
	next_get(r->lp.loop, &r->lp.op, r, on_rt_q);
	set_ready(r);
	return bench_loop_run_close(&r->lp);
}

/* ==== the scenario table ================================================== */

enum kind { K_TPUT, K_RT, K_LOCAL };
enum unit { U_MSGS, U_GBS, U_NS };
#define ON(p) (1u << (p))
#define ALL_PL (ON(PL_UNPINNED) | ON(PL_SPLIT) | ON(PL_PINNED))

enum sid {
	/* oneway */
	S_PIPE,
	S_STREAM,
	S_SEQPACKET,
	S_MQ,
	S_EFD_RING,
	S_SPIN_RING,
	S_Q_CORO,
	S_Q_CORO_OFF,
	S_Q_GET,
	S_Q_MANY,
	S_Q_MANY_CORO,
	S_L_PAIR,
	S_L_MANY,
	S_L_CORO,
	/* roundtrip */
	S_RT_SPIN,
	S_RT_EFD_EV,
	S_RT_EFD,
	S_RT_Q_CORO_OFF,
	S_RT_Q_CORO,
	S_RT_Q_OFF,
	S_RT_Q,
	S_RT_Q_SMALL,
	/* 2MiB */
	S_B_STREAM,
	S_B_STREAM_4M,
	S_B_Q,
	S_B_ZC,
	S_B_ZC_COPY,
	S_B_MEMCPY,
	S_N,
};

struct scen {
	const char *sect;
	const char *name;
	enum kind kind;
	enum unit unit;
	int spin;        /* aiop spin mode, or -1 for a baseline */
	bool kernel;     /* a candidate for "best kernel mechanism" */
	unsigned pls;    /* K_RT: the placements it runs in */
	size_t bytes;    /* message size (GB/s) */
	int (*setup)(struct run *r);        /* parent, before the fork */
	int (*child)(struct run *r);        /* producer, or echo */
	int (*consume)(struct run *r);      /* K_TPUT, K_LOCAL: parent */
	int (*rt)(struct run *r, uint64_t i); /* K_RT: parent, one trip */
	void (*stop)(struct run *r);        /* K_TPUT: unblock the child */
};

#define OW "oneway"
#define RT "roundtrip"
#define B2 "2MiB"

static const struct scen scens[S_N] = {
	[S_PIPE] = {OW, "pipe, ev_io, bulk read", K_TPUT, U_MSGS, -1, true,
		    0, MSG, setup_pipe, produce_fd, consume_stream, NULL,
		    stop_close},
	[S_STREAM] = {OW, "socketpair STREAM, ev_io, bulk read", K_TPUT,
		      U_MSGS, -1, true, 0, MSG, setup_stream, produce_fd,
		      consume_stream, NULL, stop_close},
	[S_SEQPACKET] = {OW, "socketpair SEQPACKET, ev_io, read per msg",
			 K_TPUT, U_MSGS, -1, true, 0, MSG, setup_seqpacket,
			 produce_fd, consume_packet, NULL, stop_close},
	[S_MQ] = {OW, "POSIX mq, ev_io, receive per msg", K_TPUT, U_MSGS, -1,
		  true, 0, MSG, setup_mq, produce_mq, consume_mq, NULL,
		  stop_mq},
	[S_EFD_RING] = {OW, "shm ring + eventfd write per msg, ev_io",
			K_TPUT, U_MSGS, -1, false, 0, MSG, setup_efd_ring,
			produce_efd_ring, consume_efd_ring, NULL,
			stop_efd_ring},
	[S_SPIN_RING] = {OW, "busy-spin SPSC ring (the limit)", K_TPUT,
			 U_MSGS, -1, false, 0, MSG, setup_none,
			 produce_spin_ring, consume_spin_ring, NULL, NULL},
	[S_Q_CORO] = {OW, "aiop put -> coro get, spin auto", K_TPUT, U_MSGS,
		      AIOP_SPIN_AUTO, false, 0, MSG, setup_q1, produce_q,
		      consume_q_coro, NULL, stop_q},
	[S_Q_CORO_OFF] = {OW, "aiop put -> coro get, spin off", K_TPUT,
			  U_MSGS, AIOP_SPIN_OFF, false, 0, MSG, setup_q1,
			  produce_q, consume_q_coro, NULL, stop_q},
	[S_Q_GET] = {OW, "aiop put -> blocking get, spin auto", K_TPUT,
		     U_MSGS, AIOP_SPIN_AUTO, false, 0, MSG, setup_q1,
		     produce_q, consume_q_get, NULL, stop_q},
	[S_Q_MANY] = {OW, "aiop put_many 32..64 -> blocking get_many",
		      K_TPUT, U_MSGS, AIOP_SPIN_AUTO, false, 0, MSG, setup_q1,
		      produce_q_many, consume_q_get_many, NULL, stop_q},
	[S_Q_MANY_CORO] = {OW, "aiop put_many 32..64 -> coro get_many",
			   K_TPUT, U_MSGS, AIOP_SPIN_AUTO, false, 0, MSG,
			   setup_q1, produce_q_many, consume_q_coro_many,
			   NULL, stop_q},
	[S_L_PAIR] = {OW, "one process: try_put + try_get, per msg", K_LOCAL,
		      U_NS, AIOP_SPIN_AUTO, false, 0, MSG, setup_q1, NULL,
		      local_q_pair, NULL, NULL},
	[S_L_MANY] = {OW, "one process: put_many + get_many 64, per msg",
		      K_LOCAL, U_NS, AIOP_SPIN_AUTO, false, 0, MSG, setup_q1,
		      NULL, local_q_many, NULL, NULL},
	[S_L_CORO] = {OW, "one process: try_put + coro get, per msg",
		      K_LOCAL, U_NS, AIOP_SPIN_AUTO, false, 0, MSG, setup_q1,
		      NULL, local_q_coro, NULL, NULL},
	[S_RT_SPIN] = {RT, "cache-line spin, 64 B each way", K_RT, U_NS, -1,
		       false, ON(PL_UNPINNED) | ON(PL_SPLIT), MSG, setup_none,
		       echo_spin, NULL, rt_spin, NULL},
	[S_RT_EFD_EV] = {RT, "eventfd + shm slot, child in ev_io loop", K_RT,
			 U_NS, -1, false, ALL_PL, MSG, setup_rt_efd_ev,
			 echo_efd_ev, NULL, rt_efd, NULL},
	[S_RT_EFD] = {RT, "eventfd + shm slot, child blocking read", K_RT,
		      U_NS, -1, false, ALL_PL, MSG, setup_rt_efd_blk,
		      echo_efd_blk, NULL, rt_efd, NULL},
	[S_RT_Q_CORO_OFF] = {RT, "aiop queues, child coro get, spin off",
			     K_RT, U_NS, AIOP_SPIN_OFF, false, ALL_PL, MSG,
			     setup_q2, echo_q_coro, NULL, rt_q, NULL},
	[S_RT_Q_CORO] = {RT, "aiop queues, child coro get, spin auto", K_RT,
			 U_NS, AIOP_SPIN_AUTO, false, ALL_PL, MSG, setup_q2,
			 echo_q_coro, NULL, rt_q, NULL},
	[S_RT_Q_OFF] = {RT, "aiop queues, child blocking get, spin off",
			K_RT, U_NS, AIOP_SPIN_OFF, false, ALL_PL, MSG,
			setup_q2, echo_q_blk, NULL, rt_q, NULL},
	[S_RT_Q] = {RT, "aiop queues, child blocking get, spin auto", K_RT,
		    U_NS, AIOP_SPIN_AUTO, false, ALL_PL, MSG, setup_q2,
		    echo_q_blk, NULL, rt_q, NULL},
	[S_RT_Q_SMALL] = {RT, "same, 64 KiB rings instead of the default", K_RT,
			  U_NS, AIOP_SPIN_AUTO, false,
			  ON(PL_UNPINNED) | ON(PL_SPLIT), MSG,
			  setup_q2_small, echo_q_blk, NULL, rt_q, NULL},
	[S_B_STREAM] = {B2, "socketpair STREAM, default buffers", K_TPUT,
			U_GBS, -1, false, 0, BIG, setup_big_stream,
			produce_big_stream, consume_big_stream, NULL,
			stop_close},
	[S_B_STREAM_4M] = {B2, "socketpair STREAM, 4 MiB buffers asked",
			   K_TPUT, U_GBS, -1, false, 0, BIG,
			   setup_big_stream_4m, produce_big_stream,
			   consume_big_stream, NULL, stop_close},
	[S_B_Q] = {B2, "aiop put/get (copy in, copy out)", K_TPUT, U_GBS,
		   AIOP_SPIN_AUTO, false, 0, BIG, setup_q1, produce_big_q,
		   consume_big_q, NULL, stop_q},
	[S_B_ZC] = {B2, "aiop reserve+memset / peek+sum+release", K_TPUT,
		    U_GBS, AIOP_SPIN_AUTO, false, 0, BIG, setup_q1,
		    produce_big_zc_fill, consume_big_zc_sum, NULL, stop_q},
	[S_B_ZC_COPY] = {B2, "aiop reserve+memcpy in / peek+memcpy out",
			 K_TPUT, U_GBS, AIOP_SPIN_AUTO, false, 0, BIG,
			 setup_q1, produce_big_zc_copy, consume_big_zc_copy,
			 NULL, stop_q},
	[S_B_MEMCPY] = {B2, "memcpy 2 MiB, one process", K_LOCAL, U_GBS, -1,
			false, 0, BIG, setup_none, NULL, local_memcpy, NULL,
			NULL},
};

/* ---- one measurement ---------------------------------------------------- */

struct result {
	double v;     /* msg/s, GB/s or ns per round trip; NAN on failure */
	double sc;    /* aiop-counted syscalls per message / round trip */
	double it;    /* consumer loop iterations (epoll_wait) per message */
	double msgs;  /* messages (round trips) the counters cover */
	double mpo;   /* messages per receive call (read, get, callback) */
	struct aiop_stats st; /* both processes' counters */
	int err;
};

static void
run_init(struct run *r, const struct cfg *cfg, struct shared *sh)
{
	memset(r, 0, sizeof(*r));
	r->cfg = cfg;
	r->sh = sh;
	r->fd[0] = r->fd[1] = -1;
	r->mq[0] = r->mq[1] = (mqd_t)-1;
	r->child = -1;
}

static void
shared_reset(struct shared *sh)
{
	atomic_store(&sh->stop, 0);
	atomic_store(&sh->phase, 0);
	atomic_store(&sh->ready, 0);
	for (int k = 0; k < NCHILD; k++)
		atomic_store(&sh->child_rc[k], 0);
	memset(sh->stats, 0, sizeof(sh->stats));
	memset(sh->produced, 0, sizeof(sh->produced));
	atomic_store(&sh->head, 0);
	atomic_store(&sh->tail, 0);
	atomic_store(&sh->prod_wait, 0);
	memset(&sh->ping, 0, sizeof(sh->ping));
	memset(&sh->pong, 0, sizeof(sh->pong));
	for (int k = 0; k < MN_MAX; k++)
		atomic_store(&sh->ccount[k].v, 0);
	memset(sh->mn, 0, sizeof(sh->mn));
}

/* Each process drops what it holds; the shared mapping stays. */
static void
run_drop(struct run *r)
{
	for (int k = 0; k < 2; k++) {
		(void)aiop_queue_free(r->q[k]);
		r->q[k] = NULL;
		if (r->fd[k] >= 0)
			close(r->fd[k]);
		r->fd[k] = -1;
		if (r->mq[k] != (mqd_t)-1)
			mq_close(r->mq[k]);
		r->mq[k] = (mqd_t)-1;
	}
	big_free(&r->buf, r->buf_len);
	big_free(&r->big, BIG);
}

/* After fork: a stream's end must be closed in the other process, or the
 * writer never sees the reader go (EPIPE). */
static void
after_fork(struct run *r, bool child)
{
	int mine = child ? 1 : 0;

	if (r->fd_split && r->fd[!mine] >= 0) {
		close(r->fd[!mine]);
		r->fd[!mine] = -1;
	}
	if (r->mq[!mine] != (mqd_t)-1) {
		mq_close(r->mq[!mine]);
		r->mq[!mine] = (mqd_t)-1;
	}
}

static _Noreturn void
child_main(struct run *r, int (*fn)(struct run *r), int idx, int cpu)
{
	int rc = 0;

	r->child = idx;
	if (cpu >= 0)
		rc = bench_pin(cpu);
	alarm(bench_alarm_secs(r->deadline));
	aiop_stats_reset();
	if (rc == 0)
		rc = fn(r);
	aiop_stats_get(&r->sh->stats[idx]);
	atomic_store(&r->sh->child_rc[idx], rc);
	run_drop(r);
	_exit(rc < 0 ? 1 : 0);
}

/* The parent's side of a ping-pong (as in sync_bench): the clock is read
 * every `stride` round trips; the stop flag goes out with the last ping. */
static int
drive(struct run *r, const struct scen *s, double *ns_rt, uint64_t *total)
{
	uint64_t i = 0, next = 1, stride = 1, t, t_last, t_start = 0;
	uint64_t i_start = 0, end;
	bool timed = false, last = false;
	int rc;

	t_last = bench_now();
	end = t_last + r->warm_ns;
	for (;;) {
		if (i == next) {
			t = bench_now();
			if (t - t_last < 5000 && stride < 4096)
				stride *= 2;
			else if (t - t_last > 100000 && stride > 1)
				stride /= 2;
			t_last = t;
			next = i + stride;
			if (t >= end && !timed) {
				timed = true;
				t_start = t;
				i_start = i;
				end = t + r->meas_ns;
			} else if (t >= end) {
				atomic_store(&r->sh->stop, 1);
				last = true;
			}
		}
		if ((rc = s->rt(r, i)) < 0)
			return rc;
		i++;
		if (last)
			break;
	}
	*ns_rt = (double)(bench_now() - t_start) / (double)(i - i_start);
	*total = i;
	return 0;
}

static int
measure(const struct cfg *cfg, struct shared *sh,
	const struct bench_cpus *cpus, enum sid id, enum placement pl,
	struct result *out)
{
	const struct scen *s = &scens[id];
	struct run r;
	pid_t pid = -1;
	uint64_t n = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	out->v = out->sc = out->it = out->mpo = NAN;
	run_init(&r, cfg, sh);
	shared_reset(sh);
	if (s->kind == K_RT) {
		r.warm_ns = cfg->rt_warm_ns;
		r.meas_ns = cfg->rt_meas_ns;
	} else {
		r.warm_ns = cfg->tp_warm_ns;
		r.meas_ns = cfg->tp_meas_ns;
	}
	r.deadline = bench_now() + r.warm_ns + r.meas_ns + GRACE_NS;
	if ((rc = s->setup(&r)) < 0)
		goto out;
	bench_spin_set(s->spin, 0);
	rc = bench_place(cpus, pl, 0);
	if (rc < 0)
		goto out;
	alarm(bench_alarm_secs(r.deadline));
	if (s->kind == K_LOCAL) {
		tp_init(&r);
		rc = s->consume(&r);
		goto done;
	}
	pid = bench_fork();
	if (pid == 0) {
		after_fork(&r, true);
		child_main(&r, s->child, 0, pl == PL_SPLIT ? cpus->b : -1);
	}
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	after_fork(&r, false);
	rc = bench_wait_ready(&sh->ready, 1, 5 * BENCH_NS_PER_S);
	if (rc == 0 && s->kind == K_RT) {
		if ((rc = scratch(&r, MSG)) == 0) {
			aiop_stats_reset();
			rc = drive(&r, s, &out->v, &n);
			aiop_stats_get(&r.pst);
		}
	} else if (rc == 0) {
		tp_init(&r);
		rc = s->consume(&r);
	}
	atomic_store(&sh->stop, 1);
	if (s->stop)
		s->stop(&r);
	rc = bench_finish_child(pid, rc, &sh->child_rc[0], REAP_MS);
done:
	alarm(0);
	if (rc < 0)
		goto out;
	out->st = r.pst;
	if (pid > 0)
		stats_add(&out->st, &sh->stats[0]);
	if (s->kind == K_RT) {
		/* both processes, warm-up included (the child counts from
		 * its start), per round trip */
		out->msgs = (double)n;
	} else {
		double sec = (double)(r.t1 - r.t0) / 1e9;

		out->msgs = (double)(r.n1 - r.n0);
		out->v = out->msgs / sec;
		if (s->unit == U_GBS)
			out->v *= (double)s->bytes / 1e9;
		else if (s->unit == U_NS)
			out->v = sec * 1e9 / out->msgs;
		if (r.ops1 > r.ops0)
			out->mpo = out->msgs / (double)(r.ops1 - r.ops0);
		if (r.looped)
			out->it = (double)(r.it1 - r.it0) / out->msgs;
	}
	out->sc = (double)bench_stats_syscalls(&out->st) / out->msgs;
out:
	if (rc < 0)
		out->v = NAN;
	out->err = rc;
	alarm(0);
	run_drop(&r);
	aiop_spin_set(AIOP_SPIN_AUTO, 0);
	bench_unpin(cpus);
	return rc;
}

/* ==== scaling: M producers x N consumers ================================== */

static const int mn_sizes[] = {1, 2, 4, 8};
#define MN_SIZES 4

struct mnres {
	double v;   /* msg/s consumed in the timed window */
	double sc;  /* aiop syscalls per message, all processes */
	double waits, wakes, spins; /* per message (--verbose) */
	int err;
};

static int
mn_producer(struct run *r)
{
	struct slot m = {{0}};
	int p = r->child;
	uint64_t seq = 0;

	set_ready(r);
	for (;; seq++) {
		int rc;

		if (child_stop(r))
			break;
		stamp(m.w, MSG, seq);
		m.w[1] = (uint64_t)p;
		rc = aiop_queue_put(r->q[0], m.w, MSG, OP_TIMEOUT_NS);
		if (rc == -EPIPE && stop_seen(r))
			break; /* closed at the stop: this one was not put */
		if (rc < 0)
			return rc;
	}
	r->sh->produced[p] = seq;
	return 0;
}

/* Per producer, a consumer sees increasing sequence numbers (each
 * producer's messages are taken in order); counts and sums make sure
 * every message was delivered exactly once overall. */
static int
mn_take(struct mnsum *seen, uint64_t *last, const unsigned char *m)
{
	uint64_t seq = ld64(m), p = ld64(m + 8);

	if (p >= MN_MAX || !stamped(m, MSG, seq))
		return -EBADMSG;
	if (seen[p].cnt && seq <= last[p])
		return -EBADMSG;
	last[p] = seq;
	seen[p].cnt++;
	seen[p].sum += seq;
	return 0;
}

static int
mn_consumer(struct run *r)
{
	int c = r->child - MN_MAX;
	struct mnsum *seen = r->sh->mn[c].p;
	uint64_t last[MN_MAX] = {0}, total = 0;
	unsigned char m[MSG];

	set_ready(r);
	for (;;) {
		int rc;

		/* leave at the stop: the parent drains what is left */
		if (child_stop(r))
			return 0;
		rc = aiop_queue_get(r->q[0], m, MSG, NULL, OP_TIMEOUT_NS);
		if (rc == -EPIPE && stop_seen(r))
			return 0;
		if (rc != (int)MSG)
			return rc < 0 ? rc : -EBADMSG;
		if ((rc = mn_take(seen, last, m)) < 0)
			return rc;
		atomic_store_explicit(&r->sh->ccount[c].v, ++total,
				      memory_order_relaxed);
	}
}

static uint64_t
mn_consumed(struct shared *sh, int nc)
{
	uint64_t s = 0;

	for (int c = 0; c < nc; c++)
		s += atomic_load_explicit(&sh->ccount[c].v,
					  memory_order_relaxed);
	return s;
}

/* After everyone left: take the rest, then check every producer's
 * messages were each delivered once. */
static int
mn_verify(struct run *r, int np, int nc)
{
	struct shared *sh = r->sh;
	struct mnsum *seen = sh->mn[MN_MAX].p;
	uint64_t last[MN_MAX] = {0};
	unsigned char *b = r->buf;
	int rc;

	for (;;) {
		size_t off = 0;

		rc = aiop_queue_try_get_many(r->q[0], b, r->buf_len, r->lens,
					     BATCH_MAX);
		if (rc == -EPIPE || rc == -EAGAIN)
			break;
		if (rc < 1)
			return rc < 0 ? rc : -EBADMSG;
		for (int k = 0; k < rc; k++) {
			int e;

			if (r->lens[k] != MSG)
				return -EBADMSG;
			if ((e = mn_take(seen, last, b + off)) < 0)
				return e;
			off += MSG;
		}
	}
	for (int p = 0; p < np; p++) {
		uint64_t cnt = 0, sum = 0, n = sh->produced[p];

		for (int c = 0; c <= MN_MAX; c++) {
			if (c >= nc && c < MN_MAX)
				continue;
			cnt += sh->mn[c].p[p].cnt;
			sum += sh->mn[c].p[p].sum;
		}
		if (cnt != n || sum != (n ? n * (n - 1) / 2 : 0))
			return -EBADMSG;
	}
	return 0;
}

static void
measure_mn(const struct cfg *cfg, struct shared *sh, int np, int nc,
	   struct mnres *out)
{
	struct run r;
	pid_t pid[NCHILD];
	int idx[NCHILD], nk = 0, rc;
	uint64_t c0 = 0, c1 = 0, t0 = 0, t1 = 0, total = 0;
	struct aiop_stats st = {0};

	out->v = out->sc = NAN;
	run_init(&r, cfg, sh);
	shared_reset(sh);
	r.deadline = bench_now() + cfg->mn_warm_ns + cfg->mn_meas_ns +
		     GRACE_NS;
	aiop_spin_set(AIOP_SPIN_AUTO, 0);
	if ((rc = aiop_queue_new(&r.q[0], NULL)) < 0 ||
	    (rc = scratch(&r, (size_t)BATCH_MAX * MSG)) < 0)
		goto out;
	for (int k = 0; k < np + nc; k++) {
		int i = k < np ? k : MN_MAX + (k - np);

		pid[nk] = bench_fork();
		if (pid[nk] == 0)
			child_main(&r, k < np ? mn_producer : mn_consumer, i,
				   -1);
		if (pid[nk] < 0) {
			rc = -errno;
			break;
		}
		idx[nk++] = i;
	}
	if (rc == 0)
		rc = bench_wait_ready(&sh->ready, (uint32_t)(np + nc),
				      5 * BENCH_NS_PER_S);
	if (rc == 0) {
		bench_sleep_ns(cfg->mn_warm_ns);
		c0 = mn_consumed(sh, nc);
		t0 = bench_now();
		atomic_store(&sh->phase, 1);
		bench_sleep_ns(cfg->mn_meas_ns);
		c1 = mn_consumed(sh, nc);
		t1 = bench_now();
	}
	/* producers blocked on a full ring leave through the close */
	atomic_store(&sh->stop, 1);
	(void)aiop_queue_close(r.q[0]);
	for (int k = 0; k < nk; k++) {
		int e = bench_finish_child(pid[k], rc, &sh->child_rc[idx[k]],
					   REAP_MS);

		if (rc == 0)
			rc = e;
	}
	if (rc == 0)
		rc = mn_verify(&r, np, nc);
	if (rc < 0)
		goto out;
	for (int k = 0; k < nk; k++) {
		stats_add(&st, &sh->stats[idx[k]]);
		if (idx[k] >= MN_MAX)
			total += sh->ccount[idx[k] - MN_MAX].v;
	}
	out->v = (double)(c1 - c0) / ((double)(t1 - t0) / 1e9);
	/* the children count from the timed part to their exit: divide by
	 * what the consumers took over the same span */
	out->sc = out->waits = out->wakes = out->spins = NAN;
	if (total > c0) {
		double m = (double)(total - c0);

		out->sc = (double)bench_stats_syscalls(&st) / m;
		out->waits = (double)st.futex_waits / m;
		out->wakes = (double)st.futex_wakes / m;
		out->spins = (double)st.spins_ok / m;
	}
out:
	out->err = rc;
	run_drop(&r);
}

/* ==== idle: consumers of an empty queue =================================== */

enum iid { I_CORO, I_BLOCK, I_N };

static const char *const i_names[I_N] = {
	[I_CORO] = "coro get pending in ev_run",
	[I_BLOCK] = "blocking get",
};

struct idle_ctx {
	struct run *r;
	int result;
	bool done;
};

static void
on_idle_get(struct ev_loop *loop, struct aiop_op *op, int res)
{
	struct idle_ctx *c = op->data;

	c->result = res;
	c->done = true;
	ev_break(loop, EVBREAK_ALL);
}

static int
idle_coro(struct run *r)
{
	struct idle_ctx c = {.r = r};
	struct aiop_op op = {.data = &c};
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	int rc;

	if (!loop)
		return -ENOMEM;
	if ((rc = scratch(r, MSG)) == 0)
		rc = aiop_queue_coro_get(loop, &op, r->q[0], r->buf, MSG,
					 NULL, (int64_t)r->meas_ns,
					 on_idle_get);
	if (rc == 0) {
		set_ready(r);
		/* the op's own timeout bounds this run */
		ev_run(loop, 0);
		rc = c.done ? c.result : -EPROTO;
		if (rc >= 0)
			rc = rc == (int)MSG && stamped(r->buf, MSG, 0)
				     ? 0 : -EBADMSG;
	}
	(void)aiop_loop_detach(loop);
	ev_loop_destroy(loop);
	return rc;
}

static int
idle_block(struct run *r)
{
	int rc = scratch(r, MSG);

	if (rc < 0)
		return rc;
	set_ready(r);
	rc = aiop_queue_get(r->q[1], r->buf, MSG, NULL, (int64_t)r->meas_ns);
	if (rc < 0)
		return rc;
	return rc == (int)MSG && stamped(r->buf, MSG, 0) ? 0 : -EBADMSG;
}

static void
idle_cpu(const struct cfg *cfg, struct shared *sh, struct bench_idle *ir)
{
	struct run r;
	pid_t pid[I_N];
	int rc, started = 0;
	unsigned char m[MSG];

	for (int k = 0; k < I_N; k++)
		ir[k] = (struct bench_idle){NAN, NAN, NAN, NAN, 0};
	run_init(&r, cfg, sh);
	shared_reset(sh);
	/* the waits' own timeout, well past the watched span */
	r.meas_ns = cfg->idle_ns + GRACE_NS;
	r.deadline = bench_now() + r.meas_ns;
	aiop_spin_set(AIOP_SPIN_AUTO, 0);
	if ((rc = setup_q2(&r)) < 0)
		goto out;
	for (; started < I_N; started++) {
		pid[started] = bench_fork();
		if (pid[started] == 0)
			child_main(&r, started == I_CORO ? idle_coro
							 : idle_block,
				   started, -1);
		if (pid[started] < 0) {
			rc = -errno;
			break;
		}
	}
	if (rc == 0)
		rc = bench_wait_ready(&sh->ready, I_N, 5 * BENCH_NS_PER_S);
	if (rc == 0) {
		/* let any spin and the first sleep settle */
		bench_sleep_ns(100 * BENCH_NS_PER_MS);
		bench_idle_watch(pid, I_N, cfg->idle_ns, ir);
	}
	/* one message each: the waiters must still wake up and get it */
	memset(m, 0, sizeof(m));
	stamp(m, MSG, 0);
	(void)aiop_queue_put(r.q[0], m, MSG, OP_TIMEOUT_NS);
	(void)aiop_queue_put(r.q[1], m, MSG, OP_TIMEOUT_NS);
	for (int k = 0; k < started; k++) {
		int st = bench_reap(pid[k], REAP_MS);

		if (st != 0 && !ir[k].err) {
			int crc = atomic_load(&sh->child_rc[k]);

			ir[k].err = crc < 0 ? crc : st < 0 ? st : -EPROTO;
		}
	}
out:
	if (rc < 0)
		for (int k = 0; k < I_N; k++)
			if (!ir[k].err)
				ir[k].err = rc;
	run_drop(&r);
}

/* ==== report ============================================================= */

struct cell {
	double v[BENCH_MAX_ROUNDS], sc[BENCH_MAX_ROUNDS], it[BENCH_MAX_ROUNDS];
	double mpo[BENCH_MAX_ROUNDS];
	struct aiop_stats st; /* summed over the rounds */
	double msgs;          /* what st covers */
	int n, nerr, err;
};

static struct cell cells[S_N][PL_N];
static struct mnres mncells[MN_SIZES][MN_SIZES][BENCH_MAX_ROUNDS];
static bool have_split;
static enum placement tp_pl; /* where throughput figures run */

static double
cell_med(enum sid s, enum placement p, double lo_hi[2])
{
	return bench_cell_median(cells[s][p].v, cells[s][p].n, lo_hi);
}

static bool
ran(enum sid s)
{
	for (int p = 0; p < PL_N; p++)
		if (cells[s][p].n || cells[s][p].nerr)
			return true;
	return false;
}

static enum placement
pl_of(enum sid s)
{
	return scens[s].kind == K_RT ? PL_SPLIT : tp_pl;
}

/* A figure, with its range, in one unit chosen by the median. */
static void
fmt_val(char *buf, size_t len, enum unit u, double v, const double *lh)
{
	double div = 1;
	const char *un = "";
	char r[48] = "";

	if (isnan(v)) {
		snprintf(buf, len, "ERR");
		return;
	}
	switch (u) {
	case U_MSGS:
		div = v >= 1e6 ? 1e6 : 1e3;
		un = v >= 1e6 ? "M/s" : "k/s";
		break;
	case U_GBS:
		div = 1;
		un = "GB/s";
		break;
	case U_NS:
		div = v < 1e3 ? 1 : v < 1e6 ? 1e3 : 1e6;
		un = v < 1e3 ? "ns" : v < 1e6 ? "us" : "ms";
		break;
	}
	if (lh)
		snprintf(r, sizeof(r), " [%.3g - %.3g]", lh[0] / div,
			 lh[1] / div);
	snprintf(buf, len, "%.3g %s%s", v / div, un, r);
}

static void
print_tput(const char *sect, const char *title)
{
	bool any = false;

	for (int s = 0; s < S_N; s++)
		any |= ran((enum sid)s) && !strcmp(scens[s].sect, sect);
	if (!any)
		return;
	printf("\n## %s\n\n", title);
	printf("| scenario | median [min - max] | aiop syscalls/msg | "
	       "loop iterations/msg | msgs per receive call |\n"
	       "|---|---|---|---|---|\n");
	for (int s = 0; s < S_N; s++) {
		enum placement p = pl_of((enum sid)s);
		const struct cell *c = &cells[s][p];
		double lh[2];
		char v[80];

		if (!ran((enum sid)s) || strcmp(scens[s].sect, sect))
			continue;
		fmt_val(v, sizeof(v), scens[s].unit,
			cell_med((enum sid)s, p, lh), c->n ? lh : NULL);
		printf("| %s | %s", scens[s].name, v);
		bench_print_errs(c->nerr, c->err);
		if (scens[s].spin >= 0 && c->n)
			printf(" | %.5f", bench_median_of(c->sc, c->n));
		else
			printf(" | -");
		if (c->n && !isnan(bench_median_of(c->it, c->n)))
			printf(" | %.4f", bench_median_of(c->it, c->n));
		else
			printf(" | -");
		if (c->n && !isnan(bench_median_of(c->mpo, c->n)))
			printf(" | %.3g |\n", bench_median_of(c->mpo, c->n));
		else
			printf(" | - |\n");
	}
}

static void
print_counters(const char *sect)
{
	bool head = false;

	for (int s = 0; s < S_N; s++) {
		const struct cell *c;
		const struct aiop_stats *t;
		double m;

		if (scens[s].spin < 0 || strcmp(scens[s].sect, sect))
			continue;
		for (int p = 0; p < PL_N; p++) {
			c = &cells[s][p];
			if (!c->n)
				continue;
			if (!head) {
				printf("\naiop counters per message (round "
				       "trip), both processes, summed over "
				       "the rounds:\n\n| scenario | "
				       "placement | futex waits | futex "
				       "wakes | doorbell rings | doorbell "
				       "reads | owner probes | spins ok | "
				       "spins failed |\n"
				       "|---|---|---|---|---|---|---|---|---|"
				       "\n");
				head = true;
			}
			t = &c->st;
			m = c->msgs;
			printf("| %s | %s | %.5f | %.5f | %.5f | %.5f | %.5f "
			       "| %.5f | %.5f |\n", scens[s].name,
			       bench_pl_names[p], (double)t->futex_waits / m,
			       (double)t->futex_wakes / m,
			       (double)t->doorbell_rings / m,
			       (double)t->doorbell_reads / m,
			       (double)t->owner_probes / m,
			       (double)t->spins_ok / m,
			       (double)t->spins_failed / m);
		}
	}
}

static void
print_rt(const struct cfg *cfg)
{
	bool any = false;

	for (int s = 0; s < S_N; s++)
		any |= ran((enum sid)s) && scens[s].kind == K_RT;
	if (!any)
		return;
	printf("\n## 64-byte round trip between two processes (median of "
	       "%d rounds, [min - max])\n\n", cfg->rounds);
	printf("Parent: put/write then blocking get/read; child: echoes. "
	       "split = parent on one\nCPU, child on the other; pinned = "
	       "both on one CPU.\n\n");
	printf("| scenario | unpinned | split | pinned |\n"
	       "|---|---|---|---|\n");
	for (int s = 0; s < S_N; s++) {
		if (!ran((enum sid)s) || scens[s].kind != K_RT)
			continue;
		printf("| %s |", scens[s].name);
		for (int p = 0; p < PL_N; p++) {
			const struct cell *c = &cells[s][p];
			double lh[2];
			char v[80];

			if (!(scens[s].pls & ON(p)) ||
			    (p == PL_SPLIT && !have_split)) {
				printf(" n/a |");
				continue;
			}
			fmt_val(v, sizeof(v), U_NS,
				cell_med((enum sid)s, (enum placement)p, lh),
				c->n ? lh : NULL);
			printf(" %s", v);
			bench_print_errs(c->nerr, c->err);
			printf(" |");
		}
		printf("\n");
	}
	printf("\naiop syscalls per round trip (both processes, warm-up "
	       "included):\n\n| scenario | unpinned | split | pinned |\n"
	       "|---|---|---|---|\n");
	for (int s = 0; s < S_N; s++) {
		if (!ran((enum sid)s) || scens[s].kind != K_RT ||
		    scens[s].spin < 0)
			continue;
		printf("| %s |", scens[s].name);
		for (int p = 0; p < PL_N; p++) {
			const struct cell *c = &cells[s][p];

			if (!c->n)
				printf(" n/a |");
			else
				printf(" %.2f |", bench_median_of(c->sc, c->n));
		}
		printf("\n");
	}
	print_counters(RT);
}

/* ---- the targets --------------------------------------------------------- */

enum metric { M_VAL, M_SC, M_SC_IT };
#define B_NONE (-1)
#define B_KERNEL (-2)

struct trow {
	const char *what;
	int fig, base;      /* scenario ids, or B_NONE / B_KERNEL */
	unsigned pls;       /* K_RT rows: placements; else ignored */
	double target;      /* 0: context only */
	bool ge;            /* the target is a minimum ratio */
	enum metric m;
};

static const struct trow trows[] = {
	{"64 B one-way: coro get vs best kernel", S_Q_CORO, B_KERNEL, 0, 8.0,
	 true, M_VAL},
	{"64 B one-way: aiop syscalls/msg (aiop_stats)", S_Q_CORO, B_NONE, 0,
	 0.001, false, M_SC},
	{"same + consumer loop iterations (epoll_wait)", S_Q_CORO, B_NONE, 0,
	 0.001, false, M_SC_IT},
	{"64 B batch: put_many/get_many vs busy-spin ring", S_Q_MANY,
	 S_SPIN_RING, 0, 0.5, true, M_VAL},
	{"64 B batch: put_many/coro get_many vs busy-spin ring",
	 S_Q_MANY_CORO, S_SPIN_RING, 0, 0.5, true, M_VAL},
	{"batch: aiop syscalls/msg (blocking get_many)", S_Q_MANY, B_NONE, 0,
	 0.001, false, M_SC},
	{"64 B one-way: coro get vs busy-spin ring", S_Q_CORO, S_SPIN_RING,
	 0, 0, true, M_VAL},
	{"64 B one-way: coro get, spin off vs best kernel", S_Q_CORO_OFF,
	 B_KERNEL, 0, 0, true, M_VAL},
	{"64 B one-way: blocking get vs best kernel", S_Q_GET, B_KERNEL, 0,
	 0, true, M_VAL},
	{"64 B one-way: shm ring + eventfd vs best kernel", S_EFD_RING,
	 B_KERNEL, 0, 0, true, M_VAL},
	{"RT both asleep (spin off), coro vs eventfd+ev_io", S_RT_Q_CORO_OFF,
	 S_RT_EFD_EV, ALL_PL, 1.1, false, M_VAL},
	{"RT both asleep (spin off), blocking vs eventfd", S_RT_Q_OFF,
	 S_RT_EFD, ALL_PL, 1.1, false, M_VAL},
	{"RT spin auto, other CPU, coro vs cache-line spin", S_RT_Q_CORO,
	 S_RT_SPIN, ON(PL_SPLIT) | ON(PL_UNPINNED), 2.0, false, M_VAL},
	{"RT spin auto, other CPU, blocking vs cache-line spin", S_RT_Q,
	 S_RT_SPIN, ON(PL_SPLIT) | ON(PL_UNPINNED), 2.0, false, M_VAL},
	{"same, blocking, 64 KiB rings", S_RT_Q_SMALL, S_RT_SPIN,
	 ON(PL_SPLIT) | ON(PL_UNPINNED), 0, false, M_VAL},
	{"RT one CPU, coro: spin auto vs off", S_RT_Q_CORO, S_RT_Q_CORO_OFF,
	 ON(PL_PINNED), 1.2, false, M_VAL},
	{"RT one CPU, blocking: spin auto vs off", S_RT_Q, S_RT_Q_OFF,
	 ON(PL_PINNED), 1.2, false, M_VAL},
	{"2 MiB copy put/get vs socketpair STREAM", S_B_Q, S_B_STREAM, 0, 5.0,
	 true, M_VAL},
	{"same, socketpair with large buffers", S_B_Q, S_B_STREAM_4M, 0, 5.0,
	 true, M_VAL},
	{"2 MiB zero-copy fill/sum vs memcpy", S_B_ZC, S_B_MEMCPY, 0, 1.0,
	 true, M_VAL},
	{"2 MiB zero-copy memcpy in/out vs copy put/get", S_B_ZC_COPY, S_B_Q,
	 0, 0, true, M_VAL},
};

/* The best kernel mechanism of the run: the highest median. */
static int
best_kernel(void)
{
	int best = -1;
	double bv = NAN;

	for (int s = 0; s < S_N; s++) {
		double v;

		if (!scens[s].kernel || !ran((enum sid)s))
			continue;
		v = cell_med((enum sid)s, tp_pl, NULL);
		if (!isnan(v) && (best < 0 || v > bv)) {
			best = s;
			bv = v;
		}
	}
	return best;
}

static const char *
verdict(double v, double target, bool ge)
{
	if (isnan(v))
		return "ERR";
	if (target <= 0)
		return "info";
	return (ge ? v >= target : v <= target) ? "met" : "missed";
}

static void
print_trow(const struct trow *t, enum placement p)
{
	char f[80], b[80], tg[32];
	double vf, vb = NAN, ratio;
	int base = t->base == B_KERNEL ? best_kernel() : t->base;
	const struct cell *c = &cells[t->fig][p];
	const char *bname = "-";

	if (!ran((enum sid)t->fig) || (t->base != B_NONE && base < 0) ||
	    (base >= 0 && !ran((enum sid)base)))
		return;
	if (t->m != M_VAL) {
		double sc = c->n ? bench_median_of(c->sc, c->n) : NAN;

		if (t->m == M_SC_IT)
			sc += c->n ? bench_median_of(c->it, c->n) : NAN;
		snprintf(tg, sizeof(tg), "<= %g", t->target);
		printf("| %s | %s | %.5f | - | - | - | %s | %s |\n", t->what,
		       bench_pl_names[p], sc, tg,
		       verdict(sc, t->target, false));
		return;
	}
	vf = cell_med((enum sid)t->fig, p, NULL);
	if (base >= 0) {
		vb = cell_med((enum sid)base, p, NULL);
		bname = scens[base].name;
	}
	ratio = vf / vb;
	fmt_val(f, sizeof(f), scens[t->fig].unit, vf, NULL);
	fmt_val(b, sizeof(b), scens[t->fig].unit, vb, NULL);
	if (t->target > 0)
		snprintf(tg, sizeof(tg), "%s %.1fx", t->ge ? ">=" : "<=",
			 t->target);
	else
		snprintf(tg, sizeof(tg), "-");
	printf("| %s | %s | %s | %s | %s | %.2fx | %s | %s |\n", t->what,
	       bench_pl_names[p], f, b, bname, ratio, tg,
	       verdict(ratio, t->target, t->ge));
}

static void
print_targets(void)
{
	bool any = false;

	for (size_t k = 0; k < sizeof(trows) / sizeof(trows[0]); k++)
		any |= ran((enum sid)trows[k].fig);
	if (!any)
		return;
	printf("\n## Targets (ratio of the medians above)\n\n");
	printf("| figure | placement | aiop | baseline | baseline is | ratio "
	       "| target | verdict |\n|---|---|---|---|---|---|---|---|\n");
	for (size_t k = 0; k < sizeof(trows) / sizeof(trows[0]); k++) {
		const struct trow *t = &trows[k];

		if (scens[t->fig].kind != K_RT) {
			print_trow(t, tp_pl);
			continue;
		}
		for (int p = 0; p < PL_N; p++)
			if ((t->pls & ON(p)) && (p != PL_SPLIT || have_split))
				print_trow(t, (enum placement)p);
	}
}

static void
print_mn(const struct cfg *cfg)
{
	printf("\n## Scaling: M producers x N consumers, 64 B, blocking "
	       "put/get, spin auto\n\n");
	printf("msg/s taken by all consumers together (median of %d "
	       "rounds), then aiop syscalls per\nmessage, all processes. "
	       "Unpinned; 2 vCPUs, so most cells oversubscribe them.\n\n",
	       cfg->mn_rounds);
	for (int tab = 0; tab < 2; tab++) {
		printf("| producers \\ consumers |");
		for (int c = 0; c < MN_SIZES; c++)
			printf(" %d |", mn_sizes[c]);
		printf("\n|---|");
		for (int c = 0; c < MN_SIZES; c++)
			printf("---|");
		printf("\n");
		for (int p = 0; p < MN_SIZES; p++) {
			printf("| %d |", mn_sizes[p]);
			for (int c = 0; c < MN_SIZES; c++) {
				double v[BENCH_MAX_ROUNDS];
				int bad = 0, err = 0;

				for (int rd = 0; rd < cfg->mn_rounds; rd++) {
					const struct mnres *x =
						&mncells[p][c][rd];

					v[rd] = tab ? x->sc : x->v;
					if (x->err) {
						bad++;
						err = x->err;
					}
				}
				if (tab == 0) {
					char b[80];

					fmt_val(b, sizeof(b), U_MSGS,
						bench_median_of(
							v, cfg->mn_rounds),
						NULL);
					printf(" %s", b);
				} else {
					printf(" %.4f",
					       bench_median_of(
						       v, cfg->mn_rounds));
				}
				if (bad)
					printf(" (%d err: %s)", bad,
					       aiop_strerror(err));
				printf(" |");
			}
			printf("\n");
		}
		printf("\n");
	}
}

/* "About zero": a waiter may wake for its periodic recheck, a few times a
 * second, but must not burn a measurable share of a CPU (the threshold is
 * sync_bench's). */
#define IDLE_TARGET_PCT 0.1

static void
print_idle(const struct bench_idle *ir)
{
	printf("\n## Idle CPU of a consumer of an empty queue\n\n");
	printf("| waiter | watched | CPU used | %% of one CPU | wake-ups/s | "
	       "target | verdict |\n|---|---|---|---|---|---|---|\n");
	for (int k = 0; k < I_N; k++) {
		if (ir[k].err) {
			printf("| %s | - | - | - | - | <= %.1f %% | ERR (%s) "
			       "|\n", i_names[k], IDLE_TARGET_PCT,
			       aiop_strerror(ir[k].err));
			continue;
		}
		printf("| %s | %.2f s | %.3f ms | %.4f %% | %.1f | <= %.1f %% "
		       "| %s |\n", i_names[k], ir[k].wall_s, ir[k].cpu_ms,
		       ir[k].cpu_pct, ir[k].wakes_s, IDLE_TARGET_PCT,
		       verdict(ir[k].cpu_pct, IDLE_TARGET_PCT, false));
	}
}

/*
 * The machine's busy CPU time (/proc/stat, all CPUs) and ours (this
 * process and its reaped children). Their difference over the run is
 * what other processes took: the noise this run had to share with.
 */
struct cpu_use {
	double busy_s, ours_s, wall_s;
};

static void
cpu_use_now(struct cpu_use *u)
{
	unsigned long long v[8] = {0};
	struct rusage a, b;
	FILE *f = fopen("/proc/stat", "re");
	long hz = sysconf(_SC_CLK_TCK);

	u->busy_s = NAN;
	if (f) {
		/* user nice system idle iowait irq softirq steal */
		if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
			   &v[7]) == 8 && hz > 0)
			u->busy_s = (double)(v[0] + v[1] + v[2] + v[5] + v[6] +
					     v[7]) / (double)hz;
		fclose(f);
	}
	getrusage(RUSAGE_SELF, &a);
	getrusage(RUSAGE_CHILDREN, &b);
	u->ours_s = (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec +
			     b.ru_utime.tv_sec + b.ru_stime.tv_sec) +
		    (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec +
			     b.ru_utime.tv_usec + b.ru_stime.tv_usec) / 1e6;
	u->wall_s = (double)bench_now() / 1e9;
}

static void
print_others(const struct cpu_use *u0)
{
	struct cpu_use u1;

	cpu_use_now(&u1);
	if (isnan(u0->busy_s) || isnan(u1.busy_s))
		return;
	printf("- CPU time of other processes during the run: %.1f s of "
	       "%.1f s x %d CPUs (/proc/stat busy minus this benchmark's "
	       "own)\n", (u1.busy_s - u0->busy_s) - (u1.ours_s - u0->ours_s),
	       u1.wall_s - u0->wall_s, get_nprocs());
}

static uint64_t
ms(uint64_t ns)
{
	return ns / BENCH_NS_PER_MS;
}

static void
print_header(const struct cfg *cfg, const struct bench_cpus *cpus)
{
	printf("# aiop queue benchmark (issue 4)\n\n");
	printf("- mode: %s, %d interleaved rounds; throughput figures %"
	       PRIu64 " + %" PRIu64 " ms (warm-up + timed), round trips %"
	       PRIu64 " + %" PRIu64 " ms; scaling %d rounds of %" PRIu64
	       " + %" PRIu64 " ms per cell\n", cfg->quick ? "quick" : "full",
	       cfg->rounds, ms(cfg->tp_warm_ns), ms(cfg->tp_meas_ns),
	       ms(cfg->rt_warm_ns), ms(cfg->rt_meas_ns), cfg->mn_rounds,
	       ms(cfg->mn_warm_ns), ms(cfg->mn_meas_ns));
	bench_print_machine(cpus);
	printf("- throughput: producer (child) and consumer (parent, times "
	       "it) %s; queues: default\n  attributes (%u MiB ring); the "
	       "benchmark sets the aiop spin mode (AIOP_SPIN is ignored)\n",
	       have_split ? "on two CPUs (split)" : "unpinned",
	       AIOP_QUEUE_CAPACITY_DEFAULT >> 20);
}

/* ---- main --------------------------------------------------------------- */

/* --only A,B: a scenario runs if "section: name" contains any word. */
static bool
selected(const struct cfg *cfg, const char *sect, const char *name)
{
	char full[160];

	if (!cfg->only)
		return true;
	snprintf(full, sizeof(full), "%s: %s", sect, name ? name : "");
	return bench_selected(cfg->only, full);
}

static int
parse_args(int argc, char **argv, struct cfg *cfg)
{
	const char *q = getenv("AIOP_BENCH_QUICK");
	int rounds = 0;

	memset(cfg, 0, sizeof(*cfg));
	cfg->quick = q && *q && strcmp(q, "0") != 0;
	for (int k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "--help")) {
			return 1;
		} else if (!strcmp(argv[k], "--quick")) {
			cfg->quick = true;
		} else if (!strcmp(argv[k], "--verbose")) {
			cfg->verbose = true;
		} else if (!strcmp(argv[k], "--only") && k + 1 < argc) {
			cfg->only = argv[++k];
		} else if (!strcmp(argv[k], "--rounds") && k + 1 < argc) {
			rounds = atoi(argv[++k]);
			if (rounds < 1 || rounds > BENCH_MAX_ROUNDS)
				return -EINVAL;
		} else {
			return -EINVAL;
		}
	}
	if (cfg->quick) {
		cfg->rounds = 3;
		cfg->mn_rounds = 1;
		cfg->tp_warm_ns = 15 * BENCH_NS_PER_MS;
		cfg->tp_meas_ns = 40 * BENCH_NS_PER_MS;
		cfg->rt_warm_ns = 10 * BENCH_NS_PER_MS;
		cfg->rt_meas_ns = 30 * BENCH_NS_PER_MS;
		cfg->mn_warm_ns = 10 * BENCH_NS_PER_MS;
		cfg->mn_meas_ns = 40 * BENCH_NS_PER_MS;
		cfg->idle_ns = 500 * BENCH_NS_PER_MS;
	} else {
		cfg->rounds = 5;
		cfg->mn_rounds = 3;
		cfg->tp_warm_ns = 40 * BENCH_NS_PER_MS;
		cfg->tp_meas_ns = 150 * BENCH_NS_PER_MS;
		cfg->rt_warm_ns = 30 * BENCH_NS_PER_MS;
		cfg->rt_meas_ns = 100 * BENCH_NS_PER_MS;
		cfg->mn_warm_ns = 30 * BENCH_NS_PER_MS;
		cfg->mn_meas_ns = 100 * BENCH_NS_PER_MS;
		cfg->idle_ns = 1000 * BENCH_NS_PER_MS;
	}
	if (rounds) {
		cfg->rounds = rounds;
		if (cfg->mn_rounds > rounds)
			cfg->mn_rounds = rounds;
	}
	return 0;
}

static void
record(const struct cfg *cfg, enum sid s, enum placement p,
       const struct result *res)
{
	struct cell *c = &cells[s][p];

	if (cfg->verbose && res->err >= 0)
		fprintf(stderr, "  %s (%s): %.4g, aiop syscalls %.5f, "
			"msgs/receive %.3g\n", scens[s].name, bench_pl_names[p],
			res->v, res->sc, res->mpo);
	if (res->err < 0) {
		c->nerr++;
		c->err = res->err;
		fprintf(stderr, "queue_bench: %s (%s): %s\n", scens[s].name,
			bench_pl_names[p], aiop_strerror(res->err));
		return;
	}
	c->v[c->n] = res->v;
	c->sc[c->n] = res->sc;
	c->it[c->n] = res->it;
	c->mpo[c->n] = res->mpo;
	c->n++;
	stats_add(&c->st, &res->st);
	c->msgs += res->msgs;
}

int
main(int argc, char **argv)
{
	struct cfg cfg;
	struct bench_cpus cpus;
	struct shared *sh;
	struct aiop_queue *anchor = NULL;
	struct bench_idle ir[I_N];
	struct cpu_use cu0;
	uint64_t t0 = bench_now();
	bool do_mn, do_idle;
	int rc;

	rc = parse_args(argc, argv, &cfg);
	if (rc != 0) {
		fprintf(rc < 0 ? stderr : stdout,
			"usage: %s [--quick] [--rounds 1..%d] [--only WORDS] "
			"[--verbose]\n"
			"  --quick: short rounds, under 20 s "
			"(env AIOP_BENCH_QUICK=1 too)\n"
			"  --only: comma-separated words; a figure runs if "
			"'section: name'\n"
			"          contains one. Sections: oneway, "
			"roundtrip, 2MiB, scaling, idle\n"
			"          (e.g. --only 'pipe,aiop put ->,idle')\n"
			"  --verbose: every measurement on stderr\n",
			argv[0], BENCH_MAX_ROUNDS);
		return rc < 0 ? 2 : 0;
	}
	if ((rc = bench_cpus_init(&cpus)) < 0 ||
	    (rc = bench_alarm_init()) < 0) {
		fprintf(stderr, "queue_bench: %s\n", strerror(-rc));
		return 1;
	}
	/* a reader that went away is an EPIPE, not a death */
	signal(SIGPIPE, SIG_IGN);
	have_split = cpus.b >= 0;
	tp_pl = have_split ? PL_SPLIT : PL_UNPINNED;
	do_mn = selected(&cfg, "scaling", NULL);
	do_idle = selected(&cfg, "idle", NULL);
	sh = bench_shm_new(sizeof(*sh));
	if (!sh) {
		fprintf(stderr, "queue_bench: mmap: %s\n", strerror(errno));
		return 1;
	}
	/* the domain (doorbells) must exist before the first fork; a queue
	 * that cannot carry one message makes every figure moot */
	{
		unsigned char m[MSG] = {0}, back[MSG];

		stamp(m, MSG, 42);
		if ((rc = aiop_queue_new(&anchor, NULL)) < 0 ||
		    (rc = aiop_queue_try_put(anchor, m, MSG)) < 0 ||
		    (rc = aiop_queue_try_get(anchor, back, MSG, NULL)) < 0 ||
		    rc != (int)MSG || !stamped(back, MSG, 42)) {
			fprintf(stderr, "queue_bench: set-up: %s\n",
				rc < 0 ? aiop_strerror(rc) : "bad message");
			(void)aiop_queue_free(anchor);
			bench_shm_free(sh, sizeof(*sh));
			return 1;
		}
	}
	print_header(&cfg, &cpus);
	bench_print_load("at start");
	cpu_use_now(&cu0);

	for (int rd = 0; rd < cfg.rounds; rd++) {
		fprintf(stderr, "queue_bench: round %d/%d\n", rd + 1,
			cfg.rounds);
		/* rotate the order so no figure always runs first or right
		 * after the same neighbour */
		for (int k = 0; k < S_N * PL_N; k++) {
			int i = (k + rd * 7) % (S_N * PL_N);
			enum sid s = (enum sid)(i % S_N);
			enum placement p = (enum placement)(i / S_N);
			struct result res;

			if (scens[s].kind == K_RT
				    ? !(scens[s].pls & ON(p)) ||
					      (p == PL_SPLIT && !have_split)
				    : p != tp_pl)
				continue;
			if (!selected(&cfg, scens[s].sect, scens[s].name))
				continue;
			/* the spin ring on one CPU would only measure the
			 * scheduler's time slice */
			if (s == S_SPIN_RING && !have_split)
				continue;
			measure(&cfg, sh, &cpus, s, p, &res);
			record(&cfg, s, p, &res);
		}
	}
	for (int rd = 0; do_mn && rd < cfg.mn_rounds; rd++) {
		fprintf(stderr, "queue_bench: scaling round %d/%d\n", rd + 1,
			cfg.mn_rounds);
		for (int k = 0; k < MN_SIZES * MN_SIZES; k++) {
			int i = (k + rd * 5) % (MN_SIZES * MN_SIZES);
			int p = i / MN_SIZES, c = i % MN_SIZES;
			struct mnres *x = &mncells[p][c][rd];

			measure_mn(&cfg, sh, mn_sizes[p], mn_sizes[c], x);
			if (x->err)
				fprintf(stderr, "queue_bench: scaling %dx%d: "
					"%s\n", mn_sizes[p], mn_sizes[c],
					aiop_strerror(x->err));
			else if (cfg.verbose)
				fprintf(stderr, "  scaling %dx%d: %.4g msg/s, "
					"aiop syscalls %.4f (futex waits %.4f, "
					"wakes %.4f, spins ok %.4f)\n",
					mn_sizes[p], mn_sizes[c], x->v, x->sc,
					x->waits, x->wakes, x->spins);
		}
	}
	if (do_idle) {
		fprintf(stderr, "queue_bench: idle CPU\n");
		idle_cpu(&cfg, sh, ir);
	}

	bench_print_load("at end");
	print_others(&cu0);
	if (ran(S_MQ))
		printf("- POSIX mq: maxmsg %ld, msgsize %u\n", mq_maxmsg_used,
		       MSG);
	if (sock_buf[0][0] || sock_buf[1][0])
		printf("- socketpair SO_SNDBUF/SO_RCVBUF as set by the kernel: "
		       "default %d/%d, large %d/%d\n", sock_buf[0][0],
		       sock_buf[0][1], sock_buf[1][0], sock_buf[1][1]);
	print_tput(OW, "64-byte messages, one way: messages per second");
	print_counters(OW);
	print_rt(&cfg);
	print_tput(B2, "2 MiB messages, one way: GB/s (10^9 bytes of "
		   "message per second)");
	print_counters(B2);
	print_targets();
	if (do_mn)
		print_mn(&cfg);
	if (do_idle)
		print_idle(ir);
	printf("\ntotal time %.1f s\n", (double)(bench_now() - t0) / 1e9);

	(void)aiop_queue_free(anchor);
	bench_shm_free(sh, sizeof(*sh));
	return 0;
}
