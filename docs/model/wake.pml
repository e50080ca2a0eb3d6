/*
 * wake.pml -- a checked model of aiop's wait/wake protocol
 * (docs/design.md sections 2, 2.1, 2.2, 2.3, 5; src/wait.c, src/internal.h,
 * src/lock.c, src/semaphore.c).  Run docs/model/check.sh; see README.md.
 *
 * Modelled, as sequentially consistent interleavings (each atomic RMW,
 * seq_cst load and syscall is one indivisible step; the seq_cst RMWs plus
 * the fences of wait.c are what make SC the right abstraction, design.md
 * 2.1 -- weak memory itself is not modelled):
 *   counter      the primitive's state = free units (Lock: UNITS=1,
 *                owner == 0 <=> counter == 1; Semaphore: UNITS=2)
 *   seq          wq->seq, abstracted exactly as "bumped since waiter i
 *                loaded it" (sq[i]); seq never wraps in a bounded run
 *   nsleep       wq->nsleep's count (low 16 bits). Its generation and
 *                arrivals tag (the other bits) are abstracted exactly, as
 *                what they are compared for:
 *   counted[i]   waiter i is in the count of the current generation
 *                (armed, not yet done, not forgotten); wait.c sleeper_done
 *                takes its count back only then
 *   chg          bit w: nsleep's generation or arrivals tag changed since
 *                waker w loaded it (an arming bumps the tag; a
 *                forget_sleepers the generation); with an equal count,
 *                the word is then as the waker loaded it exactly when its
 *                bit is clear (wait.c forget_sleepers' CAS); the bit is
 *                set again once the wake is over (it is only read within
 *                one). Tag and generation wrap (8 bits each) are not
 *                modelled.
 *   armed        wq->armed[0], bit l = doorbell of loop l (2 loops)
 *   efd[l]       doorbell eventfd of loop l (readable: counter != 0)
 *   kicked[l]    reg->kicked (ring() of our own loop on its own thread)
 *   queued[i]    the kernel futex queue (futex_wait compares and enqueues
 *                atomically; FUTEX_WAKE(1) dequeues any one queued waiter;
 *                a timed-out or dying task dequeues itself)
 * Processes: Waker (holds UNITS units, releases them one by one: K1 then
 * the wake step); blocking waiters 0, 1 (aiop__wait/wait_slow; they
 * acquire, then release: wakers too; waiter 0 may have a deadline and
 * abandon, waiter 1 waits forever); loop 0 with 2 coro ops on one handle
 * (aiop__coro_start, pass_waiting, io_cb, check_cb, op_timeout_cb,
 * aiop_op_cancel incl. undo of a granted op, unwait clearing the armed
 * bit, deliver; each op is FOREVER, TMO or CANCEL; a granted op's callback
 * releases the unit at once); optionally loop 1 with 1 op (-DLOOPS=2); a
 * Killer that kills waiter 0 at any point, or never (-DDEATH); the periodic
 * recheck (-DRECHECK: a sleeper's 100 ms / 1 s futex timeout and the loop's
 * recheck ev_timer) as Promela `timeout`, i.e. it fires when nobody else
 * can move, at most MAXRC times per run.  -DNBW / -DNOPS0 choose how many
 * blocking waiters / loop-0 ops run; -DBDL, -DMODE0/1/2 fix the
 * nondeterministic choices (check.sh uses this to split the search).
 *
 * Properties (spin reports an error and writes a trail if one fails):
 *  P1 no lost wake-up: when nothing can move (`timeout`) no live waiter
 *     sleeps (a futex-queued blocking waiter, a loop with a WAITING op)
 *     while counter > 0 (assert in init); any other stuck state is an
 *     error too.  Without RECHECK every run is finite (wakes are bounded),
 *     so "asleep forever" == such a stuck state.  Also as LTL (-DLTL,
 *     ./pan -a -f -A, weak fairness): nolost below.
 *  P2 units conserved: counter + holders == UNITS after every step that
 *     changes either (INV), so never more holders than units; at the end
 *     of every run every unit is back (a cancelled grant gave its unit
 *     back) and every op completed exactly once.
 *  P4 the count never passes the blocking waiters that exist (no count
 *     taken back twice, no underflow): assert after each decrement.
 *  P3 a dead waiter (-DDEATH): WITH -DRECHECK P1, P2 and P3 hold: every
 *     live waiter finishes.  WITHOUT the recheck P1 FAILS; that is why the
 *     recheck exists (design.md 5).  spin finds:
 *     a) (documented in design.md 5) FUTEX_WAKE(1) dequeues waiter 0,
 *        which is killed before it runs; waiter 1 sleeps on, counter == 1
 *        (check.sh case death-norecheck);
 *     b) (not in design.md) waiter 0 releases (K1: the xchg / CAS) and is
 *        killed before its wake step is complete: nobody is woken.  The
 *        trail check.sh finds (death-after-release-norecheck): the waker
 *        runs aiop__wake_slow up to m = atomic_exchange(&armed, 0) and is
 *        killed before ring()'s write(): the loop's armed bit is gone and
 *        its doorbell never rings, so its FOREVER op waits with
 *        counter == 1.  Killed before K2, it strands futex sleepers the
 *        same way.  The recheck (loop ev_timer / futex timeout) bounds
 *        this one as well (death-after-release-recheck verifies).
 *
 * Mutations: each makes spin report a counterexample (check.sh -m checks
 * them all; by hand e.g.
 *   spin -a -DNOPS0=0 -DMUT_WAKE_FIRST wake.pml &&
 *   gcc -O2 -DSAFETY -o pan pan.c && ./pan -m1000000     -> errors: 1):
 *   MUT_NO_BLOCK_RECHECK  blocking waiter attempts before nsleep++ instead
 *                         of after it                          -> P1 fails
 *   MUT_SEQ_LATE          blocking waiter loads seq after its re-check
 *                                                              -> P1 fails
 *   MUT_WAKE_FIRST        waker loads nsleep/armed before its state
 *                         change (K2 before K1)                -> P1 fails
 *   MUT_NO_SEQ_BUMP       aiop__wake_slow does not bump seq    -> P1 fails
 *   MUT_FAST_NSLEEP_ONLY  aiop__wake's fast path ignores armed -> P1 fails
 *   MUT_NO_CORO_RECHECK   coro start / pass do not re-attempt after arm()
 *                                                              -> P1 fails
 *   MUT_DRAIN_LATE        io_cb read()s the eventfd after the pass
 *                                                              -> P1 fails
 *   MUT_UNWAIT_CLEAR      unwait clears the armed bit even when another op
 *                         of the loop still waits on the handle -> P1 fails
 *   MUT_NO_KICK           ring() of our own loop does nothing -> P1 fails
 *   MUT_FORGET_BLIND      forget_sleepers resets the count without
 *                         comparing it with the value loaded before the
 *                         wake (a waiter armed since is forgotten too)
 *                                                              -> P1 fails
 *   MUT_NO_ARRIVALS       forget_sleepers compares count and generation
 *                         only (one waiter leaving and another arming
 *                         restore the word: ABA)               -> P1 fails
 *   MUT_DONE_ANY_GEN      sleeper_done takes its count back in any
 *                         generation                           -> P4 fails
 *   MUT_NO_UNDO           cancel of a granted op keeps the unit -> P2 fails
 *   MUT_UNDO_KEEPS_RESULT cancel undoes a grant but leaves result 0, so
 *                         the callback releases a second time  -> P2 fails
 *   (no mutation)         -DDEATH without -DRECHECK            -> P1 fails
 * The results of the last run are in README.md.
 */

