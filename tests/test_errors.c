/* SPDX-License-Identifier: MIT */
/* Bad input and hostile shared memory: clear errors, never a crash or hang.
 * Reaches into the shared layout through the private headers. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

TestSuite(errors, .timeout = 120);

static void
never_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	cr_assert_fail("callback of a failed start must never run");
}

Test(errors, null_handles)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct aiop_op op;

	memset(&op, 0, sizeof(op));
	cr_assert_eq(aiop_lock_new(NULL), -EINVAL);
	cr_assert_eq(aiop_rlock_new(NULL), -EINVAL);
	cr_assert_eq(aiop_sem_new(NULL, 1), -EINVAL);
	cr_assert_eq(aiop_sem_new_bounded(NULL, 1), -EINVAL);
	cr_assert_eq(aiop_event_new(NULL), -EINVAL);
	cr_assert_eq(aiop_lock_acquire(NULL, 0), -EINVAL);
	cr_assert_eq(aiop_lock_try_acquire(NULL), -EINVAL);
	cr_assert_eq(aiop_lock_release(NULL), -EINVAL);
	cr_assert_eq(aiop_lock_locked(NULL), -EINVAL);
	cr_assert_eq(aiop_rlock_acquire(NULL, 0), -EINVAL);
	cr_assert_eq(aiop_rlock_try_acquire(NULL), -EINVAL);
	cr_assert_eq(aiop_rlock_release(NULL), -EINVAL);
	cr_assert_eq(aiop_rlock_depth(NULL), -EINVAL);
	cr_assert_eq(aiop_sem_acquire(NULL, 0), -EINVAL);
	cr_assert_eq(aiop_sem_try_acquire(NULL), -EINVAL);
	cr_assert_eq(aiop_sem_release(NULL), -EINVAL);
	cr_assert_eq(aiop_sem_get_value(NULL), -EINVAL);
	cr_assert_eq(aiop_event_set(NULL), -EINVAL);
	cr_assert_eq(aiop_event_clear(NULL), -EINVAL);
	cr_assert_eq(aiop_event_is_set(NULL), -EINVAL);
	cr_assert_eq(aiop_event_wait(NULL, 0), -EINVAL);
	cr_assert_eq(aiop_event_try_wait(NULL), -EINVAL);
	cr_assert_eq(aiop_lock_coro_acquire(loop, &op, NULL, 0, never_cb),
		     -EINVAL);
	cr_assert_eq(aiop_rlock_coro_acquire(loop, &op, NULL, 0, never_cb),
		     -EINVAL);
	cr_assert_eq(aiop_sem_coro_acquire(loop, &op, NULL, 0, never_cb),
		     -EINVAL);
	cr_assert_eq(aiop_event_coro_wait(loop, &op, NULL, 0, never_cb),
		     -EINVAL);
	cr_assert_eq(aiop_lock_free(NULL), 0);
	cr_assert_eq(aiop_rlock_free(NULL), 0);
	cr_assert_eq(aiop_sem_free(NULL), 0);
	cr_assert_eq(aiop_event_free(NULL), 0);
	cr_assert_eq(aiop_op_cancel(NULL), -EINVAL);
	cr_assert_eq(aiop_op_cancel(&op), -EINVAL, "never started");
	cr_assert_eq(aiop_op_pending(NULL), 0);
	cr_assert_eq(aiop_op_pending(&op), 0);
	cr_assert_eq(aiop_loop_detach(NULL), -EINVAL);
	cr_assert_eq(aiop_stats_get(NULL), -EINVAL);
	cr_assert(t_run(loop, 50));
	ev_loop_destroy(loop);
}

Test(errors, bad_coro_arguments)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct aiop_lock *l;
	struct aiop_op op;

	memset(&op, 0, sizeof(op));
	cr_assert_eq(aiop_lock_new(&l), 0);
	cr_assert_eq(aiop_lock_coro_acquire(NULL, &op, l, 0, never_cb),
		     -EINVAL);
	cr_assert_eq(aiop_lock_coro_acquire(loop, NULL, l, 0, never_cb),
		     -EINVAL);
	cr_assert_eq(aiop_lock_coro_acquire(loop, &op, l, 0, NULL), -EINVAL);
	cr_assert_eq(aiop_lock_coro_acquire(loop, &op, l, -5, never_cb),
		     -EINVAL);
	cr_assert_eq(aiop_lock_locked(l), 0, "failed starts take nothing");
	cr_assert(t_run(loop, 50));
	cr_assert_eq(aiop_lock_free(l), 0);
	ev_loop_destroy(loop);
}

Test(errors, wrong_type_handle)
{
	struct aiop_sem *s;
	struct aiop_event *e;

	cr_assert_eq(aiop_sem_new(&s, 1), 0);
	cr_assert_eq(aiop_event_new(&e), 0);
	cr_assert_eq(aiop_lock_acquire((struct aiop_lock *)s, 0), -EINVAL);
	cr_assert_eq(aiop_lock_release((struct aiop_lock *)e), -EINVAL);
	cr_assert_eq(aiop_rlock_depth((struct aiop_rlock *)s), -EINVAL);
	cr_assert_eq(aiop_event_set((struct aiop_event *)s), -EINVAL);
	cr_assert_eq(aiop_sem_release((struct aiop_sem *)e), -EINVAL);
	cr_assert_eq(aiop_lock_free((struct aiop_lock *)s), -EINVAL);
	cr_assert_eq(aiop_sem_get_value(s), 1, "untouched");
	cr_assert_eq(aiop_sem_free(s), 0);
	cr_assert_eq(aiop_event_free(e), 0);
}

static struct aiop__shm_hdr *
hdr_of(void *handle)
{
	return ((struct aiop__obj *)handle)->shm;
}

Test(errors, corrupt_header_is_eproto)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct aiop_lock *l;
	struct aiop_event *e;
	struct aiop_op op;
	uint64_t good;

	memset(&op, 0, sizeof(op));
	cr_assert_eq(aiop_lock_new(&l), 0);
	cr_assert_eq(aiop_event_new(&e), 0);
	good = atomic_load(&hdr_of(l)->ident);
	/* wrong magic */
	atomic_store(&hdr_of(l)->ident, good ^ 0xff);
	cr_assert_eq(aiop_lock_acquire(l, AIOP_FOREVER), -EPROTO);
	cr_assert_eq(aiop_lock_try_acquire(l), -EPROTO);
	cr_assert_eq(aiop_lock_release(l), -EPROTO);
	cr_assert_eq(aiop_lock_locked(l), -EPROTO);
	cr_assert_eq(aiop_lock_coro_acquire(loop, &op, l, 0, never_cb),
		     -EPROTO);
	/* another ABI version */
	atomic_store(&hdr_of(l)->ident, good + (1ull << 32));
	cr_assert_eq(aiop_lock_acquire(l, 0), -EPROTO);
	/* another type's header in a lock's place */
	atomic_store(&hdr_of(l)->ident, atomic_load(&hdr_of(e)->ident));
	cr_assert_eq(aiop_lock_acquire(l, 0), -EPROTO);
	atomic_store(&hdr_of(l)->ident, good);
	cr_assert_eq(aiop_lock_acquire(l, 0), 0, "restored");
	cr_assert_eq(aiop_lock_release(l), 0);
	/* coro ops refuse an object from another domain */
	atomic_store(&hdr_of(e)->domain_id, 12345);
	cr_assert_eq(aiop_event_coro_wait(loop, &op, e, 0, never_cb), -EPROTO);
	cr_assert(t_run(loop, 50));
	cr_assert_eq(aiop_lock_free(l), 0);
	cr_assert_eq(aiop_event_free(e), 0);
	ev_loop_destroy(loop);
}

