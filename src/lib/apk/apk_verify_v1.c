/* JAR (v1) signature verification as apksig's V1SchemeVerifier does it for
 * a platform range: every JAR signer (up to 10) checked against its .SF,
 * each .SF against MANIFEST.MF (whole-file digest, else per section), and
 * every entry outside META-INF/ against MANIFEST.MF, signed by the same
 * set of signers. Which digest attributes count depends on the range
 * (apksig's getDigestsToVerify). */
#include "apk/apk_verify_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "apk/apk_signing_block.h"
#include "jar/jar_manifest.h"
#include "zip/zip_inflate.h"
#include "util/encoding.h"

#define MAX_META_FILE (64u * 1024u * 1024u)
#define MAX_ENTRY_IN_MEMORY (1024u * 1024u * 1024u)

/* Names (of sections or entries) sorted for binary search, so that large
 * APKs cost n log n. A name may hold a NUL (as a ZIP name can). */
typedef struct named {
    const char *name;
    size_t len;
    const void *item;
} named;

typedef struct name_index {
    named *v;
    size_t n;
    bool unnamed, duplicate; /* a section without Name; a name twice */
} name_index;

typedef struct v1_signer {
    long block, sf;               /* entry indices */
    uint8_t *block_data, *sf_data;
    size_t block_len, sf_len;
    hs_jar_section *sf_secs;
    size_t sf_count;
    name_index sf_names;
    hs_pkcs7_signer p7;
    bool ignored;
} v1_signer;

typedef struct v1_job {
    const hs_zip *z;
    const char *path;
    int min_sdk, max_sdk;
    unsigned supported, found;
    long manifest;
    uint8_t *mf;
    size_t mf_len;
    hs_jar_section *mf_secs;
    size_t mf_count;
    name_index mf_names, entry_names;
    v1_signer *signers;
    size_t count;
} v1_job;

/* A digest to check: the algorithm and the base64 value of its attribute. */
typedef struct named_digest {
    const EVP_MD *md;
    const char *b64;
} named_digest;

static const EVP_MD *legacy_md(const char *alg)
{
    if (strcasecmp(alg, "SHA") == 0 || strcasecmp(alg, "SHA1") == 0 ||
        strcasecmp(alg, "SHA-1") == 0)
        return EVP_sha1();
    if (strcasecmp(alg, "MD5") == 0)
        return EVP_md5();
    if (strcasecmp(alg, "SHA-256") == 0)
        return EVP_sha256();
    return NULL; /* SHA-384/512 only from Android 2.3 (API 9): not on the legacy path */
}

/* apksig's getDigestsToVerify: below API 18 the first of Digest-Algorithms
 * (default "SHA SHA1") that is present; from 18 the strongest of SHA-512,
 * SHA-384, SHA-256, SHA1 that is present. Up to two results. */
static size_t digests_to_verify(const hs_jar_attrs *a, const char *suffix, int min_sdk,
                                int max_sdk, named_digest out[2])
{
    size_t n = 0;
    char name[96];
    if (min_sdk < HS_SDK_JB_MR2) {
        const char *algs = hs_jar_attrs_get(a, "Digest-Algorithms");
        char list[256];
        snprintf(list, sizeof list, "%s", algs != NULL ? algs : "SHA SHA1");
        for (char *save = NULL, *tok = strtok_r(list, " \t", &save); tok != NULL;
             tok = strtok_r(NULL, " \t", &save)) {
            snprintf(name, sizeof name, "%s%s", tok, suffix);
            const char *v = hs_jar_attrs_get(a, name);
            const EVP_MD *md = legacy_md(tok);
            if (v == NULL || md == NULL)
                continue;
            out[n++] = (named_digest){md, v};
            break;
        }
        if (n == 0)
            return 0;
    }
    if (max_sdk >= HS_SDK_JB_MR2) {
        static const char *const names[] = {"SHA-512", "SHA-384", "SHA-256", "SHA1"};
        const EVP_MD *mds[] = {EVP_sha512(), EVP_sha384(), EVP_sha256(), EVP_sha1()};
        for (size_t i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "%s%s", names[i], suffix);
            const char *v = hs_jar_attrs_get(a, name);
            if (v == NULL)
                continue;
            if (n == 0 || out[0].md != mds[i] || strcmp(out[0].b64, v) != 0)
                out[n++] = (named_digest){mds[i], v};
            break;
        }
    }
    return n;
}

