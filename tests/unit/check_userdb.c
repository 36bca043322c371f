/* check_userdb.c: unit tests for the passwd-file users of auth/userdb.c:
 * loading, look-up, and that a process which called userdb_forget (a
 * session after login) keeps no copy of any user's password hash.
 *
 * The memory test reads this process's own memory through /proc/self/mem,
 * which sees freed heap memory without touching it (AddressSanitizer
 * would report a direct read of it). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config.h"
#include "userdb.h"
#include "util.h"

/* Bob's hash: any string without ':' will do, the file's hashes are not
 * checked at load.  Built at run time (see hash_of_bob) so that the only
 * copy the test makes is the one it searches for. */
#define HASH_LEN 40

static char dir[] = "/tmp/check_userdb.XXXXXX";
static char users_path[sizeof(dir) + 16];
static struct config *cfg;

static void
hash_of_bob(char *out)
{
	memcpy(out, "$6$bobsalt$", 11);
	for (size_t i = 11; i < HASH_LEN; i++)
		out[i] = (char)('a' + (i * 7) % 26);
	out[HASH_LEN] = '\0';
}

/* Write one line of the users file with write(2): stdio would leave a
 * copy of it in its buffer. */
static void
put(int fd, const char *s)
{
	size_t len = strlen(s);

	ck_assert_int_eq(write(fd, s, len), (ssize_t)len);
}

