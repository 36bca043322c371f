/* check_maildir.c: unit tests for maildrop locations and the Maildir
 * driver (listing, UIDLs, sizes, the size cache, message access and
 * deletion). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include "log.h"
#include "maildrop.h"
#include "testdir.h"

/* The UIDL of message i of md, in one of four buffers: an assertion may
 * compare two. */
static const char *
UIDL(const struct maildrop *md, size_t i)
{
	static char buf[4][POP3_UIDL_MAX + 1];
	static unsigned int next;

	return maildrop_uidl(md, i, buf[next++ % 4]);
}

/* Well under PATH_MAX, so that paths built from it always fit. */
static char mdpath[1100];

/* ---- helpers --------------------------------------------------------- */

static void
make_tmpdir(void)
{
	test_dir_make("maildir");
	snprintf(mdpath, sizeof(mdpath), "%s/Maildir", test_dir);
}

static void
setup_maildir(void)
{
	char p[PATH_MAX];

	make_tmpdir();
	ck_assert_int_eq(mkdir(mdpath, 0700), 0);
	snprintf(p, sizeof(p), "%s/new", mdpath);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/cur", mdpath);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/tmp", mdpath);
	ck_assert_int_eq(mkdir(p, 0700), 0);
}

static void
teardown_tmpdir(void)
{
	if (test_dir[0] != '\0') {
		/* Restore permissions a test may have taken away. */
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/new", mdpath);
		(void)chmod(p, 0700);
	}
	test_dir_remove();
}

static void
md_path(char *out, size_t size, const char *rel)
{
	snprintf(out, size, "%s/%s", mdpath, rel);
}

