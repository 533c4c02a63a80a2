/* hsmsign ceremony: provision (two blank tokens, shares, transcript) and
 * restore (a new token from k shares). The work is in src/lib/ceremony. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ceremony/provision.h"
#include "ceremony/restore.h"
#include "cli.h"
#include "shares_cli.h"
#include "util/encoding.h"
#include "util/secmem.h"

static const char provision_help[] =
    "usage: hsmsign ceremony provision CONFIG.json [--out-dir DIR] [--force-reset]\n"
    "                                  [--current-so-pin-source SRC]\n"
    "                                  [--backup-current-so-pin-source SRC]\n"
    "                                  [--allow-unlocked-memory]\n"
    "\n"
    "Provisions the primary and backup tokens CONFIG names (format: docs/ceremony.md):\n"
    "fresh random SO and user PINs, age-encrypted to the admin and operator roles;\n"
    "a new wrap key made in locked memory, split threshold-of-n into shares\n"
    "age-encrypted to their holders and imported into both tokens; an audit key in\n"
    "the primary token; a transcript (JSON and text) signed by the audit key.\n"
    "Everything is written into DIR (default ./ceremony), which must be empty.\n"
    "\n"
    "A token must be blank: not yet initialized (a free slot is initialized with\n"
    "the label the config names), or initialized without a user PIN, in which case\n"
    "its current SO PIN comes from --current-so-pin-source (env:VAR, file:PATH,\n"
    "fd:N, prompt). --force-reset erases a SoftHSM token that is in use (needs its\n"
    "current SO PIN); it is refused on any other token. An initialized token is\n"
    "re-initialized (C_InitToken) before it is used, and checked at the end to hold\n"
    "only what the ceremony made. Every current SO PIN, the PIN lengths and the\n"
    "mechanisms are checked before anything changes. The ceremony refuses to run\n"
    "when memory cannot be locked, unless --allow-unlocked-memory (recorded).\n"
    "A ceremony that fails after writing files leaves DIR/transcript.json as an\n"
    "\"aborted\" record: its shares are void (docs/ceremony.md).\n";

static void step_note(void *ctx, const char *what)
{
    cli_note((const cli_globals *)ctx, "ceremony: %s", what);
}

static hs_result read_current_pin(const char *spec, const char *what, char **pin, hs_error *e)
{
    *pin = NULL;
    if (spec == NULL)
        return HS_OK;
    hs_pin_source src;
    hs_result r = cli_pin_source(spec, "HSMSIGN_SO_PIN", &src, e);
    return r == HS_OK ? hs_pin_read(&src, what, pin, e) : r;
}

static void print_provisioned(const cli_globals *g, const hs_transcript *t, const char *dir)
{
    char kcv[7], set[33];
    hs_hex_encode(t->kcv, sizeof t->kcv, kcv);
    hs_hex_encode(t->set_id, sizeof t->set_id, set);
    if (g->json) {
        cli_print_json(json_pack("{s:b, s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:s}", "ok",
                                 1, "ceremony_dir", dir, "transcript",
                                 HS_CEREMONY_TRANSCRIPT_JSON, "wrap_key_check_value", kcv,
                                 "share_set", set, "threshold", (int)t->threshold, "shares",
                                 (int)t->n_holders, "primary_serial", t->tokens[0].serial,
                                 "backup_serial", t->tokens[1].serial, "audit_key_algorithm",
                                 t->audit_alg, "audit_key", HS_CEREMONY_AUDIT_PEM));
        return;
    }
    printf("provisioned '%s' (serial %s) and '%s' (serial %s)\n", t->tokens[0].label,
           t->tokens[0].serial, t->tokens[1].label, t->tokens[1].serial);
    printf("  wrap key check value %s, share set %s, %u of %zu shares\n", kcv, set, t->threshold,
           t->n_holders);
    printf("  audit key %s, public key %s/%s\n", t->audit_alg, dir, HS_CEREMONY_AUDIT_PEM);
    printf("  transcript %s/%s (+ .sig), print %s/%s and sign it\n", dir,
           HS_CEREMONY_TRANSCRIPT_JSON, dir, HS_CEREMONY_TRANSCRIPT_TEXT);
    for (size_t i = 0; i < t->n_holders; i++)
        printf("  share for %-16s %s/%s\n", t->holders[i].name, dir, t->holders[i].file.path);
}

/* The ceremony makes a wrap key and its shares: refused, before anything
 * changes, for a module whose profile has none. The tokens may not be
 * initialized yet, so the first slot with a token stands for the module
 * (one module, one kind of token). */