static void
setup(void)
{
	char text[512], err[256];
	char hash[HASH_LEN + 1];
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(users_path, sizeof(users_path), "%s/users", dir);
	fd = open(users_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	put(fd, "alice:$6$alicesalt$notbobs:::/home/alice\n");
	hash_of_bob(hash);
	put(fd, "bob:");
	put(fd, hash);
	put(fd, ":::/home/bob\n");
	ck_assert_int_eq(close(fd), 0);
	secure_wipe(hash, sizeof(hash));

	snprintf(text, sizeof(text),
		 "[server]\nhostname = localhost\nlog = stderr\n"
		 "[listen pop3]\naddress = 127.0.0.1:1110\nauth = pass\n"
		 "[userdb]\ndriver = passwd-file\nfile = %s\n"
		 "[maildrop]\nlocation = maildir:%%h/Maildir\n"
		 "[module pass]\n", users_path);
	cfg = config_parse("t.conf", text, strlen(text), err, sizeof(err));
	ck_assert_msg(cfg != NULL, "config: %s", err);
}

static void
teardown(void)
{
	userdb_forget();
	config_free(&cfg);
	unlink(users_path);
	rmdir(dir);
	strcpy(dir, "/tmp/check_userdb.XXXXXX");
}

static void
init_ok(void)
{
	char err[256];

	ck_assert_msg(userdb_init(cfg, err, sizeof(err)) == 0, "userdb: %s",
		      err);
}

START_TEST(test_lookup_then_forget)
{
	struct userdb_user u;
	const char *error = NULL;

	init_ok();
	ck_assert_int_eq(userdb_lookup("bob", &u, &error), 1);
	ck_assert_str_eq(u.name, "bob");
	ck_assert_str_eq(u.home, "/home/bob");
	userdb_forget();
	/* Forgotten users are not looked up in the system database. */
	ck_assert_int_eq(userdb_lookup("bob", &u, &error), 0);
}
END_TEST

/* Replace the users file with text and load it. */
static void
load_users(const char *text)
{
	int fd = open(users_path, O_WRONLY | O_TRUNC | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	put(fd, text);
	ck_assert_int_eq(close(fd), 0);
	init_ok();
}

/* Many users: every one is found with its own fields, and names that
 * are not in the file (prefixes, extensions, near misses) are not.  The
 * look-up table is at most half full, so these names collide in runs of
 * slots, which a look-up has to walk past. */
START_TEST(test_many_users)
{
	enum { N = 5000 };
	struct userdb_user u;
	const char *error = NULL;
	char line[160], name[32];
	int fd;

	fd = open(users_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < N; i++) {
		/* Not in order: the file's order must not matter. */
		int k = (i * 7919) % N;

		snprintf(line, sizeof(line), "user%d:$1$s$h%d:%d:%d:/home/u%d\n",
			 k, k, 1000 + k, 2000 + k, k);
		put(fd, line);
	}
	ck_assert_int_eq(close(fd), 0);
	init_ok();
	for (int k = 0; k < N; k++) {
		char home[32];

		snprintf(name, sizeof(name), "user%d", k);
		snprintf(home, sizeof(home), "/home/u%d", k);
		ck_assert_msg(userdb_lookup(name, &u, &error) == 1,
			      "%s not found", name);
		ck_assert_str_eq(u.name, name);
		ck_assert_str_eq(u.home, home);
		ck_assert_uint_eq(u.uid, (uid_t)(1000 + k));
		ck_assert_uint_eq(u.gid, (gid_t)(2000 + k));
	}
	for (int k = 0; k < N; k++) {
		snprintf(name, sizeof(name), "user%dx", k);
		ck_assert_int_eq(userdb_lookup(name, &u, &error), 0);
		snprintf(name, sizeof(name), "user%d", N + k);
		ck_assert_int_eq(userdb_lookup(name, &u, &error), 0);
		snprintf(name, sizeof(name), "usex%d", k);
		ck_assert_int_eq(userdb_lookup(name, &u, &error), 0);
	}
	ck_assert_int_eq(userdb_lookup("user", &u, &error), 0);
	ck_assert_int_eq(userdb_lookup("alice", &u, &error), 0);
}
END_TEST

/* u31992 and u605430 have the same 32-bit FNV-1a hash, the table's: with
 * only one of them in the file, the other is still not found; with both,
 * each is found as itself. */
START_TEST(test_same_hash)
{
	struct userdb_user u;
	const char *error = NULL;

	load_users("u31992:$1$s$a:1:1:/home/a\n");
	ck_assert_int_eq(userdb_lookup("u31992", &u, &error), 1);
	ck_assert_int_eq(userdb_lookup("u605430", &u, &error), 0);

	load_users("u31992:$1$s$a:1:1:/home/a\n"
		   "u605430:$1$s$b:2:2:/home/b\n");
	ck_assert_int_eq(userdb_lookup("u605430", &u, &error), 1);
	ck_assert_str_eq(u.home, "/home/b");
	ck_assert_int_eq(userdb_lookup("u31992", &u, &error), 1);
	ck_assert_str_eq(u.home, "/home/a");
}
END_TEST

/* An empty file: nothing is found, and the look-up ends. */
START_TEST(test_no_users)
{
	struct userdb_user u;
	const char *error = NULL;

	load_users("# nobody here\n");
	ck_assert_int_eq(userdb_lookup("alice", &u, &error), 0);
	ck_assert_int_eq(userdb_lookup("bob", &u, &error), 0);
}
END_TEST

/* ---- no hash left behind --------------------------------------------- */

/* Bytes of RAM: a mapping larger than that cannot be in use as a whole;
 * it is a sparse reservation, such as AddressSanitizer's shadow memory
 * (terabytes, never a copy of the program's data). */
static uint64_t
ram_bytes(void)
{
	return (uint64_t)sysconf(_SC_PHYS_PAGES) *
	       (uint64_t)sysconf(_SC_PAGESIZE);
}

enum { CHUNK = 1 << 20 };       /* bytes of memory read at once */

/* One buffer for every scan: a freed one would keep what it read. */
static char scan_buf[CHUNK + HASH_LEN];

/* Addresses where needle occurs in this process's readable memory, other
 * than needle itself and the scan's own buffer: the count, and the first
 * in *where. */

static unsigned int
copies_in_memory(const char *needle, uintptr_t *where)
{
	size_t nlen = strlen(needle);
	uintptr_t self = (uintptr_t)needle;
	FILE *maps = fopen("/proc/self/maps", "re");
	int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	uintptr_t bstart = (uintptr_t)scan_buf;
	char line[512];
	unsigned int found = 0;
	uint64_t ram = ram_bytes();

	ck_assert_uint_le(nlen, HASH_LEN);
	ck_assert_ptr_nonnull(maps);
	ck_assert_int_ge(mem, 0);
	while (fgets(line, sizeof(line), maps) != NULL) {
		unsigned long lo, hi;
		char perms[8], path[256] = "";

		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &lo, &hi,
			   perms, path) < 3 || perms[0] != 'r' ||
		    strcmp(path, "[vvar]") == 0 ||
		    strcmp(path, "[vvar_vclock]") == 0 ||
		    strcmp(path, "[vsyscall]") == 0)
			continue;
		if (path[0] == '\0' && hi - lo > ram)
			continue;
		for (uintptr_t off = lo; off < hi; off += CHUNK) {
			size_t want = hi - off < CHUNK + nlen ? hi - off
				      : CHUNK + nlen;
			ssize_t n = pread(mem, scan_buf, want, (off_t)off);

			if (n <= 0)
				break;
			for (char *p = scan_buf; (p = memmem(p, (size_t)n -
				(size_t)(p - scan_buf), needle, nlen)) != NULL;
			     p++) {
				uintptr_t at = off + (uintptr_t)(p - scan_buf);

				/* (the next chunk starts there) */
				if ((size_t)(p - scan_buf) >= CHUNK)
					break;
				if (at == self || (at >= bstart &&
						   at < bstart + sizeof(scan_buf)))
					continue;
				if (found++ == 0)
					*where = at;
			}
		}
	}
	close(mem);
	fclose(maps);
	return found;
}

START_TEST(test_forget_leaves_no_hash)
{
	char needle[HASH_LEN + 1];
	uintptr_t where = 0;
	unsigned int n;

	/* The first userdb_init also makes the dummy hash from /dev/urandom
	 * through stdio, whose buffer may take over (and overwrite) the
	 * file's freed one: load once more, as a reload would, and look
	 * at what that load left. */
	init_ok();
	init_ok();
	hash_of_bob(needle);
	n = copies_in_memory(needle, &where);
	ck_assert_msg(n >= 1, "the search does not find the loaded users");
	userdb_forget();
	n = copies_in_memory(needle, &where);
	ck_assert_msg(n == 0, "%u cop%s of bob's hash after userdb_forget, "
		      "the first at %#lx", n, n == 1 ? "y" : "ies",
		      (unsigned long)where);
}
END_TEST

static Suite *
userdb_suite(void)
{
	Suite *s = suite_create("userdb");
	TCase *tc = tcase_create("passwd-file");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lookup_then_forget);
	tcase_add_test(tc, test_many_users);
	tcase_add_test(tc, test_no_users);
	tcase_add_test(tc, test_same_hash);
	tcase_add_test(tc, test_forget_leaves_no_hash);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(userdb_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
