/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: receiving an object from a hostile sender
 * (docs/design.md 10, issue 5's "handle receiving").
 *
 * The fuzzer writes the message (header, any length, or none at all),
 * picks the socket type and every fd it carries (up to SCM_MAX_FD, past
 * the most a message announces): the real objects' and domain's memfds,
 * doorbells, forged memfds (a real object's memory with input bytes XORed
 * over it, resized, sealed in four ways), read-only and O_PATH reopenings
 * of real memfds, pipes, eventfds (blocking, semaphore mode), a timerfd,
 * /dev/null, sockets, a file without seals. It can close the sender, make
 * the receiving socket ask for credentials and a pidfd, and leave the
 * receiver room for only k more fds (RLIMIT_NOFILE: MSG_CTRUNC, -EMFILE).
 * One aiop_X_recv() takes it, on a fresh socket pair. Checked whatever
 * came: no crash, no ASan/UBSan report, a documented result (exactly
 * -EAGAIN, -EPIPE or -EBADMSG where nothing, a hang-up or an empty message
 * came; success only for a whole header with exactly the fds it
 * announces), no fd left open that was not the handle's (counted in
 * /proc/self/fd), no file left mapped (mmap/munmap counted), errno
 * untouched; a received handle works for a try call and frees. The same
 * fds also go through the check a process without a domain runs before
 * joining one (aiop__share_domain_check), since this process already has
 * one. This process's domain has 8 doorbells (AIOP_DOORBELLS), not 64:
 * messages of 10 fds keep each run short.
 *
 * Joining: a process joins once, so F_JOIN inputs are received by a
 * process with no domain: a child of a zygote forked before this process
 * made its domain (a fork per input, and libFuzzer sees no coverage from
 * it, so only one F_JOIN input in AIOP_FUZZ_JOIN_EVERY, default 8, goes
 * there, the first always; the others are received here). The child
 * checks the same and more: it joined exactly when the receive succeeded,
 * the announced domain, whose doorbells are non-blocking eventfds not in
 * semaphore mode and whose memfd is sealed (checked here on their own),
 * and one can be claimed and rung; the fds and mappings that stay are
 * exactly the domain's (also read in /proc/self/maps).
 * AIOP_FUZZ_VERBOSE=1 prints each result.
 *
 * Input layout:
 *   [0]       receiver (mod 8, see recv_obj())
 *   [1]       flags (F_* below)
 *   [2..41]   struct aiop__wire, raw
 *   [42]      message length if F_LEN (0..255, zeros after the header),
 *             else 40
 *   [43]      number of fds (0..253, more is 253: SCM_MAX_FD)
 *   [44]      0, or the receiver has room for [44] - 1 more fds
 *   [45..]    one kind byte per fd (see make_fd(); fewer than fds: they
 *             repeat, none: /dev/null), then the XOR image for forged
 *             memory
 *
 * tests/fuzz/gen_corpus.py writes seeds in this format (corpus-recv/).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aiop.h"
#include "internal.h"
#include "share_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define F_OUR_DOMAIN 0x01 /* wire.domain_id ^= this process's */
#define F_LEN 0x02        /* the message length from the input */
#define F_OUR_NBELLS 0x04 /* wire.nbells = this domain's */
#define F_DGRAM 0x08      /* SOCK_DGRAM, not SOCK_SEQPACKET */
#define F_CLOSE 0x10      /* the sender closes after sending */
#define F_JOIN 0x20       /* received by a process with no domain */
#define F_PASSCRED 0x40   /* the receiver: SO_PASSCRED, SO_PASSPIDFD */
#define F_NOMSG 0x80      /* nothing is sent */
#define OFF_WIRE 2
#define OFF_LEN 42
#define OFF_NFD 43
#define OFF_ROOM 44
#define OFF_KINDS 45

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#define SCM_MAX_FD 253 /* the kernel's most fds in one message */

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
static int g_zygote = -1;  /* the control socket to the zygote */
static unsigned g_join_every = 8, g_join_n;
static bool g_verbose;

static _Noreturn void
die(const char *what)
{
	fprintf(stderr, "fuzz_recv: %s\n", what);
	abort();
}

/* The open fds; open[fd] for those below nopen (the directory's own is
 * not one) */
