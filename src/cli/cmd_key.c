/* hsmsign key: generate, import, generate-set, list, show (rotate: cmd_key_rotate.c). */
#include <errno.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "avb/avb_pubkey.h"
#include "cli.h"
#include "keystore/keygen.h"
#include "keystore/keystore.h"
#include "util/encoding.h"
#include "util/file.h"
#include "util/secmem.h"

static void print_generated(const cli_globals *g, const char *name, const char *verb)
{
    hs_keyfile kf;
    hs_error e;
    if (hs_keystore_load(g->keystore, name, &kf, &e) != HS_OK) {
        cli_note(g, "%s key '%s'", verb, name);
        return;
    }
    char fp[65];
    hs_keyfile_fingerprint_hex(&kf, fp);
    if (!g->json)
        printf("%s key '%s' (%s) in %s/%s.key\n  public key sha256: %s\n", verb, name,
               hs_keyalg_name(kf.alg), g->keystore, name, fp);
    hs_keyfile_free(&kf);
}

static const char generate_help[] =
    "usage: hsmsign key generate NAME --algorithm rsa2048|rsa3072|rsa4096|rsa8192|ec-p256\n"
    "                            [--subject DN] [--validity-days N]\n"
    "\n"
    "Generates a key pair inside the HSM, self-signs a certificate with it\n"
    "(signature made by the HSM, recorded in the audit log), exports the private\n"
    "key wrapped under the wrap key into KEYSTORE/NAME.key and destroys the\n"
    "token's copy. DN: \"CN=platform, O=Example, C=US\" (default CN=NAME).\n"
    "Validity defaults to 10000 days, as AOSP's make_key.\n";

static int key_generate(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"algorithm", required_argument, NULL, 'a'},
        {"subject", required_argument, NULL, 's'},
        {"validity-days", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    hs_keygen_params kp = {0};
    const char *alg = NULL;
    unsigned long days = 0;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': alg = optarg; break;
        case 's': kp.subject = optarg; break;
        case 'd':
            if (!cli_parse_uint(optarg, 100000, &days) || days == 0)
                return cli_usage("key generate", "--validity-days must be 1 to 100000");
            break;
        case 'h': fputs(generate_help, stdout); return 0;
        default: return cli_usage("key generate", "unknown option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage("key generate", "exactly one key NAME is needed");
    if (alg == NULL)
        return cli_usage("key generate", "--algorithm is required");
    if (!hs_keyalg_parse(alg, &kp.alg))
        return cli_usage("key generate",
                         "unsupported algorithm '%s' (use rsa2048, rsa3072, rsa4096, rsa8192 or ec-p256)",
                         alg);
    kp.name = argv[optind];
    kp.validity_days = (unsigned)days;
    hs_error e;
    hs_error_clear(&e);
    if (hs_key_name_check(kp.name, &e) != HS_OK)
        return cli_fail(g, &e);
    cli_ctx ctx;
    int rc = cli_open(g, CLI_SIGNER, &ctx);
    if (rc != 0)
        return rc;
    hs_result r = hs_key_generate(ctx.signer, &kp, &e);
    cli_close(&ctx);
    if (r != HS_OK)
        return cli_fail(g, &e);
    print_generated(g, kp.name, "generated");
    if (g->json)
        cli_print_json(json_pack("{s:b, s:s, s:s}", "ok", 1, "key", kp.name, "algorithm", alg));
    return 0;
}

static const char import_help[] =
    "usage: hsmsign key import NAME --pk8 KEY.pk8 --cert CERT.x509.pem\n"
    "\n"
    "Brings an existing key (AOSP .pk8 = unencrypted PKCS#8 DER; also PKCS#1 or\n"
    "SEC1, DER or PEM; RSA 2048-8192 or EC P-256) under the wrap key, for keys\n"
    "devices already trust. The plaintext key is read and parsed in locked memory\n"
    "only and goes from there into the HSM, leaving only wrapped; the certificate\n"
    "(which must be for this key) is kept as it is. Afterwards, destroy the\n"
    "plaintext file.\n";

static hs_result load_cert(const char *path, X509 **out, hs_error *e)
{
    uint8_t *data;
    size_t len;
    hs_result r = hs_read_file(path, 1 << 20, &data, &len, e);
    if (r != HS_OK)
        return r;
    BIO *b = BIO_new_mem_buf(data, (int)len);
    *out = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (*out == NULL) {
        const unsigned char *q = data;
        *out = d2i_X509(NULL, &q, (long)len);
    }
    free(data);
    return *out != NULL ? HS_OK : hs_fail(e, HS_E_FORMAT, "%s: not a PEM or DER X.509 certificate", path);
}

static int key_import(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"pk8", required_argument, NULL, 'k'},
        {"cert", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pk8 = NULL, *cert_path = NULL;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'k': pk8 = optarg; break;
        case 'c': cert_path = optarg; break;
        case 'h': fputs(import_help, stdout); return 0;
        default: return cli_usage("key import", "unknown option");
        }
    }
    if (optind + 1 != argc || pk8 == NULL || cert_path == NULL)
        return cli_usage("key import", "NAME, --pk8 and --cert are required");
    const char *name = argv[optind];
    hs_error e;
    hs_error_clear(&e);
    X509 *cert = NULL;
    uint8_t *key = NULL;
    size_t key_len = 0;
    hs_result r = hs_key_name_check(name, &e);
    if (r == HS_OK)
        r = load_cert(cert_path, &cert, &e);
    if (r == HS_OK)
        r = hs_read_secret_file(pk8, 1 << 20, &key, &key_len, &e);
    if (r != HS_OK) {
        X509_free(cert);
        return cli_fail(g, &e);
    }
    cli_ctx ctx;
    int rc = cli_open(g, CLI_SIGNER, &ctx);
    if (rc == 0) {
        r = hs_key_import(ctx.signer, name, key, key_len, pk8, cert, &e);
        cli_close(&ctx);
    }
    hs_secure_free(key, key_len + 1);
    X509_free(cert);
    if (rc != 0)
        return rc;
    if (r != HS_OK)
        return cli_fail(g, &e);
    print_generated(g, name, "imported");
    if (g->json)
        cli_print_json(json_pack("{s:b, s:s}", "ok", 1, "key", name));
    cli_note(g,
             "warning: %s still holds the private key in plaintext. Now that '%s' is stored\n"
             "wrapped, destroy that file and every copy of it (e.g. `shred -u %s`).",
             pk8, name, pk8);
    return 0;
}

