/* check_mbox.c: unit tests for the mbox driver: the parser's edges,
 * sizes against the bytes RETR sends, UIDL persistence, mail appended
 * during a session, outside rewrites, the index, and the crash safety of
 * the update (stopped at every write step); the scanner against a plain
 * line-by-line reference on random mboxes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "crlf.h"
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

static char mboxpath[1100], uidlpath[1200], indexpath[1200],
	journalpath[1200], faultpath[1200];

static void
setup(void)
{
	test_dir_make("mbox");
	snprintf(mboxpath, sizeof(mboxpath), "%s/alice", test_dir);
	snprintf(uidlpath, sizeof(uidlpath), "%s/.alice.uidl", test_dir);
	snprintf(indexpath, sizeof(indexpath), "%s/.alice.index", test_dir);
	snprintf(journalpath, sizeof(journalpath), "%s/.alice.journal",
		 test_dir);
	snprintf(faultpath, sizeof(faultpath), "%s/fault", test_dir);
	maildrop_mbox_configure(NULL, 300, 5);
	unsetenv("POPLAR_MBOX_FAULT_FILE");
	test_log_catch("check_mbox");
}

/* The same, with every scan of 16 bytes or more shared by two threads. */
static void
setup_split(void)
{
	setup();
	setenv("POPLAR_MBOX_SPLIT_MIN", "16", 1);
}

static void
teardown(void)
{
	unsetenv("POPLAR_MBOX_FAULT_FILE");
	unsetenv("POPLAR_MBOX_SPLIT_MIN");
	test_dir_remove();
}

static struct maildrop *
open_ok(void)
{
	enum maildrop_error err;
	const char *error = NULL;
	struct maildrop *md = maildrop_open(&maildrop_mbox, mboxpath, 0, &err,
					    &error);

	ck_assert_msg(md != NULL, "open failed: %s", error ? error : "?");
	return md;
}

/* The stored bytes of message i, malloc'd. */
static char *
msg_bytes(struct maildrop *md, size_t i)
{
	const char *error = NULL;
	char *buf = malloc(md->msgs[i].raw_size + 1);
	int fd;

	ck_assert_ptr_nonnull(buf);
	ck_assert_msg(md->driver->msg_open(md, i, &fd, &error) == 0, "%s",
		      error ? error : "?");
	ck_assert_int_eq(pread(fd, buf, md->msgs[i].raw_size,
			       md->msgs[i].offset),
			 (ssize_t)md->msgs[i].raw_size);
	md->driver->msg_close(md, i, fd);
	buf[md->msgs[i].raw_size] = '\0';
	return buf;
}

/* The message must be want (stored form) and its size the octets the
 * CRLF conversion gives. */
static void
check_msg(struct maildrop *md, size_t i, const char *want, size_t wlen)
{
	char *got = msg_bytes(md, i);
	struct crlf_count cc;

	ck_assert_uint_eq(md->msgs[i].raw_size, wlen);
	ck_assert_msg(memcmp(got, want, wlen) == 0, "message %zu: got '%s'",
		      i, got);
	crlf_count_init(&cc);
	crlf_count_feed(&cc, want, wlen);
	ck_assert_uint_eq(md->msgs[i].size, crlf_count_finish(&cc));
	free(got);
}

#define CHECK_MSG(md, i, s) check_msg(md, i, s, sizeof(s) - 1)
#define WRITE_MBOX(s) test_write_file(mboxpath, s, sizeof(s) - 1)

START_TEST(test_missing_and_empty)
{
	struct maildrop *md = open_ok();

	ck_assert_uint_eq(md->count, 0);
	ck_assert_uint_eq(md->total_size, 0);
	maildrop_close(&md);
	/* No state file for an empty maildrop. */
	ck_assert_int_eq(access(uidlpath, F_OK), -1);
	test_write_file(mboxpath, "", 0);
	md = open_ok();
	ck_assert_uint_eq(md->count, 0);
	maildrop_close(&md);
}
END_TEST

START_TEST(test_not_mbox)
{
	static const char *const texts[] = {
		"Subject: hi\n\nbody\n", "From", "\nFrom a b\n", "from x\n",
		" From x\n",
	};
	enum maildrop_error err;
	const char *error = NULL;
	size_t i, len;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char *back;

		test_write_file(mboxpath, texts[i], strlen(texts[i]));
		ck_assert_ptr_null(maildrop_open(&maildrop_mbox, mboxpath, 0,
						 &err, &error));
		ck_assert_int_eq(err, MAILDROP_ERR_PERM);
		ck_assert_ptr_nonnull(strstr(error, "not an mbox"));
		back = test_read_file(mboxpath, &len);
		ck_assert_uint_eq(len, strlen(texts[i]));
		ck_assert(memcmp(back, texts[i], len) == 0);
		free(back);
		ck_assert_int_eq(access(journalpath, F_OK), -1);
	}
	ck_assert_ptr_nonnull(strstr(test_log_text(), "not an mbox"));
	/* Nothing was locked or left behind. */
	{
		char lk[1200];

		snprintf(lk, sizeof(lk), "%s.lock", mboxpath);
		ck_assert_int_eq(access(lk, F_OK), -1);
	}
}
END_TEST

START_TEST(test_basic)
{
	static const char mbox[] =
		"From alice@example.org Mon Jan  1 00:00:00 2024\n"
		"Subject: one\n\nbody one\n>From quoted\n\n"
		"From bob@example.org Mon Jan  1 00:00:01 2024\n"
		"Subject: two\nX-UIDL: forged\n\n.dot line\nFrom in body\n\n"
		"From carol@example.org Mon Jan  1 00:00:02 2024\n"
		"Subject: three\n\n\n";
	struct maildrop *md;

	test_write_file(mboxpath, mbox, sizeof(mbox) - 1);
	md = open_ok();
	ck_assert_uint_eq(md->count, 3);
	CHECK_MSG(md, 0, "Subject: one\n\nbody one\n>From quoted\n");
	/* "From " not after an empty line is body. */
	CHECK_MSG(md, 1, "Subject: two\nX-UIDL: forged\n\n.dot line\n"
		  "From in body\n");
	/* The last message keeps its own empty line; the final one is the
	 * separator. */
	CHECK_MSG(md, 2, "Subject: three\n\n");
	ck_assert_uint_eq(md->total_size, md->msgs[0].size + md->msgs[1].size +
			  md->msgs[2].size);
	/* X-UIDL is not trusted. */
	ck_assert_str_ne(UIDL(md, 1), "forged");
	ck_assert_str_ne(UIDL(md, 0), UIDL(md, 1));
	ck_assert_str_ne(UIDL(md, 1), UIDL(md, 2));
	maildrop_close(&md);
}
END_TEST

