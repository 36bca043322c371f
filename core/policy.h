/* policy.h: what each listener offers, before and after TLS, and what
 * that exposes (poplard --policy, and the warnings of -t). */
#ifndef POPLAR_POLICY_H
#define POPLAR_POLICY_H

#include <stdio.h>
#include "config.h"

/* Print the table for every listener (modules must be loaded). */
void policy_print(const struct config *cfg, FILE *out);
/* Print one warning line per listener where a reusable secret can cross
 * the wire in clear, or a guessable exchange is offered without TLS.
 * Returns the number of warnings. */
int policy_warn(const struct config *cfg, FILE *out);

#endif
