/* dotlock.c: NAME.lock dotlocks, created NFS-safely (unique file, link(),
 * link count), with bounded retries and logged breaking of stale locks.
 * See dotlock.h for the rules. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "dotlock.h"
#include "log.h"
#include "util.h"

/* A pid as liblockfile writes it: decimal and a newline.  Anything
 * longer is not a pid. */
#define PID_TEXT_MAX 31
/* Host name part of the temporary file's name. */
#define HOST_PART_MAX 32

struct dotlock {
	char lockpath[PATH_MAX];
	dev_t dev;
	ino_t ino;
};

static char dotlock_errbuf[PATH_MAX + 128];

static unsigned int tmp_counter;

static const char *
dl_err(const char *what, const char *path, int e)
{
	char lp[PATH_MAX + 16];

	snprintf(dotlock_errbuf, sizeof(dotlock_errbuf), "%s %s: %s", what,
		 log_value(lp, sizeof(lp), path), strerror(e));
	return dotlock_errbuf;
}

pid_t
dotlock_read_pid(const char *lockpath)
{
	char buf[PID_TEXT_MAX + 1];
	struct stat st;
	uint64_t v;
	ssize_t n;
	int fd;

	fd = open(lockpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
		  O_NOCTTY);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (parse_uint(buf, 1, INT_MAX, &v) < 0)
		return 0;
	return (pid_t)v;
}

/* Directory part of path, for the temporary file; "." for a bare name. */
static int
dir_of(const char *path, char *out, size_t size)
{
	const char *slash = strrchr(path, '/');
	size_t len;

	if (slash == NULL) {
		if (size < 2)
			return -1;
		strcpy(out, ".");
		return 0;
	}
	len = slash == path ? 1 : (size_t)(slash - path);
	if (len >= size)
		return -1;
	memcpy(out, path, len);
	out[len] = '\0';
	return 0;
}

/* A unique name in the lock's directory: pid, a counter, the time and
 * the host name keep two hosts sharing the spool over NFS apart. */
static int
tmp_name(const char *path, char *out, size_t size)
{
	char dir[PATH_MAX], host[HOST_PART_MAX + 1];
	struct timespec ts;
	size_t i;
	int n;

	if (dir_of(path, dir, sizeof(dir)) < 0)
		return -1;
	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "localhost");
	host[HOST_PART_MAX] = '\0';
	for (i = 0; host[i] != '\0'; i++)
		if (host[i] == '/' || (unsigned char)host[i] <= 0x20 ||
		    (unsigned char)host[i] >= 0x7f)
			host[i] = '_';
	clock_gettime(CLOCK_REALTIME, &ts);
	n = snprintf(out, size, "%s/.lk%ld.%u.%lx%lx.%s", dir, (long)getpid(),
		     tmp_counter++, (unsigned long)ts.tv_sec,
		     (unsigned long)ts.tv_nsec, host);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Is the holder named in the lock file possibly alive?  A pid that
 * exists (kill says so, or says we may not signal it) is alive. */
static int
holder_alive(pid_t pid)
{
	if (pid <= 0)
		return 0;
	if (kill(pid, 0) == 0 || errno == EPERM)
		return 1;
	return 0;
}

/* The lock exists and is not ours: break it when stale.  now is the
 * mtime of our fresh temporary file, i.e. the file server's clock.
 * 1 broken, 0 left alone. */
static int
maybe_break(const char *lockpath, time_t now, unsigned int stale_age)
{
	char lp[PATH_MAX + 16];
	struct stat st, again;
	long age;
	pid_t pid;

	if (lstat(lockpath, &st) < 0)
		return 0;
	/* Older than the stale age: a clock skew that makes the lock look
	 * younger, or from the future, keeps it. */
	age = (long)(now - st.st_mtime);
	if (age < 0 || (unsigned long)age < stale_age)
		return 0;
	pid = dotlock_read_pid(lockpath);
	if (holder_alive(pid))
		return 0;
	/* Someone may have broken it and taken it meanwhile: remove only
	 * the very file we judged. */
	if (lstat(lockpath, &again) < 0 || again.st_dev != st.st_dev ||
	    again.st_ino != st.st_ino || again.st_mtime != st.st_mtime)
		return 0;
	if (unlink(lockpath) < 0)
		return 0;
	if (pid > 0)
		log_msg(LOG_WARNING, "dotlock: broke stale lock %s: age %lds, "
			"holder pid %ld is gone",
			log_value(lp, sizeof(lp), lockpath), age, (long)pid);
	else
		log_msg(LOG_WARNING, "dotlock: broke stale lock %s: age %lds, "
			"no holder pid in it",
			log_value(lp, sizeof(lp), lockpath), age);
	return 1;
}