START_TEST(test_edges)
{
	struct maildrop *md;

	/* No final newline. */
	WRITE_MBOX("From a\nx\n\nFrom b\nlast");
	md = open_ok();
	ck_assert_uint_eq(md->count, 2);
	CHECK_MSG(md, 0, "x\n");
	CHECK_MSG(md, 1, "last");
	ck_assert_uint_eq(md->msgs[1].size, 6);
	maildrop_close(&md);

	/* A "From " line and nothing else; an empty message between. */
	WRITE_MBOX("From a\n\nFrom b\nFrom c");
	md = open_ok();
	ck_assert_uint_eq(md->count, 2);
	CHECK_MSG(md, 0, "");
	CHECK_MSG(md, 1, "From c");
	maildrop_close(&md);
	WRITE_MBOX("From only");
	md = open_ok();
	ck_assert_uint_eq(md->count, 1);
	CHECK_MSG(md, 0, "");
	maildrop_close(&md);

	/* CRLF stored: sizes equal raw sizes, separators are "\r\n". */
	WRITE_MBOX("From a\r\nS: 1\r\n\r\nb\r\n\r\nFrom b\r\nS: 2\r\n"
		   "\r\n");
	md = open_ok();
	ck_assert_uint_eq(md->count, 2);
	CHECK_MSG(md, 0, "S: 1\r\n\r\nb\r\n");
	CHECK_MSG(md, 1, "S: 2\r\n");
	ck_assert_uint_eq(md->msgs[0].size, md->msgs[0].raw_size);
	maildrop_close(&md);

	/* NUL bytes and a lone CR. */
	WRITE_MBOX("From a\nx\0y\rz\n\n");
	md = open_ok();
	ck_assert_uint_eq(md->count, 1);
	check_msg(md, 0, "x\0y\rz\n", 6);
	maildrop_close(&md);
}
END_TEST

/* Lines longer than the read buffer, and "From " across its border. */
START_TEST(test_long_lines)
{
	size_t big = 3 * 1024 * 1024 + 17, len, i, pos;
	char *buf = malloc(2 * big + 200);
	struct maildrop *md;

	ck_assert_ptr_nonnull(buf);
	pos = (size_t)sprintf(buf, "From a\n");
	for (i = 0; i < big; i++)
		buf[pos++] = (char)('a' + i % 26);
	buf[pos++] = '\n';
	/* A filler line so that the next "From " starts 2 bytes before a
	 * 1 MiB border of the read buffer. */
	{
		size_t mib = 1024 * 1024;
		size_t t = (pos / mib + 2) * mib - 2, fill = t - 1 - pos - 1;

		memset(buf + pos, 'q', fill);
		pos += fill;
		buf[pos++] = '\n';
		buf[pos++] = '\n';
		ck_assert_uint_eq(pos, t);
	}
	pos += (size_t)sprintf(buf + pos, "From b\nshort\n");
	len = pos;
	test_write_file(mboxpath, buf, len);
	md = open_ok();
	ck_assert_uint_eq(md->count, 2);
	CHECK_MSG(md, 1, "short\n");
	ck_assert_uint_eq(md->msgs[0].raw_size,
			  (size_t)(md->msgs[1].offset) - 7 - 7 - 1);
	maildrop_close(&md);
	free(buf);
}
END_TEST

static size_t
uidls(struct maildrop *md, char out[][POP3_UIDL_MAX + 1], size_t max)
{
	size_t i;

	for (i = 0; i < md->count && i < max; i++)
		strcpy(out[i], UIDL(md, i));
	return i;
}

static void
make_mbox(size_t n, size_t body_lines)
{
	FILE *f = fopen(mboxpath, "w");
	size_t i, j;

	ck_assert_ptr_nonnull(f);
	for (i = 0; i < n; i++) {
		fprintf(f, "From sender%zu@example.org Mon Jan  1 00:00:00 "
			"2024\nMessage-Id: <%zu@test>\nSubject: %zu\n\n", i, i,
			i);
		for (j = 0; j < body_lines + i % 3; j++)
			fprintf(f, "line %zu of %zu%s\n", j, i,
				j == 1 ? "\r" : "");
		if (i % 7 == 0)
			fprintf(f, ">From quoted\n.dot\n");
		fprintf(f, "\n");
	}
	fclose(f);
}

static unsigned int
commit_ok(struct maildrop *md)
{
	enum maildrop_error err;
	const char *error = NULL;
	unsigned int deleted = 0;

	ck_assert_msg(md->driver->commit(md, &deleted, &err, &error) == 0,
		      "commit: %s", error ? error : "?");
	return deleted;
}

START_TEST(test_uidl_persistence)
{
	char a[8][POP3_UIDL_MAX + 1], b[8][POP3_UIDL_MAX + 1];
	struct maildrop *md;
	size_t i, j;

	make_mbox(5, 2);
	md = open_ok();
	ck_assert_uint_eq(uidls(md, a, 8), 5);
	maildrop_close(&md);
	ck_assert_int_eq(access(uidlpath, F_OK), 0);
	ck_assert_ptr_nonnull(strstr(test_log_text(), "UIDL state"));
	/* Same again. */
	md = open_ok();
	uidls(md, b, 8);
	for (i = 0; i < 5; i++)
		ck_assert_str_eq(a[i], b[i]);
	/* Delete 2 and 4 (1-based); the others keep their UIDLs. */
	md->msgs[1].deleted = true;
	md->msgs[3].deleted = true;
	ck_assert_uint_eq(commit_ok(md), 2);
	maildrop_close(&md);
	md = open_ok();
	ck_assert_uint_eq(md->count, 3);
	ck_assert_str_eq(UIDL(md, 0), a[0]);
	ck_assert_str_eq(UIDL(md, 1), a[2]);
	ck_assert_str_eq(UIDL(md, 2), a[4]);
	maildrop_close(&md);
	/* A message delivered again with the very same bytes as a deleted
	 * one gets a new UIDL: numbers are never reused. */
	{
		static const char again[] =
			"From sender1@example.org Mon Jan  1 00:00:00 2024\n"
			"Message-Id: <1@test>\nSubject: 1\n\nline 0 of 1\n"
			"line 1 of 1\r\nline 2 of 1\n\n";

		test_append_file(mboxpath, again, sizeof(again) - 1);
	}
	md = open_ok();
	ck_assert_uint_eq(md->count, 4);
	for (j = 0; j < 5; j++)
		ck_assert_str_ne(UIDL(md, 3), a[j]);
	uidls(md, b, 8);
	maildrop_close(&md);
	/* The state file lost: rebuilt, logged, and no old UIDL comes
	 * back. */
	ck_assert_int_eq(unlink(uidlpath), 0);
	md = open_ok();
	ck_assert_ptr_nonnull(strstr(test_log_text(), "is missing: rebuilt"));
	for (i = 0; i < md->count; i++)
		for (j = 0; j < 4; j++)
			ck_assert_str_ne(UIDL(md, i), b[j]);
	uidls(md, a, 8);
	maildrop_close(&md);
	/* Damaged: kept aside, rebuilt, logged. */
	{
		size_t len;
		char *s = test_read_file(uidlpath, &len), bad[1300];

		s[len / 2] ^= 1;
		test_write_file(uidlpath, s, len);
		free(s);
		md = open_ok();
		ck_assert_ptr_nonnull(strstr(test_log_text(), "is damaged"));
		for (i = 0; i < md->count; i++)
			ck_assert_str_ne(UIDL(md, i), a[i]);
		maildrop_close(&md);
		snprintf(bad, sizeof(bad), "%s.bad", uidlpath);
		ck_assert_int_eq(access(bad, F_OK), 0);
	}
}
END_TEST

/* The checksum that ends the UIDL state file, as mbox.c computes it
 * (hash64() with seed 0), written out the plain way. */
