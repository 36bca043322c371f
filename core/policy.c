/* policy.c: the authentication policy of each listener, derived from the
 * configuration and the modules' own descriptions, never restated by
 * hand: what poplard --policy prints is what sessions do. */
#include <string.h>
#include "loader.h"
#include "policy.h"

enum offer { OFFER_NO, OFFER_YES, OFFER_TRUSTED, OFFER_NA };

static const char *
offer_name(enum offer o)
{
	switch (o) {
	case OFFER_NO: return "no";
	case OFFER_YES: return "yes";
	case OFFER_TRUSTED: return "trusted-nets";
	case OFFER_NA: return "-";
	}
	return "?";
}

/* Is a method offered on l before TLS (or ever, for tls = none)? */
static enum offer
before_tls(const struct listener_config *l, unsigned int flags)
{
	if (l->tls == TLS_MODE_IMPLICIT)
		return OFFER_NA;
	if (!(flags & POPLAR_POLICY_PLAINTEXT))
		return OFFER_YES;
	switch (l->plaintext_auth) {
	case PLAINTEXT_ALWAYS:
		return OFFER_YES;
	case PLAINTEXT_AFTER_TLS:
		return l->ntrusted > 0 ? OFFER_TRUSTED : OFFER_NO;
	case PLAINTEXT_NEVER:
		return OFFER_NO;
	}
	return OFFER_NO;
}

static enum offer
after_tls(const struct listener_config *l, unsigned int flags)
{
	if (l->tls == TLS_MODE_NONE)
		return OFFER_NA;
	if (!(flags & POPLAR_POLICY_PLAINTEXT))
		return OFFER_YES;
	return l->plaintext_auth == PLAINTEXT_NEVER ? OFFER_NO : OFFER_YES;
}

typedef void (*method_fn)(const struct listener_config *l,
			  const struct poplar_method_policy *m, void *ctx);

static void
for_each_method(const struct listener_config *l, method_fn fn, void *ctx)
{
	for (size_t i = 0; i < l->nauth; i++) {
		struct loaded_module *mod = module_find(l->auth[i]);
		struct poplar_method_policy mp[16];
		size_t n;

		if (mod == NULL)
			continue;
		if (mod->desc->policy == NULL) {
			struct poplar_method_policy unknown = {
				mod->name, POPLAR_POLICY_PLAINTEXT
			};
			/* A module that does not describe itself is treated
			 * as the weakest kind. */
			fn(l, &unknown, ctx);
			continue;
		}
		n = mod->desc->policy(mod->mod, mp, sizeof(mp) / sizeof(mp[0]));
		for (size_t j = 0; j < n && j < sizeof(mp) / sizeof(mp[0]); j++)
			fn(l, &mp[j], ctx);
	}
}

static void
print_row(const struct listener_config *l, const struct poplar_method_policy *m,
	  void *ctx)
{
	FILE *out = ctx;
	enum offer b = before_tls(l, m->flags), a = after_tls(l, m->flags);
	const char *clear;

	if (b == OFFER_NA || b == OFFER_NO)
		clear = "no";
	else if (m->flags & POPLAR_POLICY_PLAINTEXT)
		clear = b == OFFER_TRUSTED ? "trusted-nets" : "YES";
	else if (m->flags & POPLAR_POLICY_GUESSABLE)
		clear = "guessable";
	else
		clear = "no";
	fprintf(out, "  %-18s %-13s %-13s %-16s %-8s %s\n", m->name,
		offer_name(b), offer_name(a), clear,
		(m->flags & POPLAR_POLICY_REPLAY_SAFE) ? "yes" : "no",
		(m->flags & POPLAR_POLICY_MUTUAL) ? "yes" : "no");
}

void
policy_print(const struct config *cfg, FILE *out)
{
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct listener_config *l = &cfg->listeners[i];

		fprintf(out, "%slistener %s:", i ? "\n" : "", l->name);
		for (size_t j = 0; j < l->naddresses; j++)
			fprintf(out, " %s", l->addresses[j].text);
		fprintf(out, " tls=%s plaintext_auth=%s", tls_mode_name(l->tls),
			plaintext_policy_name(l->plaintext_auth));
		if (l->ntrusted > 0) {
			fprintf(out, " trusted_networks=");
			for (size_t j = 0; j < l->ntrusted; j++)
				fprintf(out, "%s%s", j ? "," : "",
					l->trusted[j].text);
		}
		fprintf(out, "\n  %-18s %-13s %-13s %-16s %-8s %s\n", "method",
			"before-TLS", "after-TLS", "secret-in-clear",
			"replay", "mutual");
		for_each_method(l, print_row, out);
	}
	fprintf(out, "\nbefore-TLS/after-TLS: whether the method is offered "
		"and accepted then ('-': that phase does not exist on this "
		"listener).\nsecret-in-clear: YES when a reusable secret can "
		"cross the wire unencrypted; guessable when a captured "
		"exchange allows offline guessing.\n");
}

struct warn_ctx {
	FILE *out;
	int count;
};

static void
warn_row(const struct listener_config *l, const struct poplar_method_policy *m,
	 void *ctx)
{
	struct warn_ctx *w = ctx;
	enum offer b = before_tls(l, m->flags);

	if (b != OFFER_YES)
		return;
	if (m->flags & POPLAR_POLICY_PLAINTEXT) {
		fprintf(w->out, "warning: %s:%u: listener '%s' offers %s "
			"without TLS: passwords cross the network in clear\n",
			l->file, l->line, l->name, m->name);
		w->count++;
	} else if (m->flags & POPLAR_POLICY_GUESSABLE) {
		fprintf(w->out, "warning: %s:%u: listener '%s' offers %s "
			"without TLS: a captured exchange allows offline "
			"password guessing\n", l->file, l->line, l->name,
			m->name);
		w->count++;
	}
}

int
policy_warn(const struct config *cfg, FILE *out)
{
	struct warn_ctx w = { out, 0 };

	for (size_t i = 0; i < cfg->nlisteners; i++)
		for_each_method(&cfg->listeners[i], warn_row, &w);
	return w.count;
}