/* The lock's shared layout as src/lock.c has it (hdr, waitq, owner). */
struct t_lock_shm {
	struct aiop__shm_hdr hdr;
	struct aiop__waitq wq;
	_Atomic uint32_t owner;
};

Test(errors, hostile_waitq_words)
{
	struct aiop_lock *l;
	struct t_lock_shm *s;
	uint64_t t0;

	cr_assert_eq(aiop_lock_new(&l), 0);
	s = (struct t_lock_shm *)hdr_of(l);
	/* every armed bit set, even for doorbells that do not exist */
	for (int i = 0; i < AIOP__ARMED_WORDS; i++)
		atomic_store(&s->wq.armed[i], ~0ull);
	atomic_store(&s->wq.nsleep, 0xffffffffu);
	atomic_store(&s->wq.spin_ns, 0xffffffffu);
	cr_assert_eq(aiop_lock_acquire(l, 0), 0);
	cr_assert_eq(aiop_lock_release(l), 0, "rings only real doorbells");
	cr_assert_eq(aiop_lock_acquire(l, 0), 0);
	t0 = t_now();
	/* a huge spin budget is clamped: the timeout still holds */
	cr_assert_eq(aiop_lock_acquire(l, 30 * T_MS), -ETIMEDOUT);
	cr_assert_lt(t_now() - t0, T_SEC);
	cr_assert_eq(aiop_lock_release(l), 0);
	cr_assert_eq(aiop_lock_free(l), 0);
}