static uint64_t
rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t
word_le(const char *p, size_t n)
{
	uint64_t w = 0;
	size_t i;

	for (i = 0; i < n; i++)
		w |= (uint64_t)(unsigned char)p[i] << (8 * i);
	return w;
}

static uint64_t
state_checksum(const char *p, size_t len)
{
	const uint64_t p1 = 0x9e3779b185ebca87ULL, p2 = 0xc2b2ae3d27d4eb4fULL;
	uint64_t a[4] = { p1, p2, (uint64_t)0 - p1, ~(uint64_t)0 }, h;
	size_t i, k;

	for (i = 0; i + 32 <= len; i += 32)
		for (k = 0; k < 4; k++)
			a[k] = rotl(a[k] + word_le(p + i + 8 * k, 8) * p2, 31) *
				p1;
	h = rotl(a[0], 1) + rotl(a[1], 7) + rotl(a[2], 12) + rotl(a[3], 18) +
		(uint64_t)len;
	for (; i < len; i += 8)
		h = rotl(h ^ word_le(p + i, len - i < 8 ? len - i : 8) * p2,
			 27) * p1;
	h ^= h >> 33;
	h *= p2;
	h ^= h >> 29;
	h *= p1;
	h ^= h >> 32;
	return h;
}

/* A message changed in place in the middle of the mbox gets a new number,
 * higher than those of the messages after it: the state keeps numbers in
 * mbox order, so they no longer increase along the file, and that is no
 * damage.  Every later login, from the state or from the index, gives
 * the same UIDLs. */
START_TEST(test_uidl_changed_middle)
{
	char a[8][POP3_UIDL_MAX + 1], b[8][POP3_UIDL_MAX + 1];
	struct maildrop *md;
	size_t i, len, round;
	char *s, *subj;

	make_mbox(5, 2);
	md = open_ok();
	ck_assert_uint_eq(uidls(md, a, 8), 5);
	maildrop_close(&md);
	/* Same size, other bytes: message 3 (1-based) is another one. */
	s = test_read_file(mboxpath, &len);
	subj = strstr(s, "Subject: 2\n");
	ck_assert_ptr_nonnull(subj);
	subj[9] = 'X';
	test_write_file(mboxpath, s, len);
	free(s);
	/* Written within the same clock tick, the mbox may keep its stamp:
	 * that case is test_index_same_stamp's. */
	unlink(indexpath);
	md = open_ok();
	ck_assert_uint_eq(uidls(md, b, 8), 5);
	maildrop_close(&md);
	for (i = 0; i < 5; i++) {
		if (i == 2)
			ck_assert_str_ne(b[i], a[i]);
		else
			ck_assert_str_eq(b[i], a[i]);
	}
	/* Again: with the index, from the state alone, without the index
	 * file at all. */
	for (round = 0; round < 3; round++) {
		enum maildrop_error err;
		const char *error = NULL;

		if (round == 2)
			unlink(indexpath);
		md = maildrop_open(&maildrop_mbox, mboxpath, round == 1 ?
				   MAILDROP_NO_CACHE : 0, &err, &error);
		ck_assert_msg(md != NULL, "open failed: %s",
			      error ? error : "?");
		ck_assert_uint_eq(md->count, 5);
		for (i = 0; i < 5; i++)
			ck_assert_msg(strcmp(UIDL(md, i), b[i]) == 0,
				      "round %zu, message %zu: %s, want %s",
				      round, i, UIDL(md, i), b[i]);
		maildrop_close(&md);
	}
	ck_assert_ptr_null(strstr(test_log_text(), "damaged"));
	/* But a number given twice is damage, even with a good checksum. */
	{
		char *st = test_read_file(uidlpath, &len), *l1, *l3, *sum;

		l1 = strchr(strchr(strchr(st, '\n') + 1, '\n') + 1, '\n') + 1;
		l3 = strchr(strchr(l1, '\n') + 1, '\n') + 1;
		ck_assert(l1[0] == '1' && l1[1] == ' ');
		ck_assert(l3[0] == '6' && l3[1] == ' ');
		sum = strstr(st, "checksum ");
		ck_assert_ptr_nonnull(sum);
		/* The checksum is computed right: only the duplicate is
		 * wrong below. */
		ck_assert_uint_eq(strtoull(sum + 9, NULL, 16),
				  state_checksum(st, (size_t)(sum - st)));
		l3[0] = '1';
		snprintf(sum + 9, 18, "%016llx\n", (unsigned long long)
			 state_checksum(st, (size_t)(sum - st)));
		test_write_file(uidlpath, st, len);
		free(st);
		unlink(indexpath);
		md = open_ok();
		ck_assert_ptr_nonnull(strstr(test_log_text(), "damaged"));
		for (i = 0; i < 5; i++)
			ck_assert_str_ne(UIDL(md, i), b[i]);
		maildrop_close(&md);
	}
}
END_TEST

/* A state file of the first version (digests over 4 KiB of content)
 * cannot be matched: rebuilt with a new epoch, logged, kept aside. */
START_TEST(test_uidl_old_version)
{
	char a[8][POP3_UIDL_MAX + 1], b[8][POP3_UIDL_MAX + 1], bad[1300];
	struct maildrop *md;
	size_t i, len;
	char *st;

	make_mbox(3, 1);
	md = open_ok();
	ck_assert_uint_eq(uidls(md, a, 8), 3);
	maildrop_close(&md);
	st = test_read_file(uidlpath, &len);
	ck_assert(strncmp(st, "poplar-uidl 2\n", 14) == 0);
	st[12] = '1';
	test_write_file(uidlpath, st, len);
	free(st);
	unlink(indexpath);
	md = open_ok();
	ck_assert_ptr_nonnull(strstr(test_log_text(),
				     "in another version of the format"));
	ck_assert_uint_eq(uidls(md, b, 8), 3);
	for (i = 0; i < 3; i++)
		ck_assert_str_ne(b[i], a[i]);
	maildrop_close(&md);
	snprintf(bad, sizeof(bad), "%s.bad", uidlpath);
	ck_assert_int_eq(access(bad, F_OK), 0);
	md = open_ok();
	for (i = 0; i < 3; i++)
		ck_assert_str_eq(UIDL(md, i), b[i]);
	maildrop_close(&md);
}
END_TEST

/* An mbox emptied by another program: the state written for no
 * messages is whole (it once overran its buffer) and reads back. */
START_TEST(test_state_of_emptied_mbox)
{
	static const char msg[] = "From a@example.org Tue Jan  2 00:00:00 "
		"2024\nSubject: again\n\nbody\n\n";
	char first[POP3_UIDL_MAX + 1];
	struct maildrop *md;
	size_t len;
	char *st;

	make_mbox(3, 1);
	md = open_ok();
	maildrop_close(&md);
	test_write_file(mboxpath, "", 0);
	unlink(indexpath);
	md = open_ok();
	ck_assert_uint_eq(md->count, 0);
	maildrop_close(&md);
	st = test_read_file(uidlpath, &len);
	ck_assert(strncmp(st, "poplar-uidl 2\nepoch ", 20) == 0);
	ck_assert_ptr_null(memchr(st, '\0', len));
	ck_assert(len > 27 && st[len - 1] == '\n');
	ck_assert(strncmp(st + len - 27, "\nchecksum ", 10) == 0);
	free(st);
	test_append_file(mboxpath, msg, sizeof(msg) - 1);
	md = open_ok();
	ck_assert_uint_eq(md->count, 1);
	strcpy(first, UIDL(md, 0));
	maildrop_close(&md);
	unlink(indexpath);
	md = open_ok();
	ck_assert_str_eq(UIDL(md, 0), first);
	maildrop_close(&md);
	ck_assert_ptr_null(strstr(test_log_text(), "damaged"));
}
END_TEST

