/* check_config.c: unit tests for the poplar.conf parser (core/config.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config.h"
#include "params.h"

#ifndef POPLAR_MODULE_DIR
#define POPLAR_MODULE_DIR "/usr/local/lib/poplar"
#endif

#define NAME "t.conf"

/* The minimal file of the design notes, line numbers on the right. */
static const char minimal[] =
	"[server]\n"                                    /* 1 */
	"hostname = localhost\n"                        /* 2 */
	"log = stderr\n"                                /* 3 */
	"\n"                                            /* 4 */
	"[listen pop3]\n"                               /* 5 */
	"address = 127.0.0.1:1110\n"                    /* 6 */
	"tls = none\n"                                  /* 7 */
	"auth = pass\n"                                 /* 8 */
	"plaintext_auth = always\n"                     /* 9 */
	"\n"                                            /* 10 */
	"[userdb]\n"                                    /* 11 */
	"driver = passwd-file\n"                        /* 12 */
	"file = /path/to/users          # alice:$6$...:1001:1001:/home/alice\n"
	"\n"                                            /* 14 */
	"[maildrop]\n"                                  /* 15 */
	"location = maildir:%h/Maildir\n"               /* 16 */
	"\n"                                            /* 17 */
	"[module pass]\n"                               /* 18 */
	"backend = userdb\n";                           /* 19 */

/* A valid listener and its module: four lines to append to a test text. */
#define LISTEN_OK \
	"[listen pop3]\n" \
	"address = 127.0.0.1:1110\n" \
	"auth = pass\n" \
	"[module pass]\n"

static char err[512];

static struct config *
parse(const char *text)
{
	memset(err, 'x', sizeof(err));
	return config_parse(NAME, text, strlen(text), err, sizeof(err));
}

static struct config *
parse_ok(const char *text)
{
	struct config *cfg = parse(text);

	ck_assert_msg(cfg != NULL, "unexpected error: %s", err);
	ck_assert_str_eq(err, "");
	return cfg;
}

/* Parsing text fails with "t.conf:LINE: ..." containing msg (line 0:
 * "t.conf: ..."). */
static void
bad_len(const char *text, size_t len, unsigned int line, const char *msg)
{
	char prefix[64];
	struct config *cfg;

	memset(err, 'x', sizeof(err));
	cfg = config_parse(NAME, text, len, err, sizeof(err));
	ck_assert_msg(cfg == NULL, "accepted: %s", text);
	if (line > 0)
		snprintf(prefix, sizeof(prefix), NAME ":%u: ", line);
	else
		snprintf(prefix, sizeof(prefix), NAME ": ");
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
		      "expected prefix '%s', got '%s'", prefix, err);
	ck_assert_msg(strstr(err, msg) != NULL,
		      "expected '%s' in '%s'", msg, err);
}

static void
bad(const char *text, unsigned int line, const char *msg)
{
	bad_len(text, strlen(text), line, msg);
}

static char *
print_to_string(const struct config *cfg)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	ck_assert_ptr_nonnull(f);
	config_print(cfg, f);
	ck_assert_int_eq(fclose(f), 0);
	return buf;
}

/* ---- good files --------------------------------------------------------- */

START_TEST(test_minimal)
{
	struct config *cfg = parse_ok(minimal);
	const struct listener_config *l;
	const struct module_config *m;
	const struct sockaddr_in *sin;

	ck_assert_str_eq(cfg->path, NAME);
	ck_assert_str_eq(cfg->hostname, "localhost");
	ck_assert_str_eq(cfg->module_dir, POPLAR_MODULE_DIR);
	ck_assert_uint_eq(cfg->idle_timeout, DEFAULT_IDLE_TIMEOUT);
	ck_assert_uint_eq(cfg->idle_timeout, 600);
	ck_assert_uint_eq(cfg->max_sessions, DEFAULT_MAX_SESSIONS);
	ck_assert_uint_eq(cfg->max_sessions_per_ip,
			  DEFAULT_MAX_SESSIONS_PER_IP);
	ck_assert_uint_eq(cfg->auth_fail_delay, DEFAULT_AUTH_FAIL_DELAY);
	ck_assert_uint_eq(cfg->max_bad_commands, MAX_BAD_COMMANDS);
	ck_assert_uint_eq(cfg->max_auth_failures, MAX_AUTH_FAILURES);
	ck_assert_int_eq(cfg->log, LOG_TARGET_STDERR);
	ck_assert_str_eq(cfg->log_facility, "mail");

	ck_assert_uint_eq(cfg->nlisteners, 1);
	l = &cfg->listeners[0];
	ck_assert_str_eq(l->name, "pop3");
	ck_assert_str_eq(l->file, NAME);
	ck_assert_uint_eq(l->line, 5);
	ck_assert_uint_eq(l->naddresses, 1);
	ck_assert_str_eq(l->addresses[0].text, "127.0.0.1:1110");
	sin = (const struct sockaddr_in *)&l->addresses[0].ss;
	ck_assert_int_eq(sin->sin_family, AF_INET);
	ck_assert_uint_eq(ntohs(sin->sin_port), 1110);
	ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	ck_assert_uint_eq(l->addresses[0].sslen, sizeof(struct sockaddr_in));
	ck_assert_int_eq(l->tls, TLS_MODE_NONE);
	ck_assert_int_eq(l->protocol, PROTOCOL_POP3);
	ck_assert_uint_eq(l->nauth, 1);
	ck_assert_str_eq(l->auth[0], "pass");
	ck_assert_int_eq(l->plaintext_auth, PLAINTEXT_ALWAYS);
	ck_assert_ptr_eq(config_listener(cfg, "pop3"), l);
	ck_assert_ptr_null(config_listener(cfg, "pop3s"));

	ck_assert_ptr_null(cfg->tls_certificate);
	ck_assert_ptr_null(cfg->tls_key);
	ck_assert_ptr_null(cfg->tls_client_ca);
	ck_assert_ptr_null(cfg->tls_min_version);
	ck_assert_ptr_null(cfg->tls_ciphers);
	ck_assert_ptr_null(cfg->tls_ciphersuites);

	ck_assert_int_eq(cfg->userdb_driver, USERDB_PASSWD_FILE);
	/* The comment after the value is not part of it. */
	ck_assert_str_eq(cfg->userdb_file, "/path/to/users");
	ck_assert_int_eq(cfg->userdb_default_uid, -1);
	ck_assert_int_eq(cfg->userdb_default_gid, -1);
	/* Virtual users: no group look-up unless asked for. */
	ck_assert_int_eq(cfg->userdb_groups, 0);

	ck_assert_str_eq(cfg->maildrop_location, "maildir:%h/Maildir");
	ck_assert_str_eq(cfg->maildrop_cache, "yes");
	ck_assert_ptr_null(cfg->maildrop_state_dir);
	ck_assert_uint_eq(cfg->maildrop_stale_age, 300);
	ck_assert_uint_eq(cfg->maildrop_lock_timeout, 30);
	ck_assert_ptr_null(cfg->maildrop_mail_group);
	ck_assert_int_eq(cfg->maildrop_mail_gid, -1);

	ck_assert_uint_eq(cfg->nmodules, 1);
	m = config_module(cfg, "pass");
	ck_assert_ptr_eq(m, &cfg->modules[0]);
	ck_assert_ptr_null(config_module(cfg, "apop"));
	ck_assert_str_eq(m->name, "pass");
	ck_assert_str_eq(m->file, NAME);
	ck_assert_uint_eq(m->line, 18);
	ck_assert_uint_eq(m->nitems, 1);
	ck_assert_str_eq(m->items[0].key, "backend");
	ck_assert_str_eq(m->items[0].value, "userdb");
	ck_assert_str_eq(m->items[0].file, NAME);
	ck_assert_uint_eq(m->items[0].line, 19);

	config_free(&cfg);
	ck_assert_ptr_null(cfg);
	config_free(&cfg);      /* NULL is fine */
}
END_TEST

