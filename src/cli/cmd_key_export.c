/* hsmsign key export-releasetools: a key directory for stock AOSP
 * releasetools (`-d DIR`, `-k DIR/NAME`, `--avb_*_key DIR/NAME.pem`,
 * `--extra_apex_payload_key APEX=DIR/NAME.pem`) that holds no secret.
 * Per key:
 *   NAME.x509.pem   the certificate (APK, APEX container and OTA keys);
 *   NAME.pem        the public key, PEM: avbtool takes it as --key when a
 *                   signing helper signs (it reads only the public half);
 *   NAME.avbpubkey  RSA keys: the AVB public key blob (apexkeys.txt's
 *                   public_key, avb_custom_key);
 *   NAME.pk8        the placeholder releasetools insists on (placeholder.h).
 * Recipe: docs/releasetools.md. */
#include <errno.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "avb/avb_pubkey.h"
#include "cli.h"
#include "keystore/keystore.h"
#include "keystore/placeholder.h"
#include "util/file.h"
#include "util/secmem.h"

static const char export_help[] =
    "usage: hsmsign key export-releasetools DIR [--keys NAME,...]\n"
    "\n"
    "Writes a key directory for stock AOSP releasetools with no secret in it,\n"
    "for every key of the key store (or only those named): NAME.x509.pem (the\n"
    "certificate), NAME.pem (the public key: avbtool's --key when hsmsign signs\n"
    "through --signing_helper), NAME.avbpubkey (RSA keys) and NAME.pk8, a\n"
    "placeholder holding no key material that releasetools requires to exist\n"
    "(text naming hsmsign and the key; every key reader refuses it). DIR is\n"
    "created if missing; files written earlier are replaced, but a NAME.pk8\n"
    "that is not a placeholder (a real private key) is never overwritten: then\n"
    "nothing is written.\n"
    "No token needed. Then, e.g.:\n"
    "    sign_target_files_apks.py -d DIR --java_path hsmsign-java \\\n"
    "        --avb_vbmeta_key DIR/avb.pem --avb_vbmeta_extra_args \\\n"
    "        \"--signing_helper /path/to/avb-helper\" ...\n"
    "See docs/releasetools.md for the whole recipe.\n";

/* A NAME.pk8 already in DIR may only be replaced if it is our own
 * placeholder: a real private key there must not be destroyed. */
static hs_result check_pk8_slot(const char *path, hs_error *e)
{
    uint8_t *data = NULL;
    size_t len = 0;
    hs_result r = hs_read_secret_file(path, 1 << 20, &data, &len, e);
    if (r == HS_E_NOTFOUND) {
        hs_error_clear(e);
        return HS_OK;
    }
    if (r != HS_OK)
        return r;
    bool ours = hs_placeholder_pk8_is(data, len);
    hs_secure_free(data, len + 1);
    if (!ours)
        return hs_fail(e, HS_E_EXISTS,
                       "%s exists and is not an hsmsign placeholder (a private key?); refusing "
                       "to overwrite it: export into an empty directory",
                       path);
    return HS_OK;
}

static hs_result write_one(const cli_globals *g, const char *dir, const char *name,
                           const char *suffix, const void *data, size_t len, hs_error *e)
{
    char *path;
    if (asprintf(&path, "%s/%s%s", dir, name, suffix) < 0)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    hs_result r = cli_output_ok(g, path, NULL, 0, e);
    if (r == HS_OK && strcmp(suffix, ".pk8") == 0)
        r = check_pk8_slot(path, e);
    if (r == HS_OK)
        r = hs_write_file_atomic(path, data, len, 0644, false, e);
    free(path);
    return r;
}

static hs_result write_pem(const cli_globals *g, const char *dir, const hs_keyfile *kf,
                           bool cert, hs_error *e)
{
    BIO *b = BIO_new(BIO_s_mem());
    bool ok = b != NULL && (cert ? PEM_write_bio_X509(b, kf->cert) : PEM_write_bio_PUBKEY(b, kf->pub));
    char *data = NULL;
    long len = ok ? BIO_get_mem_data(b, &data) : 0;
    hs_result r = ok ? write_one(g, dir, kf->name, cert ? ".x509.pem" : ".pem", data, (size_t)len, e)
                     : hs_fail(e, HS_E_CRYPTO, "key '%s': cannot encode the %s as PEM", kf->name,
                               cert ? "certificate" : "public key");
    BIO_free(b);
    return r;
}