static int
fd_scan(bool *open, int nopen)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		die("no /proc/self/fd");
	if (open)
		memset(open, 0, (size_t)nopen);
	while ((e = readdir(d))) {
		int fd;

		if (e->d_name[0] == '.')
			continue;
		fd = atoi(e->d_name);
		if (fd == dirfd(d))
			continue;
		n++;
		if (open && fd < nopen)
			open[fd] = true;
	}
	closedir(d);
	return n;
}

static int
fd_count(void)
{
	return fd_scan(NULL, 0);
}

/* Mappings of memfds (objects, domains, forged ones) in /proc/self/maps */
static int
memfd_maps(void)
{
	static char buf[1 << 16];
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC), n = 0;
	size_t keep = 0;
	ssize_t r;

	if (fd < 0)
		die("no /proc/self/maps");
	/* count "/memfd:" across reads: keep a tail that could hold a
	 * prefix of it */
	while ((r = read(fd, buf + keep, sizeof(buf) - 1 - keep)) > 0) {
		char *p = buf;
		size_t len = keep + (size_t)r;

		buf[len] = '\0';
		while ((p = strstr(p, "/memfd:"))) {
			n++;
			p += 7;
		}
		keep = len < 6 ? len : 6;
		memmove(buf, buf + len - keep, keep);
	}
	close(fd);
	if (r < 0)
		die("read /proc/self/maps");
	return n;
}

/*
 * Live mappings of files, counted at every mmap() and munmap() of the
 * library and this file (linked with -Wl,--wrap for mmap, mmap64 (what
 * mmap is with _FILE_OFFSET_BITS=64) and munmap, see meson.build):
 * reading /proc/self/maps per input would cost most of its time. Every
 * mapping aiop makes is of a whole memfd and is unmapped whole, so a table
 * of start addresses is enough.
 */
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off);
void *__real_mmap64(void *addr, size_t len, int prot, int flags, int fd,
		    off_t off);
int __real_munmap(void *addr, size_t len);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off);
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd,
		    off_t off);
int __wrap_munmap(void *addr, size_t len);

static void *g_maps[1024];
static int g_nmaps;

static void *
mapped(void *p, int flags, int fd)
{
	if (p != MAP_FAILED && fd >= 0 && !(flags & MAP_ANONYMOUS)) {
		if (g_nmaps == (int)(sizeof(g_maps) / sizeof(g_maps[0])))
			die("too many mappings");
		g_maps[g_nmaps++] = p;
	}
	return p;
}

void *
__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mapped(__real_mmap(addr, len, prot, flags, fd, off), flags,
		      fd);
}

void *
__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd,
	      off_t off)
{
	return mapped(__real_mmap64(addr, len, prot, flags, fd, off), flags,
		      fd);
}

int
__wrap_munmap(void *addr, size_t len)
{
	for (int i = 0; i < g_nmaps; i++)
		if (g_maps[i] == addr) {
			g_maps[i] = g_maps[--g_nmaps];
			break;
		}
	return __real_munmap(addr, len);
}

/* Leave room for only `room` more fds: RLIMIT_NOFILE at the free fd
 * number that has `room` free ones below it (fds are taken lowest first);
 * *old is what to restore. room < 0: no change. */
static void
limit_fds(int room, struct rlimit *old)
{
	static bool open[1024];
	struct rlimit r;
	int fd, nfree = 0;

	if (getrlimit(RLIMIT_NOFILE, old) < 0)
		die("getrlimit");
	if (room < 0)
		return;
	(void)fd_scan(open, (int)sizeof(open));
	for (fd = 0; fd < (int)sizeof(open); fd++)
		if (!open[fd] && nfree++ == room)
			break;
	r = *old;
	r.rlim_cur = (rlim_t)fd;
	if (r.rlim_cur < old->rlim_cur && setrlimit(RLIMIT_NOFILE, &r) < 0)
		die("setrlimit");
}

static void
unlimit_fds(const struct rlimit *old)
{
	if (setrlimit(RLIMIT_NOFILE, old) < 0)
		die("setrlimit back");
}

