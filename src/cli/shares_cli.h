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

/* Returns -1 to go on, else the exit status (help printed, usage error). */
int cli_share_opts_parse(const char *cmd, const char *help, bool want_token, int argc,
                         char **argv, share_opts *so);
/* Loads the transcript (verifying FILE.sig) and every share; prints the
 * inputs set aside on stderr. */
hs_result cli_shares_gather(const cli_globals *g, const share_opts *so, hs_transcript **t,
                            hs_shareset *set, hs_error *e);
/* Prints the shares recovery set aside (always, even with -q). */
void cli_shares_print_report(const hs_shareset *set, const hs_share_report *rep);

#endif
