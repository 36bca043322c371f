/* check_session.c: unit tests for the POP3 session (core/session.c,
 * core/state_auth.c, core/state_trans.c): the command table, arity and
 * state rules, CAPA, logins through the pass and testgood modules, the
 * TRANSACTION commands and UPDATE.
 *
 * Each session runs in a forked child on one end of a socketpair, as in
 * poplard: the child may drop privileges when it logs in.  The test
 * writes a whole script of commands, shuts down its write side, and
 * compares everything the session answered. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "config.h"
#include "loader.h"
#include "params.h"
#include "pio.h"
#include "session.h"
#include "userdb.h"

/* The unprivileged account sessions run as when the tests run as root. */
#define TEST_UID 65534
#define TEST_GID 65534

#define GREETING "+OK Poplar ready\r\n"

/* The maildrop of alice: two messages, one stored with LF line ends and
 * a dot-line, one with CRLF.  Sizes as RETR sends them: 36 bytes + 5
 * LFs = 41, and 24. */
#define MSG1_NAME "new/1700000001.M1P1.test"
#define MSG1_UIDL "1700000001.M1P1.test"
#define MSG1 "Subject: one\n\nbody 1\n.dot line\nlast\n"
#define MSG2_NAME "cur/1700000002.M2P2.test:2,S"
#define MSG2_UIDL "1700000002.M2P2.test"
#define MSG2 "Subject: two\r\n\r\nsecond\r\n"
#define MAILDROP_OK "+OK maildrop has 2 messages (65 octets)\r\n"

#define ALICE_PASSWORD "open sesame"
#define BOB_PASSWORD "secret"
#define LOGIN_ALICE "USER alice\r\nPASS " ALICE_PASSWORD "\r\n"
#define LOGGED_IN "+OK send PASS\r\n" MAILDROP_OK

#define AUTH_FAILED "-ERR [AUTH] authentication failed\r\n"
#define ARGS_ERR(cmd) "-ERR syntax error or wrong number of arguments " \
	"for " cmd "\r\n"

static char root[PATH_MAX];             /* the test's temporary tree */
static struct config *cfg;
static char err[1024];

/* The temporary tree. */

static char *
path_of(const char *rel)
{
	char *p = NULL;

	ck_assert_int_ge(asprintf(&p, "%s/%s", root, rel), 0);
	return p;
}

static void
write_file(const char *rel, const char *data, size_t len)
{
	char *p = path_of(rel);
	FILE *f = fopen(p, "w");

	ck_assert_msg(f != NULL, "%s: %s", p, strerror(errno));
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	free(p);
}

static void
make_dir(const char *rel)
{
	char *p = path_of(rel);

	ck_assert_msg(mkdir(p, 0700) == 0, "%s: %s", p, strerror(errno));
	free(p);
}

static bool
exists(const char *rel)
{
	char *p = path_of(rel);
	struct stat st;
	bool r = stat(p, &st) == 0;

	free(p);
	return r;
}

/* Link NAME.so from the directory named by envvar (or fallback) into
 * the test module directory, by absolute path. */
static void
link_module(const char *envvar, const char *fallback, const char *name)
{
	const char *dir = getenv(envvar);
	char *src = NULL, *dst, abs[PATH_MAX], *rel = NULL;

	if (dir == NULL || *dir == '\0')
		dir = fallback;
	ck_assert_int_ge(asprintf(&src, "%s/%s.so", dir, name), 0);
	ck_assert_msg(realpath(src, abs) != NULL, "%s: %s (build the test "
		      "modules first)", src, strerror(errno));
	ck_assert_int_ge(asprintf(&rel, "modules/%s.so", name), 0);
	dst = path_of(rel);
	ck_assert_int_eq(symlink(abs, dst), 0);
	free(src);
	free(dst);
	free(rel);
}

static char *
make_hash(const char *password)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *setting, *h;
	char *r;

	ck_assert_ptr_nonnull(cd);
	setting = crypt_gensalt_rn("$6$", 0, NULL, 0, cd->setting,
				   sizeof(cd->setting));
	ck_assert_ptr_nonnull(setting);
	h = crypt_r(password, setting, cd);
	ck_assert(h != NULL && h[0] == '$');
	r = strdup(h);
	free(cd);
	return r;
}

static int
chown_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return lchown(p, TEST_UID, TEST_GID);
}