/* ---- parameters ------------------------------------------------------- */
#ifndef UNITS
#define UNITS 1          /* 1 = Lock, 2 = Semaphore(2) */
#endif
#ifndef LOOPS
#define LOOPS 1          /* loop 0: ops 0,1; with LOOPS 2 also loop 1: op 2 */
#endif
#ifndef MAXRC
#define MAXRC 2          /* recheck firings per run (RECHECK only) */
#endif
/* how each agent waits: nondeterministic unless fixed with -D (check.sh
 * fixes them to split the search into parallel runs).
 * Blocking waiter: 0 = AIOP_FOREVER, 1 = finite timeout.
 * Coro op: FOREVER, TMO (finite timeout), CANCEL (user may cancel). */
#ifndef NBW
#define NBW    2         /* blocking waiters run (0..2) */
#endif
#ifndef NOPS0
#define NOPS0  2         /* coro ops on loop 0 (0..2) */
#endif
#define NB     2         /* blocking waiter slots */
#define NOPS   3         /* op slots; op 2 belongs to loop 1 */
#define NOLOOP 9         /* the releasing thread runs no loop of ours */

/* op states (wait.c OP_*; IDLE = zeroed, never started) */
#define IDLE    0
#define WAITING 1
#define QUEUED  2
#define DONE    3
/* results */
#define NONE      0
#define GRANTED   1        /* attempt() >= 0: the op holds a unit */
#define ETIMEDOUT 2
#define ECANCELED 3
/* op modes */
#define FOREVER 0
#define TMO     1
#define CANCEL  2