static const char set_help[] =
    "usage: hsmsign key generate-set android --device DEVICE\n"
    "                                [--app-algorithm rsa2048|rsa3072|rsa4096|ec-p256]\n"
    "                                [--organization ORG]\n"
    "\n"
    "Generates the standard AOSP key set for DEVICE: releasekey, platform, shared,\n"
    "media, networkstack, sdk_sandbox, bluetooth, nfc (RSA-2048 unless\n"
    "--app-algorithm) and avb-DEVICE (RSA-4096). Existing keys are kept, never\n"
    "overwritten. All keys are wrapped; the HSM keeps only its wrap key.\n";

static int key_generate_set(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"device", required_argument, NULL, 'd'},
        {"app-algorithm", required_argument, NULL, 'a'},
        {"organization", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *device = NULL, *org = NULL;
    hs_keyalg app_alg = HS_KEY_RSA2048;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': device = optarg; break;
        case 'o': org = optarg; break;
        case 'a':
            if (!hs_keyalg_parse(optarg, &app_alg))
                return cli_usage("key generate-set", "unsupported algorithm '%s'", optarg);
            break;
        case 'h': fputs(set_help, stdout); return 0;
        default: return cli_usage("key generate-set", "unknown option");
        }
    }
    if (optind + 1 != argc || strcmp(argv[optind], "android") != 0)
        return cli_usage("key generate-set", "the only key set is 'android'");
    if (device == NULL)
        return cli_usage("key generate-set", "--device is required");
    hs_android_key set[HS_ANDROID_SET_SIZE];
    hs_error e;
    hs_error_clear(&e);
    if (hs_android_key_set(device, app_alg, org, set, &e) != HS_OK)
        return cli_fail(g, &e);
    cli_ctx ctx;
    int rc = cli_open(g, CLI_SIGNER, &ctx);
    if (rc != 0)
        return rc;
    json_t *report = json_array();
    unsigned made = 0, kept = 0;
    hs_result r = HS_OK;
    for (size_t i = 0; i < HS_ANDROID_SET_SIZE && r == HS_OK; i++) {
        cli_progress(g, i + 1, HS_ANDROID_SET_SIZE, set[i].name);
        const char *state;
        if (hs_keystore_exists(g->keystore, set[i].name)) {
            state = "kept";
            kept++;
        } else {
            hs_keygen_params kp = {set[i].name, set[i].alg, set[i].subject, 0};
            r = hs_key_generate(ctx.signer, &kp, &e);
            state = "generated";
            made++;
        }
        if (r == HS_OK) {
            json_array_append_new(report, json_pack("{s:s, s:s, s:s}", "key", set[i].name,
                                                    "algorithm", hs_keyalg_name(set[i].alg),
                                                    "state", state));
            if (!g->json)
                printf("%-10s %-14s %s\n", state, set[i].name, hs_keyalg_name(set[i].alg));
        }
    }
    cli_progress_end(g);
    cli_close(&ctx);
    if (r != HS_OK) {
        json_decref(report);
        return cli_fail(g, &e);
    }
    if (g->json)
        cli_print_json(json_pack("{s:b, s:s, s:o}", "ok", 1, "device", device, "keys", report));
    else {
        json_decref(report);
        printf("%u generated, %u already present, in %s\n", made, kept, g->keystore);
    }
    return 0;
}

