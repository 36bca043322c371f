/* maildrop.c: maildrop locations (parsing and %-expansion) and the
 * driver-independent open/close of a maildrop. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "maildrop.h"

/* A location is "DRIVER:PATTERN".  Known drivers, by prefix. */
enum location_kind { LOC_INVALID, LOC_MAILDIR, LOC_MBOX };

static enum location_kind
location_split(const char *location, const char **pattern_r)
{
	if (strncmp(location, "maildir:", 8) == 0) {
		*pattern_r = location + 8;
		return LOC_MAILDIR;
	}
	if (strncmp(location, "mbox:", 5) == 0) {
		*pattern_r = location + 5;
		return LOC_MBOX;
	}
	*pattern_r = NULL;
	return LOC_INVALID;
}

/* Syntax shared by validation and expansion: only %u %h %% are known,
 * and the result must be an absolute path, so the pattern starts with
 * '/' or with %h (a home directory is absolute). */
static int
pattern_check(const char *pattern, const char **error_r)
{
	const char *p;

	if (*pattern == '\0') {
		*error_r = "maildrop location has an empty path";
		return -1;
	}
	if (pattern[0] != '/' && strncmp(pattern, "%h", 2) != 0) {
		*error_r = "maildrop location must be an absolute path "
			"(start with / or %h)";
		return -1;
	}
	for (p = pattern; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*error_r = "maildrop location contains a control "
				"character";
			return -1;
		}
		if (*p != '%')
			continue;
		p++;
		if (*p != 'u' && *p != 'h' && *p != '%') {
			*error_r = *p == '\0' ?
				"maildrop location ends with a lone %" :
				"maildrop location has an unknown % sequence "
				"(known: %u %h %%)";
			return -1;
		}
	}
	return 0;
}

int
maildrop_location_valid(const char *location, const char **error_r)
{
	const char *pattern;

	*error_r = NULL;
	if (location_split(location, &pattern) == LOC_INVALID) {
		*error_r = "maildrop location must start with maildir: "
			"or mbox:";
		return -1;
	}
	return pattern_check(pattern, error_r);
}

/* A user name substituted into a path must stay one path component that
 * is neither hidden nor "." or "..": no '/', no leading '.'.  Control
 * characters have no business in a path either. */
static int
user_check(const char *user, const char **error_r)
{
	const char *p;

	if (user == NULL || *user == '\0') {
		*error_r = "empty user name in maildrop location";
		return -1;
	}
	if (strchr(user, '/') != NULL || user[0] == '.') {
		*error_r = "user name not usable in a maildrop path "
			"(contains '/' or starts with '.')";
		return -1;
	}
	for (p = user; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*error_r = "user name not usable in a maildrop path "
				"(control character)";
			return -1;
		}
	}
	return 0;
}

int
maildrop_path_valid(const char *pattern, const char **error_r)
{
	*error_r = NULL;
	return pattern_check(pattern, error_r);
}

int
maildrop_expand_path(const char *pattern, const char *user,
		     const char *home, char *out, size_t size,
		     const char **error_r)
{
	const char *p, *sub;
	size_t len = 0, n;

	*error_r = NULL;
	if (size > 0)
		out[0] = '\0';
	if (pattern_check(pattern, error_r) < 0)
		return -1;

	for (p = pattern; *p != '\0'; p++) {
		char one[2] = { *p, '\0' };

		sub = one;
		if (*p == '%') {
			p++;
			if (*p == 'u') {
				if (user_check(user, error_r) < 0)
					return -1;
				sub = user;
			} else if (*p == 'h') {
				if (home == NULL || home[0] != '/') {
					*error_r = "home directory is not an "
						"absolute path";
					return -1;
				}
				sub = home;
			} else {
				one[0] = '%';
			}
		}
		n = strlen(sub);
		if (size == 0 || n >= size - len) {
			*error_r = "expanded maildrop path is too long";
			if (size > 0)
				out[0] = '\0';
			return -1;
		}
		memcpy(out + len, sub, n);
		len += n;
		out[len] = '\0';
	}
	return 0;
}

const struct maildrop_driver *
maildrop_expand(const char *location, const char *user, const char *home,
		char *out, size_t size, const char **error_r)
{
	const struct maildrop_driver *drv;
	const char *pattern;

	*error_r = NULL;
	if (size > 0)
		out[0] = '\0';
	switch (location_split(location, &pattern)) {
	case LOC_MAILDIR:
		drv = &maildrop_maildir;
		break;
	case LOC_MBOX:
		drv = &maildrop_mbox;
		break;
	default:
		*error_r = "maildrop location must start with maildir: "
			"or mbox:";
		return NULL;
	}
	if (maildrop_expand_path(pattern, user, home, out, size, error_r) < 0)
		return NULL;
	return drv;
}

const char *
maildrop_uidl(const struct maildrop *md, size_t idx, char *buf)
{
	if (md->msgs[idx].uidl != NULL)
		return md->msgs[idx].uidl;
	md->driver->uidl(md, idx, buf);
	return buf;
}

/* Free what open filled in md, whatever the driver. */
static void
maildrop_free_msgs(struct maildrop *md)
{
	size_t i;

	if (md->msgs != NULL) {
		for (i = 0; i < md->count; i++) {
			free(md->msgs[i].name);
			free(md->msgs[i].uidl);
		}
		free(md->msgs);
	}
	md->msgs = NULL;
	md->count = 0;
	md->total_size = 0;
}

struct maildrop *
maildrop_open(const struct maildrop_driver *drv, const char *path,
	      unsigned int flags, enum maildrop_error *err_r,
	      const char **error_r)
{
	struct maildrop *md;

	*err_r = MAILDROP_OK;
	*error_r = NULL;
	md = calloc(1, sizeof(*md));
	if (md == NULL || (md->path = strdup(path)) == NULL) {
		free(md);
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = "out of memory opening the maildrop";
		return NULL;
	}
	md->driver = drv;
	md->flags = flags;
	if (drv->open(md, err_r, error_r) < 0) {
		/* The driver frees its private data itself on failure; its
		 * error text is static, so it outlives md. */
		maildrop_free_msgs(md);
		free(md->path);
		free(md);
		if (*err_r == MAILDROP_OK)
			*err_r = MAILDROP_ERR_TEMP;
		if (*error_r == NULL)
			*error_r = "cannot open the maildrop";
		return NULL;
	}
	return md;
}

void
maildrop_close(struct maildrop **mdp)
{
	struct maildrop *md = *mdp;

	if (md == NULL)
		return;
	*mdp = NULL;
	md->driver->close(md);
	maildrop_free_msgs(md);
	free(md->path);
	free(md);
}
