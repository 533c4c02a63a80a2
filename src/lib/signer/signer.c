#include "signer/signer.h"

#include <openssl/ecdsa.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "keystore/custody.h"
#include "keystore/keystore.h"
#include "keystore/kwp.h"
#include "keystore/yubihsm.h"
#include "p11/ckr.h"
#include "p11/objects.h"
#include "signer/sigcache.h"
#include "signer/signer_internal.h"
#include "util/encoding.h"
#include "util/secmem.h"

/* The token's label for messages, local or remote. */
static const char *token_label(const hs_signer *s)
{
    return s->p11 != NULL ? s->p11->label : s->remote_token;
}

/* Fails early, in words, when the token lacks a mechanism (checked once
 * per process per mechanism). */
static hs_result require_mechanism(hs_signer *s, CK_MECHANISM_TYPE m, CK_FLAGS flags,
                                   const char *purpose, hs_error *e)
{
    for (size_t i = 0; i < s->n_checked; i++)
        if (s->checked[i] == m)
            return HS_OK;
    hs_result r = hs_p11_require_mechanism(s->p11, m, flags, purpose, e);
    if (r == HS_OK && s->n_checked < sizeof s->checked / sizeof s->checked[0])
        s->checked[s->n_checked++] = m;
    return r;
}

hs_result hs_signer_new(hs_p11 *p11, hs_profile profile, const hs_wrapkey *wrap,
                        const char *keystore_dir, hs_audit *audit, hs_signer **out, hs_error *e)
{
    *out = NULL;
    hs_signer *s = calloc(1, sizeof *s);
    if (s == NULL || (s->keystore = strdup(keystore_dir)) == NULL) {
        free(s);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    s->p11 = p11;
    s->profile = profile;
    if (wrap != NULL)
        s->wrap = *wrap;
    s->audit = audit;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->persistent_lock, NULL);
    *out = s;
    hs_result r = HS_OK;
    if (p11 != NULL && audit != NULL && profile == HS_PROFILE_YUBIHSM)
        r = hs_persistent_sweep(s, e);
    if (r != HS_OK) {
        hs_signer_free(s);
        *out = NULL;
    }
    return r;
}

hs_result hs_signer_new_remote(const hs_signer_remote *remote, const char *token,
                               const hs_wrapkey *wrap, const char *keystore_dir, hs_signer **out,
                               hs_error *e)
{
    hs_result r = hs_signer_new(NULL, HS_PROFILE_WRAPPED, wrap, keystore_dir, NULL, out, e);
    if (r != HS_OK)
        return r;
    (*out)->remote = *remote;
    snprintf((*out)->remote_token, sizeof (*out)->remote_token, "%s", token);
    return HS_OK;
}

static void destroy_object(hs_signer *s, loaded_key *k)
{
    if (s->p11 != NULL && hs_profile_ops_of(s->profile)->storage == HS_KEYS_WRAPPED_PERSISTENT) {
        hs_persistent_drop(s, k);
        return;
    }
    /* A resident key is the token's only copy: never destroyed here. */
    bool resident = hs_profile_ops_of(s->profile)->storage == HS_KEYS_RESIDENT;
    if (s->p11 != NULL && k->unwrapped && !resident && k->generation == s->p11->generation &&
        hs_p11_key_session(s->p11) != CK_INVALID_HANDLE)
        (void)s->p11->fn->C_DestroyObject(hs_p11_key_session(s->p11), k->handle);
    k->unwrapped = false;
}

static void free_key(hs_signer *s, loaded_key *k)
{
    if (!k->adopted)
        destroy_object(s, k);
    if (k->adopted)
        EVP_PKEY_free(k->pub);
    hs_keyfile_free(&k->kf);
    free(k);
}

static void drop_pending(hs_signer *s)
{
    for (size_t i = 0; i < s->n_pending; i++)
        free(s->pending[i]);
    s->n_pending = 0;
}

void hs_signer_free(hs_signer *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_keys; i++)
        free_key(s, s->keys[i]);
    free(s->keys);
    /* Never synced: their signatures were not released, not cached. */
    drop_pending(s);
    free(s->pending);
    hs_sigcache_free(s->cache);
    free(s->keystore);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->persistent_lock);
    free(s);
}

static loaded_key *find_key(hs_signer *s, const char *name)
{
    for (size_t i = 0; i < s->n_keys; i++)
        if (strcmp(s->keys[i]->name, name) == 0)
            return s->keys[i];
    return NULL;
}

