/* mbox.c: the mbox driver: spool mailboxes (/var/mail/USER) shared with
 * the MDAs that deliver into them.
 *
 * Format.  A message starts with a "From " line at the start of the file
 * or right after an empty line ("\n" or "\r\n"), as Debian's MDAs write
 * them; the empty line before the next "From " line (and one at the end
 * of the file) separates messages and is not part of either.  Body lines
 * quoted as ">From " are served as stored.  A message is the bytes after
 * its "From " line; its RFC 1939 size follows crlf.h.
 *
 * Locks.  The session lock is a file of its own (.NAME.pop), so a POP3
 * session never blocks delivery.  The delivery lock (NAME.lock dotlock,
 * then an fcntl write lock on the mbox, the order Debian MDAs use) is
 * held only while the message offsets are read at login and while
 * deletions are applied at QUIT.  Mail appended in between lies past the
 * snapshot: the session does not see it and the update keeps it.
 *
 * Update.  Deleting rewrites the file from the first deleted message on,
 * in place, so that the inode, owner and mode stay and an MDA holding the
 * file open appends to the right one.  It is made crash-safe with a
 * journal: the new content of that tail is first written to .NAME.journal
 * (fsync, atomic rename), then copied over the mbox, which is truncated;
 * the journal goes last.  A journal found at the next open is applied
 * again; see journal_apply() for how a half-done copy, a done truncation
 * and mail appended after a crash are told apart.
 *
 * UIDLs.  Each message gets a number from a per-maildrop counter, written
 * in .NAME.uidl together with a digest of the message (its "From " line,
 * its size and its first 1 KiB): a message keeps its number for as long
 * as it stays, whatever happens to the others, and a number is never
 * given again.  The UIDL is "EPOCH.NUMBER" where EPOCH is random and
 * chosen when the state file is created: a lost state file yields all
 * new UIDLs (clients may fetch messages again) but never an old one for
 * another message.  X-UIDL headers are ignored.
 *
 * Index.  .NAME.index caches the scan (offsets, sizes, digests) keyed on
 * device, inode, size and mtime; a few of its "From " lines are checked
 * even then.  When the mbox only grew, the cached part is checked message
 * by message ("From " line digests) and only the rest is read.  It also
 * keeps the UIDL numbers, with the device, inode, size, mtime and ctime
 * of the .NAME.uidl they agree with: while that file is unchanged, a
 * login reads neither it nor the mbox, just the index, in two reads.
 *
 * Scan.  What the index does not cover is read in one pass (see scan());
 * from 16 MiB on, it is cut at the first message start after the middle
 * and the second part is read by a second thread, started and joined
 * within the scan, so that a cold login uses two CPUs. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include "dotlock.h"
#include "log.h"
#include "maildrop.h"
#include "sha256.h"
#include "util.h"

/* Bytes of the "From " line and of the content that go into a message's
 * digest, bounded whatever the message.  The digest has to tell messages
 * apart and to know a message again after another program rewrote the
 * mbox.  The "From " line gives the envelope sender and the delivery
 * time to the second, the raw size goes in too, and the first KiB of the
 * content holds the headers the delivering MTA put first: its Received
 * line with its queue id and time, usually Return-Path and Delivered-To,
 * often Message-ID and Date.  Two deliveries alike in all of that are
 * as good as the same message (and equal messages keep their numbers
 * in order anyway); hashing more only costs time: on a cold login the
 * digests are most of the work. */
#define FROM_DIGEST_MAX 1024
#define CONTENT_DIGEST_MAX 1024
#define ID_LEN 16
#define SCAN_CHUNK (1024 * 1024)
/* A scan of at least SPLIT_MIN bytes is shared by two threads; the
 * second one's part starts at the first message at most SPLIT_SEARCH
 * bytes after the middle. */
#define SPLIT_MIN (16 * 1024 * 1024)
#define SPLIT_SEARCH (8 * 1024 * 1024)
#define SPLIT_STACK (256 * 1024)
#define COPY_CHUNK (64 * 1024)

/* State files: bounded so that a damaged or hostile file cannot eat
 * memory; ~50 bytes a message covers MAILDROP_MAX_MESSAGES. */
#define UIDL_FILE_MAX (128 * 1024 * 1024)
#define UIDL_LINE_MAX 128
#define UIDL_VERSION_PREFIX "poplar-uidl "
#define UIDL_VERSION_LINE UIDL_VERSION_PREFIX "2\n"
#define INDEX_MAGIC "PLRMBIX3"
#define JOURNAL_HEADER_LEN 512
#define JOURNAL_MAGIC "poplar-journal 1"

/* Exit status of a session stopped by the fault-injection hook. */
#define FAULT_EXIT 86

struct mbox_settings {
	char state_dir[PATH_MAX];       /* "" = beside the mbox */
	struct dotlock_settings dotlock;
};

static struct mbox_settings settings = {
	"", { DOTLOCK_DEFAULT_STALE_AGE, DOTLOCK_DEFAULT_TIMEOUT }
};

/* One message as scanned or cached; the index stores these as is. */
struct rec {
	uint64_t from_off;              /* the "From " line */
	uint64_t content_off;           /* after it */
	uint64_t raw_size;
	uint64_t size;
	uint64_t from_hash;             /* hash64() of the "From " line */
	unsigned char id[ID_LEN];       /* digest for UIDL matching */
};

struct recs {
	struct rec *v;
	size_t count, alloc;
};

/* What identifies a version of a file: a file replaced by rename gets a
 * new inode, one written in place a new mtime and ctime (and ctime cannot
 * be set back). */
struct fstamp {
	uint64_t dev, ino, size;
	int64_t mtime_sec, mtime_nsec, ctime_sec, ctime_nsec;
};

struct mbox {
	int fd;
	bool rdonly;
	dev_t dev;
	ino_t ino;
	uint64_t snap;                  /* snapshot size */
	struct rec *recs;
	uint64_t *uids;
	char epoch[17];
	uint64_t next_uid;
	struct fstamp ustamp;           /* of .NAME.uidl, when it holds uids */
	bool ustamp_ok;
	char uidlpath[PATH_MAX], indexpath[PATH_MAX], journalpath[PATH_MAX];
	struct dotlock *dotlock;
};

/* Per thread: a scan may run on two. */
static __thread char mbox_errbuf[PATH_MAX + 256];

static const char *mbox_err(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static const char *
mbox_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(mbox_errbuf, sizeof(mbox_errbuf), fmt, ap);
	va_end(ap);
	return mbox_errbuf;
}

static const char *
lp(char *buf, size_t size, const char *path)
{
	return log_value(buf, size, path);
}

void
maildrop_mbox_configure(const char *state_dir, unsigned int stale_age,
			unsigned int lock_timeout)
{
	strlcpy_p(settings.state_dir, state_dir != NULL ? state_dir : "",
		  sizeof(settings.state_dir));
	settings.dotlock.stale_age = stale_age;
	settings.dotlock.timeout = lock_timeout;
}

/* ---- fault injection (tests only) -------------------------------------- */

/* POPLAR_MBOX_FAULT_FILE names a file holding "AT MODE CHUNK": the AT-th
 * write step of an update (every write, fsync, rename, truncate, unlink)
 * then ends the process (MODE exit), writes half and ends it (short), or
 * fails with ENOSPC (enospc).  CHUNK sets the copy size, so that a small
 * mailbox has many steps.  Unset, nothing of this runs. */
enum fault_mode { FAULT_EXIT_NOW, FAULT_SHORT, FAULT_ENOSPC };

static long fault_at = -1, fault_count;
static enum fault_mode fault_mode;
static size_t copy_chunk = COPY_CHUNK;

static void
fault_load(void)
{
	const char *path = getenv("POPLAR_MBOX_FAULT_FILE");
	char buf[128], mode[16] = "exit";
	long at = -1, chunk = COPY_CHUNK;
	FILE *f;

	fault_at = -1;
	fault_count = 0;
	copy_chunk = COPY_CHUNK;
	if (path == NULL || *path == '\0' || (f = fopen(path, "re")) == NULL)
		return;
	if (fgets(buf, sizeof(buf), f) != NULL &&
	    sscanf(buf, "%ld %15s %ld", &at, mode, &chunk) >= 1 && at > 0) {
		fault_at = at;
		fault_mode = strcmp(mode, "short") == 0 ? FAULT_SHORT :
			strcmp(mode, "enospc") == 0 ? FAULT_ENOSPC :
			FAULT_EXIT_NOW;
		if (chunk >= 1 && chunk <= COPY_CHUNK)
			copy_chunk = (size_t)chunk;
	}
	fclose(f);
}

/* 1 when this step is the one to fail. */
static int
fault_hit(void)
{
	return fault_at > 0 && ++fault_count == fault_at;
}

/* A step that is not a write: 0, or -1 (ENOSPC) when injected. */
static int
fault_step(void)
{
	if (!fault_hit())
		return 0;
	if (fault_mode == FAULT_ENOSPC) {
		errno = ENOSPC;
		return -1;
	}
	_exit(FAULT_EXIT);
}