/* Mail appended during a session is not seen and survives the update. */
START_TEST(test_append_during_session)
{
	static const char newmsg[] = "From new@example.org Tue Jan  2 00:00:00 "
		"2024\nSubject: new\n\nnew body\n\n";
	char first[POP3_UIDL_MAX + 1];
	struct maildrop *md;

	make_mbox(4, 3);
	md = open_ok();
	ck_assert_uint_eq(md->count, 4);
	strcpy(first, UIDL(md, 0));
	test_append_file(mboxpath, newmsg, sizeof(newmsg) - 1);
	ck_assert_uint_eq(md->count, 4);
	md->msgs[0].deleted = true;
	md->msgs[2].deleted = true;
	ck_assert_uint_eq(commit_ok(md), 2);
	maildrop_close(&md);
	md = open_ok();
	ck_assert_uint_eq(md->count, 3);
	CHECK_MSG(md, 2, "Subject: new\n\nnew body\n");
	ck_assert_str_ne(UIDL(md, 2), first);
	maildrop_close(&md);
	ck_assert_int_eq(access(journalpath, F_OK), -1);
}
END_TEST

/* Another program rewrote the mbox: nothing is applied. */
START_TEST(test_outside_rewrite)
{
	enum maildrop_error err;
	const char *error = NULL;
	unsigned int deleted = 99;
	struct maildrop *md;
	size_t len, len2;
	char *before, *after;

	make_mbox(4, 3);
	md = open_ok();
	/* Drop the first message the way a mail reader would, in place. */
	before = test_read_file(mboxpath, &len);
	{
		char *second = strstr(before + 1, "\n\nFrom ") + 2;

		test_write_file(mboxpath, second, len - (size_t)(second - before));
	}
	free(before);
	before = test_read_file(mboxpath, &len);
	md->msgs[1].deleted = true;
	ck_assert_int_eq(md->driver->commit(md, &deleted, &err, &error), -1);
	ck_assert_int_eq(err, MAILDROP_ERR_TEMP);
	ck_assert_ptr_nonnull(strstr(error, "changed by another program"));
	ck_assert_uint_eq(deleted, 0);
	after = test_read_file(mboxpath, &len2);
	ck_assert_uint_eq(len, len2);
	ck_assert(memcmp(before, after, len) == 0);
	/* RETR of a message that moved refuses to send wrong bytes. */
	{
		int fd;

		ck_assert_int_eq(md->driver->msg_open(md, 3, &fd, &error), -1);
	}
	free(before);
	free(after);
	maildrop_close(&md);

	/* Junk appended that is not a message: also refused. */
	make_mbox(2, 1);
	md = open_ok();
	test_append_file(mboxpath, "garbage\n", 8);
	md->msgs[0].deleted = true;
	ck_assert_int_eq(md->driver->commit(md, &deleted, &err, &error), -1);
	ck_assert_int_eq(err, MAILDROP_ERR_TEMP);
	maildrop_close(&md);
}
END_TEST

/* The index: used when current, and a damaged one is harmless. */
START_TEST(test_index)
{
	char a[16][POP3_UIDL_MAX + 1];
	struct maildrop *md;
	uint64_t sizes[16];
	size_t i, n, len;
	char *s;

	make_mbox(10, 4);
	md = open_ok();
	n = uidls(md, a, 16);
	for (i = 0; i < n; i++)
		sizes[i] = md->msgs[i].size;
	maildrop_close(&md);
	ck_assert_int_eq(access(indexpath, F_OK), 0);
	/* Appended: the indexed part is reused, the new part read. */
	test_append_file(mboxpath, "From z\nnew\n", 11);
	md = open_ok();
	ck_assert_uint_eq(md->count, n + 1);
	for (i = 0; i < n; i++) {
		ck_assert_uint_eq(md->msgs[i].size, sizes[i]);
		ck_assert_str_eq(UIDL(md, i), a[i]);
	}
	CHECK_MSG(md, n, "new\n");
	maildrop_close(&md);
	/* Damage the index: same result. */
	s = test_read_file(indexpath, &len);
	s[len - 3] ^= 0x55;
	test_write_file(indexpath, s, len);
	free(s);
	md = open_ok();
	ck_assert_uint_eq(md->count, n + 1);
	ck_assert_str_eq(UIDL(md, 0), a[0]);
	ck_assert_uint_eq(md->msgs[n - 1].size, sizes[n - 1]);
	maildrop_close(&md);
	/* Disabled: not read nor written. */
	unlink(indexpath);
	{
		enum maildrop_error err;
		const char *error;

		md = maildrop_open(&maildrop_mbox, mboxpath, MAILDROP_NO_CACHE,
				   &err, &error);
		ck_assert_ptr_nonnull(md);
		maildrop_close(&md);
		ck_assert_int_eq(access(indexpath, F_OK), -1);
	}
}
END_TEST

/* ---- the scanner against a plain reference ------------------------------ */

/* A message as the format defines it, found line by line. */
struct refmsg {
	size_t from_off, content_off, end;
};

/* Parse buf the simple way: a "From " line at the start or after an
 * empty line ("\n" or "\r\n") starts a message; an empty line before the
 * next one, and one at the very end, belongs to no message. */
static size_t
ref_parse(const char *buf, size_t len, struct refmsg *m, size_t max)
{
	size_t pos = 0, n = 0, blank_start = 0;
	bool prev_blank = false;

	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - (buf + pos)) + 1 :
			len - pos;

		if (ll >= 5 && memcmp(buf + pos, "From ", 5) == 0 &&
		    (pos == 0 || prev_blank)) {
			if (n > 0)
				m[n - 1].end = blank_start;
			ck_assert_uint_lt(n, max);
			m[n].from_off = pos;
			m[n].content_off = pos + ll;
			m[n].end = len;
			n++;
			prev_blank = false;
		} else {
			prev_blank = nl != NULL && (ll == 1 || (ll == 2 &&
						    buf[pos] == '\r'));
			if (prev_blank)
				blank_start = pos;
		}
		pos += ll;
	}
	if (n > 0 && prev_blank)
		m[n - 1].end = blank_start;
	return n;
}

/* The message digests in the UIDL state, in mbox order (a fresh state). */
static size_t
state_ids(unsigned char ids[][16], size_t max)
{
	size_t len, n = 0, skip = 3;
	char *s = test_read_file(uidlpath, &len), *p = s, *nl;

	while ((nl = strchr(p, '\n')) != NULL) {
		char *sp = strchr(p, ' ');

		if (skip > 0) {
			skip--;
		} else if (strncmp(p, "checksum ", 9) != 0) {
			size_t k;

			ck_assert_ptr_nonnull(sp);
			ck_assert_uint_lt(n, max);
			for (k = 0; k < 16; k++) {
				unsigned int v;

				ck_assert_int_eq(sscanf(sp + 1 + 2 * k, "%2x",
							&v), 1);
				ids[n][k] = (unsigned char)v;
			}
			n++;
		}
		p = nl + 1;
	}
	free(s);
	return n;
}