static hs_result add_key(hs_signer *s, loaded_key *k, hs_error *e)
{
    if (s->n_keys == s->cap_keys) {
        size_t cap = s->cap_keys ? 2 * s->cap_keys : 8;
        loaded_key **grown = realloc(s->keys, cap * sizeof(loaded_key *));
        if (grown == NULL)
            return hs_fail(e, HS_E_NOMEM, "out of memory");
        s->keys = grown;
        s->cap_keys = cap;
    }
    s->keys[s->n_keys++] = k;
    return HS_OK;
}

/* Loads and checks a key file the first time a key is named. */
static hs_result load_key(hs_signer *s, const char *name, loaded_key **out, hs_error *e)
{
    *out = find_key(s, name);
    if (*out != NULL)
        return HS_OK;
    loaded_key *k = calloc(1, sizeof *k);
    if (k == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    k->hold = HS_YH_HOLD_NONE;
    char what[HS_KEY_NAME_MAX * 2 + 1100];
    snprintf(what, sizeof what, "key '%s' (%s/%s.key)", name, s->keystore, name);
    hs_result r = hs_keystore_load(s->keystore, name, &k->kf, e);
    if (r == HS_OK && s->p11 == NULL) {
        /* Remote (the agent): the agent, which holds the token, checks the
         * key file fully (profile, check value or canary); here only the
         * check value it announced, when both sides have one. */
        if (s->wrap.have_kcv && !k->kf.wrap_kcv_unknown &&
            !hs_ct_equal(k->kf.wrap_kcv, s->wrap.kcv, HS_KCV_LEN)) {
            char want[7], have[7];
            hs_hex_encode(k->kf.wrap_kcv, HS_KCV_LEN, want);
            hs_hex_encode(s->wrap.kcv, HS_KCV_LEN, have);
            r = hs_fail(e, HS_E_VERIFY,
                        "%s was made under another wrap key (check value %s); token '%s' has "
                        "wrap key '%s' with check value %s",
                        what, want, token_label(s), s->wrap.label, have);
        }
    } else if (r == HS_OK && k->kf.profile != s->profile) {
        r = hs_fail(e, HS_E_USAGE,
                    "%s belongs to the %s profile; token '%s' is used with the %s profile (see "
                    "`hsmsign token info`; --profile chooses another)",
                    what, hs_profile_name(k->kf.profile), token_label(s),
                    hs_profile_name(s->profile));
    } else if (r == HS_OK && hs_profile_ops_of(s->profile)->has_wrap_key) {
        r = hs_wrapkey_matches(s->p11, &s->wrap, &k->kf, what, e);
        if (r == HS_OK)
            r = hs_kwp_token_can_hold(s->p11, k->kf.alg, name, e);
    }
    if (r != HS_OK) {
        hs_keyfile_free(&k->kf);
        free(k);
        return r;
    }
    snprintf(k->name, sizeof k->name, "%s", name);
    k->alg = k->kf.alg;
    k->pub = k->kf.pub;
    memcpy(k->fingerprint, k->kf.fingerprint, 32);
    r = add_key(s, k, e);
    if (r != HS_OK) {
        hs_keyfile_free(&k->kf);
        free(k);
        return r;
    }
    *out = k;
    return HS_OK;
}

hs_result hs_signer_keyfile(hs_signer *s, const char *name, const hs_keyfile **kf, hs_error *e)
{
    pthread_mutex_lock(&s->lock);
    loaded_key *k;
    hs_result r = load_key(s, name, &k, e);
    if (r == HS_OK && k->adopted)
        r = hs_fail(e, HS_E_NOTFOUND, "key '%s' has no key file yet", name);
    if (r == HS_OK)
        *kf = &k->kf;
    pthread_mutex_unlock(&s->lock);
    return r;
}

hs_result hs_signer_record(hs_signer *s, const char *operation, const char *key_name,
                           const uint8_t *fingerprint, const char *algorithm, hs_error *e)
{
    if (s->audit == NULL)
        return hs_fail(e, HS_E_USAGE, "'%s' needs the token itself, not the agent (unset "
                                      "HSMSIGN_AGENT)", operation);
    hs_audit_entry en = {.operation = operation, .key_name = key_name,
                         .key_fingerprint = fingerprint, .algorithm = algorithm};
    return hs_audit_append(s->audit, &en, NULL, e);
}

static hs_result unwrap(hs_signer *s, loaded_key *k, hs_error *e)
{
    hs_p11 *p = s->p11;
    hs_result mr = require_mechanism(s, s->wrap.mech, CKF_UNWRAP, "unwrapping signing keys", e);
    if (mr != HS_OK)
        return mr;
    if (hs_profile_ops_of(s->profile)->storage == HS_KEYS_WRAPPED_PERSISTENT)
        return hs_persistent_unwrap(s, k, e);
    /* The key type and label, then exactly the wrap key's
     * CKA_UNWRAP_TEMPLATE, last (custody.h): the token refuses any template
     * that leaves out or contradicts an entry. */
    CK_KEY_TYPE kt = hs_keyalg_is_rsa(k->alg) ? CKK_RSA : CKK_EC;
    CK_ATTRIBUTE t[2 + HS_CUSTODY_UNWRAP_ATTRS] = {
        {CKA_KEY_TYPE, &kt, sizeof kt},
        {CKA_LABEL, k->name, strlen(k->name)},
    };
    CK_ULONG n = 2 + hs_custody_unwrap_attrs(s->wrap.custody_gap, &t[2]);
    CK_MECHANISM m = {s->wrap.mech, NULL, 0};
    CK_RV rv = p->fn->C_UnwrapKey(hs_p11_key_session(p), &m, s->wrap.handle, k->kf.wrapped,
                                  k->kf.wrapped_len, t, n, &k->handle);
    if (rv != CKR_OK) {
        hs_p11_fail(p, e, rv, "C_UnwrapKey", "unwrapping key '%s' from %s/%s.key%s", k->name,
                    s->keystore, k->name,
                    rv == CKR_WRAPPED_KEY_INVALID || rv == CKR_ENCRYPTED_DATA_INVALID ||
                            rv == CKR_GENERAL_ERROR
                        ? "; the wrapped key is corrupted or belongs to another wrap key"
                        : "");
        return HS_E_P11;
    }
    k->unwrapped = true;
    k->generation = p->generation;
    s->stats.unwraps++;
    /* Deferred (group commit): the unwrapped key is a session object that
     * dies with the process, and the entry of the first signature made
     * with it, fsynced before that signature leaves, makes this one
     * durable too: one fsync less per command. */
    hs_audit_entry en = {.operation = "unwrap", .key_name = k->name,
                         .key_fingerprint = k->fingerprint, .algorithm = hs_keyalg_name(k->alg)};
    hs_result r = s->audit != NULL ? hs_audit_append_deferred(s->audit, &en, NULL, e)
                                   : hs_signer_record(s, "unwrap", k->name, k->fingerprint,
                                                      hs_keyalg_name(k->alg), e);
    if (r != HS_OK)
        destroy_object(s, k);
    return r;
}

static hs_result ensure_usable(hs_signer *s, loaded_key *k, hs_error *e)
{
    if (k->unwrapped && k->generation == s->p11->generation)
        return HS_OK;
    if (k->adopted)
        return hs_fail(e, HS_E_P11,
                       "token '%s' dropped the session holding new key '%s' before it was "
                       "wrapped; nothing was written, run the command again",
                       s->p11->label, k->name);
    if (hs_profile_ops_of(s->profile)->storage == HS_KEYS_RESIDENT)
        return hs_resident_find(s, k, e);
    return unwrap(s, k, e);
}

/* DigestInfo prefixes (RFC 8017 section 9.2 note 1). */
static const uint8_t sha1_prefix[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                      0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};
static const uint8_t sha256_prefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                        0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const uint8_t sha512_prefix[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                        0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};

typedef struct hsm_input {
    CK_MECHANISM mech;
    CK_RSA_PKCS_PSS_PARAMS pss;
    uint8_t data[sizeof sha512_prefix + HS_MAX_DIGEST_LEN];
    size_t len;
} hsm_input;

static void prepare_input(const hs_sign_request *req, hsm_input *in)
{
    memset(in, 0, sizeof *in);
    const uint8_t *prefix = NULL;
    size_t plen = 0;
    switch (req->alg) {
    case HS_SIG_RSA_PKCS1_SHA1: prefix = sha1_prefix, plen = sizeof sha1_prefix; break;
    case HS_SIG_RSA_PKCS1_SHA256: prefix = sha256_prefix, plen = sizeof sha256_prefix; break;
    case HS_SIG_RSA_PKCS1_SHA512: prefix = sha512_prefix, plen = sizeof sha512_prefix; break;
    default: break;
    }
    if (prefix != NULL) {
        in->mech.mechanism = CKM_RSA_PKCS;
        memcpy(in->data, prefix, plen);
    } else if (hs_sig_alg_is_pss(req->alg)) {
        bool s512 = req->alg == HS_SIG_RSA_PSS_SHA512;
        in->pss.hashAlg = s512 ? CKM_SHA512 : CKM_SHA256;
        in->pss.mgf = s512 ? CKG_MGF1_SHA512 : CKG_MGF1_SHA256;
        in->pss.sLen = req->digest_len;
        in->mech.mechanism = CKM_RSA_PKCS_PSS;
        in->mech.pParameter = &in->pss;
        in->mech.ulParameterLen = sizeof in->pss;
    } else {
        in->mech.mechanism = CKM_ECDSA;
    }
    memcpy(in->data + plen, req->digest, req->digest_len);
    in->len = plen + req->digest_len;
}

/* One C_SignInit + C_Sign on a pooled session. */
static CK_RV hsm_sign_once(hs_signer *s, loaded_key *k, hsm_input *in, uint8_t *sig,
                           CK_ULONG *sig_len, hs_error *e, bool *session_ok)
{
    hs_p11 *p = s->p11;
    CK_SESSION_HANDLE sess;
    *session_ok = false;
    if (hs_p11_session_acquire(p, &sess, e) != HS_OK)
        return e->ckr != 0 ? e->ckr : CKR_GENERAL_ERROR;
    *session_ok = true;
    CK_RV rv = p->fn->C_SignInit(sess, &in->mech, k->handle);
    const char *fn = "C_SignInit";
    if (rv == CKR_OK) {
        fn = "C_Sign";
        rv = p->fn->C_Sign(sess, in->data, in->len, sig, sig_len);
    }
    hs_p11_session_release(p, sess, hs_p11_rv_recoverable(rv) || rv == CKR_DEVICE_ERROR);
    if (rv != CKR_OK)
        hs_p11_fail(p, e, rv, fn, "signing with key '%s' (%s)", k->name,
                    hs_ckm_name(in->mech.mechanism));
    return rv;
}

static hs_result ecdsa_raw_to_der(const uint8_t *raw, size_t len, uint8_t **der, size_t *der_len,
                                  hs_error *e)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)(len / 2), NULL), *sv = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
    unsigned char *buf = NULL;
    int n = 0;
    if (es != NULL && r != NULL && sv != NULL && ECDSA_SIG_set0(es, r, sv)) {
        r = sv = NULL;
        n = i2d_ECDSA_SIG(es, &buf);
    }
    BN_free(r);
    BN_free(sv);
    ECDSA_SIG_free(es);
    if (n <= 0)
        return hs_fail(e, HS_E_CRYPTO, "cannot encode an ECDSA signature");
    *der = malloc((size_t)n);
    if (*der != NULL)
        memcpy(*der, buf, (size_t)n);
    OPENSSL_free(buf);
    *der_len = (size_t)n;
    return *der != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
}

