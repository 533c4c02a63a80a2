/* The HSM-resident audit key (see auditkey.h). */
#include "keystore/auditkey.h"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keystore/custody.h"
#include "keystore/kwp.h"
#include "p11/ckr.h"
#include "p11/profile.h"
#include "util/file.h"
#include "p11/objects.h"
#include "p11/profile.h"

/* DER of the OID 1.3.101.112 (id-Ed25519), what SoftHSM and PKCS#11 3.0
 * accept as CKA_EC_PARAMS for Ed25519. */
static const uint8_t ed25519_oid_der[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static const char key_id[] = "hsmsign-audit";

const char *hs_auditkey_alg_name(hs_auditkey_alg alg)
{
    return alg == HS_AUDITKEY_ED25519 ? "ed25519" : "ecdsa-p256-sha256";
}

void hs_auditkey_clear(hs_auditkey *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->public_key);
    memset(k, 0, sizeof *k);
}

static hs_result ed25519_public(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub,
                                EVP_PKEY **out, hs_error *e)
{
    uint8_t *point;
    size_t len;
    hs_result r = hs_p11_get_attr(p, s, pub, CKA_EC_POINT, &point, &len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "audit key: reading its public key: ");
    /* PKCS#11 3.0 says the raw 32 bytes; SoftHSM wraps them in a DER
     * OCTET STRING. Accept both. */
    const uint8_t *raw = point;
    if (len == 34 && point[0] == 0x04 && point[1] == 32)
        raw = point + 2;
    else if (len != 32)
        raw = NULL;
    *out = raw != NULL ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32) : NULL;
    free(point);
    if (*out == NULL)
        return hs_fail(e, HS_E_P11, "token '%s': the audit key's Ed25519 public key (%zu bytes) "
                                    "is malformed", p->label, len);
    return HS_OK;
}

static hs_result load_public(hs_p11 *p, CK_SESSION_HANDLE s, hs_auditkey *k, hs_error *e)
{
    if (k->alg == HS_AUDITKEY_ED25519)
        return ed25519_public(p, s, k->pub, &k->public_key, e);
    return hs_p11_public_key(p, s, k->pub, &k->public_key, e);
}

static hs_result find_pair(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *priv,
                           CK_OBJECT_HANDLE *pub, size_t *n, hs_error *e)
{
    CK_OBJECT_CLASS cpriv = CKO_PRIVATE_KEY, cpub = CKO_PUBLIC_KEY;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cpriv, sizeof cpriv},
        {CKA_LABEL, (void *)HS_AUDITKEY_LABEL, strlen(HS_AUDITKEY_LABEL)},
    };
    size_t npub = 0;
    hs_result r = hs_p11_find(p, s, t, 2, priv, 1, n, e);
    if (r != HS_OK || *n == 0)
        return r;
    t[0].pValue = &cpub;
    r = hs_p11_find(p, s, t, 2, pub, 1, &npub, e);
    if (r == HS_OK && npub != 1)
        r = hs_fail(e, HS_E_P11, "token '%s' has %zu audit public keys labelled '%s'; expected one",
                    p->label, npub, HS_AUDITKEY_LABEL);
    return r;
}

/* Appends the name of m to missing when the token lacks it for flag. */
static bool has_mech(hs_p11 *p, CK_MECHANISM_TYPE m, CK_FLAGS flag, char *missing, size_t cap)
{
    hs_error ignored;
    if (hs_p11_require_mechanism(p, m, flag, "the audit key", &ignored) == HS_OK)
        return true;
    size_t len = strlen(missing);
    snprintf(missing + len, cap - len, "%s%s", len ? ", " : "", hs_ckm_name(m));
    return false;
}

hs_result hs_auditkey_choose_alg(hs_p11 *p, hs_auditkey_alg want, hs_auditkey_alg *alg,
                                 hs_error *e)
{
    char missing[160] = "";
    bool gen = has_mech(p, CKM_EC_EDWARDS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR, missing,
                        sizeof missing);
    bool eddsa = has_mech(p, CKM_EDDSA, CKF_SIGN, missing, sizeof missing) && gen;
    if (want == HS_AUDITKEY_ED25519 && !eddsa)
        return hs_fail(e, HS_E_P11, "token '%s' cannot make an Ed25519 audit key (no CKM_EDDSA)",
                       p->label);
    if (want == HS_AUDITKEY_ED25519 || (want == HS_AUDITKEY_AUTO && eddsa)) {
        *alg = HS_AUDITKEY_ED25519;
        return HS_OK;
    }
    *alg = HS_AUDITKEY_P256;
    if (want == HS_AUDITKEY_AUTO) {
        /* Neither kind: name every missing mechanism at once, and what it
         * means (opencryptoki's soft token has no EC at all). */
        gen = has_mech(p, CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR, missing, sizeof missing);
        if (!(has_mech(p, CKM_ECDSA, CKF_SIGN, missing, sizeof missing) && gen))
            return hs_fail(e, HS_E_P11,
                           "token '%s' can make no audit key: it lacks %s (an audit key is "
                           "Ed25519, CKM_EC_EDWARDS_KEY_PAIR_GEN + CKM_EDDSA, or P-256, "
                           "CKM_EC_KEY_PAIR_GEN + CKM_ECDSA). Every signature is recorded in an "
                           "audit log signed by a key in the token, so hsmsign cannot sign with "
                           "this token",
                           p->label, missing);
    }
    hs_result r = hs_p11_require_mechanism(p, CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR,
                                           "the audit key", e);
    if (r == HS_OK)
        r = hs_p11_require_mechanism(p, CKM_ECDSA, CKF_SIGN, "the audit key", e);
    return r;
}