static _Noreturn void zygote(int ctl);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct aiop_queue_attr qa = {.capacity = 4096};
	const char *s = getenv("AIOP_FUZZ_JOIN_EVERY");
	int ctl[2];
	pid_t pid;

	(void)argc;
	(void)argv;
	g_verbose = getenv("AIOP_FUZZ_VERBOSE") != NULL;
	if (s && atoi(s) > 0)
		g_join_every = (unsigned)atoi(s);
	/* the zygote first: its children must have no domain */
	if (aiop__dom.shm)
		die("a domain before the first object");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0)
		die("socketpair");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(ctl[0]);
		zygote(ctl[1]);
	}
	close(ctl[1]);
	g_zygote = ctl[0];
	/* 8 doorbells, not 64: a message of 10 fds, not 66, and a check of
	 * each doorbell is two /proc lookups (seeds are made for 8) */
	setenv("AIOP_DOORBELLS", "8", 1);
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

/* The real fd that position idx of a message for receiver recv holds */
static int
real_fd(int idx, int recv)
{
	static const int obj_of[8] = {0, 1, 2, 3, 4, 6, 7, 7};

	if (idx == 0)
		return g_objs[obj_of[recv]]->fd;
	if (idx == 1 && recv == 4)
		return g_objs[5]->fd;
	return aiop__dom.fd;
}

/* The memory of what position idx should hold, for a forged copy */
static void
base_of(int idx, int recv, const void **base, size_t *size)
{
	static const int obj_of[8] = {0, 1, 2, 3, 4, 6, 7, 7};
	const struct aiop__obj *b = idx == 0 ? g_objs[obj_of[recv]]
				    : idx == 1 && recv == 4 ? g_objs[5]
							     : NULL;

	*base = b ? (const void *)b->shm : (const void *)aiop__dom.shm;
	*size = b ? b->size : aiop__domain_shm_size();
}

/* fd opened again through /proc (a new open file description) */
static int
reopen(int fd, int flags)
{
	char path[40];
	int r;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = open(path, flags | O_CLOEXEC);
	if (r < 0)
		die("reopen");
	return r;
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
	const void *base;
	size_t bsize;
	int fd, pp[2];

	*own = true;
	switch (k & 15) {
	case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7:
		*own = false;
		return g_objs[k & 7]->fd;
	case 8:
		*own = false;
		return aiop__dom.fd;
	case 9:
		*own = false;
		return aiop__dom.efd[hi % (unsigned)aiop__dom.nbells];
	case 10:
		/* based on what this position should hold */
		base_of(idx, recv, &base, &bsize);
		return forged(base, bsize, img, ilen, hi);
	case 11:
		if (pipe2(pp, O_CLOEXEC | (hi & 1 ? O_NONBLOCK : 0)) < 0)
			die("pipe");
		close(pp[hi & 2 ? 0 : 1]);
		return pp[hi & 2 ? 1 : 0];
	case 12: {
		/* hi: 1 non-blocking, 2 semaphore mode, 4 a count of 1 */
		uint64_t one = 1;

		fd = eventfd(0, EFD_CLOEXEC | (hi & 1 ? EFD_NONBLOCK : 0) |
					(hi & 2 ? EFD_SEMAPHORE : 0));
		if (fd < 0)
			die("eventfd");
		if ((hi & 4) && write(fd, &one, sizeof(one)) != sizeof(one))
			die("eventfd write");
		return fd;
	}
	case 13:
		fd = open("/dev/null", O_RDWR | O_CLOEXEC |
					       (hi & 1 ? O_NONBLOCK : 0));
		if (fd < 0)
			die("/dev/null");
		return fd;
	case 14:
		fd = socket(AF_UNIX, (hi & 1 ? SOCK_SEQPACKET : SOCK_DGRAM) |
					     SOCK_CLOEXEC | SOCK_NONBLOCK,
			    0);
		if (fd < 0)
			die("socket");
		return fd;
	default:
		switch (hi & 3) {
		case 0: /* what belongs here, O_PATH: no seals to read */
			return reopen(real_fd(idx, recv), O_PATH);
		case 1: /* read-only: sealed right, but cannot be mapped
			 * for writing */
			return reopen(real_fd(idx, recv), O_RDONLY);
		case 2: { /* a regular file of the right size, no seals */
			base_of(idx, recv, &base, &bsize);
			fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC,
				  0600);
			if (fd < 0)
				fd = memfd_create("noseal", MFD_CLOEXEC);
			if (fd < 0 || ftruncate(fd, (off_t)bsize) < 0 ||
			    pwrite(fd, base, bsize, 0) != (ssize_t)bsize)
				die("tmpfile");
			return fd;
		}
		default: /* an anon inode that never blocks, not an
			 * eventfd */
			fd = timerfd_create(CLOCK_MONOTONIC,
					    TFD_NONBLOCK | TFD_CLOEXEC);
			if (fd < 0)
				die("timerfd");
			return fd;
		}
	}
}