static int key_list(const cli_globals *g, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs("usage: hsmsign key list\n\nLists the keys in the key store (no token needed).\n",
              stdout);
        return 0;
    }
    if (argc != 1)
        return cli_usage("key list", "no arguments are taken");
    hs_error e;
    hs_error_clear(&e);
    char **names;
    size_t n;
    if (hs_keystore_list(g->keystore, &names, &n, &e) != HS_OK)
        return cli_fail(g, &e);
    json_t *arr = json_array();
    int rc = 0;
    if (!g->json)
        printf("%-24s %-9s %-10s %-20s %s\n", "NAME", "ALGORITHM", "ORIGIN", "CREATED",
               "PUBLIC KEY SHA-256");
    for (size_t i = 0; i < n; i++) {
        hs_keyfile kf;
        if (hs_keystore_load(g->keystore, names[i], &kf, &e) != HS_OK) {
            /* One bad file must not hide the others: report and go on. */
            fprintf(stderr, "hsmsign: %s\n", e.msg);
            rc = hs_result_exit_code(e.code);
            continue;
        }
        char fp[65];
        hs_keyfile_fingerprint_hex(&kf, fp);
        if (g->json)
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", kf.name,
                                                 "algorithm", hs_keyalg_name(kf.alg), "origin",
                                                 kf.origin, "created", kf.created,
                                                 "public_key_sha256", fp, "profile",
                                                 hs_profile_name(kf.profile)));
        else
            printf("%-24s %-9s %-10s %-20s %.16s...\n", kf.name, hs_keyalg_name(kf.alg), kf.origin,
                   kf.created, fp);
        hs_keyfile_free(&kf);
    }
    hs_keystore_list_free(names, n);
    if (g->json)
        cli_print_json(arr);
    else
        json_decref(arr);
    return rc;
}

static const char show_help[] =
    "usage: hsmsign key show NAME [--cert | --public-key | --avb-public-key] [--output FILE]\n"
    "\n"
    "Shows the public parts of a key (no token needed): a summary, or the\n"
    "certificate (PEM), the public key (PEM), or the AVB public key blob\n"
    "(avb_pkmd.bin, for `fastboot flash avb_custom_key`; binary, use --output).\n";

static int write_output(const cli_globals *g, const char *output, const void *data, size_t len)
{
    hs_error e;
    hs_error_clear(&e);
    if (output == NULL) {
        if (fwrite(data, 1, len, stdout) != len) {
            hs_fail(&e, HS_E_IO, "cannot write to standard output: %s", strerror(errno));
            return cli_fail(g, &e);
        }
        return 0;
    }
    if (cli_output_ok(g, output, NULL, 0, &e) != HS_OK ||
        hs_write_file_atomic(output, data, len, 0644, false, &e) != HS_OK)
        return cli_fail(g, &e);
    return 0;
}

