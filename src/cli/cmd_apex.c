/* hsmsign sign apex: releasetools' sign_apex.py with HSM keys (apex/apex.h). */
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apex/apex.h"
#include "cli.h"
#include "util/encoding.h"
#include "util/file.h"

static const char apex_help[] =
    "usage: hsmsign sign apex --payload-key P --container-key C [--min-sdk-version N]\n"
    "                         IN OUT\n"
    "\n"
    "Re-signs an uncompressed APEX as AOSP releasetools' sign_apex.py does, with\n"
    "output byte-identical to it for the same keys: apex_payload.img gets a new\n"
    "AVB hashtree footer signed with the payload key P (the payload's algorithm,\n"
    "hash algorithm, salt and apex.key property are kept; no partition size or\n"
    "name, as releasetools), apex_pubkey becomes P's AVB public key, and the\n"
    "container is signed with C and its certificate like `signapk -a 4096\n"
    "--align-file-size --min-sdk-version N` (N: --min-sdk-version, else the\n"
    "container's AndroidManifest.xml). P must be an RSA key of the size the\n"
    "payload's algorithm names (SHA256_RSA4096: 4096 bits). Work files go to\n"
    "$TMPDIR (a private directory, removed). Not supported: compressed APEXes\n"
    "(.capex); APKs inside the payload are not re-signed. OUT is written once\n"
    "the whole output is ready; IN is never changed.\n";

typedef struct apex_args {
    const char *payload_key, *container_key, *in, *out;
    int min_sdk;
} apex_args;

static int parse_apex(int argc, char **argv, apex_args *a)
{
    static const struct option opts[] = {
        {"payload-key", required_argument, NULL, 'p'},
        {"container-key", required_argument, NULL, 'c'},
        {"min-sdk-version", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->min_sdk = -1;
    unsigned long v;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': a->payload_key = optarg; break;
        case 'c': a->container_key = optarg; break;
        case 'm':
            if (!cli_parse_uint(optarg, 10000, &v))
                return cli_usage("sign apex", "--min-sdk-version needs a number");
            a->min_sdk = (int)v;
            break;
        case 'h': fputs(apex_help, stdout); return 0;
        default: return cli_usage("sign apex", "unknown option");
        }
    }
    if (a->payload_key == NULL || a->container_key == NULL || argc - optind != 2)
        return cli_usage("sign apex", "give --payload-key P --container-key C IN OUT");
    a->in = argv[optind];
    a->out = argv[optind + 1];
    return -1;
}

/* Refuses before any signature is made when OUT's directory cannot take
 * the file (the signatures would be logged for an output never written). */
static hs_result output_dir_writable(const char *out, hs_error *e)
{
    char *copy = out != NULL ? strdup(out) : NULL;
    if (copy == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    const char *dir = dirname(copy);
    hs_result r = HS_OK;
    if (access(dir, W_OK | X_OK) != 0)
        r = hs_fail(e, HS_E_IO, "%s: cannot write in %s: %s", out, dir, strerror(errno));
    free(copy);
    return r;
}

static hs_result sign_apex(hs_signer *s, const apex_args *a, hs_apex_sign_result *res,
                           hs_error *e)
{
    const hs_keyfile *payload;
    hs_apk_key container;
    uint8_t *der = NULL;
    hs_result r = hs_signer_keyfile(s, a->payload_key, &payload, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "payload key: ");
    r = cli_apk_key(s, a->container_key, &container, &der, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "container key: ");
    hs_apex_sign_options opt = {.payload_key = a->payload_key, .payload_public = payload->pub,
                                .container = &container, .min_sdk = a->min_sdk,
                                .tmp_dir = getenv("TMPDIR")};
    r = hs_apex_sign(a->in, &opt, hs_signer_fn(s), res, e);
    if (r == HS_OK)
        r = hs_signer_record_output(s, "apex", a->container_key, a->in, res->input_sha256,
                                    res->output_sha256, e);
    if (r == HS_OK)
        r = hs_write_file_atomic(a->out, res->out.data, res->out.len, 0644, false, e);
    OPENSSL_free(der);
    return r;
}

int cli_sign_apex(const cli_globals *g, int argc, char **argv)
{
    apex_args a;
    int rc = parse_apex(argc, argv, &a);
    if (rc >= 0)
        return rc;
    const char *inputs[] = {a.in};
    rc = cli_check_output(g, a.out, inputs, 1);
    if (rc != 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    if (output_dir_writable(a.out, &e) != HS_OK)
        return cli_fail(g, &e);
    cli_ctx ctx;
    rc = cli_open(g, CLI_SIGNER | CLI_AGENT, &ctx);
    if (rc != 0)
        return rc;
    hs_apex_sign_result res = {0};
    hs_result r = sign_apex(ctx.signer, &a, &res, &e);
    cli_close(&ctx);
    if (r != HS_OK) {
        hs_apex_sign_result_free(&res);
        return cli_fail(g, &e);
    }
    char sha[65];
    hs_hex_encode(res.output_sha256, 32, sha);
    if (g->json)
        cli_print_json(json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:s}", "ok", 1,
                                 "input", a.in, "output", a.out, "payload_key", a.payload_key,
                                 "container_key", a.container_key, "apex_key", res.apex_key,
                                 "algorithm", res.algorithm, "min_sdk", res.min_sdk, "signatures",
                                 res.signatures, "output_sha256", sha));
    else
        cli_note(g, "signed %s -> %s (APEX %s: payload key '%s' %s, container key '%s')", a.in,
                 a.out, res.apex_key, a.payload_key, res.algorithm, a.container_key);
    hs_apex_sign_result_free(&res);
    return 0;
}