static int
remove_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void
setup(void)
{
	const char *tmp = getenv("TMPDIR");
	char *users = NULL, *h1 = make_hash(ALICE_PASSWORD);
	char *h2 = make_hash(BOB_PASSWORD);
	bool is_root = geteuid() == 0;

	signal(SIGPIPE, SIG_IGN);
	snprintf(root, sizeof(root), "%s/poplar-session-XXXXXX",
		 tmp != NULL && *tmp ? tmp : P_tmpdir);
	ck_assert_ptr_nonnull(mkdtemp(root));
	/* the session's user must reach the homes below */
	ck_assert_int_eq(chmod(root, 0755), 0);

	make_dir("modules");
	link_module("POPLAR_TESTMOD_DIR", "tests/modules/.libs", "testgood");
	link_module("POPLAR_MODULE_BUILD_DIR", "modules/.libs", "pass");

	make_dir("home");
	ck_assert_int_eq(chmod(root, 0755), 0);
	{
		char *p = path_of("home");

		ck_assert_int_eq(chmod(p, 0755), 0);
		free(p);
	}
	make_dir("home/alice");
	make_dir("home/alice/Maildir");
	make_dir("home/alice/Maildir/new");
	make_dir("home/alice/Maildir/cur");
	make_dir("home/alice/Maildir/tmp");
	write_file("home/alice/Maildir/" MSG1_NAME, MSG1, sizeof(MSG1) - 1);
	write_file("home/alice/Maildir/" MSG2_NAME, MSG2, sizeof(MSG2) - 1);
	make_dir("home/bob");
	if (is_root) {
		char *p = path_of("home/alice");

		ck_assert_int_eq(nftw(p, chown_one, 16, FTW_PHYS), 0);
		free(p);
		p = path_of("home/bob");
		ck_assert_int_eq(nftw(p, chown_one, 16, FTW_PHYS), 0);
		free(p);
	}

	/* NAME:HASH:UID:GID:HOME; no ids when we cannot change user */
	ck_assert_int_ge(asprintf(&users,
		"# test users\n"
		"alice:%s:%s:%s:%s/home/alice\n"
		"bob:%s:%s:%s:%s/home/bob\n",
		h1, is_root ? "65534" : "", is_root ? "65534" : "", root,
		h2, is_root ? "65534" : "", is_root ? "65534" : "", root), 0);
	write_file("users", users, strlen(users));
	free(users);
	free(h1);
	free(h2);
}

static void
teardown(void)
{
	modules_unload_all();
	config_free(&cfg);
	if (root[0] != '\0')
		nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	root[0] = '\0';
}

/* Parse a configuration with the usual parts, plus extra [server] and
 * [listen] lines, the listener offering the modules named in auth; load
 * the userdb and modules as poplard does. */
static void
configure_auth(const char *server_extra, const char *listen_extra,
	       const char *auth)
{
	char *text = NULL;

	ck_assert_int_ge(asprintf(&text,
		"[server]\n"
		"hostname = pop.example.test\n"
		"module_dir = %s/modules\n"
		"%s%s"
		"log = stderr\n"
		"%s"
		"[listen pop3]\n"
		"address = 127.0.0.1:1110\n"
		"tls = none\n"
		"auth = %s\n"
		"%s"
		"[userdb]\n"
		"driver = passwd-file\n"
		"file = %s/users\n"
		"[maildrop]\n"
		"location = maildir:%%h/Maildir\n"
		"[module testgood]\n"
		"[module pass]\n"
		"backend = userdb\n",
		root,
		strstr(server_extra, "auth_fail_delay") == NULL
		? "auth_fail_delay = 0\n" : "",
		strstr(server_extra, "idle_timeout") == NULL
		? "idle_timeout = 20\n" : "",
		server_extra, auth, listen_extra != NULL ? listen_extra
		: "plaintext_auth = always\n", root), 0);
	cfg = config_parse("t.conf", text, strlen(text), err, sizeof(err));
	ck_assert_msg(cfg != NULL, "config: %s", err);
	free(text);
	ck_assert_msg(userdb_init(cfg, err, sizeof(err)) == 0, "userdb: %s",
		      err);
	ck_assert_msg(modules_load_all(cfg, err, sizeof(err)) == 0,
		      "modules: %s", err);
}

static void
configure(const char *server_extra, const char *listen_extra)
{
	configure_auth(server_extra, listen_extra, "testgood pass");
}

/* Run one session over a socketpair: write input (len bytes), then
 * shut down the write side unless keep_open, and return all the
 * session wrote (malloc'd, NUL-terminated). */
