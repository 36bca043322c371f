/* privdrop.h: giving up root for good after authentication. */
#ifndef POPLAR_PRIVDROP_H
#define POPLAR_PRIVDROP_H

#include <sys/types.h>

/* In the master, before forking sessions: load the NSS modules that
 * user look-ups (PRIVDROP_PREPARE_USERS: passwd, shadow) and group
 * look-ups (PRIVDROP_PREPARE_GROUPS) need, once for all sessions.  Only
 * what is asked for is loaded: every library the master maps makes each
 * fork dearer. */
#define PRIVDROP_PREPARE_USERS  0x1
#define PRIVDROP_PREPARE_GROUPS 0x2
void privdrop_prepare(unsigned int what);

/* Flags of privdrop_to_user(). */
#define PRIVDROP_GROUPS 0x1  /* supplementary groups from the group
			      * database (initgroups); without it the user
			      * has only its gid */

/* As root: supplementary groups (see PRIVDROP_GROUPS), setgid, setuid,
 * then check that root cannot be regained.  extra_gid (unless
 * (gid_t)-1) is kept as one more supplementary group: the mail group
 * that lets a session create NAME.lock dotlocks in a root:mail 2775
 * spool such as Debian's /var/mail ([maildrop] mail_group); the
 * effective gid stays the user's.  As another user than root: succeed
 * only when uid is unset or equal to ours, groups kept as they are.
 * 0, or -1 with *error_r. */
int privdrop_to_user(const char *name, uid_t uid, gid_t gid,
		     gid_t extra_gid, unsigned int flags,
		     const char **error_r);

#endif
