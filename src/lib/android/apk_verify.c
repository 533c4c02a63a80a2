/* hs_apk_verify_file: our own check of v1, v2 and v3 signatures, so the
 * CLI can report what an APK carries. apksigner remains the reference in
 * tests; this verifier is strict and simple: every signer, every known
 * signature algorithm, every digest must check out. */
#include "android/apk.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "android/apk_digest.h"
#include "android/apk_signing_block.h"
#include "android/apk_verify_internal.h"
#include "android/axml.h"
#include "android/zip.h"
#include "android/zip_check.h"
#include "util/encoding.h"

typedef struct lp_reader {
    const uint8_t *p;
    size_t len, pos;
} lp_reader;

static bool read_u32(lp_reader *r, uint32_t *v)
{
    if (r->len - r->pos < 4)
        return false;
    *v = hs_le32(r->p + r->pos);
    r->pos += 4;
    return true;
}

static bool read_lp(lp_reader *r, lp_reader *inner)
{
    uint32_t n;
    if (!read_u32(r, &n) || n > r->len - r->pos)
        return false;
    *inner = (lp_reader){r->p + r->pos, n, 0};
    r->pos += n;
    return true;
}

static bool at_end(const lp_reader *r)
{
    return r->pos == r->len;
}

typedef struct verify_job {
    hs_zip zip;
    hs_apk_verify_report *rep;
    const char *path;
    /* content digests by hash, computed on first use */
    uint8_t digest256[32], digest512[64];
    bool have256, have512;
    /* every entry's data (zip_check.h), checked beside the first digest
     * and reported after the signatures: a tampered APK is first of all
     * one whose digest does not match */
    bool data_checked, data_ok;
    hs_error data_err;
} verify_job;

static bool check_data(void *arg)
{
    verify_job *j = arg;
    j->data_checked = true;
    j->data_ok = hs_zip_check_file(&j->zip, &j->data_err) == HS_OK;
    return true;
}

static hs_result check_data_failed(void *arg, hs_error *e)
{
    const verify_job *j = arg;
    return hs_fail(e, HS_E_INTERNAL, "%s: the entry data check did not run", j->path);
}

/* Signatures verified: the APK still does not verify if an entry's data is
 * corrupt (apksigner verify and devices read the entries). */
static hs_result data_result(verify_job *j, hs_error *e)
{
    if (!j->data_checked)
        check_data(j);
    if (j->data_ok)
        return HS_OK;
    return hs_fail(e, HS_E_VERIFY, "%s", j->data_err.msg);
}

static hs_result content_digest(verify_job *j, const EVP_MD *md, const uint8_t **out,
                                hs_error *e)
{
    bool is512 = EVP_MD_get_size(md) == 64;
    uint8_t *slot = is512 ? j->digest512 : j->digest256;
    bool *have = is512 ? &j->have512 : &j->have256;
    *out = slot;
    if (*have)
        return HS_OK;
    const hs_zip *z = &j->zip;
    size_t eocd_len = (size_t)(z->size - z->eocd_offset);
    uint8_t *eocd = malloc(eocd_len);
    if (eocd == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->path);
    memcpy(eocd, z->map + z->eocd_offset, eocd_len);
    hs_put_le32(eocd + 16, (uint32_t)z->entries_end);
    hs_apk_section sections[3] = {
        {.fd = z->fd, .offset = 0, .len = z->entries_end},
        {.len = z->cd_size, .mem = z->map + z->cd_offset},
        {.len = eocd_len, .mem = eocd},
    };
    size_t n = 0;
    hs_apk_side_task side = {.run = check_data, .fail = check_data_failed, .ctx = j};
    hs_result r = hs_apk_content_digest(md, sections, 3, j->data_checked ? NULL : &side, j->path,
                                        slot, &n, e);
    free(eocd);
    if (r == HS_OK)
        *have = true;
    return r;
}

static hs_result verify_one_signature(const char *what, EVP_PKEY *key,
                                      const hs_apk_sig_algorithm *alg, const lp_reader *tbs,
                                      const uint8_t *sig, size_t sig_len, hs_error *e)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = ctx != NULL &&
             EVP_DigestVerifyInit(ctx, &pctx, hs_sig_alg_md(alg->alg), NULL, key) == 1;
    if (ok && hs_sig_alg_is_pss(alg->alg))
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
    if (ok)
        ok = EVP_DigestVerify(ctx, sig, sig_len, tbs->p, tbs->len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return hs_fail(e, HS_E_VERIFY, "%s: signature (algorithm 0x%04x) does not verify", what,
                       alg->id);
    return HS_OK;
}

/* Checks the signatures list against signed_data and the digests list
 * against the APK; both lists must name the same algorithms in order. */
