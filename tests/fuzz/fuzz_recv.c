/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: receiving an object from a hostile sender
 * (docs/design.md 10, issue 5's "handle receiving").
 *
 * The fuzzer writes the message header and picks every fd it carries:
 * the real objects' and domain's memfds, doorbells, forged memfds (a real
 * object's memory with input bytes XORed over it, resized, sealed in four
 * ways), pipes, blocking and foreign eventfds, /dev/null, a socket. One
 * aiop_X_recv() takes it. Checked whatever came: no crash, no ASan/UBSan
 * report, a documented result, no fd left open that was not the handle's
 * (counted in /proc/self/fd), errno untouched; a received handle works
 * for a try call and frees. The same fds also go through the check a
 * process without a domain runs before joining one
 * (aiop__share_domain_check), since this process already has one.
 * AIOP_FUZZ_VERBOSE=1 prints each result.
 *
 * Input layout:
 *   [0]       receiver (mod 8, see recvs[])
 *   [1]       flags (F_* below)
 *   [2..41]   struct aiop__wire, raw
 *   [42]      message length if F_LEN (0..63), else 40
 *   [43]      number of fds (mod AIOP__WIRE_FDS_MAX + 1)
 *   [44..]    one kind byte per fd (see make_fd()), then the XOR image
 *             for forged memory
 *
 * tests/fuzz/gen_corpus.py writes seeds in this format (corpus-recv/).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aiop.h"
#include "internal.h"
#include "share_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define F_OUR_DOMAIN 0x01 /* wire.domain_id ^= this process's */
#define F_LEN 0x02        /* the message length from the input */
#define F_OUR_NBELLS 0x04 /* wire.nbells = this domain's */
#define OFF_WIRE 2
#define OFF_LEN 42
#define OFF_NFD 43
#define OFF_KINDS 44

#define SEALED (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static struct aiop_lock *g_lock;
static struct aiop_rlock *g_rlock;
static struct aiop_sem *g_sem;
static struct aiop_event *g_event;
static struct aiop_cond *g_cond;
static struct aiop_barrier *g_barrier;
static struct aiop_queue *g_queue;
static struct aiop_simplequeue *g_squeue;
static struct aiop__obj *g_objs[8];
static int g_sv[2];

static void
die(const char *what)
{
	fprintf(stderr, "fuzz_recv: %s\n", what);
	abort();
}

static int
fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		die("no /proc/self/fd");
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct aiop_queue_attr qa = {.capacity = 4096};

	(void)argc;
	(void)argv;
	if (aiop_lock_new(&g_lock) || aiop_rlock_new(&g_rlock) ||
	    aiop_sem_new_bounded(&g_sem, 3) || aiop_event_new(&g_event) ||
	    aiop_cond_new(&g_cond) ||
	    aiop_barrier_new(&g_barrier, 3, NULL, NULL) ||
	    aiop_queue_new(&g_queue, &qa) || aiop_simplequeue_new(&g_squeue))
		die("objects");
	g_objs[0] = (struct aiop__obj *)g_lock;
	g_objs[1] = (struct aiop__obj *)g_rlock;
	g_objs[2] = (struct aiop__obj *)g_sem;
	g_objs[3] = (struct aiop__obj *)g_event;
	g_objs[4] = (struct aiop__obj *)g_cond;
	/* the condition's own RLock: the handle's second word after o */
	g_objs[5] = *(struct aiop__obj **)((char *)g_cond +
					    sizeof(struct aiop__obj));
	g_objs[6] = (struct aiop__obj *)g_barrier;
	g_objs[7] = (struct aiop__obj *)g_queue;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, g_sv) < 0)
		die("socketpair");
	return 0;
}

