/* lstream.c: byte streams on non-blocking fds (pipes to child processes, sockets), read and
 * written in blocking style: a read that must wait parks the task, and the loop runs on. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lstream.h"

#define STREAM_MT "vsq.stream"

struct stream {
	int fd;
	int eof;
	int read_error;    /* errno of a failed read, reported once the buffer is drained */
	char *buf;         /* bytes read but not yet returned */
	size_t start, len, cap;
	const char *what;  /* "stdout of process 1234" etc., for messages */
	char label[64];
	ev_io read_w, write_w;
	struct vsq_waiter read_waiter, write_waiter;
	struct ev_loop *loop;
	/* the read in progress */
	int want_kind;     /* 'l', 'L', 'a', 'n' */
	size_t want_n;
	double timeout_s;
	/* the write in progress */
	const char *out;
	size_t out_len, out_done;
};

static void read_ready(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stream *s = (struct stream *)((char *)w - offsetof(struct stream, read_w));

	ev_io_stop(loop, w);
	vsq_lua_wake(&s->read_waiter);
}

static void write_ready(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stream *s = (struct stream *)((char *)w - offsetof(struct stream, write_w));

	ev_io_stop(loop, w);
	vsq_lua_wake(&s->write_waiter);
}

static struct stream *check_stream(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, STREAM_MT);
}

int vsq_lua_stream_new(lua_State *L, int fd, const char *label)
{
	struct stream *s = lua_newuserdatauv(L, sizeof(*s), 0);
	int flags;

	memset(s, 0, sizeof(*s));
	s->fd = fd;
	snprintf(s->label, sizeof(s->label), "%s", label);
	s->loop = vsq_lua_loop(L);
	flags = fcntl(fd, F_GETFL);
	if (flags >= 0)
		fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	ev_io_init(&s->read_w, read_ready, fd, EV_READ);
	ev_io_init(&s->write_w, write_ready, fd, EV_WRITE);
	luaL_setmetatable(L, STREAM_MT);
	return 1;
}

/* Make room for at least `more` bytes after the buffered ones. */
static int reserve(struct stream *s, size_t more)
{
	if (s->start > 0 && s->start + s->len + more > s->cap) {
		memmove(s->buf, s->buf + s->start, s->len);
		s->start = 0;
	}
	if (s->len + more > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *nb;

		while (cap < s->len + more)
			cap *= 2;
		nb = realloc(s->buf, cap);
		if (!nb)
			return -ENOMEM;
		s->buf = nb;
		s->cap = cap;
	}
	return 0;
}

/* Read what the fd has now: 1 if bytes arrived, 0 at EOF, -EAGAIN, or -errno. */
static int fill(struct stream *s)
{
	ssize_t n;

	if (reserve(s, 65536) < 0)
		return -ENOMEM;
	n = read(s->fd, s->buf + s->start + s->len, s->cap - s->start - s->len);
	if (n > 0) {
		s->len += (size_t)n;
		return 1;
	}
	if (n == 0) {
		s->eof = 1;
		return 0;
	}
	return errno == EINTR ? -EAGAIN : (errno == EWOULDBLOCK ? -EAGAIN : -errno);
}

/* Push the result if the buffered bytes satisfy the read in progress; else return 0. */
static int try_satisfy(lua_State *L, struct stream *s)
{
	char *p = s->buf + s->start;

	switch (s->want_kind) {
	case 'l':
	case 'L': {
		char *nl = s->len ? memchr(p, '\n', s->len) : NULL;

		if (nl) {
			size_t line = (size_t)(nl - p);

			lua_pushlstring(L, p, s->want_kind == 'L' ? line + 1 : line);
			s->start += line + 1;
			s->len -= line + 1;
			return 1;
		}
		if (s->eof || s->read_error) {
			if (s->len == 0)
				return -1;
			lua_pushlstring(L, p, s->len);
			s->start = s->len = 0;
			return 1;
		}
		return 0;
	}
	case 'a':
		if (!s->eof && !s->read_error)
			return 0;
		lua_pushlstring(L, p, s->len);
		s->start = s->len = 0;
		return 1;
	default: {
		size_t n = s->len < s->want_n ? s->len : s->want_n;

		if (n == 0 && s->want_n == 0) {
			lua_pushliteral(L, "");
			return 1;
		}
		if (n == 0)
			return (s->eof || s->read_error) ? -1 : 0;
		lua_pushlstring(L, p, n);
		s->start += n;
		s->len -= n;
		return 1;
	}
	}
}

static int read_continue(lua_State *L, int status, lua_KContext ctx)
{
	(void)status;
	struct stream *s = (struct stream *)ctx;

	for (;;) {
		int r = try_satisfy(L, s);

		if (r > 0)
			return 1;
		if (r < 0) {
			if (s->read_error)
				return vsq_lua_fail(L, -s->read_error, "read from %s", s->label);
			lua_pushnil(L);
			return 1;
		}
		if (s->fd < 0) {
			lua_pushnil(L);
			lua_pushfstring(L, "%s is closed", s->label);
			return 2;
		}
		if (s->read_waiter.timed_out)
			return vsq_lua_timeout(L);
		r = fill(s);
		if (r == -EAGAIN) {
			ev_io_start(s->loop, &s->read_w);
			return vsq_lua_wait(L, &s->read_waiter, s->timeout_s, ctx, read_continue);
		}
		if (r < 0 && r != -EAGAIN)
			s->read_error = -r;
	}
}

