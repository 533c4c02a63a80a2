#include "keystore/keygen.h"

#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keystore/cert.h"
#include "keystore/keystore.h"
#include "keystore/kwp.h"
#include "keystore/pk8.h"
#include "keystore/yubihsm.h"
#include "p11/objects.h"
#include "util/secmem.h"

/* Objects a key operation created in the token: destroyed on every path,
 * except resident keys that made it into a key file (keep). */
typedef struct token_objects {
    CK_OBJECT_HANDLE priv, pub;
    bool keep;
} token_objects;

static void destroy_objects(hs_p11 *p, token_objects *o)
{
    CK_SESSION_HANDLE s = hs_p11_key_session(p);
    if (o->keep)
        return;
    if (o->priv != CK_INVALID_HANDLE)
        (void)p->fn->C_DestroyObject(s, o->priv);
    if (o->pub != CK_INVALID_HANDLE)
        (void)p->fn->C_DestroyObject(s, o->pub);
    o->priv = o->pub = CK_INVALID_HANDLE;
}

static void now_rfc3339(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    (void)strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm); /* ~20 bytes: cannot fail */
}

static hs_result check_new_name(hs_signer *s, const char *name, hs_error *e)
{
    hs_result r = hs_key_name_check(name, e);
    if (r != HS_OK)
        return r;
    if (hs_keystore_exists(hs_signer_keystore(s), name))
        return hs_fail(e, HS_E_EXISTS, "key '%s' already exists in %s; refusing to overwrite it",
                       name, hs_signer_keystore(s));
    return HS_OK;
}

/* The object IDs of the yubihsm key files already in the keystore (a
 * malloc'd array, NULL when there are none). A key file that cannot be read
 * is skipped: it can name no key to make resident. */
static hs_result taken_yh_ids(const char *dir, uint16_t **ids, size_t *n, hs_error *e)
{
    char **names = NULL;
    size_t count = 0;
    *ids = NULL;
    *n = 0;
    hs_result r = hs_keystore_list(dir, &names, &count, e);
    if (r != HS_OK || count == 0)
        return r;
    if ((*ids = calloc(count, sizeof **ids)) == NULL) {
        hs_keystore_list_free(names, count);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        hs_keyfile kf;
        hs_error ignored;
        memset(&kf, 0, sizeof kf);
        if (hs_keystore_load(dir, names[i], &kf, &ignored) == HS_OK &&
            kf.profile == HS_PROFILE_YUBIHSM && kf.key_id_len == 2)
            (*ids)[(*n)++] = (uint16_t)(kf.key_id[0] << 8 | kf.key_id[1]);
        hs_keyfile_free(&kf);
    }
    hs_keystore_list_free(names, count);
    return HS_OK;
}

static bool is_resident(hs_signer *s)
{
    return hs_profile_ops_of(hs_signer_profile(s))->storage == HS_KEYS_RESIDENT;
}

/* What C_GenerateKeyPair needs for kp, checked against the token's
 * mechanism and its key size limits (tpm2-pkcs11: RSA up to 3072). */
static hs_result check_pair_mechanism(hs_p11 *p, const hs_keygen_params *kp, CK_MECHANISM_TYPE *mt,
                                      hs_error *e)
{
    bool rsa = hs_keyalg_is_rsa(kp->alg);
    *mt = rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN;
    hs_result r = hs_p11_require_mechanism(p, *mt, CKF_GENERATE_KEY_PAIR, "generating signing keys", e);
    if (r == HS_OK)
        r = hs_p11_check_key_size(p, *mt, rsa ? hs_keyalg_bits(kp->alg) : 256,
                                  hs_keyalg_name(kp->alg), e);
    return r;
}

/* Wrapped profile: session objects, the private one extractable only so
 * it can leave wrapped; with a trusted wrap key the token enforces that it
 * leaves under no other key. */