static hs_result verify(const loaded_key *k, const hs_sign_request *req, const uint8_t *sig,
                        size_t sig_len, hs_error *e)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k->pub, NULL);
    bool ok = c != NULL && EVP_PKEY_verify_init(c) > 0 &&
              EVP_PKEY_CTX_set_signature_md(c, hs_sig_alg_md(req->alg)) > 0;
    if (ok && hs_sig_alg_is_rsa(req->alg)) {
        bool pss = hs_sig_alg_is_pss(req->alg);
        ok = EVP_PKEY_CTX_set_rsa_padding(c, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) > 0 &&
             (!pss || EVP_PKEY_CTX_set_rsa_pss_saltlen(c, RSA_PSS_SALTLEN_DIGEST) > 0);
    }
    ok = ok && EVP_PKEY_verify(c, sig, sig_len, req->digest, req->digest_len) == 1;
    EVP_PKEY_CTX_free(c);
    if (!ok)
        return hs_fail(e, HS_E_VERIFY,
                       "the HSM's signature with key '%s' does not verify with the key's public "
                       "key; the wrapped key and the key file do not belong together",
                       k->name);
    return HS_OK;
}

static hs_result check_request(const loaded_key *k, const hs_sign_request *req, hs_error *e)
{
    if (!hs_keyalg_can_sign(k->alg, req->alg))
        return hs_fail(e, HS_E_USAGE, "key '%s' is %s and cannot make %s signatures", k->name,
                       hs_keyalg_name(k->alg), hs_sig_alg_name(req->alg));
    if (req->digest_len != hs_sig_alg_digest_len(req->alg))
        return hs_fail(e, HS_E_INTERNAL, "digest of %zu bytes given for %s", req->digest_len,
                       hs_sig_alg_name(req->alg));
    return HS_OK;
}

