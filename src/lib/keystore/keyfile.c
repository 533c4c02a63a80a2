#include "keystore/keyfile.h"

#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "util/encoding.h"
#include "util/file.h"
#include "util/json.h"

#define FORMAT_NAME "hsmsign-key"

/* "profile" is optional (absent: wrapped, as every file written before
 * profiles); the rest depends on the profile. */
static const char *const fields[] = {
    "format", "version", "name", "algorithm", "origin", "created", "wrap",
    "wrapped_private_key", "public_key", "public_key_sha256", "certificate", "checksum", "profile",
};
static const char *const resident_fields[] = {
    "format", "version", "profile", "name", "algorithm", "origin", "created", "token_key",
    "public_key", "public_key_sha256", "certificate", "checksum",
};
/* "canary" (last) is optional: key files made before it, or by a token
 * that has CKA_CHECK_VALUE, may lack it. */
static const char *const wrap_fields[] = {"mechanism", "key_label", "key_check_value", "canary"};
static const char *const token_key_fields[] = {"id", "label"};
/* yubihsm profile: the object ID the blob restores (docs/key-file.md). */
static const char *const yubihsm_wrap_fields[] = {"mechanism", "key_label", "key_check_value",
                                                  "object_id"};
#define YUBIHSM_MECHANISM "CKM_YUBICO_AES_CCM_WRAP"

hs_result hs_key_name_check(const char *name, hs_error *e)
{
    size_t n = strlen(name);
    if (n == 0 || n > HS_KEY_NAME_MAX || name[0] == '.' || name[0] == '-')
        goto bad;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            goto bad;
    }
    return HS_OK;
bad:
    return hs_fail(e, HS_E_USAGE,
                   "key name '%s' is not valid: use 1 to %d letters, digits, '.', '_' or '-', "
                   "not starting with '.' or '-'",
                   name, HS_KEY_NAME_MAX);
}

void hs_keyfile_free(hs_keyfile *kf)
{
    free(kf->wrapped);
    free(kf->wrap_canary);
    free(kf->spki);
    X509_free(kf->cert);
    EVP_PKEY_free(kf->pub);
    memset(kf, 0, sizeof *kf);
}

void hs_keyfile_fingerprint_hex(const hs_keyfile *kf, char out[65])
{
    hs_hex_encode(kf->fingerprint, sizeof kf->fingerprint, out);
}

hs_result hs_keyfile_set_public(hs_keyfile *kf, EVP_PKEY *pub, hs_error *e)
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(pub, &der);
    if (len <= 0)
        return hs_fail(e, HS_E_CRYPTO, "cannot encode the public key of '%s'", kf->name);
    free(kf->spki);
    kf->spki = malloc((size_t)len);
    if (kf->spki == NULL) {
        OPENSSL_free(der);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    memcpy(kf->spki, der, (size_t)len);
    kf->spki_len = (size_t)len;
    OPENSSL_free(der);
    SHA256(kf->spki, kf->spki_len, kf->fingerprint);
    EVP_PKEY_up_ref(pub);
    EVP_PKEY_free(kf->pub);
    kf->pub = pub;
    return HS_OK;
}

/* The checksum covers the canonical (sorted, compact) encoding of every
 * other field, so any change to the file that still parses is caught,
 * with a message that says so rather than a confusing unwrap failure. */