static hs_result check_signer_core(verify_job *j, const char *what, EVP_PKEY *key,
                                   const lp_reader *signed_data, lp_reader digests,
                                   lp_reader sigs, uint32_t *alg_id, uint8_t sig_sha256[32],
                                   hs_error *e)
{
    unsigned checked = 0;
    while (!at_end(&sigs) || !at_end(&digests)) {
        lp_reader s_item, d_item, sig, dig;
        uint32_t s_alg, d_alg;
        if (!read_lp(&sigs, &s_item) || !read_lp(&digests, &d_item) ||
            !read_u32(&s_item, &s_alg) || !read_lp(&s_item, &sig) ||
            !read_u32(&d_item, &d_alg) || !read_lp(&d_item, &dig))
            return hs_fail(e, HS_E_VERIFY,
                           "%s: signatures and digests lists are malformed or differ in length",
                           what);
        if (s_alg != d_alg)
            return hs_fail(e, HS_E_VERIFY, "%s: signature and digest algorithms differ", what);
        hs_apk_sig_algorithm alg;
        if (!hs_apk_algorithm_by_id(s_alg, &alg))
            continue; /* unknown (e.g. verity) algorithms are skipped, as Android does */
        hs_result r = verify_one_signature(what, key, &alg, signed_data, sig.p, sig.len, e);
        const uint8_t *want = NULL;
        if (r == HS_OK)
            r = content_digest(j, alg.content_md, &want, e);
        if (r != HS_OK)
            return r;
        if (dig.len != (size_t)EVP_MD_get_size(alg.content_md) ||
            !hs_ct_equal(dig.p, want, dig.len))
            return hs_fail(e, HS_E_VERIFY, "%s: APK content digest (0x%04x) does not match", what,
                           s_alg);
        *alg_id = s_alg;
        if (checked == 0)
            EVP_Digest(sig.p, sig.len, sig_sha256, NULL, EVP_sha256(), NULL);
        checked++;
    }
    if (checked == 0)
        return hs_fail(e, HS_E_VERIFY, "%s: no signature with a supported algorithm", what);
    return HS_OK;
}

static hs_result keep_cert(verify_job *j, const uint8_t *der, size_t len, hs_error *e)
{
    if (j->rep->cert_der != NULL) {
        if (j->rep->cert_der_len != len || memcmp(j->rep->cert_der, der, len) != 0)
            return hs_fail(e, HS_E_VERIFY, "%s: the schemes are signed by different certificates",
                           j->path);
        return HS_OK;
    }
    j->rep->cert_der = malloc(len ? len : 1);
    if (j->rep->cert_der == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->path);
    memcpy(j->rep->cert_der, der, len);
    j->rep->cert_der_len = len;
    EVP_Digest(der, len, j->rep->cert_sha256, NULL, EVP_sha256(), NULL);
    return HS_OK;
}

/* The first certificate's key must be the key the signatures verify with. */
static hs_result check_cert_matches(const char *what, const lp_reader *certs, EVP_PKEY *key,
                                    lp_reader *first, hs_error *e)
{
    lp_reader list = *certs;
    if (!read_lp(&list, first) || first->len == 0)
        return hs_fail(e, HS_E_VERIFY, "%s: no certificate", what);
    const uint8_t *p = first->p;
    X509 *cert = d2i_X509(NULL, &p, (long)first->len);
    bool same = cert != NULL && p == first->p + first->len &&
                EVP_PKEY_eq(X509_get0_pubkey(cert), key) == 1;
    X509_free(cert);
    if (!same)
        return hs_fail(e, HS_E_VERIFY, "%s: the certificate does not match the signing key", what);
    return HS_OK;
}

static hs_result verify_signer(verify_job *j, int scheme, lp_reader signer, hs_error *e)
{
    char what[64];
    snprintf(what, sizeof what, "v%d signer", scheme);
    lp_reader signed_data, sigs, spki, digests, certs, attrs;
    uint32_t min_outer = 0, max_outer = 0, min_inner = 0, max_inner = 0;
    bool ok = read_lp(&signer, &signed_data);
    if (ok && scheme == 3)
        ok = read_u32(&signer, &min_outer) && read_u32(&signer, &max_outer);
    ok = ok && read_lp(&signer, &sigs) && read_lp(&signer, &spki) && at_end(&signer);
    lp_reader sd = signed_data;
    ok = ok && read_lp(&sd, &digests) && read_lp(&sd, &certs);
    if (ok && scheme == 3)
        ok = read_u32(&sd, &min_inner) && read_u32(&sd, &max_inner);
    ok = ok && read_lp(&sd, &attrs);
    if (!ok)
        return hs_fail(e, HS_E_VERIFY, "%s: %s is malformed", j->path, what);
    if (scheme == 3 && (min_inner != min_outer || max_inner != max_outer))
        return hs_fail(e, HS_E_VERIFY, "%s: %s: SDK ranges inside and outside signed data differ",
                       j->path, what);
    const uint8_t *kp = spki.p;
    EVP_PKEY *key = d2i_PUBKEY(NULL, &kp, (long)spki.len);
    if (key == NULL)
        return hs_fail(e, HS_E_VERIFY, "%s: %s: malformed public key", j->path, what);
    lp_reader first_cert;
    hs_result r = check_signer_core(j, what, key, &signed_data, digests, sigs,
                                    &j->rep->algorithm_id,
                                    scheme == 3 ? j->rep->v3_sig_sha256 : j->rep->v2_sig_sha256, e);
    if (r == HS_OK)
        r = check_cert_matches(what, &certs, key, &first_cert, e);
    EVP_PKEY_free(key);
    if (r == HS_OK && scheme == 2)
        r = hs_apk_verify_v2_attrs(attrs.p, attrs.len, j->rep->v3_present, e);
    if (r == HS_OK)
        r = keep_cert(j, first_cert.p, first_cert.len, e);
    if (r != HS_OK && r != HS_E_NOMEM)
        hs_error_prefix(e, "%s: ", j->path);
    return r;
}