static hs_result export_key(const cli_globals *g, const char *dir, const hs_keyfile *kf,
                            hs_error *e)
{
    /* The placeholder goes first, re-checked as it is replaced (export_all
     * checked every slot before writing anything). */
    char *text = NULL;
    size_t len = 0;
    hs_result r = hs_placeholder_pk8_format(kf, &text, &len, e);
    if (r == HS_OK)
        r = write_one(g, dir, kf->name, ".pk8", text, len, e);
    free(text);
    if (r == HS_OK)
        r = write_pem(g, dir, kf, true, e);
    if (r == HS_OK)
        r = write_pem(g, dir, kf, false, e);
    if (r == HS_OK && hs_keyalg_is_rsa(kf->alg)) {
        uint8_t *blob;
        size_t blob_len;
        r = hs_avb_pubkey_encode(kf->pub, &blob, &blob_len, e);
        if (r == HS_OK) {
            r = write_one(g, dir, kf->name, ".avbpubkey", blob, blob_len, e);
            free(blob);
        }
    }
    return r;
}

/* "a,b,c" into a NULL-free array of names (the copy is owned by *buf). */
static hs_result split_names(const char *list, char **buf, char ***names, size_t *n, hs_error *e)
{
    *n = 0;
    *names = NULL;
    *buf = strdup(list);
    size_t cap = 1;
    for (const char *p = list; *p != '\0'; p++)
        cap += *p == ',';
    *names = calloc(cap, sizeof **names);
    if (*buf == NULL || *names == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    char *save = NULL;
    for (char *t = strtok_r(*buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        hs_result r = hs_key_name_check(t, e);
        if (r != HS_OK)
            return r;
        (*names)[(*n)++] = t;
    }
    if (*n == 0)
        return hs_fail(e, HS_E_USAGE, "--keys names no key");
    return HS_OK;
}

static hs_result export_all(const cli_globals *g, const char *dir, char **names, size_t n,
                            hs_error *e)
{
    /* Every key is loaded (and checked) before anything is written, so a
     * misspelt name leaves DIR as it was. */
    hs_keyfile *kfs = calloc(n ? n : 1, sizeof *kfs);
    if (kfs == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    hs_result r = HS_OK;
    size_t loaded = 0;
    for (; r == HS_OK && loaded < n; loaded++)
        if ((r = hs_keystore_load(g->keystore, names[loaded], &kfs[loaded], e)) != HS_OK)
            break;
    /* ... and every NAME.pk8 already there is checked, so a real private
     * key in DIR stops the export before any file is written. */
    for (size_t i = 0; r == HS_OK && i < n; i++) {
        char *pk8;
        if (asprintf(&pk8, "%s/%s.pk8", dir, kfs[i].name) < 0) {
            r = hs_fail(e, HS_E_NOMEM, "out of memory");
            break;
        }
        r = check_pk8_slot(pk8, e);
        free(pk8);
    }
    if (r == HS_OK)
        r = hs_mkdir_p(dir, 0755, e);
    for (size_t i = 0; r == HS_OK && i < n; i++)
        r = export_key(g, dir, &kfs[i], e);
    for (size_t i = 0; i < loaded; i++)
        hs_keyfile_free(&kfs[i]);
    free(kfs);
    return r;
}

int cli_key_export_releasetools(const cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"keys", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *list = NULL;
    int c;
    cli_reset_getopt();
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'k': list = optarg; break;
        case 'h': fputs(export_help, stdout); return 0;
        default: return cli_usage("key export-releasetools", "unknown option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage("key export-releasetools", "exactly one DIR is needed");
    const char *dir = argv[optind];
    hs_error e;
    hs_error_clear(&e);
    char *buf = NULL, **names = NULL;
    size_t n = 0;
    bool listed = list == NULL;
    hs_result r = list != NULL ? split_names(list, &buf, &names, &n, &e)
                               : hs_keystore_list(g->keystore, &names, &n, &e);
    if (r == HS_OK && n == 0)
        r = hs_fail(&e, HS_E_NOTFOUND, "the key store %s holds no key to export", g->keystore);
    if (r == HS_OK)
        r = export_all(g, dir, names, n, &e);
    if (r == HS_OK && g->json)
        cli_print_json(json_pack("{s:b, s:s, s:i}", "ok", 1, "dir", dir, "keys", (int)n));
    else if (r == HS_OK)
        cli_note(g, "exported %zu key%s to %s (certificates, public keys, placeholder .pk8)", n,
                 n == 1 ? "" : "s", dir);
    if (listed && names != NULL)
        hs_keystore_list_free(names, n);
    else
        free(names);
    free(buf);
    return r == HS_OK ? 0 : cli_fail(g, &e);
}