static int
pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	ssize_t r;

	if (fault_hit()) {
		if (fault_mode == FAULT_ENOSPC) {
			errno = ENOSPC;
			return -1;
		}
		if (fault_mode == FAULT_SHORT && len > 1)
			(void)!pwrite(fd, p, len / 2, (off_t)off);
		_exit(FAULT_EXIT);
	}
	while (len > 0) {
		r = pwrite(fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = ENOSPC;
			return -1;
		}
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Read exactly len bytes at off; -1 with errno (EIO for a short file). */
static int
pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;
	ssize_t r;

	while (len > 0) {
		r = pread(fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int
fsync_step(int fd)
{
	if (fault_step() < 0)
		return -1;
	return fsync(fd);
}

static int
fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, r;

	if (slash == NULL || (size_t)(slash - path) >= sizeof(dir))
		return 0;
	if (slash == path) {
		strcpy(dir, "/");
	} else {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = fsync(fd);
	if (r < 0 && (errno == EINVAL || errno == EROFS))
		r = 0;
	close(fd);
	return r;
}

/* ---- hashing ----------------------------------------------------------- */

/* A fast 64-bit hash, not a cryptographic one: for the index's and the
 * UIDL state's checksums (they catch torn and damaged files; what they
 * hold is validated anyway) and for the "From " lines kept in the index.
 * Four independent lanes over 32-byte blocks, then 8-byte words, the
 * last one padded with zeros, read little-endian, so that a text state
 * file checks the same on any machine. */
#define HASH_P1 0x9e3779b185ebca87ULL
#define HASH_P2 0xc2b2ae3d27d4eb4fULL

static uint64_t
rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t
le64(const unsigned char *p)
{
	uint64_t w;

	memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	return w;
}

static uint64_t
hash64(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t a0 = seed + HASH_P1, a1 = seed ^ HASH_P2, a2 = seed - HASH_P1,
		a3 = ~seed, h;
	unsigned char last[8];
	size_t i;

	for (i = 0; i + 32 <= len; i += 32) {
		a0 = rotl64(a0 + le64(p + i) * HASH_P2, 31) * HASH_P1;
		a1 = rotl64(a1 + le64(p + i + 8) * HASH_P2, 31) * HASH_P1;
		a2 = rotl64(a2 + le64(p + i + 16) * HASH_P2, 31) * HASH_P1;
		a3 = rotl64(a3 + le64(p + i + 24) * HASH_P2, 31) * HASH_P1;
	}
	h = rotl64(a0, 1) + rotl64(a1, 7) + rotl64(a2, 12) + rotl64(a3, 18) +
		(uint64_t)len;
	for (; i + 8 <= len; i += 8)
		h = rotl64(h ^ le64(p + i) * HASH_P2, 27) * HASH_P1;
	if (i < len) {
		memset(last, 0, sizeof(last));
		memcpy(last, p + i, len - i);
		h = rotl64(h ^ le64(last) * HASH_P2, 27) * HASH_P1;
	}
	h ^= h >> 33;
	h *= HASH_P2;
	h ^= h >> 29;
	h *= HASH_P1;
	h ^= h >> 32;
	return h;
}

static void
hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

/* The value + 1 of a lower-case hex digit, 0 for any other byte. */
static const unsigned char hexval[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6,
	['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12,
	['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

/* 2 * len lower-case hex digits at in, then '\0', ' ' or '\n', into
 * out; -1 for anything else.  No branch per digit: the state file has
 * one digest a message. */
static int
unhex(const char *in, unsigned char *out, size_t len)
{
	const unsigned char *p = (const unsigned char *)in;
	unsigned int bad = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned int hi = hexval[p[2 * i]], lo = hexval[p[2 * i + 1]];

		bad |= (hi == 0) | (lo == 0);
		out[i] = (unsigned char)(((hi - 1) << 4) | ((lo - 1) & 0xf));
	}
	if (bad != 0)
		return -1;
	return in[2 * len] == '\0' || in[2 * len] == ' ' ||
		in[2 * len] == '\n' ? 0 : -1;
}

/* SHA-256 of the file bytes [from, to), hex into out (65 bytes). */
static int
hash_range(int fd, uint64_t from, uint64_t to, char out[65])
{
	unsigned char md[SHA256_DIGEST_LEN];
	unsigned char *buf = malloc(COPY_CHUNK);
	struct sha256_ctx ctx;
	int ret = -1;

	if (buf == NULL)
		goto cleanup;
	sha256_init(&ctx);
	while (from < to) {
		size_t n = to - from < COPY_CHUNK ? (size_t)(to - from) :
			COPY_CHUNK;

		if (pread_all(fd, buf, n, from) < 0)
			goto cleanup;
		sha256_update(&ctx, buf, n);
		from += n;
	}
	sha256_final(&ctx, md);
	hex(md, SHA256_DIGEST_LEN, out);
	ret = 0;
cleanup:
	free(buf);
	return ret;
}

/* ---- scanning ---------------------------------------------------------- */

static int
recs_push(struct recs *r, const struct rec *e)
{
	if (r->count >= MAILDROP_MAX_MESSAGES)
		return -1;
	if (r->count == r->alloc) {
		size_t n = r->alloc == 0 ? 256 : r->alloc * 2;
		struct rec *v = reallocarray(r->v, n, sizeof(*v));

		if (v == NULL)
			return -1;
		r->v = v;
		r->alloc = n;
	}
	r->v[r->count++] = *e;
	return 0;
}

struct scanner {
	int fd;
	uint64_t end;                   /* of the part scanned */
	const unsigned char *buf;       /* file bytes [bpos, bpos + blen) */
	uint64_t bpos;
	size_t blen;
	struct recs *out;
	/* the message being read */
	bool in_from;
	uint64_t from_off, content_off;
	uint64_t bare_at_content;       /* bare LFs before content_off */
	unsigned char tmp[FROM_DIGEST_MAX + CONTENT_DIGEST_MAX];
};

/* The file bytes [off, off + len): in the buffer when there, else read
 * into dst.  NULL on a read error (errno). */
static const unsigned char *
scan_bytes(struct scanner *sc, uint64_t off, size_t len, unsigned char *dst)
{
	if (off >= sc->bpos && off + len <= sc->bpos + sc->blen)
		return sc->buf + (off - sc->bpos);
	if (len > 0 && pread_all(sc->fd, dst, len, off) < 0)
		return NULL;
	return dst;
}

/* The digest of a message: SHA-256 of (at most FROM_DIGEST_MAX bytes of)
 * its "From " line, its raw size (8 bytes, little-endian) and (at most
 * CONTENT_DIGEST_MAX bytes of) its content, cut to ID_LEN. */
static void
scan_digest(const unsigned char *from, size_t from_len,
	    const unsigned char *content, size_t content_len,
	    uint64_t raw_size, unsigned char id[ID_LEN])
{
	unsigned char md[SHA256_DIGEST_LEN], sz[8];
	struct sha256_ctx ctx;
	int i;

	for (i = 0; i < 8; i++)
		sz[i] = (unsigned char)(raw_size >> (8 * i));
	sha256_init(&ctx);
	sha256_update(&ctx, from, from_len);
	sha256_update(&ctx, sz, sizeof(sz));
	sha256_update(&ctx, content, content_len);
	sha256_final(&ctx, md);
	memcpy(id, md, ID_LEN);
}

/* The current message ends at end (exclusive), with bare LFs before end
 * in the file; last is its last byte. */
static int
scan_finish(struct scanner *sc, uint64_t end, uint64_t bare_at_end,
	    unsigned char last, enum maildrop_error *err_r,
	    const char **error_r)
{
	const unsigned char *from, *content;
	struct rec c;
	size_t flen, clen;

	memset(&c, 0, sizeof(c));
	if (sc->in_from) {
		/* A "From " line without a line end. */
		sc->content_off = end;
		bare_at_end = sc->bare_at_content;
	}
	c.from_off = sc->from_off;
	c.content_off = sc->content_off;
	c.raw_size = end - c.content_off;
	if (c.raw_size > MAILDROP_MAX_MESSAGE_SIZE) {
		*err_r = MAILDROP_ERR_PERM;
		*error_r = mbox_err("a message is too large (%" PRIu64
				    " bytes, the limit is %llu)", c.raw_size,
				    MAILDROP_MAX_MESSAGE_SIZE);
		return -1;
	}
	c.size = c.raw_size + (bare_at_end - sc->bare_at_content) +
		(c.raw_size > 0 && last != '\n' ? 2 : 0);
	flen = c.content_off - c.from_off < FROM_DIGEST_MAX ?
		(size_t)(c.content_off - c.from_off) : FROM_DIGEST_MAX;
	clen = c.raw_size < CONTENT_DIGEST_MAX ? (size_t)c.raw_size :
		CONTENT_DIGEST_MAX;
	from = scan_bytes(sc, c.from_off, flen, sc->tmp);
	content = from == NULL ? NULL :
		scan_bytes(sc, c.content_off, clen, sc->tmp + FROM_DIGEST_MAX);
	if (content == NULL) {
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = mbox_err("cannot read the mbox: %s",
				    errno == EIO ? "it shrank while reading" :
				    strerror(errno));
		return -1;
	}
	c.from_hash = hash64(from, flen, 0);
	scan_digest(from, flen, content, clen, c.raw_size, c.id);
	if (recs_push(sc->out, &c) < 0) {
		*err_r = sc->out->count >= MAILDROP_MAX_MESSAGES ?
			MAILDROP_ERR_PERM : MAILDROP_ERR_TEMP;
		*error_r = sc->out->count >= MAILDROP_MAX_MESSAGES ?
			"too many messages in the mbox" :
			"out of memory reading the mbox";
		return -1;
	}
	return 0;
}

/* Bit i set where byte i of the 64 at p is LF (*lf) or CR (*cr). */
static void
block_masks(const unsigned char *p, uint64_t *lf, uint64_t *cr)
{
#ifdef __SSE2__
	const __m128i nl = _mm_set1_epi8('\n'), r = _mm_set1_epi8('\r');
	uint64_t l = 0, c = 0;
	int k;

	for (k = 0; k < 4; k++) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)
					    (p + 16 * k));

		l |= (uint64_t)(uint16_t)_mm_movemask_epi8(
			_mm_cmpeq_epi8(v, nl)) << (16 * k);
		c |= (uint64_t)(uint16_t)_mm_movemask_epi8(
			_mm_cmpeq_epi8(v, r)) << (16 * k);
	}
	*lf = l;
	*cr = c;
#else
	uint64_t l = 0, c = 0;
	int k;

	for (k = 0; k < 64; k++) {
		l |= (uint64_t)(p[k] == '\n') << k;
		c |= (uint64_t)(p[k] == '\r') << k;
	}
	*lf = l;
	*cr = c;
#endif
}

/* Set bits of x (no popcnt instruction needed). */
static unsigned int
popcount64(uint64_t x)
{
	x -= (x >> 1) & 0x5555555555555555ULL;
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (unsigned int)((x * 0x0101010101010101ULL) >> 56);
}

/* Bits below k (0..64). */
static uint64_t
below(unsigned int k)
{
	return k >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << k) - 1;
}

/* Scan [start, end) of fd; the line at start must be a "From " line (at
 * 0 a file that does not start so is no mbox).  Appends the messages to
 * out.
 *
 * One pass, 64 bytes at a time: bitmaps of the LFs and CRs give the
 * count of LFs without a CR before them (which CRLF conversion adds a
 * byte for) and the ends of empty lines ("\n" or "\r\n" right after a
 * LF); a message ends before an empty line followed by "From ".  A
 * message's size is then its raw size, plus the bare LFs inside it
 * (a running count, read at its ends), plus 2 when it does not end in
 * LF, as crlf.h defines. */
static int
scan(int fd, uint64_t start, uint64_t end, struct recs *out,
     enum maildrop_error *err_r, const char **error_r)
{
	struct scanner *sc = calloc(1, sizeof(*sc));
	unsigned char *buf = malloc(SCAN_CHUNK), block[64];
	uint64_t prev_lf = 0, prev_cr = 0, bare = 0, next;
	int ret = -1;

	if (sc == NULL || buf == NULL) {
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = "out of memory reading the mbox";
		goto cleanup;
	}
	sc->fd = fd;
	sc->end = end;
	sc->buf = buf;
	sc->out = out;
	sc->bpos = start;
	if (start >= end)
		goto done;
	{
		unsigned char head[5];

		if (end - start < 5 || pread_all(fd, head, 5, start) < 0 ||
		    memcmp(head, "From ", 5) != 0) {
			*err_r = MAILDROP_ERR_PERM;
			*error_r = "not an mbox file (the first line is not a "
				"\"From \" line)";
			goto cleanup;
		}
	}
	sc->in_from = true;
	sc->from_off = start;
	next = start + 5;               /* no event inside "From " */
	while (sc->bpos + sc->blen < end) {
		size_t want = end - (sc->bpos + sc->blen) < SCAN_CHUNK ?
			(size_t)(end - (sc->bpos + sc->blen)) : SCAN_CHUNK;
		size_t k;
		ssize_t r;

		sc->bpos += sc->blen;
		sc->blen = 0;
		do
			r = pread(fd, buf, want, (off_t)sc->bpos);
		while (r < 0 && errno == EINTR);
		if (r <= 0) {
			*err_r = MAILDROP_ERR_TEMP;
			*error_r = mbox_err("cannot read the mbox: %s", r == 0 ?
					    "it shrank while reading" :
					    strerror(errno));
			goto cleanup;
		}
		sc->blen = (size_t)r;
		for (k = 0; k < sc->blen; k += 64) {
			uint64_t base = sc->bpos + k, lf, cr, lf1, cr1, lf2,
				nbare, blank;

			if (sc->blen - k >= 64) {
				block_masks(buf + k, &lf, &cr);
			} else {
				memset(block, 0, sizeof(block));
				memcpy(block, buf + k, sc->blen - k);
				block_masks(block, &lf, &cr);
			}
			lf1 = lf << 1 | prev_lf >> 63;  /* byte before: LF */
			cr1 = cr << 1 | prev_cr >> 63;  /* byte before: CR */
			lf2 = lf << 2 | prev_lf >> 62;  /* two before: LF */
			nbare = lf & ~cr1;
			blank = lf & (lf1 | (cr1 & lf2));
			for (;;) {
				uint64_t ev = sc->in_from ? lf : blank, p;
				unsigned int j;

				ev &= next <= base ? ~(uint64_t)0 :
					~below((unsigned int)(next - base <
							      64 ? next - base :
							      64));
				if (ev == 0)
					break;
				j = (unsigned int)__builtin_ctzll(ev);
				p = base + j;
				if (sc->in_from) {
					/* The end of the "From " line. */
					sc->in_from = false;
					sc->content_off = p + 1;
					sc->bare_at_content = bare +
						(uint64_t)popcount64(
							nbare & below(j + 1));
					next = p + 1;
					continue;
				}
				next = p + 1;
				/* An empty line ends at p: is "From " next? */
				{
					unsigned char f[5];
					const unsigned char *q;
					uint64_t bstart;

					if (end - (p + 1) < 5)
						continue;
					q = scan_bytes(sc, p + 1, 5, f);
					if (q == NULL) {
						*err_r = MAILDROP_ERR_TEMP;
						*error_r = mbox_err("cannot "
							"read the mbox: %s",
							strerror(errno));
						goto cleanup;
					}
					if (memcmp(q, "From ", 5) != 0)
						continue;
					bstart = (lf1 >> j & 1) != 0 ? p : p - 1;
					if (scan_finish(sc, bstart, bare +
						(uint64_t)popcount64(
							nbare & below(j)),
						'\n', err_r, error_r) < 0)
						goto cleanup;
					sc->in_from = true;
					sc->from_off = p + 1;
					next = p + 6;
				}
			}
			bare += (uint64_t)popcount64(nbare);
			prev_lf = lf;
			prev_cr = cr;
		}
	}
	/* The last message ends at the end, but for an empty line there:
	 * the separator MDAs write, not part of the message. */
	{
		unsigned char t[3];
		const unsigned char *q;
		uint64_t e = end, bare_e = bare, n = end - start < 3 ?
			end - start : 3;
		unsigned char last;

		q = scan_bytes(sc, end - n, (size_t)n, t);
		if (q == NULL) {
			*err_r = MAILDROP_ERR_TEMP;
			*error_r = mbox_err("cannot read the mbox: %s",
					    strerror(errno));
			goto cleanup;
		}
		last = q[n - 1];
		if (!sc->in_from && n == 3 && last == '\n') {
			if (q[1] == '\n' && end - 1 >= sc->content_off) {
				e = end - 1;
				bare_e = bare - 1;
			} else if (q[1] == '\r' && q[0] == '\n' &&
				   end - 2 >= sc->content_off) {
				e = end - 2;
			}
		}
		if (e < end)
			last = '\n';
		if (scan_finish(sc, e, bare_e, last, err_r, error_r) < 0)
			goto cleanup;
	}
done:
	ret = 0;
cleanup:
	free(buf);
	free(sc);
	return ret;
}

/* Where to cut [start, end) for two scanners: the first message start
 * ("From " right after an empty line, "\n" or "\r\n", the rule scan()
 * follows wherever it is) at or after the middle.  Scanning [start, cut)
 * and [cut, end) then finds the very messages one scan of [start, end)
 * does: the empty line before the cut ends the first part as it would
 * end a message, and nothing before the cut is looked at after it.
 * 0: none found within SPLIT_SEARCH bytes (or a read error). */
static uint64_t
split_point(int fd, uint64_t start, uint64_t end)
{
	enum { PIECE = 64 * 1024, BACK = 3 };
	unsigned char *buf = malloc(PIECE + BACK);
	uint64_t from = start + (end - start) / 2, limit, cut = 0;

	/* The empty line must lie after the first "From " line's start. */
	if (from < start + 8)
		from = start + 8;
	if (buf == NULL || from >= end) {
		free(buf);
		return 0;
	}
	limit = end - from > SPLIT_SEARCH ? from + SPLIT_SEARCH : end;
	/* buf holds [pos - BACK, pos + n): each "From " in [pos, pos + n)
	 * with the 3 bytes before it. */
	for (uint64_t pos = from; cut == 0 && pos + 5 <= limit; ) {
		size_t n = limit - pos < PIECE ? (size_t)(limit - pos) : PIECE,
			i;
		const unsigned char *q;

		if (pread_all(fd, buf, n + BACK, pos - BACK) < 0)
			break;
		for (i = BACK; i + 5 <= n + BACK; i = (size_t)(q - buf) + 1) {
			q = memmem(buf + i, n + BACK - i, "From ", 5);
			if (q == NULL)
				break;
			if (q[-1] == '\n' && (q[-2] == '\n' ||
					      (q[-2] == '\r' && q[-3] == '\n'))) {
				cut = pos + (uint64_t)(q - buf) - BACK;
				break;
			}
		}
		pos += n - 4;   /* one across pieces is in the next */
	}
	free(buf);
	return cut;
}

/* Append the records of more to r. */
static int
recs_append(struct recs *r, const struct recs *more,
	    enum maildrop_error *err_r, const char **error_r)
{
	size_t n = r->count + more->count;

	if (n > MAILDROP_MAX_MESSAGES) {
		*err_r = MAILDROP_ERR_PERM;
		*error_r = "too many messages in the mbox";
		return -1;
	}
	if (n > r->alloc) {
		struct rec *v = reallocarray(r->v, n, sizeof(*v));

		if (v == NULL) {
			*err_r = MAILDROP_ERR_TEMP;
			*error_r = "out of memory reading the mbox";
			return -1;
		}
		r->v = v;
		r->alloc = n;
	}
	memcpy(r->v + r->count, more->v, more->count * sizeof(*r->v));
	r->count = n;
	return 0;
}

/* The part of a scan the second thread does. */
struct scan_part {
	int fd;
	uint64_t start, end;
	struct recs out;
	enum maildrop_error err;
	char error[256];
	int ret;
};

static void *
scan_part_run(void *arg)
{
	struct scan_part *sp = arg;
	const char *error = NULL;

	sp->ret = scan(sp->fd, sp->start, sp->end, &sp->out, &sp->err,
		       &error);
	if (sp->ret < 0)
		strlcpy_p(sp->error, error != NULL ? error : "?",
			  sizeof(sp->error));
	return NULL;
}

/* The split point when the scan is shared, 0 when not: a small scan is
 * not worth a thread.  POPLAR_MBOX_SPLIT_MIN (tests) lowers the size. */
static uint64_t
scan_cut(int fd, uint64_t start, uint64_t end)
{
	const char *v = getenv("POPLAR_MBOX_SPLIT_MIN");
	uint64_t min = SPLIT_MIN;

	if (v != NULL && *v != '\0' && parse_uint(v, 1, UINT64_MAX, &min) < 0)
		min = SPLIT_MIN;
	if (end - start < min || end - start < 16)
		return 0;
	return split_point(fd, start, end);
}

/* scan(), on two threads for a large part: this one scans up to the
 * split point into out, a second one the rest, appended after.  Without
 * a split point, or a thread, it is all done here. */
static int
scan_all(int fd, uint64_t start, uint64_t end, struct recs *out,
	 enum maildrop_error *err_r, const char **error_r)
{
	struct scan_part sp;
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t all, old;
	uint64_t cut;
	bool threaded = false;
	int ret;

	cut = start < end ? scan_cut(fd, start, end) : 0;
	if (cut == 0)
		return scan(fd, start, end, out, err_r, error_r);
	memset(&sp, 0, sizeof(sp));
	sp.fd = fd;
	sp.start = cut;
	sp.end = end;
	/* The thread takes no signal; the process's handlers stay where
	 * they run now. */
	if (pthread_attr_init(&attr) == 0) {
		sigfillset(&all);
		if (pthread_attr_setstacksize(&attr, SPLIT_STACK) == 0 &&
		    pthread_sigmask(SIG_SETMASK, &all, &old) == 0) {
			threaded = pthread_create(&tid, &attr, scan_part_run,
						  &sp) == 0;
			(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
		}
		(void)pthread_attr_destroy(&attr);
	}
	ret = scan(fd, start, cut, out, err_r, error_r);
	if (threaded)
		(void)pthread_join(tid, NULL);
	else if (ret == 0)
		scan_part_run(&sp);
	if (ret == 0 && sp.ret < 0) {
		char head[5];

		/* The second part failed: say why, in this thread's words. */
		ret = -1;
		if (sp.err == MAILDROP_ERR_PERM &&
		    (pread_all(fd, head, 5, cut) < 0 ||
		     memcmp(head, "From ", 5) != 0)) {
			/* It was a message start a moment ago. */
			*err_r = MAILDROP_ERR_TEMP;
			*error_r = "the mbox changed while it was read";
		} else {
			*err_r = sp.err;
			*error_r = mbox_err("%s", sp.error);
		}
	}
	if (ret == 0 && sp.out.count > 0)
		ret = recs_append(out, &sp.out, err_r, error_r);
	free(sp.out.v);
	return ret;
}

/* Does the "From " line of r still stand at its offset?  1 yes, 0 no,
 * -1 read error. */
static int
from_line_ok(int fd, const struct rec *r)
{
	unsigned char buf[FROM_DIGEST_MAX];
	uint64_t len = r->content_off - r->from_off;

	if (len > FROM_DIGEST_MAX)
		len = FROM_DIGEST_MAX;
	if (len < 5)
		return 0;
	if (pread_all(fd, buf, (size_t)len, r->from_off) < 0)
		return errno == EIO ? 0 : -1;
	return hash64(buf, (size_t)len, 0) == r->from_hash ? 1 : 0;
}

/* The same for v[0..n), sorted by offset, read in runs of up to
 * SCAN_CHUNK bytes rather than line by line: on a large mbox, one
 * read per message costs far more than reading it all. */
static int
from_lines_ok(int fd, const struct rec *v, size_t n)
{
	unsigned char *buf;
	size_t i = 0, j, k;
	int ret = 1;

	if (n == 0)
		return 1;
	buf = malloc(SCAN_CHUNK);
	if (buf == NULL)
		return -1;
	while (i < n) {
		uint64_t start = v[i].from_off, stop = start;

		/* As many following lines as fit in the buffer. */
		for (j = i; j < n; j++) {
			uint64_t len = v[j].content_off - v[j].from_off;

			if (len > FROM_DIGEST_MAX)
				len = FROM_DIGEST_MAX;
			if (len < 5 || v[j].from_off < start) {
				ret = 0;
				goto done;
			}
			if (v[j].from_off - start + len > SCAN_CHUNK)
				break;
			stop = v[j].from_off + len;
		}
		if (pread_all(fd, buf, (size_t)(stop - start), start) < 0) {
			ret = errno == EIO ? 0 : -1;
			goto done;
		}
		for (k = i; k < j; k++) {
			uint64_t len = v[k].content_off - v[k].from_off;

			if (len > FROM_DIGEST_MAX)
				len = FROM_DIGEST_MAX;
			if (hash64(buf + (v[k].from_off - start), (size_t)len,
				   0) != v[k].from_hash) {
				ret = 0;
				goto done;
			}
		}
		i = j;
	}
done:
	free(buf);
	return ret;
}

/* ---- index -------------------------------------------------------------- */

static void
fstamp_of(const struct stat *st, struct fstamp *s)
{
	memset(s, 0, sizeof(*s));
	s->dev = (uint64_t)st->st_dev;
	s->ino = (uint64_t)st->st_ino;
	s->size = (uint64_t)st->st_size;
	s->mtime_sec = (int64_t)st->st_mtim.tv_sec;
	s->mtime_nsec = (int64_t)st->st_mtim.tv_nsec;
	s->ctime_sec = (int64_t)st->st_ctim.tv_sec;
	s->ctime_nsec = (int64_t)st->st_ctim.tv_nsec;
}

/* The UIDL state the index's numbers were taken from. */
struct index_uids {
	uint64_t *uids;                 /* NULL: the index holds none */
	char epoch[17];
	uint64_t next;
	struct fstamp stamp;            /* of .NAME.uidl when they matched */
};

#define INDEX_HAS_UIDS 0x1u

/* The file: this header, count records, then (INDEX_HAS_UIDS) count
 * numbers; native byte order, it never leaves the machine. */
struct index_head {
	char magic[8];
	uint32_t rec_size, flags;
	uint64_t dev, ino, size;        /* of the mbox; size = bytes covered */
	int64_t mtime_sec, mtime_nsec;
	uint64_t count;
	struct fstamp ustamp;
	uint64_t next_uid;
	char epoch[16];
	uint64_t checksum;              /* of all the rest, this field 0 */
};

static uint64_t
index_checksum(const struct index_head *h, const struct rec *v,
	       const uint64_t *uids)
{
	struct index_head z = *h;
	uint64_t c;

	z.checksum = 0;
	c = hash64(&z, sizeof(z), 0);
	c = hash64(v, h->count * sizeof(*v), c);
	if (uids != NULL)
		c = hash64(uids, h->count * sizeof(*uids), c);
	return c;
}

static bool
rec_plausible(const struct rec *r, uint64_t limit)
{
	if (r->content_off < r->from_off + 5 || r->content_off > limit ||
	    r->raw_size > limit - r->content_off ||
	    r->raw_size > MAILDROP_MAX_MESSAGE_SIZE)
		return false;
	if (r->raw_size == 0)
		return r->size == 0;
	return r->size >= r->raw_size && r->size <= 2 * r->raw_size + 2;
}

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Are the n UIDL numbers of v distinct?  Along the mbox they usually
 * increase, but not always: a message that changed in place gets a new
 * number, higher than those of the messages after it.  1 yes, 0 no, -1
 * out of memory. */
static int
uids_distinct(const uint64_t *v, size_t n)
{
	uint64_t *s;
	size_t i;

	for (i = 1; i < n && v[i] > v[i - 1]; i++)
		;
	if (i >= n)
		return 1;
	s = malloc(n * sizeof(*s));
	if (s == NULL)
		return -1;
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), u64_cmp);
	for (i = 1; i < n && s[i] != s[i - 1]; i++)
		;
	free(s);
	return i >= n ? 1 : 0;
}