/* A forged memfd: base's memory XOR image, resized, sealed (mode 0-3) */
static int
forged(const void *base, size_t bsize, const uint8_t *img, size_t ilen,
       unsigned mode)
{
	static const int seals[4] = {SEALED, 0, F_SEAL_SHRINK | F_SEAL_GROW,
				     SEALED | F_SEAL_WRITE};
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), size = bsize;
	int fd = memfd_create("forged", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	unsigned char *p;

	if (fd < 0)
		die("memfd");
	if ((mode >> 2) == 1)
		size += pg;
	else if ((mode >> 2) == 2 && size > pg)
		size -= pg;
	else if ((mode >> 2) == 3)
		size += 100; /* not whole pages */
	if (ftruncate(fd, (off_t)size) < 0)
		die("ftruncate");
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	memcpy(p, base, bsize < size ? bsize : size);
	for (size_t i = 0; i < ilen && i < size; i++)
		p[i] ^= img[i];
	munmap(p, size);
	if (seals[mode & 3] && fcntl(fd, F_ADD_SEALS, seals[mode & 3]) < 0)
		die("seals");
	return fd;
}

/*
 * The fd for kind byte k (low nibble: what; high nibble: a parameter).
 * *own says whether the harness made it (and closes it after sending).
 */
static int
make_fd(uint8_t k, int idx, int recv, const uint8_t *img, size_t ilen,
	bool *own)
{
	unsigned hi = k >> 4;
	int fd, pp[2];

	*own = false;
	switch (k & 15) {
	case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7:
		return g_objs[k & 7]->fd;
	case 8:
		return aiop__dom.fd;
	case 9:
		return aiop__dom.efd[hi % (unsigned)aiop__dom.nbells];
	case 10: {
		/* based on what this position should hold */
		static const int base_of[8] = {0, 1, 2, 3, 4, 6, 7, 7};
		const struct aiop__obj *b = idx == 0 ? g_objs[base_of[recv]]
				: idx == 1 && recv == 4 ? g_objs[5] : NULL;

		*own = true;
		if (b)
			return forged(b->shm, b->size, img, ilen, hi);
		return forged(aiop__dom.shm, aiop__domain_shm_size(), img,
			      ilen, hi);
	}
	case 11:
		if (pipe2(pp, O_CLOEXEC | (hi & 1 ? O_NONBLOCK : 0)) < 0)
			die("pipe");
		close(pp[hi & 2 ? 0 : 1]);
		*own = true;
		return pp[hi & 2 ? 1 : 0];
	case 12:
		*own = true;
		fd = eventfd(0, EFD_CLOEXEC | (hi & 1 ? EFD_NONBLOCK : 0));
		if (fd < 0)
			die("eventfd");
		return fd;
	case 13:
		*own = true;
		fd = open("/dev/null", O_RDWR | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			die("/dev/null");
		return fd;
	default:
		*own = true;
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    0);
		if (fd < 0)
			die("socket");
		return fd;
	}
}

