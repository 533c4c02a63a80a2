/* JAR (v1) signature verification for hs_apk_verify_file, and the v2
 * stripping-protection check. One JAR signer is supported (what apksigner
 * and hsmsign write). */
#include "android/apk_verify_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "android/apk_sign_internal.h"
#include "android/apk_signing_block.h"
#include "android/jar_manifest.h"
#include "android/zip_inflate.h"
#include "util/encoding.h"

#define MAX_META_FILE (64u * 1024u * 1024u)
#define MAX_ENTRY_IN_MEMORY (1024u * 1024u * 1024u)

hs_result hs_apk_verify_v2_attrs(const uint8_t *attrs, size_t len, bool v3_present, hs_error *e)
{
    size_t pos = 0;
    while (pos < len) {
        if (len - pos < 4 || hs_le32(attrs + pos) > len - pos - 4 || hs_le32(attrs + pos) < 4)
            return hs_fail(e, HS_E_VERIFY, "v2 additional attributes are malformed");
        uint32_t n = hs_le32(attrs + pos);
        uint32_t id = hs_le32(attrs + pos + 4);
        if (id == HS_APK_ATTR_STRIPPING_PROTECTION && n >= 8 &&
            hs_le32(attrs + pos + 8) == 3 && !v3_present)
            return hs_fail(e, HS_E_VERIFY,
                           "the v2 signature says v3 was applied but there is no v3 block "
                           "(stripped signature?)");
        pos += 4 + (size_t)n;
    }
    return HS_OK;
}

typedef struct v1_job {
    const hs_zip *z;
    const char *path;
    long sf, block, manifest; /* entry indices */
    uint8_t *sf_data, *block_data, *manifest_data;
    size_t sf_len, block_len, manifest_len;
    const hs_zip_entry **content; /* content entries sorted by name */
    bool *listed;
    size_t content_count;
} v1_job;

static bool is_top_meta(const hs_zip_entry *ent, const char *suffix, size_t *base_len)
{
    static const char meta[] = "META-INF/";
    size_t ml = sizeof meta - 1, sl = strlen(suffix);
    if (ent->name_len <= ml + sl || memcmp(ent->name, meta, ml) != 0 ||
        memchr(ent->name + ml, '/', ent->name_len - ml) != NULL ||
        strncasecmp(ent->name + ent->name_len - sl, suffix, sl) != 0)
        return false;
    *base_len = ent->name_len - sl;
    return true;
}

static hs_result find_files(v1_job *j, hs_error *e)
{
    const hs_zip *z = j->z;
    size_t sf_base = 0;
    j->sf = j->block = -1;
    j->manifest = hs_zip_find(z, "META-INF/MANIFEST.MF");
    for (size_t i = 0; i < z->entry_count; i++) {
        size_t base;
        if (!is_top_meta(&z->entries[i], ".SF", &base))
            continue;
        if (j->sf >= 0)
            return hs_fail(e, HS_E_VERIFY, "%s: more than one JAR signer is not supported",
                           j->path);
        j->sf = (long)i;
        sf_base = base;
    }
    if (j->sf < 0)
        return HS_OK;
    const hs_zip_entry *sf = &z->entries[j->sf];
    static const char *const exts[] = {".RSA", ".EC", ".DSA"};
    for (size_t i = 0; i < z->entry_count && j->block < 0; i++) {
        for (size_t k = 0; k < 3; k++) {
            size_t base;
            if (is_top_meta(&z->entries[i], exts[k], &base) && base == sf_base &&
                memcmp(z->entries[i].name, sf->name, base) == 0)
                j->block = (long)i;
        }
    }
    if (j->block < 0 || j->manifest < 0)
        return hs_fail(e, HS_E_VERIFY, "%s: JAR signature %.*s lacks its %s", j->path,
                       (int)sf->name_len, sf->name,
                       j->block < 0 ? "signature block (.RSA/.EC/.DSA)" : "META-INF/MANIFEST.MF");
    return HS_OK;
}