static hs_result check_profile(const cli_globals *g, hs_profile *profile, hs_error *e)
{
    hs_p11 *p = NULL;
    hs_p11_token_info *list = NULL;
    size_t n = 0;
    cli_ctx ctx = {.g = g};
    hs_result r = hs_p11_open_args(g->module, g->module_init_args, &p, e);
    if (r == HS_OK)
        r = hs_p11_list_tokens(p, &list, &n, e);
    if (r == HS_OK && n > 0) {
        p->slot = list[0].slot;
        snprintf(p->label, sizeof p->label, "%s", list[0].label);
        snprintf(p->model, sizeof p->model, "%s", list[0].model);
        snprintf(p->manufacturer, sizeof p->manufacturer, "%s", list[0].manufacturer);
    }
    if (r == HS_OK && (n > 0 || g->profile != NULL))
        r = hs_profile_choose(p, g->profile, &ctx.profile, e);
    ctx.p11 = p;
    if (r == HS_OK && (n > 0 || g->profile != NULL))
        r = cli_require_wrap_profile(&ctx, "provision", e);
    /* A YubiHSM is reset and attested with yubihsm-shell, which PKCS#11
     * cannot do, and takes no C_InitToken: the ceremony makes the shares
     * on other tokens and the device gets the key by `ceremony restore`. */
    if (r == HS_OK && ctx.profile.profile == HS_PROFILE_YUBIHSM)
        r = hs_fail(e, HS_E_USAGE,
                    "module '%s' is Yubico's YubiHSM module: a provisioning ceremony resets and "
                    "initializes its tokens through PKCS#11, which a YubiHSM 2 does not allow "
                    "(its reset, authentication keys and attestation are done with "
                    "yubihsm-shell). Follow docs/ceremony.md \"YubiHSM 2\": reset the device "
                    "and check its attestation by hand, run the ceremony onto SoftHSM or "
                    "offline tokens, then `hsmsign ceremony restore` into the YubiHSM",
                    g->module != NULL ? g->module : "(default)");
    *profile = ctx.profile.profile; /* wrapped (0) when nothing told otherwise */
    free(list);
    hs_p11_close(p);
    return r;
}