static void
send_msg(const void *w, size_t len, const int *fds, int nfd)
{
	union aiop__cmsg_buf cb;
	struct iovec iov = {.iov_base = (void *)w, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

	aiop__msg_fds(&msg, &cb, fds, nfd);
	if (sendmsg(g_sv[0], &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		die("sendmsg");
}

/* Receive with receiver r; use and free what came. Returns the result. */
static int
recv_one(int r)
{
	int s = g_sv[1], res;
	void *h = NULL;

	switch (r) {
	case 0:
		res = aiop_lock_recv(s, (struct aiop_lock **)&h, 0);
		if (res == 0 && aiop_lock_try_acquire(h) == 0)
			aiop_lock_release(h);
		if (res == 0 && aiop_lock_free(h))
			die("free");
		break;
	case 1:
		res = aiop_rlock_recv(s, (struct aiop_rlock **)&h, 0);
		if (res == 0 && aiop_rlock_try_acquire(h) == 0)
			aiop_rlock_release(h);
		if (res == 0 && aiop_rlock_free(h))
			die("free");
		break;
	case 2:
		res = aiop_sem_recv(s, (struct aiop_sem **)&h, 0);
		if (res == 0 && aiop_sem_try_acquire(h) == 0)
			aiop_sem_release(h);
		if (res == 0 && aiop_sem_free(h))
			die("free");
		break;
	case 3:
		res = aiop_event_recv(s, (struct aiop_event **)&h, 0);
		if (res == 0)
			(void)aiop_event_try_wait(h);
		if (res == 0 && aiop_event_free(h))
			die("free");
		break;
	case 4:
		res = aiop_cond_recv(s, (struct aiop_cond **)&h, 0);
		if (res == 0 && aiop_cond_try_acquire(h) == 0)
			aiop_cond_release(h);
		if (res == 0 && aiop_cond_free(h))
			die("free");
		break;
	case 5:
		res = aiop_barrier_recv(s, (struct aiop_barrier **)&h, 0);
		if (res == 0)
			(void)aiop_barrier_n_waiting(h);
		if (res == 0 && aiop_barrier_free(h))
			die("free");
		break;
	case 6: {
		char buf[64];
		size_t len;

		res = aiop_queue_recv(s, (struct aiop_queue **)&h, 0);
		if (res == 0)
			(void)aiop_queue_try_get(h, buf, sizeof(buf), &len);
		if (res == 0 && aiop_queue_free(h))
			die("free");
		break;
	}
	default:
		res = aiop_simplequeue_recv(s, (struct aiop_simplequeue **)&h,
					    0);
		if (res == 0)
			(void)aiop_simplequeue_empty(h);
		if (res == 0 && aiop_simplequeue_free(h))
			die("free");
		break;
	}
	if (res != 0 && h)
		die("a handle after a failure");
	return res;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds[AIOP__WIRE_FDS_MAX], nfd, before, res, saved;
	bool own[AIOP__WIRE_FDS_MAX];
	unsigned char msg[64] = {0};
	struct aiop__wire w;
	struct aiop__domain d;
	const uint8_t *img;
	size_t len, ilen;
	int recv;

	if (size < OFF_KINDS)
		return 0;
	recv = data[0] % 8;
	memcpy(&w, data + OFF_WIRE, sizeof(w));
	if (data[1] & F_OUR_DOMAIN) /* an input of 0 gives this domain */
		w.domain_id ^= aiop__dom.id;
	if (data[1] & F_OUR_NBELLS)
		w.nbells = (uint16_t)aiop__dom.nbells;
	len = data[1] & F_LEN ? data[OFF_LEN] % sizeof(msg) : sizeof(w);
	nfd = data[OFF_NFD] % (AIOP__WIRE_FDS_MAX + 1);
	if (size < OFF_KINDS + (size_t)nfd)
		nfd = (int)(size - OFF_KINDS);
	img = data + OFF_KINDS + nfd;
	ilen = size - OFF_KINDS - (size_t)nfd;
	memcpy(msg, &w, sizeof(w));

	before = fd_count();
	for (int i = 0; i < nfd; i++)
		fds[i] = make_fd(data[OFF_KINDS + i], i, recv, img, ilen,
				 &own[i]);
	if (len == 0 && nfd == 0)
		len = 1; /* an empty message would read as a hang-up */
	send_msg(msg, len, fds, nfd);

	saved = errno = 12345;
	res = recv_one(recv);
	if (errno != saved)
		die("errno changed");
	if (getenv("AIOP_FUZZ_VERBOSE"))
		fprintf(stderr, "fuzz_recv: receiver %d, %d fds: %d\n", recv,
			nfd, res);
	switch (res) {
	case 0: case -EBADMSG: case -EPROTO: case -EXDEV: case -EMFILE:
		break;
	default:
		fprintf(stderr, "result %d\n", res);
		die("an undocumented result");
	}

	/* the join check over the same fds (objects first, as sent) */
	{
		int first = w.nobj == 2 ? 2 : 1;

		if (w.nbells >= 1 && w.nbells <= AIOP__DOORBELLS_MAX &&
		    nfd >= first + 1 + w.nbells && w.domain_id != 0 &&
		    aiop__share_domain_check(&w, fds + first, &d) == 0)
			munmap(d.shm, aiop__domain_shm_size());
	}
	for (int i = 0; i < nfd; i++)
		if (own[i])
			close(fds[i]);
	if (fd_count() != before)
		die("fds leaked");
	return 0;
}