/* Reopens sessions and logs in again. Object handles do not survive the
 * token closing every session (SoftHSM forgets them, a real HSM may hand
 * out new ones), so the wrap key is looked up again and must be the same
 * key; unwrapped keys are redone lazily (their generation is stale). */
static hs_result recover(hs_signer *s, hs_error *e)
{
    hs_result r = hs_p11_recover(s->p11, e);
    hs_wrapkey again;
    if (r != HS_OK || !hs_profile_ops_of(s->profile)->has_wrap_key)
        return r; /* resident keys are found again lazily, by CKA_ID */
    if (r == HS_OK)
        r = s->profile == HS_PROFILE_YUBIHSM ? hs_yh_wrapkey_find(s->p11, s->wrap.label, &again, e)
                                             : hs_wrapkey_find(s->p11, s->wrap.label, &again, e);
    if (r == HS_OK && !hs_ct_equal(again.kcv, s->wrap.kcv, HS_KCV_LEN))
        r = hs_fail(e, HS_E_VERIFY, "token '%s': the wrap key changed while signing", s->p11->label);
    if (r == HS_OK)
        s->wrap = again;
    return r;
}

static hs_result hsm_sign_locked(hs_signer *s, loaded_key *k, const hs_sign_request *req,
                                 uint8_t **sig, size_t *sig_len, hs_error *e);

