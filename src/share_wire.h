/* SPDX-License-Identifier: MIT */
/*
 * The message that carries an object to another process (design.md 10).
 * Private: shared by src/share.c, the tests that forge messages and the
 * fuzz target.
 */
#ifndef AIOP_SHARE_WIRE_H
#define AIOP_SHARE_WIRE_H

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

#define AIOP__WIRE_MAGIC 0x776f6961u /* "aiow" */
#define AIOP__WIRE_SIMPLE 1u         /* a SimpleQueue, not a Queue */
#define AIOP__WIRE_OBJS_MAX 2        /* a Condition and its lock */
/* objects, the domain's memfd, its doorbells */
#define AIOP__WIRE_FDS_MAX (AIOP__WIRE_OBJS_MAX + 1 + AIOP__DOORBELLS_MAX)

struct aiop__wire {
	uint32_t magic;
	uint16_t abi;    /* AIOP__ABI */
	uint16_t type;   /* enum aiop__type of the (first) object */
	uint16_t sub;    /* a Condition: its lock's type; else 0 */
	uint16_t flags;  /* AIOP__WIRE_SIMPLE */
	uint16_t nobj;   /* object memfds: 1, or 2 for a Condition */
	uint16_t nbells; /* doorbell eventfds after the domain's memfd */
	uint64_t domain_id;
	uint64_t size[AIOP__WIRE_OBJS_MAX]; /* each object's mapping */
};

_Static_assert(sizeof(struct aiop__wire) == 40, "wire layout");

/* Room for the most fds a message carries, and for what the kernel puts
 * before them when the receiver's socket asks for it (the socket is the
 * user's): SO_PASSCRED's ucred, SO_PASSPIDFD's pidfd, SO_PASSSEC's label */
#define AIOP__CMSG_EXTRA                                                     \
	(CMSG_SPACE(3 * sizeof(int)) + CMSG_SPACE(sizeof(int)) +             \
	 CMSG_SPACE(256))
union aiop__cmsg_buf {
	char buf[CMSG_SPACE(sizeof(int) * AIOP__WIRE_FDS_MAX) +
		 AIOP__CMSG_EXTRA];
	struct cmsghdr align;
};

/* Point msg's control data at cb, carrying nfd fds (none: no control) */
static inline void
aiop__msg_fds(struct msghdr *msg, union aiop__cmsg_buf *cb, const int *fds,
	      int nfd)
{
	struct cmsghdr *c;

	if (nfd <= 0)
		return;
	memset(cb, 0, sizeof(*cb));
	msg->msg_control = cb->buf;
	msg->msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfd);
	c = CMSG_FIRSTHDR(msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfd);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfd);
}

/* The receiver's check of a domain it would join (share.c) */
int aiop__share_domain_check(const struct aiop__wire *w, const int *fds,
			     struct aiop__domain *d);

#endif /* AIOP_SHARE_WIRE_H */