static char *
session_bytes(const char *input, size_t len, bool keep_open)
{
	int sv[2], wst;
	pid_t pid;
	char *out = NULL;
	size_t have = 0, alloc = 0;

	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char *log = path_of("session.log");
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		/* leave nothing of ours allocated for a leak checker */
		free(log);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		close(sv[0]);
		session_run(cfg, &cfg->listeners[0], sv[1], sv[1],
			    "192.0.2.7", "40000");
		_exit(0);
	}
	close(sv[1]);
	while (len > 0) {
		ssize_t n = write(sv[0], input, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;          /* the session ended early */
		input += n;
		len -= (size_t)n;
	}
	if (!keep_open)
		shutdown(sv[0], SHUT_WR);
	for (;;) {
		ssize_t n;

		if (alloc - have < 4096) {
			alloc = alloc * 2 + 8192;
			out = realloc(out, alloc);
			ck_assert_ptr_nonnull(out);
		}
		n = read(sv[0], out + have, alloc - have - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	out[have] = '\0';
	close(sv[0]);
	ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
	ck_assert_msg(WIFEXITED(wst) && WEXITSTATUS(wst) == 0,
		      "session process ended badly (status %d)", wst);
	return out;
}

static char *
session(const char *input)
{
	return session_bytes(input, strlen(input), false);
}

/* The session answers input with exactly want (greeting included). */
static void
transcript(const char *input, const char *want)
{
	char *got = session(input);

	ck_assert_msg(strcmp(got, want) == 0,
		      "\n--- input:\n%s--- expected:\n%s--- got:\n%s---",
		      input, want, got);
	free(got);
}

/* The session log (stderr of the sessions) contains s. */
static bool
log_has(const char *s)
{
	char *p = path_of("session.log");
	FILE *f = fopen(p, "r");
	char line[4096];
	bool found = false;

	free(p);
	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, s) != NULL;
	fclose(f);
	return found;
}

/* The command table. */

START_TEST(test_greeting_quit)
{
	configure("", NULL);
	transcript("QUIT\r\n", GREETING "+OK bye\r\n");
	transcript("", GREETING);
}
END_TEST

START_TEST(test_state_rules_authorization)
{
	configure("", NULL);
	transcript("STAT\r\nLIST\r\nRETR 1\r\nTOP 1 1\r\nDELE 1\r\nNOOP\r\n"
		   "RSET\r\nUIDL\r\nQUIT\r\n",
		   GREETING
		   "-ERR STAT is not valid in the AUTHORIZATION state\r\n"
		   "-ERR LIST is not valid in the AUTHORIZATION state\r\n"
		   "-ERR RETR is not valid in the AUTHORIZATION state\r\n"
		   "-ERR TOP is not valid in the AUTHORIZATION state\r\n"
		   "-ERR DELE is not valid in the AUTHORIZATION state\r\n"
		   "-ERR NOOP is not valid in the AUTHORIZATION state\r\n"
		   "-ERR RSET is not valid in the AUTHORIZATION state\r\n"
		   "-ERR UIDL is not valid in the AUTHORIZATION state\r\n"
		   "+OK bye\r\n");
}
END_TEST

START_TEST(test_state_rules_transaction)
{
	configure("", NULL);
	/* login commands belong to the AUTHORIZATION state only */
	transcript(LOGIN_ALICE "USER alice\r\nPASS x\r\nXTEST\r\n"
		   "XLOGIN alice\r\nSTLS\r\nQUIT\r\n",
		   GREETING LOGGED_IN
		   "-ERR unknown command\r\n"
		   "-ERR unknown command\r\n"
		   "-ERR unknown command\r\n"
		   "-ERR unknown command\r\n"
		   "-ERR STLS is not valid in the TRANSACTION state\r\n"
		   "+OK bye, 0 messages deleted\r\n");
}
END_TEST

START_TEST(test_arity)
{
	configure("", NULL);
	transcript(LOGIN_ALICE
		   "LIST 1 2\r\nRETR\r\nTOP 1\r\nTOP 1 2 3\r\nUIDL 1 2\r\n"
		   "DELE\r\nDELE 1 2\r\nSTAT 1\r\nNOOP x\r\n"
		   "LIST 1\r\nRSET now\r\nQUIT now\r\nQUIT\r\n",
		   GREETING LOGGED_IN
		   ARGS_ERR("LIST")
		   ARGS_ERR("RETR")
		   ARGS_ERR("TOP")
		   ARGS_ERR("TOP")
		   ARGS_ERR("UIDL")
		   ARGS_ERR("DELE")
		   ARGS_ERR("DELE")
		   ARGS_ERR("STAT")
		   ARGS_ERR("NOOP")
		   "+OK 1 41\r\n"
		   ARGS_ERR("RSET")
		   ARGS_ERR("QUIT")
		   "+OK bye, 0 messages deleted\r\n");
}
END_TEST

START_TEST(test_arity_authorization)
{
	configure("", NULL);
	transcript("CAPA now\r\nUSER\r\nUSER a b\r\nPASS\r\nQUIT\r\n",
		   GREETING
		   ARGS_ERR("CAPA")
		   ARGS_ERR("USER")
		   ARGS_ERR("USER")
		   ARGS_ERR("PASS")
		   "+OK bye\r\n");
}
END_TEST

START_TEST(test_argument_spacing)
{
	/* RFC 1939: arguments are separated by single spaces; an empty
	 * argument (two spaces, a trailing space) is a syntax error.  The
	 * secret of PASS is the rest of the line, spaces included. */
	configure("", NULL);
	transcript("USER alice\r\nPASS " ALICE_PASSWORD "\r\n"
		   "LIST  1\r\nLIST 1 \r\nNOOP \r\nLIST 1\r\nQUIT\r\n",
		   GREETING LOGGED_IN
		   ARGS_ERR("LIST") ARGS_ERR("LIST") ARGS_ERR("NOOP")
		   "+OK 1 41\r\n"
		   "+OK bye, 0 messages deleted\r\n");
	/* a password with one space too many is another password */
	transcript("USER alice\r\nPASS open  sesame\r\nQUIT\r\n",
		   GREETING "+OK send PASS\r\n" AUTH_FAILED "+OK bye\r\n");
}
END_TEST

START_TEST(test_case_insensitive)
{
	configure("", NULL);
	transcript("xtest\r\nuSeR alice\r\npass " ALICE_PASSWORD "\r\n"
		   "stat\r\nList 2\r\nuidl 2\r\nnoop\r\nquit\r\n",
		   GREETING
		   "+OK test module here\r\n"
		   LOGGED_IN
		   "+OK 2 65\r\n"
		   "+OK 2 24\r\n"
		   "+OK 2 " MSG2_UIDL "\r\n"
		   "+OK\r\n"
		   "+OK bye, 0 messages deleted\r\n");
}
END_TEST

START_TEST(test_unknown_and_empty)
{
	configure("", NULL);
	transcript("FOO\r\n\r\n   \r\nXYZZYXYZZYXYZZYXYZZY\r\nAPOP a b\r\n"
		   "AUTH PLAIN\r\nQUIT\r\n",
		   GREETING
		   "-ERR unknown command\r\n"
		   "-ERR empty command\r\n"
		   "-ERR empty command\r\n"
		   "-ERR unknown command\r\n"
		   "-ERR unknown command\r\n"
		   "-ERR unknown command\r\n"
		   "+OK bye\r\n");
}
END_TEST

START_TEST(test_line_limits)
{
	/* RFC 2449: 255 octets with CRLF is the longest command line.
	 * USER takes a long name (and answers alike whatever it is). */
	char in[2048], want[2048];
	size_t n;

	configure("", NULL);
	memcpy(in, "USER ", 5);
	memset(in + 5, 'a', POP3_CMD_MAX - 7);
	memcpy(in + POP3_CMD_MAX - 2, "\r\n", 2);
	n = POP3_CMD_MAX;
	memcpy(in + n, "USER ", 5);
	memset(in + n + 5, 'a', POP3_CMD_MAX - 6);
	memcpy(in + n + POP3_CMD_MAX - 1, "\r\n", 2);
	n += POP3_CMD_MAX + 1;
	/* with a bare LF the same 255 octets hold one more byte */
	memcpy(in + n, "USER ", 5);
	memset(in + n + 5, 'a', POP3_CMD_MAX - 6);
	in[n + POP3_CMD_MAX - 1] = '\n';
	n += POP3_CMD_MAX;
	memcpy(in + n, "CA\0PA\r\nQUIT\r\n", 13);
	n += 13;
	snprintf(want, sizeof(want), "%s%s%s%s%s%s",
		 GREETING,
		 "+OK send PASS\r\n",
		 "-ERR line too long (limit 255 octets)\r\n",
		 "+OK send PASS\r\n",
		 "-ERR NUL byte in command\r\n",
		 "+OK bye\r\n");
	{
		char *got = session_bytes(in, n, false);

		ck_assert_msg(strcmp(got, want) == 0, "got:\n%s", got);
		free(got);
	}
}
END_TEST

START_TEST(test_idle_timeout)
{
	char *got;

	configure("idle_timeout = 1\n", NULL);
	got = session_bytes("CAPA", 4, true);
	ck_assert_str_eq(got, GREETING "-ERR idle timeout, closing\r\n");
	free(got);
	ck_assert(log_has("reason=timeout"));
}
END_TEST

/* CAPA and plaintext_auth. */

#define CAPA_HEAD "+OK capability list follows\r\nTOP\r\nUIDL\r\n" \
	"RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
#define CAPA_TAIL "IMPLEMENTATION Poplar\r\n.\r\n"

START_TEST(test_capa_plaintext_always)
{
	configure("", "plaintext_auth = always\n");
	transcript("CAPA\r\n" LOGIN_ALICE "CAPA\r\nQUIT\r\n",
		   GREETING
		   CAPA_HEAD "X-TESTGOOD\r\nUSER\r\n" CAPA_TAIL
		   LOGGED_IN
		   CAPA_HEAD CAPA_TAIL
		   "+OK bye, 0 messages deleted\r\n");
}
END_TEST

START_TEST(test_capa_plaintext_after_tls)
{
	configure("", "plaintext_auth = after-tls\n");
	transcript("CAPA\r\nUSER alice\r\nPASS " ALICE_PASSWORD "\r\n"
		   "STLS\r\nXTEST\r\nQUIT\r\n",
		   GREETING
		   CAPA_HEAD "X-TESTGOOD\r\n" CAPA_TAIL
		   "-ERR [AUTH] plaintext authentication is not allowed on "
		   "this connection; use TLS\r\n"
		   "-ERR [AUTH] plaintext authentication is not allowed on "
		   "this connection; use TLS\r\n"
		   "-ERR STLS is not offered here\r\n"
		   "+OK test module here\r\n"
		   "+OK bye\r\n");
}
END_TEST

START_TEST(test_capa_plaintext_never)
{
	configure("", "plaintext_auth = never\n");
	transcript("CAPA\r\nUSER alice\r\nQUIT\r\n",
		   GREETING
		   CAPA_HEAD "X-TESTGOOD\r\n" CAPA_TAIL
		   "-ERR [AUTH] plaintext authentication is not allowed on "
		   "this connection; use TLS\r\n"
		   "+OK bye\r\n");
}
END_TEST

START_TEST(test_capa_trusted_network)
{
	/* the peer (192.0.2.7) is on a trusted network: plaintext is fine */
	configure("", "plaintext_auth = after-tls\n"
		  "trusted_networks = 127.0.0.0/8 192.0.2.0/24\n");
	transcript("CAPA\r\n" LOGIN_ALICE "QUIT\r\n",
		   GREETING
		   CAPA_HEAD "X-TESTGOOD\r\nUSER\r\n" CAPA_TAIL
		   LOGGED_IN
		   "+OK bye, 0 messages deleted\r\n");
}
END_TEST

START_TEST(test_capa_untrusted_network)
{
	configure("", "plaintext_auth = after-tls\n"
		  "trusted_networks = 192.0.2.8/32 198.51.100.0/24\n");
	transcript("CAPA\r\nQUIT\r\n",
		   GREETING CAPA_HEAD "X-TESTGOOD\r\n" CAPA_TAIL "+OK bye\r\n");
}
END_TEST

/* Logins. */

START_TEST(test_auth_failures_look_alike)
{
	configure("", NULL);
	transcript("USER nobody\r\nPASS " ALICE_PASSWORD "\r\n"
		   "USER alice\r\nPASS wrong\r\n"
		   LOGIN_ALICE "QUIT\r\n",
		   GREETING
		   "+OK send PASS\r\n" AUTH_FAILED
		   "+OK send PASS\r\n" AUTH_FAILED
		   LOGGED_IN
		   "+OK bye, 0 messages deleted\r\n");
	/* only the log tells the two apart */
	ck_assert(log_has("auth-fail peer=192.0.2.7 listener=pop3 "
			  "user=nobody method=pass reason=\"unknown user\""));
	ck_assert(log_has("auth-fail peer=192.0.2.7 listener=pop3 "
			  "user=alice method=pass reason=\"wrong password\""));
}
END_TEST

START_TEST(test_pass_rules)
{
	configure("", NULL);
	/* PASS needs USER first, and USER is forgotten after one PASS;
	 * a user name of another's password does not log in */
	transcript("PASS " ALICE_PASSWORD "\r\n"
		   "USER bob\r\nPASS " ALICE_PASSWORD "\r\n"
		   "PASS " BOB_PASSWORD "\r\nQUIT\r\n",
		   GREETING
		   "-ERR send USER first\r\n"
		   "+OK send PASS\r\n" AUTH_FAILED
		   "-ERR send USER first\r\n"
		   "+OK bye\r\n");
}
END_TEST

START_TEST(test_max_auth_failures)
{
	configure("max_auth_failures = 2\n", NULL);
	transcript("USER alice\r\nPASS x\r\nUSER alice\r\nPASS y\r\n"
		   "CAPA\r\n" LOGIN_ALICE,
		   GREETING
		   "+OK send PASS\r\n" AUTH_FAILED
		   "+OK send PASS\r\n" AUTH_FAILED);
	ck_assert(log_has("reason=too-many-auth-failures"));
}
END_TEST

START_TEST(test_auth_fail_delay)
{
	/* the delay is served before the answer */
	char *got;
	struct timespec t0, t1;
	long ms;

	configure("auth_fail_delay = 1\n", NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	got = session("USER alice\r\nPASS x\r\nQUIT\r\n");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ck_assert_str_eq(got, GREETING "+OK send PASS\r\n" AUTH_FAILED
			 "+OK bye\r\n");
	ck_assert_msg(ms >= 950, "answered after %ld ms", ms);
	free(got);
}
END_TEST

START_TEST(test_max_bad_commands)
{
	configure("max_bad_commands = 3\n", NULL);
	transcript("FOO\r\nSTAT\r\n\r\nCAPA\r\nQUIT\r\n",
		   GREETING
		   "-ERR unknown command\r\n"
		   "-ERR STAT is not valid in the AUTHORIZATION state\r\n"
		   "-ERR empty command\r\n");
	ck_assert(log_has("reason=too-many-bad-commands"));
}
END_TEST

START_TEST(test_bad_commands_consecutive)
{
	/* a good command resets the count */
	configure("max_bad_commands = 3\n", NULL);
	transcript("FOO\r\nFOO\r\nXTEST\r\nFOO\r\nFOO\r\nCAPA\r\nFOO\r\n"
		   "FOO\r\nQUIT\r\n",
		   GREETING
		   "-ERR unknown command\r\n-ERR unknown command\r\n"
		   "+OK test module here\r\n"
		   "-ERR unknown command\r\n-ERR unknown command\r\n"
		   CAPA_HEAD "X-TESTGOOD\r\nUSER\r\n" CAPA_TAIL
		   "-ERR unknown command\r\n-ERR unknown command\r\n"
		   "+OK bye\r\n");
}
END_TEST

START_TEST(test_bad_lines_count)
{
	/* too long and NUL lines are bad commands too */
	char in[1024];
	size_t n = 0;
	char *got;

	configure("max_bad_commands = 3\n", NULL);
	memset(in, 'A', 600);
	memcpy(in + 598, "\r\n", 2);
	n = 600;
	memcpy(in + n, "\0\r\nFOO\r\nQUIT\r\n", 14);
	n += 14;
	got = session_bytes(in, n, false);
	ck_assert_str_eq(got, GREETING
			 "-ERR line too long (limit 255 octets)\r\n"
			 "-ERR NUL byte in command\r\n"
			 "-ERR unknown command\r\n");
	free(got);
}
END_TEST

/* TRANSACTION and UPDATE. */

#define RETR1 "+OK 41 octets\r\nSubject: one\r\n\r\nbody 1\r\n" \
	"..dot line\r\nlast\r\n.\r\n"
#define RETR2 "+OK 24 octets\r\nSubject: two\r\n\r\nsecond\r\n.\r\n"

START_TEST(test_transaction)
{
	configure("", NULL);
	transcript(LOGIN_ALICE
		   "STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 1\r\n"
		   "RETR 1\r\nRETR 2\r\nTOP 1 0\r\nTOP 1 2\r\nTOP 2 100\r\n"
		   "NOOP\r\n"
		   "DELE 1\r\nSTAT\r\nLIST\r\nUIDL\r\nLIST 1\r\nRETR 1\r\n"
		   "TOP 1 0\r\nDELE 1\r\nUIDL 1\r\n"
		   "RSET\r\nSTAT\r\nLIST 1\r\nQUIT\r\n",
		   GREETING LOGGED_IN
		   "+OK 2 65\r\n"
		   "+OK scan listing follows\r\n1 41\r\n2 24\r\n.\r\n"
		   "+OK 2 24\r\n"
		   "+OK unique-id listing follows\r\n1 " MSG1_UIDL "\r\n"
		   "2 " MSG2_UIDL "\r\n.\r\n"
		   "+OK 1 " MSG1_UIDL "\r\n"
		   RETR1 RETR2
		   "+OK 41 octets\r\nSubject: one\r\n\r\n.\r\n"
		   "+OK 41 octets\r\nSubject: one\r\n\r\nbody 1\r\n"
		   "..dot line\r\n.\r\n"
		   RETR2
		   "+OK\r\n"
		   "+OK message 1 deleted\r\n"
		   "+OK 1 24\r\n"
		   "+OK scan listing follows\r\n2 24\r\n.\r\n"
		   "+OK unique-id listing follows\r\n2 " MSG2_UIDL "\r\n.\r\n"
		   "-ERR message 1 already deleted\r\n"
		   "-ERR message 1 already deleted\r\n"
		   "-ERR message 1 already deleted\r\n"
		   "-ERR message 1 already deleted\r\n"
		   "-ERR message 1 already deleted\r\n"
		   MAILDROP_OK
		   "+OK 2 65\r\n"
		   "+OK 1 41\r\n"
		   "+OK bye, 0 messages deleted\r\n");
	ck_assert(exists("home/alice/Maildir/" MSG1_NAME));
	ck_assert(exists("home/alice/Maildir/" MSG2_NAME));
	ck_assert(log_has("login peer=192.0.2.7 listener=pop3 user=alice "
			  "method=pass"));
	/* TOP is not counted as a download */
	ck_assert(log_has("user=alice method=pass retr=2 retr_bytes=65 "
			  "deleted=0"));
	ck_assert(log_has("reason=quit"));
}
END_TEST

START_TEST(test_numbers)
{
	configure("", NULL);
	transcript(LOGIN_ALICE
		   "LIST 0\r\nLIST 3\r\nLIST 4294967297\r\nNOOP\r\n"
		   "LIST 18446744073709551617\r\nRETR +1\r\nRETR -1\r\n"
		   "NOOP\r\nDELE 1x\r\nUIDL 0x1\r\nTOP 0 1\r\nNOOP\r\n"
		   "TOP 1 -1\r\nTOP 1 1x\r\nTOP 1 2147483648\r\nNOOP\r\n"
		   "LIST 01\r\nTOP 1 2147483647\r\nQUIT\r\n",
		   GREETING LOGGED_IN
		   "-ERR no such message\r\n"
		   "-ERR no such message\r\n"
		   "-ERR no such message\r\n"
		   "+OK\r\n"
		   "-ERR no such message\r\n"
		   "-ERR no such message\r\n"
		   "-ERR no such message\r\n"
		   "+OK\r\n"
		   "-ERR no such message\r\n"
		   "-ERR no such message\r\n"
		   "-ERR no such message\r\n"
		   "+OK\r\n"
		   "-ERR invalid number of lines\r\n"
		   "-ERR invalid number of lines\r\n"
		   "-ERR invalid number of lines\r\n"
		   "+OK\r\n"
		   "+OK 1 41\r\n"
		   RETR1
		   "+OK bye, 0 messages deleted\r\n");
}
END_TEST

START_TEST(test_dele_rset_quit)
{
	configure("", NULL);
	transcript(LOGIN_ALICE "DELE 1\r\nDELE 2\r\nRSET\r\nQUIT\r\n",
		   GREETING LOGGED_IN
		   "+OK message 1 deleted\r\n"
		   "+OK message 2 deleted\r\n"
		   MAILDROP_OK
		   "+OK bye, 0 messages deleted\r\n");
	ck_assert(exists("home/alice/Maildir/" MSG1_NAME));
	ck_assert(exists("home/alice/Maildir/" MSG2_NAME));
}
END_TEST

START_TEST(test_dele_quit)
{
	configure("", NULL);
	transcript(LOGIN_ALICE "DELE 1\r\nQUIT\r\n",
		   GREETING LOGGED_IN
		   "+OK message 1 deleted\r\n"
		   "+OK bye, 1 message deleted\r\n");
	ck_assert(!exists("home/alice/Maildir/" MSG1_NAME));
	ck_assert(exists("home/alice/Maildir/" MSG2_NAME));
	/* the next session sees one message, numbered 1 */
	transcript(LOGIN_ALICE "STAT\r\nUIDL\r\nDELE 1\r\nQUIT\r\n",
		   GREETING "+OK send PASS\r\n"
		   "+OK maildrop has 1 message (24 octets)\r\n"
		   "+OK 1 24\r\n"
		   "+OK unique-id listing follows\r\n1 " MSG2_UIDL "\r\n.\r\n"
		   "+OK message 1 deleted\r\n"
		   "+OK bye, 1 message deleted\r\n");
	ck_assert(!exists("home/alice/Maildir/" MSG2_NAME));
}
END_TEST

START_TEST(test_dele_without_quit)
{
	/* a session that ends without QUIT deletes nothing (RFC 1939 6) */
	configure("", NULL);
	transcript(LOGIN_ALICE "DELE 1\r\nDELE 2\r\n",
		   GREETING LOGGED_IN
		   "+OK message 1 deleted\r\n"
		   "+OK message 2 deleted\r\n");
	ck_assert(exists("home/alice/Maildir/" MSG1_NAME));
	ck_assert(exists("home/alice/Maildir/" MSG2_NAME));
	ck_assert(log_has("reason=eof"));
}
END_TEST

START_TEST(test_empty_maildrop)
{
	/* bob's Maildir does not exist yet: it is created, and empty */
	configure("", NULL);
	transcript("USER bob\r\nPASS " BOB_PASSWORD "\r\nSTAT\r\nLIST\r\n"
		   "UIDL\r\nLIST 1\r\nQUIT\r\n",
		   GREETING "+OK send PASS\r\n"
		   "+OK maildrop has 0 messages (0 octets)\r\n"
		   "+OK 0 0\r\n"
		   "+OK scan listing follows\r\n.\r\n"
		   "+OK unique-id listing follows\r\n.\r\n"
		   "-ERR no such message\r\n"
		   "+OK bye, 0 messages deleted\r\n");
	ck_assert(exists("home/bob/Maildir/new"));
}
END_TEST

/* The test module's commands. */

START_TEST(test_module_commands)
{
	configure("", NULL);
	transcript("XTEST\r\nXTEST now\r\nXLOGIN\r\nXLOGIN a b\r\n"
		   "XLOGIN nobody\r\nXLOGIN fail\r\nXLOGIN alice\r\nSTAT\r\n"
		   "XTEST\r\nQUIT\r\n",
		   GREETING
		   "+OK test module here\r\n"
		   ARGS_ERR("XTEST")
		   ARGS_ERR("XLOGIN")
		   ARGS_ERR("XLOGIN")
		   AUTH_FAILED
		   AUTH_FAILED
		   MAILDROP_OK
		   "+OK 2 65\r\n"
		   "-ERR unknown command\r\n"
		   "+OK bye, 0 messages deleted\r\n");
	ck_assert(log_has("login peer=192.0.2.7 listener=pop3 user=alice "
			  "method=testgood"));
	ck_assert(log_has("user=nobody method=testgood"));
}
END_TEST

START_TEST(test_module_not_offered)
{
	/* a module loaded but not offered on the listener is not asked */
	configure_auth("", NULL, "pass");
	ck_assert_ptr_nonnull(module_find("testgood"));
	transcript("XTEST\r\nCAPA\r\nQUIT\r\n",
		   GREETING "-ERR unknown command\r\n"
		   CAPA_HEAD "USER\r\n" CAPA_TAIL "+OK bye\r\n");
}
END_TEST

/* session_dispatch, line by line, in this process. */

START_TEST(test_dispatch_direct)
{
	int sv[2];
	struct pio *io;
	struct poplar_session *s;
	char line[POP3_CMD_MAX + 1], buf[4096];
	ssize_t n;

	configure("max_bad_commands = 2\n", NULL);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	io = pio_new_fd(sv[1], sv[1]);
	s = session_new(cfg, &cfg->listeners[0], io, "198.51.100.1", "1");
	ck_assert_int_eq(s->state, STATE_AUTHORIZATION);
	ck_assert_uint_eq(s->nmodules, 2);

	strcpy(line, "stat");
	ck_assert(session_dispatch(s, line));
	ck_assert_str_eq(s->reply,
			 "STAT is not valid in the AUTHORIZATION state");
	ck_assert_uint_eq(s->bad_commands, 1);
	strcpy(line, "XTEST");
	ck_assert(session_dispatch(s, line));
	ck_assert_uint_eq(s->bad_commands, 0);
	strcpy(line, "FOO");
	ck_assert(session_dispatch(s, line));
	strcpy(line, "FOO");
	ck_assert(!session_dispatch(s, line));
	ck_assert_str_eq(s->end_reason, "too-many-bad-commands");
	ck_assert_int_eq(pio_flush(io), 0);
	n = recv(sv[0], buf, sizeof(buf) - 1, MSG_DONTWAIT);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_str_eq(buf,
			 "-ERR STAT is not valid in the AUTHORIZATION state\r\n"
			 "+OK test module here\r\n"
			 "-ERR unknown command\r\n"
			 "-ERR unknown command\r\n");
	session_free(&s);
	ck_assert_ptr_null(s);
	pio_free(&io);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_dispatch_quit)
{
	int sv[2];
	struct pio *io;
	struct poplar_session *s;
	char line[16];

	configure("", NULL);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	io = pio_new_fd(sv[1], sv[1]);
	s = session_new(cfg, &cfg->listeners[0], io, NULL, NULL);
	ck_assert_str_eq(s->peer, "local");
	strcpy(line, "  QUIT");
	ck_assert(!session_dispatch(s, line));
	ck_assert_str_eq(s->end_reason, "quit");
	session_free(&s);
	pio_free(&io);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_split_args)
{
	char buf[64];
	char *argv[POP3_ARGS_MAX];

	/* p is what follows the command name: "" or " ARG..." */
	strcpy(buf, "");
	ck_assert_int_eq(session_split_args(buf, argv, 2, false), 0);
	strcpy(buf, " a b c");
	ck_assert_int_eq(session_split_args(buf, argv, 3, false), 3);
	ck_assert_str_eq(argv[0], "a");
	ck_assert_str_eq(argv[1], "b");
	ck_assert_str_eq(argv[2], "c");
	strcpy(buf, " a b c");
	ck_assert_int_eq(session_split_args(buf, argv, 2, false), -1);
	strcpy(buf, " a  b");
	ck_assert_int_eq(session_split_args(buf, argv, 3, false), -1);
	strcpy(buf, " a ");
	ck_assert_int_eq(session_split_args(buf, argv, 3, false), -1);
	strcpy(buf, "  a");
	ck_assert_int_eq(session_split_args(buf, argv, 3, false), -1);
	strcpy(buf, " ");
	ck_assert_int_eq(session_split_args(buf, argv, 3, false), -1);
	strcpy(buf, " pass word  with spaces ");
	ck_assert_int_eq(session_split_args(buf, argv, 1, true), 1);
	ck_assert_str_eq(argv[0], "pass word  with spaces ");
	strcpy(buf, " u pass word");
	ck_assert_int_eq(session_split_args(buf, argv, 2, true), 2);
	ck_assert_str_eq(argv[0], "u");
	ck_assert_str_eq(argv[1], "pass word");
}
END_TEST

static Suite *
session_suite(void)
{
	Suite *s = suite_create("session");
	TCase *tc;

	tc = tcase_create("commands");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_greeting_quit);
	tcase_add_test(tc, test_state_rules_authorization);
	tcase_add_test(tc, test_state_rules_transaction);
	tcase_add_test(tc, test_arity);
	tcase_add_test(tc, test_arity_authorization);
	tcase_add_test(tc, test_argument_spacing);
	tcase_add_test(tc, test_case_insensitive);
	tcase_add_test(tc, test_unknown_and_empty);
	tcase_add_test(tc, test_line_limits);
	tcase_add_test(tc, test_idle_timeout);
	suite_add_tcase(s, tc);

	tc = tcase_create("capa");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_capa_plaintext_always);
	tcase_add_test(tc, test_capa_plaintext_after_tls);
	tcase_add_test(tc, test_capa_plaintext_never);
	tcase_add_test(tc, test_capa_trusted_network);
	tcase_add_test(tc, test_capa_untrusted_network);
	suite_add_tcase(s, tc);

	tc = tcase_create("login");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_auth_failures_look_alike);
	tcase_add_test(tc, test_pass_rules);
	tcase_add_test(tc, test_max_auth_failures);
	tcase_add_test(tc, test_auth_fail_delay);
	tcase_add_test(tc, test_max_bad_commands);
	tcase_add_test(tc, test_bad_commands_consecutive);
	tcase_add_test(tc, test_bad_lines_count);
	suite_add_tcase(s, tc);

	tc = tcase_create("transaction");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_transaction);
	tcase_add_test(tc, test_numbers);
	tcase_add_test(tc, test_dele_rset_quit);
	tcase_add_test(tc, test_dele_quit);
	tcase_add_test(tc, test_dele_without_quit);
	tcase_add_test(tc, test_empty_maildrop);
	suite_add_tcase(s, tc);

	tc = tcase_create("modules");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_module_commands);
	tcase_add_test(tc, test_module_not_offered);
	suite_add_tcase(s, tc);

	tc = tcase_create("dispatch");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_dispatch_direct);
	tcase_add_test(tc, test_dispatch_quit);
	tcase_add_test(tc, test_split_args);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(session_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