hs_result hs_auditkey_generate(hs_p11 *p, hs_auditkey_alg want, hs_auditkey *out, hs_error *e)
{
    memset(out, 0, sizeof *out);
    CK_SESSION_HANDLE s = hs_p11_key_session(p);
    CK_OBJECT_HANDLE priv, pub;
    size_t n;
    hs_result r = find_pair(p, s, &priv, &pub, &n, e);
    if (r == HS_OK && n > 0)
        r = hs_fail(e, HS_E_EXISTS, "token '%s' already has an audit key ('%s')", p->label,
                    HS_AUDITKEY_LABEL);
    if (r == HS_OK)
        r = hs_auditkey_choose_alg(p, want, &out->alg, e);
    if (r != HS_OK)
        return r;
    bool ed = out->alg == HS_AUDITKEY_ED25519;
    CK_ATTRIBUTE pub_t[5 + HS_CUSTODY_AUDITKEY_ATTRS] = {
        {CKA_TOKEN, (void *)&yes, sizeof yes},
        {CKA_PRIVATE, (void *)&no, sizeof no},
        {CKA_LABEL, (void *)HS_AUDITKEY_LABEL, strlen(HS_AUDITKEY_LABEL)},
        {CKA_ID, (void *)key_id, sizeof key_id - 1},
        {CKA_EC_PARAMS, ed ? (void *)ed25519_oid_der : (void *)hs_p256_oid_der,
         ed ? sizeof ed25519_oid_der : sizeof hs_p256_oid_der},
    };
    CK_ATTRIBUTE priv_t[6 + HS_CUSTODY_AUDITKEY_ATTRS] = {
        {CKA_TOKEN, (void *)&yes, sizeof yes},
        {CKA_PRIVATE, (void *)&yes, sizeof yes},
        {CKA_SENSITIVE, (void *)&yes, sizeof yes},
        {CKA_EXTRACTABLE, (void *)&no, sizeof no},
        {CKA_LABEL, (void *)HS_AUDITKEY_LABEL, strlen(HS_AUDITKEY_LABEL)},
        {CKA_ID, (void *)key_id, sizeof key_id - 1},
    };
    /* Sign-only and verify-only, not modifiable, not destroyable (the
     * last entry of each, left out for a token older than PKCS#11 2.40). */
    CK_ULONG n_pub, n_priv;
    hs_custody_auditkey_public_attrs(&pub_t[5], &n_pub);
    hs_custody_auditkey_private_attrs(&priv_t[6], &n_priv);
    n_pub += 5;
    n_priv += 6;
    CK_MECHANISM m = {ed ? CKM_EC_EDWARDS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_RV rv = CKR_OK;
    const CK_ULONG full_pub = n_pub, full_priv = n_priv;
    /* NSS softokn refuses CKA_DESTROYABLE and CKA_COPYABLE with
     * CKR_GENERAL_ERROR: a third attempt without CKA_COPYABLE too (the
     * private half's last entry then), when the caller accepted that NSS
     * does not keep custody attributes. */
    bool nss_gap = hs_p11_is_nss(p) && p->accept_custody_gap;
    for (int attempt = 0; attempt < 3; attempt++) {
        rv = p->fn->C_GenerateKeyPair(s, &m, pub_t, n_pub, priv_t, n_priv, &out->pub, &out->priv);
        bool unknown = hs_custody_attr_unknown(rv) || (nss_gap && rv == CKR_GENERAL_ERROR);
        if (rv == CKR_OK || !unknown || attempt == 2 || (attempt == 1 && !nss_gap))
            break;
        if (attempt == 0)
            n_pub--;
        n_priv--;
    }
    /* Other tokens that refuse part of the template (tpm2-pkcs11 refuses
     * CKA_DECRYPT false): the profile layer's relaxed attempts. */
    if (rv != CKR_OK && !hs_p11_is_nss(p) && hs_p11_template_refused(rv)) {
        bool relaxed;
        rv = hs_p11_generate_pair(p, s, &m, pub_t, full_pub, priv_t, full_priv, &out->pub,
                                  &out->priv, &relaxed);
    }
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_GenerateKeyPair", "generating the %s audit key%s",
                           hs_auditkey_alg_name(out->alg),
                           hs_p11_is_nss(p) && !p->accept_custody_gap
                               ? " with its custody attributes, which NSS softokn does not keep; "
                                 "see --accept-custody-gap"
                               : "");
    r = load_public(p, s, out, e);
    if (r != HS_OK) {
        /* Do not leave a key behind whose public half nobody can read. */
        (void)p->fn->C_DestroyObject(s, out->priv);
        (void)p->fn->C_DestroyObject(s, out->pub);
        hs_auditkey_clear(out);
    }
    return r;
}

