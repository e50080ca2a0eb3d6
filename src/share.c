/* SPDX-License-Identifier: MIT */
/*
 * Sending an object to an unrelated process over an AF_UNIX socket, and
 * receiving one. The receiver checks every fd, size, seal and header it is
 * given before it maps or trusts it, and joins the sender's domain only
 * once all of it passed (docs/design.md 10).
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "share_wire.h"

#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif

#define SEALS_NEEDED (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#ifdef F_SEAL_FUTURE_WRITE
#define SEALS_WRITE (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)
#else
#define SEALS_WRITE F_SEAL_WRITE
#endif

/* An AF_UNIX socket that keeps message boundaries, or -EPROTOTYPE;
 * -ENOTSOCK, -EBADF as getsockopt says. */
static int
check_socket(int sock)
{
	socklen_t len = sizeof(int);
	int v;

	if (getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0)
		return -errno;
	if (v != AF_UNIX)
		return -EPROTOTYPE;
	len = sizeof(int);
	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &v, &len) < 0)
		return -errno;
	return v == SOCK_SEQPACKET || v == SOCK_DGRAM ? 0 : -EPROTOTYPE;
}

static int
deadline_of(int64_t timeout_ns, uint64_t *deadline)
{
	if (timeout_ns < 0 && timeout_ns != AIOP_FOREVER)
		return -EINVAL;
	*deadline = timeout_ns == AIOP_FOREVER
			    ? UINT64_MAX
			    : aiop__now_ns() + (uint64_t)timeout_ns;
	return 0;
}

/* Wait until sock reports events (or an error or hang-up, which the next
 * call then returns) before the absolute deadline (UINT64_MAX: none). */
