/* dotlock.h: the delivery lock's dotlock, NAME.lock beside a spool
 * mailbox, made the way Debian's MDAs and dotlockfile(1) make it.
 *
 * Creation is NFS-safe: a uniquely named temporary file is written
 * (holding our pid, as liblockfile does), hard-linked to NAME.lock, and
 * the lock counts as ours only when the temporary file's link count is
 * then 2, whatever link() returned (on NFS a lost reply can report an
 * error for a link that was made, or success for one that was not).
 *
 * A lock older than the configured stale age whose holder cannot be
 * alive is broken, and every break is logged.  "Cannot be alive": the
 * file names a pid that does not exist on this host, or names none at
 * all.  A lock naming a live process is never broken, however old. */
#ifndef POPLAR_DOTLOCK_H
#define POPLAR_DOTLOCK_H

#include <stdint.h>
#include <sys/types.h>

/* Defaults of the [maildrop] settings. */
#define DOTLOCK_DEFAULT_STALE_AGE 300   /* s; liblockfile's 5 minutes */
#define DOTLOCK_DEFAULT_TIMEOUT 30      /* s */
/* Attempts are spaced 50 ms, doubling up to 1 s: a bound on how often we
 * retry, whatever the timeout. */
#define DOTLOCK_RETRY_MIN_MS 50
#define DOTLOCK_RETRY_MAX_MS 1000

struct dotlock_settings {
	unsigned int stale_age;         /* seconds; 0 breaks dead locks now */
	unsigned int timeout;           /* seconds to keep trying; 0: once */
};

struct dotlock;

/* Take PATH.lock for the mailbox at path.  1 locked (*lock_r set), 0 the
 * lock stayed busy until the timeout, -1 error (*error_r, static text
 * valid until the next call: e.g. no permission to create files in the
 * directory). */
int dotlock_take(const char *path, const struct dotlock_settings *set,
		 struct dotlock **lock_r, const char **error_r);

/* Refresh the lock's mtime, so that a long update is not mistaken for a
 * stale lock.  0 or -1 (the lock file is gone or is no longer ours). */
int dotlock_touch(struct dotlock *lock);

/* Remove the lock file, if it is still ours (same inode), and free the
 * handle.  *lock becomes NULL. */
void dotlock_release(struct dotlock **lock);

/* For tests: the pid written in a lock file, or 0 when none is readable.
 * Reads at most a few bytes; strict decimal. */
pid_t dotlock_read_pid(const char *lockpath);

#endif