/* ---- shared memory: struct aiop__waitq + the primitive's state -------- */
byte counter = 0;   /* free units (Lock: owner == 0 <=> counter == 1) */
byte nsleep = 0;    /* wq->nsleep & AIOP__NSLEEP_COUNT */
bool counted[NB];
byte chg = 31;      /* waker ids: Waker 0, Blocking i 1 + i, Loop L 3 + L */
#ifdef MUT_NO_ARRIVALS
byte chgen = 31;    /* as chg, for generation changes only */
#define CLR_CHGEN(w) chgen = chgen & ~(1 << (w))
#else
#define chgen chg
#define CLR_CHGEN(w) skip
#endif
byte armed = 0;     /* wq->armed[0]; bit l = doorbell of loop l */
/* wq->seq, abstracted exactly (seq never wraps in a bounded run):
 * sq[i] = 0 waiter i holds no loaded value, 1 = it loaded s = seq and seq
 * is unchanged, 2 = seq was bumped since (futex_wait(seq, s) -> EAGAIN) */
byte sq[2];
/* ---- per loop (doorbell eventfd, reg->kicked) -------------------------- */
bool efd[2];        /* eventfd counter != 0 (its value carries no meaning) */
bool kicked[2];
/* ---- kernel ------------------------------------------------------------ */
bool queued[NB];    /* waiter i sits in the futex queue of &wq->seq */
bool dead[NB];
bool rel[NB];       /* waiter i has released its unit (for KILL_AFTER_RELEASE) */
bool bfin[NB];      /* waiter i returned */
/* ---- bookkeeping for the properties ------------------------------------ */
byte wheld = UNITS; /* units the Waker holds */
bool bhold[NB];     /* blocking waiter i holds a unit */
bool ohold[NOPS];   /* op k was granted a unit not yet given back */
byte st[NOPS];      /* op state */
byte res[NOPS];     /* result of a QUEUED op */
byte mode[NOPS];
bool cancelled[NOPS];
byte nrc = 0;       /* recheck firings so far */
byte nrun = 0, nfin = 0;  /* processes started / finished (init's end check) */

#define HELD (wheld + bhold[0] + bhold[1] + ohold[0] + ohold[1] + ohold[2])
#define INV  assert(counter + HELD == UNITS)            /* P2 */
#define LOOP_WAITING(L) ((L) == 0 && (st[0] == WAITING || st[1] == WAITING) || \
			 (L) == 1 && st[2] == WAITING)
#define SLEEPERS (queued[0] || queued[1] || LOOP_WAITING(0) || LOOP_WAITING(1))

/* ---- the primitive ------------------------------------------------------
 * attempt: lock.c aiop__owner_take (load owner; CAS 0 -> tid) /
 * semaphore.c sem_attempt (CAS value > 0 -> value - 1).  Under SC the
 * relaxed load + seq_cst CAS is one "take a unit if there is one" step. */
inline attempt_b(r) {
	atomic { if
		 :: counter > 0 -> counter--; bhold[i] = true; r = true; INV
		 :: else -> r = false
		 fi }
}
inline attempt_o(k, r) {
	atomic { if
		 :: counter > 0 -> counter--; ohold[k] = true; r = true; INV
		 :: else -> r = false
		 fi }
}

