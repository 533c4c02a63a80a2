/* Shared plumbing of the hsmsign command line: global options, the config
 * file, opening the token/key store/audit log, and reporting. Each command
 * group lives in its own cmd_*.c and stays thin over the library. */
#ifndef HSMSIGN_CLI_CLI_H
#define HSMSIGN_CLI_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "audit/record.h"
#include "keystore/wrapkey.h"
#include "p11/p11.h"
#include "p11/profile.h"
#include "signer/artcache.h"
#include "signer/signer.h"
#include "util/result.h"

typedef struct cli_globals {
    const char *module;     /* --module, HSMSIGN_MODULE, config "module" */
    /* --module-init-args, HSMSIGN_MODULE_INIT_ARGS, config "module-init-args" */
    const char *module_init_args;
    const char *token;      /* --token, HSMSIGN_TOKEN, config "token" */
    const char *pin_source; /* --pin-source, HSMSIGN_PIN_SOURCE, config "pin-source" */
    const char *keystore;   /* --keystore, HSMSIGN_KEYSTORE, config "keystore" */
    const char *audit_log;  /* --audit-log, HSMSIGN_AUDIT_LOG, config "audit-log" */
    const char *wrap_label; /* --wrap-key-label, HSMSIGN_WRAP_KEY_LABEL, config "wrap-key-label" */
    const char *profile;    /* --profile, HSMSIGN_PROFILE, config "profile"; NULL: detected */
    /* --signature-cache DIR|off, HSMSIGN_SIGNATURE_CACHE, config
     * "signature-cache"; NULL: the default (cmd_cache.c, docs/cache.md). */
    const char *signature_cache;
    /* --artifact-cache DIR|on|off, HSMSIGN_ARTIFACT_CACHE, config
     * "artifact-cache"; NULL: off (cli_artcache.h). */
    const char *artifact_cache;
    const char *config;     /* --config (else HSMSIGN_CONFIG, per-user, system: config.h) */
    bool accept_custody_gap; /* --accept-custody-gap, HSMSIGN_ACCEPT_CUSTODY_GAP=1 */
    bool json;
    bool quiet;
    int verbose;
} cli_globals;

/* What a command needs opened. */
enum {
    CLI_TOKEN = 1,  /* module loaded, token selected */
    CLI_LOGIN = 2,  /* ... and logged in */
    CLI_SIGNER = 4, /* ... and wrap key found (if the profile has one), audit log open, signer ready */
    /* With CLI_SIGNER, for commands that only sign (through ctx->signer):
     * when HSMSIGN_AGENT names an agent's socket, the signer forwards to
     * that agent and nothing else is opened (ctx->p11, ctx->audit NULL, no
     * PIN asked). */
    CLI_AGENT = 8,
};

typedef struct cli_ctx {
    const cli_globals *g;
    hs_p11 *p11;
    hs_profile_choice profile; /* chosen when the token is selected */
    hs_wrapkey wrap;
    hs_audit *audit;
    hs_auditkey audit_key; /* empty when the token has none */
    hs_signer *signer;
    struct hs_agent_client *agent; /* CLI_AGENT with HSMSIGN_AGENT set */
} cli_ctx;

/* Returns 0, or the exit status after printing the error. */
int cli_open(const cli_globals *g, unsigned what, cli_ctx *ctx);
void cli_close(cli_ctx *ctx);
/* Refuses (HS_E_USAGE) a wrap-key operation (`doing`) on a token whose
 * profile has no wrap key, saying why and what to do instead. */
hs_result cli_require_wrap_profile(const cli_ctx *ctx, const char *doing, hs_error *e) HS_MUST_CHECK;
/* Finds the token's audit key (ctx->audit_key stays empty when there is
 * none) and opens the audit log with it: created when the directory does
 * not exist, refused (HS_E_AUDIT) without an audit key. */
hs_result cli_open_audit(cli_ctx *ctx, hs_error *e) HS_MUST_CHECK;
/* Finds the token's audit key into ctx->audit_key, generating it when the
 * token has none (*created); cli_record_audit_key records the creation
 * once the log is open (cmd_wrapkey.c). */
hs_result cli_ensure_audit_key(cli_ctx *ctx, bool *created, hs_error *e) HS_MUST_CHECK;
hs_result cli_record_audit_key(cli_ctx *ctx, hs_error *e) HS_MUST_CHECK;

/* Prints "hsmsign: <message>" (or a JSON error object with --json) and
 * returns the exit status for e->code. */
int cli_fail(const cli_globals *g, const hs_error *e);
/* Usage error: message plus a pointer to --help; returns 2. */
int cli_usage(const char *command, const char *fmt, ...) HS_PRINTF(2, 3);

/* Resolves the PIN source: explicit spec, else env:HSMSIGN_PIN when set,
 * else a prompt on the terminal. */
hs_result cli_pin_source(const char *spec, const char *default_env, hs_pin_source *out,
                         hs_error *e);

/* Refuses an output path inside the audit log or the key store (however
 * it is spelled: symlinks, "..", hard links) or naming the same file as one
 * of inputs (NULL entries skipped). Returns 0, or the exit status after
 * printing the reason. Call it before cli_open, so nothing is signed. */
