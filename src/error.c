/* SPDX-License-Identifier: MIT */
/* Error strings, version, spin configuration, counters. */
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>

#include "internal.h"

struct aiop__counters aiop__cnt;
_Atomic int aiop__spin_mode = AIOP_SPIN_AUTO;
_Atomic int64_t aiop__spin_fixed_ns;
static int single_cpu = -1;

AIOP_API const char *
aiop_strerror(int err)
{
	const char *s;

	if (err >= 0)
		return "success";
	if (err < -4095) /* not an errno (and -INT_MIN would overflow) */
		return "unknown error";
	/* the meanings aiop gives these codes (docs/errors.md) */
	switch (-err) {
	case EAGAIN:
		return "would wait (try variant or zero timeout)";
	case ETIMEDOUT:
		return "timed out";
	case ECANCELED:
		return "operation cancelled";
	case EINVAL:
		return "invalid argument or handle";
	case EPERM:
		return "not owned or not held";
	case EOVERFLOW:
		return "count over its bound";
	case EMSGSIZE:
		return "message larger than allowed";
	case EPIPE:
		return "closed or broken";
	case EOWNERDEAD:
		return "previous holder died; acquired, data may be "
		       "inconsistent";
	case EPROTO:
		return "shared object corrupt or of another version";
	case ENOMEM:
		return "out of memory";
	case EBUSY:
		return "operations still pending";
	case EALREADY:
		return "operation already completed";
	case EMFILE:
		return "out of file descriptors or doorbells";
	case EBADMSG:
		return "not a message carrying this type of object";
	case EXDEV:
		return "object of another domain (process tree)";
	case EPROTOTYPE:
		return "socket cannot carry objects (not AF_UNIX "
		       "SEQPACKET or DGRAM)";
	}
	s = strerrordesc_np(-err);
	return s ? s : "unknown error";
}

AIOP_API const char *
aiop_version(void)
{
	return AIOP_VERSION_STRING;
}

AIOP_API int
aiop_spin_set(enum aiop_spin_mode mode, int64_t ns)
{
	switch (mode) {
	case AIOP_SPIN_OFF:
	case AIOP_SPIN_AUTO:
		break;
	case AIOP_SPIN_FIXED:
		if (ns < 0 || ns > 1000000)
			return -EINVAL;
		atomic_store(&aiop__spin_fixed_ns, ns);
		break;
	default:
		return -EINVAL;
	}
	atomic_store(&aiop__spin_mode, (int)mode);
	return 0;
}

void
aiop__spin_env(void)
{
	const char *s = getenv("AIOP_SPIN");
	char *end;
	long long v;

	single_cpu = get_nprocs() <= 1;
	if (!s || !*s || !strcmp(s, "auto"))
		return;
	if (!strcmp(s, "off")) {
		aiop_spin_set(AIOP_SPIN_OFF, 0);
		return;
	}
	if (*s < '0' || *s > '9')
		return; /* strtoll() would take " 5", "+5", "-0" */
	v = strtoll(s, &end, 10);
	if (!*end)
		aiop_spin_set(AIOP_SPIN_FIXED, v); /* bad values: ignored */
}

bool
aiop__spin_single_cpu(void)
{
	return single_cpu == 1;
}

AIOP_API int
aiop_stats_get(struct aiop_stats *out)
{
	if (!out)
		return -EINVAL;
	out->futex_waits = atomic_load(&aiop__cnt.futex_waits);
	out->futex_wakes = atomic_load(&aiop__cnt.futex_wakes);
	out->doorbell_rings = atomic_load(&aiop__cnt.rings);
	out->doorbell_reads = atomic_load(&aiop__cnt.reads);
	out->spins_ok = atomic_load(&aiop__cnt.spins_ok);
	out->spins_failed = atomic_load(&aiop__cnt.spins_failed);
	out->owner_probes = atomic_load(&aiop__cnt.owner_probes);
	return 0;
}

AIOP_API void
aiop_stats_reset(void)
{
	atomic_store(&aiop__cnt.futex_waits, 0);
	atomic_store(&aiop__cnt.futex_wakes, 0);
	atomic_store(&aiop__cnt.rings, 0);
	atomic_store(&aiop__cnt.reads, 0);
	atomic_store(&aiop__cnt.spins_ok, 0);
	atomic_store(&aiop__cnt.spins_failed, 0);
	atomic_store(&aiop__cnt.owner_probes, 0);
}
