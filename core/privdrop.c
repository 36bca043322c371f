/* privdrop.c: giving up root for good after authentication.
 *
 * Runs as root.  Order matters: supplementary groups first (they need
 * root), then the gid, then the uid; afterwards regaining uid 0 must fail.
 * The mail group, when configured, is one more supplementary group: it
 * gives write access to a root:mail 2775 spool directory for dotlocks,
 * and nothing else (files the session creates there get the directory's
 * group through its setgid bit anyway). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <shadow.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "privdrop.h"

void
privdrop_prepare(unsigned int what)
{
	gid_t groups[64];
	int n = (int)(sizeof(groups) / sizeof(groups[0]));
	struct passwd pw, *pwp = NULL;
	struct spwd sp, *spp = NULL;
	char buf[4096];

	/* Each look-up loads the NSS modules of its database (dlopen, and
	 * for some a socket connect) on first use; done once here, every
	 * session process inherits them instead of loading them again.
	 * The answers do not matter. */
	if (what & PRIVDROP_PREPARE_GROUPS)
		(void)getgrouplist("root", 0, groups, &n);
	if (what & PRIVDROP_PREPARE_USERS) {
		(void)getpwnam_r("root", &pw, buf, sizeof(buf), &pwp);
		(void)getspnam_r("root", &sp, buf, sizeof(buf), &spp);
	}
	explicit_bzero(buf, sizeof(buf));
}

/* Our supplementary groups, malloc'd (*n_r of them), or NULL.  Sized by
 * asking first: NGROUPS_MAX is 65536, too big for the stack of a fresh
 * session process (every page of such a frame is a page fault, and one
 * more page for the exit to tear down). */
static gid_t *
current_groups(int *n_r)
{
	int n = getgroups(0, NULL);
	gid_t *groups;

	if (n < 0)
		return NULL;
	groups = malloc(((size_t)n + 1) * sizeof(*groups));
	if (groups == NULL)
		return NULL;
	n = getgroups(n, groups);
	if (n < 0) {
		free(groups);
		return NULL;
	}
	*n_r = n;
	return groups;
}

/* The user's groups (from the group database when lookup is set, else
 * just gid), plus extra (when set) as one more supplementary group. */
static int
set_groups(const char *name, gid_t gid, gid_t extra, int lookup)
{
	gid_t *groups;
	int n, r;

	if (!lookup) {
		gid_t two[2] = { gid, extra };

		return setgroups(extra != (gid_t)-1 && extra != gid ? 2 : 1,
				 two);
	}
	if (initgroups(name, gid) < 0 && setgroups(1, &gid) < 0)
		return -1;
	if (extra == (gid_t)-1)
		return 0;
	groups = current_groups(&n);
	if (groups == NULL)
		return -1;
	for (int i = 0; i < n; i++)
		if (groups[i] == extra) {
			free(groups);
			return 0;
		}
	groups[n++] = extra;
	r = setgroups((size_t)n, groups);
	free(groups);
	return r;
}

/* Is g among our supplementary groups? */
static int
has_group(gid_t g)
{
	int n, found = 0;
	gid_t *groups = current_groups(&n);

	if (groups == NULL)
		return 0;
	for (int i = 0; i < n && !found; i++)
		found = groups[i] == g;
	free(groups);
	return found;
}

int
privdrop_to_user(const char *name, uid_t uid, gid_t gid, gid_t extra_gid,
		 unsigned int flags, const char **error_r)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;

	*error_r = NULL;
	if (geteuid() != 0) {
		/* Not root: we can only act as ourselves. */
		if (uid != (uid_t)-1 && uid != geteuid()) {
			*error_r = "user's uid differs from the uid poplard runs as";
			return -1;
		}
		return 0;
	}
	if (uid == (uid_t)-1 || gid == (gid_t)-1) {
		*error_r = "user has no uid/gid (set them in the userdb or "
			   "default_uid/default_gid)";
		return -1;
	}
	if (uid == 0) {
		*error_r = "refusing to serve a maildrop as root";
		return -1;
	}
	if (set_groups(name, gid, extra_gid, (flags & PRIVDROP_GROUPS) != 0)
	    < 0) {
		*error_r = "setgroups failed";
		return -1;
	}
	if (setresgid(gid, gid, gid) < 0) {
		*error_r = "setresgid failed";
		return -1;
	}
	if (setresuid(uid, uid, uid) < 0) {
		*error_r = "setresuid failed";
		return -1;
	}
	if (getresuid(&ruid, &euid, &suid) < 0 || ruid != uid || euid != uid ||
	    suid != uid || getresgid(&rgid, &egid, &sgid) < 0 || rgid != gid ||
	    egid != gid || sgid != gid) {
		*error_r = "privileges not dropped as expected";
		return -1;
	}
	if (extra_gid != (gid_t)-1 && !has_group(extra_gid)) {
		*error_r = "mail group not kept after dropping privileges";
		return -1;
	}
	if (setuid(0) == 0 || seteuid(0) == 0) {
		*error_r = "root could be regained after dropping privileges";
		return -1;
	}
	return 0;
}
