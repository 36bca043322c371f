/* privdrop.h: giving up root for good after authentication. */
#ifndef POPLAR_PRIVDROP_H
#define POPLAR_PRIVDROP_H

#include <sys/types.h>

/* As root: initgroups(name, gid), setgid, setuid, then check that root
 * cannot be regained.  As another user: succeed only when uid is unset or
 * equal to ours.  0, or -1 with *error_r. */
/* In the master, before forking sessions: load what privilege dropping
 * and user look-ups need (NSS modules) once for all sessions. */
void privdrop_prepare(void);
int privdrop_to_user(const char *name, uid_t uid, gid_t gid,
		     const char **error_r);

/* The same, keeping extra_gid (unless (gid_t)-1) as a supplementary
 * group: the mail group that lets a session create NAME.lock dotlocks in
 * a root:mail 2775 spool such as Debian's /var/mail ([maildrop]
 * mail_group).  The effective gid stays the user's.  As another user
 * than root the groups we have are kept as they are. */
int privdrop_to_user_group(const char *name, uid_t uid, gid_t gid,
			   gid_t extra_gid, const char **error_r);

#endif
