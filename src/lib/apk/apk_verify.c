/* hs_apk_verify_file: the verdict Android gives an APK on a range of
 * platforms, following AOSP apksig's ApkVerifier step by step:
 *   1. the range: [--min-sdk or the manifest's minSdkVersion, --max-sdk or all];
 *   2. from 7.0 (24): v3.1 (from 13), v3 (from 9), and v2 when the range
 *      reaches below 9 or no v3 was found: a block found must verify;
 *   3. targetSandboxVersion > 1 needs a v2+ signature (from 8.0);
 *   4. JAR (v1) when the range reaches below 7.0 or no v2+ was found;
 *   5. v1 and v2 signed by the same set of certificates; v3 by the same
 *      certificate as v1/v2, or a lineage whose root is that certificate;
 *   6. targetSdkVersion >= 30 needs a v2+ signature.
 * Source stamps are not checked (apksig only reports them; see docs/apk.md). */
#include "apk/apk.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "apk/apk_digest.h"
#include "apk/apk_signing_block.h"
#include "apk/apk_verify_internal.h"
#include "apk/axml.h"
#include "zip/zip.h"
#include "zip/zip_check.h"
#include "zip/zip_inflate.h"

#define MAX_MANIFEST (16u * 1024u * 1024u)
#define BIT(id) (1u << (id))