static bool digest_matches(const named_digest *d, const uint8_t *data, size_t len)
{
    uint8_t actual[EVP_MAX_MD_SIZE], *raw = NULL;
    unsigned n = 0;
    size_t raw_len = 0;
    if (!EVP_Digest(data, len, actual, &n, d->md, NULL) || !hs_base64_decode(d->b64, &raw, &raw_len))
        return false;
    bool same = raw_len == n && hs_ct_equal(raw, actual, n);
    free(raw);
    return same;
}

static bool all_match(const named_digest *d, size_t n, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (!digest_matches(&d[i], data, len))
            return false;
    return true;
}

static bool name_has_suffix(const hs_zip_entry *ent, const char *suffix)
{
    size_t sl = strlen(suffix);
    return ent->name_len >= 9 + sl && memcmp(ent->name, "META-INF/", 9) == 0 &&
           memcmp(ent->name + ent->name_len - sl, suffix, sl) == 0;
}

/* The signers: each signature block (.RSA/.DSA/.EC in META-INF/) whose
 * .SF exists (apksig skips one without, with a warning). */
static hs_result find_signers(v1_job *j, hs_error *e)
{
    const hs_zip *z = j->z;
    j->manifest = hs_zip_find(z, "META-INF/MANIFEST.MF");
    j->signers = calloc(z->entry_count ? z->entry_count : 1, sizeof *j->signers);
    if (j->signers == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->path);
    for (size_t i = 0; i < z->entry_count; i++) {
        const hs_zip_entry *ent = &z->entries[i];
        size_t ext = name_has_suffix(ent, ".RSA") || name_has_suffix(ent, ".DSA") ? 4
                     : name_has_suffix(ent, ".EC")                                ? 3
                                                                                  : 0;
        if (ext == 0)
            continue;
        char sf[1024];
        size_t base = ent->name_len - ext;
        if (base + 4 >= sizeof sf)
            continue;
        memcpy(sf, ent->name, base);
        memcpy(sf + base, ".SF", 4);
        long k = hs_zip_find(z, sf);
        if (k < 0)
            continue;
        j->signers[j->count++] = (v1_signer){.block = (long)i, .sf = k};
    }
    return HS_OK;
}

static hs_result read_meta(v1_job *j, long index, uint8_t **data, size_t *len, hs_error *e)
{
    hs_result r = hs_zip_read_entry(j->z, &j->z->entries[index], MAX_META_FILE, data, len, e);
    return r == HS_E_FORMAT ? HS_E_VERIFY : r;
}

static int cmp_name(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c != 0 ? c : al < bl ? -1 : al > bl;
}

static int cmp_named(const void *x, const void *y)
{
    const named *a = x, *b = y;
    return cmp_name(a->name, a->len, b->name, b->len);
}

static hs_result index_alloc(name_index *ix, size_t n, const char *path, hs_error *e)
{
    memset(ix, 0, sizeof *ix);
    ix->v = malloc((n ? n : 1) * sizeof *ix->v);
    return ix->v != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "%s: out of memory", path);
}

static void index_sort(name_index *ix)
{
    qsort(ix->v, ix->n, sizeof *ix->v, cmp_named);
    for (size_t i = 1; i < ix->n; i++)
        if (cmp_named(&ix->v[i - 1], &ix->v[i]) == 0)
            ix->duplicate = true;
}

/* The individual sections (not the main one) by their Name. */
static hs_result index_sections(const hs_jar_section *secs, size_t count, name_index *ix,
                                const char *path, hs_error *e)
{
    hs_result r = index_alloc(ix, count, path, e);
    for (size_t i = 1; r == HS_OK && i < count; i++) {
        size_t len = 0;
        const char *name = hs_jar_attrs_get_n(&secs[i].attrs, "Name", &len);
        if (name == NULL)
            ix->unnamed = true;
        else
            ix->v[ix->n++] = (named){name, len, &secs[i]};
    }
    if (r == HS_OK)
        index_sort(ix);
    return r;
}

static const void *index_find(const name_index *ix, const char *name, size_t len)
{
    named key = {name, len, NULL};
    const named *hit = bsearch(&key, ix->v, ix->n, sizeof *ix->v, cmp_named);
    return hit != NULL ? hit->item : NULL;
}