static void
on_capped(struct ev_loop *loop, struct aiop_op *op, int res)
{
	(void)loop;
	*(int *)op->data = res;
}

/*
 * A spin that fails halves the object's budget, not its own: a coro start
 * spins at most 5 us and a short timeout caps a spin too, but neither says
 * a 20 us spin would fail. Halving the cap took a blocking peer's budget
 * from 10 to 2.5 us; its spins then failed and slept as well.
 */
Test(errors, a_capped_spin_halves_the_budget_not_its_cap)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct aiop_lock *l;
	struct t_lock_shm *s;
	struct aiop_op op = {0};
	int res = 1;

	if (aiop__spin_single_cpu())
		cr_skip_test("one CPU: the engine never spins");
	cr_assert_eq(aiop_spin_set(AIOP_SPIN_AUTO, 0), 0);
	cr_assert_eq(aiop_lock_new(&l), 0);
	s = (struct t_lock_shm *)hdr_of(l);
	cr_assert_eq(aiop_lock_acquire(l, 0), 0); /* held: every spin fails */

	atomic_store(&s->wq.spin_ns, 20000);
	op.data = &res;
	cr_assert_eq(aiop_lock_coro_acquire(loop, &op, l, AIOP_FOREVER,
					    on_capped),
		     0);
	cr_assert_eq(atomic_load(&s->wq.spin_ns), 10000,
		     "a 5 us coro spin failed: 20 us halved, not 5 us");
	cr_assert_eq(aiop_op_cancel(&op), 0);
	for (int i = 0; i < 100 && res == 1; i++)
		ev_run(loop, EVRUN_NOWAIT);
	cr_assert_eq(res, -ECANCELED);

	atomic_store(&s->wq.spin_ns, 20000);
	cr_assert_eq(aiop_lock_acquire(l, 2000), -ETIMEDOUT);
	cr_assert_eq(atomic_load(&s->wq.spin_ns), 10000,
		     "a spin cut to a 2 us timeout halves the budget too");

	cr_assert_eq(aiop_lock_release(l), 0);
	cr_assert_eq(aiop_lock_free(l), 0);
	ev_loop_destroy(loop);
}

Test(errors, hostile_owner_word_is_recovered)
{
	struct aiop_lock *l;
	struct t_lock_shm *s;

	cr_assert_eq(aiop_lock_new(&l), 0);
	s = (struct t_lock_shm *)hdr_of(l);
	/* no such thread; a serial with tid bits 0 (not "abandoned") */
	static const uint32_t forged[] = { 0x7ffffff0u, 0x00c00000u };

	for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
		atomic_store(&s->owner, forged[i]);
		cr_assert_eq(aiop_lock_acquire(l, 5 * T_SEC), -EOWNERDEAD,
			     "owner word %#x", forged[i]);
		cr_assert_eq(aiop_lock_release(l), 0);
	}
	cr_assert_eq(aiop_lock_free(l), 0);
}

/* The RLock's layout as src/rlock.c has it: its owner word is the bare
 * tid, so bits above a tid's 22 name no thread (a dead owner's word). The
 * Lock's serial decoding must not apply: a word whose low bits are a live
 * thread's, even the caller's, was then never taken over (found by a
 * review of the Lock serial). */