static hs_result generate_pair(hs_p11 *p, const hs_wrapkey *wrap, const hs_keygen_params *kp,
                               token_objects *o, hs_error *e)
{
    CK_MECHANISM_TYPE mt;
    hs_result r = check_pair_mechanism(p, kp, &mt, e);
    if (r != HS_OK)
        return r;
    bool rsa = hs_keyalg_is_rsa(kp->alg);
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE, trusted = wrap->trusted ? CK_TRUE : CK_FALSE;
    CK_ULONG bits = hs_keyalg_bits(kp->alg);
    CK_BYTE f4[] = {0x01, 0x00, 0x01};
    CK_ATTRIBUTE pub_t[] = {
        {CKA_TOKEN, &no, sizeof no},
        {CKA_VERIFY, &yes, sizeof yes},
        {CKA_LABEL, (void *)kp->name, strlen(kp->name)},
        {rsa ? CKA_MODULUS_BITS : CKA_EC_PARAMS, rsa ? (void *)&bits : (void *)hs_p256_oid_der,
         rsa ? sizeof bits : sizeof hs_p256_oid_der},
        {CKA_PUBLIC_EXPONENT, f4, sizeof f4},
    };
    CK_ATTRIBUTE priv_t[] = {
        {CKA_TOKEN, &no, sizeof no},           {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},     {CKA_EXTRACTABLE, &yes, sizeof yes},
        {CKA_SIGN, &yes, sizeof yes},          {CKA_DECRYPT, &no, sizeof no},
        {CKA_LABEL, (void *)kp->name, strlen(kp->name)},
        {CKA_WRAP_WITH_TRUSTED, &trusted, sizeof trusted},
    };
    CK_MECHANISM m = {mt, NULL, 0};
    CK_ULONG n_pub = rsa ? 5 : 4, n_priv = sizeof priv_t / sizeof priv_t[0];
    if (!wrap->trusted)
        n_priv--; /* leave CKA_WRAP_WITH_TRUSTED to the token's default */
    CK_RV rv = p->fn->C_GenerateKeyPair(hs_p11_key_session(p), &m, pub_t, n_pub, priv_t, n_priv,
                                        &o->pub, &o->priv);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_GenerateKeyPair", "generating %s key '%s'",
                           hs_keyalg_name(kp->alg), kp->name);
    return HS_OK;
}

static hs_result random_id(hs_keyfile *kf, hs_error *e)
{
    kf->key_id_len = 16;
    if (RAND_bytes(kf->key_id, (int)kf->key_id_len) != 1)
        return hs_fail(e, HS_E_CRYPTO, "no randomness for the key's CKA_ID");
    return HS_OK;
}

/* Resident profile: token objects under a fresh random CKA_ID, the
 * private key sensitive, never extractable and sign-only where the token
 * allows (hs_p11_generate_pair: tpm2-pkcs11 keys can always decrypt too).
 * CKA_MODIFIABLE false is the last entry of each template, left out on a
 * token that refuses it. */
static hs_result generate_resident_pair(hs_p11 *p, const hs_keygen_params *kp,
                                        const hs_keyfile *kf, token_objects *o, hs_error *e)
{
    CK_MECHANISM_TYPE mt;
    hs_result r = check_pair_mechanism(p, kp, &mt, e);
    if (r != HS_OK)
        return r;
    bool rsa = hs_keyalg_is_rsa(kp->alg);
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG bits = hs_keyalg_bits(kp->alg);
    CK_BYTE f4[] = {0x01, 0x00, 0x01};
    CK_ATTRIBUTE pub_t[] = {
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &no, sizeof no},
        {CKA_VERIFY, &yes, sizeof yes},
        {CKA_ENCRYPT, &no, sizeof no},
        {CKA_WRAP, &no, sizeof no},
        {CKA_LABEL, (void *)kp->name, strlen(kp->name)},
        {CKA_ID, (void *)kf->key_id, kf->key_id_len},
        {rsa ? CKA_MODULUS_BITS : CKA_EC_PARAMS, rsa ? (void *)&bits : (void *)hs_p256_oid_der,
         rsa ? sizeof bits : sizeof hs_p256_oid_der},
        {0, NULL, 0},
        {0, NULL, 0},
    };
    CK_ULONG n_pub = 8;
    if (rsa)
        pub_t[n_pub++] = (CK_ATTRIBUTE){CKA_PUBLIC_EXPONENT, f4, sizeof f4};
    pub_t[n_pub++] = (CK_ATTRIBUTE){CKA_MODIFIABLE, &no, sizeof no};
    CK_ATTRIBUTE priv_t[] = {
        {CKA_TOKEN, &yes, sizeof yes},       {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},   {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},        {CKA_DECRYPT, &no, sizeof no},
        {CKA_UNWRAP, &no, sizeof no},        {CKA_DERIVE, &no, sizeof no},
        {CKA_LABEL, (void *)kp->name, strlen(kp->name)},
        {CKA_ID, (void *)kf->key_id, kf->key_id_len},
        {CKA_MODIFIABLE, &no, sizeof no},
    };
    CK_MECHANISM m = {mt, NULL, 0};
    CK_ULONG n_priv = sizeof priv_t / sizeof priv_t[0];
    bool relaxed;
    CK_RV rv = hs_p11_generate_pair(p, hs_p11_key_session(p), &m, pub_t, n_pub, priv_t, n_priv,
                                    &o->pub, &o->priv, &relaxed);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_GenerateKeyPair", "generating %s key '%s' in the token",
                           hs_keyalg_name(kp->alg), kp->name);
    return HS_OK;
}

