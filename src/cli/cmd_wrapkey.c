/* hsmsign wrapkey: create, show. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "keystore/auditkey.h"
#include "keystore/kwp.h"
#include "keystore/yubihsm.h"
#include "p11/ckr.h"
#include "util/encoding.h"

/* custody: NULL after create (checked there), else what show found. */
static void print_wrapkey(const cli_globals *g, const cli_ctx *ctx, const char *verb,
                          const hs_custody_report *custody)
{
    char kcv[7] = "";
    if (ctx->wrap.have_kcv)
        hs_hex_encode(ctx->wrap.kcv, HS_KCV_LEN, kcv);
    bool yh = ctx->wrap.mech == HS_CKM_YUBICO_AES_CCM_WRAP;
    bool protected = !ctx->wrap.custody_gap && (custody == NULL || custody->ok);
    const char *problem = protected ? "" : custody != NULL ? custody->problem
                                                           : "the token keeps no custody attributes";
    if (g->json) {
        cli_print_json(json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:s}", "ok", 1,
                                 "token", ctx->p11->label, "label", ctx->wrap.label,
                                 "check_value", kcv, "blob_format", yh ? "yubihsm" : "rfc5649", "mechanism",
                                 yh ? "CKM_YUBICO_AES_CCM_WRAP" : hs_ckm_name(ctx->wrap.mech), "trusted", ctx->wrap.trusted,
                                 "protected", protected, "custody_gap_accepted",
                                 ctx->wrap.custody_gap, "problem", problem));
        return;
    }
    printf("%s wrap key '%s' on token '%s'\n", verb, ctx->wrap.label, ctx->p11->label);
    if (yh) {
        /* The device's own blob format, its capabilities in place of
         * PKCS#11 custody attributes (docs/yubihsm.md). */
        printf("  check value: %s\n  blobs:       YubiHSM wrap blobs, through "
               "CKM_YUBICO_AES_CCM_WRAP\n  custody:     wrap and unwrap only; keys leave the "
               "device only wrapped under it\n", kcv[0] ? kcv : "none (the device keeps none)");
        return;
    }
    printf("  check value: %s\n  blobs:       RFC 5649, through %s\n  trusted:     %s\n",
           kcv[0] ? kcv : "none (the token keeps no CKA_CHECK_VALUE; key files name the key by "
                          "their canary)",
           hs_ckm_name(ctx->wrap.mech),
           ctx->wrap.trusted ? "yes (keys may be CKA_WRAP_WITH_TRUSTED)"
                             : "no (the token does not let the user set CKA_TRUSTED)");
    if (protected)
        printf("  custody:     unwrap template, wrap template and allowed mechanisms in place\n");
    else if (hs_p11_is_nss(ctx->p11))
        printf("  custody:     NOT ENFORCED: %s; used only with --accept-custody-gap "
               "(docs/tokens.md)\n", problem);
    else
        printf("  custody:     UNPROTECTED: %s; commands refuse it until it is replaced with "
               "`hsmsign ceremony restore --replace-wrap-key` (docs/ceremony.md)\n",
               problem);
}

/* A development token made without a ceremony still needs an audit key:
 * the log is checked with it before anything is recorded, and a new log
 * starts with a checkpoint it signs. So it comes first, and is recorded
 * once the log is open. */
hs_result cli_ensure_audit_key(cli_ctx *ctx, bool *created, hs_error *e)
{
    *created = false;
    hs_result r = hs_auditkey_find(ctx->p11, &ctx->audit_key, e);
    if (r != HS_E_NOTFOUND)
        return r;
    hs_error_clear(e);
    r = hs_auditkey_generate(ctx->p11, HS_AUDITKEY_AUTO, &ctx->audit_key, e);
    *created = r == HS_OK;
    return r;
}

hs_result cli_record_audit_key(cli_ctx *ctx, hs_error *e)
{
    char *pem = NULL;
    uint8_t fp[32];
    hs_result r = hs_auditkey_public_pem(ctx->audit_key.public_key, &pem, fp, e);
    hs_audit_entry en = {.operation = "auditkey-create", .key_name = HS_AUDITKEY_LABEL,
                         .key_fingerprint = fp,
                         .algorithm = hs_auditkey_alg_name(ctx->audit_key.alg)};
    if (r == HS_OK)
        r = hs_audit_append(ctx->audit, &en, NULL, e);
    free(pem);
    return r;
}

