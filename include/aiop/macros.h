/* SPDX-License-Identifier: MIT */
/**
 * @file aiop/macros.h
 * Header-only conveniences (GNU C). Nothing here adds a symbol.
 */
#ifndef AIOP_MACROS_H
#define AIOP_MACROS_H

#include <aiop/common.h>
#include <aiop/lock.h>
#include <aiop/rlock.h>
#include <aiop/semaphore.h>
#include <aiop/event.h>
#include <aiop/condition.h>
#include <aiop/barrier.h>
#include <aiop/queue.h>

/** True if an acquire result means the caller now holds the lock. */
#define aiop_held(r) ((r) == 0 || (r) == -EOWNERDEAD)

/**
 * Run the following statement with the lock held; skip it if the acquire
 * failed. `r` (an int lvalue) receives the acquire result so the body can
 * see -EOWNERDEAD and the caller can see an error. Do not leave the body with
 * return/goto/break: the release would be skipped.
 *
 *   int r;
 *   AIOP_WITH_LOCK(lock, AIOP_FOREVER, r) { counter++; }
 *   if (!aiop_held(r)) handle_error(r);
 */
#define AIOP_WITH_LOCK(lock, timeout_ns, r)                                    \
	for (int aiop__once_ = ((r) = aiop_lock_acquire((lock), (timeout_ns)), \
				aiop_held(r));                                 \
	     aiop__once_; aiop__once_ = 0, (void)aiop_lock_release(lock))

/** As AIOP_WITH_LOCK, for an RLock. */
#define AIOP_WITH_RLOCK(rlock, timeout_ns, r)                                  \
	for (int aiop__once_ = ((r) = aiop_rlock_acquire((rlock),              \
							 (timeout_ns)),        \
				aiop_held(r));                                 \
	     aiop__once_; aiop__once_ = 0, (void)aiop_rlock_release(rlock))

/**
 * Evaluate expr (an aiop call); if it is < 0, return it from the caller.
 * Not for an acquire of a Lock, RLock or Condition: its -EOWNERDEAD is < 0
 * but means acquired, and the caller would return holding the lock (use
 * aiop_held). Not for a Condition wait either: it returns -ETIMEDOUT,
 * -EOWNERDEAD and -EOVERFLOW with the lock held again.
 */
#define AIOP_TRY(expr)                                                         \
	do {                                                                   \
		int aiop__r_ = (expr);                                         \
		if (aiop__r_ < 0)                                              \
			return aiop__r_;                                       \
	} while (0)

#define AIOP__DEFINE_AUTO(type)                                                \
	static inline void aiop__autofree_##type(struct aiop_##type **p)       \
	{                                                                      \
		if (*p)                                                        \
			(void)aiop_##type##_free(*p);                          \
	}
AIOP__DEFINE_AUTO(lock)
AIOP__DEFINE_AUTO(rlock)
AIOP__DEFINE_AUTO(sem)
AIOP__DEFINE_AUTO(event)
AIOP__DEFINE_AUTO(cond)
AIOP__DEFINE_AUTO(barrier)
AIOP__DEFINE_AUTO(queue)
AIOP__DEFINE_AUTO(simplequeue)
#undef AIOP__DEFINE_AUTO

/**
 * Declare a handle pointer that is freed when it goes out of scope:
 *   aiop_auto(lock) l = NULL;  AIOP_TRY(aiop_lock_new(&l));
 * A handle with coro ops still pending on it is not freed (aiop_X_free
 * refuses with -EBUSY): it stays allocated, and the ops stay valid.
 */
#define aiop_auto(type)                                                        \
	__attribute__((cleanup(aiop__autofree_##type))) struct aiop_##type *

#endif /* AIOP_MACROS_H */
