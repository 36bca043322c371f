/* lock.c: the session lock, one POP3 session per maildrop.
 *
 * An fcntl (POSIX) write lock on the whole lock file.  The kernel drops it
 * when the process dies, however it dies, and NFS carries it to the
 * server (lockd, or NFSv4 byte-range locks), which flock does not do
 * everywhere.
 *
 * POSIX locks belong to the process, not to the descriptor: closing ANY
 * descriptor of the lock file in this process releases the lock, and a
 * second session_lock_try on the same file in the same process succeeds.
 * A session process therefore takes the lock once and never opens the
 * file otherwise.  The file stays empty; `lslocks` (or F_GETLK) shows
 * which process holds it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "maildrop.h"

struct session_lock {
	int fd;
};

/* Error texts: a session is one process without threads, so a static
 * buffer is enough; valid until the next call. */
static char lock_errbuf[256];

int
session_lock_try(const char *path, struct session_lock **lock_r,
		 const char **error_r)
{
	struct session_lock *lock;
	struct flock fl;
	struct stat st;
	int fd;

	*lock_r = NULL;
	*error_r = NULL;
	/* O_NONBLOCK: a FIFO planted in place of the lock file must not
	 * hang the session; it is refused below anyway. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
		  O_NONBLOCK, 0600);
	if (fd < 0) {
		snprintf(lock_errbuf, sizeof(lock_errbuf),
			 "cannot open the session lock file: %s",
			 strerror(errno));
		*error_r = lock_errbuf;
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = "the session lock file is not a regular file";
		close(fd);
		return -1;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 0;                   /* the whole file */
	if (fcntl(fd, F_SETLK, &fl) < 0) {
		int e = errno;

		close(fd);
		if (e == EACCES || e == EAGAIN)
			return 0;
		snprintf(lock_errbuf, sizeof(lock_errbuf),
			 "cannot lock the session lock file: %s", strerror(e));
		*error_r = lock_errbuf;
		return -1;
	}
	lock = malloc(sizeof(*lock));
	if (lock == NULL) {
		close(fd);
		*error_r = "out of memory taking the session lock";
		return -1;
	}
	lock->fd = fd;
	/* Nothing is written to the file: the kernel knows the holder
	 * (F_GETLK, lslocks), and a write per login would change the
	 * file's size and times, a journaled metadata update each time. */
	*lock_r = lock;
	return 1;
}

void
session_lock_release(struct session_lock **lockp)
{
	struct session_lock *lock = *lockp;

	if (lock == NULL)
		return;
	*lockp = NULL;
	/* Closing the descriptor drops the fcntl lock.  The file stays: an
	 * unlink here could race with a session that just opened it and
	 * would then lock an orphaned inode. */
	close(lock->fd);
	free(lock);
}
