/* privdrop.h: giving up root for good after authentication. */
#ifndef POPLAR_PRIVDROP_H
#define POPLAR_PRIVDROP_H

#include <sys/types.h>

/* As root: initgroups(name, gid), setgid, setuid, then check that root
 * cannot be regained.  As another user: succeed only when uid is unset or
 * equal to ours.  0, or -1 with *error_r. */
int privdrop_to_user(const char *name, uid_t uid, gid_t gid,
		     const char **error_r);

#endif