/* SHA-256 of the "From " line (1 KiB at most), the raw size (8 bytes,
 * little-endian) and the first 1 KiB of the content: the UIDL digest,
 * which must never change (the state files keep it). */
static void
ref_id(const char *buf, const struct refmsg *m, unsigned char id[16])
{
	unsigned char md[EVP_MAX_MD_SIZE], sz[8];
	unsigned int mdlen = 0;
	size_t flen = m->content_off - m->from_off, raw, clen;
	size_t cstart = m->content_off;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int i;

	if (cstart > m->end) {
		/* "From " line without a line end */
		cstart = m->end;
	}
	raw = m->end - cstart;
	clen = raw < 1024 ? raw : 1024;
	if (flen > 1024)
		flen = 1024;
	for (i = 0; i < 8; i++)
		sz[i] = (unsigned char)((uint64_t)raw >> (8 * i));
	ck_assert_ptr_nonnull(ctx);
	ck_assert(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
		  EVP_DigestUpdate(ctx, buf + m->from_off, flen) == 1 &&
		  EVP_DigestUpdate(ctx, sz, 8) == 1 &&
		  EVP_DigestUpdate(ctx, buf + cstart, clen) == 1 &&
		  EVP_DigestFinal_ex(ctx, md, &mdlen) == 1);
	EVP_MD_CTX_free(ctx);
	memcpy(id, md, 16);
}

/* Open the mbox (flags), and compare every message with the reference:
 * offset, stored size, RFC 1939 size, digest. */
static void
check_against_ref(const char *buf, size_t len, unsigned int flags)
{
	static struct refmsg m[4096];
	static unsigned char ids[4096][16];
	enum maildrop_error err;
	const char *error = NULL;
	struct maildrop *md;
	size_t n = ref_parse(buf, len, m, 4096), i, nid;

	unlink(uidlpath);
	md = maildrop_open(&maildrop_mbox, mboxpath, flags, &err, &error);
	ck_assert_msg(md != NULL, "open failed: %s", error ? error : "?");
	ck_assert_uint_eq(md->count, n);
	for (i = 0; i < n; i++) {
		size_t c = m[i].content_off > m[i].end ? m[i].end :
			m[i].content_off;
		struct crlf_count cc;

		ck_assert_msg((size_t)md->msgs[i].offset == c,
			      "message %zu: offset %lld, want %zu", i,
			      (long long)md->msgs[i].offset, c);
		ck_assert_uint_eq(md->msgs[i].raw_size, m[i].end - c);
		crlf_count_init(&cc);
		crlf_count_feed(&cc, buf + c, m[i].end - c);
		ck_assert_msg(md->msgs[i].size == crlf_count_finish(&cc),
			      "message %zu: size %llu, want %llu", i,
			      (unsigned long long)md->msgs[i].size,
			      (unsigned long long)crlf_count_finish(&cc));
	}
	maildrop_close(&md);
	if (n == 0)
		return;
	nid = state_ids(ids, 4096);
	ck_assert_uint_eq(nid, n);
	for (i = 0; i < n; i++) {
		unsigned char id[16];

		ref_id(buf, &m[i], id);
		ck_assert_msg(memcmp(id, ids[i], 16) == 0,
			      "message %zu: digest differs", i);
	}
}

static uint64_t rnd_state;

static unsigned int
rnd(unsigned int n)
{
	rnd_state = rnd_state * 6364136223846793005ULL +
		1442695040888963407ULL;
	return (unsigned int)((rnd_state >> 33) % n);
}

/* Random mbox text: lines with LF or CRLF, lone CRs, NULs, empty lines
 * of both kinds, "From " lines that do not start a message, ">From "
 * lines, long lines, empty messages. */
static size_t
random_mbox(char *buf, size_t max)
{
	static const char *pieces[] = {
		"\n", "\r\n", "\r", "From ", ">From x\n", "From y\n",
		"Subject: s\n", ".\n", "..x\r\n", "a", "bc", " ", "\0",
		"\n\n", "\r\n\r\n", "\n\r\n", "\nFrom z\n",
	};
	size_t len = 0;

	while (len + 300 < max) {
		unsigned int k = rnd(20);

		if (len == 0 || k == 0) {
			/* A new message, after an empty line. */
			const char *sep = len == 0 ? "" : rnd(2) ? "\n" :
				"\r\n";
			int n;

			if (len > 0 && buf[len - 1] != '\n')
				buf[len++] = '\n';
			n = snprintf(buf + len, max - len,
				     "%sFrom s%u@example.org Mon Jan  1 "
				     "00:00:%02u 2024%s", sep, rnd(1000),
				     rnd(60), rnd(8) == 0 ? "\r\n" : "\n");
			len += (size_t)n;
		} else if (k == 1) {
			unsigned int n = rnd(200);

			memset(buf + len, 'x', n);
			len += n;
		} else {
			const char *p = pieces[rnd(sizeof(pieces) /
						   sizeof(pieces[0]))];
			size_t pl = p[0] == '\0' ? 1 : strlen(p);

			memcpy(buf + len, p, pl);
			len += pl;
		}
	}
	return len;
}

START_TEST(test_scan_random)
{
	size_t max = 64 * 1024, len, i;
	char *buf = malloc(max);

	ck_assert_ptr_nonnull(buf);
	for (i = 0; i < 300; i++) {
		rnd_state = i + 1;
		len = random_mbox(buf, (i % 10 + 1) * max / 10);
		test_write_file(mboxpath, buf, len);
		check_against_ref(buf, len, MAILDROP_NO_CACHE);
		/* With the index: appended mail is scanned from the last
		 * message on. */
		unlink(indexpath);
		check_against_ref(buf, len, 0);
		if (i % 3 == 0) {
			size_t more = random_mbox(buf + len, max - len - 64);

			/* random_mbox starts with "From " and no empty line
			 * before it: make it a new message. */
			memmove(buf + len + 1, buf + len, more);
			buf[len] = '\n';
			test_append_file(mboxpath, buf + len, more + 1);
			check_against_ref(buf, len + more + 1, 0);
		}
	}
	free(buf);
}
END_TEST

/* Message borders where the file is read in pieces: "\n\nFrom " and
 * "\n\r\nFrom " at every position across 1 MiB and 2 MiB, and files that
 * end there, with and without a final line end. */