/* One message of len bytes carrying nfd fds (one SCM_RIGHTS) */
static void
send_msg(int sock, const void *buf, size_t len, const int *fds, int nfd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * SCM_MAX_FD)];
		struct cmsghdr align;
	} cb;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	if (nfd > 0) {
		memset(&cb, 0, sizeof(cb));
		msg.msg_control = cb.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfd);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfd);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfd);
	}
	if (sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		perror("sendmsg");
		die("sendmsg");
	}
}

/* Receive on s with receiver r; use and free what came. The result. */
static int
recv_obj(int s, int r)
{
	void *h = NULL;
	int res;

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

/* What the receiver was sent, to judge its result */
struct sent {
	uint8_t recv;    /* receiver, 0..7 */
	uint8_t flags;   /* F_* */
	int16_t room;    /* fds the receiver has room for; -1 any */
	uint16_t len;    /* message bytes */
	uint16_t nfd;    /* fds attached */
	struct aiop__wire w; /* the header as sent (if len >= 40) */
};

/* A documented result for what was sent: nothing sent, only -EAGAIN (or
 * -EPIPE for a closed SEQPACKET peer); an empty message -EBADMSG (or
 * -EPIPE when its peer closed too: recvmsg() cannot tell them apart). */
static void
check_result(const struct sent *s, int res)
{
	bool seq = !(s->flags & F_DGRAM);
	bool hup = seq && (s->flags & F_CLOSE);
	/* no fd can have come: none sent, or none had room */
	bool nofd = s->nfd == 0 || s->room == 0;
	int want = 0;

	if (s->flags & F_NOMSG)
		want = hup ? -EPIPE : -EAGAIN;
	else if (s->len == 0 && s->nfd == 0)
		want = hup ? -EPIPE : -EBADMSG;
	if (want) {
		if (res == want)
			return;
		fprintf(stderr, "result %d, wanted %d\n", res, want);
		die("a wrong result");
	}
	/* only a whole message carrying exactly the fds it announces */
	if (res == 0 && (s->len != sizeof(s->w) ||
			 s->nfd != s->w.nobj + 1 + s->w.nbells))
		die("a message of another shape received");
	switch (res) {
	case 0: case -EBADMSG: case -EPROTO: case -EXDEV: case -EMFILE:
		return;
	case -EPIPE:
		if (hup && s->len == 0 && nofd)
			return;
		break;
	default:
		break;
	}
	fprintf(stderr, "result %d\n", res);
	die("an undocumented result");
}

/* ---- joining: a process with no domain receives ----------------------- */

/* The doorbell rule, checked here on its own (fcntl, /proc names): a
 * non-blocking eventfd not in semaphore mode */
static bool
sound_doorbell(int fd)
{
	char path[48], buf[512];
	ssize_t n;
	int fl = fcntl(fd, F_GETFL), f;
	const char *p;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (fl < 0 || !(fl & O_NONBLOCK) || n < 0)
		return false;
	buf[n] = '\0';
	if (strcmp(buf, "anon_inode:[eventfd]") != 0)
		return false;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return false;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n < 0)
		return false;
	buf[n] = '\0';
	p = strstr(buf, "eventfd-semaphore:");
	return !p || strtol(p + strlen("eventfd-semaphore:"), NULL, 10) == 0;
}

/* A memfd sealed as design.md 10 says, of this size */
static bool
sound_memfd(int fd, size_t size)
{
	int seals = fcntl(fd, F_GET_SEALS);
	struct stat st;

	return seals >= 0 && (seals & SEALED) == SEALED &&
	       !(seals & F_SEAL_WRITE) && fstat(fd, &st) == 0 &&
	       S_ISREG(st.st_mode) && (size_t)st.st_size == size;
}

/* In a child of the zygote: receive on sock what s describes, and check
 * that it joined exactly when the receive succeeded */