hs_result hs_apk_cert_set(hs_apk_cert *c, const uint8_t *der, size_t len, hs_error *e)
{
    c->der = malloc(len ? len : 1);
    if (c->der == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    memcpy(c->der, der, len);
    c->len = len;
    return HS_OK;
}

hs_result hs_apk_digests_get(hs_apk_digests *d, hs_apk_content_alg alg, const uint8_t **out,
                             size_t *len, hs_error *e)
{
    bool is512 = alg == HS_APK_CONTENT_SHA512;
    uint8_t *slot = is512 ? d->sha512 : d->sha256;
    bool *have = is512 ? &d->have512 : &d->have256;
    *out = slot;
    *len = is512 ? 64 : 32;
    if (*have)
        return HS_OK;
    const hs_zip *z = d->zip;
    size_t eocd_len = (size_t)(z->size - z->eocd_offset);
    uint8_t *eocd = malloc(eocd_len);
    if (eocd == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", z->path);
    /* The digest sees the EOCD with the CD offset pointing at the block. */
    memcpy(eocd, z->map + z->eocd_offset, eocd_len);
    hs_put_le32(eocd + 16, (uint32_t)z->entries_end);
    hs_apk_section sections[3] = {
        {.fd = z->fd, .offset = 0, .len = z->entries_end},
        {.len = z->cd_size, .mem = z->map + z->cd_offset},
        {.len = eocd_len, .mem = eocd},
    };
    size_t n = 0;
    hs_result r = hs_apk_content_digest(is512 ? EVP_sha512() : EVP_sha256(), sections, 3, NULL,
                                        z->path, slot, &n, e);
    free(eocd);
    if (r == HS_OK)
        *have = true;
    return r;
}

typedef struct verify_job {
    hs_zip zip;
    const char *path;
    hs_apk_verify_report *rep;
    hs_apk_digests digests;
    bool have_manifest, manifest_unparsed;
    hs_error manifest_error; /* why the manifest could not be read or parsed */
    hs_axml_sdk sdk;
    int min, max;
    unsigned supported, found;
    hs_apk_scheme_result v31, v3, v2;
    hs_apk_v1_result v1;
} verify_job;

/* A manifest apksig cannot parse only matters where its minSdkVersion is
 * needed; its target SDK and sandbox version then default to 1, as in
 * apksig. One it cannot read (bad ZIP data) counts as missing. */
static hs_result read_manifest(verify_job *j, hs_error *e)
{
    long i = hs_zip_find(&j->zip, "AndroidManifest.xml");
    if (i < 0)
        return HS_OK;
    uint8_t *xml = NULL;
    size_t len = 0;
    hs_result r = hs_zip_read_entry(&j->zip, &j->zip.entries[i], MAX_MANIFEST, &xml, &len,
                                    &j->manifest_error);
    bool read = r == HS_OK;
    if (read)
        r = hs_axml_sdk_info(xml, len, j->path, &j->sdk, &j->manifest_error);
    free(xml);
    if (r == HS_E_NOMEM)
        return hs_fail(e, r, "%s", j->manifest_error.msg);
    if (!read)
        return HS_OK;
    j->have_manifest = true;
    j->manifest_unparsed = r != HS_OK;
    if (j->manifest_unparsed)
        j->sdk = (hs_axml_sdk){.min_sdk = -1, .target_sdk = 1, .target_sandbox = 1};
    j->rep->min_sdk = j->sdk.min_sdk;
    j->rep->target_sdk = j->manifest_unparsed ? -1 : j->sdk.target_sdk;
    return HS_OK;
}

static hs_result need_manifest(verify_job *j, const char *why, hs_error *e)
{
    if (j->have_manifest)
        return HS_OK;
    /* Present but unreadable (damaged data): say why, not "missing". */
    if (j->manifest_error.msg[0] != '\0')
        return hs_fail(e, HS_E_VERIFY, "%s (AndroidManifest.xml is needed for %s)",
                       j->manifest_error.msg, why);
    return hs_fail(e, HS_E_VERIFY, "%s: missing AndroidManifest.xml (needed for %s)", j->path,
                   why);
}

static hs_result set_range(verify_job *j, const hs_apk_verify_options *opt, hs_error *e)
{
    j->max = opt != NULL && opt->max_sdk >= 0 ? opt->max_sdk : HS_SDK_LATEST;
    if (opt != NULL && opt->min_sdk >= 0) {
        j->min = opt->min_sdk;
    } else {
        hs_result r = need_manifest(j, "its minSdkVersion", e);
        if (r != HS_OK)
            return r;
        if (j->manifest_unparsed)
            return hs_fail(e, HS_E_VERIFY, "%s: cannot read minSdkVersion: %s", j->path,
                           j->manifest_error.msg);
        j->min = j->sdk.min_sdk;
    }
    if (j->min > j->max)
        return hs_fail(e, HS_E_USAGE, "%s: min SDK %d is above max SDK %d", j->path, j->min,
                       j->max);
    j->rep->range_min = j->min;
    j->rep->range_max = j->max;
    if (j->max >= HS_SDK_P)
        j->supported = BIT(2) | BIT(3);
    else if (j->max >= HS_SDK_N)
        j->supported = BIT(2);
    return HS_OK;
}

static int max_int(int a, int b)
{
    return a > b ? a : b;
}

/* One scheme block if present: *found says whether it was there. */
static hs_result run_scheme(verify_job *j, uint32_t id, int min, int rotation_min,
                            hs_apk_scheme_result *res, bool *found, hs_error *e)
{
    const hs_zip *z = &j->zip;
    *found = false;
    if (!z->has_signing_block)
        return HS_OK;
    const uint8_t *value = NULL;
    size_t len = 0;
    hs_result r = hs_apk_block_find(z->map + z->entries_end, (size_t)(z->cd_offset - z->entries_end),
                                    id, &value, &len, found, e);
    if (r != HS_OK || !*found)
        return r == HS_OK ? r : hs_error_prefix(e, "%s: ", j->path);
    hs_apk_scheme_params p = {.block_id = id, .min_sdk = min, .max_sdk = j->max,
                              .rotation_min_sdk = rotation_min, .supported_schemes = j->supported,
                              .found_schemes = j->found};
    r = hs_apk_verify_scheme(&j->digests, &p, value, len, res, e);
    return r == HS_OK || r == HS_E_NOMEM ? r : hs_error_prefix(e, "%s: ", j->path);
}

static hs_result run_block_schemes(verify_job *j, hs_error *e)
{
    bool found = false;
    hs_result r = HS_OK;
    int rotation_min = 0;
    if (j->max < HS_SDK_N)
        return HS_OK;
    if (j->max >= HS_SDK_T) {
        /* v3.1 may start above 13 (v3 covers the rest): apksig checks it
         * for the top of the range only. */
        r = run_scheme(j, HS_APK_BLOCK_ID_V31, j->max, 0, &j->v31, &found, e);
        j->rep->v31_present = found;
        if (r != HS_OK)
            return r;
        if (found) {
            j->found |= BIT(31);
            j->rep->v31 = true;
            rotation_min = HS_SDK_LATEST;
            for (size_t i = 0; i < j->v31.count; i++)
                if ((int)j->v31.signers[i].min_sdk < rotation_min)
                    rotation_min = (int)j->v31.signers[i].min_sdk;
        }
    }
    if (j->max >= HS_SDK_P) {
        r = run_scheme(j, HS_APK_BLOCK_ID_V3, max_int(j->min, HS_SDK_P), rotation_min, &j->v3,
                       &found, e);
        j->rep->v3_present = found;
        if (r != HS_OK)
            return r;
        if (found) {
            j->found |= BIT(3);
            j->rep->v3 = true;
        } else if (j->rep->v31) {
            return hs_fail(e, HS_E_VERIFY, "%s: v3.1 signature without a v3 signature", j->path);
        }
    }
    if (j->min < HS_SDK_P || j->found == 0) {
        r = run_scheme(j, HS_APK_BLOCK_ID_V2, max_int(j->min, HS_SDK_N), 0, &j->v2, &found, e);
        j->rep->v2_present = found;
        if (r != HS_OK)
            return r;
        if (found) {
            j->found |= BIT(2);
            j->rep->v2 = true;
        }
    }
    return HS_OK;
}

static bool cert_in(const hs_apk_cert *c, const hs_apk_cert *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i]->len == c->len && memcmp(list[i]->der, c->der, c->len) == 0)
            return true;
    return false;
}