static int ceremony_provision(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"out-dir", required_argument, NULL, 'o'},
        {"force-reset", no_argument, NULL, 'f'},
        {"current-so-pin-source", required_argument, NULL, 'c'},
        {"backup-current-so-pin-source", required_argument, NULL, 'b'},
        {"allow-unlocked-memory", no_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    hs_provision_options o = {0};
    const char *cur = NULL, *cur_backup = NULL;
    o.out_dir = "ceremony";
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o.out_dir = optarg; break;
        case 'f': o.force_reset = true; break;
        case 'c': cur = optarg; break;
        case 'b': cur_backup = optarg; break;
        case 'm': o.allow_unlocked_memory = true; break;
        case 'h': fputs(provision_help, stdout); return 0;
        default: return cli_usage("ceremony provision", "unknown option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage("ceremony provision", "exactly one CONFIG.json is needed");
    hs_error e;
    hs_error_clear(&e);
    hs_ceremony_config *cfg = NULL;
    hs_transcript *t = NULL;
    char *pins[2] = {NULL, NULL};
    hs_result r = hs_ceremony_config_load(argv[optind], &cfg, &e);
    hs_profile profile = HS_PROFILE_WRAPPED;
    if (r == HS_OK)
        r = check_profile(g, &profile, &e);
    if (r == HS_OK && cfg->warning[0] != '\0') /* always shown */
        fprintf(stderr, "hsmsign: WARNING: %s: %s\n", argv[optind], cfg->warning);
    if (r == HS_OK)
        r = read_current_pin(cur, "current SO PIN of the tokens", &pins[0], &e);
    if (r == HS_OK)
        r = read_current_pin(cur_backup, "current SO PIN of the backup token", &pins[1], &e);
    if (r == HS_OK) {
        o.module = g->module;
        o.module_init_args = g->module_init_args;
        o.profile = hs_profile_name(profile);
        o.audit_dir = g->audit_log;
        o.current_so_pin[0] = pins[0];
        o.current_so_pin[1] = pins[1] != NULL ? pins[1] : pins[0];
        o.step = step_note;
        o.step_ctx = (void *)g;
        r = hs_ceremony_provision(cfg, &o, &t, &e);
    }
    hs_pin_free(pins[0]);
    hs_pin_free(pins[1]);
    free(cfg);
    if (r != HS_OK)
        return cli_fail(g, &e);
    print_provisioned(g, t, o.out_dir);
    hs_transcript_free(t);
    return 0;
}

static const char restore_help[] =
    "usage: hsmsign ceremony restore --token URI --transcript FILE [--replace-wrap-key]\n"
    "                                (--audit-key PEM | --unsigned-transcript)\n"
    "                                (--share FILE ... [--identity FILE ...] | --share-stdin)\n"
    "\n"
    "Restores the wrap key into a new token from threshold shares: each holder\n"
    "gives their age-encrypted share file (--share) and age identity file\n"
    "(--identity), or decrypts it with `age -d` and pipes the plain share in\n"
    "(--share-stdin; several shares may follow each other). The key is\n"
    "reconstructed in locked memory, checked against the transcript's check value,\n"
    "imported as sensitive and non-extractable, and wiped. The token must be\n"
    "initialized with a user PIN (global --pin-source, default env:HSMSIGN_PIN) and\n"
    "have no wrap key. Shares that cannot be used are named and set aside.\n"
    "FILE.sig must verify with --audit-key PEM, the auditor's own copy of the audit\n"
    "public key (exit 1 if missing or bad); --unsigned-transcript goes on without.\n"
    "\n"
    "  --replace-wrap-key  the token already holds this wrap key, made before\n"
    "                      hsmsign enforced custody attributes (no unwrap template:\n"
    "                      a PIN holder could read the signing keys). Imports the\n"
    "                      same key with them and destroys the old copy; key files\n"
    "                      stay valid. Safe to run again if interrupted.\n";

static int ceremony_restore(const cli_globals *g, int argc, char **argv)
{
    share_session s;
    hs_result r;
    int rc = cli_shares_start(g, "ceremony restore", restore_help, true, argc, argv, &s, &r);
    if (rc >= 0)
        return rc;
    cli_globals local = *g;
    local.token = s.so.token;
    cli_ctx ctx = {0};
    hs_wrapkey wk;
    size_t replaced = 0;
    if (r == HS_OK && s.set.count < s.t->threshold) {
        /* Refuse before touching the token. */
        r = hs_fail(&s.e, HS_E_VERIFY,
                    "%zu usable share%s, ceremony '%s' needs %u: nothing was restored",
                    s.set.count, s.set.count == 1 ? "" : "s", s.t->name, s.t->threshold);
    }
    if (r == HS_OK && (rc = cli_open(&local, CLI_LOGIN, &ctx)) != 0) {
        cli_shares_end(&s);
        return rc;
    }
    if (r == HS_OK)
        r = hs_ceremony_restore(ctx.p11, s.t, &s.set, g->audit_log, s.so.replace_wrap_key, &wk,
                                &replaced, s.rep, &s.e);
    if (s.rep != NULL)
        cli_shares_print_report(&s.set, s.rep);
    if (r == HS_OK) {
        char kcv[7];
        hs_hex_encode(wk.kcv, sizeof wk.kcv, kcv);
        if (g->json)
            cli_print_json(json_pack("{s:b, s:s, s:s, s:s, s:s, s:i, s:b, s:i}", "ok", 1, "token",
                                     ctx.p11->label, "serial", ctx.p11->serial, "wrap_key",
                                     wk.label, "check_value", kcv, "shares_used",
                                     (int)s.rep->used_count, "shares_set_aside",
                                     s.set.set_aside + s.rep->bad_count > 0, "replaced",
                                     (int)replaced));
        else
            printf("restored wrap key '%s' (check value %s, matches the transcript) into token "
                   "'%s' (serial %s) from %zu shares%s\n",
                   wk.label, kcv, ctx.p11->label, ctx.p11->serial, s.rep->used_count,
                   s.so.replace_wrap_key ? ", with its custody attributes; the unprotected "
                                           "copy is destroyed"
                                         : "");
    }
    cli_close(&ctx);
    cli_shares_end(&s);
    return r == HS_OK ? 0 : cli_fail(g, &s.e);
}

int cmd_ceremony(const cli_globals *g, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"provision", ceremony_provision, "provision the primary and backup tokens"},
        {"restore", ceremony_restore, "restore the wrap key into a new token from shares"},
    };
    return cli_dispatch(g, "ceremony", "Wrap-key ceremonies (docs/ceremony.md).", subs, 2, argc,
                        argv);
}