static _Noreturn void
join_child(int sock, const struct sent *s)
{
	int before, maps, nmaps, res, saved, r, b;
	struct rlimit old;
	bool joined;

	alarm(10); /* receives take no time; a hang dies */
	if (aiop__domain_joined(0, &r) || aiop__dom.shm)
		die("join child: a domain before receiving");
	if (s->flags & F_PASSCRED) {
		int one = 1;

		(void)setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &one,
				 sizeof(one));
		(void)setsockopt(sock, SOL_SOCKET, SO_PASSPIDFD, &one,
				 sizeof(one));
	}
	before = fd_count();
	maps = memfd_maps();
	nmaps = g_nmaps;
	limit_fds(s->room, &old);
	saved = errno = 12345;
	res = recv_obj(sock, s->recv);
	if (errno != saved)
		die("join child: errno changed");
	unlimit_fds(&old);
	if (g_verbose)
		fprintf(stderr, "fuzz_recv: joining, receiver %d, %d fds: "
				"%d\n", s->recv, s->nfd, res);
	check_result(s, res);
	joined = aiop__domain_joined(s->w.domain_id, &r);
	if (res == 0 && (!joined || r != 1 || !aiop__dom.shm ||
			 aiop__dom.id != s->w.domain_id ||
			 aiop__dom.nbells != s->w.nbells))
		die("join child: received, but not in its domain");
	if (res != 0 && (aiop__domain_joined(0, &r) || aiop__dom.shm))
		die("join child: refused, but joined");
	if (res == 0) {
		/* what was joined is what design.md 10 allows, and works: a
		 * doorbell can be claimed, rung and given back */
		uint64_t one = 1;

		for (int i = 0; i < aiop__dom.nbells; i++)
			if (!sound_doorbell(aiop__dom.efd[i]))
				die("join child: joined with a bad doorbell");
		if (!sound_memfd(aiop__dom.fd, aiop__domain_shm_size()))
			die("join child: joined a bad domain memfd");

		b = aiop__bell_claim();
		if (b < 0 || b >= aiop__dom.nbells)
			die("join child: no doorbell");
		if (write(aiop__dom.efd[b], &one, sizeof(one)) != sizeof(one))
			die("join child: doorbell write");
		aiop__bell_release(b);
	}
	if (fd_count() != before + (res == 0 ? 1 + aiop__dom.nbells : 0))
		die("join child: fds leaked");
	if (memfd_maps() != maps + (res == 0) ||
	    g_nmaps != nmaps + (res == 0))
		die("join child: mappings leaked");
	_exit(0);
}

/* Forked before this process had a domain: for each request (a struct
 * sent and the receiving socket), a child receives; the reply is its wait
 * status. Ends when the fuzzer closes the control socket. */
static _Noreturn void
zygote(int ctl)
{
	for (;;) {
		union aiop__cmsg_buf cb;
		struct sent s;
		struct iovec iov = {.iov_base = &s, .iov_len = sizeof(s)};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cb.buf,
				     .msg_controllen = sizeof(cb.buf)};
		struct cmsghdr *c;
		int sock = -1, status;
		ssize_t n = recvmsg(ctl, &msg, MSG_CMSG_CLOEXEC);
		pid_t pid;

		if (n < 0 && errno == EINTR)
			continue;
		if (n != sizeof(s))
			_exit(0); /* the fuzzer is gone */
		c = CMSG_FIRSTHDR(&msg);
		if (c && c->cmsg_type == SCM_RIGHTS)
			memcpy(&sock, CMSG_DATA(c), sizeof(sock));
		if (sock < 0)
			_exit(1);
		pid = fork();
		if (pid == 0) {
			close(ctl);
			join_child(sock, &s);
		}
		close(sock);
		status = -1;
		while (pid > 0 && waitpid(pid, &status, 0) < 0 &&
		       errno == EINTR)
			;
		if (send(ctl, &status, sizeof(status), MSG_NOSIGNAL) < 0)
			_exit(0);
	}
}