START_TEST(test_defaults)
{
	struct config *cfg = parse_ok(LISTEN_OK);
	char host[256];

	/* No [server]: the host name comes from the system. */
	ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	if (strchr(host, ' ') == NULL && host[0] != '\0')
		ck_assert_str_eq(cfg->hostname, host);
	ck_assert_str_eq(cfg->module_dir, POPLAR_MODULE_DIR);
	ck_assert_int_eq(cfg->log, LOG_TARGET_SYSLOG);
	ck_assert_str_eq(cfg->log_facility, "mail");
	ck_assert_int_eq(cfg->listeners[0].tls, TLS_MODE_NONE);
	ck_assert_int_eq(cfg->listeners[0].protocol, PROTOCOL_POP3);
	ck_assert_int_eq(cfg->listeners[0].plaintext_auth,
			 PLAINTEXT_AFTER_TLS);
	ck_assert_int_eq(cfg->userdb_driver, USERDB_SYSTEM);
	ck_assert_ptr_null(cfg->userdb_file);
	/* System users: their groups from the group database. */
	ck_assert_int_eq(cfg->userdb_groups, 1);
	ck_assert_str_eq(cfg->maildrop_location, "maildir:%h/Maildir");
	ck_assert_str_eq(cfg->maildrop_cache, "yes");
	ck_assert_uint_eq(cfg->modules[0].nitems, 0);
	config_free(&cfg);
}
END_TEST

