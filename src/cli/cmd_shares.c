/* hsmsign shares: verify a set of shares against a ceremony transcript
 * without importing anything; also the share inputs `ceremony restore`
 * uses (shares_cli.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ceremony/restore.h"
#include "cli.h"
#include "shares_cli.h"
#include "util/encoding.h"

#define MAX_FILES CLI_SHARE_FILES_MAX

/* Returns -1 to go on, else the exit status (help printed, usage error). */
static int parse_opts(const char *cmd, const char *help, bool want_token, int argc, char **argv,
                      share_opts *so)
{
    static const struct option opts[] = {
        {"token", required_argument, NULL, 't'},
        {"transcript", required_argument, NULL, 'T'},
        {"share", required_argument, NULL, 's'},
        {"identity", required_argument, NULL, 'i'},
        {"share-stdin", no_argument, NULL, 'S'},
        {"replace-wrap-key", no_argument, NULL, 'R'},
        {"audit-key", required_argument, NULL, 'A'},
        {"unsigned-transcript", no_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(so, 0, sizeof *so);
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!want_token)
                return cli_usage(cmd, "--token is not used here");
            so->token = optarg;
            break;
        case 'T': so->transcript = optarg; break;
        case 's':
        case 'i': {
            size_t *n = c == 's' ? &so->n_shares : &so->n_identities;
            if (*n >= MAX_FILES)
                return cli_usage(cmd, "at most %d --share and --identity files", MAX_FILES);
            (c == 's' ? so->shares : so->identities)[(*n)++] = optarg;
            break;
        }
        case 'S': so->from_stdin = true; break;
        case 'A': so->trust.audit_key = optarg; break;
        case 'U': so->trust.allow_unsigned = true; break;
        case 'R':
            if (!want_token)
                return cli_usage(cmd, "--replace-wrap-key is not used here");
            so->replace_wrap_key = true;
            break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_usage(cmd, "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    if (so->transcript == NULL)
        return cli_usage(cmd, "--transcript is required");
    if (so->trust.audit_key == NULL && !so->trust.allow_unsigned)
        return cli_usage(cmd, "--audit-key PEM is required: the auditor's copy of the audit "
                              "public key checks the transcript's signature (or "
                              "--unsigned-transcript to go on without)");
    if (want_token && so->token == NULL)
        return cli_usage(cmd, "--token is required (the token to restore into)");
    if (so->n_shares == 0 && !so->from_stdin)
        return cli_usage(cmd, "give the shares with --share FILE or --share-stdin");
    return -1;
}

/* Loads the transcript (verifying FILE.sig) and every share; prints what
 * was set aside. */
static hs_result gather(const cli_globals *g, const share_opts *so, hs_transcript **t,
                        hs_shareset *set, hs_error *e)
{
    bool sig = false;
    hs_result r = hs_transcript_load(so->transcript, &so->trust, t, &sig, e);
    if (r != HS_OK)
        return r;
    if (sig)
        cli_note(g, "transcript of ceremony '%s' (%s): signature verified with the pinned key %s",
                 (*t)->name, (*t)->date, so->trust.audit_key);
    else /* always shown: nothing vouches for the transcript */
        fprintf(stderr, "hsmsign: WARNING: transcript of ceremony '%s' (%s): signature NOT "
                        "checked (--unsigned-transcript)\n", (*t)->name, (*t)->date);
    r = hs_shareset_init(set, e);
    if (r == HS_OK)
        r = hs_shareset_gather(set, *t, so->shares, so->n_shares, so->identities,
                               so->n_identities, so->from_stdin ? STDIN_FILENO : -1, e);
    if (set->notes[0] != '\0')
        fprintf(stderr, "%s", set->notes); /* always shown: those shares need attention */
    return r;
}

int cli_shares_start(const cli_globals *g, const char *cmd, const char *help, bool want_token,
                     int argc, char **argv, share_session *s, hs_result *r)
{
    memset(s, 0, sizeof *s);
    int rc = parse_opts(cmd, help, want_token, argc, argv, &s->so);
    if (rc >= 0)
        return rc;
    hs_error_clear(&s->e);
    s->rep = calloc(1, sizeof *s->rep);
    *r = s->rep != NULL ? gather(g, &s->so, &s->t, &s->set, &s->e)
                        : hs_fail(&s->e, HS_E_NOMEM, "out of memory");
    return -1;
}

void cli_shares_end(share_session *s)
{
    hs_shareset_clear(&s->set);
    hs_transcript_free(s->t);
    free(s->rep);
}

void cli_shares_print_report(const hs_shareset *set, const hs_share_report *rep)
{
    if (rep->warning[0] == '\0')
        return;
    fprintf(stderr, "hsmsign: WARNING: shares set aside, their holders need a new share set:\n%s",
            rep->warning);
    for (size_t i = 0; i < set->count; i++)
        fprintf(stderr, "  (share %zu = %s)\n", i + 1, set->source[i]);
}

static const char verify_help[] =
    "usage: hsmsign shares verify --transcript FILE (--audit-key PEM | --unsigned-transcript)\n"
    "                             (--share FILE ... [--identity FILE ...] | --share-stdin)\n"
    "\n"
    "--audit-key PEM is the auditor's own copy of the audit public key: FILE.sig\n"
    "must verify with it (exit 1 if missing or bad), never with the key written in\n"
    "the transcript. --unsigned-transcript goes on without a checked signature.\n"
    "One share alone is checked against its commitment in the transcript.\n"
    "\n"
    "Checks shares against a ceremony transcript: decrypts them (age identities, or\n"
    "plain shares piped in), reconstructs the wrap key in locked memory, compares\n"
    "its check value with the transcript's and wipes it. Nothing is imported and no\n"
    "token is needed. Exit 0 only when the key is restored and every share given\n"
    "is good; a share that is damaged, foreign or undecryptable is named.\n";

static int shares_verify(const cli_globals *g, int argc, char **argv)
{
    share_session s;
    hs_result r;
    int rc = cli_shares_start(g, "shares verify", verify_help, false, argc, argv, &s, &r);
    if (rc >= 0)
        return rc;
    /* Fewer than k: each share is still checked alone, against its
     * commitment in the signed transcript (version 2). */
    if (r == HS_OK && s.t->version >= 2 && s.set.count > 0 && s.set.count < s.t->threshold &&
        s.set.set_aside == 0) {
        if (g->json)
            cli_print_json(json_pack("{s:b, s:s, s:i, s:i, s:b}", "ok", 1, "ceremony", s.t->name,
                                     "shares_good", (int)s.set.count, "threshold",
                                     (int)s.t->threshold, "key_restored", 0));
        else
            printf("%zu share%s of ceremony '%s' match%s the commitment in the signed "
                   "transcript (the wrap key needs %u together; not reconstructed)\n",
                   s.set.count, s.set.count == 1 ? "" : "s", s.t->name,
                   s.set.count == 1 ? "es" : "", s.t->threshold);
        cli_shares_end(&s);
        return 0;
    }
    if (r == HS_OK)
        r = hs_ceremony_check_shares(s.t, &s.set, s.rep, &s.e);
    if (s.rep != NULL)
        cli_shares_print_report(&s.set, s.rep);
    size_t bad = s.set.set_aside + (s.rep != NULL ? s.rep->bad_count : 0);
    if (r == HS_OK && bad > 0)
        r = hs_fail(&s.e, HS_E_VERIFY, "the wrap key can be restored from %zu shares, but "
                                       "%zu input(s) given cannot be used (named above)",
                    s.rep->used_count, bad);
    if (r == HS_OK) {
        char kcv[7];
        hs_hex_encode(s.t->kcv, sizeof s.t->kcv, kcv);
        if (g->json)
            cli_print_json(json_pack("{s:b, s:s, s:s, s:i, s:i}", "ok", 1, "ceremony", s.t->name,
                                     "check_value", kcv, "shares_good", (int)s.set.count,
                                     "threshold", (int)s.t->threshold));
        else
            printf("%zu good shares of ceremony '%s': together they restore the wrap key "
                   "(check value %s matches the transcript; %u needed)\n",
                   s.set.count, s.t->name, kcv, s.t->threshold);
    }
    cli_shares_end(&s);
    return r == HS_OK ? 0 : cli_fail(g, &s.e);
}

int cmd_shares(const cli_globals *g, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"verify", shares_verify, "check shares against a ceremony transcript"},
    };
    return cli_dispatch(g, "shares", "Backup shares of the wrap key (docs/share-format.md).", subs,
                        1, argc, argv);
}
