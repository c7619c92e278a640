/* fuzz_vu_path.c: the lexical path helpers of views (normalize, under, parent, join) on arbitrary
 * paths and bases. Input: up to the first NUL a base (made absolute), the rest a path.
 * Checks that results are canonical ("/" or "/a/b": no empty, "." or ".." names, no trailing
 * slash), that normalizing is idempotent and that ".." never climbs above "/". */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vu_int.h"

static void check_canonical(const char *p)
{
	size_t n = strlen(p);

	if (p[0] != '/')
		abort();
	if (n > 1 && p[n - 1] == '/')
		abort();
	for (const char *s = p; *s; s++) {
		if (s[0] != '/')
			continue;
		if (s[1] == '/')
			abort();
		if (s[1] == '.' && (s[2] == '/' || s[2] == '\0'))
			abort();
		if (s[1] == '.' && s[2] == '.' && (s[3] == '/' || s[3] == '\0'))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[2 * PATH_MAX], base[PATH_MAX], out[PATH_MAX], again[PATH_MAX], joined[PATH_MAX];
	size_t blen;
	const char *path;

	if (size >= sizeof(in))
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	blen = strlen(in);
	path = blen < size ? in + blen + 1 : "";
	/* a canonical base to start from */
	if (vu_path_normalize("/", in, base, sizeof(base)) < 0)
		strcpy(base, "/");
	check_canonical(base);
	if (vu_path_normalize(base, path, out, sizeof(out)) == 0) {
		check_canonical(out);
		if (vu_path_normalize("/", out, again, sizeof(again)) != 0 ||
		    strcmp(out, again) != 0)
			abort();
		if (path[0] != '/' && strstr(path, "..") == NULL &&
		    !vu_path_under(out, strlen(out), base, strlen(base)))
			abort(); /* without "..", a relative path stays under its base */
		{
			size_t l = strlen(out);
			char parent[PATH_MAX];

			memcpy(parent, out, l + 1);
			vu_path_parent(parent, &l);
			check_canonical(parent);
			if (!vu_path_under(out, strlen(out), parent, l))
				abort();
			if (strcmp(out, "/") != 0) {
				if (vu_path_join(joined, sizeof(joined), parent,
						 vu_path_base(out)) != 0 ||
				    strcmp(joined, out) != 0)
					abort();
			}
		}
	}
	return 0;
}
