/* APK Signature Scheme v2, v3 and v3.1 blocks, verified as apksig's
 * V2SchemeVerifier / V3SchemeVerifier do for a platform range: every
 * signer must verify (signature of the best algorithm per platform, the
 * content digests, certificate = signing key); v3 signers must cover the
 * range without gaps and their lineages must agree. */
#include "apk/apk_verify_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "apk/apk_lp.h"
#include "apk/apk_signing_block.h"
#include "util/encoding.h"

#define ATTR_PROOF_OF_ROTATION 0x3ba06f8cu

typedef struct scheme_job {
    hs_apk_digests *d;
    const hs_apk_scheme_params *p;
    int scheme; /* 2, 3 or 31 */
    char what[48];
    unsigned content_algs; /* bit per hs_apk_content_alg verified by some signer */
} scheme_job;

/* apksig's compareSignatureAlgorithm: a stronger content digest wins. */
static int strength(const hs_apk_valg *a)
{
    return a->content == HS_APK_CONTENT_SHA512 ? 2 : 1;
}

/* apksig's getSignaturesToVerify: the best signature per "first platform"
 * among those some platform in range knows; the lowest such platform must
 * not be above min_sdk. Unknown algorithms were already skipped. */
static hs_result pick_signatures(scheme_job *j, hs_lp sigs, uint32_t min_sdk, uint32_t max_sdk,
                                 hs_lp chosen[4], const hs_apk_valg *chosen_alg[4], size_t *n,
                                 hs_error *e)
{
    static const int platforms[2] = {HS_SDK_N, HS_SDK_P};
    *n = 0;
    int lowest = HS_SDK_LATEST;
    bool any = false;
    for (size_t b = 0; b < 2; b++) {
        hs_lp list = sigs, best = {0};
        const hs_apk_valg *best_alg = NULL;
        while (!hs_lp_end(&list)) {
            hs_lp item, sig;
            uint32_t id;
            if (!hs_lp_slice(&list, &item) || !hs_lp_u32(&item, &id) || !hs_lp_slice(&item, &sig))
                return hs_fail(e, HS_E_VERIFY, "%s: malformed signature record", j->what);
            const hs_apk_valg *alg = hs_apk_valg_find(id);
            if (alg == NULL || alg->min_sdk != platforms[b] || (uint32_t)alg->min_sdk > max_sdk)
                continue;
            if (best_alg == NULL || strength(alg) > strength(best_alg)) {
                best_alg = alg;
                best = sig;
            }
        }
        if (best_alg != NULL) {
            any = true;
            if (platforms[b] < lowest)
                lowest = platforms[b];
            chosen[*n] = best;
            chosen_alg[(*n)++] = best_alg;
        }
    }
    if (!any || (int64_t)min_sdk < lowest)
        return hs_fail(e, HS_E_VERIFY, "%s: no signature with an algorithm supported on API "
                       "levels %u to %u", j->what, min_sdk, max_sdk);
    return HS_OK;
}

/* Signatures and digests records must name the same algorithms in order,
 * and every digest whose algorithm some signer verified must match. */
static hs_result check_lists(scheme_job *j, hs_lp sigs, hs_lp digests, hs_error *e)
{
    while (!hs_lp_end(&sigs) || !hs_lp_end(&digests)) {
        hs_lp s, d, val;
        uint32_t sid, did;
        if (!hs_lp_slice(&sigs, &s) || !hs_lp_u32(&s, &sid) || !hs_lp_slice(&digests, &d) ||
            !hs_lp_u32(&d, &did) || !hs_lp_slice(&d, &val))
            return hs_fail(e, HS_E_VERIFY,
                           "%s: signatures and digests records name different algorithms",
                           j->what);
        if (sid != did)
            return hs_fail(e, HS_E_VERIFY,
                           "%s: signatures and digests records name different algorithms",
                           j->what);
    }
    return HS_OK;
}

