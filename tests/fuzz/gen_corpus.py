#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of fuzz_objects (tests/fuzz/corpus/).

Input format: see the comment at the top of fuzz_objects.c. Each seed is a
pristine image of one primitive's shared memory (layouts of src/internal.h
and the *_shm structs at the top of src/<primitive>.c), sometimes with a few
hostile fields, plus a script that calls every operation of the primitive.
The domain id is process-random, so seeds set F_KEEP_DOMAIN (and usually
F_KEEP_IDENT) and leave it 0.

    python3 tests/fuzz/gen_corpus.py [outdir]
"""
import os
import struct
import sys

# prim selectors (enum prim)
LOCK, RLOCK, SEM, BSEM, EVENT, COND_R, COND_L, BAR1, BAR3 = range(9)
NAMES = ["lock", "rlock", "sem", "bsem", "event", "condr", "condl",
         "bar1", "bar3"]
# enum aiop__type
T_LOCK, T_RLOCK, T_SEM, T_EVENT, T_COND, T_BARRIER = 2, 3, 4, 5, 6, 7
TYPE = {LOCK: T_LOCK, RLOCK: T_RLOCK, SEM: T_SEM, BSEM: T_SEM,
        EVENT: T_EVENT, COND_R: T_COND, COND_L: T_COND, BAR1: T_BARRIER,
        BAR3: T_BARRIER}
NOPS = {LOCK: 4, RLOCK: 4, SEM: 4, BSEM: 4, EVENT: 5, COND_R: 8, COND_L: 8,
        BAR1: 6, BAR3: 6}

F_KEEP_IDENT, F_KEEP_DOMAIN, F_KEEP_LOCK_HDR = 1, 2, 4
F_ACTION_FAIL, F_SCRIBBLE_CB, F_RESTART_CB = 8, 16, 32
SPIN_OFF, SPIN_FIXED = 1 << 6, 2 << 6

SCRIPT_LEN = 32
COND_SPLIT = 128
PAGE = 4096

# generic script ops
S_PATCH8, S_PATCH32, S_DEFER, S_SPIN, S_CORO, S_CANCEL, S_RUN, S_HEADERS, \
    S_DETACH, S_CBMODE, S_BELL, S_DOMAIN = range(12)
NGENERIC = 12
# S_CBMODE argument bits
CB_CANCEL_OTHERS, CB_START_FREE, CB_RELEASE, CB_DETACH = 1, 2, 4, 8

# offsets in every object
O_SPIN_NS, O_LAST_CPU, O_NSLEEP, O_ARMED0, O_ARMED1 = 32, 36, 28, 40, 48
O_FIELD = 56  # owner / value / word / st
# magic_value() indexes
V_TID, V_TID1, V_INIT, V_DEAD, V_MAX, V_FFFF = 4, 5, 6, 7, 8, 11
V_COUNT1, V_COUNT2 = 15, 21

T_100US = 229  # tmo byte: (229 - 63) * 600 ns ~ 100 us
T_10US = 80
T_TRY = 0
T_FOREVER = 255  # coro only


def ident(t):
    return 0x706f6961 | (1 << 32) | (t << 48)


def header(t):
    return struct.pack("<QIIQ", ident(t), PAGE, 0, 0)


def waitq(seq=0, nsleep=0, spin=2000, last_cpu=0, a0=0, a1=0):
    return struct.pack("<IIIIQQ", seq, nsleep, spin, last_cpu, a0, a1)


def image(p, fields=b"", wq=None, lock_fields=b"", lock_wq=None):
    t = TYPE[p]
    body = header(t) + (wq or waitq()) + fields
    if p in (COND_R, COND_L):
        body = body.ljust(COND_SPLIT, b"\0")
        lt = T_RLOCK if p == COND_R else T_LOCK
        lf = lock_fields or struct.pack("<II", 0, 0)
        body += header(lt) + (lock_wq or waitq()) + lf
    return body


def default_fields(p):
    if p in (LOCK, RLOCK):
        return struct.pack("<II", 0, 0)
    if p == SEM:
        return struct.pack("<II", 1, 0x7fffffff)
    if p == BSEM:
        return struct.pack("<II", 2, 2)
    if p == EVENT:
        return struct.pack("<I", 0)
    if p in (COND_R, COND_L):
        return struct.pack("<Q", 0)
    parties = 1 if p == BAR1 else 3
    return struct.pack("<QII", 0, parties, 0) + b"\0" * 8 * parties


def op(p, k, hi=None):
    """Script byte for generic op k (< NGENERIC) or primitive op NGENERIC+k
    callers pass; with hi, pick a byte whose high nibble is hi."""
    m = NGENERIC + NOPS[p]
    if hi is None:
        return k
    for b in range(256):
        if b % m == k and b >> 4 == hi:
            return b
    return k


def P(p, i):
    """primitive op i"""
    return NGENERIC + i


def script_all(p):
    """Every operation of p once, then coro ops, cancels, a run."""
    s = []
    if p in (LOCK, RLOCK, SEM, BSEM):
        # try, locked/depth/value, release, acquire(100us), acquire(try)
        s += [P(p, 0), P(p, 3), P(p, 2), P(p, 1), T_100US, P(p, 1), T_TRY,
              P(p, 2)]
    elif p == EVENT:
        s += [P(p, 2), P(p, 3), T_10US, P(p, 0), P(p, 4), P(p, 1),
              P(p, 3), T_TRY]
    elif p in (COND_R, COND_L):
        # acquire, notify 1, wait 10us, notify_all, wait_for(10us, k=2)
        s += [P(p, 1), T_TRY, P(p, 4), 1, P(p, 3), T_10US, P(p, 5),
              P(p, 6), T_10US, 2, P(p, 2)]
    else:
        s += [P(p, 5), P(p, 3), P(p, 4), P(p, 0), T_10US, P(p, 2),
              P(p, 1)]
    # coro: slot 0 100us, slot 1 forever, cancel slot 1, run
    s += [S_CORO, 0, T_100US, S_CORO, 1, T_FOREVER,
          op(p, S_CANCEL, 1), op(p, S_RUN, 0)]
    return bytes(s[:SCRIPT_LEN]).ljust(SCRIPT_LEN, b"\0")


def script_coro(p):
    """Three coro ops of different kinds, a cancel while queued, runs."""
    s = [S_CORO, 0, T_TRY, op(p, S_CANCEL, 0), S_CORO, 3 + 1, T_10US,
         S_CORO, 6 + 2, T_100US, op(p, S_RUN, 1), op(p, S_RUN, 0),
         S_DETACH, S_CORO, 0, T_FOREVER, op(p, S_CANCEL, 0),
         op(p, S_RUN, 0)]
    if p in (COND_R, COND_L):
        s = [P(p, 1), T_TRY] + s
    return bytes(s[:SCRIPT_LEN]).ljust(SCRIPT_LEN, b"\0")


def script_patch(p, off, vidx, then):
    s = [S_PATCH32, off // 4, vidx] + list(then)
    return bytes(s[:SCRIPT_LEN]).ljust(SCRIPT_LEN, b"\0")


def seed(p, flags, script, img):
    return bytes([p, flags]) + script + img


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    keep = F_KEEP_IDENT | F_KEEP_DOMAIN | F_KEEP_LOCK_HDR
    seeds = {}
    for p in range(9):
        n = NAMES[p]
        f = default_fields(p)
        seeds[n + "-all"] = seed(p, keep, script_all(p), image(p, f))
        seeds[n + "-coro"] = seed(p, keep | F_SCRIBBLE_CB, script_coro(p),
                                  image(p, f))
        # hostile wait queue: every armed bit, huge spin and nsleep
        seeds[n + "-wq"] = seed(
            p, keep | SPIN_FIXED, script_all(p),
            image(p, f, wq=waitq(7, 0xffffffff, 0xffffffff, 0xffffffff,
                                 (1 << 64) - 1, (1 << 64) - 1)))
    # no header kept: a corrupt ident everywhere (-EPROTO)
    seeds["lock-badident"] = seed(LOCK, 0, script_all(LOCK),
                                  b"\xff" * 24 + waitq() + b"\0" * 8)
    # dead and live foreign owners
    seeds["lock-deadowner"] = seed(LOCK, keep, script_all(LOCK), image(
        LOCK, struct.pack("<II", 0x7ffffff0, 0)))
    seeds["rlock-initowner"] = seed(RLOCK, keep, script_all(RLOCK), image(
        RLOCK, struct.pack("<II", 1, 0xffffffff)))
    seeds["rlock-mydepth"] = seed(
        RLOCK, keep, script_patch(RLOCK, O_FIELD, V_TID, script_all(RLOCK)),
        image(RLOCK, struct.pack("<II", 0, 0x7fffffff)))
    seeds["sem-max"] = seed(SEM, keep, script_all(SEM), image(
        SEM, struct.pack("<II", 0xffffffff, 0)))
    seeds["bsem-over"] = seed(BSEM, keep, script_all(BSEM), image(
        BSEM, struct.pack("<II", 0x7fffffff, 0xffffffff)))
    seeds["event-gen"] = seed(EVENT, keep, script_all(EVENT), image(
        EVENT, struct.pack("<I", 0xffffffff)))
    seeds["condr-counts"] = seed(COND_R, keep | F_SCRIBBLE_CB,
                                 script_all(COND_R), image(
        COND_R, struct.pack("<Q", (5 << 32) | 3)))
    seeds["condl-full"] = seed(COND_L, keep, script_all(COND_L), image(
        COND_L, struct.pack("<Q", 0xffffffff_fffffffe)))
    bar3 = default_fields(BAR3)
    seeds["bar3-count2"] = seed(BAR3, keep | F_ACTION_FAIL,
                                script_all(BAR3), image(
        BAR3, struct.pack("<Q", (2 << 16) | 5) + bar3[8:]))
    seeds["bar3-full-broken"] = seed(BAR3, keep, script_all(BAR3), image(
        BAR3, struct.pack("<Q", 0xffffffff_ffffffff) + bar3[8:]))
    seeds["bar3-deadslots"] = seed(BAR3, keep, script_coro(BAR3), image(
        BAR3, struct.pack("<QII", 2 << 16, 3, 0) +
        struct.pack("<QQQ", 0x7ffffff0, 0x7ffffff0, 0x7ffffff0)))
    for p in (LOCK, SEM, EVENT, COND_L, BAR3):
        s = [S_CBMODE, CB_CANCEL_OTHERS | CB_START_FREE | CB_RELEASE |
             CB_DETACH] + list(script_coro(p))
        seeds[NAMES[p] + "-cbmode"] = seed(
            p, keep, bytes(s[:SCRIPT_LEN]).ljust(SCRIPT_LEN, b"\0"),
            image(p, default_fields(p)))
    # a peer rings doorbell 0 (ours) and forges the owner of doorbell 1
    for p in (LOCK, EVENT, COND_R):
        s = [S_CORO, 0, T_100US, S_BELL, 0, 0, op(p, S_RUN, 1), S_DOMAIN,
             0, V_INIT, S_DETACH, S_CORO, 1, T_100US, S_BELL, 0, 1,
             op(p, S_RUN, 1)]
        seeds[NAMES[p] + "-bells"] = seed(
            p, keep, bytes(s[:SCRIPT_LEN]).ljust(SCRIPT_LEN, b"\0"),
            image(p, default_fields(p)))
    # issue-5 finding (before 3b7313c): a forged signal count made
    # wait_for loop once per signal inside one attempt, past its deadline;
    # blocking and coro forms, predicate never true
    flood = image(COND_L, struct.pack("<Q", 0xffff))
    s = [P(COND_L, 1), T_TRY, P(COND_L, 6), T_10US, 255]
    seeds["condl-sigflood"] = seed(
        COND_L, keep, bytes(s).ljust(SCRIPT_LEN, b"\0"), flood)
    s = [P(COND_L, 1), T_TRY, op(COND_L, S_CORO, 15), 6, T_10US]
    seeds["condl-coro-sigflood"] = seed(
        COND_L, keep, bytes(s).ljust(SCRIPT_LEN, b"\0"), flood)
    seeds["bar1-restart"] = seed(BAR1, keep | F_RESTART_CB | F_SCRIBBLE_CB,
                                 script_coro(BAR1),
                                 image(BAR1, default_fields(BAR1)))
    total = 0
    for name, data in sorted(seeds.items()):
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(data)
        total += len(data)
    print(f"{len(seeds)} seeds, {total} bytes in {out}")


if __name__ == "__main__":
    main()
