/* vu_id.c: the identity, UTS names and clocks a view shows, and the calls that change the
 * supervisor's bookkeeping (umask, unshare of the cwd, dumpable). */
#include "vu_int.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>

/* Run fn on the caller's process state under the table lock; -ESRCH if it went. */
#define WITH_PINFO(c, pi, ...)                                                                     \
	do {                                                                                       \
		struct vu_task *t_;                                                                \
		pthread_mutex_lock(&(c)->ctx->lock);                                               \
		t_ = vu_task_get((c)->ctx, (c)->who.tid);                                          \
		if (t_) {                                                                          \
			struct vu_pinfo *pi = t_->pi;                                              \
			__VA_ARGS__;                                                               \
		} else {                                                                           \
			(c)->err = -ESRCH;                                                         \
		}                                                                                  \
		pthread_mutex_unlock(&(c)->ctx->lock);                                             \
	} while (0)

static void sys_getuid(struct vu_call *c)
{
	WITH_PINFO(c, pi, c->val = pi->id.ruid);
}
static void sys_geteuid(struct vu_call *c)
{
	WITH_PINFO(c, pi, c->val = pi->id.euid);
}
static void sys_getgid(struct vu_call *c)
{
	WITH_PINFO(c, pi, c->val = pi->id.rgid);
}
static void sys_getegid(struct vu_call *c)
{
	WITH_PINFO(c, pi, c->val = pi->id.egid);
}

static void put3(struct vu_call *c, uint32_t a, uint32_t b, uint32_t d)
{
	int e;

	if ((e = vu_mem_write(c, VU_ARG(c, 0), &a, 4)) < 0 ||
	    (e = vu_mem_write(c, VU_ARG(c, 1), &b, 4)) < 0 ||
	    (e = vu_mem_write(c, VU_ARG(c, 2), &d, 4)) < 0)
		vu_fail(c, e);
}

static void sys_getresuid(struct vu_call *c)
{
	struct vu_ident id = {0};

	WITH_PINFO(c, pi, id = pi->id);
	if (c->err == 0)
		put3(c, id.ruid, id.euid, id.suid);
}

static void sys_getresgid(struct vu_call *c)
{
	struct vu_ident id = {0};

	WITH_PINFO(c, pi, id = pi->id);
	if (c->err == 0)
		put3(c, id.rgid, id.egid, id.sgid);
}

static void sys_getgroups(struct vu_call *c)
{
	struct vu_ident id = {0};
	int size = (int)VU_ARG(c, 0), e;

	WITH_PINFO(c, pi, id = pi->id);
	if (c->err)
		return;
	if (size < 0)
		return vu_fail(c, -EINVAL);
	if (size > 0) {
		if (size < id.ngroups)
			return vu_fail(c, -EINVAL);
		if ((e = vu_mem_write(c, VU_ARG(c, 1), id.groups,
				      (size_t)id.ngroups * sizeof(gid_t))) < 0)
			return vu_fail(c, e);
	}
	c->val = id.ngroups;
}

/* Set *field to v (-1: keep) if privileged or v is one of the allowed values. */
static bool may_set(bool priv, uint32_t v, uint32_t a, uint32_t b, uint32_t d)
{
	return v == (uint32_t)-1 || priv || v == a || v == b || v == d;
}

static void set_ids(struct vu_call *c, bool gid, uint32_t r, uint32_t e, uint32_t s, int kind)
{
	WITH_PINFO(c, pi, {
		struct vu_ident *id = &pi->id;
		bool priv = id->euid == 0;
		uint32_t *R = gid ? &id->rgid : &id->ruid, *E = gid ? &id->egid : &id->euid;
		uint32_t *S = gid ? &id->sgid : &id->suid, *F = gid ? &id->fsgid : &id->fsuid;

		if (kind == 0) { /* setuid/setgid */
			if (priv) {
				*R = *E = *S = *F = r;
			} else if (r == *R || r == *S) {
				*E = *F = r;
			} else {
				c->err = -EPERM;
			}
		} else if (!may_set(priv, r, *R, *E, *S) || !may_set(priv, e, *R, *E, *S) ||
			   !may_set(priv, s, *R, *E, *S)) {
			c->err = -EPERM;
		} else {
			uint32_t old_r = *R;

			if (r != (uint32_t)-1)
				*R = r;
			if (e != (uint32_t)-1)
				*E = *F = e;
			if (kind == 2 && s != (uint32_t)-1)
				*S = s;
			else if (kind == 1 &&
				 (r != (uint32_t)-1 || (e != (uint32_t)-1 && e != old_r)))
				*S = *E;
		}
	});
}