static int
wait_ready(int sock, short events, uint64_t deadline)
{
	struct pollfd p = {.fd = sock, .events = events};

	for (;;) {
		struct timespec ts, *tp = NULL;
		int n;

		if (deadline != UINT64_MAX) {
			uint64_t now = aiop__now_ns();

			if (now >= deadline)
				return -ETIMEDOUT;
			ts.tv_sec = (time_t)((deadline - now) / 1000000000u);
			ts.tv_nsec = (long)((deadline - now) % 1000000000u);
			tp = &ts;
		}
		n = ppoll(&p, 1, tp, NULL);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/*
 * sendmsg (out) or recvmsg without blocking, waiting for the socket in
 * between up to the deadline: the byte count, or -errno. ECONNRESET is
 * a SEQPACKET peer's close with data of ours unread, reported once,
 * ahead of anything still queued for us: a receive goes on (what the
 * peer sent before it closed comes next, then the end: -EPIPE), a send
 * says -EPIPE (the peer is gone, as the docs' table has it), as it does
 * for the ECONNREFUSED of a DGRAM socket whose peer has gone.
 */
static ssize_t
sock_io(int sock, bool out, struct msghdr *msg, int64_t timeout_ns,
	uint64_t deadline)
{
	bool reset = false;

	for (;;) {
		ssize_t n = out ? sendmsg(sock, msg,
					  MSG_DONTWAIT | MSG_NOSIGNAL)
				: recvmsg(sock, msg,
					  MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		int r;

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if ((errno == ECONNRESET || errno == ECONNREFUSED) && out)
			return -EPIPE; /* ECONNREFUSED: a DGRAM peer gone */
		if (errno == ECONNRESET && !reset) {
			reset = true; /* once: the error is cleared by now */
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (timeout_ns == 0)
			return -EAGAIN;
		r = wait_ready(sock, out ? POLLOUT : POLLIN, deadline);
		if (r < 0)
			return r;
	}
}

/* ---- sending ------------------------------------------------------------- */

static int
share_send(int sock, struct aiop__obj *o, unsigned type, uint16_t flags,
	   struct aiop__obj *o2, int64_t timeout_ns)
{
	struct aiop__wire w = {0};
	union aiop__cmsg_buf cb;
	struct iovec iov = {.iov_base = &w, .iov_len = sizeof(w)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	int fds[AIOP__WIRE_FDS_MAX], nfd = 0, r;
	uint64_t deadline;

	if ((r = aiop__obj_check(o, type)) < 0 ||
	    (o2 && (r = aiop__obj_check(o2, o2->type)) < 0) ||
	    (r = deadline_of(timeout_ns, &deadline)) < 0 ||
	    (r = check_socket(sock)) < 0)
		return r;
	/* an object is in the domain of this process; a header that says
	 * otherwise was overwritten, and the receiver would refuse it */
	if (atomic_load(&o->shm->domain_id) != aiop__dom.id ||
	    (o2 && atomic_load(&o2->shm->domain_id) != aiop__dom.id))
		return -EPROTO;
	w.magic = AIOP__WIRE_MAGIC;
	w.abi = AIOP__ABI;
	w.type = (uint16_t)type;
	w.sub = o2 ? o2->type : 0;
	w.flags = flags;
	w.nobj = o2 ? 2 : 1;
	w.nbells = (uint16_t)aiop__dom.nbells;
	w.domain_id = aiop__dom.id;
	w.size[0] = o->size;
	w.size[1] = o2 ? o2->size : 0;
	fds[nfd++] = o->fd;
	if (o2)
		fds[nfd++] = o2->fd;
	fds[nfd++] = aiop__dom.fd;
	for (int i = 0; i < aiop__dom.nbells; i++)
		fds[nfd++] = aiop__dom.efd[i];
	aiop__msg_fds(&msg, &cb, fds, nfd);
	r = (int)sock_io(sock, true, &msg, timeout_ns, deadline);
	return r < 0 ? r : 0;
}

int
aiop__share_send(int sock, struct aiop__obj *o, unsigned type,
		 uint16_t flags, struct aiop__obj *o2, int64_t timeout_ns)
{
	AIOP__SAVE_ERRNO(return share_send(sock, o, type, flags, o2,
					   timeout_ns));
}

/* ---- receiving ----------------------------------------------------------- */

/*
 * Check a received memfd before mapping it, then its header after: a
 * regular file of this user, sealed against shrinking, growing and new
 * seals, not against writing, exactly `size` bytes (page-aligned, at most
 * max), and a header of `type` that says the same size and domain.
 */
static int
map_checked(int fd, unsigned type, uint64_t size, uint64_t max,
	    uint64_t domain_id, void **out)
{
	struct aiop__shm_hdr *h;
	struct stat st;
	int seals;
	void *p;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid())
		return -EPROTO;
	if (size == 0 || size > max || size != aiop__page_round(size) ||
	    (uint64_t)st.st_size != size)
		return -EPROTO;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & SEALS_NEEDED) != SEALS_NEEDED ||
	    (seals & SEALS_WRITE))
		return -EPROTO;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return errno == ENOMEM ? -ENOMEM : -EPROTO;
	h = p;
	if (atomic_load(&h->ident) != AIOP__IDENT(type) ||
	    atomic_load(&h->size) != size ||
	    atomic_load(&h->domain_id) != domain_id) {
		munmap(p, size);
		return -EPROTO;
	}
	*out = p;
	return 0;
}

/*
 * An eventfd made with EFD_SEMAPHORE, as its fdinfo says (Linux 6.3 and
 * later print the mode; older kernels: none can be told, none refused).
 * The whole file is read, line by line: the kernel prints the file's locks
 * (a line each) before the eventfd's lines, and a flock() or OFD lock
 * belongs to the open file description, so the sender's locks are listed
 * here too (found by review: 20 of them pushed the mode past the 512 bytes
 * read, and a semaphore-mode doorbell was taken). The sender pays a
 * syscall and kernel memory for each line we read.
 */
static bool
is_semaphore_mode(int fd)
{
	static const char key[] = "eventfd-semaphore:";
	char path[40], buf[512], *line, *nl;
	size_t have = 0;
	ssize_t n;
	int f, r = -1;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return true; /* fd/ was readable: refuse what we cannot see */
	while (r < 0) {
		n = read(f, buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* end of file: no such line (an older kernel),
			 * unless the last one lacks its newline */
			buf[have] = '\0';
			r = n < 0 || (strncmp(buf, key, sizeof(key) - 1) == 0 &&
				      strtol(buf + sizeof(key) - 1, NULL, 10));
			break;
		}
		have += (size_t)n;
		buf[have] = '\0';
		for (line = buf; r < 0 && (nl = strchr(line, '\n'));
		     line = nl + 1) {
			*nl = '\0';
			if (strncmp(line, key, sizeof(key) - 1) == 0)
				r = strtol(line + sizeof(key) - 1, NULL,
					   10) != 0;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (r < 0 && have == sizeof(buf) - 1)
			r = 1; /* a line longer than any the kernel prints */
	}
	close(f);
	return r != 0;
}

/*
 * A doorbell: an eventfd (as /proc names it) that never blocks a write and
 * is not in semaphore mode. A semaphore-mode read takes one from the count
 * and leaves it readable: one write of 2^64 - 2 by the sender would make
 * the loop that claims it run a pass on every iteration, for good.
 */
static bool
is_doorbell(int fd)
{
	char path[40], link[32];
	int fl = fcntl(fd, F_GETFL);
	ssize_t n;

	if (fl < 0 || !(fl & O_NONBLOCK))
		return false;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	return strcmp(link, "anon_inode:[eventfd]") == 0 &&
	       !is_semaphore_mode(fd);
}

/* Check the received domain (its memfd, then every doorbell) into d;
 * fds[0] is its memfd, then w->nbells doorbells. The fds stay open. */
int
aiop__share_domain_check(const struct aiop__wire *w, const int *fds,
			 struct aiop__domain *d)
{
	size_t size = aiop__domain_shm_size();
	void *map;
	int r;

	r = map_checked(fds[0], AIOP__T_DOMAIN, size, size, w->domain_id,
			&map);
	if (r < 0)
		return r;
	memset(d, 0, sizeof(*d));
	d->shm = map;
	d->id = w->domain_id;
	d->nbells = w->nbells;
	d->fd = fds[0];
	if (aiop__domain_shm_nbells(d) != w->nbells)
		goto refused;
	for (int i = 0; i < w->nbells; i++) {
		if (!is_doorbell(fds[1 + i]))
			goto refused;
		d->efd[i] = fds[1 + i];
	}
	return 0;
refused:
	munmap(map, size);
	return -EPROTO;
}

/* 0 joined; 1 already in it (the fds stay the caller's); < 0 refused */
static int
domain_take(const struct aiop__wire *w, const int *fds)
{
	struct aiop__domain d;
	int r;

	/* in it already: nothing to check (the fds are not used) */
	if (aiop__domain_joined(w->domain_id, &r))
		return r;
	if ((r = aiop__share_domain_check(w, fds, &d)) < 0)
		return r;
	r = aiop__domain_join(&d);
	if (r != 0)
		munmap(d.shm, aiop__domain_shm_size());
	return r;
}

/* The header against what this call expects; the second object's type */
static int
wire_checked(const struct aiop__wire *w, int nfd,
	     const struct aiop__share_type *t,
	     const struct aiop__share_type *const *t2,
	     const struct aiop__share_type **t2_out)
{
	*t2_out = NULL;
	if (w->magic != AIOP__WIRE_MAGIC)
		return -EBADMSG;
	if (w->abi != AIOP__ABI)
		return -EPROTO;
	if (w->type != t->type || w->flags != t->flags ||
	    w->nobj != (t2 ? 2 : 1) || w->nbells < 1 ||
	    w->nbells > AIOP__DOORBELLS_MAX ||
	    nfd != w->nobj + 1 + w->nbells || w->domain_id == 0)
		return -EBADMSG;
	if (!t2)
		return w->sub == 0 && w->size[1] == 0 ? 0 : -EBADMSG;
	for (; *t2; t2++)
		if ((*t2)->type == w->sub && (*t2)->flags == 0)
			*t2_out = *t2;
	return *t2_out ? 0 : -EBADMSG;
}

/* Map, check and attach object i of the message; it then owns its fd */
static int
object_take(const struct aiop__wire *w, int i,
	    const struct aiop__share_type *t, int fd, struct aiop__obj **out)
{
	uint64_t max = aiop__page_round(t->max_size);
	struct aiop__obj *o;
	void *map;
	int r;

	r = map_checked(fd, t->type, w->size[i], max, w->domain_id, &map);
	if (r < 0)
		return r;
	o = calloc(1, t->handle_size);
	if (!o) {
		munmap(map, w->size[i]);
		return -ENOMEM;
	}
	aiop__obj_init(o, t->type, map, w->size[i], fd);
	r = t->attach ? t->attach(o) : (w->size[i] == max ? 0 : -EPROTO);
	if (r < 0) {
		munmap(map, w->size[i]);
		free(o);
		return r;
	}
	*out = o;
	return 0;
}

/*
 * Did recvmsg() return 0 for the peer's close, or for an empty message (a
 * datagram, or a SEQPACKET record: other traffic, consumed)? A closed (or
 * shut down) peer may have queued records after the empty one, the object
 * it sent before closing among them: a peek that finds a record (bytes,
 * or fds it leaves in the queue: MSG_CTRUNC) says the 0 was a record, and
 * -EPIPE would make a caller give up that object (found by review). An
 * empty record behind ours is not told from the end: it reads -EPIPE.
 */
static bool
peer_closed(int sock)
{
	struct pollfd p = {.fd = sock, .events = POLLIN | POLLRDHUP};
	char c;
	struct iovec iov = {.iov_base = &c, .iov_len = 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	while (poll(&p, 1, 0) < 0)
		if (errno != EINTR)
			return true;
	if (!(p.revents & (POLLRDHUP | POLLHUP)))
		return false;
	do
		n = recvmsg(sock, &m, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	return !(n > 0 || (n == 0 && (m.msg_flags & MSG_CTRUNC)));
}

/* Receive one message: its header into w, its fds into fds (*nfd). */
static int
recv_one(int sock, struct aiop__wire *w, int *fds, int *nfd,
	 int64_t timeout_ns, uint64_t deadline)
{
	union aiop__cmsg_buf cb;
	struct iovec iov = {.iov_base = w, .iov_len = sizeof(*w)};
	struct msghdr msg;
	struct cmsghdr *c;
	size_t extra;
	ssize_t n;

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cb.buf;
	msg.msg_controllen = sizeof(cb.buf);
	n = sock_io(sock, false, &msg, timeout_ns, deadline);
	if (n < 0)
		return (int)n;
	/* every fd that arrived is collected (and closed by the caller on
	 * any failure) before anything is judged; those past the most a
	 * message carries are closed here, and counted: a message with more
	 * fds than it announces is refused even when it announces the most */
	*nfd = 0;
	extra = 0;
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		size_t k;

		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_PIDFD &&
		    c->cmsg_len >= CMSG_LEN(sizeof(int))) {
			int fd; /* SO_PASSPIDFD on the user's socket: the
				 * message is ours, so is its pidfd */

			memcpy(&fd, CMSG_DATA(c), sizeof(fd));
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (*nfd < AIOP__WIRE_FDS_MAX) {
				fds[(*nfd)++] = fd;
			} else {
				close(fd);
				extra++;
			}
		}
	}
	if (n == 0 && *nfd == 0) /* the peer closed, or sent nothing */
		return peer_closed(sock) ? -EPIPE : -EBADMSG;
	if ((size_t)n != sizeof(*w) || (msg.msg_flags & MSG_TRUNC) || extra)
		return -EBADMSG;
	if (msg.msg_flags & MSG_CTRUNC)
		return w->magic == AIOP__WIRE_MAGIC &&
				       *nfd < w->nobj + 1 + w->nbells &&
				       w->nobj + 1 + w->nbells <=
					       AIOP__WIRE_FDS_MAX
			       ? -EMFILE
			       : -EBADMSG;
	return 0;
}

static int
share_recv(int sock, const struct aiop__share_type *t,
	   const struct aiop__share_type *const *t2, void **out,
	   void **out2, int64_t timeout_ns)
{
	const struct aiop__share_type *tb;
	struct aiop__obj *h[AIOP__WIRE_OBJS_MAX] = {NULL, NULL};
	int fds[AIOP__WIRE_FDS_MAX], nfd = 0, r, i;
	struct aiop__wire w;
	uint64_t deadline;

	if (!out || (t2 && !out2))
		return -EINVAL;
	*out = NULL;
	if (out2)
		*out2 = NULL;
	if ((r = deadline_of(timeout_ns, &deadline)) < 0 ||
	    (r = check_socket(sock)) < 0)
		return r;
	memset(&w, 0, sizeof(w));
	r = recv_one(sock, &w, fds, &nfd, timeout_ns, deadline);
	if (r < 0)
		goto out;
	if ((r = wire_checked(&w, nfd, t, t2, &tb)) < 0)
		goto out;
	for (i = 0; i < w.nobj && r == 0; i++) {
		r = object_take(&w, i, i ? tb : t, fds[i], &h[i]);
		if (r == 0)
			fds[i] = -1; /* the handle's now */
	}
	if (r < 0)
		goto out;
	r = domain_take(&w, fds + w.nobj);
	if (r == 0) /* joined: the domain's fds are its own now */
		for (i = w.nobj; i < nfd; i++)
			fds[i] = -1;
	if (r < 0)
		goto out;
	r = 0;
	for (i = 0; i < w.nobj; i++)
		h[i]->hmagic = AIOP__HANDLE_MAGIC;
	*out = h[0];
	if (out2)
		*out2 = h[1];
	h[0] = h[1] = NULL;
out:
	for (i = 0; i < nfd; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (i = 0; i < AIOP__WIRE_OBJS_MAX; i++)
		if (h[i])
			aiop__obj_destroy(h[i]);
	return r;
}

int
aiop__share_recv(int sock, const struct aiop__share_type *t,
		 const struct aiop__share_type *const *t2, void **out,
		 void **out2, int64_t timeout_ns)
{
	AIOP__SAVE_ERRNO(return share_recv(sock, t, t2, out, out2,
					   timeout_ns));
}
