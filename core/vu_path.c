/* vu_path.c: lexical helpers for the canonical paths of a view ("/" or "/a/b": absolute, no ".",
 * "..", empty components or trailing slash). Pure functions: the fuzzer drives them. */
#include "vu_int.h"

#include <errno.h>
#include <string.h>

static int push(char *out, size_t outlen, size_t *len, const char *name, size_t n)
{
	if (*len + 1 + n + 1 > outlen)
		return -ENAMETOOLONG;
	if (*len != 1 || out[0] != '/')
		out[(*len)++] = '/';
	memcpy(out + *len, name, n);
	*len += n;
	out[*len] = '\0';
	return 0;
}

int vu_path_normalize(const char *base, const char *path, char *out, size_t outlen)
{
	size_t len;
	const char *p = path;

	if (!path || outlen < 2)
		return -EINVAL;
	if (path[0] == '/') {
		strcpy(out, "/");
	} else {
		if (!base || base[0] != '/')
			return -EINVAL;
		if (strlen(base) + 1 > outlen)
			return -ENAMETOOLONG;
		strcpy(out, base);
	}
	len = strlen(out);
	while (*p) {
		const char *start;
		size_t n;

		while (*p == '/')
			p++;
		start = p;
		while (*p && *p != '/')
			p++;
		n = (size_t)(p - start);
		if (n == 0 || (n == 1 && start[0] == '.'))
			continue;
		if (n > NAME_MAX)
			return -ENAMETOOLONG;
		if (n == 2 && start[0] == '.' && start[1] == '.') {
			vu_path_parent(out, &len);
			continue;
		}
		if (push(out, outlen, &len, start, n) < 0)
			return -ENAMETOOLONG;
	}
	return 0;
}

bool vu_path_under(const char *v, size_t vlen, const char *p, size_t plen)
{
	if (plen == 1 && p[0] == '/')
		return true;
	if (vlen < plen || memcmp(v, p, plen) != 0)
		return false;
	return vlen == plen || v[plen] == '/';
}

const char *vu_path_base(const char *v)
{
	const char *s = strrchr(v, '/');

	return s ? s + 1 : v;
}

void vu_path_parent(char *v, size_t *vlen)
{
	char *s = strrchr(v, '/');

	if (!s || s == v) {
		v[0] = '/';
		v[1] = '\0';
		*vlen = 1;
		return;
	}
	*s = '\0';
	*vlen = (size_t)(s - v);
}

int vu_path_join(char *out, size_t outlen, const char *dir, const char *name)
{
	size_t dl = strlen(dir), nl = strlen(name);
	bool root = dl == 1 && dir[0] == '/';

	if (nl == 0) {
		if (dl + 1 > outlen)
			return -ENAMETOOLONG;
		memmove(out, dir, dl + 1);
		return 0;
	}
	if (dl + nl + 2 > outlen)
		return -ENAMETOOLONG;
	memmove(out, dir, dl);
	if (!root)
		out[dl++] = '/';
	memcpy(out + dl, name, nl + 1);
	return 0;
}