static void sys_setuid(struct vu_call *c)
{
	set_ids(c, false, (uint32_t)VU_ARG(c, 0), 0, 0, 0);
}
static void sys_setgid(struct vu_call *c)
{
	set_ids(c, true, (uint32_t)VU_ARG(c, 0), 0, 0, 0);
}
static void sys_setreuid(struct vu_call *c)
{
	set_ids(c, false, (uint32_t)VU_ARG(c, 0), (uint32_t)VU_ARG(c, 1), (uint32_t)-1, 1);
}
static void sys_setregid(struct vu_call *c)
{
	set_ids(c, true, (uint32_t)VU_ARG(c, 0), (uint32_t)VU_ARG(c, 1), (uint32_t)-1, 1);
}
static void sys_setresuid(struct vu_call *c)
{
	set_ids(c, false, (uint32_t)VU_ARG(c, 0), (uint32_t)VU_ARG(c, 1), (uint32_t)VU_ARG(c, 2),
		2);
}
static void sys_setresgid(struct vu_call *c)
{
	set_ids(c, true, (uint32_t)VU_ARG(c, 0), (uint32_t)VU_ARG(c, 1), (uint32_t)VU_ARG(c, 2), 2);
}

static void set_fs(struct vu_call *c, bool gid)
{
	uint32_t v = (uint32_t)VU_ARG(c, 0);

	WITH_PINFO(c, pi, {
		struct vu_ident *id = &pi->id;
		uint32_t *F = gid ? &id->fsgid : &id->fsuid;

		c->val = *F;
		if (id->euid == 0 || v == (gid ? id->rgid : id->ruid) ||
		    v == (gid ? id->egid : id->euid) || v == (gid ? id->sgid : id->suid))
			*F = v;
	});
}

static void sys_setfsuid(struct vu_call *c)
{
	set_fs(c, false);
}
static void sys_setfsgid(struct vu_call *c)
{
	set_fs(c, true);
}

static void sys_setgroups(struct vu_call *c)
{
	gid_t groups[VU_MAX_GROUPS];
	int n = (int)VU_ARG(c, 0), e;

	if (n < 0 || n > VU_MAX_GROUPS)
		return vu_fail(c, -EINVAL);
	if ((e = vu_mem_read(c, VU_ARG(c, 1), groups, (size_t)n * sizeof(gid_t))) < 0)
		return vu_fail(c, e);
	WITH_PINFO(c, pi, {
		if (pi->id.euid != 0) {
			c->err = -EPERM;
		} else {
			pi->id.ngroups = n;
			memcpy(pi->id.groups, groups, (size_t)n * sizeof(gid_t));
		}
	});
}

/* ---- UTS ---------------------------------------------------------------------------------- */

static void sys_uname(struct vu_call *c)
{
	struct utsname u;
	char *fields[VSQ_VU_UTS_FIELDS];
	int e;

	if (uname(&u) < 0)
		return vu_fail(c, -errno);
	fields[VSQ_VU_SYSNAME] = u.sysname;
	fields[VSQ_VU_NODENAME] = u.nodename;
	fields[VSQ_VU_RELEASE] = u.release;
	fields[VSQ_VU_VERSION] = u.version;
	fields[VSQ_VU_MACHINE] = u.machine;
	fields[VSQ_VU_DOMAINNAME] = u.domainname;
	pthread_mutex_lock(&c->ctx->lock);
	for (int f = 0; f < VSQ_VU_UTS_FIELDS; f++)
		if (c->ctx->uts[f][0])
			snprintf(fields[f], 65, "%s", c->ctx->uts[f]);
	pthread_mutex_unlock(&c->ctx->lock);
	if ((e = vu_mem_write(c, VU_ARG(c, 0), &u, sizeof(u))) < 0)
		vu_fail(c, e);
}

static void set_uts(struct vu_call *c, int field)
{
	char name[65] = {0};
	size_t len = VU_ARG(c, 1);
	int e;

	if (len > 64)
		return vu_fail(c, -EINVAL);
	if ((e = vu_mem_read(c, VU_ARG(c, 0), name, len)) < 0)
		return vu_fail(c, e);
	if (c->ctx->view->ids_set) {
		bool root = false;

		WITH_PINFO(c, pi, root = pi->id.euid == 0);
		if (!root)
			return vu_fail(c, -EPERM);
	}
	if (len == 0 && field == VSQ_VU_NODENAME)
		strcpy(name, "(none)");
	pthread_mutex_lock(&c->ctx->lock);
	memcpy(c->ctx->uts[field], name, sizeof(name));
	pthread_mutex_unlock(&c->ctx->lock);
}

static void sys_sethostname(struct vu_call *c)
{
	set_uts(c, VSQ_VU_NODENAME);
}

static void sys_setdomainname(struct vu_call *c)
{
	set_uts(c, VSQ_VU_DOMAINNAME);
}

/* ---- clocks ---------------------------------------------------------------------------------- */

