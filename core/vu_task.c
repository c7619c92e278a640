/* vu_task.c: the supervisor's table of traced tasks (threads), with what they share: the fs
 * state of CLONE_FS (cwd, umask) and the process state (pidfd, identity, executable). */
#include "vu_int.h"

#include <stdlib.h>
#include <unistd.h>

static unsigned bucket(pid_t tid)
{
	return (unsigned)tid % VU_TASK_BUCKETS;
}

struct vu_task *vu_task_get(struct vu_ctx *ctx, pid_t tid)
{
	for (struct vu_task *t = ctx->tasks[bucket(tid)]; t; t = t->next)
		if (t->tid == tid)
			return t;
	return NULL;
}

struct vu_task *vu_task_add(struct vu_ctx *ctx, pid_t tid)
{
	struct vu_task *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->tid = tid;
	t->next = ctx->tasks[bucket(tid)];
	ctx->tasks[bucket(tid)] = t;
	ctx->ntasks++;
	return t;
}

void vu_fs_put(struct vu_fs *fs)
{
	if (fs && --fs->refs == 0)
		free(fs);
}

void vu_pinfo_put(struct vu_pinfo *pi)
{
	if (pi && --pi->refs == 0) {
		if (pi->pidfd >= 0)
			close(pi->pidfd);
		free(pi);
	}
}

void vu_task_del(struct vu_ctx *ctx, pid_t tid)
{
	struct vu_task **pp = &ctx->tasks[bucket(tid)];

	for (; *pp; pp = &(*pp)->next) {
		struct vu_task *t = *pp;

		if (t->tid != tid)
			continue;
		*pp = t->next;
		vu_fs_put(t->fs);
		vu_pinfo_put(t->pi);
		free(t->exec);
		free(t);
		ctx->ntasks--;
		return;
	}
}
