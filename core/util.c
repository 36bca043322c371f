/* util.c: strict number parsing, secure memory helpers, small strings. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dlflags.h"
#include "trust.h"
#include "util.h"

int
parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *value_r)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		unsigned int d;

		if (*s < '0' || *s > '9')
			return -1;
		d = (unsigned int)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return -1;
	*value_r = v;
	return 0;
}

int
secure_compare(const void *a, const void *b, size_t len)
{
	const volatile unsigned char *pa = a, *pb = b;
	unsigned char diff = 0;

	for (size_t i = 0; i < len; i++)
		diff |= pa[i] ^ pb[i];
	return diff != 0;
}

void
secure_wipe(void *p, size_t len)
{
	if (p != NULL)
		explicit_bzero(p, len);
}

static void
oom(void)
{
	fputs("poplard: out of memory\n", stderr);
	abort();
}

char *
xstrdup(const char *s)
{
	char *r = strdup(s);

	if (r == NULL)
		oom();
	return r;
}

void *
xcalloc(size_t n, size_t size)
{
	void *r = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);

	if (r == NULL)
		oom();
	return r;
}

void *
xrealloc(void *p, size_t n, size_t size)
{
	void *r = reallocarray(p, n == 0 ? 1 : n, size == 0 ? 1 : size);

	if (r == NULL)
		oom();
	return r;
}

size_t
strlcpy_p(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;

		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void *
dl_open_symbol(const char *path, const char *symbol, const char *what,
	       const char *kind, void **sym_r, char *err, size_t errlen)
{
	void *h;

	*sym_r = NULL;
	if (trust_check_file(path, err, errlen) < 0)
		return NULL;
	h = dlopen(path, POPLAR_DLOPEN_FLAGS);
	if (h == NULL) {
		const char *e = dlerror();
		size_t n = strlen(path);

		if (e == NULL)
			e = "unknown error";
		/* dlerror() usually starts with the path: say it once. */
		else if (strncmp(e, path, n) == 0 && strncmp(e + n, ": ", 2) == 0)
			e += n + 2;
		snprintf(err, errlen, "%s: cannot load %s: %s", path, what, e);
		return NULL;
	}
	*sym_r = dlsym(h, symbol);
	if (*sym_r == NULL) {
		snprintf(err, errlen, "%s: not %s: symbol '%s' not found",
			 path, kind, symbol);
		dlclose(h);
		return NULL;
	}
	return h;
}