/* stream:read([fmt [, timeout]]): "l" (default) a line without "\n", "L" with it, "a" all
 * until end of file, or n: at most n bytes (as soon as any are there). nil at end of file. */
static int l_read(lua_State *L)
{
	struct stream *s = check_stream(L, 1);

	if (lua_type(L, 2) == LUA_TNUMBER) {
		lua_Integer n = luaL_checkinteger(L, 2);

		luaL_argcheck(L, n >= 0, 2, "byte count must not be negative");
		s->want_kind = 'n';
		s->want_n = (size_t)n;
	} else {
		const char *fmt = luaL_optstring(L, 2, "l");

		if (*fmt == '*')
			fmt++;
		if (*fmt != 'l' && *fmt != 'L' && *fmt != 'a')
			return luaL_argerror(L, 2, lua_pushfstring(L, "invalid format \"%s\"", fmt));
		s->want_kind = *fmt;
	}
	s->timeout_s = luaL_optnumber(L, 3, -1);
	s->read_waiter.timed_out = 0;
	lua_settop(L, 1); /* the stream stays on the stack, alive, while the read waits */
	return read_continue(L, LUA_OK, (lua_KContext)s);
}

static int write_continue(lua_State *L, int status, lua_KContext ctx)
{
	struct stream *s = (struct stream *)ctx;

	while (s->out_done < s->out_len) {
		ssize_t n;

		if (s->fd < 0) {
			lua_pushnil(L);
			lua_pushfstring(L, "%s is closed", s->label);
			return 2;
		}
		n = write(s->fd, s->out + s->out_done, s->out_len - s->out_done);
		if (n >= 0) {
			s->out_done += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			ev_io_start(s->loop, &s->write_w);
			return vsq_lua_wait(L, &s->write_waiter, -1, ctx, write_continue);
		}
		return vsq_lua_fail(L, -errno, "write to %s", s->label);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* stream:write(s...): writes everything, waiting while the pipe is full. */
static int l_write(lua_State *L)
{
	struct stream *s = check_stream(L, 1);
	luaL_Buffer b;
	int n = lua_gettop(L);

	luaL_buffinit(L, &b);
	for (int i = 2; i <= n; i++) {
		lua_pushvalue(L, i);
		if (!lua_isstring(L, -1))
			return luaL_argerror(L, i, "string expected");
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	lua_replace(L, 2);
	lua_settop(L, 2);
	s->out = lua_tolstring(L, 2, &s->out_len); /* stream and string stay on the stack */
	s->out_done = 0;
	return write_continue(L, LUA_OK, (lua_KContext)s);
}

static int l_close(lua_State *L)
{
	struct stream *s = check_stream(L, 1);

	if (s->fd >= 0) {
		ev_io_stop(s->loop, &s->read_w);
		ev_io_stop(s->loop, &s->write_w);
		close(s->fd);
		s->fd = -1;
		vsq_lua_waiter_cancel(&s->read_waiter);
		vsq_lua_waiter_cancel(&s->write_waiter);
	}
	free(s->buf);
	s->buf = NULL;
	s->start = s->len = s->cap = 0;
	return 0;
}

static int l_fd(lua_State *L)
{
	struct stream *s = check_stream(L, 1);

	lua_pushinteger(L, s->fd);
	return 1;
}

/* stream:lines(): iterate over lines until end of file (blocking-style). */
static int lines_iter(lua_State *L)
{
	lua_settop(L, 0);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushliteral(L, "l");
	return l_read(L);
}

static int l_lines(lua_State *L)
{
	check_stream(L, 1);
	lua_settop(L, 1);
	lua_pushcclosure(L, lines_iter, 1);
	return 1;
}

static int l_tostring(lua_State *L)
{
	struct stream *s = check_stream(L, 1);

	lua_pushfstring(L, "stream (%s, %s%s)", s->label, s->fd >= 0 ? "open" : "closed",
			s->eof ? ", at end" : "");
	return 1;
}

static const luaL_Reg metameth[] = {
	{"__index", NULL}, {"__gc", l_close}, {"__close", l_close},
	{"__tostring", l_tostring}, {NULL, NULL}};
static const luaL_Reg meth[] = {
	{"read", l_read}, {"write", l_write}, {"close", l_close},
	{"fd", l_fd},     {"lines", l_lines}, {NULL, NULL}};

void vsq_lua_stream_register(lua_State *L)
{
	vsq_lua_newclass(L, STREAM_MT, metameth, meth);
}

/* vsq.stream(fd [, label]): wrap an fd the caller owns from now on. */
int vsq_lua_stream_open(lua_State *L)
{
	int fd = (int)luaL_checkinteger(L, 1);
	const char *label = luaL_optstring(L, 2, "fd");

	luaL_argcheck(L, fd >= 0 && fcntl(fd, F_GETFD) != -1, 1, "not an open file descriptor");
	return vsq_lua_stream_new(L, fd, label);
}