/* ---- futex ---------------------------------------------------------------
 * futex.h aiop__futex_wake(&wq->seq, 1): dequeue up to one queued waiter;
 * which one is left open (the kernel's FIFO is not relied upon). */
inline futex_wake_one(woke) {
	if
	:: queued[0] -> queued[0] = false; woke = true
	:: queued[1] -> queued[1] = false; woke = true
	:: else -> woke = false
	fi
}
/* wait.c wake_slow: atomic_fetch_add(&wq->seq, 1) */
inline seq_bump() {
	if :: sq[0] == 1 -> sq[0] = 2 :: else -> skip fi;
	if :: sq[1] == 1 -> sq[1] = 2 :: else -> skip fi
}

/* wait.c forget_sleepers: a new generation at count 0 */
#define FORGET nsleep = 0; counted[0] = false; counted[1] = false; \
	       chg = chg | 31; chgen = chgen | 31
/* MUT_NO_ARRIVALS: the waker sees generation changes only */
#define CHG_GEN(w) (chgen & (1 << (w)))

/* ---- the wake step (K2, K3) ---------------------------------------------
 * internal.h aiop__wake(wq, 1) and wait.c aiop__wake_slow(wq, ns, 1), run
 * after the release (K1).  self: the loop whose thread calls it (ring()
 * then just sets r->kicked), else NOLOOP.  Locals ns, a: bool; m: byte. */
inline ring1(l, self) {
#ifdef MUT_NO_KICK
	if :: self == l -> skip :: else -> efd[l] = true fi
#else
	if :: self == l -> kicked[l] = true      /* wait.c ring: r->kicked = true; reg_watch */
	   :: else -> efd[l] = true               /* wait.c ring: write(efd[bell], 1) */
	fi
#endif
}
inline wake(self, wid) {
	atomic { nsv = nsleep; chg = chg & ~(1 << wid); CLR_CHGEN(wid); ns = (nsv != 0) }  /* internal.h aiop__wake: ns = atomic_load(&wq->nsleep) */
#ifdef MUT_FAST_NSLEEP_ONLY
	a = ns;
#else
	atomic { a = (ns || armed != 0) };        /* internal.h aiop__wake: a |= atomic_load(&wq->armed[w]); (ns|a) != 0 */
#endif
	if
	:: a ->
#ifndef MUT_NO_SEQ_BUMP
		atomic { seq_bump(); a = false };                    /* wait.c wake_slow: atomic_fetch_add(&wq->seq, 1) */
#else
		a = false;
#endif
		atomic { if :: ns -> futex_wake_one(woke)              /* wait.c wake_slow: if (ns & COUNT) aiop__futex_wake(&wq->seq, n) */
			 :: else -> woke = true fi };
		atomic { if                                          /* wait.c forget_sleepers: CAS(nsleep, ns, gen + 1 | 0) */
#if defined(MUT_FORGET_BLIND)
			 :: !woke -> FORGET
#elif defined(MUT_NO_ARRIVALS)
			 :: !woke && nsleep == nsv && !(chg & CHG_GEN(wid)) -> FORGET
#else
			 :: !woke && nsleep == nsv && !(chg & (1 << wid)) -> FORGET
#endif
			 :: else -> skip fi; ns = false; woke = false; nsv = 0;
			 chg = chg | (1 << wid); chgen = chgen | (1 << wid) };
		m = armed;                                           /* wait.c wake_slow: atomic_load_explicit(&wq->armed[w], relaxed) */
		atomic { if :: m != 0 -> m = armed; armed = 0        /* wait.c wake_slow: m = atomic_exchange(&wq->armed[w], 0) */
			 :: else -> skip fi };
		atomic { if :: (m & 1) != 0 -> ring1(0, self)        /* wait.c wake_slow: ring(w * 64 + ctz(m)) */
			 :: else -> skip fi; m = m & 2 };
		atomic { if :: m != 0 -> ring1(1, self)
			 :: else -> skip fi; m = 0 }
	:: else -> ns = false                    /* fast path: nobody waits */
	fi
}