START_TEST(test_scan_chunk_borders)
{
	size_t max = 2 * 1024 * 1024 + 4096, len, k, v;
	char *buf = malloc(max);
	static const char *seps[] = { "\n\nFrom b\nx\n", "\n\r\nFrom b\nx\n",
				      "\nFrom b\nx\n", "\n\n", "\r\n\r\n",
				      "\n", "x" };

	ck_assert_ptr_nonnull(buf);
	for (v = 0; v < sizeof(seps) / sizeof(seps[0]); v++) {
		for (k = 0; k < 12; k++) {
			size_t border = (k < 6 ? 1 : 2) * 1024 * 1024,
				at = border - 6 + k % 6 * 2 + (v % 2), i;

			memcpy(buf, "From a\n", 7);
			for (i = 7; i < at; i++)
				buf[i] = (i % 61 == 60) ? '\n' : (i % 97 == 3)
					? '\r' : 'y';
			buf[at - 1] = 'z';
			len = at;
			memcpy(buf + len, seps[v], strlen(seps[v]));
			len += strlen(seps[v]);
			test_write_file(mboxpath, buf, len);
			check_against_ref(buf, len, MAILDROP_NO_CACHE);
		}
	}
	free(buf);
}
END_TEST

/* The split point of a shared scan (the first message start after the
 * middle) at every position around a message border: the middle just
 * before, on and after the empty line, inside and just after the "From "
 * line, with "\n" and "\r\n" empty lines, and with "From " lines that
 * do not start a message near it. */
START_TEST(test_scan_split_points)
{
	static const char *seps[] = {
		"\n\nFrom b@x Mon\nbody\n", "\n\r\nFrom b@x Mon\r\nbody\n",
		"\nFrom c\n\nFrom b@x Mon\nbody\n",
		"\n\nFrom b@x Mon\n\nFrom c\n", "\r\n\r\nFrom b@x\n",
		"\nFrom b@x Mon\n\r\nFrom \n", "\n\n\n\nFrom b\n\n",
	};
	size_t max = 4096, v, head, len, at;
	char *buf = malloc(max);
	long d;

	ck_assert_ptr_nonnull(buf);
	for (v = 0; v < sizeof(seps) / sizeof(seps[0]); v++) {
		for (head = 8; head < 40; head += 7) {
			for (d = -12; d <= 24; d++) {
				size_t i;

				/* "From a\n", filler up to head, the
				 * separator, filler so that the middle is
				 * head + d. */
				memcpy(buf, "From a\n", 7);
				for (i = 7; i < head; i++)
					buf[i] = i % 5 == 4 ? '\n' : 'y';
				len = head;
				memcpy(buf + len, seps[v], strlen(seps[v]));
				len += strlen(seps[v]);
				if ((long)head + d < 8)
					continue;
				at = 2 * (size_t)((long)head + d);
				for (; len < at; len++)
					buf[len] = len % 7 == 6 ? '\n' : 'z';
				test_write_file(mboxpath, buf, len);
				check_against_ref(buf, len, MAILDROP_NO_CACHE);
			}
		}
	}
	free(buf);
}
END_TEST

/* Files of a few bytes, split or not. */
START_TEST(test_scan_split_tiny)
{
	static const char *files[] = {
		"From ", "From a", "From a\n", "From a\n\n", "From a\n\nFrom ",
		"From a\n\nFrom b", "From a\n\nFrom b\n", "From \n\nFrom \n\n",
		"From a\r\n\r\nFrom b\r\n\r\n", "From a\nx\n\nFrom b\ny\n\n",
		"From a\n\n\nFrom b\n\n\n", "From a\nFrom b\n\nFrom c\n",
		"From a\n\nFrom b\n\nFrom c\n\nFrom d\n\nFrom e\n\n",
	};
	size_t i, cut;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		size_t len = strlen(files[i]);

		/* Also every prefix: a file that ends anywhere. */
		for (cut = 5; cut <= len; cut++) {
			test_write_file(mboxpath, files[i], cut);
			check_against_ref(files[i], cut, MAILDROP_NO_CACHE);
		}
	}
}
END_TEST

/* The message limit holds for the whole mbox, not for each part of a
 * shared scan. */
START_TEST(test_scan_too_many)
{
	size_t n = MAILDROP_MAX_MESSAGES + 1, i, len = 7 * n;
	char *buf = malloc(len);
	enum maildrop_error err;
	const char *error = NULL;
	struct maildrop *md;

	ck_assert_ptr_nonnull(buf);
	for (i = 0; i < n; i++)
		memcpy(buf + 7 * i, "From \n\n", 7);
	test_write_file(mboxpath, buf, len);
	free(buf);
	md = maildrop_open(&maildrop_mbox, mboxpath, MAILDROP_NO_CACHE,
			   &err, &error);
	ck_assert_ptr_null(md);
	ck_assert_int_eq(err, MAILDROP_ERR_PERM);
	ck_assert_str_eq(error, "too many messages in the mbox");
}
END_TEST

/* ---- the index ---------------------------------------------------------- */

/* Damage at any byte of the index: the mbox is read again, with the same
 * result, and the UIDLs stay. */
START_TEST(test_index_damage)
{
	char a[16][POP3_UIDL_MAX + 1];
	uint64_t sizes[16];
	struct maildrop *md;
	size_t i, n, len, off;
	char *good;

	make_mbox(12, 3);
	md = open_ok();
	n = uidls(md, a, 16);
	for (i = 0; i < n; i++)
		sizes[i] = md->msgs[i].size;
	maildrop_close(&md);
	good = test_read_file(indexpath, &len);
	ck_assert_uint_gt(len, 64);
	for (off = 0; off < len; off += off < 200 ? 1 : 37) {
		char *s = malloc(len);

		ck_assert_ptr_nonnull(s);
		memcpy(s, good, len);
		s[off] ^= (char)(1 + off % 255);
		test_write_file(indexpath, s, len);
		free(s);
		md = open_ok();
		ck_assert_uint_eq(md->count, n);
		for (i = 0; i < n; i++) {
			ck_assert_uint_eq(md->msgs[i].size, sizes[i]);
			ck_assert_str_eq(UIDL(md, i), a[i]);
		}
		maildrop_close(&md);
	}
	/* Cut short, or empty. */
	test_write_file(indexpath, good, len / 2);
	md = open_ok();
	ck_assert_uint_eq(md->count, n);
	ck_assert_str_eq(UIDL(md, n - 1), a[n - 1]);
	maildrop_close(&md);
	test_write_file(indexpath, "", 0);
	md = open_ok();
	ck_assert_uint_eq(md->msgs[0].size, sizes[0]);
	maildrop_close(&md);
	free(good);
}
END_TEST

/* An mbox rewritten by another program that kept its size and put its
 * modification time back still gets read again: the index's "From "
 * lines no longer stand where it says. */
START_TEST(test_index_same_stamp)
{
	static const char before[] = "From a@x Mon Jan  1 00:00:00 2024\n"
		"one\n\nFrom b@x Mon Jan  1 00:00:00 2024\ntwo\n";
	static const char after[] = "From c@x Mon Jan  1 00:00:00 2024\n"
		"one\n\nFrom d@x Mon Jan  1 00:00:00 2024\ntwo\n";
	char a[2][POP3_UIDL_MAX + 1];
	struct timespec ts[2];
	struct maildrop *md;
	struct stat st;
	int fd;

	WRITE_MBOX(before);
	md = open_ok();
	ck_assert_uint_eq(uidls(md, a, 2), 2);
	maildrop_close(&md);
	ck_assert_int_eq(stat(mboxpath, &st), 0);
	fd = open(mboxpath, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, after, sizeof(after) - 1, 0),
			 (ssize_t)sizeof(after) - 1);
	close(fd);
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	ck_assert_int_eq(utimensat(AT_FDCWD, mboxpath, ts, 0), 0);
	md = open_ok();
	ck_assert_uint_eq(md->count, 2);
	ck_assert_str_ne(UIDL(md, 0), a[0]);
	ck_assert_str_ne(UIDL(md, 1), a[1]);
	maildrop_close(&md);
}
END_TEST