struct t_rlock_shm {
	struct aiop__shm_hdr hdr;
	struct aiop__waitq wq;
	_Atomic uint32_t owner;
	_Atomic uint32_t depth;
};

Test(errors, hostile_rlock_owner_word_is_recovered)
{
	uint32_t me = (uint32_t)aiop__tid();
	const uint32_t forged[] = { 0x7ffffff0u, 0x40000000u | me,
				    0x80000000u | (uint32_t)getppid() };
	struct aiop_rlock *l;
	struct t_rlock_shm *s;

	cr_assert_eq(aiop_rlock_new(&l), 0);
	s = (struct t_rlock_shm *)hdr_of(l);
	for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
		atomic_store(&s->owner, forged[i]);
		cr_assert_eq(aiop_rlock_acquire(l, 5 * T_SEC), -EOWNERDEAD,
			     "owner word %#x", forged[i]);
		cr_assert_eq(aiop_rlock_release(l), 0);
	}
	cr_assert_eq(aiop_rlock_free(l), 0);
}

struct t_sem_shm {
	struct aiop__shm_hdr hdr;
	struct aiop__waitq wq;
	_Atomic uint32_t value;
	uint32_t bound;
};

Test(errors, hostile_semaphore_value)
{
	struct aiop_sem *s;
	struct t_sem_shm *sh;

	cr_assert_eq(aiop_sem_new_bounded(&s, 1), 0);
	sh = (struct t_sem_shm *)hdr_of(s);
	sh->bound = 0xffffffffu; /* the bound lives in the handle */
	atomic_store(&sh->value, 0xffffffffu);
	cr_assert_eq(aiop_sem_release(s), -EOVERFLOW);
	cr_assert_geq(aiop_sem_get_value(s), 0, "never negative");
	cr_assert_eq(aiop_sem_try_acquire(s), 0);
	cr_assert_eq(aiop_sem_free(s), 0);
}

/* A count above AIOP_SEM_VALUE_MAX is one no release writes (a peer's
 * garbage). Units are there to take, so get_value must not read 0: it used
 * to mask the top bit, and 0x80000000 read as an empty semaphore while a
 * try took a unit from it. It reads as the most it can say. */
Test(errors, a_semaphore_count_above_the_max_reads_as_the_max)
{
	static const uint32_t forged[] = { 0x80000000u, 0x80000001u,
					   0xfffffffeu, 0xffffffffu };
	struct aiop_sem *s;
	struct t_sem_shm *sh;

	cr_assert_eq(aiop_sem_new(&s, 0), 0);
	sh = (struct t_sem_shm *)hdr_of(s);
	for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
		atomic_store(&sh->value, forged[i]);
		cr_assert_eq(aiop_sem_get_value(s), AIOP_SEM_VALUE_MAX,
			     "count %#x", forged[i]);
		cr_assert_eq(aiop_sem_release(s), -EOVERFLOW);
		cr_assert_eq(aiop_sem_try_acquire(s), 0);
		cr_assert_eq(atomic_load(&sh->value), forged[i] - 1);
	}
	cr_assert_eq(aiop_sem_free(s), 0);
}

Test(errors, strerror_covers_codes)
{
	int codes[] = { EAGAIN, ETIMEDOUT, ECANCELED, EINVAL, EPERM,
			EOVERFLOW, EMSGSIZE, EPIPE, EOWNERDEAD, EPROTO,
			ENOMEM, EBUSY, EALREADY, EMFILE, ENOENT };

	cr_assert_str_eq(aiop_strerror(0), "success");
	cr_assert_str_eq(aiop_strerror(7), "success");
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *s = aiop_strerror(-codes[i]);
		cr_assert(s && *s);
	}
	cr_assert(aiop_strerror(-100000) != NULL);
	cr_assert(aiop_strerror(-2147483647 - 1) != NULL);
	cr_assert_str_eq(aiop_version(), AIOP_VERSION_STRING);
}