/* ---- Waker: holds UNITS units and releases them one by one --------------
 * (aiop_lock_release / aiop_sem_release from a thread running no loop) */
proctype Waker() {
	bool ns, a, woke;
	byte m, nsv;
	do
	:: wheld > 0 ->
#ifdef MUT_WAKE_FIRST
		/* mutation: K2 (the loads of nsleep, armed) before K1 */
		ns = (nsleep != 0);
		atomic { a = (ns || armed != 0) };
		atomic { counter++; wheld--; INV };
		if
		:: a -> atomic { seq_bump(); a = false };
			atomic { if :: ns -> futex_wake_one(woke) :: else -> skip fi; ns = false; woke = false };
			m = armed;
			atomic { if :: m != 0 -> m = armed; armed = 0 :: else -> skip fi };
			atomic { if :: (m & 1) != 0 -> efd[0] = true :: else -> skip fi; m = m & 2 };
			atomic { if :: m != 0 -> efd[1] = true :: else -> skip fi; m = 0 }
		:: else -> ns = false
		fi
#else
		atomic { counter++; wheld--; INV };  /* lock.c lock_release: atomic_exchange(&owner, 0) (K1) */
		wake(NOLOOP, 0)                       /* lock.c lock_release: aiop__wake(&wq, 1) */
#endif
	:: else -> break
	od;
	nfin++
}

/* ---- blocking waiter: aiop__wait + wait_slow ------------------------------
 * Acquires one unit, then releases it (so it is a waker too).
 * dl: a finite deadline (else AIOP_FOREVER).  Its futex_wait may return by
 * timeout at any moment while queued (that also covers the 100 ms
 * next_probe bound and EINTR: the return value is ignored); after any
 * return the deadline may have passed: one last attempt, whose result
 * wins, else -ETIMEDOUT: the waiter abandons the wait. */
proctype Blocking(byte i) {
	bool r, dl, to, ns, a, woke;
	byte m, nsv;
	{
#ifdef BDL
		dl = BDL;
#else
		if :: dl = (i == 0) :: dl = false fi;   /* waiter 1 waits forever */
#endif
		attempt_b(r);                    /* wait.c aiop__wait: r = d->attempt(obj, args, 0) */
		if :: r -> goto acquired :: else -> skip fi;
		/* wait.c wait_slow: spin(): further attempts, abstracted away */
retry:
#if defined(MUT_NO_BLOCK_RECHECK)
		attempt_b(r);                    /* mutation: the attempt before arming */
		sq[i] = 1;
		atomic { counted[i] = true; nsleep++; chg = chg | 31 };
#elif defined(MUT_SEQ_LATE)
		atomic { counted[i] = true; nsleep++; chg = chg | 31 };
		attempt_b(r);
		sq[i] = 1;                       /* mutation: s = seq after the re-check */
#else
		sq[i] = 1;                       /* wait.c wait_slow: s = atomic_load(&wq->seq)              W1 */
		atomic { counted[i] = true; nsleep++; chg = chg | 31 };  /* wait.c wait_slow: mine = atomic_fetch_add(&wq->nsleep, 1); fence W2 */
		attempt_b(r);                    /* wait.c wait_slow: r = d->attempt(obj, args, flags)       W3 */
#endif
		if
		:: !r ->
			/* wait.c wait_slow: aiop__futex_wait(&wq->seq, s, &ts)   W4:
			 * the kernel compares *addr with s and enqueues, atomically */
			atomic { if :: sq[i] == 1 -> queued[i] = true
				 :: else -> skip          /* -EAGAIN: seq was bumped */
				 fi; sq[i] = 0 };
			if
			:: atomic { !queued[i] -> skip }       /* 0: FUTEX_WAKE dequeued us (or -EAGAIN) */
			:: atomic { dl && queued[i] ->         /* -ETIMEDOUT at the deadline: */
				queued[i] = false; to = true } /* the kernel dequeues us */
#ifdef RECHECK
			:: atomic { timeout && queued[i] && nrc < MAXRC ->
				queued[i] = false; nrc++ }     /* -ETIMEDOUT at next_probe (100 ms / 1 s) */
#endif
			fi
		:: else -> sq[i] = 0
		fi;
		atomic {                         /* wait.c sleeper_done(wq, mine): CAS loop */
#ifdef MUT_DONE_ANY_GEN
			nsleep--;
#else
			if :: counted[i] && nsleep > 0 -> nsleep--
			   :: else -> skip fi;
#endif
			counted[i] = false;
			assert(nsleep <= NB)     /* P4 (byte: an underflow reads 255) */
		};
		if :: r -> goto acquired :: else -> skip fi;   /* wait.c wait_slow: if (r != -EAGAIN) return r */
		if
		:: to || dl ->                   /* wait.c wait_slow: t >= deadline: one last attempt */
			to = false;
			attempt_b(r);
			if :: r -> goto acquired :: else -> goto out fi  /* -ETIMEDOUT: abandoned */
		:: !to -> goto retry             /* woken before the deadline, or AIOP_FOREVER */
		fi;
acquired:
		/* the caller holds the unit, then releases it */
		atomic { counter++; bhold[i] = false; r = false; INV;    /* lock.c lock_release: atomic_exchange (K1) */
			 rel[i] = true };
		wake(NOLOOP, 1 + i);             /* lock.c lock_release: aiop__wake(&wq, 1) (K2, K3) */
out:
		atomic { dl = false; bfin[i] = true; nfin++ }
	}
#ifdef DEATH
	unless {
		/* SIGKILL at an arbitrary point, except while it holds a unit (a
		 * dead holder is the PROBE mechanism's business, design.md 5):
		 * the kernel takes a dying task off the futex queue; nsleep stays
		 * one too high until a wake finds nobody queued. */
		atomic { dead[i] && !bhold[i] -> queued[i] = false; sq[i] = 0;
			 r = false; dl = false; to = false; ns = false; a = false; m = 0;
			 woke = false; nsv = 0;
			 nfin++ }
	}
#endif
}