/* The PKCS#7 block signs the .SF bytes; returns the signer certificate. */
static hs_result verify_block(v1_job *j, hs_apk_v1_result *out, hs_error *e)
{
    const uint8_t *p = j->block_data;
    PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)j->block_len);
    BIO *content = BIO_new_mem_buf(j->sf_data, (int)j->sf_len);
    hs_result r = HS_OK;
    if (p7 == NULL || content == NULL || !PKCS7_type_is_signed(p7)) {
        r = hs_fail(e, HS_E_VERIFY, "%s: JAR signature block is not PKCS#7 SignedData", j->path);
        goto out;
    }
    if (PKCS7_verify(p7, NULL, NULL, content, NULL,
                     PKCS7_NOVERIFY | PKCS7_BINARY | PKCS7_NOCHAIN) != 1) {
        r = hs_fail(e, HS_E_VERIFY, "%s: JAR signature over the .SF file does not verify",
                    j->path);
        goto out;
    }
    STACK_OF(X509) *signers = PKCS7_get0_signers(p7, NULL, 0);
    X509 *cert = signers != NULL && sk_X509_num(signers) == 1 ? sk_X509_value(signers, 0) : NULL;
    int len = cert != NULL ? i2d_X509(cert, &out->cert_der) : -1;
    sk_X509_free(signers);
    if (len <= 0)
        r = hs_fail(e, HS_E_VERIFY, "%s: JAR signature block must have exactly one signer",
                    j->path);
    else
        out->cert_der_len = (size_t)len;
    /* The signature value, as the signer's audit entry hashed it. */
    PKCS7_SIGNER_INFO *si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7), 0);
    if (r == HS_OK && si != NULL && si->enc_digest != NULL)
        EVP_Digest(ASN1_STRING_get0_data(si->enc_digest), (size_t)ASN1_STRING_length(si->enc_digest),
                   out->sig_sha256, NULL, EVP_sha256(), NULL);
out:
    BIO_free(content);
    PKCS7_free(p7);
    return r;
}

static bool decoded_equals(const char *b64, const uint8_t *digest, size_t len)
{
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (b64 == NULL || !hs_base64_decode(b64, &raw, &raw_len))
        return false;
    bool same = raw_len == len && hs_ct_equal(raw, digest, len);
    free(raw);
    return same;
}

static hs_result check_sf_main(v1_job *j, hs_apk_v1_result *out, hs_error *e)
{
    hs_jar_attrs attrs = {0};
    hs_result r = hs_jar_manifest_parse_main((const char *)j->sf_data, j->sf_len, j->path,
                                             &attrs, e);
    if (r != HS_OK)
        return r;
    uint8_t digest[EVP_MAX_MD_SIZE];
    const char *b64 = hs_jar_attrs_get(&attrs, "SHA-256-Digest-Manifest");
    const EVP_MD *md = EVP_sha256();
    if (b64 == NULL) {
        b64 = hs_jar_attrs_get(&attrs, "SHA1-Digest-Manifest");
        md = EVP_sha1();
    }
    if (!EVP_Digest(j->manifest_data, j->manifest_len, digest, NULL, md, NULL))
        r = hs_fail(e, HS_E_CRYPTO, "%s: hashing MANIFEST.MF failed", j->path);
    else if (!decoded_equals(b64, digest, (size_t)EVP_MD_get_size(md)))
        r = hs_fail(e, HS_E_VERIFY,
                    "%s: the .SF file's digest of MANIFEST.MF is missing or does not match",
                    j->path);
    const char *schemes = hs_jar_attrs_get(&attrs, "X-Android-APK-Signed");
    for (const char *s = schemes; r == HS_OK && s != NULL && *s; s++) {
        out->signed_with_v2 |= *s == '2';
        out->signed_with_v3 |= *s == '3';
    }
    hs_jar_attrs_free(&attrs);
    return r;
}

static int cmp_content(const void *a, const void *b)
{
    const hs_zip_entry *x = *(const hs_zip_entry *const *)a, *y = *(const hs_zip_entry *const *)b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c != 0 ? c : (int)x->name_len - (int)y->name_len;
}