static bool
epoch_valid(const char *e)
{
	size_t i;

	for (i = 0; i < 16; i++)
		if (!((e[i] >= '0' && e[i] <= '9') ||
		      (e[i] >= 'a' && e[i] <= 'f')))
			return false;
	return true;
}

/* Load the index for the mbox stat'ed as st.  Returns the number of bytes
 * it covers (records in *r), or 0 with nothing when unusable. *exact_r:
 * the mbox has not changed at all.  When the index holds UIDL numbers
 * for an unchanged mbox, they go to *u (u->uids, to be freed); otherwise
 * u->uids is NULL. */
static uint64_t
index_load(const char *path, const struct stat *st, struct recs *r,
	   bool *exact_r, struct index_uids *u)
{
	struct index_head h;
	struct stat ist;
	uint64_t *uids = NULL, want;
	size_t i;
	int fd;

	*exact_r = false;
	memset(u, 0, sizeof(*u));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return 0;
	if (fstat(fd, &ist) < 0 || !S_ISREG(ist.st_mode) ||
	    (uint64_t)ist.st_size < sizeof(h) ||
	    pread_all(fd, &h, sizeof(h), 0) < 0 ||
	    memcmp(h.magic, INDEX_MAGIC, 8) != 0 ||
	    h.rec_size != sizeof(struct rec) ||
	    (h.flags & ~INDEX_HAS_UIDS) != 0 ||
	    h.count > MAILDROP_MAX_MESSAGES)
		goto unusable;
	want = sizeof(h) + h.count * sizeof(struct rec);
	if ((h.flags & INDEX_HAS_UIDS) != 0)
		want += h.count * sizeof(uint64_t);
	if ((uint64_t)ist.st_size != want ||
	    h.dev != (uint64_t)st->st_dev || h.ino != (uint64_t)st->st_ino ||
	    h.size > (uint64_t)st->st_size || (h.count == 0) != (h.size == 0))
		goto unusable;
	r->v = malloc((h.count == 0 ? 1 : h.count) * sizeof(struct rec));
	if (r->v == NULL)
		goto unusable;
	r->alloc = h.count == 0 ? 1 : h.count;
	if (h.count > 0 && pread_all(fd, r->v, h.count * sizeof(struct rec),
				     sizeof(h)) < 0)
		goto unusable;
	if ((h.flags & INDEX_HAS_UIDS) != 0) {
		uids = malloc((h.count == 0 ? 1 : h.count) * sizeof(*uids));
		if (uids == NULL || (h.count > 0 &&
		    pread_all(fd, uids, h.count * sizeof(*uids), sizeof(h) +
			      h.count * sizeof(struct rec)) < 0))
			goto unusable;
	}
	if (index_checksum(&h, r->v, uids) != h.checksum)
		goto unusable;
	for (i = 0; i < h.count; i++) {
		uint64_t limit = i + 1 < h.count ? r->v[i + 1].from_off : h.size;

		if ((i == 0 && r->v[0].from_off != 0) ||
		    (i + 1 < h.count && r->v[i + 1].from_off <=
		     r->v[i].from_off) || limit > h.size ||
		    !rec_plausible(&r->v[i], limit))
			goto unusable;
	}
	r->count = h.count;
	close(fd);
	*exact_r = h.size == (uint64_t)st->st_size &&
		h.mtime_sec == (int64_t)st->st_mtim.tv_sec &&
		h.mtime_nsec == (int64_t)st->st_mtim.tv_nsec;
	/* The numbers are worth something only for this very mbox, and
	 * only when sane: distinct, below the next one. */
	if (uids != NULL && *exact_r && epoch_valid(h.epoch) &&
	    h.next_uid >= 1 && h.next_uid <= UINT64_MAX / 2) {
		for (i = 0; i < h.count; i++)
			if (uids[i] < 1 || uids[i] >= h.next_uid)
				break;
		if (i == h.count && uids_distinct(uids, h.count) == 1) {
			u->uids = uids;
			uids = NULL;
			memcpy(u->epoch, h.epoch, 16);
			u->epoch[16] = '\0';
			u->next = h.next_uid;
			u->stamp = h.ustamp;
		}
	}
	free(uids);
	return h.size;
unusable:
	close(fd);
	free(uids);
	free(r->v);
	memset(r, 0, sizeof(*r));
	return 0;
}

