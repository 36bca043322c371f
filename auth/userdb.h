/* userdb.h: local users: who they are (uid, gid, home) and their
 * passwords.  Drivers: "system" (getpwnam + shadow) and "passwd-file"
 * (NAME:HASH:UID:GID:HOME lines, HASH a crypt(3) string). */
#ifndef POPLAR_USERDB_H
#define POPLAR_USERDB_H

#include <sys/types.h>
#include "config.h"
#include "../auth/poplar-module.h"

struct userdb_user {
	char name[POPLAR_USER_MAX + 1];
	uid_t uid;              /* (uid_t)-1: not given (non-root use) */
	gid_t gid;
	char home[4096];
};

/* Set up from cfg (kept by reference).  For passwd-file, the file is read
 * and checked now: 0, or -1 with a "file:line: message" in err. */
int userdb_init(const struct config *cfg, char *err, size_t errlen);

/* Look a user up.  1 found, 0 unknown, -1 backend error (*error_r). */
int userdb_lookup(const char *name, struct userdb_user *user_r,
		  const char **error_r);

/* In a session process after login: drop the passwd-file's users from
 * this process (the master keeps them).  Later look-ups find no one. */
void userdb_forget(void);

/* Verify a password.  Always runs one crypt_r, with a dummy hash for an
 * unknown user, so that timing does not reveal which users exist. */
enum poplar_verify userdb_verify_password(const char *name,
					  const char *password,
					  const char **reason_r);

/* Check a plain password against a crypt(3) hash.  1 match, 0 not,
 * -1 unusable hash. */
int userdb_crypt_check(const char *password, const char *hash);

#endif