/* The index keeps the UIDL numbers, but they are used only while the
 * UIDL state is the very file they were taken from. */
START_TEST(test_index_uidl_numbers)
{
	char a[8][POP3_UIDL_MAX + 1], b[8][POP3_UIDL_MAX + 1];
	struct maildrop *md;
	size_t n, i, len;
	char *state;

	make_mbox(6, 2);
	md = open_ok();
	n = uidls(md, a, 8);
	maildrop_close(&md);
	/* Unchanged: the same numbers (from the index). */
	md = open_ok();
	ck_assert_uint_eq(uidls(md, b, 8), n);
	for (i = 0; i < n; i++)
		ck_assert_str_eq(b[i], a[i]);
	maildrop_close(&md);
	/* The state is lost: new UIDLs, not the index's. */
	state = test_read_file(uidlpath, &len);
	unlink(uidlpath);
	md = open_ok();
	ck_assert_uint_eq(uidls(md, b, 8), n);
	for (i = 0; i < n; i++)
		ck_assert_str_ne(b[i], a[i]);
	maildrop_close(&md);
	/* The old state comes back: its UIDLs, not the index's. */
	test_write_file(uidlpath, state, len);
	md = open_ok();
	for (i = 0; i < n; i++)
		ck_assert_str_eq(UIDL(md, i), a[i]);
	maildrop_close(&md);
	md = open_ok();
	for (i = 0; i < n; i++)
		ck_assert_str_eq(UIDL(md, i), a[i]);
	/* After a deletion, the index and the state agree again. */
	md->msgs[1].deleted = true;
	ck_assert_uint_eq(commit_ok(md), 1);
	maildrop_close(&md);
	md = open_ok();
	ck_assert_uint_eq(md->count, n - 1);
	ck_assert_str_eq(UIDL(md, 0), a[0]);
	for (i = 1; i < n - 1; i++)
		ck_assert_str_eq(UIDL(md, i), a[i + 1]);
	maildrop_close(&md);
	free(state);
}
END_TEST

/* A "From " line changed in place far into a large mbox (well into
 * the second read of the check): after mail was appended, the index is not reused
 * for it, and a deletion at QUIT is refused. */
START_TEST(test_index_large_change)
{
	enum maildrop_error err;
	const char *error = NULL;
	unsigned int deleted = 99;
	static char a[400][POP3_UIDL_MAX + 1];
	struct maildrop *md;
	size_t n, i, len, target;
	char *s, *p;
	int fd;

	make_mbox(300, 550);            /* about 2.7 MiB */
	md = open_ok();
	n = uidls(md, a, 400);
	ck_assert_uint_eq(n, 300);
	target = 240;
	ck_assert_uint_gt((uint64_t)md->msgs[target].offset, 1u << 20);
	maildrop_close(&md);
	/* "From sender240@..." becomes "From sendEr240@...". */
	s = test_read_file(mboxpath, &len);
	p = strstr(s, "From sender240@");
	ck_assert_ptr_nonnull(p);
	fd = open(mboxpath, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "E", 1, (off_t)(p - s) + 9), 1);
	close(fd);
	free(s);
	test_append_file(mboxpath, "From z\nnew\n", 11);
	md = open_ok();
	ck_assert_uint_eq(md->count, n + 1);
	for (i = 0; i < n; i++) {
		if (i == target)
			ck_assert_str_ne(UIDL(md, i), a[i]);
		else
			ck_assert_str_eq(UIDL(md, i), a[i]);
	}
	/* The same change during a session. */
	s = test_read_file(mboxpath, &len);
	p = strstr(s, "From sendEr240@");
	ck_assert_ptr_nonnull(p);
	fd = open(mboxpath, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "e", 1, (off_t)(p - s) + 9), 1);
	close(fd);
	free(s);
	md->msgs[0].deleted = true;
	ck_assert_int_eq(md->driver->commit(md, &deleted, &err, &error), -1);
	ck_assert_int_eq(err, MAILDROP_ERR_TEMP);
	ck_assert_ptr_nonnull(strstr(error, "changed by another program"));
	maildrop_close(&md);
}
END_TEST

/* ---- crash safety ---------------------------------------------------------- */

#define FI_MESSAGES 300
#define FI_APPEND "From late@example.org Wed Jan  3 00:00:00 2024\n" \
	"Subject: late\n\nappended during the session\n\n"

/* The expected stored message bodies, from a parse of the fixture. */
struct expect {
	char *body[FI_MESSAGES + 1];
	size_t len[FI_MESSAGES + 1];
	char uidl[FI_MESSAGES + 1][POP3_UIDL_MAX + 1];
	size_t count;
};

static void
expect_load(struct expect *e)
{
	struct maildrop *md = open_ok();
	size_t i;

	e->count = md->count;
	for (i = 0; i < md->count; i++) {
		e->body[i] = msg_bytes(md, i);
		e->len[i] = md->msgs[i].raw_size;
		strcpy(e->uidl[i], UIDL(md, i));
	}
	maildrop_close(&md);
}

static void
expect_free(struct expect *e)
{
	size_t i;

	for (i = 0; i < e->count; i++)
		free(e->body[i]);
}

static bool
deleted_in_test(size_t i)
{
	return i % 3 == 1 || i == 0;
}

static size_t
kept_in_test(size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		if (!deleted_in_test(i))
			k++;
	return k;
}

/* Child: open, mark, let mail arrive, commit with the fault at step at.
 * Exit 0 when the commit completed, 1 when it failed cleanly. */
static void
fault_child(long at, const char *mode)
{
	enum maildrop_error err;
	const char *error;
	unsigned int deleted;
	struct maildrop *md;
	char text[64];
	size_t i;

	snprintf(text, sizeof(text), "%ld %s 97\n", at, mode);
	test_write_file(faultpath, text, strlen(text));
	setenv("POPLAR_MBOX_FAULT_FILE", faultpath, 1);
	md = maildrop_open(&maildrop_mbox, mboxpath, 0, &err, &error);
	if (md == NULL)
		_exit(3);
	for (i = 0; i < md->count; i++)
		md->msgs[i].deleted = deleted_in_test(i);
	test_append_file(mboxpath, FI_APPEND, sizeof(FI_APPEND) - 1);
	if (md->driver->commit(md, &deleted, &err, &error) < 0)
		_exit(1);
	maildrop_close(&md);
	_exit(0);
}

