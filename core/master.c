/* master.c: the master process: binds the listeners, accepts, enforces
 * max_sessions and max_sessions_per_ip, forks one session process per
 * connection, reaps children, and stops cleanly on SIGTERM/SIGINT.
 *
 * Runs as root when started as root; it never reads client data: a child
 * does, after the fork. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "asan.h"
#ifdef POPLAR_ASAN
#include <sanitizer/lsan_interface.h>
#include <sys/prctl.h>
#endif
#include "log.h"
#include "master.h"
#include "privdrop.h"
#include "session.h"
#include "util.h"

struct bound {
	int fd;
	const struct listener_config *listener;
};

struct child {
	pid_t pid;
	char ip[INET6_ADDRSTRLEN];
};

/* SIGCHLD, SIGTERM and SIGINT stay blocked in the master and are read
 * from a signalfd in its poll set: no handler runs (a signal frame per
 * ended session is dear at thousands of sessions a second), and
 * several children that end together cost one wake-up. */
static int sig_fd = -1;
static sigset_t sig_old_mask;
static int got_term;

static int
bind_address(const struct listen_address *a, char *err, size_t errlen)
{
	int fd, one = 1;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", a->text, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->sslen) < 0 ||
	    listen(fd, 1024) < 0) {
		snprintf(err, errlen, "%s: cannot listen: %s", a->text,
			 strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void
addr_to_text(const struct sockaddr_storage *ss, char *ip, size_t iplen,
	     char *port, size_t portlen)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)iplen);
		snprintf(port, portlen, "%u", ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)iplen);
		/* Show IPv4-mapped peers as IPv4. */
		if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.'))
			memmove(ip, ip + 7, strlen(ip + 7) + 1);
		snprintf(port, portlen, "%u", ntohs(in6->sin6_port));
	} else {
		strlcpy_p(ip, "local", iplen);
		strlcpy_p(port, "", portlen);
	}
}

/* Refuse a connection politely: one line, then close. */
static void
refuse(int fd, const char *line)
{
	if (write(fd, line, strlen(line)) < 0) {
		/* the client is gone already */
	}
	close(fd);
}

static void
reap(struct child *children, size_t *nchildren)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < *nchildren; i++) {
			if (children[i].pid == pid) {
				children[i] = children[--*nchildren];
				break;
			}
		}
		if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM)
			log_msg(LOG_WARNING, "session process %ld killed by "
				"signal %d", (long)pid, WTERMSIG(status));
	}
}

static void
serve_child(const struct config *cfg, const struct listener_config *l,
	    int fd, struct bound *b, size_t nb, const char *ip,
	    const char *port)
{
	int one = 1;

	/* The master's signals are blocked, not handled: the session gets
	 * them back with their default actions (SIGPIPE stays ignored). */
	for (size_t i = 0; i < nb; i++)
		close(b[i].fd);
	close(sig_fd);
	sigprocmask(SIG_SETMASK, &sig_old_mask, NULL);
	/* Replies go out whole through the output buffer: no need for
	 * Nagle, and without it no delayed-ACK stall between commands. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	session_run(cfg, l, fd, fd, ip, port);
	close(fd);
#ifdef POPLAR_ASAN
	/* A session ends with _exit, which LeakSanitizer does not see: in a
	 * sanitizer build, look for leaks here, when the session has freed
	 * what it allocated.  The tracer LeakSanitizer starts attaches with
	 * ptrace, which the privilege drop (no longer dumpable) forbids:
	 * allow it again (sanitizer builds only, at the very end). */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	if (__lsan_do_recoverable_leak_check() != 0)
		_exit(1);
#endif
	_exit(0);
}

static void
accept_on(const struct config *cfg, struct bound *b, struct bound *all,
	  size_t nb, struct child *children, size_t *nchildren)
{
	for (int burst = 0; burst < 64; burst++) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		char ip[INET6_ADDRSTRLEN], port[8];
		unsigned int same_ip = 0;
		pid_t pid;
		int fd;

		fd = accept4(b->fd, (struct sockaddr *)&ss, &sslen,
			     SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_msg(LOG_ERR, "accept: %s", strerror(errno));
			return;
		}
		addr_to_text(&ss, ip, sizeof(ip), port, sizeof(port));
		if (*nchildren >= cfg->max_sessions) {
			log_msg(LOG_WARNING, "refused peer=%s listener=%s "
				"reason=max_sessions", ip, b->listener->name);
			refuse(fd, "-ERR [SYS/TEMP] too many sessions, try "
			       "again later\r\n");
			continue;
		}
		for (size_t i = 0; i < *nchildren; i++)
			if (strcmp(children[i].ip, ip) == 0)
				same_ip++;
		if (same_ip >= cfg->max_sessions_per_ip) {
			log_msg(LOG_WARNING, "refused peer=%s listener=%s "
				"reason=max_sessions_per_ip", ip,
				b->listener->name);
			refuse(fd, "-ERR [SYS/TEMP] too many sessions from "
			       "your address, try again later\r\n");
			continue;
		}
		pid = fork();
		if (pid < 0) {
			log_msg(LOG_ERR, "fork: %s", strerror(errno));
			refuse(fd, "-ERR [SYS/TEMP] server busy\r\n");
			continue;
		}
		if (pid == 0)
			serve_child(cfg, b->listener, fd, all, nb, ip, port);
		close(fd);
		children[*nchildren].pid = pid;
		strlcpy_p(children[*nchildren].ip, ip, sizeof(children[0].ip));
		(*nchildren)++;
	}
}