static hs_result wrap_private(hs_p11 *p, const hs_wrapkey *wrap, CK_OBJECT_HANDLE priv,
                              const char *name, hs_keyfile *kf, hs_error *e)
{
    CK_MECHANISM m = {wrap->mech, NULL, 0};
    CK_SESSION_HANDLE s = hs_p11_key_session(p);
    CK_ULONG len = 0;
    CK_RV rv = p->fn->C_WrapKey(s, &m, wrap->handle, priv, NULL, &len);
    /* NSS answers the length query for RFC 5649 with less than it then
     * needs (CKR_BUFFER_TOO_SMALL): room for the padding block too. */
    for (int attempt = 0; rv == CKR_OK && attempt < 2; attempt++) {
        CK_ULONG cap = len + 16;
        uint8_t *grown = realloc(kf->wrapped, cap);
        if (grown == NULL)
            return hs_fail(e, HS_E_NOMEM, "out of memory");
        kf->wrapped = grown;
        len = cap;
        rv = p->fn->C_WrapKey(s, &m, wrap->handle, priv, kf->wrapped, &len);
        if (rv != CKR_BUFFER_TOO_SMALL)
            break;
        rv = CKR_OK;
        len = cap + 1024;
    }
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_WrapKey", "wrapping key '%s' under wrap key '%s'", name,
                           wrap->label);
    kf->wrapped_len = len;
    return HS_OK;
}

/* Fills the key file fields every new key has. */
static hs_result start_keyfile(hs_keyfile *kf, hs_signer *s, const char *name, hs_keyalg alg,
                               const char *origin, EVP_PKEY *pub, hs_error *e)
{
    const hs_wrapkey *w = hs_signer_wrapkey(s);
    snprintf(kf->name, sizeof kf->name, "%s", name);
    kf->profile = hs_signer_profile(s);
    kf->alg = alg;
    snprintf(kf->origin, sizeof kf->origin, "%s", origin);
    now_rfc3339(kf->created);
    if (hs_profile_ops_of(kf->profile)->has_wrap_key) {
        snprintf(kf->wrap_label, sizeof kf->wrap_label, "%s", w->label);
        memcpy(kf->wrap_kcv, w->kcv, HS_KCV_LEN);
        kf->wrap_kcv_unknown = !w->have_kcv;
        /* A YubiHSM blob opens only under its own wrap key: no canary. */
        hs_result r = kf->profile == HS_PROFILE_YUBIHSM
                          ? HS_OK
                          : hs_wrapkey_make_canary(hs_signer_p11(s), w, &kf->wrap_canary,
                                                   &kf->wrap_canary_len, e);
        if (r != HS_OK)
            return r;
    }
    return hs_keyfile_set_public(kf, pub, e);
}