/* After the crash: open (recovery) and compare with before or after. */
static bool
check_after_fault(const struct expect *e)
{
	struct maildrop *md;

	/* The killed updater left its dotlock; its holder is dead. */
	maildrop_mbox_configure(NULL, 0, 5);
	md = open_ok();
	size_t i, k = 0;
	bool applied;
	char *b;

	/* Either every message (update not applied) or only the kept ones,
	 * then the appended one, exactly once. */
	applied = md->count != e->count + 1;
	if (applied)
		ck_assert_uint_eq(md->count, kept_in_test(e->count) + 1);
	for (i = 0; i < e->count; i++) {
		if (applied && deleted_in_test(i))
			continue;
		ck_assert_uint_lt(k, md->count);
		b = msg_bytes(md, k);
		ck_assert_uint_eq(md->msgs[k].raw_size, e->len[i]);
		ck_assert_msg(memcmp(b, e->body[i], e->len[i]) == 0,
			      "message %zu differs", i);
		ck_assert_str_eq(UIDL(md, k), e->uidl[i]);
		free(b);
		k++;
	}
	ck_assert_uint_eq(k + 1, md->count);
	b = msg_bytes(md, k);
	ck_assert_str_eq(b, "Subject: late\n\nappended during the session\n");
	free(b);
	maildrop_close(&md);
	ck_assert_int_eq(access(journalpath, F_OK), -1);
	return applied;
}

/* Put the mailbox and the UIDL state back as they were before the first
 * run (saved when first is set), and drop the index. */
static void
restore(const char *fixture, size_t flen, bool first)
{
	char ui[1300];
	size_t ulen;
	char *u;

	test_write_file(mboxpath, fixture, flen);
	snprintf(ui, sizeof(ui), "%s.keep", uidlpath);
	u = test_read_file(first ? uidlpath : ui, &ulen);
	test_write_file(first ? ui : uidlpath, u, ulen);
	free(u);
	unlink(indexpath);
}

static void
fault_run(const char *mode, long step, long *points_r, long *applied_r)
{
	struct expect e;
	long at;
	char *fixture;
	size_t flen;

	make_mbox(FI_MESSAGES, 2);
	fixture = test_read_file(mboxpath, &flen);
	expect_load(&e);
	*points_r = 0;
	*applied_r = 0;
	for (at = 1;; at += step) {
		pid_t pid;
		int status;

		/* Start each run from the same mailbox and UIDL state. */
		restore(fixture, flen, at == 1);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			/* fault_child never returns: free the parent's
			 * copies, which valgrind would count as lost. */
			expect_free(&e);
			free(fixture);
			fault_child(at, mode);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(WIFEXITED(status));
		unsetenv("POPLAR_MBOX_FAULT_FILE");
		if (check_after_fault(&e))
			(*applied_r)++;
		if (WEXITSTATUS(status) == 0)
			break;
		ck_assert_msg(WEXITSTATUS(status) == 86 ||
			      WEXITSTATUS(status) == 1, "child exit %d",
			      WEXITSTATUS(status));
		(*points_r)++;
	}
	expect_free(&e);
	free(fixture);
}

START_TEST(test_fault_every_step)
{
	long points, applied;

	fault_run("exit", 1, &points, &applied);
	/* Hundreds of distinct steps, and both outcomes seen. */
	ck_assert_int_ge(points, 300);
	ck_assert_int_gt(applied, 0);
	ck_assert_int_lt(applied, points);
	fprintf(stdout, "fault injection (kill): %ld steps, %ld applied on "
		"recovery\n", points, applied);
}
END_TEST

START_TEST(test_fault_short_writes)
{
	long points, applied;

	fault_run("short", 3, &points, &applied);
	ck_assert_int_ge(points, 100);
}
END_TEST

START_TEST(test_fault_enospc)
{
	long points, applied;

	fault_run("enospc", 5, &points, &applied);
	ck_assert_int_ge(points, 60);
}
END_TEST

/* A crash after the journal was written, then mail delivered by an MDA
 * that broke the stale dotlock, then the next session. */
START_TEST(test_recovery_with_append)
{
	struct expect e;
	long at;
	size_t flen;
	char *fixture;

	make_mbox(40, 2);
	fixture = test_read_file(mboxpath, &flen);
	expect_load(&e);
	for (at = 1; at < 400; at += 7) {
		char lk[1200];
		pid_t pid;
		int status;

		restore(fixture, flen, at == 1);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			expect_free(&e);
			free(fixture);
			fault_child(at, "exit");
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		unsetenv("POPLAR_MBOX_FAULT_FILE");
		if (WEXITSTATUS(status) == 0) {
			(void)check_after_fault(&e);
			break;
		}
		/* The crash left the dotlock; an MDA breaks it and appends
		 * at the end of whatever the file is now. */
		snprintf(lk, sizeof(lk), "%s.lock", mboxpath);
		unlink(lk);
		test_append_file(mboxpath, "From mda\nlater\n\n", 16);
		{
			struct maildrop *md = open_ok();

			char *b = msg_bytes(md, md->count - 1);

			ck_assert_str_eq(b, "later\n");
			free(b);
			b = msg_bytes(md, md->count - 2);
			ck_assert_str_eq(b, "Subject: late\n\nappended "
					 "during the session\n");
			free(b);
			ck_assert(md->count == e.count + 2 ||
				  md->count == kept_in_test(e.count) + 2);
			maildrop_close(&md);
		}
	}
	expect_free(&e);
	free(fixture);
}
END_TEST

static Suite *
mbox_suite(void)
{
	Suite *s = suite_create("mbox");
	TCase *tc = tcase_create("parser");
	TCase *ts = tcase_create("split");
	TCase *tf = tcase_create("faults");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_missing_and_empty);
	tcase_add_test(tc, test_not_mbox);
	tcase_add_test(tc, test_basic);
	tcase_add_test(tc, test_edges);
	tcase_add_test(tc, test_long_lines);
	tcase_add_test(tc, test_uidl_persistence);
	tcase_add_test(tc, test_uidl_changed_middle);
	tcase_add_test(tc, test_uidl_old_version);
	tcase_add_test(tc, test_state_of_emptied_mbox);
	tcase_add_test(tc, test_append_during_session);
	tcase_add_test(tc, test_outside_rewrite);
	tcase_add_test(tc, test_index);
	tcase_add_test(tc, test_scan_random);
	tcase_add_test(tc, test_scan_chunk_borders);
	tcase_add_test(tc, test_index_damage);
	tcase_add_test(tc, test_index_same_stamp);
	tcase_add_test(tc, test_index_uidl_numbers);
	tcase_add_test(tc, test_index_large_change);
	tcase_add_test(tc, test_scan_split_tiny);
	tcase_add_test(tc, test_scan_too_many);
	suite_add_tcase(s, tc);

	/* The scanner again, every scan shared by two threads. */
	tcase_add_checked_fixture(ts, setup_split, teardown);
	tcase_set_timeout(ts, 60);
	tcase_add_test(ts, test_basic);
	tcase_add_test(ts, test_edges);
	tcase_add_test(ts, test_long_lines);
	tcase_add_test(ts, test_index);
	tcase_add_test(ts, test_scan_random);
	tcase_add_test(ts, test_scan_chunk_borders);
	tcase_add_test(ts, test_scan_split_points);
	tcase_add_test(ts, test_scan_split_tiny);
	tcase_add_test(ts, test_scan_too_many);
	suite_add_tcase(s, ts);

	tcase_add_checked_fixture(tf, setup, teardown);
	tcase_set_timeout(tf, 240);
	tcase_add_test(tf, test_fault_every_step);
	tcase_add_test(tf, test_fault_short_writes);
	tcase_add_test(tf, test_fault_enospc);
	tcase_add_test(tf, test_recovery_with_append);
	suite_add_tcase(s, tf);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(mbox_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