static const char create_help[] =
    "usage: hsmsign wrapkey create\n"
    "\n"
    "Generates the AES-256 wrap key inside the token: sensitive, never\n"
    "extractable, usable only to wrap and unwrap, with an unwrap template that\n"
    "makes every key it unwraps a sensitive, non-extractable, sign-only session\n"
    "object. Refuses if the token has one, or cannot hold the template.\n"
    "For production, the wrap key comes from `hsmsign ceremony provision`,\n"
    "which also backs it up as k-of-n shares; a key created here has no backup.\n"
    "Also creates the audit key (label hsmsign-audit) that signs the audit\n"
    "log's checkpoints when the token has none.\n";

static int wrapkey_create(const cli_globals *g, int argc, char **argv)
{
    cli_ctx ctx;
    int rc = cli_plain_open(g, argc, argv, "wrapkey create", create_help, CLI_LOGIN, &ctx);
    if (rc >= 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    bool audit_created = false;
    hs_result r = cli_require_wrap_profile(&ctx, "create", &e);
    if (r == HS_OK)
        r = cli_ensure_audit_key(&ctx, &audit_created, &e);
    if (r == HS_OK)
        r = cli_open_audit(&ctx, &e);
    if (r == HS_OK && audit_created)
        r = cli_record_audit_key(&ctx, &e);
    if (r == HS_OK && ctx.profile.profile == HS_PROFILE_YUBIHSM)
        r = hs_yh_wrapkey_make(ctx.p11, g->wrap_label, NULL, &ctx.wrap, &e);
    else if (r == HS_OK)
        r = hs_wrapkey_create(ctx.p11, g->wrap_label, &ctx.wrap, &e);
    if (r == HS_OK) {
        hs_audit_entry en = {.operation = "wrapkey-create", .key_name = ctx.wrap.label,
                             .algorithm = "aes256"};
        r = hs_audit_append(ctx.audit, &en, NULL, &e);
    }
    if (r != HS_OK) {
        cli_close(&ctx);
        return cli_fail(g, &e);
    }
    print_wrapkey(g, &ctx, "created", NULL);
    if (audit_created)
        cli_note(g, "created the audit key '%s' on token '%s'", HS_AUDITKEY_LABEL, ctx.p11->label);
    cli_close(&ctx);
    return 0;
}

static int wrapkey_show(const cli_globals *g, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs("usage: hsmsign wrapkey show\n\nShows the token's wrap key: label, check value, and\n"
              "whether the token enforces its custody attributes (unwrap template, wrap\n"
              "template, allowed mechanisms). An unprotected wrap key is shown, with what\n"
              "it lacks, and every other command refuses it.\n",
              stdout);
        return 0;
    }
    cli_ctx ctx;
    int rc = cli_open(g, CLI_LOGIN, &ctx);
    if (rc != 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    hs_custody_report custody;
    bool yh = ctx.profile.profile == HS_PROFILE_YUBIHSM;
    hs_result r = cli_require_wrap_profile(&ctx, "show", &e);
    if (r == HS_OK)
        r = yh ? hs_yh_wrapkey_find(ctx.p11, g->wrap_label, &ctx.wrap, &e)
               : hs_wrapkey_inspect(ctx.p11, g->wrap_label, &ctx.wrap, &custody, &e);
    if (r != HS_OK) {
        cli_close(&ctx);
        return cli_fail(g, &e);
    }
    print_wrapkey(g, &ctx, "found", yh ? NULL : &custody);
    cli_close(&ctx);
    return 0;
}

int cmd_wrapkey(const cli_globals *g, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"create", wrapkey_create, "generate the wrap key inside the token"},
        {"show", wrapkey_show, "show the token's wrap key"},
    };
    return cli_dispatch(g, "wrapkey", "The AES-256 key under which every signing key is stored.",
                        subs, 2, argc, argv);
}