/* Have a process with no domain receive on sock; it must pass */
static void
join_in_child(int sock, const struct sent *s)
{
	union aiop__cmsg_buf cb;
	struct iovec iov = {.iov_base = (void *)s, .iov_len = sizeof(*s)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct pollfd p = {.fd = g_zygote, .events = POLLIN};
	ssize_t n;
	int status;

	aiop__msg_fds(&msg, &cb, &sock, 1);
	while ((n = sendmsg(g_zygote, &msg, MSG_NOSIGNAL)) < 0 &&
	       errno == EINTR)
		;
	if (n != sizeof(*s))
		die("zygote gone");
	/* EINTR: libFuzzer's -timeout alarm ticks every second */
	do
		n = poll(&p, 1, 15000);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		do
			n = recv(g_zygote, &status, sizeof(status), 0);
		while (n < 0 && errno == EINTR);
	if (n != sizeof(status))
		die("zygote: no answer");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "fuzz_recv: join child status %#x\n",
			status);
		die("join child failed");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds[SCM_MAX_FD], sv[2], before, maps, res, saved, nk;
	bool own[SCM_MAX_FD];
	unsigned char msg[256] = {0};
	struct aiop__domain d;
	struct rlimit old;
	struct sent s;
	const uint8_t *img;
	size_t ilen;

	if (size < OFF_KINDS)
		return 0;
	memset(&s, 0, sizeof(s));
	s.recv = data[0] % 8;
	s.flags = data[1];
	memcpy(&s.w, data + OFF_WIRE, sizeof(s.w));
	if (s.flags & F_OUR_DOMAIN) /* an input of 0 gives this domain */
		s.w.domain_id ^= aiop__dom.id;
	if (s.flags & F_OUR_NBELLS)
		s.w.nbells = (uint16_t)aiop__dom.nbells;
	s.len = s.flags & F_LEN ? data[OFF_LEN] : sizeof(s.w);
	s.nfd = data[OFF_NFD] < SCM_MAX_FD ? data[OFF_NFD] : SCM_MAX_FD;
	s.room = data[OFF_ROOM] ? (int16_t)(data[OFF_ROOM] - 1) : -1;
	if (s.flags & F_NOMSG)
		s.len = s.nfd = 0;
	nk = (int)(size - OFF_KINDS) < s.nfd ? (int)(size - OFF_KINDS)
					      : s.nfd;
	img = data + OFF_KINDS + nk;
	ilen = size - OFF_KINDS - (size_t)nk;
	memcpy(msg, &s.w, sizeof(s.w));

	before = fd_count();
	maps = g_nmaps;
	if (socketpair(AF_UNIX, (s.flags & F_DGRAM ? SOCK_DGRAM
						  : SOCK_SEQPACKET) |
					SOCK_CLOEXEC,
		       0, sv) < 0)
		die("socketpair");
	if (s.flags & F_PASSCRED) {
		int one = 1;

		(void)setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one,
				 sizeof(one));
		(void)setsockopt(sv[1], SOL_SOCKET, SO_PASSPIDFD, &one,
				 sizeof(one));
	}
	for (int i = 0; i < s.nfd; i++)
		fds[i] = make_fd(nk ? data[OFF_KINDS + i % nk] : 13, i,
				 s.recv, img, ilen, &own[i]);
	if (!(s.flags & F_NOMSG))
		send_msg(sv[0], msg, s.len, fds, s.nfd);
	if (s.flags & F_CLOSE) {
		close(sv[0]);
		sv[0] = -1;
	}

	if ((s.flags & F_JOIN) && g_join_n++ % g_join_every == 0) {
		join_in_child(sv[1], &s);
	} else {
		limit_fds(s.room, &old);
		saved = errno = 12345;
		res = recv_obj(sv[1], s.recv);
		if (errno != saved)
			die("errno changed");
		unlimit_fds(&old);
		if (g_verbose)
			fprintf(stderr, "fuzz_recv: receiver %d, %d fds: %d\n",
				s.recv, s.nfd, res);
		check_result(&s, res);
	}

	/* the join check over the same fds (objects first, as sent) */
	{
		int first = s.w.nobj == 2 ? 2 : 1;

		if (s.w.nbells >= 1 && s.w.nbells <= AIOP__DOORBELLS_MAX &&
		    s.nfd >= first + 1 + s.w.nbells && s.w.domain_id != 0 &&
		    aiop__share_domain_check(&s.w, fds + first, &d) == 0)
			munmap(d.shm, aiop__domain_shm_size());
	}
	for (int i = 0; i < s.nfd; i++)
		if (own[i])
			close(fds[i]);
	if (sv[0] >= 0)
		close(sv[0]);
	close(sv[1]);
	if (fd_count() != before)
		die("fds leaked");
	if (g_nmaps != maps)
		die("mappings leaked");
	return 0;
}