static hs_result check_digests(scheme_job *j, hs_lp digests, hs_error *e)
{
    while (!hs_lp_end(&digests)) {
        hs_lp d, val;
        uint32_t id;
        if (!hs_lp_slice(&digests, &d) || !hs_lp_u32(&d, &id) || !hs_lp_slice(&d, &val))
            return hs_fail(e, HS_E_VERIFY, "%s: malformed digest record", j->what);
        const hs_apk_valg *alg = hs_apk_valg_find(id);
        /* The verity digest (an fs-verity tree root) is not recomputed: a
         * chunked digest, which every signer also carries, covers the same
         * bytes (see docs/apk.md). */
        if (alg == NULL || alg->content == HS_APK_CONTENT_VERITY ||
            !(j->content_algs & (1u << alg->content)))
            continue;
        const uint8_t *want;
        size_t want_len;
        hs_result r = hs_apk_digests_get(j->d, alg->content, &want, &want_len, e);
        if (r != HS_OK)
            return r;
        if (val.len != want_len || !hs_ct_equal(val.p, want, want_len))
            return hs_fail(e, HS_E_VERIFY, "%s: APK content digest (0x%04x) does not match",
                           j->what, id);
    }
    return HS_OK;
}

typedef struct signer_parts {
    hs_lp signed_data, sigs, spki, digests, certs, attrs;
    uint32_t min_sdk, max_sdk;
} signer_parts;

static hs_result split_signer(scheme_job *j, hs_lp signer, signer_parts *s, hs_error *e)
{
    memset(s, 0, sizeof *s);
    bool v3 = j->scheme != 2;
    uint32_t min_in = 0, max_in = HS_SDK_LATEST;
    s->min_sdk = 0;
    s->max_sdk = HS_SDK_LATEST;
    bool ok = hs_lp_slice(&signer, &s->signed_data);
    if (ok && v3)
        ok = hs_lp_u32(&signer, &s->min_sdk) && hs_lp_u32(&signer, &s->max_sdk);
    ok = ok && hs_lp_slice(&signer, &s->sigs) && hs_lp_slice(&signer, &s->spki);
    hs_lp sd = s->signed_data;
    ok = ok && hs_lp_slice(&sd, &s->digests) && hs_lp_slice(&sd, &s->certs);
    if (ok && v3)
        ok = hs_lp_u32(&sd, &min_in) && hs_lp_u32(&sd, &max_in);
    ok = ok && hs_lp_slice(&sd, &s->attrs);
    if (!ok)
        return hs_fail(e, HS_E_VERIFY, "%s: malformed signer", j->what);
    if (v3 && (s->min_sdk > s->max_sdk || s->min_sdk > HS_SDK_LATEST))
        return hs_fail(e, HS_E_VERIFY, "%s: invalid SDK range %u to %u", j->what, s->min_sdk,
                       s->max_sdk);
    if (v3 && (min_in != s->min_sdk || max_in != s->max_sdk))
        return hs_fail(e, HS_E_VERIFY, "%s: SDK range in the signer and in its signed data differ",
                       j->what);
    if (hs_lp_end(&s->sigs))
        return hs_fail(e, HS_E_VERIFY, "%s: no signatures", j->what);
    return HS_OK;
}

static hs_result verify_sigs(scheme_job *j, const signer_parts *s, EVP_PKEY *key,
                             hs_apk_scheme_signer *out, hs_error *e)
{
    uint32_t lo = s->min_sdk, hi = s->max_sdk;
    if (j->scheme == 2) {
        lo = (uint32_t)j->p->min_sdk;
        hi = (uint32_t)j->p->max_sdk;
    }
    hs_lp chosen[4];
    const hs_apk_valg *algs[4];
    size_t n = 0;
    hs_result r = pick_signatures(j, s->sigs, lo, hi, chosen, algs, &n, e);
    for (size_t i = 0; r == HS_OK && i < n; i++) {
        if (!hs_apk_valg_verify(algs[i], key, s->signed_data.p, s->signed_data.len, chosen[i].p,
                                chosen[i].len))
            return hs_fail(e, HS_E_VERIFY, "%s: signature (algorithm 0x%04x) does not verify",
                           j->what, algs[i]->id);
        j->content_algs |= 1u << algs[i]->content;
        if (i == 0) {
            out->alg_id = algs[i]->id;
            EVP_Digest(chosen[i].p, chosen[i].len, out->sig_sha256, NULL, EVP_sha256(), NULL);
        }
    }
    return r;
}