/* Best effort: a missing index only costs a scan.  No fsync: a torn file
 * fails its size or checksum check.  With u non-NULL, the UIDL numbers of
 * the count messages are kept too, with the state they agree with. */
static void
index_write(const char *path, const struct stat *st, uint64_t covered,
	    const struct rec *v, size_t count, const struct index_uids *u)
{
	char tmp[PATH_MAX + 32], l[PATH_MAX + 16];
	struct index_head h;
	uint64_t off;
	int fd, n;

	n = snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, INDEX_MAGIC, 8);
	h.rec_size = sizeof(struct rec);
	h.dev = (uint64_t)st->st_dev;
	h.ino = (uint64_t)st->st_ino;
	h.size = covered;
	h.mtime_sec = (int64_t)st->st_mtim.tv_sec;
	h.mtime_nsec = (int64_t)st->st_mtim.tv_nsec;
	h.count = count;
	if (u != NULL && u->uids != NULL) {
		h.flags |= INDEX_HAS_UIDS;
		h.ustamp = u->stamp;
		h.next_uid = u->next;
		memcpy(h.epoch, u->epoch, 16);
	}
	h.checksum = index_checksum(&h, v, (h.flags & INDEX_HAS_UIDS) != 0 ?
				    u->uids : NULL);
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		goto fail;
	off = sizeof(h) + count * sizeof(*v);
	if (pwrite_all(fd, &h, sizeof(h), 0) < 0 ||
	    (count > 0 && pwrite_all(fd, v, count * sizeof(*v), sizeof(h)) < 0)
	    || ((h.flags & INDEX_HAS_UIDS) != 0 && count > 0 &&
		pwrite_all(fd, u->uids, count * sizeof(uint64_t), off) < 0)
	    || close(fd) < 0) {
		if (fd >= 0)
			close(fd);
		(void)unlink(tmp);
		goto fail;
	}
	if (fault_step() < 0 || rename(tmp, path) < 0) {
		(void)unlink(tmp);
		goto fail;
	}
	return;