/* condition.c's layout: one word, grp | open | closed | sig */
struct t_cond_shm {
	struct aiop__shm_hdr hdr;
	struct aiop__waitq wq;
	_Atomic uint64_t word;
};

static int
cond_false(void *arg)
{
	(void)arg;
	return 0;
}

/* 65535 registered waiters (forged): every wait, blocking or a coro start,
 * is refused with -EOVERFLOW (documented since this review) and keeps the
 * lock held; no callback runs */
Test(errors, a_full_condition_refuses_a_wait_with_the_lock_held)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct aiop_op op = { 0 };
	struct aiop_cond *c;
	struct t_cond_shm *sh;
	uint64_t full = (uint64_t)0xffff << 32;

	cr_assert_eq(aiop_cond_new(&c), 0);
	sh = (struct t_cond_shm *)hdr_of(c);
	cr_assert_eq(aiop_cond_acquire(c, 0), 0);
	atomic_store(&sh->word, full);
	cr_assert_eq(aiop_cond_wait(c, T_MS), -EOVERFLOW);
	cr_assert_eq(aiop_cond_wait_for(c, cond_false, NULL, T_MS),
		     -EOVERFLOW);
	cr_assert_eq(aiop_cond_coro_wait(loop, &op, c, T_MS, never_cb),
		     -EOVERFLOW);
	cr_assert_eq(aiop_cond_coro_wait_for(loop, &op, c, cond_false, NULL,
					     T_MS, never_cb),
		     -EOVERFLOW);
	cr_assert_eq(atomic_load(&sh->word), full, "nothing registered");
	cr_assert_eq(aiop_op_pending(&op), 0);
	cr_assert(t_run(loop, 50));
	atomic_store(&sh->word, 0);
	cr_assert_eq(aiop_cond_release(c), 0, "still held");
	cr_assert_eq(aiop_cond_release(c), -EPERM, "held once");
	cr_assert_eq(aiop_loop_detach(loop), 0);
	ev_loop_destroy(loop);
	cr_assert_eq(aiop_cond_free(c), 0);
}

/* docs/errors.md: "aiop's own wording for the codes in the table"; the C
 * library's text for -EXDEV ("Invalid cross-device link") misleads. */
Test(errors, strerror_has_its_own_words_for_every_table_code)
{
	int codes[] = { EAGAIN,	   ETIMEDOUT, ECANCELED, EINVAL,  EPERM,
			EOVERFLOW, EOWNERDEAD, EPROTO,	  ENOMEM,  EBUSY,
			EALREADY,  EMFILE,    EMSGSIZE,	 EBADMSG, EXDEV,
			EPROTOTYPE, EPIPE };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *s = aiop_strerror(-codes[i]);
		const char *libc = strerrordesc_np(codes[i]);

		cr_assert(s && *s);
		cr_assert(!libc || strcmp(s, libc) != 0,
			  "%s: the C library's text, not aiop's",
			  strerrorname_np(codes[i]));
	}
}

Test(errors, spin_set)
{
	cr_assert_eq(aiop_spin_set(AIOP_SPIN_FIXED, -1), -EINVAL);
	cr_assert_eq(aiop_spin_set(AIOP_SPIN_FIXED, 2000000), -EINVAL);
	cr_assert_eq(aiop_spin_set((enum aiop_spin_mode)42, 0), -EINVAL);
	cr_assert_eq(aiop_spin_set(AIOP_SPIN_FIXED, 1000), 0);
	cr_assert_eq(aiop_spin_set(AIOP_SPIN_OFF, 0), 0);
	cr_assert_eq(aiop_spin_set(AIOP_SPIN_AUTO, 0), 0);
}

/* AIOP_SPIN takes "off", "auto" or a decimal number 0..1000000; anything
 * else is ignored (strtoll() took " 5", "+5" and "-0"; found by review) */