START_TEST(test_all_keys)
{
	struct config *cfg = parse_ok(
		"[server]\n"
		"hostname = pop.example.org\n"
		"module_dir = /opt/poplar/modules\n"
		"idle_timeout = 86400\n"
		"max_sessions = 1000000\n"
		"max_sessions_per_ip = 1\n"
		"auth_fail_delay = 0\n"
		"max_bad_commands = 1000\n"
		"max_auth_failures = 100\n"
		"log = syslog\n"
		"log_facility = local7\n"
		"[listen k]\n"
		"address = *:1109\n"
		"protocol = kpop\n"
		"auth = kpop pass\n"
		"plaintext_auth = never\n"
		"[tls]\n"
		"certificate = /etc/ssl/pop.pem\n"
		"key = /etc/ssl/pop.key\n"
		"client_ca = /etc/ssl/ca.pem\n"
		"min_version = TLSv1.2\n"
		"ciphers = HIGH:!aNULL\n"
		"ciphersuites = TLS_AES_256_GCM_SHA384\n"
		"[userdb]\n"
		"driver = system\n"
		"default_uid = 4294967294\n"
		"default_gid = 0\n"
		"supplementary_groups = no\n"
		"[maildrop]\n"
		"location = mbox:/var/mail/%u\n"
		"size_cache = no\n"
		"[module kpop]\n"
		"[module pass]\n");
	const struct sockaddr_in *sin;

	ck_assert_str_eq(cfg->hostname, "pop.example.org");
	ck_assert_str_eq(cfg->module_dir, "/opt/poplar/modules");
	ck_assert_uint_eq(cfg->idle_timeout, 86400);
	ck_assert_uint_eq(cfg->max_sessions, 1000000);
	ck_assert_uint_eq(cfg->max_sessions_per_ip, 1);
	ck_assert_uint_eq(cfg->auth_fail_delay, 0);
	ck_assert_uint_eq(cfg->max_bad_commands, 1000);
	ck_assert_uint_eq(cfg->max_auth_failures, 100);
	ck_assert_int_eq(cfg->log, LOG_TARGET_SYSLOG);
	ck_assert_str_eq(cfg->log_facility, "local7");
	sin = (const struct sockaddr_in *)&cfg->listeners[0].addresses[0].ss;
	ck_assert_int_eq(sin->sin_family, AF_INET);
	ck_assert_uint_eq(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	ck_assert_uint_eq(ntohs(sin->sin_port), 1109);
	ck_assert_int_eq(cfg->listeners[0].protocol, PROTOCOL_KPOP);
	ck_assert_uint_eq(cfg->listeners[0].nauth, 2);
	ck_assert_str_eq(cfg->listeners[0].auth[0], "kpop");
	ck_assert_str_eq(cfg->listeners[0].auth[1], "pass");
	ck_assert_int_eq(cfg->listeners[0].plaintext_auth, PLAINTEXT_NEVER);
	ck_assert_str_eq(cfg->tls_certificate, "/etc/ssl/pop.pem");
	ck_assert_str_eq(cfg->tls_key, "/etc/ssl/pop.key");
	ck_assert_str_eq(cfg->tls_client_ca, "/etc/ssl/ca.pem");
	ck_assert_str_eq(cfg->tls_min_version, "TLSv1.2");
	ck_assert_str_eq(cfg->tls_ciphers, "HIGH:!aNULL");
	ck_assert_str_eq(cfg->tls_ciphersuites, "TLS_AES_256_GCM_SHA384");
	ck_assert_int_eq(cfg->userdb_driver, USERDB_SYSTEM);
	ck_assert_int_eq(cfg->userdb_default_uid, 4294967294L);
	ck_assert_int_eq(cfg->userdb_default_gid, 0);
	ck_assert_int_eq(cfg->userdb_groups, 0);
	ck_assert_str_eq(cfg->maildrop_location, "mbox:/var/mail/%u");
	ck_assert_str_eq(cfg->maildrop_cache, "no");
	config_free(&cfg);
}
END_TEST

START_TEST(test_comments_whitespace)
{
	struct config *cfg = parse_ok(
		"# a comment\n"
		"; another comment\n"
		"   # indented comment\n"
		"\t\n"
		"  [ server ]  # trailing comment\n"
		"\thostname\t=\tmail-1.example.org\t \r\n"
		"   idle_timeout=30\r\n"
		"[listen  pop3 ]\n"
		"address = 127.0.0.1:1110\n"
		"auth =   pass\t  apop  \n"
		"[module pass]\n"
		"  greeting  =  a value  with  spaces  \n"
		"tag = a#b\n"
		"empty =\n"
		"[module apop]\n"
		"secrets = /etc/poplar/apop.secrets # where the secrets are");
	const struct module_config *m;

	ck_assert_str_eq(cfg->hostname, "mail-1.example.org");
	ck_assert_uint_eq(cfg->idle_timeout, 30);
	ck_assert_str_eq(cfg->listeners[0].name, "pop3");
	ck_assert_uint_eq(cfg->listeners[0].nauth, 2);
	ck_assert_str_eq(cfg->listeners[0].auth[0], "pass");
	ck_assert_str_eq(cfg->listeners[0].auth[1], "apop");
	m = config_module(cfg, "pass");
	ck_assert_uint_eq(m->nitems, 3);
	ck_assert_str_eq(m->items[0].key, "greeting");
	ck_assert_str_eq(m->items[0].value, "a value  with  spaces");
	ck_assert_uint_eq(m->items[0].line, 12);
	ck_assert_str_eq(m->items[1].value, "a#b");
	ck_assert_str_eq(m->items[2].key, "empty");
	ck_assert_str_eq(m->items[2].value, "");
	m = config_module(cfg, "apop");
	ck_assert_uint_eq(m->nitems, 1);
	ck_assert_str_eq(m->items[0].value, "/etc/poplar/apop.secrets");
	ck_assert_uint_eq(m->items[0].line, 16);
	config_free(&cfg);
}
END_TEST

START_TEST(test_module_items)
{
	struct config *cfg = parse_ok(
		LISTEN_OK
		"option = one\n"
		"other = x\n"
		"option = two\n"
		"[module unused]\n"
		"k = v\n");
	const struct module_config *m = config_module(cfg, "pass");

	ck_assert_uint_eq(m->nitems, 3);
	ck_assert_str_eq(m->items[0].key, "option");
	ck_assert_str_eq(m->items[0].value, "one");
	ck_assert_uint_eq(m->items[0].line, 5);
	ck_assert_str_eq(m->items[1].key, "other");
	ck_assert_str_eq(m->items[2].key, "option");
	ck_assert_str_eq(m->items[2].value, "two");
	ck_assert_uint_eq(m->items[2].line, 7);
	ck_assert_uint_eq(cfg->nmodules, 2);
	ck_assert_str_eq(cfg->modules[1].name, "unused");
	ck_assert_uint_eq(cfg->modules[1].line, 8);
	config_free(&cfg);
}
END_TEST

START_TEST(test_many_items)
{
	/* Enough items and strings to grow every array several times. */
	size_t n = 5000, len = 0, size = n * 32 + 256;
	char *text = malloc(size);
	struct config *cfg;

	ck_assert_ptr_nonnull(text);
	len += (size_t)snprintf(text + len, size - len, "%s", LISTEN_OK);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, size - len,
					"k%zu = v%zu\n", i, i);
	cfg = parse_ok(text);
	ck_assert_uint_eq(cfg->modules[0].nitems, n);
	ck_assert_str_eq(cfg->modules[0].items[n - 1].key, "k4999");
	ck_assert_str_eq(cfg->modules[0].items[n - 1].value, "v4999");
	ck_assert_uint_eq(cfg->modules[0].items[n - 1].line, n + 4);
	config_free(&cfg);
	free(text);
}
END_TEST

/* ---- addresses ------------------------------------------------------------ */