#ifdef DEATH
/* kills blocking waiter 0 at an arbitrary moment, or never */
proctype Killer() {
#ifdef KILL_AFTER_RELEASE
	if
	:: rel[0] -> dead[0] = true  /* only once it released: K1 done, K2/K3 maybe not */
	:: bfin[0] -> skip           /* it returned without a unit (timed out) */
	fi;
#else
	if :: dead[0] = true :: skip fi;
#endif
	nfin++
}
#endif

/* ---- the coro side ------------------------------------------------------ */
/* wait.c arm(): atomic_fetch_or(&wq->armed[bell / 64], bit); seq_cst fence */
inline arm(L) { armed = armed | (1 << L) }

/* wait.c unwait(): list_unlink; ev_timer_stop; nwaiting--; then
 * if (aiop__pending(obj) == 1) atomic_fetch_and(&armed[..], ~bit): only this
 * op of this process is pending (WAITING or QUEUED, counted until
 * deliver()) on the handle.  The count is process-local: one step. */
inline unwait(k) {
	atomic {
		p = (st[lo] == WAITING || st[lo] == QUEUED) +
		    (lo + 1 < hi && (st[lo + 1] == WAITING || st[lo + 1] == QUEUED));
#ifdef MUT_UNWAIT_CLEAR
		armed = armed & ~(1 << L);
#else
		if :: p == 1 -> armed = armed & ~(1 << L) :: else -> skip fi;
#endif
		p = 0
	}
}

/* wait.c deliver(): OP_DONE; npending--; cb(loop, op, res).  The user's
 * callback of a granted op releases the unit at once (lock_release from
 * the loop thread: K1, then aiop__wake rings our own loop via r->kicked). */
inline deliver(k, rr) {
	if
	:: rr == GRANTED ->
		atomic { st[k] = DONE; res[k] = NONE; mode[k] = FOREVER; cancelled[k] = false;
			 counter++; ohold[k] = false; INV };      /* cb: lock_release: atomic_exchange (K1) */
		wake(L, 3 + L)                                /* cb: lock_release: aiop__wake (K2, K3) */
	:: else ->
		atomic { st[k] = DONE; res[k] = NONE; mode[k] = FOREVER; cancelled[k] = false }
	fi
}

