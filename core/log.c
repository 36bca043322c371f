/* log.c: logging to syslog or stderr, and key=value escaping. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
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

void
log_msg(int prio, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	if (prio == LOG_DEBUG && !debug_on)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);

	if (target == LOG_TARGET_SYSLOG)
		syslog(prio, "%s", line);
	if (target == LOG_TARGET_STDERR || also_stderr) {
		/* One write per line so that lines of concurrent sessions do
		 * not interleave. */
		char out[2200];
		int n = snprintf(out, sizeof(out), "%s[%ld]: %s: %s\n",
				 log_ident, (long)getpid(), prio_name(prio),
				 line);

		if (n > 0) {
			size_t len = (size_t)n < sizeof(out) ? (size_t)n
							     : sizeof(out) - 1;
			if (write(STDERR_FILENO, out, len) < 0) {
				/* nowhere left to report it */
			}
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