START_TEST(test_ipv6)
{
	struct config *cfg = parse_ok(
		"[listen six]\n"
		"address = [::1]:110\n"
		"address = [::]:995\n"
		"address = [2001:db8::5]:65535\n"
		"address = 0.0.0.0:995\n"
		"auth = pass\n"
		"[module pass]\n");
	const struct listener_config *l = config_listener(cfg, "six");
	const struct sockaddr_in6 *sin6;
	struct in6_addr a;

	ck_assert_uint_eq(l->naddresses, 4);
	sin6 = (const struct sockaddr_in6 *)&l->addresses[0].ss;
	ck_assert_int_eq(sin6->sin6_family, AF_INET6);
	ck_assert_uint_eq(ntohs(sin6->sin6_port), 110);
	ck_assert(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	ck_assert_uint_eq(l->addresses[0].sslen, sizeof(struct sockaddr_in6));
	ck_assert_str_eq(l->addresses[0].text, "[::1]:110");
	sin6 = (const struct sockaddr_in6 *)&l->addresses[1].ss;
	ck_assert(IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr));
	ck_assert_uint_eq(ntohs(sin6->sin6_port), 995);
	sin6 = (const struct sockaddr_in6 *)&l->addresses[2].ss;
	ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::5", &a), 1);
	ck_assert(IN6_ARE_ADDR_EQUAL(&sin6->sin6_addr, &a));
	ck_assert_uint_eq(ntohs(sin6->sin6_port), 65535);
	ck_assert_int_eq(l->addresses[3].ss.ss_family, AF_INET);
	config_free(&cfg);
}
END_TEST

START_TEST(test_bad_addresses)
{
	static const char *const addrs[] = {
		"127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:110x", "127.0.0.1:-1", "127.0.0.1:+110",
		"127.0.0.1: 110", "localhost:110", "::1:110", "[::1]",
		"[::1]110", "[::1:110", "[]:110", "[fe80::zz]:110",
		"[127.0.0.1]:110", "1.2.3:110", "1.2.3.4.5:110", "[*]:110",
		":110", "*:99999999999999999999999",
	};
	char text[256];

	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		snprintf(text, sizeof(text),
			 "[listen a]\n\naddress = %s\n" "auth = pass\n"
			 "[module pass]\n", addrs[i]);
		bad(text, 3, "invalid address");
	}
}
END_TEST

START_TEST(test_repeated_address)
{
	struct config *cfg = parse_ok(
		"[listen a]\n"
		"address = 127.0.0.1:110\n"
		"address = 127.0.0.2:110\n"
		"address = 127.0.0.1:111\n"
		"auth = pass\n"
		"[listen b]\n"
		"address = 127.0.0.3:110\n"
		"auth = pass\n"
		"[module pass]\n");

	ck_assert_uint_eq(cfg->listeners[0].naddresses, 3);
	ck_assert_str_eq(cfg->listeners[0].addresses[2].text,
			 "127.0.0.1:111");
	ck_assert_uint_eq(cfg->listeners[1].naddresses, 1);
	config_free(&cfg);
}
END_TEST

START_TEST(test_duplicate_address)
{
	bad("[listen a]\n"
	    "address = 127.0.0.1:110\n"
	    "address = 127.0.0.1:110\n", 3,
	    "duplicate address '127.0.0.1:110' (also in listener 'a')");
	bad("[listen a]\n"
	    "address = 127.0.0.1:110\n"
	    "auth = pass\n"
	    "[listen b]\n"
	    "address = 127.0.0.2:110\n"
	    "address = 127.0.0.1:110\n", 6,
	    "duplicate address '127.0.0.1:110' (also in listener 'a')");
	/* Same sockaddr, written differently. */
	bad("[listen a]\n"
	    "address = *:110\n"
	    "auth = pass\n"
	    "[listen b]\n"
	    "address = 0.0.0.0:110\n", 5,
	    "duplicate address '0.0.0.0:110' (also in listener 'a')");
	bad("[listen a]\n"
	    "address = [::1]:110\n"
	    "address = [0:0:0:0:0:0:0:1]:110\n", 3,
	    "duplicate address");
}
END_TEST

START_TEST(test_too_many_addresses)
{
	char text[2048];
	size_t len = 0;

	len += (size_t)snprintf(text + len, sizeof(text) - len,
				"[listen a]\n");
	for (int i = 1; i <= CONFIG_MAX_ADDRESSES + 1; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
					"address = 127.0.0.1:%d\n", i);
	bad(text, CONFIG_MAX_ADDRESSES + 2, "too many addresses");
}
END_TEST

START_TEST(test_too_many_listeners)
{
	char text[8192];
	size_t len = 0;

	for (int i = 1; i <= CONFIG_MAX_LISTENERS + 1; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
					"[listen l%d]\naddress = 127.0.0.1:%d\n"
					"auth = pass\n", i, i);
	bad(text, CONFIG_MAX_LISTENERS * 3 + 1, "too many listeners");
}
END_TEST

/* ---- errors ---------------------------------------------------------------- */

START_TEST(test_unknown_section)
{
	bad("[server]\n"
	    "[bogus]\n", 2, "unknown section [bogus]");
	bad("\n[bogus name]\n", 2, "unknown section [bogus]");
	bad("[]\n", 1, "empty section name");
	bad("[server\n", 1, "malformed section header");
	bad("[server] x\n", 1, "malformed section header");
	bad("[server x]\n", 1, "section [server] takes no name");
}
END_TEST

START_TEST(test_unknown_key)
{
	bad("[server]\n"
	    "hostname = a\n"
	    "colour = blue\n", 3, "unknown key 'colour' in [server]");
	bad("[listen a]\n"
	    "port = 110\n", 2, "unknown key 'port' in [listen a]");
	bad("[userdb]\nfiles = x\n", 2, "unknown key 'files' in [userdb]");
	bad("[maildrop]\nlocking = x\n", 2,
	    "unknown key 'locking' in [maildrop]");
	bad("[tls]\ncert = x\n", 2, "unknown key 'cert' in [tls]");
}
END_TEST

START_TEST(test_bad_lines)
{
	bad("hostname = x\n", 1, "outside of any section");
	bad("[server]\nhostname\n", 2, "expected 'key = value'");
	bad("[server]\n = x\n", 2, "missing key");
	bad("[server]\nhost name = x\n", 2, "invalid key");
	bad("[server]\nhostname = \n", 2, "missing value for 'hostname'");
	bad("[server]\nhostname = a b\n", 2, "invalid hostname");
	bad("[server]\n\nhostname = a\033b\n", 3, "control character 0x1b");
	bad("[server]\nlog = stderr\rsyslog\n", 2, "control character 0x0d");
}
END_TEST