static long find_content(const v1_job *j, const char *name)
{
    size_t lo = 0, hi = j->content_count, nl = strlen(name);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const hs_zip_entry *ent = j->content[mid];
        size_t n = ent->name_len < nl ? ent->name_len : nl;
        int c = memcmp(ent->name, name, n);
        if (c == 0)
            c = (int)ent->name_len - (int)nl;
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static hs_result entry_digest(const v1_job *j, const hs_zip_entry *ent, const EVP_MD *md,
                              uint8_t *digest, hs_error *e)
{
    if (ent->method == HS_ZIP_METHOD_STORED) {
        if (hs_crc32_update(0, j->z->map + ent->data_offset, (size_t)ent->uncompressed_size) !=
            ent->crc32)
            return hs_fail(e, HS_E_VERIFY, "%s: entry %.*s: CRC-32 mismatch", j->path,
                           (int)ent->name_len, ent->name);
        EVP_Digest(j->z->map + ent->data_offset, (size_t)ent->uncompressed_size, digest, NULL,
                   md, NULL);
        return HS_OK;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    hs_result r = hs_zip_read_entry(j->z, ent, MAX_ENTRY_IN_MEMORY, &data, &len, e);
    if (r == HS_OK)
        EVP_Digest(data, len, digest, NULL, md, NULL);
    free(data);
    return r;
}

static hs_result check_section(void *ctx, const hs_jar_attrs *section, hs_error *e)
{
    v1_job *j = ctx;
    const char *name = hs_jar_attrs_get(section, "Name");
    if (name == NULL)
        return hs_fail(e, HS_E_VERIFY, "%s: MANIFEST.MF section without Name", j->path);
    long i = find_content(j, name);
    if (i < 0)
        return hs_fail(e, HS_E_VERIFY, "%s: MANIFEST.MF lists %s, which is not in the APK",
                       j->path, name);
    const char *b64 = hs_jar_attrs_get(section, "SHA-256-Digest");
    const EVP_MD *md = EVP_sha256();
    if (b64 == NULL) {
        b64 = hs_jar_attrs_get(section, "SHA1-Digest");
        md = EVP_sha1();
    }
    uint8_t digest[EVP_MAX_MD_SIZE];
    hs_result r = entry_digest(j, j->content[i], md, digest, e);
    if (r != HS_OK)
        return r;
    if (!decoded_equals(b64, digest, (size_t)EVP_MD_get_size(md)))
        return hs_fail(e, HS_E_VERIFY, "%s: entry %s does not match its MANIFEST.MF digest",
                       j->path, name);
    j->listed[i] = true;
    return HS_OK;
}

static hs_result check_manifest(v1_job *j, hs_error *e)
{
    const hs_zip *z = j->z;
    j->content = malloc((z->entry_count ? z->entry_count : 1) * sizeof(const hs_zip_entry *));
    j->listed = calloc(z->entry_count ? z->entry_count : 1, sizeof *j->listed);
    if (j->content == NULL || j->listed == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->path);
    for (size_t i = 0; i < z->entry_count; i++)
        if (hs_apk_entry_is_signed_content(z->entries[i].name, z->entries[i].name_len))
            j->content[j->content_count++] = &z->entries[i];
    qsort(j->content, j->content_count, sizeof(const hs_zip_entry *), cmp_content);
    hs_result r = hs_jar_manifest_each_section((const char *)j->manifest_data, j->manifest_len,
                                               j->path, check_section, j, e);
    for (size_t i = 0; r == HS_OK && i < j->content_count; i++)
        if (!j->listed[i])
            r = hs_fail(e, HS_E_VERIFY, "%s: entry %.*s is not covered by the JAR signature",
                        j->path, (int)j->content[i]->name_len, j->content[i]->name);
    return r;
}

hs_result hs_apk_verify_v1(const hs_zip *z, hs_apk_v1_result *out, hs_error *e)
{
    memset(out, 0, sizeof *out);
    v1_job j = {.z = z, .path = z->path};
    hs_result r = find_files(&j, e);
    if (r != HS_OK || j.sf < 0)
        return r;
    out->present = true;
    r = hs_zip_read_entry(z, &z->entries[j.sf], MAX_META_FILE, &j.sf_data, &j.sf_len, e);
    if (r == HS_OK)
        r = hs_zip_read_entry(z, &z->entries[j.block], MAX_META_FILE, &j.block_data,
                              &j.block_len, e);
    if (r == HS_OK)
        r = hs_zip_read_entry(z, &z->entries[j.manifest], MAX_META_FILE, &j.manifest_data,
                              &j.manifest_len, e);
    if (r == HS_OK)
        r = verify_block(&j, out, e);
    if (r == HS_OK)
        r = check_sf_main(&j, out, e);
    if (r == HS_OK)
        r = check_manifest(&j, e);
    if (r != HS_OK) {
        free(out->cert_der);
        out->cert_der = NULL;
    }
    free(j.sf_data);
    free(j.block_data);
    free(j.manifest_data);
    free(j.content);
    free(j.listed);
    return r;
}