static hs_result hsm_sign(hs_signer *s, loaded_key *k, const hs_sign_request *req, uint8_t **sig,
                          size_t *sig_len, hs_error *e)
{
    bool persistent = hs_profile_ops_of(s->profile)->storage == HS_KEYS_WRAPPED_PERSISTENT;
    if (persistent)
        pthread_mutex_lock(&s->persistent_lock);
    hs_result r = hsm_sign_locked(s, k, req, sig, sig_len, e);
    if (persistent)
        pthread_mutex_unlock(&s->persistent_lock);
    return r;
}

static hs_result hsm_sign_locked(hs_signer *s, loaded_key *k, const hs_sign_request *req,
                                 uint8_t **sig, size_t *sig_len, hs_error *e)
{
    hsm_input in;
    prepare_input(req, &in);
    hs_result mr = require_mechanism(s, in.mech.mechanism, CKF_SIGN, hs_sig_alg_name(req->alg), e);
    if (mr != HS_OK)
        return mr;
    size_t cap = hs_keyalg_is_rsa(k->alg) ? hs_keyalg_bits(k->alg) / 8 : 132;
    uint8_t *raw = malloc(cap);
    if (raw == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    CK_ULONG raw_len = 0;
    CK_RV rv = CKR_GENERAL_ERROR;
    hs_result r = HS_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&s->lock);
        r = ensure_usable(s, k, e);
        pthread_mutex_unlock(&s->lock);
        if (r != HS_OK)
            break;
        raw_len = cap;
        bool session_ok;
        rv = hsm_sign_once(s, k, &in, raw, &raw_len, e, &session_ok);
        if (rv == CKR_OK || !hs_p11_rv_recoverable(rv) || attempt == 1) {
            r = rv == CKR_OK ? HS_OK : HS_E_P11;
            break;
        }
        /* A new key exists only in the session the token dropped, so
         * recovering cannot bring it back: report the token's own error
         * (function and CKR) rather than a second, vaguer one. */
        if (k->adopted) {
            r = hs_error_prefix(e, "token '%s' dropped the session holding new key '%s' before "
                                   "it was wrapped; nothing was written, run the command again: ",
                                s->p11->label, k->name);
            break;
        }
        /* The token dropped our sessions (idle timeout, re-plug): log in
         * again and unwrap again, once. */
        pthread_mutex_lock(&s->lock);
        r = recover(s, e);
        pthread_mutex_unlock(&s->lock);
        if (r != HS_OK)
            break;
    }
    if (!k->adopted && hs_profile_ops_of(s->profile)->storage == HS_KEYS_WRAPPED_PERSISTENT)
        r = hs_persistent_after_sign(s, k, r, e);
    if (r == HS_OK && hs_sig_alg_is_ecdsa(req->alg)) {
        r = ecdsa_raw_to_der(raw, raw_len, sig, sig_len, e);
        free(raw);
        return r;
    }
    if (r != HS_OK) {
        free(raw);
        return r;
    }
    *sig = raw;
    *sig_len = raw_len;
    return HS_OK;
}

bool hs_signer_has_cache(const hs_signer *s)
{
    return s->cache != NULL;
}

void hs_signer_set_cache(hs_signer *s, hs_sigcache *cache)
{
    hs_sigcache_free(s->cache);
    s->cache = cache;
}

void hs_signer_set_warn(hs_signer *s, hs_signer_warn_fn fn, void *ctx)
{
    s->warn = fn;
    s->warn_ctx = ctx;
}

static void warn(hs_signer *s, const char *what, const hs_error *e)
{
    if (s->warn == NULL)
        return;
    char msg[sizeof e->msg + 256];
    snprintf(msg, sizeof msg, "signature cache %s: %s", hs_sigcache_dir(s->cache), what);
    if (e != NULL) {
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof msg - n, ": %s", e->msg);
    }
    s->warn(s->warn_ctx, msg);
}

/* A cache entry that cannot be used is removed, so the next run does not
 * trip over it again, and reported; the request then goes to the HSM. */