static hs_result checksum_of(json_t *obj, char out[72], hs_error *e)
{
    json_t *copy = json_deep_copy(obj);
    if (copy == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    json_object_del(copy, "checksum");
    char *canon = json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(copy);
    if (canon == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    uint8_t d[32];
    SHA256((const uint8_t *)canon, strlen(canon), d);
    free(canon);
    memcpy(out, "sha256:", 7);
    hs_hex_encode(d, sizeof d, out + 7);
    return HS_OK;
}

static hs_result cert_pem(X509 *cert, char **out, hs_error *e)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data;
    if (b == NULL || !PEM_write_bio_X509(b, cert)) {
        BIO_free(b);
        return hs_fail(e, HS_E_CRYPTO, "cannot encode the certificate");
    }
    long n = BIO_get_mem_data(b, &data);
    *out = strndup(data, (size_t)n);
    BIO_free(b);
    return *out != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
}

/* The fields that say where the private key is: wrapped in the file, or
 * a token object named by CKA_ID. 0, or -1 when out of memory. */
static int where_key_is(const hs_keyfile *kf, json_t *obj, const char *kcv, const char *wrapped)
{
    if (kf->profile == HS_PROFILE_RESIDENT) {
        char id[2 * HS_KEY_ID_MAX + 1];
        hs_hex_encode(kf->key_id, kf->key_id_len, id);
        return json_object_set_new(obj, "token_key",
                                   json_pack("{s:s, s:s}", "id", id, "label", kf->name));
    }
    bool yh = kf->profile == HS_PROFILE_YUBIHSM;
    if (json_object_set_new(obj, "wrap",
                            json_pack("{s:s, s:s, s:s}", "mechanism",
                                      yh ? YUBIHSM_MECHANISM : "CKM_AES_KEY_WRAP_PAD",
                                      "key_label", kf->wrap_label, "key_check_value", kcv)) != 0)
        return -1;
    if (yh) {
        char id[2 * HS_KEY_ID_MAX + 1];
        hs_hex_encode(kf->key_id, kf->key_id_len, id);
        if (json_object_set_new(json_object_get(obj, "wrap"), "object_id", json_string(id)) != 0)
            return -1;
    }
    return json_object_set_new(obj, "wrapped_private_key", json_string(wrapped));
}

hs_result hs_keyfile_serialize(const hs_keyfile *kf, char **out, hs_error *e)
{
    *out = NULL;
    char kcv[2 * HS_KCV_LEN + 1] = "", fp[65], sum[72];
    if (!kf->wrap_kcv_unknown)
        hs_hex_encode(kf->wrap_kcv, HS_KCV_LEN, kcv);
    hs_keyfile_fingerprint_hex(kf, fp);
    /* A resident key has no blob: "" keeps one path for both. */
    char *wrapped = kf->wrapped != NULL ? hs_base64_encode(kf->wrapped, kf->wrapped_len) : strdup("");
    char *spki = hs_base64_encode(kf->spki, kf->spki_len);
    char *canary = kf->wrap_canary != NULL
                       ? hs_base64_encode(kf->wrap_canary, kf->wrap_canary_len) : NULL;
    char *pem = NULL;
    json_t *obj = NULL;
    hs_result r = HS_E_NOMEM;
    if (wrapped == NULL || spki == NULL || (kf->wrap_canary != NULL && canary == NULL))
        goto out;
    r = cert_pem(kf->cert, &pem, e);
    if (r != HS_OK)
        goto out;
    obj = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s}", "format", FORMAT_NAME, "version",
                    HS_KEYFILE_VERSION, "profile", hs_profile_name(kf->profile), "name", kf->name,
                    "algorithm", hs_keyalg_name(kf->alg), "origin", kf->origin, "created",
                    kf->created);
    r = HS_E_NOMEM;
    if (obj == NULL || where_key_is(kf, obj, kcv, wrapped) != 0 ||
        (canary != NULL && json_object_set_new(json_object_get(obj, "wrap"), "canary",
                                               json_string(canary)) != 0) ||
        json_object_set_new(obj, "public_key", json_string(spki)) != 0 ||
        json_object_set_new(obj, "public_key_sha256", json_string(fp)) != 0 ||
        json_object_set_new(obj, "certificate", json_string(pem)) != 0)
        goto out;
    r = checksum_of(obj, sum, e);
    if (r != HS_OK)
        goto out;
    json_object_set_new(obj, "checksum", json_string(sum));
    *out = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (*out == NULL)
        r = HS_E_NOMEM;
    else {
        /* json_dumps leaves no final newline; text files want one. */
        size_t n = strlen(*out);
        char *grown = realloc(*out, n + 2);
        if (grown == NULL) {
            free(*out);
            *out = NULL;
            r = HS_E_NOMEM;
        } else {
            grown[n] = '\n';
            grown[n + 1] = '\0';
            *out = grown;
        }
    }
