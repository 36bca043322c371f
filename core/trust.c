/* trust.c: may poplard load code from this file?
 *
 * A module, a pass backend or the TLS part runs inside poplard, with
 * its privileges (root, usually).  Whoever can replace such a file, or
 * the directory that holds it, can run code as poplard: refuse a file
 * or directory that belongs to another user, or that others may write.
 *
 * The rule is the one sshd applies to authorized_keys: owned by root or
 * by poplard's own user; not writable by others; writable by its group
 * only when that group is the owner's private group (same name as the
 * owner, no other member), as with a umask of 002 under the
 * user-private-group scheme. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "trust.h"

/* gid is uid's private group: the user's primary group, named like the
 * user, with no member listed but the user. */
static bool
private_group(uid_t uid, gid_t gid)
{
	struct passwd *pw = getpwuid(uid);
	char name[256];
	struct group *gr;

	if (pw == NULL || pw->pw_gid != gid ||
	    strlen(pw->pw_name) >= sizeof(name))
		return false;
	strcpy(name, pw->pw_name);
	gr = getgrgid(gid);
	if (gr == NULL || strcmp(gr->gr_name, name) != 0)
		return false;
	for (char **m = gr->gr_mem; m != NULL && *m != NULL; m++)
		if (strcmp(*m, name) != 0)
			return false;
	return true;
}

/* 0 when st (of path, "the file" or "its directory DIR") is safe. */
static int
check_stat(const char *path, const char *dir, const struct stat *st,
	   char *err, size_t errlen)
{
	uid_t euid = geteuid();
	char what[PATH_MAX + 32];
	unsigned int mode = (unsigned int)(st->st_mode & 07777);

	if (dir != NULL)
		snprintf(what, sizeof(what), "its directory %s", dir);
	else
		snprintf(what, sizeof(what), "it");
	if (st->st_uid != 0 && st->st_uid != euid) {
		snprintf(err, errlen, "%s: not loaded: %s belongs to uid %lu, "
			 "not to root or to poplard's user (uid %lu)", path,
			 what, (unsigned long)st->st_uid, (unsigned long)euid);
		return -1;
	}
	if (st->st_mode & S_IWOTH) {
		snprintf(err, errlen, "%s: not loaded: %s is writable by "
			 "everyone (mode %04o)", path, what, mode);
		return -1;
	}
	if ((st->st_mode & S_IWGRP) && !private_group(st->st_uid, st->st_gid)) {
		snprintf(err, errlen, "%s: not loaded: %s is writable by "
			 "group %lu (mode %04o)", path, what,
			 (unsigned long)st->st_gid, mode);
		return -1;
	}
	return 0;
}

/* The directory part of path ("." when there is none) in buf. */
static const char *
dir_of(const char *path, char *buf, size_t size)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (slash == NULL)
		return ".";
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= size)
		return NULL;
	memcpy(buf, path, n);
	buf[n] = '\0';
	return buf;
}

static int
check_dir(const char *path, const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (dir == NULL) {
		snprintf(err, errlen, "%s: not loaded: path too long", path);
		return -1;
	}
	if (stat(dir, &st) < 0)
		return 0;       /* then the file cannot be there: dlopen says so */
	return check_stat(path, dir, &st, err, errlen);
}

int
trust_check_file(const char *path, char *err, size_t errlen)
{
	char dir[PATH_MAX], real[PATH_MAX], realdir[PATH_MAX];
	const char *d, *rd;
	struct stat st;

	if (stat(path, &st) < 0)
		return 0;       /* dlopen reports it missing */
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not loaded: not a regular file",
			 path);
		return -1;
	}
	if (check_stat(path, NULL, &st, err, errlen) < 0)
		return -1;
	d = dir_of(path, dir, sizeof(dir));
	if (check_dir(path, d, err, errlen) < 0)
		return -1;
	/* Through a symbolic link: the directory of the file itself too. */
	if (realpath(path, real) == NULL)
		return 0;
	rd = dir_of(real, realdir, sizeof(realdir));
	if (rd != NULL && d != NULL && strcmp(rd, d) == 0)
		return 0;
	return check_dir(path, rd, err, errlen);
}
