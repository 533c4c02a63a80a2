/* hsmsign key rotate: creates or extends a signing certificate lineage
 * (the file `apksigner rotate` writes) with the link signed by the older
 * key in the HSM, through the signer chokepoint (verified, audit-logged). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "apk/apk_lineage_write.h"
#include "cli.h"
#include "util/file.h"

static const char rotate_help[] =
    "usage: hsmsign key rotate --from OLD [capabilities] --to NEW [capabilities]\n"
    "                          --lineage FILE\n"
    "\n"
    "Key rotation for APK Signature Scheme v3: appends NEW's certificate to the\n"
    "signing certificate lineage FILE, signed by OLD in the HSM (recorded in the\n"
    "audit log). FILE is created with OLD as its first signer when it does not\n"
    "exist; otherwise OLD must be its newest signer. FILE is apksig's binary\n"
    "SigningCertificateLineage, as `apksigner rotate` writes it, replaced\n"
    "atomically. Sign with it: hsmsign sign apk --key NEW --lineage FILE\n"
    "[--old-key OLD].\n"
    "\n"
    "Capabilities, each true or false, apply to the signer named by the --from\n"
    "or --to before them (as apksigner rotate's --old-signer/--new-signer):\n"
    "  --set-installed-data BOOL  --set-shared-uid BOOL  --set-permission BOOL\n"
    "  --set-rollback BOOL        --set-auth BOOL\n"
    "Default: all true except rollback (apksig's default). For OLD they\n"
    "replace its capabilities in an existing lineage only when given.\n";

enum { OPT_FROM = 400, OPT_TO, OPT_LINEAGE, OPT_CAP_BASE };

static const struct {
    const char *name;
    uint32_t flag;
} capabilities[] = {
    {"set-installed-data", HS_APK_LINEAGE_INSTALLED_DATA},
    {"set-shared-uid", HS_APK_LINEAGE_SHARED_USER_ID},
    {"set-permission", HS_APK_LINEAGE_PERMISSION},
    {"set-rollback", HS_APK_LINEAGE_ROLLBACK},
    {"set-auth", HS_APK_LINEAGE_AUTH},
};
#define N_CAPS (sizeof capabilities / sizeof capabilities[0])

typedef struct rotate_args {
    const char *from, *to, *lineage;
    uint32_t from_flags, to_flags;
    bool from_flags_given;
} rotate_args;

static bool parse_bool_arg(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
        *out = true;
    else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
        *out = false;
    else
        return false;
    return true;
}

/* Returns -1 to go on, or the exit status. */
static int parse_rotate(int argc, char **argv, rotate_args *a)
{
    struct option opts[N_CAPS + 5];
    size_t n = 0;
    opts[n++] = (struct option){"from", required_argument, NULL, OPT_FROM};
    opts[n++] = (struct option){"to", required_argument, NULL, OPT_TO};
    opts[n++] = (struct option){"lineage", required_argument, NULL, OPT_LINEAGE};
    for (size_t i = 0; i < N_CAPS; i++)
        opts[n++] = (struct option){capabilities[i].name, required_argument, NULL,
                                    OPT_CAP_BASE + (int)i};
    opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    opts[n] = (struct option){NULL, 0, NULL, 0};
    memset(a, 0, sizeof *a);
    a->from_flags = a->to_flags = HS_LINEAGE_CAP_DEFAULT;
    int c, last = 0;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == OPT_FROM || c == OPT_TO) {
            *(c == OPT_FROM ? &a->from : &a->to) = optarg;
            last = c;
        } else if (c == OPT_LINEAGE) {
            a->lineage = optarg;
        } else if (c >= OPT_CAP_BASE && c < OPT_CAP_BASE + (int)N_CAPS) {
            bool on;
            if (last == 0)
                return cli_usage("key rotate", "capabilities follow the --from or --to they "
                                               "apply to");
            if (!parse_bool_arg(optarg, &on))
                return cli_usage("key rotate", "'%s' is not true or false", optarg);
            uint32_t *f = last == OPT_FROM ? &a->from_flags : &a->to_flags;
            uint32_t bit = capabilities[c - OPT_CAP_BASE].flag;
            *f = on ? *f | bit : *f & ~bit;
            a->from_flags_given |= last == OPT_FROM;
        } else if (c == 'h') {
            fputs(rotate_help, stdout);
            return 0;
        } else {
            return cli_usage("key rotate", "unknown option");
        }
    }
    if (optind != argc || a->from == NULL || a->to == NULL || a->lineage == NULL)
        return cli_usage("key rotate", "--from OLD, --to NEW and --lineage FILE are required");
    if (strcmp(a->from, a->to) == 0)
        return cli_usage("key rotate", "--from and --to name the same key");
    return -1;
}