/* v1 and v2 must be signed by the same set of certificates. */
static hs_result check_v1_v2(verify_job *j, hs_error *e)
{
    size_t n1 = j->v1.count, n2 = j->v2.count;
    const hs_apk_cert **c1 = malloc((n1 + 1) * sizeof *c1), **c2 = malloc((n2 + 1) * sizeof *c2);
    hs_result r = HS_OK;
    if (c1 == NULL || c2 == NULL) {
        r = hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->path);
        goto out;
    }
    for (size_t i = 0; i < n1; i++)
        c1[i] = &j->v1.signers[i].cert;
    for (size_t i = 0; i < n2; i++)
        c2[i] = &j->v2.signers[i].cert;
    for (size_t i = 0; r == HS_OK && i < n1; i++)
        if (!cert_in(c1[i], c2, n2))
            r = hs_fail(e, HS_E_VERIFY, "%s: JAR signer #%zu has no v2 signature", j->path, i + 1);
    for (size_t i = 0; r == HS_OK && i < n2; i++)
        if (!cert_in(c2[i], c1, n1))
            r = hs_fail(e, HS_E_VERIFY, "%s: v2 signer #%zu has no JAR signature", j->path, i + 1);
out:
    free(c1);
    free(c2);
    return r;
}

static const hs_apk_lineage *v3_lineage(const verify_job *j)
{
    if (j->v3.lineage.count > 0)
        return &j->v3.lineage;
    return j->v31.lineage.count > 0 ? &j->v31.lineage : NULL;
}