static hs_result check_manifest_sections(v1_job *j, hs_error *e)
{
    const hs_zip *z = j->z;
    hs_result r = index_sections(j->mf_secs, j->mf_count, &j->mf_names, j->path, e);
    if (r == HS_OK)
        r = index_alloc(&j->entry_names, z->entry_count, j->path, e);
    if (r != HS_OK)
        return r;
    for (size_t i = 0; i < z->entry_count; i++)
        j->entry_names.v[j->entry_names.n++] =
            (named){z->entries[i].name, z->entries[i].name_len, &z->entries[i]};
    index_sort(&j->entry_names);
    if (j->mf_names.unnamed)
        return hs_fail(e, HS_E_VERIFY, "%s: a MANIFEST.MF section has no Name", j->path);
    if (j->mf_names.duplicate)
        return hs_fail(e, HS_E_VERIFY, "%s: MANIFEST.MF names an entry twice", j->path);
    for (size_t i = 0; i < j->mf_names.n; i++)
        if (index_find(&j->entry_names, j->mf_names.v[i].name, j->mf_names.v[i].len) == NULL)
            return hs_fail(e, HS_E_VERIFY, "%s: MANIFEST.MF lists %.*s, which is not in the APK",
                           j->path, (int)j->mf_names.v[i].len, j->mf_names.v[i].name);
    return HS_OK;
}

/* X-Android-APK-Signed: every scheme it names that the range knows must
 * have been found (a stripped v2/v3 signature otherwise). */
static hs_result check_stripping(v1_job *j, const hs_jar_attrs *main, const char *sf_name,
                                 hs_error *e)
{
    const char *ids = hs_jar_attrs_get(main, "X-Android-APK-Signed");
    if (ids == NULL || j->supported == 0)
        return HS_OK;
    char list[256];
    snprintf(list, sizeof list, "%s", ids);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        char *end;
        long id = strtol(tok, &end, 10);
        while (*end == ' ' || *end == '\t')
            end++;
        if (end == tok || *end != '\0' || id < 0 || id > 31)
            continue;
        if ((j->supported & (1u << id)) && !(j->found & (1u << id)))
            return hs_fail(e, HS_E_VERIFY,
                           "%s: %s says the APK was signed with v%ld, which is missing "
                           "(stripped signature?)", j->path, sf_name, id);
    }
    return HS_OK;
}

/* apksig's verifySigFileAgainstManifest. */
static hs_result check_sf(v1_job *j, v1_signer *s, hs_error *e)
{
    const hs_zip_entry *ent = &j->z->entries[s->sf];
    char sf_name[300];
    snprintf(sf_name, sizeof sf_name, "%.*s", (int)ent->name_len, ent->name);
    hs_result r = hs_jar_manifest_sections((const char *)s->sf_data, s->sf_len, sf_name,
                                           &s->sf_secs, &s->sf_count, e);
    if (r != HS_OK)
        return r == HS_E_NOMEM ? r : HS_E_VERIFY;
    const hs_jar_attrs *main = &s->sf_secs[0].attrs;
    if (hs_jar_attrs_get(main, "Signature-Version") == NULL) {
        s->ignored = true;
        return HS_OK;
    }
    if (j->max_sdk >= HS_SDK_N && (r = check_stripping(j, main, sf_name, e)) != HS_OK)
        return r;
    const char *created = hs_jar_attrs_get(main, "Created-By");
    bool signtool = created != NULL && strstr(created, "signtool") != NULL;
    named_digest d[2];
    size_t n = digests_to_verify(main, signtool ? "-Digest" : "-Digest-Manifest", j->min_sdk,
                                 j->max_sdk, d);
    bool whole_ok = n > 0 && all_match(d, n, j->mf, j->mf_len);
    if (!signtool) {
        n = digests_to_verify(main, "-Digest-Manifest-Main-Attributes", j->min_sdk, j->max_sdk,
                              d);
        if (n > 0 && !all_match(d, n, j->mf + j->mf_secs[0].start, j->mf_secs[0].len))
            return hs_fail(e, HS_E_VERIFY,
                           "%s: %s: digest of MANIFEST.MF's main section does not match",
                           j->path, sf_name);
    }
    if ((r = index_sections(s->sf_secs, s->sf_count, &s->sf_names, j->path, e)) != HS_OK)
        return r;
    if (s->sf_names.unnamed || s->sf_names.duplicate) {
        s->ignored = true; /* an unnamed or duplicate section: apksig drops the signer */
        return HS_OK;
    }
    /* Without the whole-manifest digest, every section the .SF names must
     * be in MANIFEST.MF (else apksig drops the signer, whatever else is
     * wrong with it) with a matching digest. */
    for (size_t i = 0; !whole_ok && i < s->sf_names.n; i++) {
        if (index_find(&j->mf_names, s->sf_names.v[i].name, s->sf_names.v[i].len) == NULL) {
            s->ignored = true;
            return HS_OK;
        }
    }
    for (size_t i = 0; !whole_ok && i < s->sf_names.n; i++) {
        const named *nm = &s->sf_names.v[i];
        const hs_jar_section *ms = index_find(&j->mf_names, nm->name, nm->len);
        n = digests_to_verify(&((const hs_jar_section *)nm->item)->attrs, "-Digest", j->min_sdk,
                              j->max_sdk, d);
        size_t len = ms->len;
        if (signtool && len >= 2 && j->mf[ms->start + len - 1] == '\n' &&
            j->mf[ms->start + len - 2] == '\n')
            len--;
        if (n == 0 || !all_match(d, n, j->mf + ms->start, len))
            return hs_fail(e, HS_E_VERIFY,
                           "%s: %s: digest of MANIFEST.MF section %.*s is missing or does not match",
                           j->path, sf_name, (int)nm->len, nm->name);
    }
    return HS_OK;
}