/* wait.c aiop__coro_start(), timeout_ns != 0 (timeout 0 never waits) */
inline coro_start(k) {
#ifdef MODE0
	mode[k] = (k == 0 -> MODE0 : (k == 1 -> MODE1 : MODE2));
#else
	if :: mode[k] = FOREVER :: mode[k] = TMO :: mode[k] = CANCEL fi;
#endif
	attempt_o(k, r);                       /* wait.c coro_start: res = d->attempt(obj, args, 0) */
	if
	:: r -> atomic { st[k] = QUEUED; res[k] = GRANTED; r = false }  /* wait.c coro_start: queue_done(r, op, res) */
	:: else ->
		/* spin(): further attempts, abstracted away */
		st[k] = WAITING;               /* wait.c coro_start: OP_WAITING; list_insert_before; nwaiting++ */
		arm(L);                        /* wait.c coro_start: arm(wq, r->bell) */
#ifndef MUT_NO_CORO_RECHECK
		attempt_o(k, r);               /* wait.c coro_start: res = d->attempt(obj, args, 0) */
#endif
		if
		:: r -> unwait(k);             /* wait.c coro_start: unwait(r, op); queue_done */
			atomic { st[k] = QUEUED; res[k] = GRANTED; r = false }
		:: else -> skip                /* ev_timer_start; reg_watch (io, recheck timer) */
		fi
	fi
}

/* one op of wait.c pass_waiting(): all ops of a loop are on one handle,
 * so once one fails in this pass (obj->stamp == stamp) the rest are skipped */
inline pass_op(k) {
	if
	:: st[k] == WAITING && !failed ->
		attempt_o(k, r);               /* wait.c pass_waiting: res = d->attempt(obj, args, flags) */
		if
		:: !r ->
			arm(L);                /* wait.c pass_waiting: arm(op->aiop_wq, r->bell) */
#ifndef MUT_NO_CORO_RECHECK
			attempt_o(k, r)        /* wait.c pass_waiting: res = d->attempt(obj, args, 0) */
#else
			skip
#endif
		:: else -> skip
		fi;
		if
		:: !r -> failed = true         /* wait.c pass_waiting: atomic_store(&obj->stamp, stamp) */
		:: else -> r = false;
			unwait(k);             /* wait.c pass_waiting: unwait(r, op) */
			deliver(k, GRANTED)    /* wait.c pass_waiting: deliver(r, op, res) */
		fi
	:: else -> skip
	fi
}
inline pass() {
	pass_op(lo);
	if :: lo + 1 < hi -> pass_op(lo + 1) :: else -> skip fi;
	failed = false
}

/* op_timeout_cb: last attempt (a result at the deadline wins), else
 * -ETIMEDOUT; unwait; deliver */
inline op_timeout(k) {
	attempt_o(k, r);                       /* wait.c op_timeout_cb: res = attempt(.., aiop__try_flags()) */
	unwait(k);                             /* wait.c op_timeout_cb: unwait(r, op) */
	if :: r -> r = false; deliver(k, GRANTED)
	   :: else -> deliver(k, ETIMEDOUT) fi
}
/* aiop_op_cancel */
inline cancel(k) {
	if
	:: st[k] == WAITING ->                 /* case OP_WAITING: unwait; queue_done(-ECANCELED) */
		cancelled[k] = true;
		unwait(k);
		atomic { st[k] = QUEUED; res[k] = ECANCELED }
	:: else ->                             /* case OP_QUEUED: undo a granted result */
		cancelled[k] = true;
		if
		:: res[k] == GRANTED ->
#ifndef MUT_NO_UNDO
			/* d->undo: lock_undo -> lock_release / sem_undo -> sem_release */
			atomic { counter++; ohold[k] = false; INV };   /* K1 */
			wake(L, 3 + L);                                 /* K2, K3 */
#endif
#ifndef MUT_UNDO_KEEPS_RESULT
			res[k] = ECANCELED     /* aiop_op_cancel: op->aiop_result = -ECANCELED */
#else
			skip
#endif
		:: else -> res[k] = ECANCELED
		fi
	fi
}

