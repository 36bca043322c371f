/* maildir.c: the Maildir driver: listing new/ and cur/, UIDLs, RFC 1939
 * sizes with an on-disk size cache, message access and deletion.
 *
 * Messages are served from new/ and cur/ alike and are never moved: a
 * POP3 client has no use for the "seen" distinction, and leaving files in
 * place keeps IMAP servers sharing the Maildir undisturbed.  Other
 * programs may still move a file from new/ to cur/ or change its flags
 * while a session runs, so every access falls back to looking up the
 * same base name in cur/. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "crlf.h"
#include "log.h"
#include "maildrop.h"
#include "sha256.h"
#include "util.h"

/* The size cache: one file per Maildir.  First line the version; then
 * "dirs STAMP" (below); then one line per message, in delivery order,
 * "RAW_SIZE MTIME CRLF_SIZE SUB/FILE"; then "checksum HEX" where HEX is
 * FNV-1a 64 over the 64-bit words (then the last bytes) of everything
 * before that line.  The name comes last so it may hold spaces; names
 * with a newline are simply not cached.
 *
 * STAMP is "-", or the inode, mtime seconds and nanoseconds of new/ and
 * of cur/ as they were before the listing the cache was made from.  Any
 * rename, delivery or deletion changes a directory's mtime, so when both
 * stamps still match, the cache is the listing itself: the message list
 * is read from it without reading the directories or stat'ing a file.
 * A stamp is written only when the directories had not changed for
 * DIR_STABLE_SEC before the listing (a change within the same clock
 * tick could leave the mtime as it was) and every message was cached.
 * This relies on what Maildir promises: a delivered file is never
 * changed in place, only renamed or removed.  (A file changed anyway is
 * still caught when it is opened: its size must be as listed.) */
#define CACHE_NAME "poplar-sizes"
#define CACHE_VERSION_LINE "poplar-sizes 2\n"
#define CACHE_DIRS_PREFIX "dirs "
#define DIR_STABLE_SEC 2
#define CACHE_CHECKSUM_PREFIX "checksum "
/* A cache is rebuilt when larger than this: it holds ~80 bytes per
 * message, so this covers ~800000 messages while keeping a hostile or
 * broken file from eating memory. */
#define CACHE_FILE_MAX (64 * 1024 * 1024)
/* NAME_MAX (255) for the base name plus three 20-digit numbers. */
#define CACHE_LINE_MAX 512
/* The version and "dirs" lines: 15 + 5 + six numbers of at most 20
 * digits and a sign, with spaces and a newline. */
#define CACHE_HEAD_ROOM 192

#define LOCK_NAME "poplar-session.lock"
/* Maildir's info separator: "BASE:2,FLAGS". */
#define INFO_SEP ':'
#define UIDL_DIGEST_HEX 40
#define READ_CHUNK (64 * 1024)

/* Error texts handed back through error_r.  A session is one process
 * whose only other threads are count_parallel's helpers, which never
 * make an error text, so a static buffer suffices; the text stays valid
 * until the next call into this driver, which lets maildrop_open free md
 * on failure and still return the text. */
static char maildir_errbuf[512];

static const char *maildir_err(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static const char *
maildir_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(maildir_errbuf, sizeof(maildir_errbuf), fmt, ap);
	va_end(ap);
	return maildir_errbuf;
}

/* A path, made safe for the log. */
static const char *
logpath(char *buf, size_t size, const char *path)
{
	return log_value(buf, size, path);
}

/* One message found while listing.  A file the directory says is
 * regular is not stat'ed while listing: its size and mtime come from the
 * fstat of its descriptor when it is read, or from a stat when its size
 * cache entry must be checked or its base name is shared. */
struct entry {
	char *name;             /* "new/FILE" or "cur/FILE"; owns base too */
	const char *base;       /* FILE up to the info separator */
	uint64_t raw_size;      /* these four once statted */
	int64_t mtime;
	dev_t dev;
	ino_t ino;              /* the directory's, then the stat's */
	uint64_t size;
	bool statted;
	bool name_nl;           /* the name holds a newline */
	bool size_known;        /* counted by count_fast */
	bool dup;               /* base name seen on another file too */
	bool dropped;
};

/* new/ and cur/, as opened for the listing (-1 when missing). */
enum { SUB_NEW, SUB_CUR };

struct entry_list {
	struct entry *v;
	size_t count, alloc;
};

/* An entry of the size cache: name ("SUB/FILE") points into the cache
 * buffer, base into name (base_len bytes, not NUL-terminated). */
struct cache_ent {
	const char *name;
	const char *base;
	size_t base_len;
	uint64_t raw_size;
	int64_t mtime;
	uint64_t size;
	bool used;
};

/* What new/ and cur/ looked like before a listing. */
struct dirstamp {
	bool valid;             /* both exist and were stat'ed */
	bool stable;            /* unchanged for DIR_STABLE_SEC before */
	uint64_t ino[2];
	int64_t sec[2];
	long nsec[2];
};

struct cache {
	char *buf;
	struct cache_ent *ents;
	size_t count;
	bool invalid;           /* a file exists but was not usable */
	bool sorted;            /* ents sorted by base for cache_find */
	struct dirstamp stamp;  /* .valid false for "dirs -" */
};

static int
join(char *out, size_t size, const char *a, const char *b)
{
	int n = snprintf(out, size, "%s/%s", a, b);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Build "SUB/FILE\0BASE\0" in one allocation. */
static char *
entry_name(const char *sub, const char *file, const char **base_r)
{
	size_t sublen = strlen(sub), flen = strlen(file), blen;
	const char *sep = strchr(file, INFO_SEP);
	char *name;

	blen = sep != NULL ? (size_t)(sep - file) : flen;
	name = malloc(sublen + 1 + flen + 1 + blen + 1);
	if (name == NULL)
		return NULL;
	memcpy(name, sub, sublen);
	name[sublen] = '/';
	memcpy(name + sublen + 1, file, flen + 1);
	*base_r = name + sublen + 1 + flen + 1;
	memcpy(name + sublen + 1 + flen + 1, file, blen);
	name[sublen + 1 + flen + 1 + blen] = '\0';
	return name;
}

/* The base name of a relative message name "SUB/FILE[:INFO]", copied. */
static int
name_base(const char *name, char *out, size_t size)
{
	const char *file = strchr(name, '/'), *sep;
	size_t len;

	file = file != NULL ? file + 1 : name;
	sep = strchr(file, INFO_SEP);
	len = sep != NULL ? (size_t)(sep - file) : strlen(file);
	if (len >= size)
		return -1;
	memcpy(out, file, len);
	out[len] = '\0';
	return 0;
}

/* Another program may have moved the message to cur/ or changed its
 * flags.  Look for the same base name in cur/.  1 with *name_r (malloc'd
 * "cur/FILE"), 0 when gone, -1 on error (errno set). */
static int
find_moved(const char *mdpath, const char *base, char **name_r)
{
	char dirpath[PATH_MAX];
	size_t blen = strlen(base);
	struct dirent *de;
	DIR *d;
	int ret = 0;

	*name_r = NULL;
	if (blen == 0 || join(dirpath, sizeof(dirpath), mdpath, "cur") < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	d = opendir(dirpath);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0)
				ret = -1;
			break;
		}
		if (strncmp(de->d_name, base, blen) != 0 ||
		    (de->d_name[blen] != '\0' && de->d_name[blen] != INFO_SEP))
			continue;
		if (asprintf(name_r, "cur/%s", de->d_name) < 0) {
			*name_r = NULL;
			errno = ENOMEM;
			ret = -1;
		} else {
			ret = 1;
		}
		break;
	}
	closedir(d);
	return ret;
}