/* The key type and public key of a found pair (out->pub set). */
static hs_result load_found(hs_p11 *p, CK_SESSION_HANDLE s, hs_auditkey *out, hs_error *e)
{
    CK_KEY_TYPE kt = 0;
    CK_ATTRIBUTE a = {CKA_KEY_TYPE, &kt, sizeof kt};
    CK_RV rv = p->fn->C_GetAttributeValue(s, out->pub, &a, 1);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_GetAttributeValue", "reading the audit key's type");
    out->alg = kt == CKK_EC_EDWARDS ? HS_AUDITKEY_ED25519 : HS_AUDITKEY_P256;
    hs_result r = load_public(p, s, out, e);
    if (r != HS_OK)
        hs_auditkey_clear(out);
    return r;
}

hs_result hs_auditkey_find(hs_p11 *p, hs_auditkey *out, hs_error *e)
{
    memset(out, 0, sizeof *out);
    CK_SESSION_HANDLE s = hs_p11_key_session(p);
    size_t n;
    hs_result r = find_pair(p, s, &out->priv, &out->pub, &n, e);
    if (r != HS_OK)
        return r;
    if (n != 1)
        return hs_fail(e, n == 0 ? HS_E_NOTFOUND : HS_E_P11,
                       "token '%s' has %zu audit keys labelled '%s'; expected one", p->label, n,
                       HS_AUDITKEY_LABEL);
    return load_found(p, s, out, e);
}

hs_result hs_auditkey_find_public(hs_p11 *p, EVP_PKEY **pub, hs_error *e)
{
    *pub = NULL;
    hs_auditkey k;
    memset(&k, 0, sizeof k);
    /* A work session: the key session exists only after login. */
    CK_SESSION_HANDLE s;
    hs_result r = hs_p11_session_acquire(p, &s, e);
    if (r != HS_OK)
        return r;
    CK_OBJECT_CLASS cpub = CKO_PUBLIC_KEY;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cpub, sizeof cpub},
        {CKA_LABEL, (void *)HS_AUDITKEY_LABEL, strlen(HS_AUDITKEY_LABEL)},
    };
    size_t n;
    r = hs_p11_find(p, s, t, 2, &k.pub, 1, &n, e);
    if (r == HS_OK && n != 1)
        r = hs_fail(e, n == 0 ? HS_E_NOTFOUND : HS_E_P11,
                    "token '%s' has %zu audit public keys labelled '%s'; expected one", p->label,
                    n, HS_AUDITKEY_LABEL);
    if (r == HS_OK)
        r = load_found(p, s, &k, e);
    hs_p11_session_release(p, s, false);
    if (r == HS_OK) {
        *pub = k.public_key;
        k.public_key = NULL;
    }
    hs_auditkey_clear(&k);
    return r;
}