out:
    free(wrapped);
    free(canary);
    free(spki);
    free(pem);
    json_decref(obj);
    if (r == HS_E_NOMEM)
        return hs_fail(e, r, "out of memory writing key file for '%s'", kf->name);
    return r;
}

static const char *get_string(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* names[0..n_required) must be there; names[n_required..n) may be. */
static hs_result check_exact_fields(json_t *obj, const char *const *names, size_t n_required,
                                    size_t n, const char *path, const char *where, hs_error *e)
{
    char what[sizeof "key file " + 4096]; /* a path; hs_error truncates longer */
    snprintf(what, sizeof what, "key file %s", path);
    return hs_json_check_fields(obj, names, n_required, n, what, where, e);
}

/* wrap + wrapped_private_key (wrapped profile). */
static hs_result parse_wrapped(json_t *root, const char *path, hs_keyfile *kf, hs_error *e)
{
    const char *wrapped = get_string(root, "wrapped_private_key");
    json_t *wrap = json_object_get(root, "wrap");
    if (!wrapped || !json_is_object(wrap))
        return hs_fail(e, HS_E_FORMAT, "key file %s: a field has the wrong type", path);
    bool yh = kf->profile == HS_PROFILE_YUBIHSM;
    hs_result r = yh ? check_exact_fields(wrap, yubihsm_wrap_fields, 4, 4, path, "wrap.", e)
                     : check_exact_fields(wrap, wrap_fields, 3, 4, path, "wrap.", e);
    if (r != HS_OK)
        return r;
    const char *mech = get_string(wrap, "mechanism"), *wlabel = get_string(wrap, "key_label"),
               *kcv = get_string(wrap, "key_check_value");
    const char *want = yh ? YUBIHSM_MECHANISM : "CKM_AES_KEY_WRAP_PAD";
    if (!mech || !wlabel || !kcv || strcmp(mech, want) != 0)
        return hs_fail(e, HS_E_FORMAT, "key file %s: wrap mechanism must be %s", path, want);
    const char *oid = yh ? get_string(wrap, "object_id") : NULL;
    if (yh && (oid == NULL || strlen(oid) != 4 || !hs_hex_decode(oid, kf->key_id, 2)))
        return hs_fail(e, HS_E_FORMAT, "key file %s: wrap.object_id is not 2 hex bytes", path);
    if (yh)
        kf->key_id_len = 2;
    /* Refused rather than shortened: a shortened wrap key label names
     * another key. */
    if (strlen(wlabel) >= sizeof kf->wrap_label)
        return hs_fail(e, HS_E_FORMAT, "key file %s: wrap key label too long", path);
    snprintf(kf->wrap_label, sizeof kf->wrap_label, "%s", wlabel);
    const char *canary = get_string(wrap, "canary");
    if (json_object_get(wrap, "canary") != NULL &&
        (canary == NULL || !hs_base64_decode(canary, &kf->wrap_canary, &kf->wrap_canary_len) ||
         kf->wrap_canary_len < 16))
        return hs_fail(e, HS_E_FORMAT, "key file %s: wrap.canary is not valid base64", path);
    /* Empty when the token could not say: then the canary names the key. */
    kf->wrap_kcv_unknown = *kcv == '\0';
    /* A YubiHSM blob opens only under its wrap key (AES-CCM): no canary
     * is needed to name the key. */
    if (!kf->wrap_kcv_unknown ? !hs_hex_decode(kcv, kf->wrap_kcv, HS_KCV_LEN)
                           : kf->wrap_canary == NULL && !yh)
        return hs_fail(e, HS_E_FORMAT,
                       "key file %s: wrap.key_check_value is not 3 hex bytes (it may be empty "
                       "only with a wrap.canary)", path);
    if (!hs_base64_decode(wrapped, &kf->wrapped, &kf->wrapped_len) || kf->wrapped_len < 16)
        return hs_fail(e, HS_E_FORMAT, "key file %s: wrapped_private_key is not valid base64", path);
    return HS_OK;
}

/* token_key (resident profile): the object's CKA_ID and label. */
static hs_result parse_token_key(json_t *root, const char *path, hs_keyfile *kf, hs_error *e)
{
    json_t *tk = json_object_get(root, "token_key");
    if (!json_is_object(tk))
        return hs_fail(e, HS_E_FORMAT, "key file %s: token_key is not an object", path);
    hs_result r = check_exact_fields(tk, token_key_fields, 2, 2, path, "token_key.", e);
    if (r != HS_OK)
        return r;
    const char *id = get_string(tk, "id"), *label = get_string(tk, "label");
    size_t n = id != NULL ? strlen(id) : 0;
    if (n == 0 || n % 2 != 0 || n / 2 > HS_KEY_ID_MAX || !hs_hex_decode(id, kf->key_id, n / 2))
        return hs_fail(e, HS_E_FORMAT, "key file %s: token_key.id is not 1 to %d hex bytes", path,
                       HS_KEY_ID_MAX);
    kf->key_id_len = n / 2;
    if (label == NULL || strcmp(label, kf->name) != 0)
        return hs_fail(e, HS_E_FORMAT, "key file %s: token_key.label is not the key's name", path);
    return HS_OK;
}

static hs_result parse_fields(json_t *root, const char *path, hs_keyfile *kf, hs_error *e)
{
    const char *name = get_string(root, "name"), *alg = get_string(root, "algorithm"),
               *origin = get_string(root, "origin"), *created = get_string(root, "created"),
               *spki = get_string(root, "public_key"), *fp = get_string(root, "public_key_sha256"),
               *pem = get_string(root, "certificate");
    if (!name || !alg || !origin || !created || !spki || !fp || !pem)
        return hs_fail(e, HS_E_FORMAT, "key file %s: a field has the wrong type", path);
    if (hs_key_name_check(name, e) != HS_OK)
        return hs_error_prefix(e, "key file %s: ", path);
    snprintf(kf->name, sizeof kf->name, "%s", name);
    hs_result r = kf->profile == HS_PROFILE_RESIDENT ? parse_token_key(root, path, kf, e)
                                                     : parse_wrapped(root, path, kf, e);
    if (r != HS_OK)
        return r;
    if (!hs_keyalg_parse(alg, &kf->alg))
        return hs_fail(e, HS_E_FORMAT, "key file %s: unknown algorithm '%s'", path, alg);
    if (strcmp(origin, "generated") != 0 && strcmp(origin, "imported") != 0)
        return hs_fail(e, HS_E_FORMAT, "key file %s: origin must be generated or imported", path);
    snprintf(kf->origin, sizeof kf->origin, "%s", origin);
    if (strlen(created) >= sizeof kf->created)
        return hs_fail(e, HS_E_FORMAT, "key file %s: created too long", path);
    snprintf(kf->created, sizeof kf->created, "%s", created);
    uint8_t *der;
    size_t der_len;
    if (!hs_base64_decode(spki, &der, &der_len))
        return hs_fail(e, HS_E_FORMAT, "key file %s: public_key is not valid base64", path);
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, (long)der_len);
    bool whole = p == der + der_len;
    free(der);
    if (pub == NULL || !whole) {
        EVP_PKEY_free(pub);
        return hs_fail(e, HS_E_FORMAT, "key file %s: public_key is not a SubjectPublicKeyInfo", path);
    }
    r = hs_keyfile_set_public(kf, pub, e);
    EVP_PKEY_free(pub);
    if (r != HS_OK)
        return r;
    uint8_t want_fp[32];
    if (!hs_hex_decode(fp, want_fp, sizeof want_fp) || !hs_ct_equal(want_fp, kf->fingerprint, 32))
        return hs_fail(e, HS_E_FORMAT, "key file %s: public_key_sha256 does not match public_key",
                       path);
    hs_keyalg actual;
    if (!hs_keyalg_of_pkey(kf->pub, &actual) || actual != kf->alg)
        return hs_fail(e, HS_E_FORMAT, "key file %s: public key is not %s as the file says", path,
                       hs_keyalg_name(kf->alg));
    BIO *b = BIO_new_mem_buf(pem, -1);
    kf->cert = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (kf->cert == NULL)
        return hs_fail(e, HS_E_FORMAT, "key file %s: certificate is not a PEM X.509 certificate", path);
    if (EVP_PKEY_eq(X509_get0_pubkey(kf->cert), kf->pub) != 1)
        return hs_fail(e, HS_E_FORMAT, "key file %s: certificate is for a different public key", path);
    return HS_OK;
}