START_TEST(test_bad_numbers)
{
	static const char *const values[] = {
		"-5", "+5", "5x", "x5", "0x10", " 5 5", "5.0", "4294967297",
		"18446744073709551617", "0", "86401",
	};
	char text[256];

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		snprintf(text, sizeof(text),
			 "[server]\nlog = stderr\nidle_timeout = %s\n",
			 values[i]);
		bad(text, 3, "invalid idle_timeout");
	}
	bad("[server]\n\nidle_timeout =\n", 3, "missing value");
	bad("[server]\nidle_timeout = -1\n", 2,
	    "expected a number from 1 to 86400");
	bad("[server]\nmax_sessions = 0\n", 2, "invalid max_sessions");
	bad("[server]\nmax_sessions = 1000001\n", 2, "invalid max_sessions");
	bad("[server]\nmax_sessions_per_ip = 0\n", 2,
	    "invalid max_sessions_per_ip");
	bad("[server]\nauth_fail_delay = 61\n", 2, "invalid auth_fail_delay");
	bad("[server]\nmax_bad_commands = 1001\n", 2,
	    "invalid max_bad_commands");
	bad("[server]\nmax_auth_failures = 101\n", 2,
	    "invalid max_auth_failures");
	bad("[userdb]\ndefault_uid = 4294967295\n", 2, "invalid default_uid");
	bad("[userdb]\ndefault_gid = -1\n", 2, "invalid default_gid");
	bad("[userdb]\ndefault_gid = 4294967297\n", 2, "invalid default_gid");
	bad("[userdb]\nsupplementary_groups = maybe\n", 2,
	    "invalid supplementary_groups 'maybe': expected no or yes");
}
END_TEST

START_TEST(test_bad_enums)
{
	bad("[server]\nlog = file\n", 2,
	    "invalid log 'file': expected syslog or stderr");
	bad("[server]\nlog = STDERR\n", 2, "invalid log");
	bad("[server]\nlog_facility = user\n", 2, "invalid log_facility");
	bad("[listen a]\ntls = maybe\n", 2,
	    "invalid tls 'maybe': expected none, starttls or implicit");
	bad("[listen a]\nprotocol = imap\n", 2, "invalid protocol");
	bad("[listen a]\nplaintext_auth = sometimes\n", 2,
	    "invalid plaintext_auth");
	bad("[userdb]\ndriver = ldap\n", 2, "invalid driver");
	bad("[maildrop]\nsize_cache = true\n", 2, "invalid size_cache");
	bad("[maildrop]\n\nlocation = nosuchdriver:/x\n", 3,
	    "invalid location");
}
END_TEST

START_TEST(test_maildrop_mbox_keys)
{
	struct config *cfg = parse_ok(
		"[server]\nlog = stderr\n"
		"[listen a]\naddress = 127.0.0.1:1110\nauth = pass\n"
		"[maildrop]\nlocation = mbox:/var/mail/%u\n"
		"state_dir = %h/.poplar\n"
		"dotlock_stale_age = 0\nlock_timeout = 600\n"
		"mail_group = 0\n"
		"[module pass]\n");
	char *out = print_to_string(cfg);

	ck_assert_str_eq(cfg->maildrop_state_dir, "%h/.poplar");
	ck_assert_uint_eq(cfg->maildrop_stale_age, 0);
	ck_assert_uint_eq(cfg->maildrop_lock_timeout, 600);
	/* A name or a number; gid 0 is "root" on every system. */
	ck_assert_int_eq(cfg->maildrop_mail_gid, 0);
	ck_assert_ptr_nonnull(strstr(out, "\n[maildrop]\nlocation = "
		"mbox:/var/mail/%u\nsize_cache = yes\nstate_dir = %h/.poplar\n"
		"dotlock_stale_age = 0\nlock_timeout = 600\nmail_group = 0\n"));
	free(out);
	config_free(&cfg);

	cfg = parse_ok("[server]\nlog = stderr\n"
		       "[listen a]\naddress = 127.0.0.1:1110\nauth = pass\n"
		       "[maildrop]\nmail_group = root\n[module pass]\n");
	ck_assert_int_eq(cfg->maildrop_mail_gid, 0);
	ck_assert_str_eq(cfg->maildrop_mail_group, "root");
	out = print_to_string(cfg);
	ck_assert_ptr_nonnull(strstr(out, "dotlock_stale_age = 300\n"
				     "lock_timeout = 30\nmail_group = root\n"));
	free(out);
	config_free(&cfg);

	bad("[maildrop]\n\nmail_group = no-such-group-here\n", 3,
	    "invalid mail_group 'no-such-group-here': no such group");
	bad("[maildrop]\nmail_group = -1\n", 2, "invalid mail_group");
	bad("[maildrop]\ndotlock_stale_age = 86401\n", 2,
	    "invalid dotlock_stale_age '86401': expected a number from 0 "
	    "to 86400");
	bad("[maildrop]\ndotlock_stale_age = -1\n", 2,
	    "invalid dotlock_stale_age");
	bad("[maildrop]\nlock_timeout = 601\n", 2, "invalid lock_timeout");
	bad("[maildrop]\nlock_timeout = 1x\n", 2, "invalid lock_timeout");
	bad("[maildrop]\nstate_dir = relative/dir\n", 2,
	    "invalid state_dir 'relative/dir': maildrop location must be "
	    "an absolute path");
	bad("[maildrop]\nstate_dir = /x/%q\n", 2, "invalid state_dir");
	bad("[maildrop]\nlock_timeout = 1\nlock_timeout = 2\n", 3,
	    "duplicate");
}
END_TEST

