/* SPDX-License-Identifier: MIT */
/*
 * Payloads that look like headers (stress suite). Past `tail` the ring
 * holds an earlier lap's bytes, payload included, and a producer can fill
 * its payloads with what looks like "FREE record of the next lap, rsize
 * 16" at every 16 bytes. A consumer giving room back (advance_release())
 * reads the header at `release`, which, at the tail, is such old payload;
 * if a producer reserves right there before the consumer has checked the
 * header against `tail`, the check must not pass on the stale read. It
 * did once (a review of d223a28 found it; `release` was moved over the
 * fresh reservation and every get then failed with -EPROTO, within a
 * second, run alone). One producer process and one consumer race at an
 * almost empty 4 KiB ring for AIOP_STRESS_MS (default 3000) per test;
 * every message's length and sequence number are checked.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(queue_forged, .timeout = 120);

#define CAP 4096u
#define SHIFT 12u

struct sh {
	int prod_err;  /* first error the producer saw */
	int prod_stop; /* consumer tells the producer to stop */
	uint64_t produced;
};

static struct aiop_queue *Q;
static struct sh *SH;

static uint64_t
run_ns(void)
{
	return (uint64_t)t_env_ms("AIOP_STRESS_MS", 3000) * T_MS;
}

static uint32_t
len_of(uint64_t k)
{
	return 16u * (1u + (uint32_t)((k * 7u) % 13u));
}

/* forged header for ring slot at absolute position P: FREE of the next
 * lap, len = seq (slot 0 only carries the sequence number), rsize 16 */
static void
forge(unsigned char *d, uint64_t data_pos, uint32_t len, uint32_t seq)
{
	for (uint32_t j = 0; j + 16 <= len; j += 16) {
		uint64_t P = data_pos + j;
		uint64_t st = ((P + CAP) >> SHIFT) << 32 | (uint64_t)4 << 28;
		uint32_t l = j == 0 ? seq : 0, rs = 16;

		memcpy(d + j, &st, 8);
		memcpy(d + j + 8, &l, 4);
		memcpy(d + j + 12, &rs, 4);
	}
}

static int
producer(void *arg)
{
	(void)arg;
	for (uint64_t k = 0; !__atomic_load_n(&SH->prod_stop, __ATOMIC_RELAXED);
	     k++) {
		struct aiop_msg m;
		uint32_t len = len_of(k);
		int r = aiop_queue_reserve(Q, len, &m, 2 * T_SEC);

		if (r == -EPIPE)
			return 0;
		if (r < 0) {
			SH->prod_err = r;
			return 1;
		}
		forge(m.data, m.aiop_pos + 16, len, (uint32_t)k);
		if ((r = aiop_queue_commit(Q, &m)) < 0) {
			SH->prod_err = r;
			return 2;
		}
		__atomic_store_n(&SH->produced, k + 1, __ATOMIC_RELAXED);
	}
	return 0;
}

/* the same with plain puts: the producer tracks where each record lands
 * (one producer: the layout is deterministic) */
static int
producer_put(void *arg)
{
	unsigned char d[CAP];
	uint64_t p = 0;

	(void)arg;
	for (uint64_t k = 0; !__atomic_load_n(&SH->prod_stop, __ATOMIC_RELAXED);
	     k++) {
		uint32_t len = len_of(k), rs = 16 + len;
		int r;

		if (CAP - (p & (CAP - 1)) < rs)
			p += CAP - (p & (CAP - 1));
		forge(d, p + 16, len, (uint32_t)k);
		p += rs;
		r = aiop_queue_put(Q, d, len, 2 * T_SEC);
		if (r == -EPIPE)
			return 0;
		if (r < 0) {
			SH->prod_err = r;
			return 1;
		}
		__atomic_store_n(&SH->produced, k + 1, __ATOMIC_RELAXED);
	}
	return 0;
}

static void run(int (*prod)(void *));

Test(queue_forged, release_never_passes_a_fresh_reservation)
{
	run(producer);
}

Test(queue_forged, release_never_passes_a_fresh_put)
{
	run(producer_put);
}

static void
run(int (*prod)(void *))
{
	struct aiop_queue_attr a = { .capacity = CAP };
	unsigned char buf[CAP];
	uint64_t t0, got = 0;
	int bad = 0, r = 0;
	pid_t pid;

	SH = t_shared(sizeof(*SH));
	cr_assert_not_null(SH);
	cr_assert_eq(aiop_queue_new(&Q, &a), 0);
	pid = t_fork(prod, NULL);
	cr_assert_gt(pid, 0);
	t0 = t_now();
	while (t_now() - t0 < run_ns()) {
		size_t len = 0;
		uint32_t seq;

		r = aiop_queue_get(Q, buf, sizeof(buf), &len, 2 * T_SEC);
		if (r < 0)
			break;
		memcpy(&seq, buf + 8, 4);
		if (len != len_of(got) || seq != (uint32_t)got) {
			bad = 1;
			break;
		}
		got++;
	}
	__atomic_store_n(&SH->prod_stop, 1, __ATOMIC_RELAXED);
	aiop_queue_close(Q);
	/* drain so the producer is never stuck on room */
	while (aiop_queue_get(Q, buf, sizeof(buf), NULL, 100 * T_MS) >= 0)
		;
	int code = t_reap(pid, T_REAP_MS);

	cr_log_info("consumed %llu, produced %llu, last get %d, bad %d, "
		    "producer exit %d err %d\n",
		    (unsigned long long)got,
		    (unsigned long long)SH->produced, r, bad, code,
		    SH->prod_err);
	cr_expect_eq(bad, 0, "message %llu out of sequence",
		     (unsigned long long)got);
	cr_expect(r >= 0 || r == -ETIMEDOUT,
		  "get failed after %llu messages: %d (%s)",
		  (unsigned long long)got, r, aiop_strerror(r));
	cr_expect_eq(r == -ETIMEDOUT, 0, "get timed out after %llu",
		     (unsigned long long)got);
	cr_expect_eq(code, 0, "producer exit %d err %d", code, SH->prod_err);
	cr_assert_eq(aiop_queue_free(Q), 0);
	t_unshared(SH, sizeof(*SH));
}