/* One attempt.  1 locked, 0 busy, -1 error. */
static int
attempt(const char *lockpath, const char *tmp, unsigned int stale_age,
	struct dotlock *lock, const char **error_r)
{
	char pidtext[32];
	struct stat st;
	int fd, n, link_errno, ret;

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0644);
	if (fd < 0) {
		*error_r = dl_err("cannot create a dotlock beside", lockpath,
				  errno);
		return -1;
	}
	n = snprintf(pidtext, sizeof(pidtext), "%ld\n", (long)getpid());
	if (write(fd, pidtext, (size_t)n) != n) {
		int e = errno != 0 ? errno : ENOSPC;

		close(fd);
		(void)unlink(tmp);
		*error_r = dl_err("cannot write dotlock file", tmp, e);
		return -1;
	}
	if (close(fd) < 0) {
		*error_r = dl_err("cannot write dotlock file", tmp, errno);
		(void)unlink(tmp);
		return -1;
	}
	link_errno = link(tmp, lockpath) < 0 ? errno : 0;
	/* The link count, not link()'s answer, says whether we hold it. */
	if (lstat(tmp, &st) < 0) {
		*error_r = dl_err("cannot stat dotlock file", tmp, errno);
		(void)unlink(tmp);
		return -1;
	}
	if (st.st_nlink == 2) {
		struct stat lst;

		/* Remember the inode, so that release and touch act only on
		 * our own lock. */
		if (lstat(lockpath, &lst) == 0 && lst.st_ino == st.st_ino) {
			lock->dev = st.st_dev;
			lock->ino = st.st_ino;
			(void)unlink(tmp);
			return 1;
		}
	}
	if (link_errno != 0 && link_errno != EEXIST && access(lockpath, F_OK)
	    < 0) {
		*error_r = dl_err("cannot link dotlock", lockpath, link_errno);
		(void)unlink(tmp);
		return -1;
	}
	ret = maybe_break(lockpath, st.st_mtime, stale_age);
	(void)unlink(tmp);
	/* A broken lock is retried at once. */
	return ret == 1 ? 2 : 0;
}

int
dotlock_take(const char *path, const struct dotlock_settings *set,
	     struct dotlock **lock_r, const char **error_r)
{
	char tmp[PATH_MAX];
	struct dotlock *lock;
	uint64_t deadline, delay = DOTLOCK_RETRY_MIN_MS;
	int n, r;

	*lock_r = NULL;
	*error_r = NULL;
	lock = calloc(1, sizeof(*lock));
	if (lock == NULL) {
		*error_r = "out of memory taking a dotlock";
		return -1;
	}
	n = snprintf(lock->lockpath, sizeof(lock->lockpath), "%s.lock", path);
	if (n < 0 || (size_t)n >= sizeof(lock->lockpath)) {
		free(lock);
		*error_r = "dotlock path is too long";
		return -1;
	}
	deadline = now_ms() + (uint64_t)set->timeout * 1000;
	for (;;) {
		if (tmp_name(path, tmp, sizeof(tmp)) < 0) {
			free(lock);
			*error_r = "dotlock temporary path is too long";
			return -1;
		}
		r = attempt(lock->lockpath, tmp, set->stale_age, lock,
			    error_r);
		if (r == 1) {
			*lock_r = lock;
			return 1;
		}
		if (r < 0) {
			free(lock);
			return -1;
		}
		if (r == 2)
			continue;       /* broke a stale lock: try again now */
		if (now_ms() >= deadline)
			break;
		{
			uint64_t left = deadline - now_ms();
			uint64_t wait = delay < left ? delay : left;
			struct timespec ts = { (time_t)(wait / 1000),
					       (long)(wait % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
		delay = delay * 2 > DOTLOCK_RETRY_MAX_MS ?
			DOTLOCK_RETRY_MAX_MS : delay * 2;
	}
	free(lock);
	return 0;
}

static int
still_ours(const struct dotlock *lock)
{
	struct stat st;

	return lstat(lock->lockpath, &st) == 0 && st.st_dev == lock->dev &&
		st.st_ino == lock->ino;
}

int
dotlock_touch(struct dotlock *lock)
{
	if (lock == NULL || !still_ours(lock))
		return -1;
	return utimensat(AT_FDCWD, lock->lockpath, NULL,
			 AT_SYMLINK_NOFOLLOW) < 0 ? -1 : 0;
}

void
dotlock_release(struct dotlock **lockp)
{
	struct dotlock *lock = *lockp;
	char lp[PATH_MAX + 16];

	if (lock == NULL)
		return;
	*lockp = NULL;
	if (still_ours(lock))
		(void)unlink(lock->lockpath);
	else
		log_msg(LOG_WARNING, "dotlock: %s was broken by another "
			"program while we held it",
			log_value(lp, sizeof(lp), lock->lockpath));
	free(lock);
}