static void
put(const char *rel, const void *data, size_t len)
{
	char p[PATH_MAX];
	int fd;

	md_path(p, sizeof(p), rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

static void
puts_md(const char *rel, const char *text)
{
	put(rel, text, strlen(text));
}

static void
set_mtime(const char *rel, time_t t)
{
	char p[PATH_MAX];
	struct timeval tv[2] = { { t, 0 }, { t, 0 } };

	md_path(p, sizeof(p), rel);
	ck_assert_int_eq(utimes(p, tv), 0);
}

static int
exists(const char *rel)
{
	char p[PATH_MAX];
	struct stat st;

	md_path(p, sizeof(p), rel);
	return lstat(p, &st) == 0;
}

static ino_t
inode_of(const char *rel)
{
	char p[PATH_MAX];
	struct stat st;

	md_path(p, sizeof(p), rel);
	ck_assert_int_eq(stat(p, &st), 0);
	return st.st_ino;
}

static struct maildrop *
md_open(void)
{
	enum maildrop_error err;
	const char *error;
	struct maildrop *md;

	md = maildrop_open(&maildrop_maildir, mdpath, 0, &err, &error);
	ck_assert_msg(md != NULL, "open failed: %s", error);
	ck_assert_int_eq(err, MAILDROP_OK);
	return md;
}

/* Open, and return the total size (the count must be 3). */
static uint64_t
md_open_count_total(void)
{
	struct maildrop *md = md_open();
	uint64_t total = md->total_size;

	ck_assert_uint_eq(md->count, 3);
	maildrop_close(&md);
	return total;
}

static size_t
find_msg(const struct maildrop *md, const char *name)
{
	size_t i;

	for (i = 0; i < md->count; i++)
		if (strcmp(md->msgs[i].name, name) == 0)
			return i;
	ck_abort_msg("message %s not listed", name);
	return 0;
}

/* The size cache's checksum, recomputed here so that tests can forge
 * well-formed caches with wrong contents. */
static uint64_t
fnv1a64(const char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL, w;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		h ^= w;
		h *= 0x100000001b3ULL;
	}
	for (; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void
write_cache_body(const char *body)
{
	char text[4096];
	int n;

	n = snprintf(text, sizeof(text), "%s", body);
	snprintf(text + n, sizeof(text) - (size_t)n, "checksum %016" PRIx64
		 "\n", fnv1a64(text, (size_t)n));
	puts_md("poplar-sizes", text);
}

static size_t
read_rel(const char *rel, char *buf, size_t size)
{
	char p[PATH_MAX];
	ssize_t r;
	int fd;

	md_path(p, sizeof(p), rel);
	fd = open(p, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	r = read(fd, buf, size - 1);
	ck_assert_int_ge(r, 0);
	buf[r] = '\0';
	close(fd);
	return (size_t)r;
}

/* ---- locations --------------------------------------------------------- */

START_TEST(test_expand_ok)
{
	char out[256];
	const char *error;
	const struct maildrop_driver *drv;

	drv = maildrop_expand("maildir:%h/Maildir", "alice", "/home/alice",
			      out, sizeof(out), &error);
	ck_assert_ptr_eq(drv, &maildrop_maildir);
	ck_assert_str_eq(out, "/home/alice/Maildir");
	drv = maildrop_expand("maildir:/srv/mail/%u/Maildir", "bob", "/x",
			      out, sizeof(out), &error);
	ck_assert_ptr_eq(drv, &maildrop_maildir);
	ck_assert_str_eq(out, "/srv/mail/bob/Maildir");
	drv = maildrop_expand("maildir:/m/100%%/%u-%u", "c", "/h",
			      out, sizeof(out), &error);
	ck_assert_ptr_eq(drv, &maildrop_maildir);
	ck_assert_str_eq(out, "/m/100%/c-c");
	/* A user name is only checked when it is used. */
	drv = maildrop_expand("maildir:%h/Maildir", "../x", "/home/x",
			      out, sizeof(out), &error);
	ck_assert_ptr_eq(drv, &maildrop_maildir);
	ck_assert_str_eq(out, "/home/x/Maildir");
}
END_TEST

START_TEST(test_expand_bad)
{
	char out[64];
	const char *error;

	ck_assert_ptr_null(maildrop_expand("maildir:/m/%x", "a", "/h", out,
					   sizeof(out), &error));
	ck_assert_ptr_nonnull(error);
	ck_assert_ptr_null(maildrop_expand("maildir:/m/%", "a", "/h", out,
					   sizeof(out), &error));
	ck_assert_ptr_null(maildrop_expand("maildir:", "a", "/h", out,
					   sizeof(out), &error));
	ck_assert_ptr_null(maildrop_expand("maildir:Maildir", "a", "/h", out,
					   sizeof(out), &error));
	ck_assert_ptr_null(maildrop_expand("maildir:%h/M", "a", "rel", out,
					   sizeof(out), &error));
	ck_assert_ptr_null(maildrop_expand("imap:/m", "a", "/h", out,
					   sizeof(out), &error));
	ck_assert_ptr_null(maildrop_expand("/m/%u", "a", "/h", out,
					   sizeof(out), &error));
	ck_assert_ptr_eq(maildrop_expand("mbox:/var/mail/%u", "a", "/h",
					 out, sizeof(out), &error),
			 &maildrop_mbox);
	ck_assert_str_eq(out, "/var/mail/a");
}
END_TEST

START_TEST(test_expand_traversal)
{
	static const char *const bad[] = { "../x", "a/b", ".hidden", "..",
					   ".", "", "/etc", "a\nb", "x/../.." };
	char out[64];
	const char *error;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error = NULL;
		ck_assert_msg(maildrop_expand("maildir:/srv/%u/Maildir", bad[i],
					      "/h", out, sizeof(out),
					      &error) == NULL,
			      "user \"%s\" accepted", bad[i]);
		ck_assert_ptr_nonnull(error);
	}
	ck_assert_ptr_null(maildrop_expand("maildir:/srv/%u", NULL, "/h",
					   out, sizeof(out), &error));
}
END_TEST

START_TEST(test_expand_too_long)
{
	char out[16], big[600];
	const char *error;

	/* Exactly fits: 15 characters and the NUL. */
	ck_assert_ptr_nonnull(maildrop_expand("maildir:/123456789/%u", "abcd",
					      "/h", out, sizeof(out), &error));
	ck_assert_str_eq(out, "/123456789/abcd");
	ck_assert_ptr_null(maildrop_expand("maildir:/123456789/%u", "abcde",
					   "/h", out, sizeof(out), &error));
	ck_assert_ptr_nonnull(error);
	ck_assert_str_eq(out, "");
	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	ck_assert_ptr_null(maildrop_expand("maildir:%h/Maildir", "u", big,
					   out, sizeof(out), &error));
	ck_assert_ptr_null(maildrop_expand("maildir:/x", "u", "/h", out, 0,
					   &error));
}
END_TEST

START_TEST(test_location_valid)
{
	const char *error;

	ck_assert_int_eq(maildrop_location_valid("maildir:%h/Maildir",
						 &error), 0);
	ck_assert_int_eq(maildrop_location_valid("maildir:/m/%u/%%", &error),
			 0);
	/* Syntactically fine; expansion says it is not supported yet. */
	ck_assert_int_eq(maildrop_location_valid("mbox:/var/mail/%u", &error),
			 0);
	ck_assert_int_eq(maildrop_location_valid("maildir:/m/%d", &error), -1);
	ck_assert_ptr_nonnull(error);
	ck_assert_int_eq(maildrop_location_valid("maildir:/m/%", &error), -1);
	ck_assert_int_eq(maildrop_location_valid("maildir:", &error), -1);
	ck_assert_int_eq(maildrop_location_valid("maildir:Maildir", &error),
			 -1);
	ck_assert_int_eq(maildrop_location_valid("%h/Maildir", &error), -1);
	ck_assert_int_eq(maildrop_location_valid("maildir:/m/a\nb", &error),
			 -1);
}
END_TEST

/* ---- listing and UIDLs --------------------------------------------------- */

START_TEST(test_missing_maildir)
{
	struct maildrop *md;

	make_tmpdir();
	md = md_open();
	ck_assert_uint_eq(md->count, 0);
	ck_assert_uint_eq(md->total_size, 0);
	maildrop_close(&md);
	ck_assert_ptr_null(md);
	/* Nothing is created by merely looking. */
	ck_assert(!exists(""));
}
END_TEST

START_TEST(test_empty_maildir)
{
	struct maildrop *md = md_open();

	ck_assert_uint_eq(md->count, 0);
	maildrop_close(&md);
	ck_assert(!exists("poplar-sizes"));
}
END_TEST

START_TEST(test_order)
{
	struct maildrop *md;
	char p[PATH_MAX], q[PATH_MAX];

	puts_md("new/1000.M1.host", "b\n");
	puts_md("new/999.M2.host", "a\n");
	puts_md("cur/1500.M3.host:2,S", "d\n");
	puts_md("cur/1000.M0.host:2,", "c\n");
	/* Not messages: dotfiles, directories, symlinks, FIFOs (which
	 * must not even be opened: that would wait for a writer), tmp/. */
	puts_md("new/.hidden", "x\n");
	puts_md("tmp/1.being-delivered", "x\n");
	md_path(p, sizeof(p), "cur/1200.dir");
	ck_assert_int_eq(mkdir(p, 0700), 0);
	md_path(p, sizeof(p), "new/1100.link");
	md_path(q, sizeof(q), "new/999.M2.host");
	ck_assert_int_eq(symlink(q, p), 0);
	md_path(p, sizeof(p), "new/1300.fifo");
	ck_assert_int_eq(mkfifo(p, 0600), 0);

	md = md_open();
	ck_assert_uint_eq(md->count, 4);
	ck_assert_str_eq(md->msgs[0].name, "new/999.M2.host");
	ck_assert_str_eq(md->msgs[1].name, "cur/1000.M0.host:2,");
	ck_assert_str_eq(md->msgs[2].name, "new/1000.M1.host");
	ck_assert_str_eq(md->msgs[3].name, "cur/1500.M3.host:2,S");
	ck_assert_str_eq(UIDL(md, 1), "1000.M0.host");
	ck_assert_str_eq(UIDL(md, 3), "1500.M3.host");
	ck_assert_uint_eq(md->total_size, 12);
	ck_assert(!md->msgs[0].deleted);
	ck_assert_int_eq(md->msgs[0].offset, 0);
	maildrop_close(&md);
}
END_TEST

/* The listing's order is strverscmp's on the base names (the name
 * itself breaks ties), however the driver computes it: random names
 * made of digit runs with and without leading zeros, long numbers,
 * dots and letters, in new/ and in cur/ with flags. */
static uint64_t order_rng_state;

static unsigned int
order_rng(unsigned int n)
{
	order_rng_state ^= order_rng_state >> 12;
	order_rng_state ^= order_rng_state << 25;
	order_rng_state ^= order_rng_state >> 27;
	return (unsigned int)((order_rng_state * 0x2545F4914F6CDD1DULL)
			      >> 33) % n;
}

static const char *
base_of(const char *name)
{
	static char buf[NAME_MAX + 1];
	const char *file = strchr(name, '/') + 1;

	snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(file, ":"), file);
	return buf;
}

static int
order_cmp(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	char bx[NAME_MAX + 1];
	int c;

	snprintf(bx, sizeof(bx), "%s", base_of(x));
	c = strverscmp(bx, base_of(y));
	return c != 0 ? c : strcmp(x, y);
}

START_TEST(test_order_random)
{
	static const char *const parts[] = {
		"0", "00", "007", "1", "9", "10", "99", "100", "1700000000",
		"1699999999", "12345678901234567890", "9999999999999999999",
		"10000000000000000000", ".", ".M", "P", "a", "_", "x.y",
		".M12345P", ".M123456P" };
	enum { N = 800 };
	char *want[N];
	struct maildrop *md;
	size_t n = 0, i;

	order_rng_state = 0x853c49e6748fea9bULL;
	while (n < N) {
		char base[128] = "", name[160];
		unsigned int k = 1 + order_rng(6);

		/* Half share a leading time, as in a busy Maildir; what
		 * follows it decides. */
		if (order_rng(2) == 0)
			strcat(base, "1700000000");

		for (unsigned int j = 0; j < k; j++) {
			const char *part;

			do
				part = parts[order_rng(sizeof(parts) /
						       sizeof(parts[0]))];
			while (j == 0 && part[0] == '.');
			strcat(base, part);
		}
		if (order_rng(2) == 0)
			snprintf(name, sizeof(name), "new/%s", base);
		else
			snprintf(name, sizeof(name), "cur/%s:2,%s", base,
				 order_rng(2) == 0 ? "S" : "");
		if (exists(name))
			continue;
		puts_md(name, "m\n");
		want[n] = strdup(name);
		ck_assert_ptr_nonnull(want[n]);
		n++;
	}
	qsort(want, n, sizeof(want[0]), order_cmp);
	md = maildrop_open(&maildrop_maildir, mdpath, MAILDROP_NO_CACHE,
			   &(enum maildrop_error){ 0 }, &(const char *){ NULL });
	ck_assert_ptr_nonnull(md);
	/* Files of one base name that are distinct all stay. */
	ck_assert_uint_eq(md->count, n);
	for (i = 0; i < n; i++) {
		ck_assert_msg(strcmp(md->msgs[i].name, want[i]) == 0,
			      "position %zu: %s, want %s", i,
			      md->msgs[i].name, want[i]);
		free(want[i]);
	}
	maildrop_close(&md);
}
END_TEST

START_TEST(test_same_base_name)
{
	struct maildrop *md;
	char p[PATH_MAX], q[PATH_MAX];

	/* One file seen in new/ and cur/ (moved while listing): once. */
	puts_md("new/3000.Y.host", "y\n");
	md_path(p, sizeof(p), "new/3000.Y.host");
	md_path(q, sizeof(q), "cur/3000.Y.host:2,S");
	ck_assert_int_eq(link(p, q), 0);
	/* Two different files sharing a base name: both, distinct UIDLs. */
	puts_md("new/2000.X.host", "x1\n");
	puts_md("cur/2000.X.host:2,S", "x2\n");

	md = md_open();
	ck_assert_uint_eq(md->count, 3);
	ck_assert_str_eq(md->msgs[0].name, "cur/2000.X.host:2,S");
	ck_assert_str_eq(UIDL(md, 0), "2000.X.host");
	ck_assert_str_eq(md->msgs[1].name, "new/2000.X.host");
	ck_assert_str_ne(UIDL(md, 1), UIDL(md, 0));
	ck_assert_int_eq(UIDL(md, 1)[0], 'H');
	ck_assert_str_eq(md->msgs[2].name, "cur/3000.Y.host:2,S");
	ck_assert_str_eq(UIDL(md, 2), "3000.Y.host");
	maildrop_close(&md);
}
END_TEST

/* "1700000000.M1P1." and 55 'x': 71 characters, one too many. */
#define NAME71 "1700000000.M1P1.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define NAME71_UIDL "Ha5d9fe889ba29a33e0fa258ee969d00686e6f1e6"
#define NAME70 "1700000000.M1P1.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

START_TEST(test_uidl)
{
	struct maildrop *md;
	char uidls[4][POP3_UIDL_MAX + 1];
	size_t i;
	int round;

	ck_assert_uint_eq(strlen(NAME71), 71);
	ck_assert_uint_eq(strlen(NAME70), 70);
	puts_md("new/1.short", "a\n");
	puts_md("new/" NAME70, "b\n");
	puts_md("new/" NAME71, "c\n");
	puts_md("cur/17.a\001b:2,S", "d\n");

	for (round = 0; round < 2; round++) {
		md = md_open();
		ck_assert_uint_eq(md->count, 4);
		i = find_msg(md, "new/1.short");
		ck_assert_str_eq(UIDL(md, i), "1.short");
		i = find_msg(md, "new/" NAME70);
		ck_assert_str_eq(UIDL(md, i), NAME70);
		i = find_msg(md, "new/" NAME71);
		ck_assert_str_eq(UIDL(md, i), NAME71_UIDL);
		i = find_msg(md, "cur/17.a\001b:2,S");
		ck_assert_str_eq(UIDL(md, i),
				 "Hd7b92bca48bfb977a140f1653d08a9ea43fb18e0");
		/* Stable across opens (the second one uses the cache). */
		for (i = 0; i < 4; i++) {
			if (round == 0)
				strcpy(uidls[i], UIDL(md, i));
			else
				ck_assert_str_eq(uidls[i], UIDL(md, i));
		}
		maildrop_close(&md);
	}
	/* Changing flags does not change the UIDL. */
	{
		char p[PATH_MAX], q[PATH_MAX];

		md_path(p, sizeof(p), "cur/17.a\001b:2,S");
		md_path(q, sizeof(q), "cur/17.a\001b:2,RS");
		ck_assert_int_eq(rename(p, q), 0);
	}
	md = md_open();
	i = find_msg(md, "cur/17.a\001b:2,RS");
	ck_assert_str_eq(UIDL(md, i),
			 "Hd7b92bca48bfb977a140f1653d08a9ea43fb18e0");
	maildrop_close(&md);
}
END_TEST

/* ---- sizes ----------------------------------------------------------------- */

START_TEST(test_sizes)
{
	struct maildrop *md;
	static const char big_line[] = "0123456789abcdefghij\n";
	char *big;
	size_t i, big_lines = 10000, big_len;

	puts_md("new/1.lf", "a\nb\n");
	puts_md("new/2.crlf", "a\r\nb\r\n");
	puts_md("new/3.nofinal", "a\nb");
	puts_md("new/4.empty", "");
	put("new/5.nul", "a\0b\n", 4);
	puts_md("new/6.mixed", "a\r\nb\nc\r");
	/* Over several read chunks, with a CR LF split on a boundary. */
	big_len = big_lines * (sizeof(big_line) - 1);
	big = malloc(big_len);
	ck_assert_ptr_nonnull(big);
	for (i = 0; i < big_lines; i++)
		memcpy(big + i * (sizeof(big_line) - 1), big_line,
		       sizeof(big_line) - 1);
	put("new/7.big", big, big_len);
	memset(big, 'x', big_len);
	big[65535] = '\r';
	big[65536] = '\n';
	big[big_len - 1] = '\n';
	put("new/8.boundary", big, big_len);
	free(big);

	md = md_open();
	ck_assert_uint_eq(md->count, 8);
	ck_assert_uint_eq(md->msgs[0].raw_size, 4);
	ck_assert_uint_eq(md->msgs[0].size, 6);
	ck_assert_uint_eq(md->msgs[1].raw_size, 6);
	ck_assert_uint_eq(md->msgs[1].size, 6);
	ck_assert_uint_eq(md->msgs[2].raw_size, 3);
	ck_assert_uint_eq(md->msgs[2].size, 6);
	ck_assert_uint_eq(md->msgs[3].raw_size, 0);
	ck_assert_uint_eq(md->msgs[3].size, 0);
	ck_assert_uint_eq(md->msgs[4].raw_size, 4);
	ck_assert_uint_eq(md->msgs[4].size, 5);
	ck_assert_uint_eq(md->msgs[5].raw_size, 7);
	ck_assert_uint_eq(md->msgs[5].size, 10);
	ck_assert_uint_eq(md->msgs[6].raw_size, big_len);
	ck_assert_uint_eq(md->msgs[6].size, big_len + big_lines);
	ck_assert_uint_eq(md->msgs[7].raw_size, big_len);
	ck_assert_uint_eq(md->msgs[7].size, big_len + 1);
	ck_assert_uint_eq(md->total_size, 6 + 6 + 6 + 0 + 5 + 10 +
			  (big_len + big_lines) + (big_len + 1));
	maildrop_close(&md);

	/* The same sizes from the cache. */
	md = md_open();
	ck_assert_uint_eq(md->msgs[2].size, 6);
	ck_assert_uint_eq(md->msgs[3].size, 0);
	ck_assert_uint_eq(md->msgs[6].size, big_len + big_lines);
	maildrop_close(&md);
}
END_TEST

/* Many messages, so that sizes are counted the fast way, in batches
 * (and in parallel), with their data read ahead when it is not in the
 * page cache (it is dropped here where the system allows): every size
 * must still be the one the definition gives.  Random contents: LF and
 * CRLF line ends, bare CRs, empty files, no final newline, sizes from 0
 * to 70,000 bytes (more than one read).  Then again with so few
 * descriptors left that most opens of the fast way fail: the messages
 * it leaves are counted the careful way, with the same result. */
enum { MANY = 1500, MANY_BIG = 70000 };
static uint64_t many_rng_state;
static uint64_t many_want[MANY];

static uint64_t
many_rng(void)
{
	many_rng_state ^= many_rng_state >> 12;
	many_rng_state ^= many_rng_state << 25;
	many_rng_state ^= many_rng_state >> 27;
	return many_rng_state * 0x2545F4914F6CDD1DULL;
}

static void
many_name(size_t i, char *rel, size_t size)
{
	snprintf(rel, size, "%s/%zu.M%zu.host%s", i % 3 == 0 ? "new" : "cur",
		 1000000 + i, i, i % 3 == 0 ? "" : ":2,S");
}

/* Written back, clean pages can be dropped.  Only these files' data is
 * written (not the whole filesystem, nor a journal commit per file). */
static void
many_drop_pages(void)
{
	char rel[64], p[PATH_MAX];
	int fd;

	for (size_t i = 0; i < MANY; i++) {
		many_name(i, rel, sizeof(rel));
		md_path(p, sizeof(p), rel);
		fd = open(p, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		close(fd);
	}
	for (size_t i = 0; i < MANY; i++) {
		many_name(i, rel, sizeof(rel));
		md_path(p, sizeof(p), rel);
		fd = open(p, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		(void)sync_file_range(fd, 0, 0,
				      SYNC_FILE_RANGE_WAIT_BEFORE |
				      SYNC_FILE_RANGE_WRITE |
				      SYNC_FILE_RANGE_WAIT_AFTER);
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

static void
many_check(unsigned int flags)
{
	enum maildrop_error err;
	const char *error;
	struct maildrop *md;
	uint64_t total = 0;

	md = maildrop_open(&maildrop_maildir, mdpath, flags, &err, &error);
	ck_assert_msg(md != NULL, "open failed: %s", error);
	ck_assert_uint_eq(md->count, MANY);
	for (size_t i = 0; i < MANY; i++) {
		ck_assert_msg(md->msgs[i].size == many_want[i],
			      "message %zu (%s): %" PRIu64 ", want %" PRIu64,
			      i, md->msgs[i].name, md->msgs[i].size,
			      many_want[i]);
		total += many_want[i];
	}
	ck_assert_uint_eq(md->total_size, total);
	maildrop_close(&md);
}

START_TEST(test_sizes_many)
{
	unsigned char *data = malloc(MANY_BIG);
	struct rlimit rl;

	ck_assert_ptr_nonnull(data);
	many_rng_state = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < MANY; i++) {
		char rel[64];
		size_t len = many_rng() % 8 == 0 ? 0 :
			(size_t)(many_rng() % (i % 100 == 0 ? MANY_BIG : 3000));
		unsigned int odds = 2 + (unsigned int)(many_rng() % 60);

		for (size_t k = 0; k < len; k++) {
			uint64_t x = many_rng() % odds;

			data[k] = x == 0 ? '\n' : x == 1 ? '\r' :
				(unsigned char)('a' + x % 26);
		}
		many_want[i] = len;
		for (size_t k = 0; k < len; k++)
			if (data[k] == '\n' && (k == 0 || data[k - 1] != '\r'))
				many_want[i]++;
		if (len > 0 && data[len - 1] != '\n')
			many_want[i] += 2;
		many_name(i, rel, sizeof(rel));
		put(rel, data, len);
	}
	free(data);
	many_drop_pages();
	many_check(0);

	many_drop_pages();
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = 24;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	many_check(MAILDROP_NO_CACHE);
}
END_TEST

START_TEST(test_too_large)
{
	enum maildrop_error err;
	const char *error;
	char p[PATH_MAX];
	struct maildrop *md;
	int fd;

	puts_md("new/1.ok", "a\n");
	md_path(p, sizeof(p), "new/2.huge");
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	if (ftruncate(fd, (off_t)MAILDROP_MAX_MESSAGE_SIZE + 1) < 0) {
		/* A filesystem without such sparse files: nothing to test. */
		close(fd);
		return;
	}
	close(fd);
	md = maildrop_open(&maildrop_maildir, mdpath, 0, &err, &error);
	ck_assert_ptr_null(md);
	ck_assert_int_eq(err, MAILDROP_ERR_PERM);
	ck_assert_msg(strstr(error, "too large") != NULL, "%s", error);
}
END_TEST

START_TEST(test_unreadable)
{
	enum maildrop_error err;
	const char *error;
	char p[PATH_MAX];
	struct maildrop *md;

	/* new/ is there but is not a readable directory. */
	md_path(p, sizeof(p), "new");
	ck_assert_int_eq(rmdir(p), 0);
	puts_md("new", "not a directory\n");
	md = maildrop_open(&maildrop_maildir, mdpath, 0, &err, &error);
	ck_assert_ptr_null(md);
	ck_assert_int_eq(err, MAILDROP_ERR_TEMP);
	ck_assert_ptr_nonnull(error);
	ck_assert_int_eq(unlink(p), 0);

	/* Permissions do not stop root; test them as a normal user only. */
	if (geteuid() != 0) {
		ck_assert_int_eq(mkdir(p, 0700), 0);
		ck_assert_int_eq(chmod(p, 0), 0);
		md = maildrop_open(&maildrop_maildir, mdpath, 0, &err, &error);
		ck_assert_ptr_null(md);
		ck_assert_int_eq(err, MAILDROP_ERR_TEMP);
	}
}
END_TEST

/* ---- size cache -------------------------------------------------------------- */

#define T0 1700000000

/* A message whose cached size (6) differs from its real one (4) once
 * its content is swapped behind the cache's back. */
static void
prepare_swapped(void)
{
	struct maildrop *md;
	char p[PATH_MAX];

	md_path(p, sizeof(p), "poplar-sizes");
	(void)unlink(p);
	puts_md("new/1.m", "a\nb\n");
	set_mtime("new/1.m", T0);
	md = md_open();
	ck_assert_uint_eq(md->msgs[0].size, 6);
	maildrop_close(&md);
	ck_assert(exists("poplar-sizes"));
	/* Same raw size, same mtime, different CRLF size. */
	puts_md("new/1.m", "ab\r\n");
	set_mtime("new/1.m", T0);
}

static uint64_t
size_now(void)
{
	struct maildrop *md = md_open();
	uint64_t size;

	ck_assert_uint_eq(md->count, 1);
	size = md->msgs[0].size;
	maildrop_close(&md);
	return size;
}

START_TEST(test_cache_created)
{
	char buf[4096], p[PATH_MAX];
	struct stat st;

	prepare_swapped();
	md_path(p, sizeof(p), "poplar-sizes");
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	read_rel("poplar-sizes", buf, sizeof(buf));
	ck_assert_msg(strncmp(buf, "poplar-sizes 2\ndirs -\n"
			      "4 1700000000 6 new/1.m\nchecksum ",
			      15 + 7 + 23 + 9) == 0, "%s", buf);
}
END_TEST

START_TEST(test_cache_used)
{
	ino_t ino;

	prepare_swapped();
	ino = inode_of("poplar-sizes");
	/* The cached size proves the message was not read again. */
	ck_assert_uint_eq(size_now(), 6);
	ck_assert_uint_eq(size_now(), 6);
	/* Nothing changed: the cache is not rewritten. */
	ck_assert_uint_eq(inode_of("poplar-sizes"), ino);
}
END_TEST

/* size_cache = no: the cache is neither read nor written. */
START_TEST(test_cache_disabled)
{
	enum maildrop_error err;
	const char *error;
	struct maildrop *md;

	prepare_swapped();
	md = maildrop_open(&maildrop_maildir, mdpath, MAILDROP_NO_CACHE, &err,
			   &error);
	ck_assert_ptr_nonnull(md);
	/* The real size, not the stale cached one. */
	ck_assert_uint_eq(md->msgs[0].size, 4);
	maildrop_close(&md);
}
END_TEST

START_TEST(test_cache_not_written)
{
	enum maildrop_error err;
	const char *error;
	struct maildrop *md;

	puts_md("new/1.m", "a\nb\n");
	md = maildrop_open(&maildrop_maildir, mdpath, MAILDROP_NO_CACHE, &err,
			   &error);
	ck_assert_ptr_nonnull(md);
	ck_assert_uint_eq(md->msgs[0].size, 6);
	maildrop_close(&md);
	ck_assert(!exists("poplar-sizes"));
}
END_TEST

START_TEST(test_cache_stale)
{
	prepare_swapped();
	set_mtime("new/1.m", T0 + 1);
	ck_assert_uint_eq(size_now(), 4);
	/* And the rebuilt cache holds the new key. */
	puts_md("new/1.m", "a\nb\n");
	set_mtime("new/1.m", T0 + 1);
	ck_assert_uint_eq(size_now(), 4);
}
END_TEST

START_TEST(test_cache_corrupt)
{
	char buf[4096];
	size_t len;
	ino_t ino;

	prepare_swapped();
	len = read_rel("poplar-sizes", buf, sizeof(buf));
	/* "4 1700000000 6 new/1.m": make the size 5, still plausible. */
	ck_assert_ptr_nonnull(strstr(buf, " 6 new/1.m"));
	strstr(buf, " 6 new/1.m")[1] = '5';
	put("poplar-sizes", buf, len);
	ino = inode_of("poplar-sizes");
	ck_assert_uint_eq(size_now(), 4);
	/* Rebuilt: a new file, which is then trusted. */
	ck_assert_uint_ne(inode_of("poplar-sizes"), ino);
	ino = inode_of("poplar-sizes");
	ck_assert_uint_eq(size_now(), 4);
	ck_assert_uint_eq(inode_of("poplar-sizes"), ino);
}
END_TEST

START_TEST(test_cache_truncated)
{
	char buf[4096];
	size_t len;

	prepare_swapped();
	len = read_rel("poplar-sizes", buf, sizeof(buf));
	/* Cut anywhere: before, inside and after the entry. */
	put("poplar-sizes", buf, len - 1);
	ck_assert_uint_eq(size_now(), 4);

	prepare_swapped();
	len = read_rel("poplar-sizes", buf, sizeof(buf));
	put("poplar-sizes", buf, 20);
	ck_assert_uint_eq(size_now(), 4);

	prepare_swapped();
	put("poplar-sizes", "", 0);
	ck_assert_uint_eq(size_now(), 4);
}
END_TEST

START_TEST(test_cache_wrong_version)
{
	prepare_swapped();
	/* Well-formed, right checksum, other version. */
	write_cache_body("poplar-sizes 1\ndirs -\n4 1700000000 6 new/1.m\n");
	ck_assert_uint_eq(size_now(), 4);
	/* The same forged file with version 2 is believed (control). */
	prepare_swapped();
	write_cache_body("poplar-sizes 2\ndirs -\n4 1700000000 6 new/1.m\n");
	ck_assert_uint_eq(size_now(), 6);
}
END_TEST

START_TEST(test_cache_implausible)
{
	prepare_swapped();
	/* A right checksum cannot make an impossible size believable. */
	write_cache_body("poplar-sizes 2\ndirs -\n4 1700000000 11 new/1.m\n");
	ck_assert_uint_eq(size_now(), 4);
	prepare_swapped();
	write_cache_body("poplar-sizes 2\ndirs -\n4 1700000000 3 new/1.m\n");
	ck_assert_uint_eq(size_now(), 4);
	prepare_swapped();
	write_cache_body("poplar-sizes 2\ndirs -\n4 1700000000 6 new/1.m extra\n"
			 "x y z\n");
	ck_assert_uint_eq(size_now(), 4);
	prepare_swapped();
	write_cache_body("poplar-sizes 2\ndirs -\n4 -1700000000 6 new/1.m\n");
	ck_assert_uint_eq(size_now(), 4);
	prepare_swapped();
	write_cache_body("poplar-sizes 2\ndirs -\n4  1700000000 6 new/1.m\n");
	ck_assert_uint_eq(size_now(), 4);
}
END_TEST

/* Directories unchanged for a while: the listing itself comes from the
 * cache (no stat of the message, so a swapped content with a new mtime
 * goes unseen), until a directory changes. */
/* The lines as the cache writes them: a negative mtime, numbers of
 * several widths, a name with spaces; a name with a newline is left out
 * and makes the cache incomplete ("dirs -"), and a cache read back
 * gives the sizes it was written with. */
START_TEST(test_cache_lines)
{
	char buf[4096], want[512], big[12345];

	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\n';
	put("new/2.big", big, sizeof(big));
	set_mtime("new/2.big", T0 + 123456);
	puts_md("new/1.old with spaces", "a\nb");
	set_mtime("new/1.old with spaces", -86400 * 365);
	puts_md("cur/3.nl\nname:2,S", "x\n");
	set_mtime("new", T0);
	set_mtime("cur", T0);
	ck_assert_uint_eq(md_open_count_total(), 12345 + 1 + 6 + 3);
	read_rel("poplar-sizes", buf, sizeof(buf));
	snprintf(want, sizeof(want), "poplar-sizes 2\ndirs -\n"
		 "3 -31536000 6 new/1.old with spaces\n"
		 "12345 %d 12346 new/2.big\nchecksum ", T0 + 123456);
	ck_assert_msg(strncmp(buf, want, strlen(want)) == 0, "%s", buf);
	ck_assert_uint_eq(strlen(buf), strlen(want) + 16 + 1);
	/* Read back: the cached sizes, not recounted ones (all LFs
	 * would be 24690). */
	memset(big, '\n', sizeof(big));
	put("new/2.big", big, sizeof(big));
	set_mtime("new/2.big", T0 + 123456);
	ck_assert_uint_eq(md_open_count_total(), 12345 + 1 + 6 + 3);
}
END_TEST

START_TEST(test_cache_stamp)
{
	char buf[4096];

	puts_md("new/1.m", "a\nb\n");
	set_mtime("new/1.m", T0);
	set_mtime("new", T0);
	set_mtime("cur", T0);
	ck_assert_uint_eq(size_now(), 6);
	read_rel("poplar-sizes", buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "\ndirs -\n") == NULL, "%s", buf);
	puts_md("new/1.m", "ab\r\n");
	set_mtime("new/1.m", T0 + 1);
	ck_assert_uint_eq(size_now(), 6);
	/* A delivery, rename or deletion changes a directory's mtime:
	 * everything is listed again. */
	set_mtime("new", T0 + 3);
	ck_assert_uint_eq(size_now(), 4);
}
END_TEST

START_TEST(test_cache_pruned)
{
	char buf[4096], p[PATH_MAX];
	struct maildrop *md;
	ino_t ino;

	puts_md("new/1.a", "a\n");
	puts_md("new/2.b", "b\n");
	md = md_open();
	maildrop_close(&md);
	ino = inode_of("poplar-sizes");
	md_path(p, sizeof(p), "new/1.a");
	ck_assert_int_eq(unlink(p), 0);
	md = md_open();
	ck_assert_uint_eq(md->count, 1);
	maildrop_close(&md);
	ck_assert_uint_ne(inode_of("poplar-sizes"), ino);
	read_rel("poplar-sizes", buf, sizeof(buf));
	ck_assert_ptr_null(strstr(buf, "1.a"));
	ck_assert_ptr_nonnull(strstr(buf, "2.b"));
}
END_TEST

START_TEST(test_cache_unwritable)
{
	char p[PATH_MAX], tmpname[64];
	struct maildrop *md;

	/* A directory in the cache's place: the rename fails, the open
	 * does not, and no temporary file is left behind. */
	md_path(p, sizeof(p), "poplar-sizes");
	ck_assert_int_eq(mkdir(p, 0700), 0);
	puts_md("poplar-sizes/keep", "x");
	puts_md("new/1.a", "a\n");
	md = md_open();
	ck_assert_uint_eq(md->count, 1);
	ck_assert_uint_eq(md->msgs[0].size, 3);
	maildrop_close(&md);
	snprintf(tmpname, sizeof(tmpname), "poplar-sizes.tmp.%ld",
		 (long)getpid());
	ck_assert(!exists(tmpname));
}
END_TEST

/* ---- message access and deletion ------------------------------------------------ */

static void
read_all(int fd, char *buf, size_t size)
{
	ssize_t r = read(fd, buf, size - 1);

	ck_assert_int_ge(r, 0);
	buf[r] = '\0';
}

START_TEST(test_msg_open)
{
	struct maildrop *md;
	const char *error;
	char buf[64], p[PATH_MAX], q[PATH_MAX];
	int fd;

	puts_md("new/1.a", "first\n");
	puts_md("new/2.b", "second\n");
	puts_md("new/3.c", "third\n");
	md = md_open();
	ck_assert_int_eq(md->driver->msg_open(md, 0, &fd, &error), 0);
	read_all(fd, buf, sizeof(buf));
	ck_assert_str_eq(buf, "first\n");
	md->driver->msg_close(md, 0, fd);

	/* Moved to cur/ by another program: still found, and its UIDL
	 * (made when asked for, from the name) is the same as before. */
	ck_assert_str_eq(UIDL(md, 1), "2.b");
	md_path(p, sizeof(p), "new/2.b");
	md_path(q, sizeof(q), "cur/2.b:2,S");
	ck_assert_int_eq(rename(p, q), 0);
	ck_assert_int_eq(md->driver->msg_open(md, 1, &fd, &error), 0);
	read_all(fd, buf, sizeof(buf));
	ck_assert_str_eq(buf, "second\n");
	md->driver->msg_close(md, 1, fd);
	ck_assert_str_eq(md->msgs[1].name, "cur/2.b:2,S");
	ck_assert_str_eq(UIDL(md, 1), "2.b");

	/* Changed size: refused, the announced size would be wrong. */
	puts_md("new/3.c", "third, longer\n");
	ck_assert_int_eq(md->driver->msg_open(md, 2, &fd, &error), -1);
	ck_assert_ptr_nonnull(error);
	ck_assert_int_eq(fd, -1);

	/* Gone. */
	md_path(p, sizeof(p), "new/1.a");
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(md->driver->msg_open(md, 0, &fd, &error), -1);
	ck_assert_ptr_nonnull(error);
	ck_assert_int_eq(md->driver->msg_open(md, 3, &fd, &error), -1);
	maildrop_close(&md);
}
END_TEST

START_TEST(test_commit)
{
	struct maildrop *md;
	enum maildrop_error err;
	const char *error;
	unsigned int deleted = 99;
	char p[PATH_MAX], q[PATH_MAX];

	puts_md("new/1.a", "a\n");
	puts_md("new/2.b", "b\n");
	puts_md("cur/3.c:2,S", "c\n");
	puts_md("new/4.d", "d\n");
	md = md_open();
	ck_assert_uint_eq(md->count, 4);
	md->msgs[0].deleted = true;
	md->msgs[2].deleted = true;
	md->msgs[3].deleted = true;
	/* Another client deleted 3, and moved 4 to cur/ with flags. */
	md_path(p, sizeof(p), "cur/3.c:2,S");
	ck_assert_int_eq(unlink(p), 0);
	md_path(p, sizeof(p), "new/4.d");
	md_path(q, sizeof(q), "cur/4.d:2,RS");
	ck_assert_int_eq(rename(p, q), 0);

	ck_assert_int_eq(md->driver->commit(md, &deleted, &err, &error), 0);
	ck_assert_uint_eq(deleted, 2);
	ck_assert_int_eq(err, MAILDROP_OK);
	maildrop_close(&md);
	ck_assert(!exists("new/1.a"));
	ck_assert(exists("new/2.b"));
	ck_assert(!exists("cur/4.d:2,RS"));

	md = md_open();
	ck_assert_uint_eq(md->count, 1);
	ck_assert_str_eq(UIDL(md, 0), "2.b");
	/* Nothing marked: nothing happens. */
	ck_assert_int_eq(md->driver->commit(md, &deleted, &err, &error), 0);
	ck_assert_uint_eq(deleted, 0);
	maildrop_close(&md);
	ck_assert(exists("new/2.b"));
}
END_TEST

START_TEST(test_commit_error)
{
	struct maildrop *md;
	enum maildrop_error err;
	const char *error;
	unsigned int deleted = 99;
	char p[PATH_MAX];

	puts_md("new/1.a", "a\n");
	puts_md("new/2.b", "b\n");
	puts_md("new/3.c", "c\n");
	md = md_open();
	ck_assert_uint_eq(md->count, 3);
	md->msgs[0].deleted = true;
	md->msgs[1].deleted = true;
	md->msgs[2].deleted = true;
	/* Message 2 became something unlink cannot remove. */
	md_path(p, sizeof(p), "new/2.b");
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(mkdir(p, 0700), 0);

	ck_assert_int_eq(md->driver->commit(md, &deleted, &err, &error), -1);
	ck_assert_int_eq(err, MAILDROP_ERR_TEMP);
	ck_assert_ptr_nonnull(error);
	/* The others went anyway. */
	ck_assert_uint_eq(deleted, 2);
	ck_assert(!exists("new/1.a"));
	ck_assert(!exists("new/3.c"));
	maildrop_close(&md);
}
END_TEST

START_TEST(test_lock_path)
{
	char out[PATH_MAX], want[PATH_MAX], small[8];

	/* The Maildir does not exist yet: lock_path makes it. */
	make_tmpdir();
	ck_assert_int_eq(maildrop_maildir.lock_path(mdpath, out, sizeof(out)),
			 0);
	snprintf(want, sizeof(want), "%s/poplar-session.lock", mdpath);
	ck_assert_str_eq(out, want);
	ck_assert(exists("new"));
	ck_assert(exists("cur"));
	ck_assert(exists("tmp"));
	/* Again: existing directories are fine. */
	ck_assert_int_eq(maildrop_maildir.lock_path(mdpath, out, sizeof(out)),
			 0);
	ck_assert_int_eq(maildrop_maildir.lock_path(mdpath, small,
						    sizeof(small)), -1);
	/* A parent that does not exist is not created. */
	snprintf(want, sizeof(want), "%s/nohome/Maildir", test_dir);
	ck_assert_int_eq(maildrop_maildir.lock_path(want, out, sizeof(out)),
			 -1);
}
END_TEST

START_TEST(test_close_null)
{
	struct maildrop *md = NULL;

	maildrop_close(&md);
	ck_assert_ptr_null(md);
}
END_TEST

static Suite *
maildir_suite(void)
{
	Suite *s = suite_create("maildir");
	TCase *tc;

	tc = tcase_create("location");
	tcase_add_test(tc, test_expand_ok);
	tcase_add_test(tc, test_expand_bad);
	tcase_add_test(tc, test_expand_traversal);
	tcase_add_test(tc, test_expand_too_long);
	tcase_add_test(tc, test_location_valid);
	tcase_add_test(tc, test_close_null);
	suite_add_tcase(s, tc);

	tc = tcase_create("nomaildir");
	tcase_add_checked_fixture(tc, NULL, teardown_tmpdir);
	tcase_add_test(tc, test_missing_maildir);
	tcase_add_test(tc, test_lock_path);
	suite_add_tcase(s, tc);

	tc = tcase_create("listing");
	tcase_add_checked_fixture(tc, setup_maildir, teardown_tmpdir);
	tcase_add_test(tc, test_empty_maildir);
	tcase_add_test(tc, test_order);
	tcase_add_test(tc, test_order_random);
	tcase_add_test(tc, test_same_base_name);
	tcase_add_test(tc, test_uidl);
	tcase_add_test(tc, test_sizes);
	tcase_add_test(tc, test_too_large);
	tcase_add_test(tc, test_unreadable);
	suite_add_tcase(s, tc);

	/* Writes 1,500 files and writes them back. */
	tc = tcase_create("many");
	tcase_add_checked_fixture(tc, setup_maildir, teardown_tmpdir);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_sizes_many);
	suite_add_tcase(s, tc);

	tc = tcase_create("cache");
	tcase_add_checked_fixture(tc, setup_maildir, teardown_tmpdir);
	tcase_add_test(tc, test_cache_created);
	tcase_add_test(tc, test_cache_lines);
	tcase_add_test(tc, test_cache_stamp);
	tcase_add_test(tc, test_cache_disabled);
	tcase_add_test(tc, test_cache_not_written);
	tcase_add_test(tc, test_cache_used);
	tcase_add_test(tc, test_cache_stale);
	tcase_add_test(tc, test_cache_corrupt);
	tcase_add_test(tc, test_cache_truncated);
	tcase_add_test(tc, test_cache_wrong_version);
	tcase_add_test(tc, test_cache_implausible);
	tcase_add_test(tc, test_cache_pruned);
	tcase_add_test(tc, test_cache_unwritable);
	suite_add_tcase(s, tc);

	tc = tcase_create("access");
	tcase_add_checked_fixture(tc, setup_maildir, teardown_tmpdir);
	tcase_add_test(tc, test_msg_open);
	tcase_add_test(tc, test_commit);
	tcase_add_test(tc, test_commit_error);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	log_open(LOG_TARGET_STDERR, "check_maildir");
	sr = srunner_create(maildir_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