static bool sf_lists(const v1_signer *s, const char *name, size_t len)
{
    return index_find(&s->sf_names, name, len) != NULL;
}

static int by_lfh(const void *a, const void *b)
{
    const hs_zip_entry *x = *(const hs_zip_entry *const *)a, *y = *(const hs_zip_entry *const *)b;
    return x->lfh_offset < y->lfh_offset ? -1 : x->lfh_offset > y->lfh_offset;
}

static hs_result entry_matches(v1_job *j, const hs_zip_entry *ent, const char *name,
                               const named_digest *d, size_t n, hs_error *e)
{
    uint8_t *data = NULL;
    size_t len = 0;
    hs_result r = hs_zip_read_entry(j->z, ent, MAX_ENTRY_IN_MEMORY, &data, &len, e);
    if (r == HS_E_FORMAT)
        r = HS_E_VERIFY; /* unreadable data does not verify */
    if (r == HS_OK && !all_match(d, n, data, len))
        r = hs_fail(e, HS_E_VERIFY, "%s: entry %s does not match its MANIFEST.MF digest",
                    j->path, name);
    free(data);
    return r;
}

/* Every entry outside META-INF/ (not a directory) is in MANIFEST.MF with
 * matching digests and listed by the same signers as the first one. */
static hs_result check_entries(v1_job *j, bool *signer_used, hs_error *e)
{
    const hs_zip *z = j->z;
    const hs_zip_entry **order = malloc((z->entry_count ? z->entry_count : 1) * sizeof *order);
    char *name = malloc(65536 + 1);
    if (order == NULL || name == NULL) {
        free(order);
        free(name);
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->path);
    }
    for (size_t i = 0; i < z->entry_count; i++)
        order[i] = &z->entries[i];
    qsort(order, z->entry_count, sizeof *order, by_lfh);
    hs_result r = HS_OK;
    bool first = true;
    for (size_t i = 0; r == HS_OK && i < z->entry_count; i++) {
        const hs_zip_entry *ent = order[i];
        memcpy(name, ent->name, ent->name_len);
        name[ent->name_len] = '\0';
        if (strncmp(name, "META-INF/", 9) == 0 || name[ent->name_len - 1] == '/')
            continue;
        const hs_jar_section *ms = index_find(&j->mf_names, name, ent->name_len);
        if (ms == NULL) {
            r = hs_fail(e, HS_E_VERIFY, "%s: entry %s is not in MANIFEST.MF", j->path, name);
            break;
        }
        bool any = false, differs = false;
        for (size_t k = 0; k < j->count; k++) {
            if (j->signers[k].ignored)
                continue;
            bool lists = sf_lists(&j->signers[k], name, ent->name_len);
            any |= lists;
            if (first)
                signer_used[k] = lists;
            else
                differs |= lists != signer_used[k];
        }
        first = false;
        named_digest d[2];
        size_t n = digests_to_verify(&ms->attrs, "-Digest", j->min_sdk, j->max_sdk, d);
        if (!any)
            r = hs_fail(e, HS_E_VERIFY, "%s: entry %s is not signed by any JAR signer", j->path,
                        name);
        else if (differs)
            r = hs_fail(e, HS_E_VERIFY, "%s: entry %s is signed by other JAR signers than the "
                        "first entry", j->path, name);
        else if (n == 0)
            r = hs_fail(e, HS_E_VERIFY, "%s: entry %s has no usable digest in MANIFEST.MF",
                        j->path, name);
        else
            r = entry_matches(j, ent, name, d, n, e);
    }
    if (r == HS_OK && first)
        r = hs_fail(e, HS_E_VERIFY, "%s: the JAR signature covers no entry", j->path);
    free(order);
    free(name);
    return r;
}