static hs_result verify_scheme(verify_job *j, int scheme, const uint8_t *value, size_t len,
                               hs_error *e)
{
    lp_reader all = {value, len, 0}, signers, signer;
    if (!read_lp(&all, &signers) || !at_end(&all) || signers.len == 0)
        return hs_fail(e, HS_E_VERIFY, "%s: v%d block is malformed or has no signer", j->path,
                       scheme);
    while (!at_end(&signers)) {
        if (!read_lp(&signers, &signer))
            return hs_fail(e, HS_E_VERIFY, "%s: v%d signer list is malformed", j->path, scheme);
        hs_result r = verify_signer(j, scheme, signer, e);
        if (r != HS_OK)
            return r;
    }
    return HS_OK;
}

static hs_result verify_block(verify_job *j, hs_error *e)
{
    const hs_zip *z = &j->zip;
    const uint8_t *block = z->map + z->entries_end;
    size_t block_len = (size_t)(z->cd_offset - z->entries_end);
    const uint8_t *v2 = NULL, *v3 = NULL;
    size_t v2_len = 0, v3_len = 0;
    bool found2 = false, found3 = false;
    hs_result r = hs_apk_block_find(block, block_len, HS_APK_BLOCK_ID_V2, &v2, &v2_len, &found2, e);
    if (r == HS_OK)
        r = hs_apk_block_find(block, block_len, HS_APK_BLOCK_ID_V3, &v3, &v3_len, &found3, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "%s: ", j->path);
    j->rep->v2_present = found2;
    j->rep->v3_present = found3;
    /* v3 first: its certificate is the one the platform uses. */
    if (found3 && (r = verify_scheme(j, 3, v3, v3_len, e)) != HS_OK)
        return r;
    j->rep->v3 = found3;
    if (found2 && (r = verify_scheme(j, 2, v2, v2_len, e)) != HS_OK)
        return r;
    j->rep->v2 = found2;
    return HS_OK;
}

static hs_result run(verify_job *j, hs_error *e)
{
    hs_result r = hs_zip_open(&j->zip, j->path, e);
    if (r != HS_OK)
        return r;
    hs_error ignored = {0};
    if (hs_axml_apk_min_sdk(&j->zip, &j->rep->min_sdk, &ignored) != HS_OK)
        j->rep->min_sdk = -1;
    if (j->zip.has_signing_block && (r = verify_block(j, e)) != HS_OK)
        return r;
    hs_apk_v1_result v1 = {0};
    r = hs_apk_verify_v1(&j->zip, &v1, e);
    j->rep->v1_present = v1.present;
    if (r != HS_OK)
        return r;
    if (v1.present) {
        /* Every branch ends at the free below: v1.cert_der is ours. */
        if (v1.signed_with_v2 && !j->rep->v2_present)
            r = hs_fail(e, HS_E_VERIFY,
                        "%s: the JAR signature says v2 was applied but there is no v2 block",
                        j->path);
        else if (v1.signed_with_v3 && !j->rep->v3_present)
            r = hs_fail(e, HS_E_VERIFY,
                        "%s: the JAR signature says v3 was applied but there is no v3 block",
                        j->path);
        else
            r = keep_cert(j, v1.cert_der, v1.cert_der_len, e);
        memcpy(j->rep->v1_sig_sha256, v1.sig_sha256, 32);
        free(v1.cert_der);
        if (r != HS_OK)
            return r;
        j->rep->v1 = true;
    }
    if (!j->rep->v1_present && !j->rep->v2_present && !j->rep->v3_present)
        return hs_fail(e, HS_E_VERIFY, "%s: not signed (no v1, v2 or v3 signature)", j->path);
    return data_result(j, e);
}

hs_result hs_apk_verify_file(const char *path, hs_apk_verify_report *rep, hs_error *e)
{
    memset(rep, 0, sizeof *rep);
    rep->min_sdk = -1;
    verify_job j = {.rep = rep, .path = path};
    hs_result r = run(&j, e);
    hs_zip_close(&j.zip);
    return r;
}

void hs_apk_verify_report_free(hs_apk_verify_report *rep)
{
    free(rep->cert_der);
    rep->cert_der = NULL;
    rep->cert_der_len = 0;
}