/* The first certificate must carry exactly the signer's public key. */
static hs_result check_certs(scheme_job *j, const signer_parts *s, hs_apk_scheme_signer *out,
                             hs_error *e)
{
    hs_lp certs = s->certs, first = {0};
    size_t count = 0;
    while (!hs_lp_end(&certs)) {
        hs_lp c;
        if (!hs_lp_slice(&certs, &c))
            return hs_fail(e, HS_E_VERIFY, "%s: malformed certificate list", j->what);
        const uint8_t *q = c.p;
        X509 *x = d2i_X509(NULL, &q, (long)c.len);
        X509_free(x);
        if (x == NULL)
            return hs_fail(e, HS_E_VERIFY, "%s: certificate #%zu is malformed", j->what,
                           count + 1);
        if (count++ == 0)
            first = c;
    }
    if (count == 0)
        return hs_fail(e, HS_E_VERIFY, "%s: no certificates", j->what);
    const uint8_t *q = first.p;
    X509 *x = d2i_X509(NULL, &q, (long)first.len);
    uint8_t *spki = NULL;
    int spki_len = x != NULL ? i2d_PUBKEY(X509_get0_pubkey(x), &spki) : -1;
    X509_free(x);
    bool same = spki_len > 0 && (size_t)spki_len == s->spki.len &&
                memcmp(spki, s->spki.p, s->spki.len) == 0;
    OPENSSL_free(spki);
    if (!same)
        return hs_fail(e, HS_E_VERIFY,
                       "%s: public key mismatch between certificate and signature record",
                       j->what);
    return hs_apk_cert_set(&out->cert, first.p, first.len, e);
}

static hs_result check_v2_attr(scheme_job *j, hs_lp value, hs_error *e)
{
    uint32_t id;
    if (!hs_lp_u32(&value, &id))
        return hs_fail(e, HS_E_VERIFY, "%s: malformed stripping-protection attribute", j->what);
    if ((j->p->supported_schemes & (1u << id)) && !(j->p->found_schemes & (1u << id)))
        return hs_fail(e, HS_E_VERIFY,
                       "%s: the v2 signature says v%u was applied but there is no v%u signature "
                       "(stripped?)", j->what, id, id);
    return HS_OK;
}

static hs_result check_v3_attr(scheme_job *j, uint32_t id, hs_lp value, hs_apk_scheme_signer *out,
                               hs_error *e)
{
    if (id == ATTR_PROOF_OF_ROTATION) {
        hs_result r = hs_apk_lineage_parse(value.p, value.len, HS_APK_LINEAGE_V3_ATTR, j->what,
                                           &out->lineage, e);
        if (r != HS_OK)
            return r == HS_E_NOMEM ? r : HS_E_VERIFY;
        /* The signer must be the newest certificate of its lineage. */
        if (out->lineage.count == 0 ||
            hs_apk_lineage_find(&out->lineage, out->cert.der, out->cert.len) !=
                (long)out->lineage.count - 1)
            return hs_fail(e, HS_E_VERIFY,
                           "%s: the signer is not the last certificate of its lineage", j->what);
    } else if (id == HS_APK_ATTR_ROTATION_MIN_SDK && j->p->max_sdk >= HS_SDK_T) {
        uint32_t v;
        if (!hs_lp_u32(&value, &v))
            return hs_fail(e, HS_E_VERIFY, "%s: malformed rotation-min-sdk attribute", j->what);
        if (j->p->rotation_min_sdk == 0)
            return hs_fail(e, HS_E_VERIFY,
                           "%s: rotation targets SDK %u but there is no v3.1 signature "
                           "(stripped?)", j->what, v);
        if ((int)v != j->p->rotation_min_sdk)
            return hs_fail(e, HS_E_VERIFY,
                           "%s: rotation-min-sdk attribute %u differs from the v3.1 signers' %d",
                           j->what, v, j->p->rotation_min_sdk);
    } else if (id == HS_APK_ATTR_ROTATION_DEV_RELEASE) {
        out->dev_release = true;
    }
    return HS_OK;
}