/* v3's signer is v1/v2's, or the lineage starts at v1/v2's. */
static hs_result check_v3_past(verify_job *j, hs_error *e)
{
    const hs_apk_cert *old;
    size_t count = j->rep->v1 ? j->v1.count : j->v2.count;
    old = j->rep->v1 ? &j->v1.signers[0].cert : &j->v2.signers[0].cert;
    if (count != 1)
        return hs_fail(e, HS_E_VERIFY, "%s: v3 with several %s signers", j->path,
                       j->rep->v1 ? "JAR" : "v2");
    const hs_apk_lineage *lineage = v3_lineage(j);
    if (lineage == NULL) {
        const hs_apk_cert *c = &j->v3.signers[0].cert;
        if (j->v3.count != 1)
            return hs_fail(e, HS_E_VERIFY, "%s: several v3 signers without a lineage", j->path);
        if (c->len != old->len || memcmp(c->der, old->der, c->len) != 0)
            return hs_fail(e, HS_E_VERIFY,
                           "%s: the schemes are signed by different certificates and no lineage "
                           "links them", j->path);
        return HS_OK;
    }
    if (hs_apk_lineage_find(lineage, old->der, old->len) != 0)
        return hs_fail(e, HS_E_VERIFY,
                       "%s: the v1/v2 signer is not the first certificate of the v3 lineage",
                       j->path);
    return HS_OK;
}

static hs_result check_target_sdk(verify_job *j, hs_error *e)
{
    if (!j->have_manifest || j->sdk.target_sdk < HS_SDK_R || j->max < j->sdk.target_sdk)
        return HS_OK;
    if (j->rep->v2 || j->rep->v3 || j->rep->v31)
        return HS_OK;
    return hs_fail(e, HS_E_VERIFY,
                   "%s: targetSdkVersion %d requires an APK Signature Scheme v2 or newer signature",
                   j->path, j->sdk.target_sdk);
}