/* r||s (64 bytes) to the DER ECDSA-Sig-Value openssl expects. */
static hs_result ecdsa_to_der(const uint8_t rs[64], uint8_t **der, size_t *der_len, hs_error *e)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(rs, 32, NULL), *s = BN_bin2bn(rs + 32, 32, NULL);
    if (sig == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(sig, r, s)) {
        ECDSA_SIG_free(sig);
        BN_free(r);
        BN_free(s);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    unsigned char *buf = NULL;
    int len = i2d_ECDSA_SIG(sig, &buf);
    ECDSA_SIG_free(sig);
    if (len <= 0)
        return hs_fail(e, HS_E_CRYPTO, "cannot encode the ECDSA signature");
    *der = malloc((size_t)len);
    if (*der != NULL)
        memcpy(*der, buf, (size_t)len);
    OPENSSL_free(buf);
    if (*der == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    *der_len = (size_t)len;
    return HS_OK;
}

hs_result hs_auditkey_verify(EVP_PKEY *pub, const uint8_t *msg, size_t len, const uint8_t *sig,
                             size_t sig_len, hs_error *e)
{
    bool ed = EVP_PKEY_get_id(pub) == EVP_PKEY_ED25519;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c != NULL && EVP_DigestVerifyInit(c, NULL, ed ? NULL : EVP_sha256(), NULL, pub) == 1
                 ? EVP_DigestVerify(c, sig, sig_len, msg, len)
                 : -1;
    EVP_MD_CTX_free(c);
    if (ok != 1)
        return hs_fail(e, HS_E_VERIFY, "the %s signature does not verify with the audit key",
                       ed ? "Ed25519" : "ECDSA P-256");
    return HS_OK;
}

static hs_result sign_raw(hs_p11 *p, CK_SESSION_HANDLE s, const hs_auditkey *k, const uint8_t *in,
                          size_t in_len, uint8_t out[64], hs_error *e)
{
    CK_MECHANISM m = {k->alg == HS_AUDITKEY_ED25519 ? CKM_EDDSA : CKM_ECDSA, NULL, 0};
    CK_RV rv = p->fn->C_SignInit(s, &m, k->priv);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_SignInit", "signing with the audit key");
    CK_ULONG out_len = 64;
    rv = p->fn->C_Sign(s, (CK_BYTE_PTR)in, in_len, out, &out_len);
    if (rv != CKR_OK)
        return hs_p11_fail(p, e, rv, "C_Sign", "signing with the audit key");
    if (out_len != 64)
        return hs_fail(e, HS_E_P11, "token '%s': audit key signature is %lu bytes, expected 64",
                       p->label, (unsigned long)out_len);
    return HS_OK;
}

hs_result hs_auditkey_sign(hs_p11 *p, const hs_auditkey *k, const uint8_t *msg, size_t len,
                           uint8_t **sig, size_t *sig_len, hs_error *e)
{
    *sig = NULL;
    *sig_len = 0;
    uint8_t digest[SHA256_DIGEST_LENGTH], raw[64];
    const uint8_t *in = msg;
    size_t in_len = len;
    if (k->alg == HS_AUDITKEY_P256) {
        SHA256(msg, len, digest);
        in = digest;
        in_len = sizeof digest;
    }
    CK_SESSION_HANDLE s;
    hs_result r = hs_p11_session_acquire(p, &s, e);
    if (r != HS_OK)
        return r;
    r = sign_raw(p, s, k, in, in_len, raw, e);
    hs_p11_session_release(p, s, r == HS_E_P11 && hs_p11_rv_recoverable(e->ckr));
    if (r != HS_OK)
        return r;
    if (k->alg == HS_AUDITKEY_P256) {
        r = ecdsa_to_der(raw, sig, sig_len, e);
    } else {
        *sig = malloc(64);
        if (*sig == NULL)
            return hs_fail(e, HS_E_NOMEM, "out of memory");
        memcpy(*sig, raw, 64);
        *sig_len = 64;
    }
    if (r == HS_OK)
        r = hs_auditkey_verify(k->public_key, msg, len, *sig, *sig_len, e);
    if (r != HS_OK) {
        free(*sig);
        *sig = NULL;
        *sig_len = 0;
    }
    return r;
}

hs_result hs_auditkey_load_public(const char *path, EVP_PKEY **out, hs_error *e)
{
    *out = NULL;
    uint8_t *pem;
    size_t len;
    hs_result r = hs_read_file(path, 65536, &pem, &len, e);
    if (r != HS_OK)
        return r;
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    *out = b != NULL ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    free(pem);
    if (*out == NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: not a PEM public key", path);
    int id = EVP_PKEY_get_base_id(*out);
    if (id != EVP_PKEY_ED25519 && id != EVP_PKEY_EC) {
        EVP_PKEY_free(*out);
        *out = NULL;
        return hs_fail(e, HS_E_FORMAT, "%s: the audit key is Ed25519 or ECDSA P-256", path);
    }
    return HS_OK;
}

hs_result hs_auditkey_public_pem(EVP_PKEY *pub, char **pem, uint8_t fingerprint[32], hs_error *e)
{
    *pem = NULL;
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY(pub, &der);
    if (der_len <= 0)
        return hs_fail(e, HS_E_CRYPTO, "cannot encode the audit public key");
    SHA256(der, (size_t)der_len, fingerprint);
    OPENSSL_free(der);
    BIO *b = BIO_new(BIO_s_mem());
    char *data;
    long n;
    if (b == NULL || PEM_write_bio_PUBKEY(b, pub) != 1 || (n = BIO_get_mem_data(b, &data)) <= 0) {
        BIO_free(b);
        return hs_fail(e, HS_E_CRYPTO, "cannot encode the audit public key as PEM");
    }
    *pem = malloc((size_t)n + 1);
    if (*pem != NULL) {
        memcpy(*pem, data, (size_t)n);
        (*pem)[n] = '\0';
    }
    BIO_free(b);
    return *pem != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
}