START_TEST(test_tls_settings)
{
	struct config *cfg;

	/* A TLS listener needs a certificate and key: error at "tls =". */
	bad("[listen a]\naddress = 127.0.0.1:110\ntls = starttls\n"
	    "auth = pass\n[module pass]\n", 3,
	    "listener 'a' has tls = starttls but [tls] has no certificate");
	bad("[listen a]\naddress = 127.0.0.1:110\nauth = pass\n"
	    "tls = implicit\n[tls]\ncertificate = /c.pem\n[module pass]\n",
	    4, "listener 'a' has tls = implicit but [tls] has no");
	bad("[tls]\nmin_version = TLSv1.1\n", 2,
	    "invalid min_version 'TLSv1.1': expected TLSv1.2 or TLSv1.3");
	cfg = parse_ok("[listen a]\naddress = 127.0.0.1:110\ntls = starttls\n"
		       "auth = pass\n[tls]\ncertificate = /c.pem\n"
		       "key = /k.pem\nmin_version = TLSv1.3\n[module pass]\n");
	ck_assert_int_eq(cfg->listeners[0].tls, TLS_MODE_STARTTLS);
	ck_assert_str_eq(cfg->tls_min_version, "TLSv1.3");
	config_free(&cfg);
}
END_TEST

START_TEST(test_trusted_networks)
{
	struct config *cfg;
	const struct listener_config *l;

	cfg = parse_ok("[listen a]\naddress = 127.0.0.1:110\nauth = pass\n"
		       "trusted_networks = 127.0.0.0/8 ::1 10.1.0.0/16\n"
		       "[module pass]\n");
	l = &cfg->listeners[0];
	ck_assert_uint_eq(l->ntrusted, 3);
	ck_assert(network_match(l->trusted, l->ntrusted, "127.0.0.1"));
	ck_assert(network_match(l->trusted, l->ntrusted, "127.255.0.9"));
	ck_assert(network_match(l->trusted, l->ntrusted, "::1"));
	ck_assert(network_match(l->trusted, l->ntrusted, "10.1.200.3"));
	ck_assert(!network_match(l->trusted, l->ntrusted, "10.2.0.1"));
	ck_assert(!network_match(l->trusted, l->ntrusted, "128.0.0.1"));
	ck_assert(!network_match(l->trusted, l->ntrusted, "::2"));
	ck_assert(!network_match(l->trusted, l->ntrusted, "local"));
	config_free(&cfg);
	bad("[listen a]\ntrusted_networks = 10.1.2.3/8\n", 2,
	    "invalid network '10.1.2.3/8'");
	bad("[listen a]\ntrusted_networks = 10.0.0.0/33\n", 2,
	    "invalid network");
	bad("[listen a]\ntrusted_networks = localhost\n", 2,
	    "invalid network");
}
END_TEST

START_TEST(test_duplicate_keys_sections)
{
	bad("[server]\n"
	    "idle_timeout = 10\n"
	    "log = stderr\n"
	    "idle_timeout = 10\n", 4,
	    "duplicate key 'idle_timeout' (first at line 2)");
	bad("[listen a]\nauth = pass\ntls = none\nauth = pass\n", 4,
	    "duplicate key 'auth' (first at line 2)");
	bad("[userdb]\ndriver = system\ndriver = system\n", 3,
	    "duplicate key 'driver'");
	bad("[maildrop]\nsize_cache = yes\nsize_cache = no\n", 3,
	    "duplicate key 'size_cache'");
	bad("[tls]\nkey = a\nkey = b\n", 3, "duplicate key 'key'");
	bad("[server]\n[userdb]\n[server]\n", 3,
	    "duplicate section [server] (first at line 1)");
	bad("[userdb]\n[userdb]\n", 2, "duplicate section [userdb]");
	bad("[maildrop]\n[maildrop]\n", 2, "duplicate section [maildrop]");
	bad("[tls]\n[tls]\n", 2, "duplicate section [tls]");
	bad("[module m]\n\n[module m]\n", 3,
	    "duplicate module 'm' (first defined at t.conf:1)");
}
END_TEST

START_TEST(test_listener_names)
{
	bad("[server]\n[listen]\n", 2, "section [listen] needs a name");
	bad("[listen a b]\n", 1, "invalid listener name 'a b'");
	bad("[listen a.b]\n", 1, "invalid listener name");
	bad("[listen 0123456789012345678901234567890123]\n", 1,
	    "invalid listener name");
	bad("[module]\n", 1, "section [module] needs a name");
	bad("[module a/b]\n", 1, "invalid module name");

	struct config *cfg = parse_ok(
		"[listen Aa-_0123456789012345678901234567]\n"
		"address = 127.0.0.1:110\n"
		"auth = pass\n"
		"[module pass]\n");
	ck_assert_uint_eq(strlen(cfg->listeners[0].name), 32);
	config_free(&cfg);
}
END_TEST

START_TEST(test_duplicate_listener)
{
	bad("[listen pop3]\n"
	    "address = 127.0.0.1:110\n"
	    "auth = pass\n"
	    "\n"
	    "[listen pop3]\n", 5,
	    "duplicate listener 'pop3' (first defined at t.conf:1)");
}
END_TEST

START_TEST(test_listener_without_address)
{
	/* Reported at the header, when the section ends. */
	bad("[server]\n"
	    "[listen a]\n"
	    "auth = pass\n"
	    "[module pass]\n", 2, "listener 'a' has no address");
	bad("[listen a]\n"
	    "auth = pass\n", 1, "listener 'a' has no address");
	bad("[module pass]\n"
	    "[listen a]\n"
	    "address = 127.0.0.1:110\n", 2, "listener 'a' has no auth");
	bad("[listen a]\naddress = 127.0.0.1:110\nauth =  \n", 3,
	    "missing value for 'auth'");
	bad("[listen a]\nauth = pass pass\n", 2, "listed twice");
	bad("[listen a]\nauth = pass a/b\n", 2, "invalid module name 'a/b'");
}
END_TEST