fail:
	log_msg(LOG_WARNING, "mbox: cannot write index %s: %s",
		lp(l, sizeof(l), path), strerror(errno));
}

/* ---- UIDL state ---------------------------------------------------------- */

struct uent {
	uint64_t uid;
	size_t order;
	unsigned char id[ID_LEN];
};

struct ustate {
	char epoch[17];
	uint64_t next;
	struct uent *v;
	size_t count;
	struct fstamp stamp;            /* of the file loaded */
};

static void
new_epoch(char out[17])
{
	unsigned char r[8];
	size_t i;

	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
			now_ms();

		for (i = 0; i < 8; i++)
			r[i] = (unsigned char)(t >> (8 * i));
	}
	hex(r, 8, out);
}

/* 1 loaded, 0 missing, -1 unusable (damaged), -2 another version of
 * the format (digests computed otherwise). */
static int
ustate_load(const char *path, struct ustate *u)
{
	char *buf = NULL, *p, *end, *nl, *last;
	struct stat st;
	size_t len, lines = 0, n = 0;
	uint64_t v;
	bool increasing = true;
	int fd, ret = -1;

	memset(u, 0, sizeof(*u));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > UIDL_FILE_MAX || st.st_size < 1)
		goto cleanup;
	fstamp_of(&st, &u->stamp);
	len = (size_t)st.st_size;
	buf = malloc(len + 1);
	if (buf == NULL || pread_all(fd, buf, len, 0) < 0)
		goto cleanup;
	buf[len] = '\0';
	if (strncmp(buf, UIDL_VERSION_LINE, strlen(UIDL_VERSION_LINE)) != 0 &&
	    strncmp(buf, UIDL_VERSION_PREFIX, strlen(UIDL_VERSION_PREFIX)) == 0) {
		ret = -2;
		goto cleanup;
	}
	if (buf[len - 1] != '\n' || memchr(buf, '\0', len) != NULL ||
	    strncmp(buf, UIDL_VERSION_LINE, strlen(UIDL_VERSION_LINE)) != 0)
		goto cleanup;
	/* Last line: "checksum HEX16" over everything before it. */
	buf[len - 1] = '\0';
	last = strrchr(buf, '\n');
	buf[len - 1] = '\n';
	if (last == NULL || strlen(last + 1) != 9 + 16 + 1 ||
	    strncmp(last + 1, "checksum ", 9) != 0)
		goto cleanup;
	{
		char want[17];

		snprintf(want, sizeof(want), "%016" PRIx64,
			 hash64(buf, (size_t)(last + 1 - buf), 0));
		if (memcmp(last + 10, want, 16) != 0)
			goto cleanup;
	}
	end = last + 1;
	p = buf + strlen(UIDL_VERSION_LINE);
	/* "epoch HEX16" and "next N" */
	if (strncmp(p, "epoch ", 6) != 0 || p[6 + 16] != '\n')
		goto cleanup;
	memcpy(u->epoch, p + 6, 16);
	u->epoch[16] = '\0';
	{
		unsigned char tmp[8];

		if (unhex(u->epoch, tmp, 8) < 0)
			goto cleanup;
	}
	p += 6 + 16 + 1;
	nl = memchr(p, '\n', (size_t)(end - p));
	if (nl == NULL || strncmp(p, "next ", 5) != 0)
		goto cleanup;
	*nl = '\0';
	if (parse_uint(p + 5, 1, UINT64_MAX / 2, &u->next) < 0)
		goto cleanup;
	p = nl + 1;
	for (char *q = p; q < end; q = nl + 1) {
		nl = memchr(q, '\n', (size_t)(end - q));
		if (nl == NULL || nl - q > UIDL_LINE_MAX)
			goto cleanup;
		lines++;
	}
	if (lines > MAILDROP_MAX_MESSAGES)
		goto cleanup;
	u->v = calloc(lines == 0 ? 1 : lines, sizeof(*u->v));
	if (u->v == NULL)
		goto cleanup;
	for (; p < end; p = nl + 1) {
		char *sp;

		nl = memchr(p, '\n', (size_t)(end - p));
		*nl = '\0';
		sp = strchr(p, ' ');
		if (sp == NULL || (size_t)(nl - sp - 1) != 2 * ID_LEN)
			goto cleanup;
		*sp = '\0';
		if (parse_uint(p, 1, u->next - 1, &v) < 0 ||
		    unhex(sp + 1, u->v[n].id, ID_LEN) < 0)
			goto cleanup;
		if (n > 0 && v <= u->v[n - 1].uid)
			increasing = false;
		u->v[n].uid = v;
		u->v[n].order = n;
		n++;
	}
	/* A number given twice would be two messages with one UIDL. */
	if (!increasing) {
		uint64_t *nums = malloc(n * sizeof(*nums));
		size_t i;
		int d;

		if (nums == NULL)
			goto cleanup;
		for (i = 0; i < n; i++)
			nums[i] = u->v[i].uid;
		d = uids_distinct(nums, n);
		free(nums);
		if (d != 1)
			goto cleanup;
	}
	u->count = n;
	ret = 1;
cleanup:
	if (ret < 0) {
		free(u->v);
		u->v = NULL;
		u->count = 0;
	}
	free(buf);
	close(fd);
	return ret;
}

/* Write the state atomically and durably: the UIDLs a client saw must
 * not change after a crash. */
