/* SPDX-License-Identifier: MIT */
/*
 * Shared memory: every object is a sealed memfd mapped MAP_SHARED.
 * posix_fallocate (not ftruncate) reserves the pages up front, so pages
 * the kernel refuses are a clean error here instead of a SIGBUS on first
 * touch (a memfd lives on the kernel's internal tmpfs mount, which has no
 * size cap: a full /dev/shm does not matter); the seals stop any holder
 * of the fd from shrinking the file under other mappings.
 * The fd stays open beside the mapping (CLOEXEC), so that any holder can
 * send the object to an unrelated process (share.c, design.md 10).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"

int
aiop__shm_map(const char *name, size_t size, void **out, int *fd_out)
{
	struct rlimit fsz;
	int fd, r;
	void *p;

	/* posix_fallocate past RLIMIT_FSIZE does not just fail with EFBIG:
	 * the kernel also sends SIGXFSZ (inode_newsize_ok), whose default
	 * action kills the process. A library must not touch signal
	 * dispositions or masks, so the limit is checked here first and
	 * the fallocate is never asked to pass it. The limit belongs to the
	 * process: another thread (or a prlimit from outside) lowering it
	 * between this check and the fallocate is the caller's race. */
	if (getrlimit(RLIMIT_FSIZE, &fsz) == 0 &&
	    fsz.rlim_cur != RLIM_INFINITY && size > fsz.rlim_cur)
		return -ENOMEM;
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	r = posix_fallocate(fd, 0, (off_t)size);
	if (r != 0) {
		close(fd);
		/* the pages could not be reserved (ENOSPC, EFBIG): ENOMEM,
		 * as for the RLIMIT_FSIZE check above */
		return r == ENOSPC || r == EFBIG ? -ENOMEM : -r;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
	    < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		close(fd);
		return r;
	}
	*out = p;
	*fd_out = fd;
	return 0;
}

/* A handle's base over a mapping it now owns (with its fd); the shared
 * header is the caller's to fill or to have checked. */
void
aiop__obj_init(struct aiop__obj *o, unsigned type, void *map, size_t size,
	       int fd)
{
	o->shm = map;
	o->size = size;
	o->type = (uint16_t)type;
	o->fd = fd;
}

size_t
aiop__page_round(size_t size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (size + pg - 1) / pg * pg;
}

static const char *const obj_names[AIOP__T_MAX] = {
	[AIOP__T_DOMAIN] = "aiop-domain", [AIOP__T_LOCK] = "aiop-lock",
	[AIOP__T_RLOCK] = "aiop-rlock",   [AIOP__T_SEM] = "aiop-sem",
	[AIOP__T_EVENT] = "aiop-event",   [AIOP__T_COND] = "aiop-cond",
	[AIOP__T_BARRIER] = "aiop-barrier", [AIOP__T_QUEUE] = "aiop-queue",
};

static int obj_new(unsigned type, size_t shm_size, size_t handle_size,
		   void **handle_out);

int
aiop__obj_new(unsigned type, size_t shm_size, size_t handle_size,
	      void **handle_out)
{
	AIOP__SAVE_ERRNO(return obj_new(type, shm_size, handle_size,
					handle_out));
}

static int
obj_new(unsigned type, size_t shm_size, size_t handle_size,
	void **handle_out)
{
	struct aiop__obj *o;
	void *map;
	int r, fd;

	if (!handle_out || type == 0 || type >= AIOP__T_MAX)
		return -EINVAL;
	/* The domain (doorbells) must exist before any object can be
	 * inherited, so that every process holding the object holds them. */
	r = aiop__domain_ensure();
	if (r < 0)
		return r;
	shm_size = aiop__page_round(shm_size);
	o = calloc(1, handle_size);
	if (!o)
		return -ENOMEM;
	r = aiop__shm_map(obj_names[type], shm_size, &map, &fd);
	if (r < 0) {
		free(o);
		return r;
	}
	aiop__obj_init(o, type, map, shm_size, fd);
	atomic_store_explicit(&o->shm->size, (uint32_t)shm_size,
			      memory_order_relaxed);
	atomic_store_explicit(&o->shm->domain_id, aiop__dom.id,
			      memory_order_relaxed);
	/* ident last: a half-built object never validates */
	atomic_store_explicit(&o->shm->ident, AIOP__IDENT(type),
			      memory_order_release);
	o->hmagic = AIOP__HANDLE_MAGIC;
	*handle_out = o;
	return 0;
}

int
aiop__obj_free(struct aiop__obj *o, unsigned type)
{
	if (!o)
		return 0;
	if (o->hmagic != AIOP__HANDLE_MAGIC || o->type != type)
		return -EINVAL;
	if (aiop__pending(o) > 0 || atomic_load(&o->users) > 0)
		return -EBUSY;
	o->hmagic = 0; /* best effort against a double free; no guarantee */
	AIOP__SAVE_ERRNO(aiop__obj_destroy(o));
	return 0;
}

void
aiop__obj_destroy(struct aiop__obj *o)
{
	munmap(o->shm, o->size);
	close(o->fd);
	free(o);
}
