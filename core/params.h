/* params.h: every bound on external input, with the reason beside it. */
#ifndef POPLAR_PARAMS_H
#define POPLAR_PARAMS_H

/* RFC 2449 section 4: a command line is at most 255 octets, CRLF included. */
#define POP3_CMD_MAX 255
/* RFC 2449: a reply line is at most 512 octets, CRLF included. */
#define POP3_REPLY_MAX 512
/* RFC 1939 section 7: a UIDL is 1 to 70 characters 0x21..0x7E. */
#define POP3_UIDL_MAX 70
/* Arguments per command: TOP has the most (2); PASS takes the rest. */
#define POP3_ARGS_MAX 4

/* Bad commands in a row before the session is closed (a client that does
 * not speak POP3, or a scanner). */
#define MAX_BAD_COMMANDS 10
/* Failed logins in one session before it is closed (password guessing). */
#define MAX_AUTH_FAILURES 3

/* Idle timeout: RFC 1939 section 3 asks for at least 10 minutes. */
#define DEFAULT_IDLE_TIMEOUT 600
#define DEFAULT_AUTH_FAIL_DELAY 2
#define DEFAULT_MAX_SESSIONS 1000
#define DEFAULT_MAX_SESSIONS_PER_IP 50

/* Messages per maildrop and bytes per message: numbers we hand to clients
 * fit in 32-bit message numbers; 2^31 keeps arithmetic obviously safe. */
#define MAILDROP_MAX_MESSAGES 2000000
#define MAILDROP_MAX_MESSAGE_SIZE (((unsigned long long)1) << 40)

/* Configuration file: line length and file size (a config is written by
 * the admin, but a bound keeps a mistake like -c /dev/zero harmless). */
#define CONFIG_LINE_MAX 4096
#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_MAX_LISTENERS 64
#define CONFIG_MAX_ADDRESSES 16

/* passwd-file: line length and entries. */
#define USERDB_LINE_MAX 4096

/* Output buffer of a session: RETR converts 32 KiB at a time into it and
 * writes it out when less than a chunk's worth is free, so a large
 * message goes out in writes of about 200 KiB.  Its pages are touched
 * only when written: an idle session uses the first one or two. */
#define PIO_OUTBUF_SIZE (256 * 1024)
#define PIO_INBUF_SIZE 1024

#endif