static int
ustate_write(const char *path, const char *epoch, uint64_t next,
	     const uint64_t *uids, const struct rec *recs, size_t count,
	     const bool *skip)
{
	char tmp[PATH_MAX + 16], line[UIDL_LINE_MAX + 8], idhex[2 * ID_LEN + 1];
	char *buf = NULL;
	size_t len = 0, alloc = 0, i;
	int fd = -1, n, ret = -1;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -1;
	/* The header, each line (at most 20 digits, a space, the id in hex
	 * and a newline) and the checksum line. */
	alloc = strlen(UIDL_VERSION_LINE) + strlen(epoch) + 64 +
		count * (2 * ID_LEN + 24) + 32;
	buf = malloc(alloc);
	if (buf == NULL)
		return -1;
	n = snprintf(buf, alloc, "%sepoch %s\nnext %" PRIu64 "\n",
		     UIDL_VERSION_LINE, epoch, next);
	if (n < 0 || (size_t)n + 32 > alloc)
		goto cleanup;
	len = (size_t)n;
	for (i = 0; i < count; i++) {
		if (skip != NULL && skip[i])
			continue;
		hex(recs[i].id, ID_LEN, idhex);
		n = snprintf(line, sizeof(line), "%" PRIu64 " %s\n", uids[i],
			     idhex);
		if (len + (size_t)n + 32 > alloc)
			goto cleanup;
		memcpy(buf + len, line, (size_t)n);
		len += (size_t)n;
	}
	n = snprintf(buf + len, alloc - len, "checksum %016" PRIx64 "\n",
		     hash64(buf, len, 0));
	if (n < 0 || (size_t)n >= alloc - len)
		goto cleanup;
	len += (size_t)n;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		goto cleanup;
	if (pwrite_all(fd, buf, len, 0) < 0 || fsync_step(fd) < 0)
		goto cleanup;
	if (close(fd) < 0) {
		fd = -1;
		goto cleanup;
	}
	fd = -1;
	if (fault_step() < 0 || rename(tmp, path) < 0)
		goto cleanup;
	(void)fsync_dir_of(path);
	ret = 0;
cleanup:
	if (ret < 0) {
		int e = errno;

		(void)unlink(tmp);
		errno = e;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

static int
uent_cmp(const void *a, const void *b)
{
	const struct uent *x = a, *y = b;
	int c = memcmp(x->id, y->id, ID_LEN);

	if (c != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* The first entry with this id at order >= from, in u->v sorted. */
static struct uent *
uent_find(struct ustate *u, const unsigned char *id, size_t from)
{
	size_t lo = 0, hi = u->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(u->v[mid].id, id, ID_LEN);

		if (c < 0 || (c == 0 && u->v[mid].order < from))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < u->count && memcmp(u->v[lo].id, id, ID_LEN) == 0)
		return &u->v[lo];
	return NULL;
}

/* "EPOCH.N" into out (POP3_UIDL_MAX + 1 bytes). */
static void
format_uidl(char *out, const char *epoch, uint64_t n)
{
	char digits[24];
	size_t k = sizeof(digits);

	do {
		digits[--k] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	memcpy(out, epoch, 16);
	out[16] = '.';
	memcpy(out + 17, digits + k, sizeof(digits) - k);
	out[17 + sizeof(digits) - k] = '\0';
}

static bool
fstamp_eq(const struct fstamp *a, const struct fstamp *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
		a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
		a->ctime_sec == b->ctime_sec && a->ctime_nsec == b->ctime_nsec;
}

/* Note the state file as it is now as the one that holds mb->uids. */
static void
ustamp_take(struct mbox *mb)
{
	struct stat st;

	mb->ustamp_ok = stat(mb->uidlpath, &st) == 0 && S_ISREG(st.st_mode);
	if (mb->ustamp_ok)
		fstamp_of(&st, &mb->ustamp);
}

/* Give every message its number: messages found in the state keep theirs
 * (matched in order, so that equal messages keep theirs too), the others
 * get new ones.  Writes the state when anything changed.  cache (may be
 * NULL): the numbers kept in the index for exactly these messages, used
 * as they are when the state file is still the one they came from
 * (*cached_r). */
static int
assign_uids(struct maildrop *md, struct mbox *mb, struct index_uids *cache,
	    bool *cached_r, enum maildrop_error *err_r, const char **error_r)
{
	char l[PATH_MAX + 16];
	struct ustate u;
	struct stat ust;
	size_t i, from = 0, matched = 0;
	bool changed = false, in_order = true, sorted = false;
	int r;

	*cached_r = false;
	mb->ustamp_ok = false;
	if (cache != NULL && cache->uids != NULL && md->count > 0 &&
	    stat(mb->uidlpath, &ust) == 0 && S_ISREG(ust.st_mode)) {
		struct fstamp now;

		fstamp_of(&ust, &now);
		if (fstamp_eq(&now, &cache->stamp)) {
			mb->uids = cache->uids;
			cache->uids = NULL;
			memcpy(mb->epoch, cache->epoch, sizeof(mb->epoch));
			mb->next_uid = cache->next;
			mb->ustamp = now;
			mb->ustamp_ok = true;
			*cached_r = true;
			return 0;
		}
	}
	r = ustate_load(mb->uidlpath, &u);
	if (r < 0) {
		char bad[PATH_MAX + 8];

		/* Keep the damaged file for the admin; start afresh with a
		 * new epoch so that no old UIDL comes back. */
		snprintf(bad, sizeof(bad), "%s.bad", mb->uidlpath);
		(void)rename(mb->uidlpath, bad);
		log_msg(LOG_WARNING, "mbox: UIDL state %s is %s (kept as "
			".bad): rebuilt with a new epoch; clients may fetch "
			"old messages again", lp(l, sizeof(l), mb->uidlpath),
			r == -2 ? "in another version of the format" :
			"damaged");
	} else if (r == 0 && md->count > 0) {
		log_msg(LOG_NOTICE, "mbox: UIDL state %s is missing: rebuilt "
			"with a new epoch", lp(l, sizeof(l), mb->uidlpath));
	}
	if (r <= 0) {
		memset(&u, 0, sizeof(u));
		new_epoch(u.epoch);
		u.next = 1;
		changed = true;
	}
	memcpy(mb->epoch, u.epoch, sizeof(mb->epoch));
	mb->uids = calloc(md->count == 0 ? 1 : md->count, sizeof(uint64_t));
	if (mb->uids == NULL) {
		free(u.v);
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = "out of memory assigning UIDLs";
		return -1;
	}
	for (i = 0; i < md->count; i++) {
		const unsigned char *id = mb->recs[i].id;
		struct uent *e;

		/* u.v is in file order (v[k].order == k) until sorted: while
		 * the next entry is this message, it is the one uent_find
		 * would pick, and nothing needs sorting. */
		if (sorted)
			e = uent_find(&u, id, from);
		else if (from >= u.count)
			e = NULL;
		else if (memcmp(u.v[from].id, id, ID_LEN) == 0)
			e = &u.v[from];
		else {
			qsort(u.v, u.count, sizeof(*u.v), uent_cmp);
			sorted = true;
			e = uent_find(&u, id, from);
		}
		if (e != NULL) {
			if (e->order != from)
				in_order = false;
			mb->uids[i] = e->uid;
			from = e->order + 1;
			matched++;
		} else {
			mb->uids[i] = u.next++;
			changed = true;
		}
	}
	if (matched != u.count || !in_order)
		changed = true;
	/* Nothing to remember yet: no file for an empty maildrop. */
	if (r == 0 && md->count == 0)
		changed = false;
	mb->next_uid = u.next;
	free(u.v);
	if (changed && ustate_write(mb->uidlpath, mb->epoch, mb->next_uid,
				    mb->uids, mb->recs, md->count, NULL) < 0) {
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = mbox_err("cannot write the UIDL state %s: %s",
				    lp(l, sizeof(l), mb->uidlpath),
				    strerror(errno));
		return -1;
	}
	if (changed) {
		ustamp_take(mb);
	} else if (r == 1) {
		mb->ustamp = u.stamp;
		mb->ustamp_ok = true;
	}
	return 0;
}

/* ---- paths and locks ------------------------------------------------------- */

/* DIR/.BASE.SUFFIX where DIR is the state directory or the mbox's. */
static int
state_path(const char *mbox, const char *suffix, char *out, size_t size)
{
	const char *slash = strrchr(mbox, '/'), *base;
	int n;

	if (slash == NULL || slash[1] == '\0')
		return -1;
	base = slash + 1;
	if (settings.state_dir[0] != '\0')
		n = snprintf(out, size, "%s/.%s.%s", settings.state_dir, base,
			     suffix);
	else
		n = snprintf(out, size, "%.*s/.%s.%s", (int)(slash - mbox),
			     mbox, base, suffix);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int
mbox_lock_path(const char *path, char *out, size_t size)
{
	char l[PATH_MAX + 16];

	if (settings.state_dir[0] != '\0' &&
	    mkdir(settings.state_dir, 0700) < 0 && errno != EEXIST) {
		log_msg(LOG_ERR, "mbox: cannot create %s: %s",
			lp(l, sizeof(l), settings.state_dir), strerror(errno));
		return -1;
	}
	return state_path(path, "pop", out, size);
}

/* The delivery lock: dotlock, then fcntl on the mbox.  0 or -1. */
static int
delivery_lock(struct maildrop *md, struct mbox *mb,
	      enum maildrop_error *err_r, const char **error_r)
{
	char l[PATH_MAX + 16];
	struct flock fl;
	uint64_t deadline;
	int r;

	r = dotlock_take(md->path, &settings.dotlock, &mb->dotlock, error_r);
	if (r <= 0) {
		*err_r = MAILDROP_ERR_TEMP;
		if (r == 0)
			*error_r = mbox_err("%s.lock is held by another "
					    "program", lp(l, sizeof(l),
							  md->path));
		return -1;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = mb->rdonly ? F_RDLCK : F_WRLCK;
	fl.l_whence = SEEK_SET;
	deadline = now_ms() + (uint64_t)settings.dotlock.timeout * 1000;
	while (fcntl(mb->fd, F_SETLK, &fl) < 0) {
		struct timespec ts = { 0, 50 * 1000000L };

		if ((errno != EACCES && errno != EAGAIN && errno != EINTR) ||
		    now_ms() >= deadline) {
			*err_r = MAILDROP_ERR_TEMP;
			*error_r = errno == EACCES || errno == EAGAIN ?
				"the mbox is locked (fcntl) by another program"
				: mbox_err("cannot lock the mbox: %s",
					   strerror(errno));
			dotlock_release(&mb->dotlock);
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	return 0;
}

static void
delivery_unlock(struct mbox *mb)
{
	struct flock fl;

	if (mb->fd >= 0) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_UNLCK;
		fl.l_whence = SEEK_SET;
		(void)fcntl(mb->fd, F_SETLK, &fl);
	}
	dotlock_release(&mb->dotlock);
}

/* ---- journal ----------------------------------------------------------------- */

struct journal {
	uint64_t first, oldsize, newsize;
	char tailhash[65], contenthash[65];
};

/* Write a journal whose content is: [src_from, src_to) of the mbox for
 * each segment, as listed, then nothing else.  The content is built by
 * the caller's callback in order; this writes header and fsyncs. */
static int
journal_header_write(int fd, const struct journal *j)
{
	char head[JOURNAL_HEADER_LEN];
	int n;

	memset(head, ' ', sizeof(head));
	n = snprintf(head, sizeof(head), "%s %" PRIu64 " %" PRIu64 " %" PRIu64
		     " %s %s", JOURNAL_MAGIC, j->first, j->oldsize, j->newsize,
		     j->tailhash, j->contenthash);
	if (n < 0 || (size_t)n >= sizeof(head) - 1)
		return -1;
	head[n] = ' ';
	head[sizeof(head) - 1] = '\n';
	return pwrite_all(fd, head, sizeof(head), 0);
}

/* Make tmp the journal: fsync it, rename, fsync the directory. */
static int
journal_commit_file(int fd, const char *tmp, const char *path)
{
	if (fsync_step(fd) < 0)
		return -1;
	if (fault_step() < 0 || rename(tmp, path) < 0)
		return -1;
	if (fault_step() < 0 || fsync_dir_of(path) < 0)
		return -1;
	return 0;
}

static int
journal_read(int fd, struct journal *j)
{
	char head[JOURNAL_HEADER_LEN + 1], *f[6], *p;
	struct stat st;
	int i;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    pread_all(fd, head, JOURNAL_HEADER_LEN, 0) < 0)
		return -1;
	head[JOURNAL_HEADER_LEN] = '\0';
	if (head[JOURNAL_HEADER_LEN - 1] != '\n' ||
	    strncmp(head, JOURNAL_MAGIC " ", strlen(JOURNAL_MAGIC) + 1) != 0)
		return -1;
	p = head + strlen(JOURNAL_MAGIC) + 1;
	for (i = 0; i < 5; i++) {
		char *sp = strchr(p, ' ');

		if (sp == NULL)
			return -1;
		*sp = '\0';
		f[i] = p;
		p = sp + 1;
	}
	if (parse_uint(f[0], 0, INT64_MAX, &j->first) < 0 ||
	    parse_uint(f[1], 0, INT64_MAX, &j->oldsize) < 0 ||
	    parse_uint(f[2], 0, INT64_MAX, &j->newsize) < 0 ||
	    j->first > j->newsize || j->newsize > j->oldsize ||
	    strlen(f[3]) != 64 || strlen(f[4]) != 64)
		return -1;
	memcpy(j->tailhash, f[3], 65);
	memcpy(j->contenthash, f[4], 65);
	if ((uint64_t)st.st_size != JOURNAL_HEADER_LEN + j->newsize - j->first)
		return -1;
	return 0;
}

/* Copy n bytes from (in, ioff) to (out, ooff) in copy_chunk steps. */
static int
copy_range(int in, uint64_t ioff, int out, uint64_t ooff, uint64_t n,
	   struct dotlock *dl)
{
	unsigned char *buf = malloc(copy_chunk);
	uint64_t done = 0;
	int ret = -1;

	if (buf == NULL)
		return -1;
	while (done < n) {
		size_t k = n - done < copy_chunk ? (size_t)(n - done) :
			copy_chunk;

		if (pread_all(in, buf, k, ioff + done) < 0 ||
		    pwrite_all(out, buf, k, ooff + done) < 0)
			goto cleanup;
		done += k;
		/* Keep the dotlock fresh during a long copy. */
		if (dl != NULL && done % (64ULL << 20) < k)
			(void)dotlock_touch(dl);
	}
	ret = 0;
cleanup:
	free(buf);
	return ret;
}

/* Apply the journal at mb->journalpath to the mbox (delivery lock held).
 *
 * The journal says: the mbox must become its bytes [0, first), then the
 * journal's content (newsize - first bytes), then whatever was appended
 * past oldsize.  Where a crash stopped us:
 *  - the mbox is still at least oldsize long and its bytes [newsize,
 *    oldsize) are those recorded (tailhash): not truncated yet, the copy
 *    may be partial; anything past oldsize was appended since.  The copy
 *    is redone (the content comes from the journal, so that is safe);
 *    appended mail is first added to a new journal, so that moving it
 *    down is just as safe.
 *  - otherwise, if [first, newsize) holds the content: the update was
 *    complete; anything past newsize was appended since.
 *  - otherwise the mbox was changed in an unknown way: touch nothing.
 * 0 applied, -1 error. */
static int
journal_apply(struct maildrop *md, struct mbox *mb, const char **error_r)
{
	char h[65], l[PATH_MAX + 16], tmp[PATH_MAX + 8];
	struct journal j;
	struct stat st;
	int jfd, nfd = -1, ret = -1;

	jfd = open(mb->journalpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
		   O_NONBLOCK);
	if (jfd < 0) {
		*error_r = mbox_err("cannot open the journal %s: %s",
				    lp(l, sizeof(l), mb->journalpath),
				    strerror(errno));
		return -1;
	}
	if (journal_read(jfd, &j) < 0 ||
	    hash_range(jfd, JOURNAL_HEADER_LEN,
		       JOURNAL_HEADER_LEN + j.newsize - j.first, h) < 0 ||
	    strcmp(h, j.contenthash) != 0) {
		*error_r = mbox_err("the journal %s is damaged; the mbox was "
				    "left alone", lp(l, sizeof(l),
						     mb->journalpath));
		goto cleanup;
	}
	for (;;) {
		if (fstat(mb->fd, &st) < 0) {
			*error_r = mbox_err("cannot stat the mbox: %s",
					    strerror(errno));
			goto cleanup;
		}
		if ((uint64_t)st.st_size >= j.oldsize &&
		    hash_range(mb->fd, j.newsize, j.oldsize, h) == 0 &&
		    strcmp(h, j.tailhash) == 0) {
			if ((uint64_t)st.st_size == j.oldsize)
				break;
			/* Mail appended after the crash: journal it too. */
			{
				struct journal j2 = j;
				uint64_t extra = (uint64_t)st.st_size -
					j.oldsize;

				snprintf(tmp, sizeof(tmp), "%s.tmp",
					 mb->journalpath);
				nfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC |
					   O_NOFOLLOW | O_CLOEXEC, 0600);
				if (nfd < 0)
					goto io_error;
				j2.oldsize = (uint64_t)st.st_size;
				j2.newsize = j.newsize + extra;
				if (copy_range(jfd, JOURNAL_HEADER_LEN, nfd,
					       JOURNAL_HEADER_LEN,
					       j.newsize - j.first, NULL) < 0 ||
				    copy_range(mb->fd, j.oldsize, nfd,
					       JOURNAL_HEADER_LEN + j.newsize -
					       j.first, extra, NULL) < 0 ||
				    hash_range(nfd, JOURNAL_HEADER_LEN,
					       JOURNAL_HEADER_LEN + j2.newsize -
					       j2.first, j2.contenthash) < 0 ||
				    hash_range(mb->fd, j2.newsize, j2.oldsize,
					       j2.tailhash) < 0 ||
				    journal_header_write(nfd, &j2) < 0 ||
				    journal_commit_file(nfd, tmp,
							mb->journalpath) < 0)
					goto io_error;
				close(jfd);
				jfd = nfd;
				nfd = -1;
				j = j2;
				log_msg(LOG_NOTICE, "mbox: %s: %" PRIu64
					" bytes appended during an interrupted"
					" update were kept",
					lp(l, sizeof(l), md->path), extra);
			}
			continue;
		}
		if ((uint64_t)st.st_size >= j.newsize &&
		    hash_range(mb->fd, j.first, j.newsize, h) == 0 &&
		    strcmp(h, j.contenthash) == 0) {
			/* Already complete. */
			if (fault_step() < 0 || unlink(mb->journalpath) < 0)
				goto io_error;
			(void)fsync_dir_of(mb->journalpath);
			ret = 0;
			goto cleanup;
		}
		*error_r = mbox_err("the mbox %s does not match its update "
				    "journal %s; both were left alone",
				    lp(l, sizeof(l), md->path),
				    mb->journalpath);
		goto cleanup;
	}
	if (copy_range(jfd, JOURNAL_HEADER_LEN, mb->fd, j.first,
		       j.newsize - j.first, mb->dotlock) < 0 ||
	    fsync_step(mb->fd) < 0 ||
	    fault_step() < 0 || ftruncate(mb->fd, (off_t)j.newsize) < 0 ||
	    fsync_step(mb->fd) < 0 ||
	    fault_step() < 0 || unlink(mb->journalpath) < 0)
		goto io_error;
	(void)fsync_dir_of(mb->journalpath);
	ret = 0;
	goto cleanup;
io_error:
	*error_r = mbox_err("cannot update the mbox %s: %s",
			    lp(l, sizeof(l), md->path), strerror(errno));
cleanup:
	if (nfd >= 0) {
		close(nfd);
		(void)unlink(tmp);
	}
	close(jfd);
	return ret;
}

/* ---- driver ------------------------------------------------------------------ */

static void
mbox_free(struct mbox *mb)
{
	if (mb == NULL)
		return;
	dotlock_release(&mb->dotlock);
	if (mb->fd >= 0)
		close(mb->fd);
	free(mb->recs);
	free(mb->uids);
	free(mb);
}

/* An index that matches the mbox's stamp is trusted, but not blindly: a
 * few of its "From " lines, the first and last among them, must stand
 * where it says.  1 yes, 0 no, -1 read error. */
static int
spot_check(int fd, const struct recs *r)
{
	size_t i, step = r->count / 16 + 1;
	int ok;

	for (i = 0; i < r->count; i += step)
		if ((ok = from_line_ok(fd, &r->v[i])) != 1)
			return ok;
	return r->count == 0 ? 1 : from_line_ok(fd, &r->v[r->count - 1]);
}

/* Read the messages of [0, st->st_size): from the index when it is
 * current, else by scanning (all, or only what was appended).  *dirty_r:
 * the index should be written again.  cache gets the index's UIDL
 * numbers when it has them for exactly these messages. */
static int
load_recs(struct maildrop *md, struct mbox *mb, const struct stat *st,
	  struct recs *r, struct index_uids *cache, bool *dirty_r,
	  enum maildrop_error *err_r, const char **error_r)
{
	uint64_t size = (uint64_t)st->st_size, covered = 0;
	bool exact = false, use_index = (md->flags & MAILDROP_NO_CACHE) == 0;
	char head[5];

	memset(r, 0, sizeof(*r));
	memset(cache, 0, sizeof(*cache));
	*dirty_r = false;
	if (size == 0)
		return 0;
	if (size < 5 || pread_all(mb->fd, head, 5, 0) < 0 ||
	    memcmp(head, "From ", 5) != 0) {
		*err_r = MAILDROP_ERR_PERM;
		*error_r = "not an mbox file (the first line is not a "
			"\"From \" line)";
		return -1;
	}
	if (use_index)
		covered = index_load(mb->indexpath, st, r, &exact, cache);
	if (covered > 0 && exact && spot_check(mb->fd, r) != 1) {
		free(r->v);
		memset(r, 0, sizeof(*r));
		free(cache->uids);
		cache->uids = NULL;
		covered = 0;
		exact = false;
	}
	if (covered > 0 && !exact) {
		if (from_lines_ok(mb->fd, r->v, r->count) != 1) {
			free(r->v);
			memset(r, 0, sizeof(*r));
			covered = 0;
		} else {
			/* The last message may have grown: scan again from
			 * its "From " line. */
			covered = r->v[--r->count].from_off;
		}
	}
	if (!exact) {
		if (covered == 0 && r->count > 0)
			r->count = 0;
		if (scan_all(mb->fd, covered, size, r, err_r, error_r) < 0)
			return -1;
		*dirty_r = use_index;
	}
	return 0;
}

static int
mbox_open(struct maildrop *md, enum maildrop_error *err_r,
	  const char **error_r)
{
	char l[PATH_MAX + 16];
	struct mbox *mb;
	struct recs r = { NULL, 0, 0 };
	struct index_uids cache;
	struct stat st;
	size_t i;
	bool dirty = false, cached = false;

	*err_r = MAILDROP_OK;
	*error_r = NULL;
	md->priv = NULL;
	mb = calloc(1, sizeof(*mb));
	if (mb == NULL) {
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = "out of memory opening the mbox";
		return -1;
	}
	mb->fd = -1;
	memset(&cache, 0, sizeof(cache));
	if (state_path(md->path, "uidl", mb->uidlpath,
		       sizeof(mb->uidlpath)) < 0 ||
	    state_path(md->path, "index", mb->indexpath,
		       sizeof(mb->indexpath)) < 0 ||
	    state_path(md->path, "journal", mb->journalpath,
		       sizeof(mb->journalpath)) < 0) {
		*err_r = MAILDROP_ERR_PERM;
		*error_r = "mbox path is too long or has no file name";
		goto fail;
	}
	mb->fd = open(md->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
		      O_NONBLOCK);
	if (mb->fd < 0 && (errno == EACCES || errno == EROFS)) {
		mb->rdonly = true;
		mb->fd = open(md->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
			      O_NOCTTY | O_NONBLOCK);
	}
	if (mb->fd < 0) {
		if (errno == ENOENT && access(mb->journalpath, F_OK) < 0) {
			/* No mbox yet: an empty maildrop. */
			if (assign_uids(md, mb, NULL, &cached, err_r,
					error_r) < 0)
				goto fail;
			md->priv = mb;
			return 0;
		}
		*err_r = errno == ENOENT ? MAILDROP_ERR_TEMP : MAILDROP_ERR_PERM;
		*error_r = errno == ENOENT ?
			"the mbox is missing but an update journal exists" :
			mbox_err("cannot open %s: %s",
				 lp(l, sizeof(l), md->path), strerror(errno));
		goto fail;
	}
	if (fstat(mb->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*err_r = MAILDROP_ERR_PERM;
		*error_r = mbox_err("%s is not a regular file",
				    lp(l, sizeof(l), md->path));
		goto fail;
	}
	if (delivery_lock(md, mb, err_r, error_r) < 0)
		goto fail;
	if (access(mb->journalpath, F_OK) == 0) {
		if (mb->rdonly) {
			*err_r = MAILDROP_ERR_PERM;
			*error_r = "an update journal exists but the mbox is "
				"read-only";
			goto fail_unlock;
		}
		log_msg(LOG_NOTICE, "mbox: %s: finishing an interrupted update",
			lp(l, sizeof(l), md->path));
		if (journal_apply(md, mb, error_r) < 0) {
			*err_r = MAILDROP_ERR_TEMP;
			goto fail_unlock;
		}
	}
	if (fstat(mb->fd, &st) < 0) {
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = mbox_err("cannot stat the mbox: %s", strerror(errno));
		goto fail_unlock;
	}
	if (load_recs(md, mb, &st, &r, &cache, &dirty, err_r, error_r) < 0)
		goto fail_unlock;
	delivery_unlock(mb);
	mb->dev = st.st_dev;
	mb->ino = st.st_ino;
	mb->snap = (uint64_t)st.st_size;
	mb->recs = r.v;
	r.v = NULL;
	if (r.count > 0) {
		md->msgs = calloc(r.count, sizeof(*md->msgs));
		if (md->msgs == NULL) {
			*err_r = MAILDROP_ERR_TEMP;
			*error_r = "out of memory opening the mbox";
			goto fail;
		}
	}
	for (i = 0; i < r.count; i++) {
		md->msgs[i].size = mb->recs[i].size;
		md->msgs[i].raw_size = mb->recs[i].raw_size;
		md->msgs[i].offset = (off_t)mb->recs[i].content_off;
		md->total_size += mb->recs[i].size;
	}
	md->count = r.count;
	md->priv = mb;
	if (assign_uids(md, mb, cache.uids != NULL && cache.next > 0 ?
			&cache : NULL, &cached, err_r, error_r) < 0) {
		md->priv = NULL;
		goto fail;
	}
	free(cache.uids);
	/* Keep the scan, and the numbers with the state they agree with,
	 * for the next login.  Written after the delivery lock is gone:
	 * the stamp is the one taken under it, so mail appended since makes
	 * the index merely partial. */
	if ((md->flags & MAILDROP_NO_CACHE) == 0 && r.count > 0 &&
	    (dirty || (!cached && mb->ustamp_ok))) {
		struct index_uids iu;

		memset(&iu, 0, sizeof(iu));
		if (mb->ustamp_ok) {
			iu.uids = mb->uids;
			memcpy(iu.epoch, mb->epoch, sizeof(iu.epoch));
			iu.next = mb->next_uid;
			iu.stamp = mb->ustamp;
		}
		index_write(mb->indexpath, &st, (uint64_t)st.st_size, mb->recs,
			    r.count, &iu);
	}
	return 0;
fail_unlock:
	delivery_unlock(mb);
fail:
	free(cache.uids);
	free(r.v);
	mbox_free(mb);
	if (*err_r == MAILDROP_ERR_PERM)
		log_msg(LOG_ERR, "mbox: %s: %s", lp(l, sizeof(l), md->path),
			*error_r);
	return -1;
}

static int
mbox_msg_open(struct maildrop *md, size_t idx, int *fd_r,
	      const char **error_r)
{
	struct mbox *mb = md->priv;
	struct stat st;

	*fd_r = -1;
	*error_r = NULL;
	if (mb == NULL || idx >= md->count || mb->fd < 0) {
		*error_r = "no such message";
		return -1;
	}
	/* Another program may have rewritten the file in place: what we
	 * send must be what we announced. */
	if (fstat(mb->fd, &st) < 0 || (uint64_t)st.st_size < mb->snap ||
	    from_line_ok(mb->fd, &mb->recs[idx]) != 1) {
		*error_r = "the mbox was changed by another program";
		return -1;
	}
	*fd_r = mb->fd;
	return 0;
}

static void
mbox_msg_close(struct maildrop *md, size_t idx, int fd)
{
	/* The descriptor is the mbox's own, kept for the session. */
	(void)md;
	(void)idx;
	(void)fd;
}

/* Is the mbox still the snapshot, possibly with mail appended?  1 yes,
 * 0 no (*why_r), -1 read error. */
static int
only_appended(struct maildrop *md, struct mbox *mb, const struct stat *st,
	      const char **why_r)
{
	struct stat pst;
	char head[5];
	int r;

	if (stat(md->path, &pst) < 0 || pst.st_dev != mb->dev ||
	    pst.st_ino != mb->ino) {
		*why_r = "the mbox file was replaced";
		return 0;
	}
	if ((uint64_t)st->st_size < mb->snap) {
		*why_r = "the mbox shrank";
		return 0;
	}
	r = from_lines_ok(mb->fd, mb->recs, md->count);
	if (r != 1) {
		*why_r = "messages moved inside the mbox";
		return r;
	}
	if ((uint64_t)st->st_size > mb->snap &&
	    (pread_all(mb->fd, head, 5, mb->snap) < 0 ||
	     memcmp(head, "From ", 5) != 0)) {
		*why_r = "data was added that is not a new message";
		return 0;
	}
	return 1;
}

static int
mbox_commit(struct maildrop *md, unsigned int *deleted_r,
	    enum maildrop_error *err_r, const char **error_r)
{
	struct mbox *mb = md->priv;
	char l[PATH_MAX + 16], tmp[PATH_MAX + 8];
	struct journal j;
	struct stat st;
	uint64_t pos, cur, kept_end;
	size_t i, first = SIZE_MAX;
	unsigned int ndel = 0;
	const char *why = NULL;
	int jfd = -1, r;

	*deleted_r = 0;
	*err_r = MAILDROP_OK;
	*error_r = NULL;
	if (mb == NULL)
		return 0;
	for (i = 0; i < md->count; i++) {
		if (md->msgs[i].deleted) {
			if (first == SIZE_MAX)
				first = i;
			ndel++;
		}
	}
	if (ndel == 0)
		return 0;
	if (mb->rdonly) {
		*err_r = MAILDROP_ERR_PERM;
		*error_r = "the mbox is read-only";
		return -1;
	}
	fault_load();
	if (delivery_lock(md, mb, err_r, error_r) < 0)
		return -1;
	if (access(mb->journalpath, F_OK) == 0) {
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = "an update journal exists already";
		goto fail;
	}
	if (fstat(mb->fd, &st) < 0)
		goto io_error;
	r = only_appended(md, mb, &st, &why);
	if (r < 0)
		goto io_error;
	if (r == 0) {
		*err_r = MAILDROP_ERR_TEMP;
		*error_r = mbox_err("the mbox %s was changed by another "
				    "program during the session (%s): nothing "
				    "was deleted", lp(l, sizeof(l), md->path),
				    why);
		goto fail;
	}
	cur = (uint64_t)st.st_size;

	/* The new tail: kept messages from the first deleted one on (each
	 * with the separator line after it), then what was appended. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", mb->journalpath);
	jfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		   0600);
	if (jfd < 0)
		goto io_error;
	memset(&j, 0, sizeof(j));
	j.first = mb->recs[first].from_off;
	j.oldsize = cur;
	pos = JOURNAL_HEADER_LEN;
	for (i = first; i < md->count; i++) {
		uint64_t end = i + 1 < md->count ? mb->recs[i + 1].from_off :
			mb->snap;

		if (md->msgs[i].deleted)
			continue;
		if (copy_range(mb->fd, mb->recs[i].from_off, jfd, pos,
			       end - mb->recs[i].from_off, NULL) < 0)
			goto io_error;
		pos += end - mb->recs[i].from_off;
	}
	kept_end = j.first + (pos - JOURNAL_HEADER_LEN);
	if (copy_range(mb->fd, mb->snap, jfd, pos, cur - mb->snap, NULL) < 0)
		goto io_error;
	pos += cur - mb->snap;
	j.newsize = j.first + (pos - JOURNAL_HEADER_LEN);
	if (hash_range(jfd, JOURNAL_HEADER_LEN, pos, j.contenthash) < 0 ||
	    hash_range(mb->fd, j.newsize, j.oldsize, j.tailhash) < 0 ||
	    journal_header_write(jfd, &j) < 0 ||
	    journal_commit_file(jfd, tmp, mb->journalpath) < 0)
		goto io_error;
	close(jfd);
	jfd = -1;
	/* From here on the update happens: now or at the next open. */
	if (journal_apply(md, mb, error_r) < 0) {
		*err_r = MAILDROP_ERR_TEMP;
		goto fail;
	}
	*deleted_r = ndel;
	/* The kept messages at their new offsets, for the index and the
	 * UIDL state. */
	{
		uint64_t shift = 0;
		size_t n = 0;

		for (i = 0; i < md->count; i++) {
			uint64_t end = i + 1 < md->count ?
				mb->recs[i + 1].from_off : mb->snap;
			uint64_t len = end - mb->recs[i].from_off;

			if (md->msgs[i].deleted) {
				shift += len;
				continue;
			}
			mb->recs[n] = mb->recs[i];
			mb->recs[n].from_off -= shift;
			mb->recs[n].content_off -= shift;
			mb->uids[n] = mb->uids[i];
			n++;
		}
		bool have_st = n > 0 && fstat(mb->fd, &st) == 0;

		if ((md->flags & MAILDROP_NO_CACHE) == 0 && !have_st)
			(void)unlink(mb->indexpath);
		delivery_unlock(mb);
		mb->ustamp_ok = false;
		if (ustate_write(mb->uidlpath, mb->epoch, mb->next_uid,
				 mb->uids, mb->recs, n, NULL) < 0)
			log_msg(LOG_WARNING, "mbox: cannot write the UIDL "
				"state %s: %s", lp(l, sizeof(l), mb->uidlpath),
				strerror(errno));
		else
			ustamp_take(mb);
		/* The stamp is the one taken under the lock: mail appended
		 * since makes the index merely partial. */
		if ((md->flags & MAILDROP_NO_CACHE) == 0 && have_st) {
			struct index_uids iu;

			memset(&iu, 0, sizeof(iu));
			if (mb->ustamp_ok) {
				iu.uids = mb->uids;
				memcpy(iu.epoch, mb->epoch, sizeof(iu.epoch));
				iu.next = mb->next_uid;
				iu.stamp = mb->ustamp;
			}
			index_write(mb->indexpath, &st, kept_end, mb->recs, n,
				    &iu);
		}
	}
	/* The session ends after QUIT: nothing may use the old offsets. */
	close(mb->fd);
	mb->fd = -1;
	return 0;
io_error:
	*err_r = MAILDROP_ERR_TEMP;
	*error_r = mbox_err("cannot update the mbox %s: %s",
			    lp(l, sizeof(l), md->path), strerror(errno));
fail:
	if (jfd >= 0) {
		close(jfd);
		(void)unlink(tmp);
	}
	delivery_unlock(mb);
	return -1;
}

static void
mbox_close(struct maildrop *md)
{
	mbox_free(md->priv);
	md->priv = NULL;
}

/* "EPOCH.N": the epoch of the state and the message's number in it. */
static void
mbox_uidl(const struct maildrop *md, size_t idx, char *out)
{
	const struct mbox *mb = md->priv;

	format_uidl(out, mb->epoch, mb->uids[idx]);
}

const struct maildrop_driver maildrop_mbox = {
	.name = "mbox",
	.lock_path = mbox_lock_path,
	.open = mbox_open,
	.msg_open = mbox_msg_open,
	.msg_close = mbox_msg_close,
	.uidl = mbox_uidl,
	.commit = mbox_commit,
	.close = mbox_close,
};