static hs_result check_attrs(scheme_job *j, hs_lp attrs, hs_apk_scheme_signer *out, hs_error *e)
{
    hs_result r = HS_OK;
    while (r == HS_OK && !hs_lp_end(&attrs)) {
        hs_lp a;
        uint32_t id;
        if (!hs_lp_slice(&attrs, &a) || !hs_lp_u32(&a, &id))
            return hs_fail(e, HS_E_VERIFY, "%s: malformed additional attribute", j->what);
        hs_lp value = {a.p + a.pos, a.len - a.pos, 0};
        if (j->scheme == 2 && id == HS_APK_ATTR_STRIPPING_PROTECTION)
            r = check_v2_attr(j, value, e);
        else if (j->scheme != 2)
            r = check_v3_attr(j, id, value, out, e);
    }
    return r;
}

/* *digests: the signer's digests record, checked once every signer has
 * named the algorithms it verified. */
static hs_result verify_signer(scheme_job *j, hs_lp signer, hs_apk_scheme_signer *out,
                               hs_lp *digests, hs_error *e)
{
    signer_parts s;
    hs_result r = split_signer(j, signer, &s, e);
    if (r != HS_OK)
        return r;
    *digests = s.digests;
    out->min_sdk = s.min_sdk;
    out->max_sdk = s.max_sdk;
    const uint8_t *kp = s.spki.p;
    EVP_PKEY *key = d2i_PUBKEY(NULL, &kp, (long)s.spki.len);
    if (key == NULL)
        return hs_fail(e, HS_E_VERIFY, "%s: malformed public key", j->what);
    r = verify_sigs(j, &s, key, out, e);
    EVP_PKEY_free(key);
    if (r == HS_OK)
        r = check_lists(j, s.sigs, s.digests, e);
    if (r == HS_OK)
        r = check_certs(j, &s, out, e);
    if (r == HS_OK)
        r = check_attrs(j, s.attrs, out, e);
    return r;
}

static int by_max_sdk(const void *a, const void *b)
{
    const hs_apk_scheme_signer *x = *(const hs_apk_scheme_signer *const *)a;
    const hs_apk_scheme_signer *y = *(const hs_apk_scheme_signer *const *)b;
    return x->max_sdk < y->max_sdk ? -1 : x->max_sdk > y->max_sdk;
}

/* v3: signers sorted by max SDK cover [min, max] (or up to the v3.1
 * rotation) without gaps, and their lineages agree. */
