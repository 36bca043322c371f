/* log.c: logging to syslog or stderr, and key=value escaping. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "log.h"

static enum log_target target = LOG_TARGET_STDERR;
static int also_stderr;
static int debug_on;
static const char *log_ident = "poplard";

void
log_open(enum log_target t, const char *ident)
{
	target = t;
	log_ident = ident;
	if (t == LOG_TARGET_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_open_facility(int facility)
{
	closelog();
	openlog(log_ident, LOG_PID | LOG_NDELAY, facility);
}

void
log_set_debug(int on)
{
	debug_on = on;
}

void
log_also_stderr(int on)
{
	also_stderr = on;
}

static const char *
prio_name(int prio)
{
	switch (prio) {
	case LOG_EMERG: case LOG_ALERT: case LOG_CRIT: return "crit";
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_NOTICE: return "notice";
	case LOG_INFO: return "info";
	default: return "debug";
	}
}

/* The process id for stderr lines, read once per process (a session
 * logs twice or more): forgotten in the child at every fork. */
static long log_pid;

static void
forget_pid(void)
{
	log_pid = 0;
}

void
log_msg(int prio, const char *fmt, ...)
{
	/* One buffer: the stderr prefix, then the message formatted once. */
	char out[2200];
	size_t pre = 0, len;
	va_list ap;
	int n;

	if (prio == LOG_DEBUG && !debug_on)
		return;
	if (log_pid == 0) {
		static bool registered;

		if (!registered && pthread_atfork(NULL, NULL, forget_pid) == 0)
			registered = true;
		log_pid = (long)getpid();
	}
	n = snprintf(out, sizeof(out), "%s[%ld]: %s: ", log_ident, log_pid,
		     prio_name(prio));
	if (n > 0 && (size_t)n < sizeof(out) - 2048)
		pre = (size_t)n;
	va_start(ap, fmt);
	n = vsnprintf(out + pre, 2048, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	len = (size_t)n < 2048 ? (size_t)n : 2047;
	if (target == LOG_TARGET_SYSLOG)
		syslog(prio, "%s", out + pre);
	if (target == LOG_TARGET_STDERR || also_stderr) {
		/* One write per line so that lines of concurrent sessions do
		 * not interleave. */
		out[pre + len] = '\n';
		if (write(STDERR_FILENO, out, pre + len + 1) < 0) {
			/* nowhere left to report it */
		}
	}
}

static int
safe_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("@._-+/:[]", c) != NULL;
}

const char *
log_value(char *out, size_t size, const char *s)
{
	size_t i, o = 0;
	int plain = *s != '\0';

	for (i = 0; s[i] != '\0'; i++)
		if (!safe_char((unsigned char)s[i]))
			plain = 0;
	if (plain) {
		snprintf(out, size, "%s", s);
		return out;
	}
	if (size < 3) {
		if (size > 0)
			out[0] = '\0';
		return out;
	}
	out[o++] = '"';
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[5];
		size_t n;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			n = 2;
		} else if (c < 0x20 || c >= 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			n = 4;
		} else {
			esc[0] = (char)c;
			n = 1;
		}
		if (o + n + 2 > size)
			break;
		memcpy(out + o, esc, n);
		o += n;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}
