/* hsmsign sign: raw (more formats join as they land; apk, ota, apex live in their own files). */
#include <string.h>

#include "cli.h"
#include "signer/raw.h"
#include "util/encoding.h"

static const char raw_help[] =
    "usage: hsmsign sign raw --key NAME [--algorithm ALG] IN OUT\n"
    "\n"
    "Writes a detached signature of IN to OUT, as `openssl dgst -sign` makes it\n"
    "(RSA: raw signature bytes; ECDSA: DER). IN is hashed on the host; only the\n"
    "digest goes to the HSM. ALG: rsa-pkcs1-sha256 (default for RSA keys),\n"
    "rsa-pkcs1-sha512, rsa-pss-sha256, rsa-pss-sha512, rsa-pkcs1-sha1 (legacy),\n"
    "ecdsa-p256-sha256 (default for EC keys).\n"
    "Check with: openssl dgst -sha256 -verify pub.pem -signature OUT IN\n";

static int sign_raw(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"algorithm", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key = NULL, *alg_name = NULL;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'k': key = optarg; break;
        case 'a': alg_name = optarg; break;
        case 'h': fputs(raw_help, stdout); return 0;
        default: return cli_usage("sign raw", "unknown option");
        }
    }
    if (key == NULL || optind + 2 != argc)
        return cli_usage("sign raw", "--key NAME, IN and OUT are required");
    hs_sig_alg alg = HS_SIG_RSA_PKCS1_SHA256;
    if (alg_name != NULL && !hs_sig_alg_parse(alg_name, &alg))
        return cli_usage("sign raw",
                         "unsupported algorithm '%s' (use rsa-pkcs1-sha256, rsa-pkcs1-sha512, "
                         "rsa-pss-sha256, rsa-pss-sha512, rsa-pkcs1-sha1 or ecdsa-p256-sha256)",
                         alg_name);
    const char *in = argv[optind], *out = argv[optind + 1];
    int rc = cli_check_output(g, out, &in, 1);
    if (rc != 0)
        return rc;
    cli_ctx ctx;
    rc = cli_open(g, CLI_SIGNER | CLI_AGENT, &ctx);
    if (rc != 0)
        return rc;
    hs_error e;
    hs_error_clear(&e);
    const hs_keyfile *kf;
    hs_result r = hs_signer_keyfile(ctx.signer, key, &kf, &e);
    if (r == HS_OK && alg_name == NULL)
        alg = hs_keyalg_default_sigalg(kf->alg);
    hs_raw_report rep;
    if (r == HS_OK)
        r = hs_sign_raw_file(ctx.signer, key, alg, in, out, &rep, &e);
    cli_close(&ctx);
    if (r != HS_OK)
        return cli_fail(g, &e);
    char sig_hex[65];
    hs_hex_encode(rep.sig_sha256, 32, sig_hex);
    if (g->json)
        cli_print_json(json_pack("{s:b, s:s, s:s, s:s, s:s, s:I, s:s}", "ok", 1, "input", in,
                                 "output", out, "key", key, "algorithm", hs_sig_alg_name(alg),
                                 "input_size", (json_int_t)rep.input_size, "signature_sha256",
                                 sig_hex));
    else
        cli_note(g, "signed %s with key '%s' (%s): %s", in, key, hs_sig_alg_name(alg), out);
    return 0;
}

int cmd_sign(const cli_globals *g, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"raw", sign_raw, "detached signature of a file"},
        {"apk", cli_sign_apk, "APK Signature Scheme v2/v3 (v1, v4 on request)"},
        {"batch", cli_sign_batch, "many APKs from a manifest, in one process"},
        {"ota", cli_sign_ota, "OTA package, whole-file signature (signapk -w layout)"},
        {"apex", cli_sign_apex, "APEX: payload hashtree footer + container (as sign_apex.py)"},
    };
    return cli_dispatch(g, "sign", "Sign artifacts. Every signature is made by the HSM and "
                                   "recorded in the audit log before it is written.",
                        subs, sizeof subs / sizeof subs[0], argc, argv);
}

int cmd_verify(const cli_globals *g, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"apk", cli_verify_apk, "check an APK's v1/v2/v3 signatures"},
    };
    return cli_dispatch(g, "verify", "hsmsign's own verifiers (release checks should also run "
                                     "the platform's tools, such as apksigner verify).",
                        subs, 1, argc, argv);
}