static void drop_entry(hs_signer *s, const loaded_key *k, const hs_sign_request *req,
                       const hs_error *why)
{
    char what[HS_KEY_NAME_MAX + 192], name[65];
    hs_sigcache_name(k->fingerprint, req->alg, req->digest, req->digest_len, name);
    snprintf(what, sizeof what,
             "dropped entry %s for key '%s' (%s), signing in the HSM instead", name, k->name,
             hs_sig_alg_name(req->alg));
    warn(s, what, why);
    hs_error de = {0};
    if (hs_sigcache_drop(s->cache, k->fingerprint, req->alg, req->digest, req->digest_len, &de) !=
        HS_OK)
        warn(s, "cannot remove a bad entry", &de);
    s->stats.dropped++;
}

static hs_result append_entry(hs_signer *s, const hs_sign_request *req, hs_audit_entry *en,
                              uint64_t *seq, hs_error *e)
{
    return req->defer_durability ? hs_audit_append_deferred(s->audit, en, seq, e)
                                 : hs_audit_append(s->audit, en, seq, e);
}

static void fill_entry(hs_audit_entry *en, const char *op, const loaded_key *k,
                       const hs_sign_request *req, const uint8_t sig_sha[32])
{
    *en = (hs_audit_entry){
        .operation = op, .purpose = req->operation, .key_name = k->name,
        .key_fingerprint = k->fingerprint, .algorithm = hs_sig_alg_name(req->alg),
        .tbs_sha256 = req->tbs_sha256, .sig_sha256 = sig_sha, .artifact = req->artifact,
        .input_sha256 = req->artifact_sha256,
    };
}

/* The cached signature for this request, verified and recorded as a
 * "reuse" of its original entry; *reused false when there is none (or it
 * was dropped). */