hs_result hs_key_generate(hs_signer *s, const hs_keygen_params *kp, hs_error *e)
{
    hs_p11 *p = hs_signer_p11(s);
    const hs_wrapkey *wrap = hs_signer_wrapkey(s);
    token_objects o = {CK_INVALID_HANDLE, CK_INVALID_HANDLE, false};
    hs_keyfile kf;
    memset(&kf, 0, sizeof kf);
    EVP_PKEY *pub = NULL;
    bool adopted = false, resident = is_resident(s);
    bool yh = hs_signer_profile(s) == HS_PROFILE_YUBIHSM;
    hs_yh_hold hold = HS_YH_HOLD_NONE;
    char subject[HS_KEY_NAME_MAX + 8];
    hs_result r = check_new_name(s, kp->name, e);
    if (r == HS_OK && resident)
        r = random_id(&kf, e);
    if (r == HS_OK)
        r = hs_kwp_token_can_hold(p, kp->alg, kp->name, e);
    if (r == HS_OK && yh) {
        /* A persistent object under a free ID, held until deleted below. */
        uint16_t *taken = NULL;
        size_t n_taken = 0;
        r = taken_yh_ids(hs_signer_keystore(s), &taken, &n_taken, e);
        if (r == HS_OK)
            r = hs_yh_generate(p, kp->alg, kp->name, taken, n_taken, &hold, &o.pub, &o.priv, e);
        free(taken);
        kf.key_id[0] = (uint8_t)(hold.id >> 8);
        kf.key_id[1] = (uint8_t)hold.id;
        kf.key_id_len = 2;
    } else if (r == HS_OK) {
        r = resident ? generate_resident_pair(p, kp, &kf, &o, e) : generate_pair(p, wrap, kp, &o, e);
    }
    if (r == HS_OK && resident)
        r = hs_p11_check_key_kept(p, hs_p11_key_session(p), o.priv, kp->name, e);
    if (r == HS_OK)
        r = hs_p11_public_key(p, hs_p11_key_session(p), o.pub, &pub, e);
    if (r == HS_OK)
        r = start_keyfile(&kf, s, kp->name, kp->alg, "generated", pub, e);
    if (r == HS_OK)
        r = hs_signer_record(s, "generate", kp->name, kf.fingerprint, hs_keyalg_name(kp->alg), e);
    if (r == HS_OK) {
        r = hs_signer_adopt(s, kp->name, kp->alg, o.priv, pub, e);
        adopted = r == HS_OK;
    }
    if (r == HS_OK) {
        snprintf(subject, sizeof subject, "CN=%s", kp->name);
        r = hs_cert_self_signed(pub, kp->alg, kp->subject ? kp->subject : subject,
                                kp->validity_days ? kp->validity_days : 10000, kp->name,
                                hs_signer_fn(s), &kf.cert, e);
    }
    if (r == HS_OK && !resident)
        r = wrap_private(p, wrap, o.priv, kp->name, &kf, e);
    if (adopted)
        hs_signer_forget(s, kp->name);
    if (r == HS_OK)
        r = hs_keystore_save(hs_signer_keystore(s), &kf, e);
    /* A resident key stays only when its key file was written: an object
     * no key file names would be a key nobody can use or account for. */
    o.keep = resident && r == HS_OK;
    destroy_objects(p, &o);
    hs_yh_hold_release(&hold);
    EVP_PKEY_free(pub);
    hs_keyfile_free(&kf);
    return r;
}

/* PKCS#11 attributes of the RSA components, in hs_pk8_key's order. */
static const CK_ATTRIBUTE_TYPE rsa_attrs[HS_PK8_RSA_PARTS] = {
    CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
    CKA_PRIME_2, CKA_EXPONENT_1,      CKA_EXPONENT_2,       CKA_COEFFICIENT,
};

/* Creates the private key as a session object from host memory. The
 * template points straight into the parsed key file, which is locked
 * memory (keystore/pk8.h): no component is copied anywhere else on the host. */
