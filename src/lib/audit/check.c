/* `audit check` (see check.h). */
#include "audit/check.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apk/apk.h"
#include "avb/avb_info.h"
#include "avb/avb_pubkey.h"
#include "avb/avb_verify.h"
#include "apex/apex.h"
#include "ota/ota_verify.h"
#include "audit/log.h"
#include "keystore/keystore.h"
#include "util/encoding.h"
#include "util/file.h"

#define MAX_DEPTH 32
#define MAX_SIG_FILE 65536

typedef struct our_key {
    char name[HS_KEY_NAME_MAX + 1];
    EVP_PKEY *pub;
    uint8_t fingerprint[32];
} our_key;

typedef struct checker {
    our_key *keys;
    size_t nkeys;
    uint8_t *logged; /* sig_sha256 of every entry, sorted */
    size_t nlogged;
    hs_audit_check_report *rep;
} checker;

static int cmp32(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

static hs_result load_keys(checker *c, const char *keystore_dir, hs_error *e)
{
    char **names;
    size_t n;
    hs_result r = hs_keystore_list(keystore_dir, &names, &n, e);
    if (r != HS_OK)
        return r;
    c->keys = calloc(n ? n : 1, sizeof *c->keys);
    if (c->keys == NULL)
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
    for (size_t i = 0; r == HS_OK && i < n; i++) {
        hs_keyfile kf;
        r = hs_keystore_load(keystore_dir, names[i], &kf, e);
        if (r != HS_OK)
            break;
        our_key *k = &c->keys[c->nkeys++];
        snprintf(k->name, sizeof k->name, "%s", kf.name);
        memcpy(k->fingerprint, kf.fingerprint, 32);
        k->pub = kf.pub;
        EVP_PKEY_up_ref(k->pub);
        hs_keyfile_free(&kf);
    }
    hs_keystore_list_free(names, n);
    return r;
}

static hs_result load_logged(checker *c, const char *log_dir, hs_error *e)
{
    hs_auditlog log;
    hs_result r = hs_auditlog_load(log_dir, &log, e);
    if (r != HS_OK)
        return r;
    c->logged = malloc(32 * (log.count ? log.count : 1));
    if (c->logged == NULL)
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
    for (size_t i = 0; r == HS_OK && i < log.count; i++) {
        size_t len;
        const char *line = hs_auditlog_entry(&log, i, &len);
        json_t *o = json_loadb(line, len, 0, NULL);
        const char *hex = json_string_value(json_object_get(o, "sig_sha256"));
        if (hex != NULL && hs_hex_decode(hex, c->logged + 32 * c->nlogged, 32))
            c->nlogged++;
        json_decref(o);
    }
    hs_auditlog_free(&log);
    if (r == HS_OK)
        qsort(c->logged, c->nlogged, 32, cmp32);
    return r;
}

static const our_key *key_by_fingerprint(const checker *c, const uint8_t fp[32])
{
    for (size_t i = 0; i < c->nkeys; i++)
        if (memcmp(c->keys[i].fingerprint, fp, 32) == 0)
            return &c->keys[i];
    return NULL;
}

/* Counts a signature by one of our keys; records it when unlogged. */
static hs_result found(checker *c, const char *path, const char *scheme, const our_key *k,
                       const uint8_t sig_sha256[32], hs_error *e)
{
    c->rep->ours++;
    if (bsearch(sig_sha256, c->logged, c->nlogged, 32, cmp32) != NULL)
        return HS_OK;
    hs_audit_finding *more = realloc(c->rep->findings, (c->rep->unlogged + 1) * sizeof *more);
    if (more == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    c->rep->findings = more;
    hs_audit_finding *f = &more[c->rep->unlogged];
    f->path = strdup(path);
    if (f->path == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    f->scheme = scheme;
    snprintf(f->key, sizeof f->key, "%s", k->name);
    memcpy(f->sig_sha256, sig_sha256, 32);
    c->rep->unlogged++;
    return HS_OK;
}

/* SHA-256 of the SubjectPublicKeyInfo: the key store's fingerprint. */
static bool key_fingerprint(EVP_PKEY *key, uint8_t fp[32])
{
    unsigned char *spki = NULL;
    int spki_len = key != NULL ? i2d_PUBKEY(key, &spki) : -1;
    if (spki_len <= 0)
        return false;
    EVP_Digest(spki, (size_t)spki_len, fp, NULL, EVP_sha256(), NULL);
    OPENSSL_free(spki);
    return true;
}

static bool cert_fingerprint(const uint8_t *der, size_t len, uint8_t fp[32])
{
    const uint8_t *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)len);
    bool ok = cert != NULL && key_fingerprint(X509_get0_pubkey(cert), fp);
    X509_free(cert);
    return ok;
}

/* An APK's v1 (JAR), v2 and v3 signatures. One that does not verify is no signature of
 * ours (nobody can make one that does without the key), so it is skipped;
 * `hsmsign verify apk` is the tool for broken APKs. */
static hs_result check_apk(checker *c, const char *path, hs_error *e)
{
    hs_apk_verify_report vr;
    hs_error ignored;
    /* From API level 21 (below 24 and 28) every scheme present is checked:
     * Android skips v1 and v2 on newer platforms when v2+/v3 is there. An
     * APK that fails that (e.g. v2+ only) gets its default range. */
    const hs_apk_verify_options all = {.min_sdk = 21, .max_sdk = -1};
    hs_result vres = hs_apk_verify_file_range(path, &all, &vr, &ignored);
    if (vres != HS_OK) {
        hs_apk_verify_report_free(&vr);
        vres = hs_apk_verify_file(path, &vr, &ignored);
    }
    uint8_t fp[32];
    const our_key *k = NULL;
    if (vres == HS_OK && vr.cert_der != NULL && cert_fingerprint(vr.cert_der, vr.cert_der_len, fp))
        k = key_by_fingerprint(c, fp);
    c->rep->files++;
    c->rep->signatures += (size_t)vr.v1 + (size_t)vr.v2 + (size_t)vr.v3;
    hs_result r = HS_OK;
    if (k != NULL && vr.v1)
        r = found(c, path, "jar-sf", k, vr.v1_sig_sha256, e);
    if (r == HS_OK && k != NULL && vr.v2)
        r = found(c, path, "apk-v2", k, vr.v2_sig_sha256, e);
    if (r == HS_OK && k != NULL && vr.v3)
        r = found(c, path, "apk-v3", k, vr.v3_sig_sha256, e);
    hs_apk_verify_report_free(&vr);
    return r;
}

static bool verifies(EVP_PKEY *key, const uint8_t *data, size_t len, const uint8_t *sig,
                     size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* FILE.sig next to FILE: a detached SHA-256 signature (`sign raw`'s
 * default for RSA and EC keys), tried with every key of the store. */
static hs_result check_raw(checker *c, const char *sig_path, hs_error *e)
{
    size_t plen = strlen(sig_path);
    char *data_path = strndup(sig_path, plen - 4);
    if (data_path == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    struct stat st;
    hs_result r = HS_OK;
    if (stat(data_path, &st) != 0 || !S_ISREG(st.st_mode)) {
        free(data_path);
        return HS_OK;
    }
    uint8_t *sig = NULL, *data = NULL;
    size_t sig_len, data_len;
    r = hs_read_file(sig_path, MAX_SIG_FILE, &sig, &sig_len, e);
    if (r == HS_OK)
        r = hs_read_file(data_path, SIZE_MAX / 2, &data, &data_len, e);
    if (r == HS_OK) {
        c->rep->files++;
        c->rep->signatures++;
        for (size_t i = 0; i < c->nkeys; i++) {
            if (!verifies(c->keys[i].pub, data, data_len, sig, sig_len))
                continue;
            uint8_t h[32];
            EVP_Digest(sig, sig_len, h, NULL, EVP_sha256(), NULL);
            r = found(c, sig_path, "raw", &c->keys[i], h, e);
            break;
        }
    }
    free(sig);
    free(data);
    free(data_path);
    return r;
}

/* An AVB image: vbmeta.img, or a partition image with a footer (boot,
 * system, ...). Its vbmeta signature counts when it verifies with the
 * public key the image carries (as for APKs, one that does not is nobody's
 * signature) and that key is one of ours; the log knows it by the SHA-256
 * of the raw signature bytes, which is what the signer recorded for
 * `avb` commands and `avb signing-helper` alike. A .img without AVB
 * metadata (a plain file system image) is not an artifact here. */
/* One vbmeta's signature: counted when it verifies with the key it
 * carries (path names the image in a finding). */
static hs_result check_vbmeta(checker *c, const char *path, const hs_avb_vbmeta *v, hs_error *e)
{
    hs_error ignored;
    if (v->alg->hash_len == 0) /* algorithm NONE: unsigned */
        return HS_OK;
    c->rep->signatures++;
    EVP_PKEY *pub = NULL;
    uint8_t fp[32];
    const our_key *k = NULL;
    if (hs_avb_vbmeta_verify_signature(v, path, &ignored) == HS_OK &&
        hs_avb_pubkey_decode(v->public_key.p, v->public_key.len, path, &pub, NULL, &ignored) ==
            HS_OK &&
        key_fingerprint(pub, fp))
        k = key_by_fingerprint(c, fp);
    EVP_PKEY_free(pub);
    if (k == NULL)
        return HS_OK;
    uint8_t h[32];
    EVP_Digest(v->signature.p, v->signature.len, h, NULL, EVP_sha256(), NULL);
    return found(c, path, "avb", k, h, e);
}

static hs_result check_avb(checker *c, const char *path, hs_error *e)
{
    hs_avb_image img;
    hs_error ignored;
    if (hs_avb_image_load(path, &img, &ignored) != HS_OK)
        return HS_OK;
    c->rep->files++;
    hs_result r = check_vbmeta(c, path, &img.vbmeta, e);
    hs_avb_image_free(&img);
    return r;
}

/* An APEX: the container's APK signatures, and the vbmeta signature of
 * apex_payload.img, read from the container (reported as
 * "FILE.apex!apex_payload.img"). A file that is no APEX container (no
 * readable zip, no payload with a footer) has no payload signature. */
static hs_result check_apex(checker *c, const char *path, hs_error *e)
{
    hs_result r = check_apk(c, path, e);
    hs_zip z;
    hs_error ignored;
    if (r != HS_OK || hs_zip_open(&z, path, &ignored) != HS_OK)
        return r;
    const hs_zip_entry *payload;
    hs_avb_vbmeta v;
    char *where = NULL;
    if (hs_apex_payload_vbmeta(&z, &payload, &v, &ignored) == HS_OK) {
        if (asprintf(&where, "%s!%s", path, HS_APEX_PAYLOAD) < 0)
            r = hs_fail(e, HS_E_NOMEM, "out of memory");
        else
            r = check_vbmeta(c, where, &v, e);
        free(where);
    }
    hs_avb_vbmeta_free(&v);
    hs_zip_close(&z);
    return r;
}

/* An OTA package (*.zip): its whole-file signature (signapk -w, `sign
 * ota`), when it has one that verifies with the certificate it carries;
 * the log knows it by the SHA-256 of the signature value, as it knows an
 * APK's. A zip without the footer (target-files, otacerts.zip) or with a
 * signature that does not verify is not counted, as for APKs. */
static hs_result check_ota(checker *c, const char *path, hs_error *e)
{
    hs_ota_signature os;
    hs_error ignored;
    hs_result vres = hs_ota_wholefile_verify(path, &os, &ignored);
    if (vres == HS_E_NOTFOUND)
        return HS_OK;
    c->rep->files++;
    c->rep->signatures++;
    uint8_t fp[32];
    const our_key *k = NULL;
    if (vres == HS_OK && cert_fingerprint(os.cert_der, os.cert_der_len, fp))
        k = key_by_fingerprint(c, fp);
    hs_result r = k != NULL ? found(c, path, "ota-wholefile", k, os.sig_sha256, e) : HS_OK;
    hs_ota_signature_free(&os);
    return r;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* The artifact at path, by its name; other files are not artifacts. */
static hs_result check_file(checker *c, const char *path, const char *name, hs_error *e)
{
    if (ends_with(name, ".apk"))
        return check_apk(c, path, e);
    if (ends_with(name, ".apex"))
        return check_apex(c, path, e);
    if (ends_with(name, ".sig"))
        return check_raw(c, path, e);
    if (ends_with(name, ".img"))
        return check_avb(c, path, e);
    if (ends_with(name, ".zip"))
        return check_ota(c, path, e);
    return HS_OK;
}

static hs_result walk(checker *c, const char *dir, unsigned depth, hs_error *e)
{
    if (depth > MAX_DEPTH)
        return hs_fail(e, HS_E_USAGE, "%s: directories nested too deep", dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return hs_fail(e, HS_E_IO, "%s: %s", dir, strerror(errno));
    hs_result r = HS_OK;
    for (struct dirent *de; r == HS_OK && (de = readdir(d)) != NULL;) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *path;
        if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
            r = hs_fail(e, HS_E_NOMEM, "out of memory");
            break;
        }
        struct stat st;
        if (lstat(path, &st) != 0)
            r = hs_fail(e, HS_E_IO, "%s: %s", path, strerror(errno));
        else if (S_ISDIR(st.st_mode))
            r = walk(c, path, depth + 1, e);
        else if (S_ISREG(st.st_mode))
            r = check_file(c, path, de->d_name, e);
        free(path);
    }
    closedir(d);
    return r;
}

hs_result hs_audit_check_dir(const char *log_dir, const char *keystore_dir, const char *dir,
                             hs_audit_check_report *rep, hs_error *e)
{
    memset(rep, 0, sizeof *rep);
    checker c = {.rep = rep};
    hs_result r = load_keys(&c, keystore_dir, e);
    if (r == HS_OK)
        r = load_logged(&c, log_dir, e);
    struct stat st;
    if (r == HS_OK && stat(dir, &st) != 0)
        r = hs_fail(e, errno == ENOENT ? HS_E_NOTFOUND : HS_E_IO, "%s: %s", dir, strerror(errno));
    if (r == HS_OK && S_ISREG(st.st_mode)) {
        const char *base = strrchr(dir, '/');
        r = check_file(&c, dir, base ? base + 1 : dir, e);
    } else if (r == HS_OK)
        r = walk(&c, dir, 0, e);
    for (size_t i = 0; i < c.nkeys; i++)
        EVP_PKEY_free(c.keys[i].pub);
    free(c.keys);
    free(c.logged);
    return r;
}

void hs_audit_check_report_free(hs_audit_check_report *rep)
{
    for (size_t i = 0; i < rep->unlogged; i++)
        free(rep->findings[i].path);
    free(rep->findings);
    memset(rep, 0, sizeof *rep);
}