/* The existing lineage, or a new one with OLD as its first signer; *before
 * is the SHA-256 of the file's current bytes (of nothing when new). */
static hs_result load_or_create(const rotate_args *a, const hs_apk_key *old, hs_lineage *l,
                                uint8_t before[32], hs_error *e)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (access(a->lineage, F_OK) != 0 && errno == ENOENT) {
        EVP_Digest("", 0, before, NULL, EVP_sha256(), NULL);
        return hs_lineage_init(l, old->cert_der, old->cert_der_len, a->from_flags, e);
    }
    hs_result r = hs_read_file(a->lineage, 1u << 20, &data, &len, e);
    if (r == HS_OK) {
        EVP_Digest(data, len, before, NULL, EVP_sha256(), NULL);
        r = hs_lineage_parse(data, len, a->lineage, l, e);
    }
    free(data);
    if (r == HS_OK && a->from_flags_given)
        l->nodes[l->count - 1].flags = a->from_flags;
    return r;
}

static hs_result rotate(cli_ctx *ctx, const rotate_args *a, size_t *count, hs_error *e)
{
    hs_apk_key old, new;
    uint8_t *old_der = NULL, *new_der = NULL, before[32], after[32];
    hs_lineage l = {0};
    hs_apk_buf file = {0};
    hs_result r = cli_apk_key(ctx->signer, a->from, &old, &old_der, e);
    if (r == HS_OK)
        r = cli_apk_key(ctx->signer, a->to, &new, &new_der, e);
    if (r == HS_OK)
        r = load_or_create(a, &old, &l, before, e);
    if (r == HS_OK)
        r = hs_lineage_extend(&l, &old, &new, a->to_flags, hs_signer_fn(ctx->signer), a->lineage,
                              e);
    if (r == HS_OK)
        r = hs_lineage_encode_file(&l, &file, e);
    if (r == HS_OK) {
        EVP_Digest(file.data, file.len, after, NULL, EVP_sha256(), NULL);
        r = hs_signer_record_output(ctx->signer, "apk-lineage", a->from, a->lineage, before,
                                    after, e);
    }
    if (r == HS_OK)
        r = hs_write_file_atomic(a->lineage, file.data, file.len, 0644, false, e);
    *count = l.count;
    hs_lineage_free(&l);
    hs_apk_buf_free(&file);
    free(old_der);
    free(new_der);
    return r;
}

int cli_key_rotate(const cli_globals *g, int argc, char **argv)
{
    rotate_args a;
    int rc = parse_rotate(argc, argv, &a);
    if (rc >= 0)
        return rc;
    rc = cli_check_output(g, a.lineage, NULL, 0);
    if (rc != 0)
        return rc;
    cli_ctx ctx;
    rc = cli_open(g, CLI_SIGNER | CLI_AGENT, &ctx);
    if (rc != 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    size_t count = 0;
    hs_result r = rotate(&ctx, &a, &count, &e);
    cli_close(&ctx);
    if (r != HS_OK)
        return cli_fail(g, &e);
    if (g->json)
        cli_print_json(json_pack("{s:b, s:s, s:s, s:s, s:I}", "ok", 1, "lineage", a.lineage,
                                 "from", a.from, "to", a.to, "signers", (json_int_t)count));
    else
        cli_note(g, "%s: '%s' signed '%s' into the lineage (%zu signers)", a.lineage, a.from,
                 a.to, count);
    return 0;
}