static hs_result keep_signers(v1_job *j, const bool *used, hs_apk_v1_result *out, hs_error *e)
{
    out->signers = calloc(j->count, sizeof *out->signers);
    if (out->signers == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->path);
    for (size_t k = 0; k < j->count; k++) {
        if (j->signers[k].ignored || !used[k])
            continue;
        hs_apk_v1_signer *s = &out->signers[out->count++];
        hs_result r = hs_apk_cert_set(&s->cert, j->signers[k].p7.cert, j->signers[k].p7.cert_len, e);
        if (r != HS_OK)
            return r;
        EVP_Digest(j->signers[k].p7.sig, j->signers[k].p7.sig_len, s->sig_sha256, NULL,
                   EVP_sha256(), NULL);
    }
    return HS_OK;
}

static hs_result verify_signers(v1_job *j, hs_error *e)
{
    hs_result r = HS_OK;
    for (size_t k = 0; r == HS_OK && k < j->count; k++) {
        v1_signer *s = &j->signers[k];
        const hs_zip_entry *ent = &j->z->entries[s->block];
        char what[300];
        snprintf(what, sizeof what, "%s: %.*s", j->path, (int)ent->name_len, ent->name);
        r = read_meta(j, s->block, &s->block_data, &s->block_len, e);
        if (r == HS_OK)
            r = read_meta(j, s->sf, &s->sf_data, &s->sf_len, e);
        if (r == HS_OK)
            r = hs_apk_pkcs7_verify(s->block_data, s->block_len, s->sf_data, s->sf_len,
                                    j->min_sdk, j->max_sdk, what, &s->p7, e);
    }
    for (size_t k = 0; r == HS_OK && k < j->count; k++)
        r = check_sf(j, &j->signers[k], e);
    size_t left = 0;
    for (size_t k = 0; k < j->count; k++)
        left += !j->signers[k].ignored;
    if (r == HS_OK && left == 0)
        r = hs_fail(e, HS_E_VERIFY, "%s: no valid JAR signature", j->path);
    return r;
}

static hs_result run(v1_job *j, hs_apk_v1_result *out, hs_error *e)
{
    hs_result r = find_signers(j, e);
    if (r != HS_OK)
        return r;
    out->present = j->manifest >= 0 || j->count > 0;
    if (j->manifest < 0)
        return hs_fail(e, HS_E_VERIFY, "%s: no JAR signature (META-INF/MANIFEST.MF is missing)",
                       j->path);
    if ((r = read_meta(j, j->manifest, &j->mf, &j->mf_len, e)) != HS_OK)
        return r;
    r = hs_jar_manifest_sections((const char *)j->mf, j->mf_len, j->path, &j->mf_secs,
                                 &j->mf_count, e);
    if (r != HS_OK)
        return r == HS_E_NOMEM ? r : HS_E_VERIFY;
    if ((r = check_manifest_sections(j, e)) != HS_OK)
        return r;
    if (j->count == 0)
        return hs_fail(e, HS_E_VERIFY, "%s: no JAR signature (no .SF with its signature block)",
                       j->path);
    if (j->count > HS_APK_MAX_SIGNERS)
        return hs_fail(e, HS_E_VERIFY, "%s: %zu JAR signers, more than the %d Android accepts",
                       j->path, j->count, HS_APK_MAX_SIGNERS);
    if ((r = verify_signers(j, e)) != HS_OK)
        return r;
    bool *used = calloc(j->count, sizeof *used);
    if (used == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->path);
    r = check_entries(j, used, e);
    if (r == HS_OK)
        r = keep_signers(j, used, out, e);
    free(used);
    return r;
}

hs_result hs_apk_verify_v1(const hs_zip *z, int min_sdk, int max_sdk, unsigned supported_schemes,
                           unsigned found_schemes, hs_apk_v1_result *out, hs_error *e)
{
    memset(out, 0, sizeof *out);
    v1_job j = {.z = z, .path = z->path, .min_sdk = min_sdk, .max_sdk = max_sdk,
                .supported = supported_schemes, .found = found_schemes};
    hs_result r = run(&j, out, e);
    if (r != HS_OK) {
        bool present = out->present;
        hs_apk_v1_result_free(out);
        out->present = present;
    }
    for (size_t k = 0; k < j.count; k++) {
        free(j.signers[k].block_data);
        free(j.signers[k].sf_data);
        hs_jar_sections_free(j.signers[k].sf_secs, j.signers[k].sf_count);
        free(j.signers[k].sf_names.v);
    }
    free(j.signers);
    free(j.mf);
    hs_jar_sections_free(j.mf_secs, j.mf_count);
    free(j.mf_names.v);
    free(j.entry_names.v);
    return r;
}

void hs_apk_v1_result_free(hs_apk_v1_result *r)
{
    for (size_t i = 0; i < r->count; i++)
        free(r->signers[i].cert.der);
    free(r->signers);
    memset(r, 0, sizeof *r);
}