static hs_result create_private(hs_p11 *p, const hs_pk8_key *k, const char *name,
                                const hs_keyfile *kf, CK_OBJECT_HANDLE *out, hs_error *e)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_KEY_TYPE kt = k->rsa ? CKK_RSA : CKK_EC;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE, resident = kf->profile == HS_PROFILE_RESIDENT;
    /* Resident: a token object that never leaves (CKA_ID last, so the
     * common part stays the same). */
    CK_ATTRIBUTE t[11 + HS_PK8_RSA_PARTS] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_TOKEN, resident ? &yes : &no, sizeof no},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},
        {CKA_EXTRACTABLE, resident ? &no : &yes, sizeof yes},
        {CKA_SIGN, &yes, sizeof yes},
        {CKA_LABEL, (void *)name, strlen(name)},
        {CKA_DECRYPT, &no, sizeof no},
        {CKA_ID, (void *)kf->key_id, kf->key_id_len},
    };
    CK_ULONG n = resident ? 10 : 8;
    if (k->rsa) {
        for (size_t i = 0; i < HS_PK8_RSA_PARTS; i++)
            t[n++] = (CK_ATTRIBUTE){rsa_attrs[i], (void *)k->rsa_parts[i].p,
                                    (CK_ULONG)k->rsa_parts[i].len};
    } else {
        t[n++] = (CK_ATTRIBUTE){CKA_VALUE, (void *)k->ec_scalar.p, (CK_ULONG)k->ec_scalar.len};
        t[n++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)hs_p256_oid_der, sizeof hs_p256_oid_der};
    }
    CK_RV rv = p->fn->C_CreateObject(hs_p11_key_session(p), t, n, out);
    if (rv != CKR_OK && resident)
        return hs_p11_fail(p, e, rv, "C_CreateObject",
                           "importing key '%s' as a sensitive, non-extractable token object; this "
                           "token does not take existing private keys, so on the resident profile "
                           "generate new keys in it instead (hsmsign key generate)",
                           name);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_CreateObject", "loading key '%s' into the token to wrap it",
                           name);
    return HS_OK;
}

/* The public key object that goes with an imported resident key, under
 * the same CKA_ID, so the signer can check key file and token agree. */
static hs_result create_public(hs_p11 *p, const hs_pk8_key *k, EVP_PKEY *pub, const char *name,
                               const hs_keyfile *kf, CK_OBJECT_HANDLE *out, hs_error *e)
{
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_KEY_TYPE kt = k->rsa ? CKK_RSA : CKK_EC;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    uint8_t point[67]; /* DER OCTET STRING of an uncompressed P-256 point */
    size_t plen = 0;
    if (!k->rsa && (EVP_PKEY_get_octet_string_param(pub, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                                    point + 2, sizeof point - 2, &plen) != 1 ||
                    plen != 65))
        return hs_fail(e, HS_E_CRYPTO, "key '%s': cannot encode its P-256 public point", name);
    point[0] = 0x04;
    point[1] = (uint8_t)plen;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &no, sizeof no},
        {CKA_VERIFY, &yes, sizeof yes},
        {CKA_LABEL, (void *)name, strlen(name)},
        {CKA_ID, (void *)kf->key_id, kf->key_id_len},
        {k->rsa ? CKA_MODULUS : CKA_EC_PARAMS,
         k->rsa ? (void *)k->rsa_parts[0].p : (void *)hs_p256_oid_der,
         k->rsa ? (CK_ULONG)k->rsa_parts[0].len : sizeof hs_p256_oid_der},
        {k->rsa ? CKA_PUBLIC_EXPONENT : CKA_EC_POINT,
         k->rsa ? (void *)k->rsa_parts[1].p : (void *)point,
         k->rsa ? (CK_ULONG)k->rsa_parts[1].len : (CK_ULONG)plen + 2},
    };
    CK_RV rv = p->fn->C_CreateObject(hs_p11_key_session(p), t, sizeof t / sizeof t[0], out);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_CreateObject", "storing the public key of '%s'", name);
    return HS_OK;
}

/* The public half of the key file: its algorithm, and that the certificate
 * is for it. */
static hs_result check_public(const hs_pk8_key *k, const char *key_path, EVP_PKEY *cert_pub,
                              hs_keyalg *alg, hs_error *e)
{
    EVP_PKEY *pub = NULL;
    hs_result r = hs_pk8_public(k, key_path, &pub, e);
    if (r == HS_OK && !hs_keyalg_of_pkey(pub, alg))
        r = hs_fail(e, HS_E_USAGE, "%s: key type not supported (RSA 2048/3072/4096/8192 or EC P-256)",
                    key_path);
    else if (r == HS_OK && (cert_pub == NULL || EVP_PKEY_eq(pub, cert_pub) != 1))
        r = hs_fail(e, HS_E_VERIFY, "%s: the certificate is for a different key", key_path);
    EVP_PKEY_free(pub);
    return r;
}

