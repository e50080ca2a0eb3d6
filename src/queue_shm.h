/* SPDX-License-Identifier: MIT */
/*
 * The queue's shared layout (docs/design.md section 9). Private: shared by
 * src/queue.c and the fuzz target, which must see the same layout.
 */
#ifndef AIOP_QUEUE_SHM_H
#define AIOP_QUEUE_SHM_H

#include "internal.h"

#define HDR 16u   /* record header bytes; records are 16-aligned */
#define K_RES 1u
#define K_COMMIT 2u
#define K_CLAIM 3u
#define K_FREE 4u
#define K_PAD 5u
#define TID_MASK AIOP__TID_MASK

/* st = lap (pos / capacity, low 32 bits) << 32 | kind << 28 | tid.
 * The lap makes a header left from an earlier lap, and an ABA on the CAS,
 * fail the comparison. */
struct rec {
	_Atomic uint64_t st;
	_Atomic uint32_t len;   /* payload bytes */
	_Atomic uint32_t rsize; /* record bytes, header included */
};

struct q_shm {
	struct aiop__shm_hdr hdr;
	/* informational copies; the handle's own values are the ones used */
	uint32_t capacity, msg_max, maxsize, flags;
	/* read on every call, written once: kept off the busy lines */
	_Atomic uint32_t closed;
	/* producer side: written under plock. Consumers read nothing here
	 * on their fast path (each read would pull the line from the
	 * producer's CPU and make its next put pay the miss) */
	_Alignas(64) _Atomic uint32_t plock; /* tid of the holder, or 0 */
	/* the journal of a reservation: the low 32 bits of the tail and
	 * nres it publishes, written before them (nres_fix()) */
	_Atomic uint32_t j_tail;
	_Atomic uint32_t plock_wait; /* a producer gave up on plock */
	_Atomic uint64_t tail;               /* bytes reserved, ever */
	_Atomic uint64_t nres;               /* messages reserved, ever */
	_Atomic uint64_t rel_seen; /* a `release` a producer read (a cache) */
	_Atomic uint64_t ncommit;  /* messages published (or given back) */
	_Atomic uint32_t j_nres;
	/* consumer side (producers read it only to find room or to wake) */
	_Alignas(64) _Atomic uint64_t release; /* bytes given back, ever */
	_Atomic uint64_t head;  /* hint: ver << 48 | (pos >> 4) (48 bits) */
	_Atomic uint64_t nfin;  /* messages consumed or dropped, ever */
	_Atomic uint64_t nclaimed; /* claims, ever (see published()) */
	_Atomic uint32_t res_stop; /* a consumer stopped at an uncommitted
				      record (see published()) */
	_Atomic uint64_t tail_seen; /* a `tail` a consumer read (a cache) */
	/* least room a producer out of room waits for (UINT64_MAX: none) */
	_Alignas(64) _Atomic uint64_t need;
	/* JoinableQueue: unfinished = nres - ndrop - ndone (join_count()) */
	_Atomic uint64_t ndone;  /* task_done calls, ever */
	_Atomic uint64_t nres_seen; /* an nres task_done read (a cache) */
	/* reservations dropped, ever, and the journal of a drop: the
	 * record and the count it makes (the count is also in the PAD it
	 * writes); all written under plock (ndrop_now()) */
	_Atomic uint64_t ndrop;
	_Atomic uint64_t j_dpos;
	_Atomic uint64_t j_ndrop;
	_Alignas(64) struct aiop__waitq not_empty;
	_Alignas(64) struct aiop__waitq not_full;
	_Alignas(64) struct aiop__waitq all_done;
};

/* the claim hint: version (16 bits) | position / 16 (48 bits) */
#define H_BITS 48
#define H_MASK ((1ull << H_BITS) - 1)

#endif /* AIOP_QUEUE_SHM_H */