static void view_time(const struct vu_ctx *ctx, struct timespec *ts)
{
	double v = ctx->view->time_value;
	double ip = floor(v);
	long ns = (long)((v - ip) * 1e9);

	if (ctx->view->time_mode == 2) {
		ts->tv_sec = (time_t)ip;
		ts->tv_nsec = ns;
		return;
	}
	ts->tv_sec += (time_t)ip;
	ts->tv_nsec += ns;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_nsec -= 1000000000L;
		ts->tv_sec++;
	}
}

static bool realtime_clock(clockid_t clk)
{
	return clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE || clk == CLOCK_TAI ||
	       clk == CLOCK_REALTIME_ALARM;
}

static void sys_clock_gettime(struct vu_call *c)
{
	clockid_t clk = (clockid_t)VU_ARG(c, 0);
	struct timespec ts;
	int e;

	if (!realtime_clock(clk)) {
		c->cont = true;
		return;
	}
	if (clock_gettime(clk, &ts) < 0)
		return vu_fail(c, -errno);
	view_time(c->ctx, &ts);
	if ((e = vu_mem_write(c, VU_ARG(c, 1), &ts, sizeof(ts))) < 0)
		vu_fail(c, e);
}

static void sys_gettimeofday(struct vu_call *c)
{
	struct timespec ts;
	struct timeval tv;
	struct timezone tz = {0};
	int e = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	view_time(c->ctx, &ts);
	tv.tv_sec = ts.tv_sec;
	tv.tv_usec = ts.tv_nsec / 1000;
	if (VU_ARG(c, 0))
		e = vu_mem_write(c, VU_ARG(c, 0), &tv, sizeof(tv));
	if (e == 0 && VU_ARG(c, 1))
		e = vu_mem_write(c, VU_ARG(c, 1), &tz, sizeof(tz));
	vu_fail(c, e);
}

static void sys_time(struct vu_call *c)
{
	struct timespec ts;
	int64_t t;
	int e = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	view_time(c->ctx, &ts);
	t = ts.tv_sec;
	if (VU_ARG(c, 0))
		e = vu_mem_write(c, VU_ARG(c, 0), &t, sizeof(t));
	if (e < 0)
		return vu_fail(c, e);
	c->val = t;
}

/* ---- bookkeeping ------------------------------------------------------------------------------
 */

static void sys_prctl(struct vu_call *c)
{
	unsigned long v = VU_ARG(c, 1);

	if (VU_ARG(c, 0) != PR_SET_DUMPABLE) {
		c->cont = true;
		return;
	}
	if (v > 1)
		return vu_fail(c, -EINVAL);
	/* kept virtual: a non-dumpable process could no longer be served */
	WITH_PINFO(c, pi, pi->dumpable = (int)v);
}

static void sys_unshare(struct vu_call *c)
{
	if (VU_ARG(c, 0) & CLONE_FS) {
		WITH_PINFO(c, pi, {
			(void)pi;
			if (t_->fs->refs > 1) {
				struct vu_fs *fs = malloc(sizeof(*fs));

				if (!fs) {
					c->err = -ENOMEM;
				} else {
					*fs = *t_->fs;
					fs->refs = 1;
					vu_fs_put(t_->fs);
					t_->fs = fs;
				}
			}
		});
		if (c->err)
			return;
	}
	c->cont = true;
}

static void sys_umask(struct vu_call *c)
{
	WITH_PINFO(c, pi, {
		(void)pi;
		t_->fs->umask = (mode_t)(VU_ARG(c, 0) & 0777);
	});
	c->cont = true; /* the kernel's umask follows too (for what it creates itself) */
}

void vu_id_handlers(vu_handler t[VU_NSYSCALLS])
{
	t[SYS_getuid] = sys_getuid;
	t[SYS_geteuid] = sys_geteuid;
	t[SYS_getgid] = sys_getgid;
	t[SYS_getegid] = sys_getegid;
	t[SYS_getresuid] = sys_getresuid;
	t[SYS_getresgid] = sys_getresgid;
	t[SYS_getgroups] = sys_getgroups;
	t[SYS_setuid] = sys_setuid;
	t[SYS_setgid] = sys_setgid;
	t[SYS_setreuid] = sys_setreuid;
	t[SYS_setregid] = sys_setregid;
	t[SYS_setresuid] = sys_setresuid;
	t[SYS_setresgid] = sys_setresgid;
	t[SYS_setfsuid] = sys_setfsuid;
	t[SYS_setfsgid] = sys_setfsgid;
	t[SYS_setgroups] = sys_setgroups;
	t[SYS_uname] = sys_uname;
	t[SYS_sethostname] = sys_sethostname;
	t[SYS_setdomainname] = sys_setdomainname;
	t[SYS_clock_gettime] = sys_clock_gettime;
	t[SYS_gettimeofday] = sys_gettimeofday;
	t[SYS_time] = sys_time;
	t[SYS_prctl] = sys_prctl;
	t[SYS_unshare] = sys_unshare;
	t[SYS_umask] = sys_umask;
}