/* one event loop (struct aiop__reg) with ops lo .. hi-1 on one handle;
 * the event sources are chosen nondeterministically (libev's order within
 * an iteration is a special case) */
proctype Loop(byte L; byte lo; byte hi) {
	bool r, failed, ns, a, woke;
	byte p, m, nsv;

	coro_start(lo);                         /* the first op starts at once */
	do
	/* io_cb (io watcher active while nwaiting > 0) */
	:: efd[L] && LOOP_WAITING(L) ->
#ifdef MUT_DRAIN_LATE
		pass(); efd[L] = false
#else
		efd[L] = false;                 /* wait.c io_cb: read(w->fd, &v, 8) drains */
		pass()                          /* wait.c io_cb: pass_waiting(r, 0) */
#endif
	/* check_cb: if (r->kicked) { r->kicked = false; pass_waiting(r, 0) } */
	:: kicked[L] -> kicked[L] = false; pass()
	/* check_cb: deliver_done(): queued completions */
	:: st[lo] == QUEUED -> deliver(lo, res[lo])
	:: lo + 1 < hi && st[lo + 1] == QUEUED -> deliver(lo + 1, res[lo + 1])
	/* the second op is started later by user code on the loop thread */
	:: lo + 1 < hi && st[lo + 1] == IDLE -> coro_start(lo + 1)
	/* op_timeout_cb */
	:: st[lo] == WAITING && mode[lo] == TMO -> op_timeout(lo)
	:: lo + 1 < hi && st[lo + 1] == WAITING && mode[lo + 1] == TMO -> op_timeout(lo + 1)
	/* aiop_op_cancel(op), once per op, while WAITING or QUEUED */
	:: (st[lo] == WAITING || st[lo] == QUEUED) && mode[lo] == CANCEL && !cancelled[lo] -> cancel(lo)
	:: lo + 1 < hi && (st[lo + 1] == WAITING || st[lo + 1] == QUEUED) &&
	   mode[lo + 1] == CANCEL && !cancelled[lo + 1] -> cancel(lo + 1)
#ifdef RECHECK
	/* recheck_cb (ev_timer running while nwaiting > 0): pass_waiting(PROBE) */
	:: atomic { timeout && LOOP_WAITING(L) && nrc < MAXRC -> nrc++ }; pass()
#endif
	:: st[lo] == DONE && (lo + 1 >= hi || st[lo + 1] == DONE) -> break
	od;
	nfin++
}

init {
	atomic {
		st[0] = DONE; st[1] = DONE; st[2] = DONE;
		run Waker(); nrun++;
#if NBW >= 1
		run Blocking(0); nrun++;
#endif
#if NBW >= 2
		run Blocking(1); nrun++;
#endif
#if NOPS0 >= 1
		st[0] = IDLE;
#if NOPS0 >= 2
		st[1] = IDLE;
#endif
		run Loop(0, 0, NOPS0); nrun++;
#endif
#if LOOPS == 2
		st[2] = IDLE;
		run Loop(1, 2, 3); nrun++;
#endif
#ifdef DEATH
		run Killer(); nrun++;
#endif
	}
	do
	:: nfin == nrun -> break            /* every other process has finished */
#ifndef RECHECK
	:: timeout ->
		/* nothing can move, yet not everybody has finished */
		assert(!(counter > 0 && SLEEPERS));   /* P1: a lost wake-up */
		assert(counter == UNITS);             /* P2: a unit leaked */
		assert(false)                         /* stuck otherwise */
#endif
	od;
	/* end of every run: all units back (P2), every op completed */
	assert(counter == UNITS && HELD == 0);
	assert(st[0] == DONE && st[1] == DONE && st[2] == DONE);
	assert(nsleep == 0 || dead[0])          /* a dead waiter may leave it one too high
	                                           until a wake finds nobody queued */
}

#ifdef LTL
/* P1 as LTL (check.sh runs it with ./pan -a -f, weak fairness): whenever a
 * unit is free while a live waiter sleeps, eventually that stops being so */
ltl nolost { [] ((counter > 0 && SLEEPERS) -> <> !(counter > 0 && SLEEPERS)) }
#endif