static hs_result add_cert(hs_apk_cert **list, size_t *n, const uint8_t *der, size_t len,
                          hs_error *e)
{
    hs_apk_cert *p = realloc(*list, (*n + 1) * sizeof *p);
    if (p == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    *list = p;
    hs_result r = hs_apk_cert_set(&p[*n], der, len, e);
    if (r == HS_OK)
        (*n)++;
    return r;
}

/* What apksigner reports: the newest v3.1/v3 signer, else every v2 or v1 signer. */
static hs_result fill_certs(verify_job *j, hs_error *e)
{
    hs_apk_verify_report *rep = j->rep;
    hs_result r = HS_OK;
    const hs_apk_scheme_result *v3 = rep->v31 ? &j->v31 : rep->v3 ? &j->v3 : NULL;
    if (v3 != NULL) {
        const hs_apk_cert *c = &v3->signers[v3->count - 1].cert;
        r = add_cert(&rep->signers, &rep->signer_count, c->der, c->len, e);
    } else if (rep->v2) {
        for (size_t i = 0; r == HS_OK && i < j->v2.count; i++)
            r = add_cert(&rep->signers, &rep->signer_count, j->v2.signers[i].cert.der,
                         j->v2.signers[i].cert.len, e);
    } else {
        for (size_t i = 0; r == HS_OK && i < j->v1.count; i++)
            r = add_cert(&rep->signers, &rep->signer_count, j->v1.signers[i].cert.der,
                         j->v1.signers[i].cert.len, e);
    }
    const hs_apk_lineage *l = v3_lineage(j);
    for (size_t i = 0; r == HS_OK && l != NULL && i < l->count; i++)
        r = add_cert(&rep->lineage, &rep->lineage_count, l->nodes[i].cert, l->nodes[i].cert_len, e);
    if (r != HS_OK || rep->signer_count == 0)
        return r;
    rep->cert_der = malloc(rep->signers[0].len);
    if (rep->cert_der == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    memcpy(rep->cert_der, rep->signers[0].der, rep->signers[0].len);
    rep->cert_der_len = rep->signers[0].len;
    EVP_Digest(rep->cert_der, rep->cert_der_len, rep->cert_sha256, NULL, EVP_sha256(), NULL);
    return r;
}

static void fill_sigs(verify_job *j)
{
    hs_apk_verify_report *rep = j->rep;
    if (rep->v3 && j->v3.count > 0) {
        memcpy(rep->v3_sig_sha256, j->v3.signers[j->v3.count - 1].sig_sha256, 32);
        rep->algorithm_id = j->v3.signers[j->v3.count - 1].alg_id;
    }
    if (rep->v2 && j->v2.count > 0) {
        memcpy(rep->v2_sig_sha256, j->v2.signers[0].sig_sha256, 32);
        if (!rep->v3)
            rep->algorithm_id = j->v2.signers[0].alg_id;
    }
    if (rep->v1 && j->v1.count > 0)
        memcpy(rep->v1_sig_sha256, j->v1.signers[0].sig_sha256, 32);
}

static hs_result run(verify_job *j, const hs_apk_verify_options *opt, hs_error *e)
{
    hs_result r = hs_zip_open_flags(&j->zip, j->path, HS_ZIP_ALLOW_NUL_NAMES, e);
    if (r != HS_OK)
        return r;
    j->digests.zip = &j->zip;
    if ((r = read_manifest(j, e)) != HS_OK || (r = set_range(j, opt, e)) != HS_OK ||
        (r = run_block_schemes(j, e)) != HS_OK)
        return r;
    if (j->max >= HS_SDK_O) {
        if ((r = need_manifest(j, "its targetSandboxVersion", e)) != HS_OK)
            return r;
        if (j->sdk.target_sandbox > 1 && j->found == 0)
            return hs_fail(e, HS_E_VERIFY,
                           "%s: targetSandboxVersion %d requires an APK Signature Scheme v2 or "
                           "newer signature", j->path, j->sdk.target_sandbox);
    }
    if (j->min < HS_SDK_N || j->found == 0) {
        r = hs_apk_verify_v1(&j->zip, j->min, j->max, j->supported, j->found, &j->v1, e);
        j->rep->v1_present = j->v1.present;
        if (r != HS_OK)
            return r;
        j->rep->v1 = true;
    } else {
        j->rep->v1_present = hs_zip_find(&j->zip, "META-INF/MANIFEST.MF") >= 0;
    }
    if (j->rep->v1 && j->rep->v2 && (r = check_v1_v2(j, e)) != HS_OK)
        return r;
    if (j->rep->v3 && (j->rep->v1 || j->rep->v2) && (r = check_v3_past(j, e)) != HS_OK)
        return r;
    if ((r = check_target_sdk(j, e)) != HS_OK)
        return r;
    /* Signatures verified: the APK still does not install if an entry's
     * data is corrupt (apksigner verify and devices read the entries). */
    if ((r = hs_zip_check_file(&j->zip, true, e)) == HS_E_FORMAT) {
        e->code = HS_E_VERIFY; /* a damaged APK does not verify (exit 1) */
        return HS_E_VERIFY;
    }
    if (r != HS_OK)
        return r;
    fill_sigs(j);
    return fill_certs(j, e);
}

hs_result hs_apk_verify_file_range(const char *path, const hs_apk_verify_options *opt,
                                   hs_apk_verify_report *rep, hs_error *e)
{
    memset(rep, 0, sizeof *rep);
    rep->min_sdk = rep->target_sdk = -1;
    verify_job j = {.rep = rep, .path = path};
    hs_result r = run(&j, opt, e);
    if (r != HS_OK) {
        /* a scheme counts as verified only when the whole APK does */
        rep->v1 = rep->v2 = rep->v3 = rep->v31 = false;
    }
    hs_apk_scheme_result_free(&j.v31);
    hs_apk_scheme_result_free(&j.v3);
    hs_apk_scheme_result_free(&j.v2);
    hs_apk_v1_result_free(&j.v1);
    hs_zip_close(&j.zip);
    return r;
}

hs_result hs_apk_verify_file(const char *path, hs_apk_verify_report *rep, hs_error *e)
{
    return hs_apk_verify_file_range(path, NULL, rep, e);
}

static void free_certs(hs_apk_cert *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(c[i].der);
    free(c);
}

void hs_apk_verify_report_free(hs_apk_verify_report *rep)
{
    free(rep->cert_der);
    free_certs(rep->signers, rep->signer_count);
    free_certs(rep->lineage, rep->lineage_count);
    rep->cert_der = NULL;
    rep->signers = rep->lineage = NULL;
    rep->cert_der_len = rep->signer_count = rep->lineage_count = 0;
}