hs_result hs_key_import(hs_signer *s, const char *name, const uint8_t *key_bytes, size_t key_len,
                        const char *key_path, X509 *cert, hs_error *e)
{
    hs_p11 *p = hs_signer_p11(s);
    token_objects o = {CK_INVALID_HANDLE, CK_INVALID_HANDLE, false};
    hs_keyfile kf;
    memset(&kf, 0, sizeof kf);
    kf.profile = hs_signer_profile(s);
    bool resident = is_resident(s);
    hs_keyalg alg;
    hs_pk8_key pk8;
    memset(&pk8, 0, sizeof pk8);
    EVP_PKEY *cert_pub = X509_get0_pubkey(cert);
    hs_result r = check_new_name(s, name, e);
    if (r == HS_OK && kf.profile == HS_PROFILE_YUBIHSM)
        r = hs_fail(e, HS_E_USAGE, "key '%s': importing existing keys into a YubiHSM is not "
                                   "supported by this hsmsign; generate new keys in it (hsmsign "
                                   "key generate)", name);
    if (r == HS_OK)
        r = hs_pk8_parse(key_bytes, key_len, key_path, &pk8, e);
    if (r == HS_OK)
        r = check_public(&pk8, key_path, cert_pub, &alg, e);
    if (r == HS_OK)
        r = hs_kwp_token_can_hold(p, alg, name, e);
    if (r == HS_OK && !resident)
        r = hs_p11_require_mechanism(p, hs_signer_wrapkey(s)->mech, CKF_WRAP,
                                     "wrapping imported keys", e);
    if (r == HS_OK && resident)
        r = random_id(&kf, e);
    if (r == HS_OK)
        r = create_private(p, &pk8, name, &kf, &o.priv, e);
    if (r == HS_OK && resident)
        r = hs_p11_check_key_kept(p, hs_p11_key_session(p), o.priv, name, e);
    if (r == HS_OK && resident)
        r = create_public(p, &pk8, cert_pub, name, &kf, &o.pub, e);
    hs_pk8_free(&pk8);
    if (r == HS_OK)
        r = start_keyfile(&kf, s, name, alg, "imported", cert_pub, e);
    if (r == HS_OK)
        r = hs_signer_record(s, "import", name, kf.fingerprint, hs_keyalg_name(alg), e);
    if (r == HS_OK && !resident)
        r = wrap_private(p, hs_signer_wrapkey(s), o.priv, name, &kf, e);
    if (r == HS_OK) {
        X509_up_ref(cert);
        kf.cert = cert;
        r = hs_keystore_save(hs_signer_keystore(s), &kf, e);
    }
    o.keep = resident && r == HS_OK;
    destroy_objects(p, &o);
    hs_keyfile_free(&kf);
    return r;
}

hs_result hs_android_key_set(const char *device, hs_keyalg app_alg, const char *organization,
                             hs_android_key out[HS_ANDROID_SET_SIZE], hs_error *e)
{
    static const char *const app_keys[] = {"releasekey", "platform", "shared", "media",
                                           "networkstack", "sdk_sandbox", "bluetooth", "nfc"};
    char avb[HS_KEY_NAME_MAX + 1];
    /* Two long device names must not share one shortened avb- key. */
    if (strlen(device) > HS_KEY_NAME_MAX - 4)
        return hs_fail(e, HS_E_USAGE, "device '%s': name longer than %d characters", device,
                       HS_KEY_NAME_MAX - 4);
    snprintf(avb, sizeof avb, "avb-%s", device);
    hs_result r = hs_key_name_check(avb, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "device '%s': ", device);
    const char *org = organization != NULL ? organization : "Android";
    for (size_t i = 0; i < HS_ANDROID_SET_SIZE; i++) {
        const char *name = i < 8 ? app_keys[i] : avb;
        snprintf(out[i].name, sizeof out[i].name, "%s", name);
        out[i].alg = i < 8 ? app_alg : HS_KEY_RSA4096;
        /* The subject AOSP's make_key suggests, with the device and the
         * key's role so a certificate says what it is for. */
        int n = snprintf(out[i].subject, sizeof out[i].subject,
                         "C=US, ST=California, L=Mountain View, O=%s, OU=%s, CN=%s", org, device,
                         name);
        if (n < 0 || (size_t)n >= sizeof out[i].subject) /* not a shortened certificate subject */
            return hs_fail(e, HS_E_USAGE, "organization '%s': too long for a subject", org);
    }
    return HS_OK;
}