/* Messages are opened and stat'ed relative to the descriptor of their
 * directory when the listing opened it: no walk of the Maildir's path
 * for each of them.  A directory that was missing then (or a name that
 * is neither new/ nor cur/) goes by the whole path. */
static int
msg_dirfd(const int dfd[2], const char *name, const char **rel_r)
{
	if (strncmp(name, "new/", 4) == 0 && dfd[SUB_NEW] >= 0) {
		*rel_r = name + 4;
		return dfd[SUB_NEW];
	}
	if (strncmp(name, "cur/", 4) == 0 && dfd[SUB_CUR] >= 0) {
		*rel_r = name + 4;
		return dfd[SUB_CUR];
	}
	return -1;
}

static int
msg_openat(const char *mdpath, const int dfd[2], const char *name, int flags)
{
	char path[PATH_MAX];
	const char *rel;
	int dirfd = msg_dirfd(dfd, name, &rel);

	if (dirfd >= 0)
		return openat(dirfd, rel, flags);
	if (join(path, sizeof(path), mdpath, name) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return open(path, flags);
}

static int
msg_statat(const char *mdpath, const int dfd[2], const char *name,
	   struct stat *st)
{
	char path[PATH_MAX];
	const char *rel;
	int dirfd = msg_dirfd(dfd, name, &rel);

	if (dirfd >= 0)
		return fstatat(dirfd, rel, st, AT_SYMLINK_NOFOLLOW);
	if (join(path, sizeof(path), mdpath, name) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

/* mdpath/name, made safe for the log. */
static const char *
msg_logpath(char *buf, size_t size, const char *mdpath, const char *name)
{
	char path[PATH_MAX];

	if (join(path, sizeof(path), mdpath, name) < 0)
		return logpath(buf, size, name);
	return logpath(buf, size, path);
}

/* ---- listing ------------------------------------------------------------ */

static void
entries_free(struct entry_list *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		free(l->v[i].name);
	free(l->v);
	l->v = NULL;
	l->count = l->alloc = 0;
}

/* Stat e: 1 done (e->dropped set when it is no regular file), 0 it is
 * gone, -1 error. */
static int
entry_stat(const char *mdpath, const int dfd[2], struct entry *e,
	   enum maildrop_error *err_r, const char **error_r)
{
	char lp[PATH_MAX + 16];
	struct stat st;

	if (msg_statat(mdpath, dfd, e->name, &st) < 0) {
		if (errno == ENOENT)
			return 0;       /* moved or deleted meanwhile */
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = maildir_err("cannot stat %s: %s",
			msg_logpath(lp, sizeof(lp), mdpath, e->name),
			strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		e->dropped = true;
		return 1;
	}
	if ((uint64_t)st.st_size > MAILDROP_MAX_MESSAGE_SIZE) {
		*err_r = MAILDROP_ERR_PERM;
		*error_r = maildir_err("message %s is too large (%" PRIu64
			" bytes, the limit is %llu)",
			msg_logpath(lp, sizeof(lp), mdpath, e->name),
			(uint64_t)st.st_size, MAILDROP_MAX_MESSAGE_SIZE);
		return -1;
	}
	e->raw_size = (uint64_t)st.st_size;
	e->mtime = (int64_t)st.st_mtime;
	e->dev = st.st_dev;
	e->ino = st.st_ino;
	e->statted = true;
	return 1;
}

/* Add the regular files of mdpath/sub, keeping the directory open in
 * dfd[which].  A missing directory is empty. */
static int
scan_dir(const char *mdpath, int which, int dfd[2], struct entry_list *l,
	 enum maildrop_error *err_r, const char **error_r)
{
	const char *sub = which == SUB_NEW ? "new" : "cur";
	char path[PATH_MAX], lp[PATH_MAX + 16];
	struct dirent *de;
	DIR *d;
	int fd, ret = -1;

	if (join(path, sizeof(path), mdpath, sub) < 0) {
		*err_r = MAILDROP_ERR_PERM;
		*error_r = "Maildir path is too long";
		return -1;
	}
	dfd[which] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd[which] < 0 && errno == ENOENT)
		return 0;
	fd = dfd[which] < 0 ? -1 : fcntl(dfd[which], F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = maildir_err("cannot read %s: %s",
				       logpath(lp, sizeof(lp), path),
				       strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	for (;;) {
		struct entry *e;

		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				*err_r = MAILDROP_ERR_TEMP;
				*error_r = maildir_err("cannot read %s: %s",
					logpath(lp, sizeof(lp), path),
					strerror(errno));
				goto cleanup;
			}
			break;
		}
		/* Dotfiles are not messages ("." "..", editors' and
		 * tools' files); only regular files are.  A filesystem that
		 * does not tell the type gets a stat below. */
		if (de->d_name[0] == '.' ||
		    (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
			continue;
		if (l->count >= MAILDROP_MAX_MESSAGES) {
			*err_r = MAILDROP_ERR_PERM;
			*error_r = maildir_err("too many messages in %s (the "
				"limit is %d)", logpath(lp, sizeof(lp), mdpath),
				MAILDROP_MAX_MESSAGES);
			goto cleanup;
		}
		if (l->count == l->alloc) {
			size_t n = l->alloc == 0 ? 64 : l->alloc * 2;
			struct entry *v = reallocarray(l->v, n, sizeof(*v));

			if (v == NULL)
				goto nomem;
			l->v = v;
			l->alloc = n;
		}
		e = &l->v[l->count];
		memset(e, 0, sizeof(*e));
		e->name = entry_name(sub, de->d_name, &e->base);
		if (e->name == NULL)
			goto nomem;
		e->ino = de->d_ino;
		e->name_nl = strchr(de->d_name, '\n') != NULL;
		if (de->d_type == DT_UNKNOWN) {
			int r = entry_stat(mdpath, dfd, e, err_r, error_r);

			if (r <= 0 || e->dropped) {
				free(e->name);
				if (r < 0)
					goto cleanup;
				continue;
			}
		}
		l->count++;
	}
	ret = 0;
	goto cleanup;
nomem:
	*err_r = MAILDROP_ERR_TEMP;
	*error_r = "out of memory listing the Maildir";
cleanup:
	closedir(d);
	return ret;
}

/* Delivery order: Maildir base names begin with the delivery time, and
 * strverscmp orders "999.x" before "1000.x".  Sorting 100,000 names
 * this way is a good part of a first listing, so the comparison is
 * strverscmp's, made cheaper twice:
 *
 *  - each name's leading number, when it has 1 to 19 digits and no
 *    leading zero, is read once into a key.  Two such names whose
 *    numbers differ compare as their numbers: strverscmp compares a
 *    run of digits without a leading zero by its length, then digit by
 *    digit, which is the numeric order;
 *  - otherwise the common prefix is skipped, back to the start of the
 *    run of digits it ends in (if any), and strverscmp compares the
 *    rest.  strverscmp's state after a non-digit is the one it starts
 *    in, so this changes no result. */
struct sort_ref {
	uint64_t key;           /* 0: no usable leading number */
	const char *base;       /* e's, at hand */
	struct entry *e;
};

static uint64_t
lead_number(const char *s)
{
	uint64_t v = 0;
	int n;

	if (*s < '1' || *s > '9')
		return 0;
	for (n = 0; s[n] >= '0' && s[n] <= '9'; n++) {
		if (n == 19)
			return 0;
		v = v * 10 + (uint64_t)(s[n] - '0');
	}
	return v;
}

static int
vers_cmp(const char *a, const char *b)
{
	size_t i = 0;

	while (a[i] == b[i] && a[i] != '\0')
		i++;
	if (a[i] == b[i])
		return 0;
	while (i > 0 && a[i - 1] >= '0' && a[i - 1] <= '9')
		i--;
	return strverscmp(a + i, b + i);
}

static int
sort_ref_cmp(const void *pa, const void *pb)
{
	const struct sort_ref *x = pa, *y = pb;
	int c;

	if (x->key != y->key && x->key != 0 && y->key != 0)
		return x->key < y->key ? -1 : 1;
	c = vers_cmp(x->base, y->base);
	return c != 0 ? c : strcmp(x->e->name, y->e->name);
}

/* Sort l into delivery order.  0, or -1 out of memory. */
static int
entries_sort(struct entry_list *l)
{
	struct sort_ref *refs;
	struct entry *v;
	size_t i;

	if (l->count < 2)
		return 0;
	refs = calloc(l->count, sizeof(*refs));
	v = calloc(l->count, sizeof(*v));
	if (refs == NULL || v == NULL) {
		free(refs);
		free(v);
		return -1;
	}
	for (i = 0; i < l->count; i++) {
		refs[i].key = lead_number(l->v[i].base);
		refs[i].base = l->v[i].base;
		refs[i].e = &l->v[i];
	}
	qsort(refs, l->count, sizeof(*refs), sort_ref_cmp);
	for (i = 0; i < l->count; i++)
		v[i] = *refs[i].e;
	free(refs);
	free(l->v);
	l->v = v;
	l->alloc = l->count;
	return 0;
}

/* A message moved from new/ to cur/ during the scan shows up twice with
 * the same inode: keep one.  Distinct files sharing a base name (a broken
 * delivery) are all kept, and flagged so their UIDLs stay unique.  The
 * files of such a run are stat'ed here; one gone by now is dropped,
 * unless all are: then the first stays, for count_size to follow it to
 * its new name or find it deleted.  0, or -1 with *err_r set. */
static int
entries_dedup(const char *mdpath, const int dfd[2], struct entry_list *l,
	      enum maildrop_error *err_r, const char **error_r)
{
	size_t run, end, i, j;

	for (run = 0; run < l->count; run = end) {
		size_t alive = 0, first_gone = SIZE_MAX;
		bool first = true;

		for (end = run + 1; end < l->count &&
		     strcmp(l->v[end].base, l->v[run].base) == 0; end++)
			;
		if (end - run < 2)
			continue;
		for (i = run; i < end; i++) {
			struct entry *e = &l->v[i];

			if (!e->statted) {
				int r = entry_stat(mdpath, dfd, e, err_r,
						   error_r);

				if (r < 0)
					return -1;
				if (r == 0) {
					e->dropped = true;
					if (first_gone == SIZE_MAX)
						first_gone = i;
					continue;
				}
			}
			if (!e->dropped)
				alive++;
		}
		if (alive == 0 && first_gone != SIZE_MAX)
			l->v[first_gone].dropped = false;
		for (i = run; i < end; i++) {
			if (l->v[i].dropped)
				continue;
			for (j = run; j < i; j++) {
				if (!l->v[j].dropped && l->v[j].statted &&
				    l->v[i].statted &&
				    l->v[j].dev == l->v[i].dev &&
				    l->v[j].ino == l->v[i].ino) {
					l->v[i].dropped = true;
					break;
				}
			}
			if (l->v[i].dropped)
				continue;
			if (!first)
				l->v[i].dup = true;
			first = false;
		}
	}
	return 0;
}

/* ---- UIDL ---------------------------------------------------------------- */

static bool
uidl_usable(const char *s)
{
	size_t len = strlen(s), i;

	if (len == 0 || len > POP3_UIDL_MAX)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* The base name when it is a valid UIDL, else "H" and the first 40 hex
 * digits of its SHA-256: stable, printable and short enough. */
static void
make_uidl(const char *key, bool force_digest, char out[POP3_UIDL_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LEN];
	unsigned int i;

	if (!force_digest && uidl_usable(key)) {
		strcpy(out, key);
		return;
	}
	sha256(key, strlen(key), md);
	out[0] = 'H';
	for (i = 0; i < UIDL_DIGEST_HEX / 2; i++) {
		out[1 + 2 * i] = hex[md[i] >> 4];
		out[2 + 2 * i] = hex[md[i] & 0xf];
	}
	out[1 + UIDL_DIGEST_HEX] = '\0';
}

/* ---- size cache ------------------------------------------------------------ */

static int parse_int64(const char *s, int64_t *value_r);

/* FNV-1a 64 over 64-bit words, then over the remaining bytes: a cache
 * of 100,000 messages is ~6 MB, checked on every login. */
static uint64_t
cache_sum(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL, w;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		h ^= w;
		h *= 0x100000001b3ULL;
	}
	for (; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static bool
stamp_equal(const struct dirstamp *a, const struct dirstamp *b)
{
	return a->valid && b->valid &&
	       a->ino[0] == b->ino[0] && a->sec[0] == b->sec[0] &&
	       a->nsec[0] == b->nsec[0] && a->ino[1] == b->ino[1] &&
	       a->sec[1] == b->sec[1] && a->nsec[1] == b->nsec[1];
}

/* Stat new/ and cur/ before listing them. */
static void
stamp_take(const char *mdpath, struct dirstamp *d)
{
	static const char *const subs[2] = { "new", "cur" };
	char path[PATH_MAX];
	struct stat st;
	time_t now = time(NULL);

	memset(d, 0, sizeof(*d));
	d->stable = true;
	for (int i = 0; i < 2; i++) {
		if (join(path, sizeof(path), mdpath, subs[i]) < 0 ||
		    stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			return;
		d->ino[i] = (uint64_t)st.st_ino;
		d->sec[i] = (int64_t)st.st_mtim.tv_sec;
		d->nsec[i] = st.st_mtim.tv_nsec;
		if (now == (time_t)-1 ||
		    (int64_t)now - d->sec[i] < DIR_STABLE_SEC)
			d->stable = false;
	}
	d->valid = true;
}

/* "dirs -" or "dirs I S N I S N". */
static int
stamp_parse(char *line, struct dirstamp *d)
{
	char *f[6], *p = line;
	uint64_t v;

	memset(d, 0, sizeof(*d));
	if (strcmp(line, "-") == 0)
		return 0;
	for (int i = 0; i < 6; i++) {
		char *sp = strchr(p, ' ');

		if ((sp == NULL) != (i == 5))
			return -1;
		if (sp != NULL)
			*sp = '\0';
		f[i] = p;
		p = sp != NULL ? sp + 1 : NULL;
	}
	for (int i = 0; i < 2; i++) {
		if (parse_uint(f[3 * i], 0, UINT64_MAX, &d->ino[i]) < 0 ||
		    parse_int64(f[3 * i + 1], &d->sec[i]) < 0 ||
		    parse_uint(f[3 * i + 2], 0, 999999999, &v) < 0)
			return -1;
		d->nsec[i] = (long)v;
	}
	d->valid = true;
	d->stable = true;
	return 0;
}

static int
parse_int64(const char *s, int64_t *value_r)
{
	uint64_t v;

	if (*s == '-') {
		if (parse_uint(s + 1, 1, (uint64_t)INT64_MAX + 1, &v) < 0)
			return -1;
		*value_r = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN :
			-(int64_t)v;
		return 0;
	}
	if (parse_uint(s, 0, INT64_MAX, &v) < 0)
		return -1;
	*value_r = (int64_t)v;
	return 0;
}

/* A CRLF size is the raw size plus at most one byte per bare LF plus a
 * final CRLF when the last byte is not LF: between raw and 2 * raw + 1
 * (0 for an empty message).  Anything else in the cache is not
 * believed. */
static bool
size_plausible(uint64_t raw, uint64_t size)
{
	if (raw == 0)
		return size == 0;
	return size >= raw && size <= 2 * raw + 1;
}

static int
cache_ent_cmp(const void *a, const void *b)
{
	const struct cache_ent *x = a, *y = b;
	size_t n = x->base_len < y->base_len ? x->base_len : y->base_len;
	int c = memcmp(x->base, y->base, n);

	if (c != 0)
		return c;
	return (x->base_len > y->base_len) - (x->base_len < y->base_len);
}

/* Parse one line "RAW MTIME SIZE SUB/FILE" in place. */
static int
cache_parse_line(char *line, struct cache_ent *e)
{
	const char *sep;
	char *f[3], *p = line;
	int i;

	for (i = 0; i < 3; i++) {
		char *sp = strchr(p, ' ');

		if (sp == NULL)
			return -1;
		*sp = '\0';
		f[i] = p;
		p = sp + 1;
	}
	if ((strncmp(p, "new/", 4) != 0 && strncmp(p, "cur/", 4) != 0) ||
	    p[4] == '\0' || p[4] == '.' || strchr(p + 4, '/') != NULL)
		return -1;
	sep = strchr(p + 4, INFO_SEP);
	e->name = p;
	e->base = p + 4;
	e->base_len = sep != NULL ? (size_t)(sep - (p + 4)) : strlen(p + 4);
	if (e->base_len == 0)
		return -1;
	if (parse_uint(f[0], 0, MAILDROP_MAX_MESSAGE_SIZE, &e->raw_size) < 0 ||
	    parse_int64(f[1], &e->mtime) < 0 ||
	    parse_uint(f[2], 0, 2 * MAILDROP_MAX_MESSAGE_SIZE + 1,
		       &e->size) < 0 ||
	    !size_plausible(e->raw_size, e->size))
		return -1;
	e->used = false;
	return 0;
}

static void
cache_free(struct cache *c)
{
	free(c->buf);
	free(c->ents);
	c->buf = NULL;
	c->ents = NULL;
	c->count = 0;
}

/* Check and parse buf[0..len), NUL-terminated at len. */
static int
cache_parse(struct cache *c, size_t len)
{
	char *buf = c->buf, *p, *end, *last, *nl, *start;
	size_t vlen = strlen(CACHE_VERSION_LINE), plen, lines = 0, n;
	size_t dlen = strlen(CACHE_DIRS_PREFIX);
	uint64_t sum;

	if (len < vlen || buf[len - 1] != '\n' ||
	    memcmp(buf, CACHE_VERSION_LINE, vlen) != 0 ||
	    memchr(buf, '\0', len) != NULL)
		return -1;
	/* The checksum line is the last one. */
	buf[len - 1] = '\0';
	last = strrchr(buf, '\n');
	buf[len - 1] = '\n';
	if (last == NULL)
		return -1;
	last++;
	plen = strlen(CACHE_CHECKSUM_PREFIX);
	if ((size_t)(buf + len - last) != plen + 16 + 1 ||
	    memcmp(last, CACHE_CHECKSUM_PREFIX, plen) != 0)
		return -1;
	sum = cache_sum(buf, (size_t)(last - buf));
	{
		char want[17];

		snprintf(want, sizeof(want), "%016" PRIx64, sum);
		if (memcmp(last + plen, want, 16) != 0)
			return -1;
	}

	end = last;
	p = buf + vlen;
	nl = memchr(p, '\n', (size_t)(end - p));
	if (nl == NULL || (size_t)(nl - p) < dlen ||
	    memcmp(p, CACHE_DIRS_PREFIX, dlen) != 0)
		return -1;
	*nl = '\0';
	if (stamp_parse(p + dlen, &c->stamp) < 0)
		return -1;
	start = nl + 1;
	for (p = start; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL || nl - p > CACHE_LINE_MAX)
			return -1;
		lines++;
	}
	if (lines > MAILDROP_MAX_MESSAGES)
		return -1;
	c->ents = calloc(lines == 0 ? 1 : lines, sizeof(*c->ents));
	if (c->ents == NULL)
		return -1;
	n = 0;
	for (p = start; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		*nl = '\0';
		if (cache_parse_line(p, &c->ents[n]) < 0)
			return -1;
		n++;
	}
	c->count = n;
	return 0;
}

/* Load the cache.  Anything unusable leaves it empty, flagged invalid so
 * that it gets rewritten; never an error. */
static void
cache_load(const char *mdpath, struct cache *c)
{
	char path[PATH_MAX];
	struct stat st;
	size_t len = 0;
	ssize_t r;
	int fd;

	memset(c, 0, sizeof(*c));
	if (join(path, sizeof(path), mdpath, CACHE_NAME) < 0)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno != ENOENT)
			c->invalid = true;
		return;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > CACHE_FILE_MAX)
		goto invalid;
	c->buf = malloc((size_t)st.st_size + 1);
	if (c->buf == NULL)
		goto invalid;
	/* Read what fstat announced; a file that grows meanwhile is being
	 * rewritten by another session and fails the checksum. */
	while (len < (size_t)st.st_size) {
		r = read(fd, c->buf + len, (size_t)st.st_size - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			goto invalid;
		len += (size_t)r;
	}
	c->buf[len] = '\0';
	if (cache_parse(c, len) < 0)
		goto invalid;
	close(fd);
	return;
invalid:
	close(fd);
	cache_free(c);
	c->invalid = true;
}

static struct cache_ent *
cache_find(struct cache *c, const char *base)
{
	struct cache_ent key = { .base = base, .base_len = strlen(base) };

	if (c->count == 0)
		return NULL;
	if (!c->sorted) {
		qsort(c->ents, c->count, sizeof(*c->ents), cache_ent_cmp);
		c->sorted = true;
	}
	return bsearch(&key, c->ents, c->count, sizeof(*c->ents),
		       cache_ent_cmp);
}

static bool
entry_cacheable(const struct entry *e)
{
	return !e->dropped && !e->dup && !e->name_nl;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t r;

	while (len > 0) {
		r = write(fd, buf, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		buf += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Append a line to the cache text being built, within CACHE_FILE_MAX. */
static int
cache_append(char **buf, size_t *len, size_t *alloc, const char *line,
	     size_t n)
{
	char *nb;
	size_t na;

	if (*len + n > CACHE_FILE_MAX)
		return -1;
	if (*len + n > *alloc) {
		for (na = *alloc == 0 ? 65536 : *alloc; na < *len + n; na *= 2)
			;
		nb = realloc(*buf, na);
		if (nb == NULL)
			return -1;
		*buf = nb;
		*alloc = na;
	}
	memcpy(*buf + *len, line, n);
	*len += n;
	return 0;
}

/* The cache line of e in line; its length, or -1 when e is not cached:
 * gone, sharing its base name, a name with a newline, or a line the
 * reader would refuse as too long (such a message is counted again next
 * time). */
static size_t
put_u64(char *out, uint64_t v)
{
	char digits[20];
	size_t n = 0, i;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		out[i] = digits[n - 1 - i];
	return n;
}

/* Written by hand rather than with snprintf: this runs for every
 * message of a Maildir whose cache is rebuilt. */
static int
cache_line(const struct entry *e, char *line, size_t size)
{
	size_t nlen, w = 0;

	if (!entry_cacheable(e))
		return -1;
	nlen = strlen(e->name);
	/* Three numbers of at most 20 digits, a sign, three spaces, the
	 * name and a newline. */
	if (nlen > CACHE_LINE_MAX || 3 * 20 + 1 + 3 + nlen + 1 > size)
		return -1;
	w += put_u64(line + w, e->raw_size);
	line[w++] = ' ';
	if (e->mtime < 0) {
		line[w++] = '-';
		w += put_u64(line + w, 0 - (uint64_t)e->mtime);
	} else {
		w += put_u64(line + w, (uint64_t)e->mtime);
	}
	line[w++] = ' ';
	w += put_u64(line + w, e->size);
	line[w++] = ' ';
	memcpy(line + w, e->name, nlen);
	w += nlen;
	line[w++] = '\n';
	if (w > CACHE_LINE_MAX + 1)
		return -1;
	return (int)w;
}

/* Rewrite the cache atomically.  Failure only costs speed next time, so
 * it is logged and otherwise ignored.  No fsync: a cache torn by a crash
 * fails its checksum and is rebuilt. */
static void
cache_write(const char *mdpath, const struct entry_list *l,
	    const struct dirstamp *stamp)
{
	bool complete = stamp->valid && stamp->stable;
	char path[PATH_MAX], tmp[PATH_MAX], lp[PATH_MAX + 16];
	char line[CACHE_LINE_MAX + 64], head[CACHE_HEAD_ROOM];
	char *buf = NULL, *start;
	size_t len = 0, alloc = 0, i;
	const char *what;
	int fd = -1, tries, w, hw;

	if (join(path, sizeof(path), mdpath, CACHE_NAME) < 0)
		return;
	w = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (w < 0 || (size_t)w >= sizeof(tmp))
		return;
	what = "too many messages to cache";
	/* The lines are made once; the two header lines, which say
	 * whether every message got one, then go into the room kept for
	 * them in front.  Entries that cannot be cached (see cache_line)
	 * make the cache incomplete: then it carries no stamp. */
	memset(head, 0, sizeof(head));
	if (cache_append(&buf, &len, &alloc, head, sizeof(head)) < 0)
		goto fail;
	for (i = 0; i < l->count; i++) {
		w = cache_line(&l->v[i], line, sizeof(line));
		if (w < 0) {
			complete = false;
			continue;
		}
		if (cache_append(&buf, &len, &alloc, line, (size_t)w) < 0)
			goto fail;
	}
	if (complete)
		hw = snprintf(head, sizeof(head), "%s" CACHE_DIRS_PREFIX
			      "%" PRIu64 " %" PRId64 " %ld %" PRIu64 " %"
			      PRId64 " %ld\n", CACHE_VERSION_LINE,
			      stamp->ino[0], stamp->sec[0], stamp->nsec[0],
			      stamp->ino[1], stamp->sec[1], stamp->nsec[1]);
	else
		hw = snprintf(head, sizeof(head), "%s" CACHE_DIRS_PREFIX "-\n",
			      CACHE_VERSION_LINE);
	if (hw < 0 || (size_t)hw >= sizeof(head))
		goto fail;
	start = buf + sizeof(head) - (size_t)hw;
	memcpy(start, head, (size_t)hw);
	w = snprintf(line, sizeof(line), "%s%016" PRIx64 "\n",
		     CACHE_CHECKSUM_PREFIX,
		     cache_sum(start, (size_t)(buf + len - start)));
	if (cache_append(&buf, &len, &alloc, line, (size_t)w) < 0)
		goto fail;
	start = buf + sizeof(head) - (size_t)hw;

	/* A leftover from a dead process with the same pid is ours. */
	for (tries = 0; tries < 2; tries++) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			  O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			break;
		(void)unlink(tmp);
	}
	if (fd < 0) {
		what = strerror(errno);
		goto fail;
	}
	if (write_all(fd, start, (size_t)(buf + len - start)) < 0) {
		what = strerror(errno);
		close(fd);
		goto fail_unlink;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		what = strerror(errno);
		goto fail_unlink;
	}
	free(buf);
	return;
fail_unlink:
	(void)unlink(tmp);
fail:
	log_msg(LOG_WARNING, "maildir: cannot write size cache %s: %s",
		logpath(lp, sizeof(lp), path), what);
	free(buf);
}

/* ---- sizes ------------------------------------------------------------------- */

/* How reading a message for its size went. */
enum count_result {
	COUNT_OK,
	COUNT_NOT_REGULAR,      /* or fstat failed (errno set) */
	COUNT_TOO_LARGE,
	COUNT_READ_ERROR,       /* errno set */
	COUNT_SHRANK
};

/* Read the open message fd into buf (READ_CHUNK bytes) and set e's
 * size, raw size and mtime.  *cold: set when the first read finds the
 * data outside the page cache (then the caller reads ahead); when
 * already set, not looked at. */
static enum count_result
count_fd(int fd, struct entry *e, unsigned char *buf, bool *cold)
{
	struct crlf_count cc;
	struct stat st;
	uint64_t left;
	ssize_t r;
	bool first = true;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return COUNT_NOT_REGULAR;
	e->raw_size = (uint64_t)st.st_size;
	if (e->raw_size > MAILDROP_MAX_MESSAGE_SIZE)
		return COUNT_TOO_LARGE;
	e->mtime = (int64_t)st.st_mtime;
	e->dev = st.st_dev;
	e->ino = st.st_ino;
	e->statted = true;
	crlf_count_init(&cc);
	for (left = e->raw_size; left > 0; left -= (uint64_t)r) {
		size_t want = left < READ_CHUNK ? (size_t)left : READ_CHUNK;

		r = -1;
#ifdef RWF_NOWAIT
		if (first && !*cold) {
			struct iovec iov = { buf, want };

			r = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
			if (r < 0 && errno == EAGAIN)
				*cold = true;
		}
#endif
		if (r < 0)
			r = read(fd, buf, want);
		first = false;
		if (r < 0 && errno == EINTR) {
			r = 0;
			continue;
		}
		/* Maildir messages never change; one that shrinks while we
		 * read it is being damaged by someone. */
		if (r < 0)
			return COUNT_READ_ERROR;
		if (r == 0)
			return COUNT_SHRANK;
		crlf_count_feed(&cc, buf, (size_t)r);
	}
	e->size = crlf_count_finish(&cc);
	return COUNT_OK;
}

/* O_NONBLOCK: a FIFO put in a message's place must not hang the session
 * (fstat then refuses it); regular files ignore it. */
#define MSG_OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | \
			O_NONBLOCK)

/* Count the CRLF size of e by reading it into buf (READ_CHUNK bytes),
 * following a move to cur/ and reporting every failure: the careful
 * path, for what count_fast left.  1 counted, 0 the message is gone
 * (e->dropped set), -1 error. */
static int
count_size(const char *mdpath, const int dfd[2], struct entry *e,
	   unsigned char *buf, enum maildrop_error *err_r,
	   const char **error_r)
{
	char lp[PATH_MAX + 16], *moved;
	bool cold = true;
	int fd, ret = -1;

	fd = msg_openat(mdpath, dfd, e->name, MSG_OPEN_FLAGS);
	if (fd < 0 && errno == ENOENT) {
		switch (find_moved(mdpath, e->base, &moved)) {
		case 1:
			/* The base name stays; only SUB/FILE changes. */
			{
				const char *nb;
				char *nn = entry_name("cur", moved + 4, &nb);

				free(moved);
				if (nn == NULL) {
					errno = ENOMEM;
					break;
				}
				free(e->name);
				e->name = nn;
				e->base = nb;
				e->name_nl = strchr(nn, '\n') != NULL;
			}
			fd = msg_openat(mdpath, dfd, e->name, MSG_OPEN_FLAGS);
			if (fd < 0 && errno == ENOENT) {
				e->dropped = true;
				return 0;
			}
			break;
		case 0:
			e->dropped = true;
			return 0;
		default:
			break;
		}
	}
	if (fd < 0) {
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = maildir_err("cannot open %s: %s",
			msg_logpath(lp, sizeof(lp), mdpath, e->name),
			strerror(errno));
		return -1;
	}
	switch (count_fd(fd, e, buf, &cold)) {
	case COUNT_OK:
		ret = 1;
		break;
	case COUNT_NOT_REGULAR:
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = maildir_err("%s is not a regular file",
			msg_logpath(lp, sizeof(lp), mdpath, e->name));
		break;
	case COUNT_TOO_LARGE:
		*err_r = MAILDROP_ERR_PERM;
		*error_r = maildir_err("message %s is too large (%" PRIu64
			" bytes, the limit is %llu)",
			msg_logpath(lp, sizeof(lp), mdpath, e->name),
			e->raw_size, MAILDROP_MAX_MESSAGE_SIZE);
		break;
	case COUNT_READ_ERROR:
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = maildir_err("cannot read %s: %s",
			msg_logpath(lp, sizeof(lp), mdpath, e->name),
			strerror(errno));
		break;
	case COUNT_SHRANK:
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = maildir_err("cannot read %s: file shrank while "
			"reading", msg_logpath(lp, sizeof(lp), mdpath, e->name));
		break;
	}
	close(fd);
	return ret;
}

/* How many messages count_fast keeps open ahead of the one it reads
 * once their data is found outside the page cache: their reads are
 * started at open (posix_fadvise), so that many are in flight instead
 * of one synchronous read after another. */
#define COUNT_LOOKAHEAD 32

/* The common case, quickly: open each of todo[0..n) relative to its
 * directory and count it, in the order given.  A message that cannot be
 * counted so (gone, moved, not regular, too large, a read error, no
 * descriptor left) is left as it is for count_size, which handles or
 * reports it; e->size_known tells which were counted. */
static void
count_fast(struct entry **todo, size_t n, const int dfd[2],
	   unsigned char *buf, bool *cold)
{
	int ring[COUNT_LOOKAHEAD];
	size_t opened = 0, i;

	for (i = 0; i < n; i++) {
		size_t ahead = *cold ? COUNT_LOOKAHEAD : 1;
		int fd;

		for (; opened < n && opened < i + ahead; opened++) {
			struct entry *e = todo[opened];
			const char *rel;
			int dirfd = msg_dirfd(dfd, e->name, &rel);

			fd = dirfd < 0 ? -1 :
				openat(dirfd, rel, MSG_OPEN_FLAGS);
#ifdef POSIX_FADV_WILLNEED
			if (fd >= 0 && *cold)
				(void)posix_fadvise(fd, 0, 0,
						    POSIX_FADV_WILLNEED);
#endif
			ring[opened % COUNT_LOOKAHEAD] = fd;
		}
		fd = ring[i % COUNT_LOOKAHEAD];
		if (fd < 0)
			continue;
		if (count_fd(fd, todo[i], buf, cold) == COUNT_OK)
			todo[i]->size_known = true;
		close(fd);
	}
}

/* Counting is mostly system calls (open, fstat, read, close), which
 * wait for the disk when the page cache is cold: with many messages to
 * count, COUNT_THREADS threads in all (this one and helpers) take
 * batches of them in turn.  That is more threads than CPUs on a small
 * machine on purpose: with the data cached they share the CPUs at no
 * loss, and with it on disk more reads are in flight (on two CPUs, four
 * threads list a cold Maildir about twice as fast as two).  The
 * helpers only run count_fast, which touches nothing but its own
 * entries and buffer; whatever it leaves is done afterwards by
 * count_size, in this thread.  They are gone when maildir_open
 * returns. */
#define COUNT_THREADS 4
#define COUNT_PARALLEL_MIN 1024
#define COUNT_BATCH 256

struct count_work {
	struct entry **todo;
	size_t n;
	const int *dfd;
	atomic_size_t next;     /* the first entry of the next batch */
};

struct count_worker {
	struct count_work *work;
	unsigned char *buf;
	pthread_t thread;
};

static void
count_batches(struct count_work *w, unsigned char *buf)
{
	bool cold = false;
	size_t from;

	while ((from = atomic_fetch_add(&w->next, COUNT_BATCH)) < w->n)
		count_fast(w->todo + from, w->n - from < COUNT_BATCH ?
			   w->n - from : COUNT_BATCH, w->dfd, buf, &cold);
}

static void *
count_thread(void *arg)
{
	struct count_worker *cw = arg;

	count_batches(cw->work, cw->buf);
	return NULL;
}

/* Count todo[0..n) with count_fast, in parallel when it is worth it.
 * buf is READ_CHUNK bytes for this thread; a thread that cannot be had
 * (memory, process limits) only means fewer of them. */
static void
count_parallel(struct entry **todo, size_t n, const int dfd[2],
	       unsigned char *buf)
{
	struct count_worker workers[COUNT_THREADS - 1];
	struct count_work w;
	sigset_t all, old;
	pthread_attr_t attr;
	size_t want = 0, started = 0, i;

	w.todo = todo;
	w.n = n;
	w.dfd = dfd;
	atomic_init(&w.next, 0);
	if (n >= COUNT_PARALLEL_MIN)
		want = COUNT_THREADS - 1;
	if (want > 0 && pthread_attr_init(&attr) == 0) {
		(void)pthread_attr_setstacksize(&attr, 256 * 1024);
		/* Signals stay with this thread. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		for (i = 0; i < want; i++) {
			struct count_worker *cw = &workers[started];

			cw->work = &w;
			cw->buf = malloc(READ_CHUNK);
			if (cw->buf == NULL)
				break;
			if (pthread_create(&cw->thread, &attr, count_thread,
					   cw) != 0) {
				free(cw->buf);
				break;
			}
			started++;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&attr);
	}
	count_batches(&w, buf);
	for (i = 0; i < started; i++) {
		pthread_join(workers[i].thread, NULL);
		free(workers[i].buf);
	}
}

static int
entry_ino_cmp(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a;
	const struct entry *y = *(struct entry *const *)b;

	return (x->ino > y->ino) - (x->ino < y->ino);
}

/* ---- driver ------------------------------------------------------------------ */

/* The message list straight from a cache whose stamp matches the
 * directories (see the top of this file).  0, or -1 with *err_r set. */
static int
open_from_cache(struct maildrop *md, const struct cache *c,
		enum maildrop_error *err_r, const char **error_r)
{
	if (c->count > 0) {
		md->msgs = calloc(c->count, sizeof(*md->msgs));
		if (md->msgs == NULL)
			goto nomem;
	}
	for (size_t i = 0; i < c->count; i++) {
		const struct cache_ent *ce = &c->ents[i];
		struct maildrop_msg *m = &md->msgs[md->count];
		const char *base;
		char sub[4];

		memcpy(sub, ce->name, 3);
		sub[3] = '\0';
		m->name = entry_name(sub, ce->name + 4, &base);
		if (m->name == NULL)
			goto nomem;
		/* A complete cache has no shared base names: the UIDL is
		 * made from the base name when asked for (maildir_uidl). */
		(void)base;
		m->size = ce->size;
		m->raw_size = ce->raw_size;
		m->offset = 0;
		m->deleted = false;
		md->total_size += m->size;
		md->count++;
	}
	return 0;
nomem:
	*err_r = MAILDROP_ERR_TEMP;
	*error_r = "out of memory listing the Maildir";
	return -1;
}

static int
maildir_open(struct maildrop *md, enum maildrop_error *err_r,
	     const char **error_r)
{
	struct entry_list l = { NULL, 0, 0 };
	int dfd[2] = { -1, -1 };
	unsigned char *buf = NULL;
	struct entry **todo = NULL;
	struct dirstamp stamp;
	struct cache c;
	size_t i, n, ntodo = 0, used = 0;
	bool changed;
	int ret = -1;

	*err_r = MAILDROP_OK;
	*error_r = NULL;
	md->msgs = NULL;
	md->count = 0;
	md->total_size = 0;
	md->priv = NULL;
	memset(&c, 0, sizeof(c));

	/* Before listing: a change made while we list must show. */
	stamp_take(md->path, &stamp);
	if ((md->flags & MAILDROP_NO_CACHE) == 0) {
		cache_load(md->path, &c);
		if (!c.invalid && stamp_equal(&c.stamp, &stamp)) {
			ret = open_from_cache(md, &c, err_r, error_r);
			goto cleanup;
		}
	}
	if (scan_dir(md->path, SUB_NEW, dfd, &l, err_r, error_r) < 0 ||
	    scan_dir(md->path, SUB_CUR, dfd, &l, err_r, error_r) < 0)
		goto cleanup;
	if (entries_sort(&l) < 0) {
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = "out of memory listing the Maildir";
		goto cleanup;
	}
	if (entries_dedup(md->path, dfd, &l, err_r, error_r) < 0)
		goto cleanup;

	/* Rewrite a cache that could now carry a stamp it lacks. */
	changed = c.invalid || (stamp.valid && stamp.stable &&
				!stamp_equal(&c.stamp, &stamp));
	/* Sizes from the cache where it is right; the other messages are
	 * counted below. */
	if (l.count > 0 && (todo = calloc(l.count, sizeof(*todo))) == NULL)
		goto nomem;
	for (i = 0; i < l.count; i++) {
		struct entry *e = &l.v[i];
		struct cache_ent *ce;

		if (e->dropped)
			continue;
		ce = entry_cacheable(e) ? cache_find(&c, e->base) : NULL;
		if (ce != NULL) {
			/* Gone by now: count_size follows a move. */
			int r = e->statted ? 1 :
				entry_stat(md->path, dfd, e, err_r, error_r);

			if (r < 0)
				goto cleanup;
			if (e->dropped)
				continue;
			if (r > 0 && ce->raw_size == e->raw_size &&
			    ce->mtime == e->mtime) {
				if (!ce->used)
					used++;
				ce->used = true;
				e->size = ce->size;
				continue;
			}
		}
		todo[ntodo++] = e;
	}
	/* In inode order: on a cold cache, the inodes (and, as they are
	 * usually allocated alike, the data) are then read in disk order
	 * rather than in the directory's hash order. */
	if (ntodo > 1)
		qsort(todo, ntodo, sizeof(*todo), entry_ino_cmp);
	if (ntodo > 0 && (buf = malloc(READ_CHUNK)) == NULL)
		goto nomem;
	count_parallel(todo, ntodo, dfd, buf);
	for (i = 0; i < ntodo; i++) {
		if (!todo[i]->size_known &&
		    count_size(md->path, dfd, todo[i], buf, err_r,
			       error_r) < 0)
			goto cleanup;
		if (entry_cacheable(todo[i]))
			changed = true;
	}
	/* Entries of deleted messages are pruned by rewriting. */
	if (used != c.count)
		changed = true;

	/* Written while the entries still own their names. */
	if (changed && (md->flags & MAILDROP_NO_CACHE) == 0)
		cache_write(md->path, &l, &stamp);

	n = 0;
	for (i = 0; i < l.count; i++)
		if (!l.v[i].dropped)
			n++;
	if (n > 0) {
		md->msgs = calloc(n, sizeof(*md->msgs));
		if (md->msgs == NULL) {
			*err_r = MAILDROP_ERR_TEMP;
			*error_r = "out of memory listing the Maildir";
			goto cleanup;
		}
	}
	for (i = 0; i < l.count; i++) {
		struct entry *e = &l.v[i];
		struct maildrop_msg *m;

		if (e->dropped)
			continue;
		m = &md->msgs[md->count];
		/* A shared base name gets a digest of the whole name, so
		 * UIDLs stay unique within the maildrop; made now, as the
		 * name may change (flags) during the session.  Any other
		 * UIDL is made from the base name when asked for. */
		if (e->dup) {
			m->uidl = malloc(POP3_UIDL_MAX + 1);
			if (m->uidl == NULL) {
				*err_r = MAILDROP_ERR_TEMP;
				*error_r = "out of memory listing the Maildir";
				goto cleanup;
			}
			make_uidl(e->name, true, m->uidl);
		}
		m->size = e->size;
		m->raw_size = e->raw_size;
		m->offset = 0;
		m->deleted = false;
		m->name = e->name;      /* ownership moves to md */
		e->name = NULL;
		md->total_size += m->size;
		md->count++;
	}
	ret = 0;
	goto cleanup;
nomem:
	*err_r = MAILDROP_ERR_TEMP;
	*error_r = "out of memory listing the Maildir";
cleanup:
	/* On failure, maildrop_open frees what is in md->msgs. */
	for (i = 0; i < 2; i++)
		if (dfd[i] >= 0)
			close(dfd[i]);
	free(buf);
	free(todo);
	entries_free(&l);
	cache_free(&c);
	return ret;
}

/* Also creates the Maildir (mode 0700, with new/ cur/ tmp/) when it is
 * missing, so that the lock file has a place: mailboxes may be created
 * lazily, on the first login. */
static int
maildir_lock_path(const char *path, char *out, size_t size)
{
	static const char *const subs[] = { "new", "cur", "tmp" };
	char sub[PATH_MAX], lp[PATH_MAX + 16];
	size_t i;
	int n;

	n = snprintf(out, size, "%s/%s", path, LOCK_NAME);
	if (n < 0 || (size_t)n >= size)
		return -1;
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		log_msg(LOG_ERR, "maildir: cannot create %s: %s",
			logpath(lp, sizeof(lp), path), strerror(errno));
		return -1;
	}
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (join(sub, sizeof(sub), path, subs[i]) < 0)
			return -1;
		if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
			log_msg(LOG_ERR, "maildir: cannot create %s: %s",
				logpath(lp, sizeof(lp), sub), strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Open the message's file, following a move to cur/ by another program
 * (the new name replaces msgs[idx].name). */
static int
open_msg_file(struct maildrop *md, size_t idx, int *fd_r)
{
	char path[PATH_MAX], base[NAME_MAX + 1], *moved;
	int fd, r;

	if (join(path, sizeof(path), md->path, md->msgs[idx].name) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd >= 0 || errno != ENOENT) {
		*fd_r = fd;
		return fd < 0 ? -1 : 0;
	}
	if (name_base(md->msgs[idx].name, base, sizeof(base)) < 0) {
		errno = ENOENT;
		return -1;
	}
	r = find_moved(md->path, base, &moved);
	if (r <= 0) {
		if (r == 0)
			errno = ENOENT;
		return -1;
	}
	if (join(path, sizeof(path), md->path, moved) < 0) {
		free(moved);
		errno = ENAMETOOLONG;
		return -1;
	}
	free(md->msgs[idx].name);
	md->msgs[idx].name = moved;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	*fd_r = fd;
	return fd < 0 ? -1 : 0;
}

static int
maildir_msg_open(struct maildrop *md, size_t idx, int *fd_r,
		 const char **error_r)
{
	char lp[NAME_MAX * 4 + 8];
	struct stat st;
	int fd = -1;

	*fd_r = -1;
	*error_r = NULL;
	if (idx >= md->count) {
		*error_r = "no such message";
		return -1;
	}
	if (open_msg_file(md, idx, &fd) < 0) {
		*error_r = maildir_err("cannot open message %s: %s",
			logpath(lp, sizeof(lp), md->msgs[idx].name),
			strerror(errno));
		return -1;
	}
	/* The size we announced must be what we send. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != md->msgs[idx].raw_size) {
		*error_r = maildir_err("message %s changed on disk",
			logpath(lp, sizeof(lp), md->msgs[idx].name));
		close(fd);
		return -1;
	}
	*fd_r = fd;
	return 0;
}

static void
maildir_msg_close(struct maildrop *md, size_t idx, int fd)
{
	(void)md;
	(void)idx;
	if (fd >= 0)
		close(fd);
}

/* 1 removed, 0 already gone, -1 error (errno set). */
static int
unlink_msg(struct maildrop *md, size_t idx)
{
	char path[PATH_MAX], base[NAME_MAX + 1], *moved;
	int r;

	if (join(path, sizeof(path), md->path, md->msgs[idx].name) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (unlink(path) == 0)
		return 1;
	if (errno != ENOENT)
		return -1;
	if (name_base(md->msgs[idx].name, base, sizeof(base)) < 0)
		return 0;
	r = find_moved(md->path, base, &moved);
	if (r <= 0)
		return r;
	if (join(path, sizeof(path), md->path, moved) < 0) {
		free(moved);
		errno = ENAMETOOLONG;
		return -1;
	}
	free(md->msgs[idx].name);
	md->msgs[idx].name = moved;
	if (unlink(path) == 0)
		return 1;
	return errno == ENOENT ? 0 : -1;
}

static int
fsync_dir(const char *mdpath, const char *sub)
{
	char path[PATH_MAX];
	int fd, ret;

	if (join(path, sizeof(path), mdpath, sub) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	ret = fsync(fd);
	/* Some filesystems cannot fsync a directory; that is no failure of
	 * the deletions themselves. */
	if (ret < 0 && (errno == EINVAL || errno == EROFS))
		ret = 0;
	close(fd);
	return ret;
}

static int
maildir_commit(struct maildrop *md, unsigned int *deleted_r,
	       enum maildrop_error *err_r, const char **error_r)
{
	char lp[NAME_MAX * 4 + 8];
	unsigned int deleted = 0, failed = 0;
	int first_errno = 0, r;
	size_t i;

	*deleted_r = 0;
	*err_r = MAILDROP_OK;
	*error_r = NULL;
	for (i = 0; i < md->count; i++) {
		if (!md->msgs[i].deleted)
			continue;
		r = unlink_msg(md, i);
		if (r > 0) {
			deleted++;
		} else if (r < 0) {
			if (failed++ == 0)
				first_errno = errno;
			log_msg(LOG_WARNING, "maildir: cannot delete %s: %s",
				logpath(lp, sizeof(lp), md->msgs[i].name),
				strerror(errno));
		}
	}
	if (deleted > 0 &&
	    (fsync_dir(md->path, "new") < 0 || fsync_dir(md->path, "cur") < 0)) {
		if (failed++ == 0)
			first_errno = errno;
	}
	*deleted_r = deleted;
	if (failed > 0) {
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = maildir_err("%u of the deletions failed (first: %s)",
				       failed, strerror(first_errno));
		return -1;
	}
	return 0;
}

static void
maildir_close(struct maildrop *md)
{
	/* This driver keeps no private data today. */
	free(md->priv);
	md->priv = NULL;
}

/* The UIDL of a message with a base name of its own: made from that base
 * name, which stays when another program moves the message to cur/ or
 * changes its flags. */
static void
maildir_uidl(const struct maildrop *md, size_t idx, char *out)
{
	char base[NAME_MAX + 1];

	if (name_base(md->msgs[idx].name, base, sizeof(base)) < 0) {
		/* Not from a listing (names fit NAME_MAX); still unique. */
		make_uidl(md->msgs[idx].name, true, out);
		return;
	}
	make_uidl(base, false, out);
}

const struct maildrop_driver maildrop_maildir = {
	.name = "maildir",
	.lock_path = maildir_lock_path,
	.open = maildir_open,
	.msg_open = maildir_msg_open,
	.msg_close = maildir_msg_close,
	.uidl = maildir_uidl,
	.commit = maildir_commit,
	.close = maildir_close,
};