static int print_summary(const cli_globals *g, const hs_keyfile *kf)
{
    char fp[65], kcv[7], serial_hex[80] = "", id[2 * HS_KEY_ID_MAX + 1] = "", where[2 * HS_KEY_ID_MAX + 2 * HS_KCV_LEN + sizeof ((hs_keyfile *)0)->wrap_label + 96];
    bool resident = kf->profile == HS_PROFILE_RESIDENT;
    hs_keyfile_fingerprint_hex(kf, fp);
    if (kf->wrap_kcv_unknown)
        snprintf(kcv, sizeof kcv, "none");
    else
        hs_hex_encode(kf->wrap_kcv, HS_KCV_LEN, kcv);
    hs_hex_encode(kf->key_id, kf->key_id_len, id);
    if (resident)
        snprintf(where, sizeof where, "token object, CKA_ID %s (no copy outside the token)", id);
    else
        snprintf(where, sizeof where, "wrapped under '%s' (check value %s)", kf->wrap_label, kcv);
    if (resident)
        kcv[0] = '\0';
    char *subject = X509_NAME_oneline(X509_get_subject_name(kf->cert), NULL, 0);
    const ASN1_INTEGER *sn = X509_get0_serialNumber(kf->cert);
    BIGNUM *bn = ASN1_INTEGER_to_BN(sn, NULL);
    char *sh = bn != NULL ? BN_bn2hex(bn) : NULL;
    snprintf(serial_hex, sizeof serial_hex, "%s", sh ? sh : "?");
    OPENSSL_free(sh);
    BN_free(bn);
    char not_after[64] = "";
    BIO *b = BIO_new(BIO_s_mem());
    if (b != NULL && ASN1_TIME_print(b, X509_get0_notAfter(kf->cert)))
        BIO_read(b, not_after, sizeof not_after - 1);
    BIO_free(b);
    if (g->json)
        cli_print_json(json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "name",
                                 kf->name, "algorithm", hs_keyalg_name(kf->alg), "origin",
                                 kf->origin, "created", kf->created, "public_key_sha256", fp,
                                 "profile", hs_profile_name(kf->profile), "wrap_key_check_value",
                                 kcv, "token_key_id", id, "subject", subject ? subject : "",
                                 "serial", serial_hex, "not_after", not_after));
    else
        printf("name:              %s\nalgorithm:         %s\norigin:            %s\n"
               "created:           %s\npublic key sha256: %s\nprofile:           %s\n"
               "private key:       %s\nsubject:           %s\nserial:            %s\n"
               "not after:         %s\n",
               kf->name, hs_keyalg_name(kf->alg), kf->origin, kf->created, fp,
               hs_profile_name(kf->profile), where, subject ? subject : "", serial_hex, not_after);
    OPENSSL_free(subject);
    return 0;
}

static int pem_output(const cli_globals *g, const hs_keyfile *kf, bool cert, const char *output)
{
    BIO *b = BIO_new(BIO_s_mem());
    bool ok = b != NULL && (cert ? PEM_write_bio_X509(b, kf->cert) : PEM_write_bio_PUBKEY(b, kf->pub));
    char *data = NULL;
    long len = ok ? BIO_get_mem_data(b, &data) : 0;
    int rc = ok ? write_output(g, output, data, (size_t)len) : 6;
    BIO_free(b);
    return rc;
}

static int avb_public_key(const cli_globals *g, const hs_keyfile *kf, const char *output)
{
    hs_error e;
    hs_error_clear(&e);
    uint8_t *blob;
    size_t len;
    if (!hs_keyalg_is_rsa(kf->alg)) {
        hs_fail(&e, HS_E_USAGE, "key '%s' is %s; AVB keys are RSA", kf->name, hs_keyalg_name(kf->alg));
        return cli_fail(g, &e);
    }
    if (hs_avb_pubkey_encode(kf->pub, &blob, &len, &e) != HS_OK)
        return cli_fail(g, &e);
    int rc = write_output(g, output, blob, len);
    free(blob);
    return rc;
}

static int key_show(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"cert", no_argument, NULL, 'c'},
        {"public-key", no_argument, NULL, 'p'},
        {"avb-public-key", no_argument, NULL, 'a'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int what = 0, c;
    const char *output = NULL;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
        case 'p':
        case 'a':
            if (what != 0)
                return cli_usage("key show", "choose one of --cert, --public-key, --avb-public-key");
            what = c;
            break;
        case 'o': output = optarg; break;
        case 'h': fputs(show_help, stdout); return 0;
        default: return cli_usage("key show", "unknown option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage("key show", "exactly one key NAME is needed");
    hs_keyfile kf;
    hs_error e;
    hs_error_clear(&e);
    if (hs_keystore_load(g->keystore, argv[optind], &kf, &e) != HS_OK)
        return cli_fail(g, &e);
    int rc;
    if (what == 'c' || what == 'p')
        rc = pem_output(g, &kf, what == 'c', output);
    else if (what == 'a')
        rc = avb_public_key(g, &kf, output);
    else
        rc = print_summary(g, &kf);
    hs_keyfile_free(&kf);
    return rc;
}

int cmd_key(const cli_globals *g, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"generate", key_generate, "generate a key inside the HSM and store it wrapped"},
        {"import", key_import, "bring an existing .pk8 key under the wrap key"},
        {"generate-set", key_generate_set, "generate the standard Android key set for a device"},
        {"list", key_list, "list the keys in the key store"},
        {"show", key_show, "show a key's public parts"},
        {"rotate", cli_key_rotate, "sign a newer key into an APK signing certificate lineage"},
        {"export-releasetools", cli_key_export_releasetools,
         "write a key directory for AOSP releasetools (no secrets)"},
    };
    return cli_dispatch(g, "key", "Signing keys, stored wrapped in the key store.", subs, 7, argc,
                        argv);
}
