/*
 * ceiling: the benchmark's reference for the login figure.
 *
 *   ceiling --port N --stat "COUNT SIZE"
 *
 * A POP3 responder with poplard's process model and nothing else: it
 * listens on 127.0.0.1:N, forks one process per connection, and that
 * process answers the greeting, "+OK" to every command, "+OK COUNT SIZE"
 * to STAT and "+OK" to QUIT, then closes.  No files, no password check,
 * no log.  The login rate it reaches under loadgen is the ceiling of a
 * fork-per-connection server on this machine: run-bench prints Poplar's
 * login rate as a share of it, which compares across machines better
 * than the rate alone.
 *
 * Never installed.  Stops on SIGTERM; a client that sends a line longer
 * than 512 bytes or nothing for 30 seconds is disconnected.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void
reply(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		s += n;
		len -= (size_t)n;
	}
}

static void
serve(int fd, const char *stat, size_t stat_len)
{
	char line[512];
	size_t have = 0;
	struct timeval tv = { 30, 0 };
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	reply(fd, "+OK ceiling ready\r\n", 19);
	for (;;) {
		ssize_t n = read(fd, line + have, sizeof(line) - have);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		have += (size_t)n;
		while ((nl = memchr(line, '\n', have)) != NULL) {
			size_t len = (size_t)(nl - line) + 1;

			if (len >= 4 && strncasecmp(line, "STAT", 4) == 0) {
				reply(fd, stat, stat_len);
			} else if (len >= 4 && strncasecmp(line, "QUIT", 4) == 0) {
				reply(fd, "+OK bye\r\n", 9);
				_exit(0);
			} else {
				reply(fd, "+OK\r\n", 5);
			}
			memmove(line, line + len, have - len);
			have -= len;
		}
		if (have == sizeof(line))
			_exit(0);
	}
}

static void
usage(void)
{
	fputs("usage: ceiling --port N --stat \"COUNT SIZE\"\n", stderr);
	exit(2);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa;
	char stat[64];
	long port = -1;
	const char *count_size = NULL;
	int lfd, one = 1, len;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--port") == 0) {
			char *end;

			port = strtol(argv[i + 1], &end, 10);
			if (*end != '\0' || port < 1 || port > 65535)
				usage();
		} else if (strcmp(argv[i], "--stat") == 0) {
			count_size = argv[i + 1];
		} else {
			usage();
		}
	}
	if (argc % 2 == 0 || port < 0 || count_size == NULL ||
	    strspn(count_size, "0123456789 ") != strlen(count_size))
		usage();
	len = snprintf(stat, sizeof(stat), "+OK %s\r\n", count_size);
	if (len < 0 || (size_t)len >= sizeof(stat))
		usage();

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 1024) < 0) {
		perror("ceiling: 127.0.0.1");
		return 1;
	}
	/* Ended sessions are reaped by the kernel. */
	signal(SIGCHLD, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pid_t pid;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				usleep(10000);
				continue;
			}
			perror("ceiling: accept");
			return 1;
		}
		pid = fork();
		if (pid == 0) {
			close(lfd);
			serve(fd, stat, (size_t)len);
		}
		close(fd);
	}
}
