/* main.c: poplard's command line: check, list modules, inetd mode, or
 * run the master. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "poplar-autoconf.h"
#include "config.h"
#include "loader.h"
#include "log.h"
#include "master.h"
#include "session.h"
#include "tls.h"
#include "policy.h"
#include "userdb.h"

#ifndef POPLAR_SYSCONFDIR
#define POPLAR_SYSCONFDIR "/etc"
#endif
#ifndef POPLAR_MODULE_DIR
#define POPLAR_MODULE_DIR "/usr/local/lib/poplar"
#endif

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: poplard [-c FILE] [-F] [-t] [-i LISTENER] [-V] "
		"[--list-modules] [--policy] [--check-kerberos]\n"
		"  -c FILE          configuration file (default %s/poplar/poplar.conf)\n"
		"  -F               stay in the foreground, log to stderr too\n"
		"  -t               check the configuration and modules, print the\n"
		"                   effective settings; exit 0 or 1\n"
		"  -i LISTENER      serve one connection on stdin/stdout (inetd)\n"
		"  -V               print the version\n"
		"  --list-modules   list the modules in module_dir\n"
		"  --policy         per listener: each login method before and after\n"
		"                   TLS, and what it exposes\n"
		"  --check-kerberos the modules' Kerberos set-up in detail: keytab,\n"
		"                   principals, host name, realm, replay cache\n",
		POPLAR_SYSCONFDIR);
}

static int
facility_of(const char *name)
{
	static const struct { const char *n; int f; } tab[] = {
		{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON },
		{ "auth", LOG_AUTH }, { "authpriv", LOG_AUTHPRIV },
		{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
		{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
		{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
		{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
	};

	for (size_t i = 0; name != NULL && i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strcasecmp(tab[i].n, name) == 0)
			return tab[i].f;
	return LOG_MAIL;
}

/* inetd mode: the peer of stdin, when it is a socket. */
static void
stdin_peer(char *ip, size_t iplen, char *port, size_t portlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	snprintf(ip, iplen, "local");
	port[0] = '\0';
	if (getpeername(0, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (void *)&ss;

		inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)iplen);
		snprintf(port, portlen, "%u", ntohs(in->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (void *)&ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)iplen);
		snprintf(port, portlen, "%u", ntohs(in6->sin6_port));
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "list-modules", no_argument, NULL, 'L' },
		{ "policy", no_argument, NULL, 'P' },
		{ "check-kerberos", no_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = POPLAR_SYSCONFDIR "/poplar/poplar.conf";
	const char *inetd_listener = NULL;
	int foreground = 0, check = 0, list = 0, policy = 0, kcheck = 0, c, rc;
	size_t nchecked;
	struct config *cfg;
	/* A message may name the configuration file, a module and its
	 * directory, each up to PATH_MAX. */
	char err[3 * PATH_MAX + 1024];

	while ((c = getopt_long(argc, argv, "c:Fti:Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'F': foreground = 1; break;
		case 't': check = 1; break;
		case 'i': inetd_listener = optarg; break;
		case 'V':
			printf("poplard (Poplar) %s, module ABI %d.%d\n",
			       PACKAGE_VERSION, POPLAR_MODULE_ABI_MAJOR,
			       POPLAR_MODULE_ABI_MINOR);
			return 0;
		case 'L': list = 1; break;
		case 'P': policy = 1; break;
		case 'K': kcheck = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	cfg = config_load(path, err, sizeof(err));
	if (list) {
		int r = modules_list(cfg != NULL ? cfg->module_dir
				     : POPLAR_MODULE_DIR, stdout);

		config_free(&cfg);
		return r < 0 ? 1 : 0;
	}
	if (cfg == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}

	/* Logging: -t and errors before start-up go to stderr. */
	if (check || policy || kcheck || cfg->log == LOG_TARGET_STDERR)
		log_open(LOG_TARGET_STDERR, "poplard");
	else {
		log_open(LOG_TARGET_SYSLOG, "poplard");
		log_open_facility(facility_of(cfg->log_facility));
		log_also_stderr(foreground);
	}

	if (userdb_init(cfg, err, sizeof(err)) < 0 ||
	    tls_init(cfg, err, sizeof(err), check ? stderr : NULL) < 0 ||
	    modules_load_all(cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		if (!check && cfg->log == LOG_TARGET_SYSLOG)
			log_msg(LOG_ERR, "%s", err);
		modules_unload_all();
		config_free(&cfg);
		return 1;
	}

	if (policy) {
		policy_print(cfg, stdout);
		rc = 0;
	} else if (kcheck) {
		rc = modules_check(stdout, 1, &nchecked) < 0 ? 1 : 0;
		if (nchecked == 0)
			printf("no loaded module uses Kerberos (kpop, or pass "
			       "with backend = krb5): nothing to check\n");
		else
			printf("%s\n", rc == 0 ? "Kerberos set-up OK"
			       : "Kerberos set-up has problems (see above)");
	} else if (check) {
		policy_warn(cfg, stderr);
		if (modules_check(stderr, 0, &nchecked) < 0) {
			fprintf(stderr, "%s: module checks failed\n", path);
			modules_unload_all();
			tls_deinit();
			config_free(&cfg);
			return 1;
		}
		fprintf(stderr, "%s: configuration OK, %zu module%s loaded\n",
			path, modules_count(), modules_count() == 1 ? "" : "s");
		config_print(cfg, stdout);
		rc = 0;
	} else if (inetd_listener != NULL) {
		const struct listener_config *l =
			config_listener(cfg, inetd_listener);
		char ip[64], port[8];

		if (l == NULL) {
			fprintf(stderr, "%s: no listener '%s'\n", path,
				inetd_listener);
			rc = 1;
		} else {
			stdin_peer(ip, sizeof(ip), port, sizeof(port));
			session_run(cfg, l, 0, 1, ip, port);
			rc = 0;
		}
	} else {
		rc = master_run(cfg, foreground);
	}
	modules_unload_all();
	tls_deinit();
	config_free(&cfg);
	return rc;
}
