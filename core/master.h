/* master.h: listeners, the accept loop, one forked session per
 * connection, session limits, signals. */
#ifndef POPLAR_MASTER_H
#define POPLAR_MASTER_H

#include "config.h"

/* Bind every listener of cfg, serve until SIGTERM/SIGINT.  Returns the
 * exit status. */
int master_run(const struct config *cfg, int foreground);

#endif