int cli_check_output(const cli_globals *g, const char *output, const char *const *inputs,
                     size_t n_inputs);
/* The same check, as a result for callers that add context. */
hs_result cli_output_ok(const cli_globals *g, const char *output, const char *const *inputs,
                        size_t n_inputs, hs_error *e) HS_MUST_CHECK;

/* Prints a JSON value to stdout (and frees it). */
void cli_print_json(json_t *v);

/* "[12/50] signing foo.apk" on stderr, rewritten in place, only when
 * stderr is a terminal and not -q. */
void cli_progress(const cli_globals *g, size_t done, size_t total, const char *what);
void cli_progress_end(const cli_globals *g);

/* Informational message on stderr unless -q. */
void cli_note(const cli_globals *g, const char *fmt, ...) HS_PRINTF(2, 3);

/* True when argv holds -h/--help before any "--". */
bool cli_wants_help(int argc, char **argv);

/* The prelude of a subcommand without options that takes exactly `want`
 * arguments: -h/--help prints help and gives 0, another count is a usage
 * error naming `missing` (2); -1 means: run the command. */
int cli_plain_args(int argc, char **argv, int want, const char *command, const char *help,
                   const char *missing);

/* The same for a command that takes no argument, then cli_open(what):
 * -1 when ctx is open (the caller cli_closes it), else the exit status. */
int cli_plain_open(const cli_globals *g, int argc, char **argv, const char *command,
                   const char *help, unsigned what, cli_ctx *ctx);

/* Parses a non-negative integer option; returns false on junk. */
bool cli_parse_uint(const char *s, unsigned long max, unsigned long *out);

/* Resets getopt for a subcommand's own option parsing. */
void cli_reset_getopt(void);

/* Command groups. argv[0] is the group name. */
int cmd_token(const cli_globals *g, int argc, char **argv);
int cmd_wrapkey(const cli_globals *g, int argc, char **argv);
int cmd_key(const cli_globals *g, int argc, char **argv);
/* key rotate (cmd_key_rotate.c) */
int cli_key_rotate(const cli_globals *g, int argc, char **argv);
struct hs_apk_key;
/* A key store key as the APK signer wants it; cert DER owned by the
 * caller (cmd_apk.c). */
hs_result cli_apk_key(hs_signer *s, const char *name, struct hs_apk_key *key, uint8_t **der,
                      hs_error *e) HS_MUST_CHECK;
int cmd_sign(const cli_globals *g, int argc, char **argv);
int cmd_verify(const cli_globals *g, int argc, char **argv);

/* APK subcommands (cmd_apk.c), reached through `sign` and `verify`. */
int cli_sign_apk(const cli_globals *g, int argc, char **argv);
int cli_sign_batch(const cli_globals *g, int argc, char **argv);
int cli_verify_apk(const cli_globals *g, int argc, char **argv);
int cmd_avb(const cli_globals *g, int argc, char **argv);
/* signapk.jar's command line, sign ota, and hsmsign-java (cmd_signapk.c):
 * cli_java_main runs hsmsign_main for `-jar signapk*.jar`, else execs java. */
int cmd_signapk(const cli_globals *g, int argc, char **argv);
int cli_sign_ota(const cli_globals *g, int argc, char **argv);
/* sign apex (cmd_apex.c) */
int cli_sign_apex(const cli_globals *g, int argc, char **argv);
int cli_java_main(int argc, char **argv, int (*hsmsign_main)(int, char **));
int cmd_ceremony(const cli_globals *g, int argc, char **argv);
int cmd_shares(const cli_globals *g, int argc, char **argv);
/* Audit log (cmd_audit.c); cli_audit_checkpoint signs a checkpoint from
 * cli_close when the command appended entries. */
int cmd_audit(const cli_globals *g, int argc, char **argv);
void cli_audit_checkpoint(cli_ctx *ctx);
/* agent start|stop|status (cmd_agent.c) */
int cmd_agent(const cli_globals *g, int argc, char **argv);
/* releasetools' --payload_signer (cmd_payload_signer.c). */
int cmd_payload_signer(const cli_globals *g, int argc, char **argv);
/* cache show|clear (cmd_cache.c), and the signature cache every local
 * signer gets from cli_open: *out NULL when the cache is off. */
int cmd_cache(const cli_globals *g, int argc, char **argv);
hs_result cli_open_sigcache(const cli_globals *g, hs_sigcache **out, hs_error *e) HS_MUST_CHECK;
/* The artifact cache (--artifact-cache; off by default): *out NULL when off. */
hs_result cli_open_artcache(const cli_globals *g, hs_artcache **out, hs_error *e) HS_MUST_CHECK;
/* key export-releasetools (cmd_key_export.c). */
int cli_key_export_releasetools(const cli_globals *g, int argc, char **argv);



/* A group's subcommands, for dispatch and the group's --help. */
typedef struct cli_subcommand {
    const char *name;
    int (*run)(const cli_globals *g, int argc, char **argv);
    const char *summary;
} cli_subcommand;

int cli_dispatch(const cli_globals *g, const char *group, const char *description,
                 const cli_subcommand *subs, size_t n, int argc, char **argv);
#endif