static hs_result check_v3_ranges(scheme_job *j, hs_apk_scheme_result *res, hs_error *e)
{
    const hs_apk_scheme_signer **sorted = malloc(res->count * sizeof *sorted);
    if (sorted == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    for (size_t i = 0; i < res->count; i++)
        sorted[i] = &res->signers[i];
    qsort(sorted, res->count, sizeof *sorted, by_max_sdk);
    hs_result r = HS_OK;
    uint32_t first_min = sorted[0]->min_sdk, last_max = 0;
    size_t last_lineage = 0;
    for (size_t i = 0; r == HS_OK && i < res->count; i++) {
        const hs_apk_scheme_signer *s = sorted[i];
        if (i > 0 && s->min_sdk != last_max + 1 && !(s->min_sdk == last_max && s->dev_release))
            r = hs_fail(e, HS_E_VERIFY, "%s: signers' SDK ranges are inconsistent", j->what);
        last_max = s->max_sdk;
        if (r == HS_OK && s->lineage.count > 0) {
            if (s->lineage.count < last_lineage)
                r = hs_fail(e, HS_E_VERIFY, "%s: signers' lineages are inconsistent", j->what);
            last_lineage = s->lineage.count;
            hs_apk_lineage merged;
            if (r == HS_OK && res->lineage.count == 0)
                r = hs_apk_lineage_copy(&s->lineage, &res->lineage, e);
            else if (r == HS_OK && (r = hs_apk_lineage_merge(&res->lineage, &s->lineage, &merged,
                                                             e)) == HS_OK) {
                hs_apk_lineage_free(&res->lineage);
                res->lineage = merged;
            } else if (r == HS_E_VERIFY) {
                hs_error_prefix(e, "%s: ", j->what);
            }
        }
    }
    uint32_t need_max = j->p->rotation_min_sdk > 0 ? (uint32_t)j->p->rotation_min_sdk - 1
                                                   : (uint32_t)j->p->max_sdk;
    if (r == HS_OK && (first_min > (uint32_t)j->p->min_sdk || last_max < need_max))
        r = hs_fail(e, HS_E_VERIFY, "%s: signers cover API levels %u to %u, not %d to %u",
                    j->what, first_min, last_max, j->p->min_sdk, need_max);
    free(sorted);
    return r;
}

hs_result hs_apk_verify_scheme(hs_apk_digests *d, const hs_apk_scheme_params *p,
                               const uint8_t *value, size_t len, hs_apk_scheme_result *out,
                               hs_error *e)
{
    memset(out, 0, sizeof *out);
    scheme_job j = {.d = d, .p = p};
    j.scheme = p->block_id == HS_APK_BLOCK_ID_V2 ? 2 : p->block_id == HS_APK_BLOCK_ID_V3 ? 3 : 31;
    hs_lp all = {value, len, 0}, signers;
    snprintf(j.what, sizeof j.what, "%s", j.scheme == 2 ? "v2" : j.scheme == 3 ? "v3" : "v3.1");
    if (!hs_lp_slice(&all, &signers))
        return hs_fail(e, HS_E_VERIFY, "%s: malformed list of signers", j.what);
    if (hs_lp_end(&signers))
        return hs_fail(e, HS_E_VERIFY, "%s: no signers", j.what);
    hs_result r = HS_OK;
    size_t cap = 0;
    hs_lp *digests = NULL;
    while (r == HS_OK && !hs_lp_end(&signers)) {
        hs_lp signer = {0};
        if (out->count == HS_APK_MAX_SIGNERS) {
            r = hs_fail(e, HS_E_VERIFY, "%s: more than the %d signers Android accepts", j.what,
                        HS_APK_MAX_SIGNERS);
            break;
        }
        if (out->count == cap) {
            cap = cap ? cap * 2 : 2;
            hs_apk_scheme_signer *n = realloc(out->signers, cap * sizeof *n);
            if (n != NULL)
                out->signers = n;
            hs_lp *dl = realloc(digests, cap * sizeof *dl);
            if (dl != NULL)
                digests = dl;
            if (n == NULL || dl == NULL) {
                r = hs_fail(e, HS_E_NOMEM, "out of memory");
                break;
            }
        }
        hs_apk_scheme_signer *s = &out->signers[out->count++];
        memset(s, 0, sizeof *s);
        snprintf(j.what, sizeof j.what, "%s signer #%zu",
                 j.scheme == 2 ? "v2" : j.scheme == 3 ? "v3" : "v3.1", out->count);
        if (!hs_lp_slice(&signers, &signer))
            r = hs_fail(e, HS_E_VERIFY, "%s: malformed", j.what);
        else
            r = verify_signer(&j, signer, s, &digests[out->count - 1], e);
    }
    snprintf(j.what, sizeof j.what, "%s", j.scheme == 2 ? "v2" : j.scheme == 3 ? "v3" : "v3.1");
    for (size_t i = 0; r == HS_OK && i < out->count; i++)
        r = check_digests(&j, digests[i], e);
    free(digests);
    if (r == HS_OK && j.scheme != 2)
        r = check_v3_ranges(&j, out, e);
    return r;
}

void hs_apk_scheme_result_free(hs_apk_scheme_result *r)
{
    for (size_t i = 0; i < r->count; i++) {
        free(r->signers[i].cert.der);
        hs_apk_lineage_free(&r->signers[i].lineage);
    }
    free(r->signers);
    hs_apk_lineage_free(&r->lineage);
    memset(r, 0, sizeof *r);
}
