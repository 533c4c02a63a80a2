/* TEST DRIVER ONLY: exercises src/lib/apk and src/lib/avb with the soft signer so the
 * integration scripts can compare our output with apksigner's byte for
 * byte. Not installed, never part of hsmsign.
 *
 *   apk_tool sign --key KEY --cert CERT [--min-sdk N] [--v1 0|1] [--v2 0|1]
 *                 [--v3 0|1] [--v1-name NAME] [--v4] [--align-all] IN OUT
 *   apk_tool verify APK
 *   apk_tool min-sdk APK
 */
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apk/apk.h"
#include "apk/axml.h"
#include "soft_signer.h"
#include "util/encoding.h"

static int fail(const hs_error *e)
{
    fprintf(stderr, "apk_tool: %s\n", e->msg);
    return hs_result_exit_code(e->code);
}

static int usage(void)
{
    fprintf(stderr, "usage: apk_tool sign --key K --cert C [--min-sdk N] [--v1 0|1] [--v2 0|1] "
                    "[--v3 0|1] [--v1-name NAME] [--v4] [--align-all] IN OUT\n"
                    "       apk_tool verify APK | apk_tool min-sdk APK\n");
    return 2;
}

static X509 *load_cert(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    X509 *c = PEM_read_X509(f, NULL, NULL, NULL);
    if (c == NULL) {
        rewind(f);
        c = d2i_X509_fp(f, NULL);
    }
    fclose(f);
    return c;
}

static int cmd_sign(int argc, char **argv)
{
    const char *key_path = NULL, *cert_path = NULL, *v1_name = NULL, *paths[2] = {0};
    int npaths = 0;
    hs_apk_options opt;
    hs_apk_options_init(&opt);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--key") == 0 && has_value)
            key_path = argv[++i];
        else if (strcmp(a, "--cert") == 0 && has_value)
            cert_path = argv[++i];
        else if (strcmp(a, "--min-sdk") == 0 && has_value)
            opt.min_sdk = atoi(argv[++i]);
        else if (strcmp(a, "--v1") == 0 && has_value)
            opt.v1 = atoi(argv[++i]);
        else if (strcmp(a, "--v2") == 0 && has_value)
            opt.v2 = atoi(argv[++i]);
        else if (strcmp(a, "--v3") == 0 && has_value)
            opt.v3 = atoi(argv[++i]);
        else if (strcmp(a, "--v1-name") == 0 && has_value)
            v1_name = argv[++i];
        else if (strcmp(a, "--v4") == 0)
            opt.v4 = true;
        else if (strcmp(a, "--align-all") == 0)
            opt.alignment_preserved = false;
        else if (a[0] != '-' && npaths < 2)
            paths[npaths++] = a;
        else
            return usage();
    }
    if (key_path == NULL || cert_path == NULL || npaths != 2)
        return usage();
    hs_error e = {0};
    soft_signer s;
    if (soft_signer_load(&s, key_path, &e) != HS_OK)
        return fail(&e);
    X509 *cert = load_cert(cert_path);
    if (cert == NULL) {
        fprintf(stderr, "apk_tool: %s: not a certificate\n", cert_path);
        soft_signer_free(&s);
        return 3;
    }
    uint8_t *der = NULL;
    int der_len = i2d_X509(cert, &der);
    hs_apk_key key = {.key_name = "test", .cert_der = der, .cert_der_len = (size_t)der_len,
                      .public_key = X509_get0_pubkey(cert), .v1_name = v1_name};
    hs_apk_report rep;
    hs_result r = hs_apk_sign_file(paths[0], paths[1], &key, &opt, soft_signer_fn(&s), &rep, &e);
    OPENSSL_free(der);
    X509_free(cert);
    soft_signer_free(&s);
    if (r != HS_OK)
        return fail(&e);
    char in_hex[65], out_hex[65];
    hs_hex_encode(rep.input_sha256, 32, in_hex);
    hs_hex_encode(rep.output_sha256, 32, out_hex);
    printf("min_sdk=%d v1=%d v2=%d v3=%d v4=%d signatures=%u sign_calls=%u alg=0x%04x\n"
           "input_sha256=%s\noutput_sha256=%s\n",
           rep.min_sdk, rep.v1, rep.v2, rep.v3, rep.v4, rep.signatures, s.calls, rep.algorithm_id,
           in_hex, out_hex);
    return 0;
}

static int cmd_verify(const char *path)
{
    hs_error e = {0};
    hs_apk_verify_report rep;
    hs_result r = hs_apk_verify_file(path, &rep, &e);
    char cert_hex[65];
    hs_hex_encode(rep.cert_sha256, 32, cert_hex);
    printf("min_sdk=%d v1=%d/%d v2=%d/%d v3=%d/%d alg=0x%04x cert_sha256=%s\n", rep.min_sdk,
           rep.v1_present, rep.v1, rep.v2_present, rep.v2, rep.v3_present, rep.v3,
           rep.algorithm_id, rep.cert_der ? cert_hex : "-");
    hs_apk_verify_report_free(&rep);
    return r == HS_OK ? 0 : fail(&e);
}

static int cmd_min_sdk(const char *path)
{
    hs_error e = {0};
    hs_zip z;
    int sdk = 0;
    if (hs_zip_open(&z, path, &e) != HS_OK)
        return fail(&e);
    hs_result r = hs_axml_apk_min_sdk(&z, &sdk, &e);
    hs_zip_close(&z);
    if (r != HS_OK)
        return fail(&e);
    printf("%d\n", sdk);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "sign") == 0)
        return cmd_sign(argc, argv);
    if (argc == 3 && strcmp(argv[1], "verify") == 0)
        return cmd_verify(argv[2]);
    if (argc == 3 && strcmp(argv[1], "min-sdk") == 0)
        return cmd_min_sdk(argv[2]);
    return usage();
}