Test(errors, spin_env)
{
	static const char *ignored[] = { " 5", "+5", "-0", "-5", "5x", "5 ",
					 "0x10", "1000001", "OFF", "" };

	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
		cr_assert_eq(aiop_spin_set(AIOP_SPIN_AUTO, 0), 0);
		cr_assert_eq(setenv("AIOP_SPIN", ignored[i], 1), 0);
		aiop__spin_env();
		cr_assert_eq(atomic_load(&aiop__spin_mode), AIOP_SPIN_AUTO,
			     "AIOP_SPIN=\"%s\" was taken", ignored[i]);
	}
	cr_assert_eq(setenv("AIOP_SPIN", "5", 1), 0);
	aiop__spin_env();
	cr_assert_eq(atomic_load(&aiop__spin_mode), AIOP_SPIN_FIXED);
	cr_assert_eq(atomic_load(&aiop__spin_fixed_ns), 5);
	cr_assert_eq(setenv("AIOP_SPIN", "off", 1), 0);
	aiop__spin_env();
	cr_assert_eq(atomic_load(&aiop__spin_mode), AIOP_SPIN_OFF);
	cr_assert_eq(unsetenv("AIOP_SPIN"), 0);
	cr_assert_eq(aiop_spin_set(AIOP_SPIN_AUTO, 0), 0);
}

static void
count_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	(*(int *)op->data)++;
}

Test(errors, doorbells_run_out_cleanly)
{
	/* a fresh process (Criterion): the domain is created with 2 */
	struct ev_loop *l1 = ev_loop_new(0), *l2 = ev_loop_new(0),
		       *l3 = ev_loop_new(0);
	struct aiop_event *e;
	struct aiop_op o1 = { 0 }, o2 = { 0 }, o3 = { 0 };
	int n = 0;

	setenv("AIOP_DOORBELLS", "2", 1);
	cr_assert_eq(aiop_event_new(&e), 0);
	o1.data = o2.data = o3.data = &n;
	cr_assert_eq(aiop_event_coro_wait(l1, &o1, e, T_SEC, count_cb), 0);
	cr_assert_eq(aiop_event_coro_wait(l2, &o2, e, T_SEC, count_cb), 0);
	cr_assert_eq(aiop_event_coro_wait(l3, &o3, e, T_SEC, never_cb),
		     -EMFILE);
	cr_assert_eq(aiop_loop_detach(l1), -EBUSY);
	cr_assert_eq(aiop_event_set(e), 0);
	cr_assert(t_run(l1, 5000));
	cr_assert(t_run(l2, 5000));
	cr_assert_eq(n, 2);
	/* a detached loop gives its doorbell back */
	cr_assert_eq(aiop_loop_detach(l1), 0);
	cr_assert_eq(aiop_event_coro_wait(l3, &o3, e, T_SEC, count_cb), 0);
	cr_assert(t_run(l3, 5000));
	cr_assert_eq(n, 3);
	cr_assert_eq(aiop_event_free(e), 0);
	ev_loop_destroy(l1);
	ev_loop_destroy(l2);
	ev_loop_destroy(l3);
}

/* A child makes its domain with AIOP_DOORBELLS set to *arg: exit status
 * 0 if it got the number of doorbells the docs promise (coro.md) */
static int
doorbells_child(void *arg)
{
	const char *v = ((const char **)arg)[0];
	int want = atoi(((const char **)arg)[1]);
	struct aiop_event *e;

	if (setenv("AIOP_DOORBELLS", v, 1) < 0 || aiop_event_new(&e) < 0)
		return 2;
	(void)aiop_event_free(e);
	return aiop__dom.nbells == want ? 0 : 1;
}

Test(errors, doorbells_env)
{
	/* only a plain decimal in 1..128 is taken; anything else gives 64
	 * (strtol() alone took " 5" and "+5") */
	static const char *cases[][2] = {
		{ "5", "5" },    { "128", "128" }, { "1", "1" },
		{ " 5", "64" },  { "+5", "64" },   { "-5", "64" },
		{ "5 ", "64" },  { "0x10", "64" }, { "0", "64" },
		{ "129", "64" }, { "", "64" },     { "many", "64" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pid_t p = t_fork(doorbells_child, (void *)cases[i]);

		cr_assert_gt(p, 0);
		cr_assert_eq(t_reap(p, T_REAP_MS), 0,
			     "AIOP_DOORBELLS=\"%s\" did not give %s",
			     cases[i][0], cases[i][1]);
	}
}
