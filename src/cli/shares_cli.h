/* Share inputs common to `ceremony restore` and `shares verify` (both in
 * cmd_shares.c): the --transcript/--share/--identity/--share-stdin options,
 * gathering, and reporting the shares set aside. */
#ifndef HSMSIGN_CLI_SHARES_CLI_H
#define HSMSIGN_CLI_SHARES_CLI_H

#include "ceremony/shareset.h"
#include "cli.h"

#define CLI_SHARE_FILES_MAX 64

typedef struct share_opts {
    const char *token, *transcript;
    const char *shares[CLI_SHARE_FILES_MAX], *identities[CLI_SHARE_FILES_MAX];
    size_t n_shares, n_identities;
    bool from_stdin;
    bool replace_wrap_key; /* ceremony restore --replace-wrap-key */
    hs_transcript_trust trust; /* --audit-key, --unsigned-transcript */
} share_opts;

/* What both commands start from: the options, the transcript, the shares
 * and an empty report (rep NULL when out of memory). */
typedef struct share_session {
    share_opts so;
    hs_transcript *t;
    hs_shareset set;
    hs_share_report *rep;
    hs_error e;
} share_session;

/* Parses the options (-h prints help), then loads the transcript
 * (verifying FILE.sig) and every share, printing the inputs set aside on
 * stderr. Returns the exit status when the command is over (help, usage
 * error), else -1 with *r the result of loading (its error in s->e);
 * cli_shares_end then frees s. */
int cli_shares_start(const cli_globals *g, const char *cmd, const char *help, bool want_token,
                     int argc, char **argv, share_session *s, hs_result *r);
void cli_shares_end(share_session *s);
/* Prints the shares recovery set aside (always, even with -q). */
void cli_shares_print_report(const hs_shareset *set, const hs_share_report *rep);

#endif
