#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of fuzz_objects (tests/fuzz/corpus/),
fuzz_queue (tests/fuzz/corpus-queue/) and fuzz_recv
(tests/fuzz/corpus-recv/).

Input formats: see the comments at the top of fuzz_objects.c and
fuzz_queue.c. Each fuzz_objects seed is a
pristine image of one primitive's shared memory (layouts of src/internal.h
and the *_shm structs at the top of src/<primitive>.c), sometimes with a few
hostile fields, plus a script that calls every operation of the primitive.
The domain id is process-random, so seeds set F_KEEP_DOMAIN (and usually
F_KEEP_IDENT) and leave it 0.

Each fuzz_queue seed is a script of queue operations, either on a pristine
queue (the target then checks every result against its model) or on an
image of the queue's header and ring built here: records of every kind and
owner across a wrap, dead and live holders, and corrupt words.

Each fuzz_recv seed is one message for one receiver: a faithful one (the
real objects' fds, this process's domain) and variants with forged
memory, wrong doorbells, another domain, short, long and empty messages,
none at all, datagrams, up to 253 fds, too little room for them, and
receivers with no domain that join (F_JOIN).

    python3 tests/fuzz/gen_corpus.py [outdir [queue_outdir [recv_outdir]]]
"""
import os
import re
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


def write_seeds(seeds, out):
    """Write each seed to its file in out and say how many were written."""
    total = 0
    for name, data in sorted(seeds.items()):
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(data)
        total += len(data)
    print(f"{len(seeds)} seeds, {total} bytes in {out}")


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


# ---- fuzz_queue (tests/fuzz/fuzz_queue.c) ---------------------------------
# Keep in step with fuzz_queue.c (flags, script ops, value tables) and
# src/queue_shm.h (the shared header, q_header()).

QCAP = 4096
Q_IMG_HDR = 448      # sizeof(struct q_shm), src/queue_shm.h
Q_SCRIPT_LEN = 64
T_QUEUE = 8          # enum aiop__type
QF_JOINABLE, QF_KEEP_IDENT, QF_KEEP_DOMAIN, QF_SCRIBBLE = 1, 2, 4, 8
QF_SPIN_OFF = 1 << 6
QKEEP = QF_KEEP_IDENT | QF_KEEP_DOMAIN

(QS_PATCH, QS_DEFER, QS_CORO, QS_CANCEL, QS_RUN, QS_HEADERS, QS_CBMODE,
 QS_TRY_PUT, QS_PUT, QS_TRY_GET, QS_GET, QS_PUT_MANY, QS_GET_MANY,
 QS_RESERVE, QS_COMMIT, QS_ABORT, QS_PEEK, QS_RELEASE, QS_UNPEEK, QS_SIZES,
 QS_TASK_DONE, QS_JOIN, QS_CLOSE, QS_MISUSE, QS_THREAD) = range(25)
# QS_THREAD's first byte (helper_main())
TH_GET, TH_PEEK_EXIT, TH_RESERVE_EXIT, TH_PUT, TH_GET_MANY = range(5)
# len_sel() and cap_sel() indexes
(L0, L1, L7, L15, L16, L17, L31, L100, L101, L500, L1000, L2000, LMAX,
 LMAX1, L4096, LHUGE) = range(16)
(C0, C1, C15, C16, C17, C100, C101, C2016, C4096, C7, C500,
 C2017) = range(12)
# tmo_sel(): (b + 1) * 500 ns below 200; 1 ms; a try; invalid
QT_10US, QT_100US, QT_1MS, QT_TRY, QT_BAD, QT_FOREVER = 19, 199, 200, 244, \
    252, 255
# coro kinds (enum ck); S_CORO's first byte is kind * 3 + slot
CK_PUT, CK_GET, CK_PUTV, CK_GETV, CK_RESERVE, CK_PEEK, CK_JOIN = range(7)
# callback modes (CB_*)
QCB_CANCEL_OTHERS, QCB_START_FREE, QCB_GIVE_BACK, QCB_CLOSE, \
    QCB_TRY_GET = 1, 2, 4, 8, 16
# patch kinds and header fields (fields[] in fuzz_queue.c)
QP_FIELD, QP_REC, QP_RAW = range(3)
(QFLD_TAIL, QFLD_RELEASE, QFLD_REL_SEEN, QFLD_HEAD, QFLD_PLOCK,
 QFLD_CLOSED, QFLD_NRES, QFLD_NFIN, QFLD_NEED, QFLD_NDONE) = range(10)
QFLD_NE_NSLEEP, QFLD_NF_NSLEEP, QFLD_NF_ARMED0 = 17, 23, 26
# field_value(): base | delta index << 3
VB_ZERO, VB_CUR, VB_REL, VB_TAIL, VB_OTHER, VB_ME, VB_DEAD, VB_ONES = \
    range(8)
VD_0, VD_16, VD_M16, VD_1, VD_M1, VD_32, VD_M32, VD_CAP, VD_MCAP = range(9)
VD_2_32, VD_2_48 = 14, 16
# patch_rec(): sel & 3 = word; state value = kind | tid << 3 | lap << 5
R_ST, R_LEN, R_RSIZE, R_FORGE = range(4)
RT_0, RT_ME, RT_DEAD, RT_INIT = range(4)
K_RES, K_COMMIT, K_CLAIM, K_FREE, K_PAD = 1, 2, 3, 4, 5
DEAD_TID = 0x3ffff0


def qv(base, delta=0):
    return base | delta << 3


def qst(kind, tid=RT_0, lap=0):
    return kind | tid << 3 | lap << 5


def q_rsize(n):
    return 16 + ((n + 15) & ~15)


def q_pat(seq, n):
    return bytes((seq * 167 + i * 13 + 1) & 0xff for i in range(n))


def q_header(joinable=False, tail=0, nres=0, release=0, nfin=0,
             rel_seen=None, head=None, need=(1 << 64) - 1, unfinished=0,
             plock=0, closed=0, nsleep=0, armed=0, backlog=0,
             tail_seen=None, ndrop=0, j_tail=None, j_nres=None, j_dpos=0,
             j_ndrop=None, nres_seen=None):
    """The queue's shared header (struct q_shm, src/queue_shm.h),
    pristine but for the given words; backlog: committed records not yet
    claimed (ncommit - nclaimed); unfinished: nres - ndrop - ndone (the
    JoinableQueue's count); the journals agree with tail, nres and ndrop
    unless given."""
    M64 = (1 << 64) - 1
    if j_tail is None:
        j_tail = tail & 0xffffffff
    if j_nres is None:
        j_nres = nres & 0xffffffff
    if j_ndrop is None:
        j_ndrop = ndrop
    if nres_seen is None:
        nres_seen = nres
    b = bytearray(Q_IMG_HDR)
    struct.pack_into("<QIIQ", b, 0, ident(T_QUEUE), 2 * QCAP, 0, 0)
    struct.pack_into("<IIII", b, 24, QCAP, 100 if joinable else 2016,
                     3 if joinable else 0, 1 if joinable else 0)
    # closed (read-mostly, beside the attributes)
    struct.pack_into("<I", b, 40, closed)
    # plock, j_tail, plock_wait; tail, nres, rel_seen, ncommit, j_nres
    struct.pack_into("<III", b, 64, plock, j_tail, 0)
    struct.pack_into("<QQQQI", b, 80, tail, nres,
                     release if rel_seen is None else rel_seen,
                     (nfin + backlog) & M64, j_nres)
    if head is None:
        head = (release >> 4) & ((1 << 48) - 1)
    if tail_seen is None:
        tail_seen = tail
    # release, head, nfin, nclaimed, res_stop, tail_seen
    struct.pack_into("<QQQQIIQ", b, 128, release, head, nfin, nfin, 0, 0,
                     tail_seen)
    # need, ndone, nres_seen, ndrop, j_dpos, j_ndrop
    struct.pack_into("<QQQQQQ", b, 192, need,
                     (nres - ndrop - unfinished) & M64, nres_seen, ndrop,
                     j_dpos,
                     j_ndrop)
    for off in (256, 320, 384):
        struct.pack_into("<IIIIQQ", b, off, 0, nsleep, 2000, 0, armed,
                         0)
    return bytes(b)


class Ring:
    """Records laid out as reserve() does: a PAD to the end of the ring
    where the next record does not fit."""

    def __init__(self, start):
        self.b = bytearray(QCAP)
        self.p = start
        self.n = 0
        self.ncommit = 0

    def rec(self, pos, kind, tid, length, rsize, data=b""):
        o = pos % QCAP
        st = ((pos >> 12) & 0xffffffff) << 32 | kind << 28 | tid
        struct.pack_into("<QII", self.b, o, st, length, rsize)
        self.b[o + 16:o + 16 + len(data)] = data

    def add(self, kind, length, tid=0, seq=0):
        rs = q_rsize(length)
        left = QCAP - self.p % QCAP
        if left < rs:
            self.rec(self.p, K_PAD, 0, 0, left)
            self.p += left
        self.rec(self.p, kind, tid, length, rs, q_pat(seq, length))
        self.n += kind in (K_RES, K_COMMIT, K_CLAIM)
        self.ncommit += kind == K_COMMIT
        self.p += rs
        return self


def q_script(ops):
    s = bytes(ops)
    assert len(s) <= Q_SCRIPT_LEN, len(s)
    # padded with a harmless op (0 would be a patch: tail = 0)
    return s.ljust(Q_SCRIPT_LEN, bytes([QS_HEADERS]))


def q_seed(flags, ops, img=b""):
    """A seed; a script-only one ends after its script (the queue is then
    pristine and the target checks it against its model)."""
    if not img:
        return bytes([flags]) + bytes(ops)
    return bytes([flags]) + q_script(ops) + img


def q_image(hdr, ring):
    return hdr + bytes(ring.b)


# Scripts
Q_BASIC = [
    QS_TRY_PUT, L100, QS_TRY_PUT, L0, QS_TRY_GET, C16,   # -EMSGSIZE
    QS_TRY_GET, C2016, QS_TRY_GET, C0, QS_TRY_GET, C7,   # 100, 0, -EAGAIN
    QS_PUT, L2000, QT_10US, QS_PUT, LMAX1, QT_10US,      # 0, -EMSGSIZE
    QS_PUT, LHUGE, QT_TRY, QS_SIZES,
    QS_GET, C4096, QT_1MS, QS_GET, C4096, QT_10US,       # 2000, -ETIMEDOUT
    QS_GET, C4096, QT_BAD, QS_PUT, L1, QT_BAD,           # -EINVAL
    QS_TRY_PUT, LMAX, QS_TRY_PUT, LMAX, QS_TRY_PUT, L1,  # full
    QS_SIZES, QS_PUT, L16, QT_1MS, QS_GET_MANY, C4096, 3,
    QS_GET_MANY, C2017, 3, QS_SIZES,
]
Q_MANY = [
    QS_PUT_MANY, 3, L7, L100, L0, L2000,
    QS_GET_MANY, C101, 3, QS_GET_MANY, C100, 3,          # 1 (7), 1 (100)
    QS_PUT_MANY, 1, L2000, L2000,                        # 2 x 2000: fits?
    QS_PUT_MANY, 3, L1000, L1000, L1000, L1000,          # never fits
    QS_PUT_MANY, 0, LMAX1, QS_GET_MANY, C0, 3,
    QS_GET_MANY, C2016, 3, QS_GET_MANY, C4096, 3,
    QS_PUT_MANY, 3, L500, L500, L500, L500,
    QS_GET_MANY, C1, 0, QS_GET_MANY, C4096, 1, QS_GET_MANY, C4096, 3,
    QS_SIZES,
]
Q_ZEROCOPY = [
    QS_RESERVE, 0, L500, 0, QS_RESERVE, 1, L16, 0,
    QS_TRY_PUT, L7, QS_TRY_GET, C4096,                   # -EAGAIN: FIFO
    QS_COMMIT, 1, 1, QS_ABORT, 0, QS_COMMIT, 0, 0,       # abort; -
    QS_TRY_GET, C4096, QS_PEEK, 0, 0, QS_PEEK, 1, 0,
    QS_UNPEEK, 0, QS_PEEK, 2, 0, QS_RELEASE, 1, QS_RELEASE, 2,
    QS_RESERVE, 3, L2000, QT_10US, QS_COMMIT, 3, 2,      # raise: -EINVAL
    QS_COMMIT, 3, 3, QS_PEEK, 3, QT_1MS, QS_RELEASE, 3,
    QS_PEEK, 0, QT_10US, QS_SIZES,
]
Q_PEEK = [
    QS_TRY_PUT, L1, QS_TRY_PUT, L2000, QS_TRY_PUT, L17,
    QS_PEEK, 0, 0, QS_PEEK, 1, 0, QS_PEEK, 2, 0, QS_PEEK, 3, 0,
    QS_UNPEEK, 1, QS_TRY_GET, C4096, QS_UNPEEK, 0,
    QS_GET_MANY, C4096, 3, QS_RELEASE, 2, QS_TRY_PUT, L500,
    QS_RELEASE, 1, QS_UNPEEK, 2, QS_SIZES, QS_TRY_GET, C500,
    QS_MISUSE, 0, QS_MISUSE, 1, QS_MISUSE, 2, QS_MISUSE, 3,
    QS_MISUSE, 4, QS_MISUSE, 5,
]
Q_WRAP = [
    QS_TRY_PUT, L2000, QS_TRY_PUT, L1000, QS_TRY_GET, C2016,
    QS_TRY_PUT, L1000, QS_TRY_PUT, L1000, QS_TRY_PUT, L500,  # wraps
    QS_SIZES, QS_GET_MANY, C4096, 3, QS_TRY_PUT, L2000,
    QS_GET_MANY, C4096, 3, QS_TRY_PUT, LMAX, QS_TRY_PUT, L31,
    QS_TRY_GET, C4096, QS_TRY_PUT, L2000, QS_TRY_PUT, L2000,
    QS_GET_MANY, C4096, 3, QS_GET_MANY, C4096, 3, QS_SIZES,
]
Q_CLOSE = [
    QS_TRY_PUT, L7, QS_RESERVE, 0, L16, 0, QS_CLOSE,
    QS_TRY_PUT, L7, QS_TRY_PUT, LMAX1, QS_RESERVE, 1, L1, 0,  # -EPIPE
    QS_TRY_GET, C4096, QS_TRY_GET, C4096,                # 7, -EAGAIN (RES)
    QS_COMMIT, 0, 0, QS_TRY_GET, C4096, QS_TRY_GET, C4096,  # 16, -EPIPE
    QS_GET, C4096, QT_1MS, QS_PEEK, 0, QT_10US, QS_CLOSE, QS_SIZES,
    QS_GET_MANY, C4096, 3,
]
Q_JOIN = [
    QS_TRY_PUT, L7, QS_TRY_PUT, L100, QS_TRY_PUT, L0, QS_TRY_PUT, L1,
    QS_TRY_PUT, L16, QS_TRY_PUT, L7,                     # maxsize 3
    QS_PUT_MANY, 0, L1, QS_SIZES, QS_JOIN, 0, QS_JOIN, QT_10US,
    QS_GET_MANY, C4096, 3, QS_TASK_DONE, QS_TASK_DONE, QS_JOIN, 0,
    QS_PUT_MANY, 1, L1, LMAX1, QS_PUT_MANY, 3, L1, L1, L1, L1,
    QS_TRY_GET, C4096, QS_TRY_GET, C4096, QS_TASK_DONE, QS_TASK_DONE,
    QS_TASK_DONE, QS_TASK_DONE, QS_JOIN, QT_1MS, QS_RESERVE, 0, L100, 0,
    QS_COMMIT, 0, 0, QS_TASK_DONE,
]
Q_CORO = [
    QS_CORO, CK_PUT * 3 + 0, QT_100US, L100,
    QS_CORO, CK_GET * 3 + 1, QT_1MS, C4096,
    QS_CORO, CK_PUTV * 3 + 2, QT_100US, 0x31, QS_RUN, 0,
    QS_CORO, CK_GETV * 3 + 0, QT_1MS, 0x38,
    QS_CORO, CK_RESERVE * 3 + 1, QT_FOREVER, L500,
    QS_CORO, CK_PEEK * 3 + 2, QT_FOREVER, 0, QS_RUN, 1,
    QS_CANCEL, 1, QS_RUN, 0, QS_CANCEL, 2,
    QS_CORO, CK_JOIN * 3 + 0, QT_100US, 0, QS_RUN, 0,
    QS_CORO, CK_GET * 3 + 1, QT_10US, C7, QS_TRY_PUT, L100, QS_RUN, 0,
    QS_COMMIT, 0, 0, QS_RELEASE, 0,
]
# a coro get and put_many granted at their start, then the records change
# under them before their completion reads them again
Q_CORO_WINDOW = [
    QS_TRY_PUT, L100, QS_CORO, CK_GET * 3 + 0, QT_1MS, C4096,
    QS_PATCH, QP_REC, 0, R_LEN, 6,                       # len msg_max
    QS_PATCH, QP_REC, 0, R_RSIZE, 0, QS_RUN, 0,          # rsize 0
    QS_CORO, CK_PUTV * 3 + 1, QT_1MS, 0x3b,              # 4 messages
    QS_PATCH, QP_REC, 8, R_RSIZE, 3,                     # rsize 17
    QS_PATCH, QP_REC, 8, R_ST, qst(K_FREE), QS_RUN, 0,
    QS_CORO, CK_PEEK * 3 + 2, QT_1MS, 0,
    QS_PATCH, QP_REC, 255, R_FORGE, 250, QS_RUN, 0,
]
Q_CORO_CANCEL = [
    QS_TRY_PUT, L2000, QS_TRY_PUT, L7,
    QS_CORO, CK_GET * 3 + 0, QT_1MS, C4096, QS_CANCEL, 0,  # granted
    QS_CORO, CK_GETV * 3 + 1, QT_1MS, 0x38, QS_CANCEL, 1,
    QS_CORO, CK_RESERVE * 3 + 2, QT_1MS, L1000, QS_CANCEL, 2,
    QS_RUN, 0, QS_TRY_GET, C4096, QS_TRY_GET, C4096, QS_SIZES,
    QS_CORO, CK_PUT * 3 + 0, QT_1MS, L100, QS_CANCEL, 0, QS_RUN, 1,
    QS_SIZES,
]


def write_queue_corpus(out):
    os.makedirs(out, exist_ok=True)
    seeds = {}
    J = QF_JOINABLE
    for name, ops in (("basic", Q_BASIC), ("many", Q_MANY),
                      ("zerocopy", Q_ZEROCOPY), ("peek", Q_PEEK),
                      ("wrap", Q_WRAP), ("close", Q_CLOSE)):
        seeds["q-" + name] = q_seed(QKEEP, ops)
        seeds["j-" + name] = q_seed(QKEEP | J, ops)
    seeds["j-join"] = q_seed(QKEEP | J, Q_JOIN)
    seeds["q-coro"] = q_seed(QKEEP, Q_CORO)
    seeds["j-coro"] = q_seed(QKEEP | J, Q_CORO)
    seeds["q-coro-window"] = q_seed(QKEEP, Q_CORO_WINDOW)
    seeds["q-coro-cancel"] = q_seed(QKEEP, Q_CORO_CANCEL)
    # callbacks that write (the record of the next op), cancel, close
    cb = [QS_DEFER, QP_REC, 0, R_LEN, 13, QS_CBMODE,
          QCB_CANCEL_OTHERS | QCB_START_FREE | QCB_GIVE_BACK | QCB_TRY_GET
          ] + Q_CORO[:40]
    seeds["q-cb-scribble"] = q_seed(QKEEP | QF_SCRIBBLE, cb)
    cb = [QS_DEFER, QP_FIELD, QFLD_TAIL, qv(VB_REL), 0, QS_CBMODE,
          QCB_CLOSE | QCB_GIVE_BACK] + Q_CORO[:40]
    seeds["q-cb-close"] = q_seed(QKEEP | QF_SCRIBBLE, cb)

    # images: a queue in its eighth lap, records across the wrap
    rel = 7 * QCAP + 1024
    drain = [QS_GET_MANY, C4096, 3, QS_TRY_GET, C4096, QS_PEEK, 0, 0,
             QS_TRY_PUT, L1000, QS_TRY_GET, C17, QS_RELEASE, 0,
             QS_SIZES, QS_GET, C4096, QT_1MS, QS_TRY_PUT, L2000,
             QS_GET_MANY, C4096, 3, QS_PUT, L500, QT_1MS,
             QS_GET_MANY, C4096, 3, QS_TRY_GET, C4096, QS_SIZES]

    def lap_ring(kinds, j=False):
        r = Ring(rel)
        for i, (k, n, tid) in enumerate(kinds):
            r.add(k, n, tid, seq=100 + i)
        return r

    def img(r, j=False, **kw):
        kw.setdefault("unfinished", r.n)
        return q_image(q_header(j, tail=r.p, nres=50 + r.n, release=rel,
                                nfin=50, backlog=r.ncommit, **kw), r)

    C = K_COMMIT
    r = lap_ring([(C, 1000, 0), (C, 900, 0), (C, 100, 0), (C, 800, 0),
                  (C, 0, 0), (C, 17, 0)])
    seeds["img-lap"] = q_seed(QKEEP, drain, img(r))
    r = lap_ring([(C, 90, 0), (C, 100, 0), (C, 1, 0)], True)
    seeds["img-lap-j"] = q_seed(QKEEP | J, drain + [QS_TASK_DONE] * 4,
                                img(r, True))
    for name, k, tid in (("deadres", K_RES, DEAD_TID),
                         ("liveres", K_RES, 1),
                         ("deadclaim", K_CLAIM, DEAD_TID),
                         ("liveclaim", K_CLAIM, 1),
                         ("free", K_FREE, 0), ("pad", K_PAD, 0)):
        r = lap_ring([(k, 500, tid), (C, 100, 0), (k, 16, tid),
                      (C, 2000, 0)])
        seeds["img-" + name] = q_seed(QKEEP, drain, img(r))
    # the whole ring in use
    rfull = Ring(rel)
    while rfull.p + 512 <= rel + QCAP:
        rfull.add(C, 496, 0, seq=rfull.n)
    seeds["img-full"] = q_seed(QKEEP, [QS_TRY_PUT, L1, QS_SIZES,
                                       QS_PUT, L7, QT_1MS] + drain,
                               img(rfull))
    # producer lock held: by a dead thread, by init (alive, not us)
    r = lap_ring([(C, 100, 0)])
    for name, holder in (("plock-dead", DEAD_TID), ("plock-init", 1)):
        seeds["img-" + name] = q_seed(
            QKEEP, [QS_TRY_PUT, L7, QS_PUT, L7, QT_1MS, QS_CLOSE] + drain,
            img(r, plock=holder))
    seeds["img-closed"] = q_seed(QKEEP, drain + [QS_TRY_PUT, L1],
                                 img(lap_ring([(C, 7, 0), (C, 8, 0)]),
                                     closed=1))
    # corrupt words, one at a time, over a sane ring
    r = lap_ring([(C, 100, 0), (C, 1000, 0), (C, 300, 0)])
    bad = {
        "tail-below": dict(tail=rel - 16),
        "tail-over": dict(tail=rel + QCAP + 16),
        "tail-odd": dict(tail=r.p + 3),
        "tail-2-64": dict(tail=(1 << 64) - 16),
        "rel-seen": dict(rel_seen=r.p),
        "rel-seen-odd": dict(rel_seen=rel + 8),
        "head-far": dict(head=(5 << 48) | ((1 << 48) - 1)),
        "head-tail": dict(head=(1 << 48) | (r.p >> 4)),
        "counts": dict(nres=3, nfin=(1 << 64) - 1),
        "unfinished-max": dict(unfinished=0xffffffff),
        # journals a dying holder may leave, and garbage in them
        "j-nres-behind": dict(nres=52, j_nres=53),
        "j-nres-garbage": dict(j_nres=0x7fffffff),
        "j-tail-stale": dict(j_tail=(r.p - 16) & 0xffffffff, j_nres=99),
        "j-drop-pending": dict(ndrop=2, j_ndrop=3, j_dpos=rel),
        "j-drop-odd": dict(ndrop=2, j_ndrop=3, j_dpos=rel + 7),
        "j-drop-garbage": dict(ndrop=(1 << 64) - 1, j_ndrop=5,
                               j_dpos=(1 << 64) - 16),
        "nres-seen-high": dict(nres_seen=1 << 40),
        "need-0": dict(need=0),
        "waiters": dict(nsleep=0xffffffff, armed=(1 << 64) - 1),
    }
    for name, kw in bad.items():
        words = dict(tail=r.p, nres=53, release=rel, nfin=50, backlog=3)
        words.update(kw)
        h = q_header(False, **words)
        seeds["img-bad-" + name] = q_seed(QKEEP, drain, h + bytes(r.b))
    # corrupt records: size 0, odd, past tail, len over size, wrong lap
    for name, (word, val) in {
            "rsize0": (2, 0), "rsize-odd": (2, 17),
            "rsize-big": (2, 0xfffffff0), "len-big": (1, 0xffffffff),
            "len-over": (1, 200), "lap": (0, None)}.items():
        rr = Ring(rel)
        rr.b[:] = r.b
        o = rel % QCAP + 128  # the second record
        if val is None:
            struct.pack_into("<Q", rr.b, o, (8 << 32) | K_COMMIT << 28)
        else:
            struct.pack_into("<I", rr.b, o + 4 * word + 4 if word else o,
                             val)
        rr.p = r.p
        seeds["img-rec-" + name] = q_seed(QKEEP, drain, img(rr))
    # patches between calls: every record word, our own tid as an owner
    s = [QS_TRY_PUT, L100, QS_TRY_PUT, L7, QS_PATCH, QP_REC, 0, R_ST,
         qst(K_CLAIM, RT_ME), QS_TRY_GET, C4096, QS_RELEASE, 0,
         QS_PATCH, QP_REC, 8, R_ST, qst(K_RES, RT_ME), QS_COMMIT, 0, 0,
         QS_PATCH, QP_FIELD, QFLD_PLOCK, qv(VB_ME), 0, QS_TRY_PUT, L1,
         QS_PATCH, QP_FIELD, QFLD_TAIL, qv(VB_TAIL, VD_2_32), 0,
         QS_TRY_PUT, L1, QS_SIZES, QS_GET, C4096, QT_1MS]
    seeds["q-patch-mine"] = q_seed(QKEEP, s)
    s = [QS_TRY_PUT, L2000, QS_TRY_PUT, L1000, QS_PEEK, 0, 0,
         QS_PATCH, QP_FIELD, QFLD_RELEASE, qv(VB_TAIL), 0,
         QS_RELEASE, 0, QS_TRY_PUT, L2000,
         QS_PATCH, QP_FIELD, QFLD_HEAD, qv(VB_REL, VD_16), 0,
         QS_TRY_GET, C4096, QS_PATCH, QP_RAW, 0x10, 0x08, 0xff,
         QS_TRY_GET, C4096, QS_SIZES, QS_PUT_MANY, 1, L1, L1]
    seeds["q-patch-ends"] = q_seed(QKEEP, s)
    # threads that die holding a claim or a reservation; new threads'
    # first tries probe for dead owners at once
    s = [QS_TRY_PUT, L100, QS_TRY_PUT, L7, QS_THREAD, TH_PEEK_EXIT, 0,
         QS_TRY_GET, C4096, QS_THREAD, TH_GET, C4096, QS_TRY_GET, C4096,
         QS_THREAD, TH_RESERVE_EXIT, L500, QS_TRY_PUT, L16,
         QS_TRY_GET, C4096, QS_THREAD, TH_GET_MANY, 0x38,
         QS_THREAD, TH_PEEK_EXIT, 0, QS_THREAD, TH_GET, C4096,
         QS_GET, C4096, QT_1MS, QS_SIZES]
    seeds["q-thread-dead"] = q_seed(QKEEP, s)
    seeds["j-thread-dead"] = q_seed(QKEEP | J, s)
    # a full ring whose first record a dead consumer holds: only a
    # producer's probe (probe_dead) gives the room back
    s = [QS_THREAD, TH_PEEK_EXIT, 0, QS_THREAD, TH_PUT, L500,
         QS_THREAD, TH_PUT, L2000, QS_TRY_PUT, L7, QS_THREAD, TH_PUT, L7,
         QS_GET_MANY, C4096, 3, QS_SIZES]
    seeds["img-full-deadclaim"] = q_seed(QKEEP, s, img(rfull))
    s = [QS_THREAD, TH_RESERVE_EXIT, L7, QS_CLOSE, QS_TRY_GET, C4096,
         QS_THREAD, TH_GET, C4096, QS_THREAD, TH_PEEK_EXIT, 0,
         QS_TRY_GET, C4096, QS_THREAD, TH_GET_MANY, 0x38, QS_SIZES]
    seeds["q-thread-close"] = q_seed(QKEEP, [QS_TRY_PUT, L7] + s)
    # issue-5 findings (fixed in 42ebb1c), kept as regressions:
    # get_many with a NULL 0-byte buffer left lens[] unwritten
    seeds["fix-getmany-nullbuf"] = q_seed(QKEEP | J, [
        QS_TRY_PUT, L0, QS_TRY_PUT, L0, QS_GET_MANY, C0, 1])
    # a coro reserve's msg->len was read back from the record, which a
    # put over a forged tail rewrote before the callback
    seeds["fix-coro-reserve-len"] = q_seed(QKEEP, [
        QS_CORO, CK_RESERVE * 3 + 2, 1, L0,
        QS_PATCH, QP_FIELD, QFLD_TAIL, qv(VB_ZERO), 0, QS_TRY_PUT, L100,
        QS_RUN, 0])
    # a producer lock held by a live thread (init) made each attempt
    # spin 20000 sched_yield()s: a try_put took 40 ms, a 1 ms put 0.3 s,
    # seconds under load (with AIOP_FUZZ_LATE_MS=50 it fails)
    seeds["fix-plock-live"] = q_seed(QKEEP, [
        QS_PATCH, QP_FIELD, QFLD_PLOCK, qv(VB_CUR), 0, QS_TRY_PUT, L7,
        QS_PUT, L7, QT_1MS, QS_RESERVE, 0, L7, QT_1MS, QS_CLOSE])
    # a get_many run across two dropped records: consume() skipped one
    seeds["fix-run-two-pads"] = q_seed(QKEEP, [
        QS_TRY_PUT, L7, QS_RESERVE, 0, L16, 0, QS_RESERVE, 1, L16, 0,
        QS_TRY_PUT, L100, QS_ABORT, 0, QS_ABORT, 1,
        QS_GET_MANY, C4096, 3, QS_SIZES])
    write_seeds(seeds, out)


# ---- fuzz_recv (format: top of fuzz_recv.c) ------------------------------

R_F_OUR_DOMAIN, R_F_LEN, R_F_OUR_NBELLS = 1, 2, 4
R_F_DGRAM, R_F_CLOSE, R_F_JOIN, R_F_PASSCRED, R_F_NOMSG = (
    8, 0x10, 0x20, 0x40, 0x80)
R_OURS = R_F_OUR_DOMAIN | R_F_OUR_NBELLS
# receivers (recv_obj() in fuzz_recv.c): type, sub, flags, sizes, object
# kinds (index into the target's g_objs: lock, rlock, sem, event, cond, the
# cond's rlock, barrier of 3, queue of 4096 bytes; 4 KiB pages)
T_QUEUE = 8


def wire_abi():
    """AIOP__ABI from src/internal.h: a seed of another ABI is refused
    (-EPROTO) before anything else is checked, so it must follow it."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "src", "internal.h")) as fh:
        for line in fh:
            m = re.match(r"#define AIOP__ABI (\d+)u", line)
            if m:
                return int(m.group(1))
    raise SystemExit("gen_corpus: no AIOP__ABI in src/internal.h")


RECVS = [(T_LOCK, 0, 0, [4096], [0]), (T_RLOCK, 0, 0, [4096], [1]),
         (T_SEM, 0, 0, [4096], [2]), (T_EVENT, 0, 0, [4096], [3]),
         (T_COND, T_RLOCK, 0, [4096, 4096], [4, 5]),
         (T_BARRIER, 0, 0, [4096], [6]), (T_QUEUE, 0, 0, [8192], [7]),
         (T_QUEUE, 0, 1, [8192], [7])]
R_NAMES = ["lock", "rlock", "sem", "event", "cond", "barrier", "queue",
           "squeue"]
K_DOMAIN, K_BELL, K_FORGED, K_PIPE, K_EVENTFD, K_NULL, K_SOCK, K_OTHER = (
    8, 9, 10, 11, 12, 13, 14, 15)
# K_EVENTFD parameters; K_OTHER ones: O_PATH, read-only, unsealed file,
# a non-blocking timerfd (an anon inode, not an eventfd)
EFD_NONBLOCK, EFD_SEMA, EFD_COUNT = 1 << 4, 2 << 4, 4 << 4
O_PATH_, O_RDONLY_, O_FILE_, O_TIMERFD_ = 0, 1 << 4, 2 << 4, 3 << 4


def r_seed(r, objs=None, bells=None, dom=K_DOMAIN, flags=None,
           wire_patch=None, img=b"", nbells=8, length=40, nfd=None,
           room=0):
    t, sub, wflags, sizes, kinds = RECVS[r]
    objs = kinds if objs is None else objs
    bells = [K_BELL | (i % 16) << 4 for i in range(nbells)] \
        if bells is None else bells
    sz = sizes + [0] * (2 - len(sizes))
    wire = struct.pack("<IHHHHHHQQQ", 0x776f6961, wire_abi(), t, sub, wflags,
                       len(sizes), nbells, 0, sz[0], sz[1])
    if wire_patch:
        wire = wire_patch(wire)
    fds = list(objs) + [dom] + list(bells)
    f = R_OURS if flags is None else flags
    n = len(fds) if nfd is None else nfd
    return bytes([r, f]) + wire + bytes([length, n, room]) + bytes(fds) + \
        img


def write_recv_corpus(out):
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):  # the format changed: no stale seeds
        os.remove(os.path.join(out, f))
    seeds = {}
    for r, name in enumerate(R_NAMES):
        seeds[name] = r_seed(r)
        nobj = len(RECVS[r][4])
        # forged copies: faithful, unsealed, one page more, write-sealed
        for hi, what in ((0, "copy"), (1, "unsealed"), (4, "bigger"),
                         (3, "wsealed")):
            seeds[f"{name}-{what}"] = r_seed(
                r, objs=[K_FORGED | hi << 4] * nobj)
        # the same, received by a process with no domain: it joins
        seeds[f"{name}-join"] = r_seed(r, flags=R_OURS | R_F_JOIN)
    seeds["lock-xor-ident"] = r_seed(0, objs=[K_FORGED],
                                     img=bytes([0, 0, 0, 0, 0, 0, 1]))
    seeds["queue-xor-capacity"] = r_seed(
        6, objs=[K_FORGED], img=bytes(24) + bytes([0, 1]))
    seeds["lock-pipe-bell"] = r_seed(0, bells=[K_PIPE | 1 << 4] * 8)
    seeds["lock-blocking-bell"] = r_seed(0, bells=[K_EVENTFD] * 8)
    # another domain, the object's header saying the same: -EXDEV
    seeds["lock-foreign"] = r_seed(
        0, objs=[K_FORGED], img=bytes(16) + bytes([0x55]),
        wire_patch=lambda w: w[:16] + bytes([0x55]) + w[17:])
    seeds["lock-forged-domain"] = r_seed(0, dom=K_FORGED)
    seeds["lock-as-event"] = r_seed(3, objs=[0])
    seeds["lock-short"] = r_seed(0, flags=R_OURS | R_F_LEN, length=12)
    seeds["lock-long"] = r_seed(0, flags=R_OURS | R_F_LEN, length=200)
    seeds["lock-null-sock"] = r_seed(0, objs=[K_NULL], dom=K_SOCK)
    # fds that are what a position wants, opened otherwise
    seeds["lock-opath"] = r_seed(0, objs=[K_OTHER | O_PATH_])
    seeds["lock-rdonly"] = r_seed(0, objs=[K_OTHER | O_RDONLY_],
                                  dom=K_OTHER | O_RDONLY_)
    seeds["lock-tmpfile"] = r_seed(0, objs=[K_OTHER | O_FILE_])
    # datagrams: the same messages
    seeds["lock-dgram"] = r_seed(0, flags=R_OURS | R_F_DGRAM)
    seeds["cond-dgram"] = r_seed(4, flags=R_OURS | R_F_DGRAM)
    # nothing sent (-EAGAIN), a hang-up (-EPIPE), empty messages (-EBADMSG
    # unless the peer closed too), an empty one with fds
    for f, what in ((0, "seq"), (R_F_DGRAM, "dgram")):
        seeds[f"none-{what}"] = r_seed(0, flags=R_OURS | R_F_NOMSG | f)
        seeds[f"hangup-{what}"] = r_seed(
            0, flags=R_OURS | R_F_NOMSG | R_F_CLOSE | f)
        seeds[f"empty-{what}"] = r_seed(0, flags=R_OURS | R_F_LEN | f,
                                        length=0, nfd=0)
        seeds[f"empty-closed-{what}"] = r_seed(
            0, flags=R_OURS | R_F_LEN | R_F_CLOSE | f, length=0, nfd=0)
        seeds[f"empty-fds-{what}"] = r_seed(
            0, flags=R_OURS | R_F_LEN | f, length=0)
    seeds["lock-then-close"] = r_seed(0, flags=R_OURS | R_F_CLOSE)
    # more fds than a message announces (131), than fit the receiver's
    # control buffer (MSG_CTRUNC), the most (253)
    for n in (132, 140, 200, 230, 253):
        seeds[f"lock-{n}fds"] = r_seed(0, nfd=n)
    seeds["lock-253-nulls"] = r_seed(0, objs=[], dom=K_NULL, bells=[],
                                     nfd=253)
    seeds["lock-128bells"] = r_seed(0, nbells=128, flags=R_F_OUR_DOMAIN)
    # the most a message announces (a Condition: 131), and more: refused
    # (67b2cc6)
    seeds["cond-128bells"] = r_seed(4, nbells=128, flags=R_F_OUR_DOMAIN)
    seeds["cond-128bells-more"] = r_seed(4, nbells=128,
                                         flags=R_F_OUR_DOMAIN, nfd=140)
    # no room for all fds: MSG_CTRUNC, -EMFILE (room k+1: k fds)
    for k in (0, 1, 2, 10, 60):
        seeds[f"lock-room{k}"] = r_seed(0, room=k + 1)
    seeds["cond-room3"] = r_seed(4, room=4)
    # the receiving socket asks for credentials and a pidfd
    seeds["lock-passcred"] = r_seed(0, flags=R_OURS | R_F_PASSCRED)
    seeds["lock-passcred-room1"] = r_seed(0, flags=R_OURS | R_F_PASSCRED,
                                          room=2)
    seeds["lock-passcred-join"] = r_seed(
        0, flags=R_OURS | R_F_PASSCRED | R_F_JOIN)
    # doorbells a joiner must refuse: semaphore mode (with a count),
    # blocking, a pipe, a blocking reopening of a real doorbell; and one
    # it may take: fresh non-blocking eventfds
    for b, what in ((K_EVENTFD | EFD_NONBLOCK | EFD_SEMA, "sema"),
                    (K_EVENTFD | EFD_NONBLOCK | EFD_SEMA | EFD_COUNT,
                     "sema-count"),
                    (K_EVENTFD, "blocking"), (K_PIPE | 1 << 4, "pipe"),
                    (K_OTHER | O_TIMERFD_, "timerfd"),
                    (K_EVENTFD | EFD_NONBLOCK, "fresh")):
        seeds[f"join-bells-{what}"] = r_seed(
            0, flags=R_OURS | R_F_JOIN, bells=[b] * 8)
    seeds["join-bell-one-sema"] = r_seed(
        0, flags=R_OURS | R_F_JOIN,
        bells=[K_BELL] * 7 + [K_EVENTFD | EFD_NONBLOCK | EFD_SEMA])
    # a whole forged domain, its id changed in the object, the domain and
    # the header alike (one image XORed over both): a joiner takes it
    seeds["join-forged-domain"] = r_seed(
        0, objs=[K_FORGED], dom=K_FORGED, img=bytes(16) + bytes([0x55]),
        flags=R_OURS | R_F_JOIN,
        wire_patch=lambda w: w[:16] + bytes([0x55]) + w[17:])
    seeds["join-unsealed-domain"] = r_seed(
        0, dom=K_FORGED | 1 << 4, flags=R_OURS | R_F_JOIN)
    seeds["join-dgram"] = r_seed(6, flags=R_OURS | R_F_JOIN | R_F_DGRAM)
    seeds["join-room5"] = r_seed(0, flags=R_OURS | R_F_JOIN, room=6)
    seeds["join-140fds"] = r_seed(0, flags=R_OURS | R_F_JOIN, nfd=140)
    write_seeds(seeds, out)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
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
    write_seeds(seeds, out)
    write_queue_corpus(sys.argv[2] if len(sys.argv) > 2 else
                       os.path.join(here, "corpus-queue"))
    write_recv_corpus(sys.argv[3] if len(sys.argv) > 3 else
                      os.path.join(here, "corpus-recv"))


if __name__ == "__main__":
    main()