/* Stop: no new sessions; ask running ones to end, wait a bounded time,
 * then kill what is left.  A session killed here applies no deletions. */
static void
stop_children(struct child *children, size_t *nchildren)
{
	for (size_t i = 0; i < *nchildren; i++)
		kill(children[i].pid, SIGTERM);
	for (int tries = 0; tries < 100 && *nchildren > 0; tries++) {
		reap(children, nchildren);
		if (*nchildren > 0)
			usleep(50 * 1000);
	}
	for (size_t i = 0; i < *nchildren; i++)
		kill(children[i].pid, SIGKILL);
	while (*nchildren > 0) {
		pid_t pid = waitpid(-1, NULL, 0);

		if (pid < 0)
			break;
		reap(children, nchildren);
		for (size_t i = 0; i < *nchildren; i++)
			if (children[i].pid == pid)
				children[i] = children[--*nchildren];
	}
}

int
master_run(const struct config *cfg, int foreground)
{
	/* Static: a session process forked from inside this function
	 * inherits these tables and never frees them; with them in static
	 * storage they stay reachable (no false leak in the sanitizer
	 * build's check at the end of each session). */
	static struct bound *b;
	static struct pollfd *pfd;
	static struct child *children;
	size_t nb = 0, nchildren = 0;
	struct sigaction sa;
	sigset_t sigs;
	char err[512];

	b = NULL;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct listener_config *l = &cfg->listeners[i];

		for (size_t j = 0; j < l->naddresses; j++) {
			int fd = bind_address(&l->addresses[j], err, sizeof(err));

			if (fd < 0) {
				log_msg(LOG_ERR, "listener %s: %s", l->name, err);
				fprintf(stderr, "poplard: listener %s: %s\n",
					l->name, err);
				for (size_t k = 0; k < nb; k++)
					close(b[k].fd);
				free(b);
				b = NULL;
				return 1;
			}
			b = xrealloc(b, nb + 1, sizeof(*b));
			b[nb].fd = fd;
			b[nb].listener = l;
			nb++;
		}
	}
	if (!foreground && daemon(0, 0) < 0) {
		log_msg(LOG_ERR, "cannot go to the background: %s",
			strerror(errno));
		return 1;
	}
	/* Default actions (whatever we inherited), then blocked: a blocked
	 * signal is queued for the signalfd even when its default is to be
	 * ignored. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGCHLD);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	if (sigprocmask(SIG_BLOCK, &sigs, &sig_old_mask) < 0 ||
	    (sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_msg(LOG_ERR, "signalfd: %s", strerror(errno));
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	privdrop_prepare((cfg->userdb_driver == USERDB_SYSTEM ?
			  PRIVDROP_PREPARE_USERS : 0) |
			 (cfg->userdb_groups ? PRIVDROP_PREPARE_GROUPS : 0));
	pfd = xcalloc(nb + 1, sizeof(*pfd));
	children = xcalloc(cfg->max_sessions + 1, sizeof(*children));
	for (size_t i = 0; i < nb; i++) {
		pfd[i].fd = b[i].fd;
		pfd[i].events = POLLIN;
	}
	pfd[nb].fd = sig_fd;
	pfd[nb].events = POLLIN;
	log_msg(LOG_INFO, "started pid=%ld listeners=%zu", (long)getpid(),
		cfg->nlisteners);

	while (!got_term) {
		int r = poll(pfd, nb + 1, -1);

		if (r < 0 && errno != EINTR) {
			log_msg(LOG_ERR, "poll: %s", strerror(errno));
			break;
		}
		if (r > 0 && (pfd[nb].revents & POLLIN)) {
			struct signalfd_siginfo si[16];
			ssize_t n;
			int child_ended = 0;

			while ((n = read(sig_fd, si, sizeof(si))) > 0) {
				for (size_t k = 0; k < (size_t)n / sizeof(si[0]);
				     k++) {
					if (si[k].ssi_signo == SIGCHLD)
						child_ended = 1;
					else
						got_term = 1;
				}
			}
			if (child_ended)
				reap(children, &nchildren);
		}
		if (got_term)
			break;
		for (size_t i = 0; i < nb && r > 0; i++)
			if (pfd[i].revents & POLLIN)
				accept_on(cfg, &b[i], b, nb, children,
					  &nchildren);
	}
	for (size_t i = 0; i < nb; i++)
		close(b[i].fd);
	stop_children(children, &nchildren);
	log_msg(LOG_INFO, "stopped");
	close(sig_fd);
	sig_fd = -1;
	sigprocmask(SIG_SETMASK, &sig_old_mask, NULL);
	free(children);
	free(pfd);
	free(b);
	children = NULL;
	pfd = NULL;
	b = NULL;
	return 0;
}