static hs_result reuse(hs_signer *s, loaded_key *k, const hs_sign_request *req, uint8_t **sig,
                       size_t *sig_len, bool *reused, hs_error *e)
{
    *reused = false;
    /* Adopted keys are new keys signing their own certificate: nothing to
     * find, and no key file to pin the cache entry to. */
    if (s->cache == NULL || k->adopted)
        return HS_OK;
    hs_sigcache_entry *en = malloc(sizeof *en);
    if (en == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    bool found = false;
    hs_error ce = {0};
    hs_result r = hs_sigcache_lookup(s->cache, k->fingerprint, req->alg, req->digest,
                                     req->digest_len, en, &found, &ce);
    /* The check that makes the cache safe: only a signature the key's
     * public key accepts for exactly this digest is ever reused. */
    if (r == HS_OK && found && verify(k, req, en->sig, en->sig_len, &ce) != HS_OK)
        r = hs_fail(&ce, HS_E_VERIFY, "its signature does not verify with the public key of "
                                      "key '%s'", k->name);
    if (r == HS_E_NOMEM) {
        free(en);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    if (r != HS_OK)
        drop_entry(s, k, req, &ce);
    if (r != HS_OK || !found) {
        free(en);
        return HS_OK;
    }
    uint8_t sig_sha[32];
    SHA256(en->sig, en->sig_len, sig_sha);
    hs_audit_entry ae;
    fill_entry(&ae, HS_AUDIT_OP_REUSE, k, req, sig_sha);
    ae.reuse_of_seq = &en->seq;
    ae.reuse_of_batch = en->batch;
    *sig = malloc(en->sig_len);
    r = *sig != NULL ? append_entry(s, req, &ae, NULL, e) : hs_fail(e, HS_E_NOMEM, "out of memory");
    if (r == HS_OK) {
        memcpy(*sig, en->sig, en->sig_len);
        *sig_len = en->sig_len;
        *reused = true;
    }
    free(en);
    return r;
}

/* Queues (deferred entry) or writes the new signature into the cache. A
 * failed write costs a future HSM operation, not this signature. */
static hs_result remember(hs_signer *s, const loaded_key *k, const hs_sign_request *req,
                          const uint8_t *sig, size_t sig_len, uint64_t seq, hs_error *e)
{
    if (s->cache == NULL || k->adopted || sig_len > HS_SIGCACHE_SIG_MAX)
        return HS_OK;
    hs_sigcache_entry *en = calloc(1, sizeof *en);
    if (en == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    memcpy(en->key_sha256, k->fingerprint, 32);
    en->alg = req->alg;
    memcpy(en->digest, req->digest, req->digest_len);
    en->digest_len = req->digest_len;
    memcpy(en->sig, sig, sig_len);
    en->sig_len = sig_len;
    en->seq = seq;
    snprintf(en->batch, sizeof en->batch, "%s", hs_audit_batch_id(s->audit));
    if (!req->defer_durability) {
        hs_error we = {0};
        if (hs_sigcache_store(s->cache, en, &we) != HS_OK)
            warn(s, "cannot store a signature", &we);
        free(en);
        return HS_OK;
    }
    pthread_mutex_lock(&s->lock);
    hs_result r = HS_OK;
    if (s->n_pending == s->cap_pending) {
        size_t cap = s->cap_pending ? 2 * s->cap_pending : 16;
        hs_sigcache_entry **grown = realloc(s->pending, cap * sizeof *grown);
        if (grown == NULL)
            r = hs_fail(e, HS_E_NOMEM, "out of memory");
        else
            s->pending = grown, s->cap_pending = cap;
    }
    if (r == HS_OK)
        s->pending[s->n_pending++] = en;
    else
        free(en);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* HSM, verify, "sign" entry, cache. */
static hs_result sign_fresh(hs_signer *s, loaded_key *k, const hs_sign_request *req, uint8_t **sig,
                            size_t *sig_len, hs_error *e)
{
    hs_result r = hsm_sign(s, k, req, sig, sig_len, e);
    if (r == HS_OK)
        r = verify(k, req, *sig, *sig_len, e);
    uint64_t seq = 0;
    if (r == HS_OK) {
        uint8_t sig_sha[32];
        SHA256(*sig, *sig_len, sig_sha);
        hs_audit_entry en;
        fill_entry(&en, "sign", k, req, sig_sha);
        r = append_entry(s, req, &en, &seq, e);
    }
    if (r == HS_OK)
        r = remember(s, k, req, *sig, *sig_len, seq, e);
    return r;
}

hs_result hs_signer_sign(hs_signer *s, const hs_sign_request *req, uint8_t **sig, size_t *sig_len,
                         hs_error *e)
{
    *sig = NULL;
    *sig_len = 0;
    loaded_key *k;
    pthread_mutex_lock(&s->lock);
    hs_result r = load_key(s, req->key_name, &k, e);
    pthread_mutex_unlock(&s->lock);
    if (r == HS_OK)
        r = check_request(k, req, e);
    bool reused = false;
    /* Remote: the agent (its own cache, HSM, entry made durable before it
     * answered); checked here too. */
    if (r == HS_OK && req->reuse_only && (s->remote.sign != NULL || s->cache == NULL))
        r = hs_fail(e, HS_E_NOTFOUND, "no signature cache in this process for key '%s'",
                    req->key_name);
    if (r == HS_OK && s->remote.sign != NULL) {
        r = s->remote.sign(s->remote.ctx, req, k->fingerprint, sig, sig_len, e);
        if (r == HS_OK)
            r = verify(k, req, *sig, *sig_len, e);
    } else if (r == HS_OK) {
        r = reuse(s, k, req, sig, sig_len, &reused, e);
        if (r == HS_OK && !reused && req->reuse_only)
            r = hs_fail(e, HS_E_NOTFOUND, "key '%s': signature not in the signature cache",
                        req->key_name);
        else if (r == HS_OK && !reused)
            r = sign_fresh(s, k, req, sig, sig_len, e);
    }
    if (r != HS_OK) {
        /* No signature leaves without its audit entry. */
        if (*sig != NULL)
            hs_wipe(*sig, *sig_len);
        free(*sig);
        *sig = NULL;
        *sig_len = 0;
        return r;
    }
    s->stats.signatures++;
    if (reused)
        s->stats.reused++;
    return HS_OK;
}

hs_result hs_signer_sign_digest(hs_signer *s, const char *key_name, const uint8_t digest[32],
                                const char *operation, const char *artifact,
                                const uint8_t *artifact_sha256, uint8_t **sig, size_t *sig_len,
                                hs_error *e)
{
    *sig = NULL;
    *sig_len = 0;
    const hs_keyfile *kf;
    hs_result r = hs_signer_keyfile(s, key_name, &kf, e);
    if (r != HS_OK)
        return r;
    /* What openssl pkeyutl -pkeyopt digest:sha256 makes with this key. */
    hs_sig_alg alg = hs_keyalg_is_rsa(kf->alg) ? HS_SIG_RSA_PKCS1_SHA256 : HS_SIG_ECDSA_SHA256;
    if (!hs_keyalg_can_sign(kf->alg, alg))
        return hs_fail(e, HS_E_USAGE, "key '%s' is %s and cannot sign a SHA-256 digest", key_name,
                       hs_keyalg_name(kf->alg));
    hs_sign_request req = {
        .key_name = key_name, .alg = alg, .digest = digest, .digest_len = 32,
        .operation = operation, .artifact = artifact, .artifact_sha256 = artifact_sha256,
    };
    memcpy(req.tbs_sha256, digest, 32);
    return hs_signer_sign(s, &req, sig, sig_len, e);
}

static hs_result sign_cb(void *ctx, const hs_sign_request *req, uint8_t **sig, size_t *sig_len,
                         hs_error *e)
{
    return hs_signer_sign(ctx, req, sig, sig_len, e);
}

hs_result hs_signer_sync(hs_signer *s, hs_error *e)
{
    if (s->audit == NULL)
        return HS_OK; /* remote: nothing is deferred here */
    hs_result r = hs_audit_sync(s->audit, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "audit record not durable, so the result was discarded: ");
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_pending; i++) {
        hs_error we = {0};
        if (hs_sigcache_store(s->cache, s->pending[i], &we) != HS_OK)
            warn(s, "cannot store a signature", &we);
    }
    drop_pending(s);
    pthread_mutex_unlock(&s->lock);
    return HS_OK;
}

static hs_result sync_cb(void *ctx, hs_error *e)
{
    return hs_signer_sync(ctx, e);
}

hs_sign_fn hs_signer_fn(hs_signer *s)
{
    hs_sign_fn fn = {sign_cb, s, sync_cb};
    return fn;
}

hs_result hs_signer_adopt(hs_signer *s, const char *name, hs_keyalg alg, CK_OBJECT_HANDLE priv,
                          EVP_PKEY *pub, hs_error *e)
{
    if (s->p11 == NULL)
        return hs_fail(e, HS_E_USAGE, "making key '%s' needs the token itself, not the agent "
                                      "(unset HSMSIGN_AGENT)", name);
    loaded_key *k = calloc(1, sizeof *k);
    if (k == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    snprintf(k->name, sizeof k->name, "%s", name);
    k->hold = HS_YH_HOLD_NONE;
    k->alg = alg;
    k->adopted = true;
    k->unwrapped = true;
    k->handle = priv;
    k->generation = s->p11->generation;
    EVP_PKEY_up_ref(pub);
    k->pub = pub;
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pub, &der);
    if (n > 0)
        SHA256(der, (size_t)n, k->fingerprint);
    OPENSSL_free(der);
    pthread_mutex_lock(&s->lock);
    hs_result r = find_key(s, name) != NULL
                      ? hs_fail(e, HS_E_EXISTS, "key '%s' is already in use in this process", name)
                      : add_key(s, k, e);
    pthread_mutex_unlock(&s->lock);
    if (r != HS_OK) {
        EVP_PKEY_free(k->pub);
        free(k);
    }
    return r;
}

void hs_signer_forget(hs_signer *s, const char *name)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_keys; i++) {
        if (strcmp(s->keys[i]->name, name) == 0) {
            free_key(s, s->keys[i]);
            s->keys[i] = s->keys[--s->n_keys];
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

static hs_result record_output(hs_signer *s, const char *purpose, const char *key_name,
                               const char *artifact, const uint8_t input_sha256[32],
                               const uint8_t output_sha256[32], bool deferred, hs_error *e)
{
    const hs_keyfile *kf = NULL;
    hs_result r = hs_signer_keyfile(s, key_name, &kf, e);
    if (r != HS_OK)
        return r;
    if (s->remote.record_output != NULL)
        return s->remote.record_output(s->remote.ctx, purpose, key_name, artifact, input_sha256,
                                       output_sha256, e);
    hs_audit_entry en = {.operation = HS_AUDIT_OP_OUTPUT, .purpose = purpose, .key_name = key_name,
                         .key_fingerprint = kf->fingerprint, .artifact = artifact,
                         .input_sha256 = input_sha256, .output_sha256 = output_sha256};
    return deferred ? hs_audit_append_deferred(s->audit, &en, NULL, e)
                    : hs_audit_append(s->audit, &en, NULL, e);
}

hs_result hs_signer_record_output(hs_signer *s, const char *purpose, const char *key_name,
                                  const char *artifact, const uint8_t input_sha256[32],
                                  const uint8_t output_sha256[32], hs_error *e)
{
    return record_output(s, purpose, key_name, artifact, input_sha256, output_sha256, false, e);
}

hs_result hs_signer_record_output_deferred(hs_signer *s, const char *purpose,
                                           const char *key_name, const char *artifact,
                                           const uint8_t input_sha256[32],
                                           const uint8_t output_sha256[32], hs_error *e)
{
    return record_output(s, purpose, key_name, artifact, input_sha256, output_sha256, true, e);
}

hs_signer_stats hs_signer_get_stats(const hs_signer *s)
{
    hs_signer_stats st = s->stats;
    st.recoveries = s->p11 != NULL ? s->p11->recoveries : 0;
    return st;
}

hs_p11 *hs_signer_p11(hs_signer *s)
{
    return s->p11;
}

hs_profile hs_signer_profile(const hs_signer *s)
{
    return s->profile;
}

const hs_wrapkey *hs_signer_wrapkey(const hs_signer *s)
{
    return &s->wrap;
}

const char *hs_signer_keystore(const hs_signer *s)
{
    return s->keystore;
}