START_TEST(test_missing_module)
{
	bad("[listen a]\n"
	    "address = 127.0.0.1:110\n"
	    "auth = pass\n"
	    "[listen b]\n"
	    "address = 127.0.0.1:111\n"
	    "\n"
	    "auth = pass apop\n"
	    "[module pass]\n", 7,
	    "listener 'b' offers 'apop' but there is no [module apop] "
	    "section");
}
END_TEST

START_TEST(test_no_listener)
{
	bad("", 0, "no [listen NAME] section");
	bad("[server]\nhostname = a\n", 0, "no [listen NAME] section");
	ck_assert_str_eq(err, NAME ": no [listen NAME] section");
}
END_TEST

START_TEST(test_passwd_file_without_file)
{
	bad(LISTEN_OK
	    "[userdb]\n"
	    "default_uid = 1000\n"
	    "driver = passwd-file\n"
	    "default_gid = 1000\n", 7, "driver = passwd-file needs file");
}
END_TEST

START_TEST(test_line_too_long)
{
	size_t n = sizeof(LISTEN_OK) + CONFIG_LINE_MAX + 8;
	char *text = malloc(n);
	struct config *cfg;
	size_t len;

	ck_assert_ptr_nonnull(text);
	/* A line of CONFIG_LINE_MAX - 1 bytes is fine ... */
	len = (size_t)snprintf(text, n, "%s#", LISTEN_OK);
	memset(text + len, 'c', CONFIG_LINE_MAX - 2);
	len += CONFIG_LINE_MAX - 2;
	memcpy(text + len, "\n", 2);
	cfg = parse_ok(text);
	config_free(&cfg);
	/* ... one more byte is not, newline or not. */
	text[len] = 'c';
	text[len + 1] = '\0';
	bad(text, 5, "line too long");
	memcpy(text + len + 1, "\n", 2);
	bad(text, 5, "line too long");
	free(text);
}
END_TEST

START_TEST(test_nul_byte)
{
	static const char text[] = "[server]\nhostname = a\nlog = std\0err\n";

	bad_len(text, sizeof(text) - 1, 3, "NUL byte");
}
END_TEST

START_TEST(test_file_too_large)
{
	size_t n = CONFIG_FILE_MAX + 1;
	char *text = malloc(n);

	ck_assert_ptr_nonnull(text);
	memset(text, '\n', n);
	bad_len(text, n, 0, "larger than");
	free(text);
}
END_TEST

/* ---- config_load ------------------------------------------------------------ */

static char tmpdir[64];

static void
tmpdir_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_config.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
tmpdir_teardown(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/poplar.conf", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/big.conf", tmpdir);
	unlink(path);
	rmdir(tmpdir);
}