static hs_result read_profile(json_t *root, const char *path, hs_keyfile *kf, hs_error *e)
{
    json_t *v = json_object_get(root, "profile");
    kf->profile = HS_PROFILE_WRAPPED;
    kf->profile_given = v != NULL;
    if (v == NULL)
        return HS_OK;
    if (!json_is_string(v) || !hs_profile_parse(json_string_value(v), &kf->profile))
        return hs_fail(e, HS_E_FORMAT,
                       "key file %s: profile must be wrapped, yubihsm or resident", path);
    return HS_OK;
}

hs_result hs_keyfile_parse(const uint8_t *text, size_t len, const char *path, hs_keyfile *kf,
                           hs_error *e)
{
    memset(kf, 0, sizeof *kf);
    json_error_t je;
    json_t *root = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return hs_fail(e, HS_E_FORMAT, "key file %s: not valid JSON (line %d: %s)", path, je.line,
                       je.text);
    hs_result r;
    const char *format = get_string(root, "format");
    json_t *version = json_object_get(root, "version");
    if (!json_is_object(root) || format == NULL || strcmp(format, FORMAT_NAME) != 0) {
        r = hs_fail(e, HS_E_FORMAT, "%s is not an hsmsign key file (no \"format\": \"%s\")", path,
                    FORMAT_NAME);
        goto out;
    }
    if (!json_is_integer(version) || json_integer_value(version) != HS_KEYFILE_VERSION) {
        r = hs_fail(e, HS_E_FORMAT,
                    "key file %s: unsupported version %s (this hsmsign reads version %d)", path,
                    json_is_integer(version) ? "" : "(missing)", HS_KEYFILE_VERSION);
        if (json_is_integer(version))
            snprintf(e->msg, sizeof e->msg,
                     "key file %s: unsupported version %lld (this hsmsign reads version %d)", path,
                     (long long)json_integer_value(version), HS_KEYFILE_VERSION);
        goto out;
    }
    r = read_profile(root, path, kf, e);
    if (r == HS_OK && kf->profile == HS_PROFILE_RESIDENT)
        r = check_exact_fields(root, resident_fields,
                               sizeof resident_fields / sizeof resident_fields[0],
                               sizeof resident_fields / sizeof resident_fields[0], path, "", e);
    else if (r == HS_OK)
        /* the last of fields, "profile", is optional */
        r = check_exact_fields(root, fields, sizeof fields / sizeof fields[0] - 1,
                               sizeof fields / sizeof fields[0], path, "", e);
    if (r != HS_OK)
        goto out;
    const char *sum = get_string(root, "checksum");
    char want[72];
    r = checksum_of(root, want, e);
    if (r != HS_OK)
        goto out;
    if (sum == NULL || strlen(sum) != strlen(want) || !hs_ct_equal(sum, want, strlen(want))) {
        r = hs_fail(e, HS_E_FORMAT,
                    "key file %s: checksum mismatch: the file was modified or corrupted", path);
        goto out;
    }
    r = parse_fields(root, path, kf, e);
out:
    json_decref(root);
    if (r != HS_OK)
        hs_keyfile_free(kf);
    return r;
}

hs_result hs_keyfile_load(const char *path, hs_keyfile *kf, hs_error *e)
{
    uint8_t *text;
    size_t len;
    memset(kf, 0, sizeof *kf);
    hs_result r = hs_read_file(path, HS_KEYFILE_MAX_SIZE, &text, &len, e);
    if (r != HS_OK)
        return r;
    r = hs_keyfile_parse(text, len, path, kf, e);
    free(text);
    return r;
}
