/* SPDX-License-Identifier: MIT */
/**
 * @file aiop.h
 * Umbrella header: everything except aiop/ev.h, so worker code that only
 * blocks needs no libev. Event-loop code also includes <aiop/ev.h>.
 */
#ifndef AIOP_H
#define AIOP_H

#include <aiop/common.h>
#include <aiop/lock.h>
#include <aiop/rlock.h>
#include <aiop/semaphore.h>
#include <aiop/event.h>
#include <aiop/condition.h>
#include <aiop/barrier.h>
#include <aiop/queue.h>
#include <aiop/macros.h>

#endif /* AIOP_H */