START_TEST(test_load)
{
	char path[128], expect[256];
	struct config *cfg;
	FILE *f;

	snprintf(path, sizeof(path), "%s/poplar.conf", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(minimal, f);
	ck_assert_int_eq(fclose(f), 0);
	cfg = config_load(path, err, sizeof(err));
	ck_assert_msg(cfg != NULL, "%s", err);
	ck_assert_str_eq(cfg->path, path);
	ck_assert_str_eq(cfg->listeners[0].file, path);
	ck_assert_str_eq(cfg->modules[0].items[0].file, path);
	config_free(&cfg);

	/* Errors name the file as given. */
	f = fopen(path, "a");
	ck_assert_ptr_nonnull(f);
	fputs("[server]\n", f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_ptr_null(config_load(path, err, sizeof(err)));
	snprintf(expect, sizeof(expect),
		 "%s:20: duplicate section [server] (first at line 1)", path);
	ck_assert_str_eq(err, expect);
}
END_TEST

START_TEST(test_load_unreadable)
{
	char path[128], expect[256];

	snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
	ck_assert_ptr_null(config_load(path, err, sizeof(err)));
	snprintf(expect, sizeof(expect), "%s: cannot read: %s", path,
		 strerror(ENOENT));
	ck_assert_str_eq(err, expect);

	ck_assert_ptr_null(config_load(tmpdir, err, sizeof(err)));
	snprintf(expect, sizeof(expect), "%s: cannot read: %s", tmpdir,
		 strerror(EISDIR));
	ck_assert_str_eq(err, expect);

	/* A tiny error buffer is cut, not overrun. */
	memset(err, 'x', sizeof(err));
	ck_assert_ptr_null(config_load(path, err, 8));
	ck_assert_uint_eq(strlen(err), 7);
	ck_assert_int_eq(err[8], 'x');
	ck_assert_ptr_null(config_load(path, NULL, 0));
}
END_TEST

START_TEST(test_load_too_large)
{
	char path[128], expect[256];
	int fd;

	/* Sparse: CONFIG_FILE_MAX + 1 NUL bytes on no disk space. */
	snprintf(path, sizeof(path), "%s/big.conf", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, CONFIG_FILE_MAX + 1), 0);
	close(fd);
	ck_assert_ptr_null(config_load(path, err, sizeof(err)));
	snprintf(expect, sizeof(expect), "%s: larger than %d bytes", path,
		 CONFIG_FILE_MAX);
	ck_assert_str_eq(err, expect);
}
END_TEST

/* ---- config_print ------------------------------------------------------------ */

static const char rich[] =
	"[server]\n"
	"hostname = pop.example.org\n"
	"idle_timeout = 900\n"
	"auth_fail_delay = 0\n"
	"log_facility = local3\n"
	"[listen pop3]\n"
	"address = 127.0.0.1:110\n"
	"address = [::1]:110\n"
	"auth = pass apop\n"
	"[listen kpop]\n"
	"address = *:1109\n"
	"protocol = kpop\n"
	"auth = kpop\n"
	"plaintext_auth = never\n"
	"[tls]\n"
	"certificate = /etc/ssl/pop.pem\n"
	"ciphers = HIGH:!aNULL\n"
	"[userdb]\n"
	"driver = passwd-file\n"
	"file = /etc/poplar/users\n"
	"default_uid = 5000\n"
	"default_gid = 5001\n"
	"[maildrop]\n"
	"location = mbox:/var/mail/%u\n"
	"size_cache = no\n"
	"[module pass]\n"
	"backend = userdb\n"
	"[module apop]\n"
	"secrets = /etc/poplar/apop secrets\n"
	"opt = a\n"
	"opt = b=c\n"
	"empty =\n"
	"[module kpop]\n";

static void
round_trip(const char *text)
{
	struct config *a = parse_ok(text), *b;
	char *pa = print_to_string(a), *pb;

	b = parse(pa);
	ck_assert_msg(b != NULL, "printed config rejected: %s\n%s", err, pa);
	pb = print_to_string(b);
	ck_assert_str_eq(pa, pb);
	config_free(&a);
	config_free(&b);
	free(pa);
	free(pb);
}

START_TEST(test_print_round_trip)
{
	round_trip(minimal);
	round_trip(rich);
	round_trip(LISTEN_OK);
}
END_TEST

START_TEST(test_print_content)
{
	struct config *cfg = parse_ok(rich);
	char *out = print_to_string(cfg);
	char host[320];

	ck_assert_msg(strncmp(out, "[server]\nhostname = pop.example.org\n",
			      36) == 0, "%s", out);
	snprintf(host, sizeof(host), "module_dir = %s\n", POPLAR_MODULE_DIR);
	ck_assert_ptr_nonnull(strstr(out, host));
	ck_assert_ptr_nonnull(strstr(out, "idle_timeout = 900\n"));
	ck_assert_ptr_nonnull(strstr(out, "max_sessions = 1000\n"));
	ck_assert_ptr_nonnull(strstr(out, "log = syslog\n"));
	ck_assert_ptr_nonnull(strstr(out,
		"\n[listen pop3]\naddress = 127.0.0.1:110\n"
		"address = [::1]:110\ntls = none\nprotocol = pop3\n"
		"auth = pass apop\nplaintext_auth = after-tls\n"));
	ck_assert_ptr_nonnull(strstr(out,
		"\n[tls]\ncertificate = /etc/ssl/pop.pem\n"
		"ciphers = HIGH:!aNULL\n\n[userdb]\n"));
	ck_assert_ptr_nonnull(strstr(out,
		"\n[userdb]\ndriver = passwd-file\nfile = /etc/poplar/users\n"
		"default_uid = 5000\ndefault_gid = 5001\n"));
	ck_assert_ptr_nonnull(strstr(out,
		"\n[maildrop]\nlocation = mbox:/var/mail/%u\n"
		"size_cache = no\n"));
	ck_assert_ptr_nonnull(strstr(out,
		"\n[module apop]\nsecrets = /etc/poplar/apop secrets\n"
		"opt = a\nopt = b=c\nempty = \n\n[module kpop]\n"));
	free(out);
	config_free(&cfg);

	/* No [tls] section when nothing is set. */
	cfg = parse_ok(minimal);
	out = print_to_string(cfg);
	ck_assert_ptr_null(strstr(out, "[tls]"));
	ck_assert_ptr_null(strstr(out, "default_uid"));
	free(out);
	config_free(&cfg);
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(tls_mode_name(TLS_MODE_NONE), "none");
	ck_assert_str_eq(tls_mode_name(TLS_MODE_STARTTLS), "starttls");
	ck_assert_str_eq(tls_mode_name(TLS_MODE_IMPLICIT), "implicit");
	ck_assert_str_eq(tls_mode_name((enum tls_mode)42), "?");
	ck_assert_str_eq(plaintext_policy_name(PLAINTEXT_AFTER_TLS),
			 "after-tls");
	ck_assert_str_eq(plaintext_policy_name(PLAINTEXT_ALWAYS), "always");
	ck_assert_str_eq(plaintext_policy_name(PLAINTEXT_NEVER), "never");
	ck_assert_str_eq(plaintext_policy_name((enum plaintext_policy)9), "?");
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("parse");
	TCase *tf = tcase_create("load");

	tcase_add_test(tc, test_minimal);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_all_keys);
	tcase_add_test(tc, test_comments_whitespace);
	tcase_add_test(tc, test_module_items);
	tcase_add_test(tc, test_many_items);
	tcase_add_test(tc, test_ipv6);
	tcase_add_test(tc, test_bad_addresses);
	tcase_add_test(tc, test_repeated_address);
	tcase_add_test(tc, test_duplicate_address);
	tcase_add_test(tc, test_too_many_addresses);
	tcase_add_test(tc, test_too_many_listeners);
	tcase_add_test(tc, test_unknown_section);
	tcase_add_test(tc, test_unknown_key);
	tcase_add_test(tc, test_bad_lines);
	tcase_add_test(tc, test_bad_numbers);
	tcase_add_test(tc, test_bad_enums);
	tcase_add_test(tc, test_maildrop_mbox_keys);
	tcase_add_test(tc, test_tls_settings);
	tcase_add_test(tc, test_trusted_networks);
	tcase_add_test(tc, test_duplicate_keys_sections);
	tcase_add_test(tc, test_listener_names);
	tcase_add_test(tc, test_duplicate_listener);
	tcase_add_test(tc, test_listener_without_address);
	tcase_add_test(tc, test_missing_module);
	tcase_add_test(tc, test_no_listener);
	tcase_add_test(tc, test_passwd_file_without_file);
	tcase_add_test(tc, test_line_too_long);
	tcase_add_test(tc, test_nul_byte);
	tcase_add_test(tc, test_file_too_large);
	tcase_add_test(tc, test_print_round_trip);
	tcase_add_test(tc, test_print_content);
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tf, tmpdir_setup, tmpdir_teardown);
	tcase_add_test(tf, test_load);
	tcase_add_test(tf, test_load_unreadable);
	tcase_add_test(tf, test_load_too_large);
	suite_add_tcase(s, tf);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
