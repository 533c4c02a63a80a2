/* v1 (JAR) signing as apksig's V1SchemeSigner: MANIFEST.MF lists every
 * kept content entry (sorted, digest of its uncompressed bytes), the .SF
 * holds the digest of MANIFEST.MF and of each manifest section, and the
 * .RSA/.EC block carries one signature over the .SF bytes. */
#include "jar/jar_sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "jar/jar_manifest.h"
#include "jar/jar_pkcs7.h"
#include "zip/zip_inflate.h"
#include "util/encoding.h"

#define SDK_JELLY_BEAN_MR2 18 /* first release verifying SHA-256 JAR digests */
#define MAX_ENTRY_IN_MEMORY (1024u * 1024u * 1024u)
#define JAVA_DEFLATER_LEVEL 9     /* new Deflater(9, true) in apksig's ZipUtils */
#define JAVA_DEFLATER_MEM_LEVEL 8 /* DEF_MEM_LEVEL of Java's zlib binding */

typedef struct content_entry {
    const hs_zip_entry *ent;
    uint8_t digest[EVP_MAX_MD_SIZE];
    size_t section_start, section_len; /* in MANIFEST.MF */
} content_entry;

typedef struct jar_job {
    const hs_jar_sign_params *p;
    const char *path;
    bool sha256, rsa;
    const EVP_MD *md;
    content_entry *entries;
    size_t count;
    hs_apk_buf manifest, sf, block;
    char name[9]; /* signer base name, [A-Z0-9_-]{1,8} */
} jar_job;

/* apksig's getSafeSignerName: upper case, 8 chars, others become '_'. */
static void safe_signer_name(const char *in, char out[9])
{
    if (in == NULL || in[0] == 0)
        in = "CERT";
    size_t i = 0;
    for (; i < 8 && in[i]; i++) {
        char c = in[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        bool ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        out[i] = (char)(ok ? c : '_'); /* ?: computes in int */
    }
    out[i] = 0;
}

static int cmp_entry_name(const void *a, const void *b)
{
    const hs_zip_entry *x = ((const content_entry *)a)->ent, *y = ((const content_entry *)b)->ent;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c != 0 ? c : (int)x->name_len - (int)y->name_len;
}

/* Straight from the map, no copy; in steps released once hashed, so that a
 * large stored entry never becomes resident as a whole. */
static hs_result digest_stored(jar_job *j, const hs_zip_entry *ent, uint8_t *digest, hs_error *e)
{
    const hs_zip *z = j->p->zip;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, j->md, NULL);
    for (uint64_t done = 0; ok && done < ent->uncompressed_size; done += HS_ZIP_RELEASE_STEP) {
        uint64_t left = ent->uncompressed_size - done;
        uint64_t n = left < HS_ZIP_RELEASE_STEP ? left : HS_ZIP_RELEASE_STEP;
        ok = EVP_DigestUpdate(ctx, z->map + ent->data_offset + done, (size_t)n);
        if (ent->uncompressed_size >= HS_ZIP_RELEASE_STEP)
            hs_zip_release(z, ent->data_offset + done, n);
    }
    ok = ok && EVP_DigestFinal_ex(ctx, digest, NULL);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return hs_fail(e, HS_E_CRYPTO, "%s: hashing an entry failed", j->path);
    return HS_OK;
}

static hs_result digest_entry(jar_job *j, content_entry *c, hs_error *e)
{
    const hs_zip *z = j->p->zip;
    const hs_zip_entry *ent = c->ent;
    if (memchr(ent->name, '\r', ent->name_len) || memchr(ent->name, '\n', ent->name_len))
        return hs_fail(e, HS_E_FORMAT, "%s: entry name %.*s contains a line break", j->path,
                       (int)ent->name_len, ent->name);
    if (ent->method == HS_ZIP_METHOD_STORED)
        return digest_stored(j, ent, c->digest, e);
    uint8_t *data = NULL;
    size_t len = 0;
    hs_result r = hs_zip_read_entry(z, ent, MAX_ENTRY_IN_MEMORY, &data, &len, e);
    if (r != HS_OK)
        return r;
    if (!EVP_Digest(data, len, c->digest, NULL, j->md, NULL))
        r = hs_fail(e, HS_E_CRYPTO, "%s: hashing an entry failed", j->path);
    free(data);
    return r;
}

static hs_result collect_entries(jar_job *j, hs_error *e)
{
    const hs_zip *z = j->p->zip;
    j->entries = calloc(z->entry_count ? z->entry_count : 1, sizeof *j->entries);
    if (j->entries == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->path);
    hs_zip_span read = {0};
    for (size_t i = 0; i < z->entry_count; i++) {
        const hs_zip_entry *ent = &z->entries[i];
        if (j->p->kept_lfh_offset[i] == HS_APK_DROPPED ||
            !hs_apk_entry_is_signed_content(ent->name, ent->name_len))
            continue;
        j->entries[j->count].ent = ent;
        hs_result r = digest_entry(j, &j->entries[j->count], e);
        if (r != HS_OK)
            return r;
        hs_zip_span_note(z, &read, ent->data_offset, ent->record_end);
        j->count++;
    }
    hs_zip_span_flush(z, &read);
    qsort(j->entries, j->count, sizeof *j->entries, cmp_entry_name);
    return HS_OK;
}

static const char *digest_attr(bool sha256)
{
    return sha256 ? "SHA-256-Digest" : "SHA1-Digest";
}

static void write_digest_section(hs_apk_buf *b, const char *name, size_t name_len,
                                 const char *attr, const uint8_t *digest, size_t digest_len)
{
    char *n = strndup(name, name_len);
    char *b64 = hs_base64_encode(digest, digest_len);
    if (n == NULL || b64 == NULL) {
        b->failed = true;
    } else {
        hs_jar_write_attr(b, "Name", n);
        hs_jar_write_attr(b, attr, b64);
        hs_apk_buf_append(b, "\r\n", 2);
    }
    free(n);
    free(b64);
}

/* Main section copied from the input's MANIFEST.MF if any (apksig keeps
 * it: the signer did not create the APK), else Manifest-Version only. */
static hs_result manifest_main_attrs(jar_job *j, hs_jar_attrs *attrs, hs_error *e)
{
    const hs_zip *z = j->p->zip;
    long i = hs_zip_find(z, "META-INF/MANIFEST.MF");
    if (i < 0)
        return hs_jar_attrs_put(attrs, "Manifest-Version", 16, "1.0", 3, e);
    uint8_t *text = NULL;
    size_t len = 0;
    hs_result r = hs_zip_read_entry(z, &z->entries[i], 64u * 1024u * 1024u, &text, &len, e);
    if (r == HS_OK)
        r = hs_jar_manifest_parse_main((const char *)text, len, j->path, attrs, e);
    free(text);
    if (r == HS_OK && hs_jar_attrs_get(attrs, "Manifest-Version") == NULL)
        r = hs_fail(e, HS_E_FORMAT, "%s: META-INF/MANIFEST.MF has no Manifest-Version", j->path);
    return r;
}

static hs_result build_manifest(jar_job *j, hs_error *e)
{
    hs_jar_attrs attrs = {0};
    hs_result r = manifest_main_attrs(j, &attrs, e);
    if (r == HS_OK)
        hs_jar_write_main(&j->manifest, &attrs, "Manifest-Version");
    hs_jar_attrs_free(&attrs);
    for (size_t i = 0; r == HS_OK && i < j->count; i++) {
        content_entry *c = &j->entries[i];
        c->section_start = j->manifest.len;
        write_digest_section(&j->manifest, c->ent->name, c->ent->name_len,
                             digest_attr(j->sha256), c->digest, (size_t)EVP_MD_get_size(j->md));
        c->section_len = j->manifest.len - c->section_start;
    }
    return r == HS_OK ? hs_apk_buf_check(&j->manifest, j->path, e) : r;
}

static hs_result build_sf(jar_job *j, hs_error *e)
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    size_t dlen = (size_t)EVP_MD_get_size(j->md);
    if (!EVP_Digest(j->manifest.data, j->manifest.len, digest, NULL, j->md, NULL))
        return hs_fail(e, HS_E_CRYPTO, "%s: hashing MANIFEST.MF failed", j->path);
    char *b64 = hs_base64_encode(digest, dlen);
    hs_jar_attrs attrs = {0};
    const char *schemes = j->p->v2 && j->p->v3 ? "2, 3" : j->p->v2 ? "2" : j->p->v3 ? "3" : NULL;
    const char *manifest_attr = j->sha256 ? "SHA-256-Digest-Manifest" : "SHA1-Digest-Manifest";
    const char *created_by = j->p->created_by ? j->p->created_by : "1.0 (Android)";
    hs_result r = b64 ? HS_OK : hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->path);
    if (r == HS_OK)
        r = hs_jar_attrs_put(&attrs, "Signature-Version", 17, "1.0", 3, e);
    if (r == HS_OK)
        r = hs_jar_attrs_put(&attrs, "Created-By", 10, created_by, strlen(created_by), e);
    /* Stripping protection: the APK-specific schemes also applied. */
    if (r == HS_OK && schemes != NULL)
        r = hs_jar_attrs_put(&attrs, "X-Android-APK-Signed", 20, schemes, strlen(schemes), e);
    if (r == HS_OK)
        r = hs_jar_attrs_put(&attrs, manifest_attr, strlen(manifest_attr), b64, strlen(b64), e);
    if (r == HS_OK)
        hs_jar_write_main(&j->sf, &attrs, "Signature-Version");
    hs_jar_attrs_free(&attrs);
    free(b64);
    for (size_t i = 0; r == HS_OK && i < j->count; i++) {
        const content_entry *c = &j->entries[i];
        if (!EVP_Digest(j->manifest.data + c->section_start, c->section_len, digest, NULL, j->md,
                        NULL))
            return hs_fail(e, HS_E_CRYPTO, "%s: hashing a manifest section failed", j->path);
        write_digest_section(&j->sf, c->ent->name, c->ent->name_len, digest_attr(j->sha256),
                             digest, dlen);
    }
    /* Android <= 1.6 chokes on .SF files whose size is a multiple of 1024. */
    if (r == HS_OK && j->sf.len > 0 && j->sf.len % 1024 == 0)
        hs_apk_buf_append(&j->sf, "\r\n", 2);
    return r == HS_OK ? hs_apk_buf_check(&j->sf, j->path, e) : r;
}

static hs_result sign_sf(jar_job *j, hs_error *e)
{
    const hs_jar_sign_params *p = j->p;
    hs_sign_request req = {.key_name = p->key->key_name,
                           .alg = j->rsa ? (j->sha256 ? HS_SIG_RSA_PKCS1_SHA256
                                                      : HS_SIG_RSA_PKCS1_SHA1)
                                         : HS_SIG_ECDSA_SHA256,
                           .operation = "jar-sf", .artifact = p->artifact,
                           .artifact_sha256 = p->artifact_sha256};
    uint8_t digest[HS_MAX_DIGEST_LEN];
    hs_result r = hs_sign_request_hash(&req, digest, j->sf.data, j->sf.len, e);
    if (r != HS_OK)
        return r;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    r = p->sign.sign(p->sign.ctx, &req, &sig, &sig_len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "%s: v1 signature: ", j->path);
    r = hs_jar_pkcs7_build(p->key->cert_der, p->key->cert_der_len, j->sha256, j->rsa, sig,
                           sig_len, &j->block, e);
    free(sig);
    return r;
}

/* apksig compresses its JAR files with java.util.zip.Deflater(9, true):
 * zlib at level 9, raw DEFLATE (no zlib header: windowBits -15), Java's
 * memLevel 8 and the default strategy, all input given at once and
 * finished in one go. The same zlib call gives the same bytes, which keeps
 * v1 output byte-identical to apksigner's. */
static hs_result deflate_like_apksig(const hs_apk_buf *in, hs_apk_buf *out, const char *path,
                                     hs_error *e)
{
    if (in->len > UINT32_MAX)
        return hs_fail(e, HS_E_FORMAT, "%s: a v1 file is too large to compress", path);
    z_stream zs = {0};
    if (deflateInit2(&zs, JAVA_DEFLATER_LEVEL, Z_DEFLATED, -MAX_WBITS, JAVA_DEFLATER_MEM_LEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return hs_fail(e, HS_E_NOMEM, "%s: cannot set up zlib compression", path);
    uLong bound = deflateBound(&zs, (uLong)in->len);
    out->data = malloc(bound ? bound : 1);
    if (out->data == NULL) {
        deflateEnd(&zs);
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", path);
    }
    out->cap = bound ? bound : 1;
    zs.next_in = in->data;
    zs.avail_in = (uInt)in->len;
    zs.next_out = out->data;
    zs.avail_out = (uInt)bound;
    int zr = deflate(&zs, Z_FINISH);
    out->len = zs.total_out;
    deflateEnd(&zs);
    if (zr != Z_STREAM_END)
        return hs_fail(e, HS_E_INTERNAL, "%s: zlib compression did not finish (%d)", path, zr);
    return HS_OK;
}

hs_result hs_jar_write_new_entry(const char *path, const char *name, const hs_apk_buf *data,
                                 uint16_t mod_time, uint16_t mod_date, hs_apk_out *out,
                                 hs_jar_entries *added, hs_error *e)
{
    hs_apk_buf packed = {0};
    hs_result r = deflate_like_apksig(data, &packed, path, e);
    if (r != HS_OK)
        return r;
    size_t name_len = strlen(name);
    uint32_t crc = hs_crc32_update(0, data->data, data->len);
    uint64_t lfh_offset = out->pos;
    if (lfh_offset > UINT32_MAX || packed.len > UINT32_MAX - 1) {
        hs_apk_buf_free(&packed);
        return hs_fail(e, HS_E_FORMAT, "%s: output would need zip64", path);
    }
    uint8_t lfh[HS_ZIP_LFH_SIZE] = {0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x08, 0x08, 0x00};
    hs_put_le16(lfh + 10, mod_time);
    hs_put_le16(lfh + 12, mod_date);
    hs_put_le32(lfh + 14, crc);
    hs_put_le32(lfh + 18, (uint32_t)packed.len);
    hs_put_le32(lfh + 22, (uint32_t)data->len);
    hs_put_le16(lfh + 26, (uint16_t)name_len);
    r = hs_apk_out_write(out, lfh, sizeof lfh, e);
    if (r == HS_OK)
        r = hs_apk_out_write(out, name, name_len, e);
    if (r == HS_OK)
        r = hs_apk_out_write(out, packed.data, packed.len, e);
    hs_apk_buf_free(&packed);
    uint8_t cd[HS_ZIP_CD_HEADER_SIZE] = {0x50, 0x4b, 0x01, 0x02, 0x14, 0x00, 0x14, 0x00,
                                         0x00, 0x08, 0x08, 0x00};
    memcpy(cd + 12, lfh + 10, 16); /* time, date, crc, sizes */
    hs_put_le16(cd + 28, (uint16_t)name_len);
    hs_put_le32(cd + 42, (uint32_t)lfh_offset);
    hs_apk_buf_append(&added->cd, cd, sizeof cd);
    hs_apk_buf_append(&added->cd, name, name_len);
    added->count++;
    return r == HS_OK ? hs_apk_buf_check(&added->cd, path, e) : r;
}

static hs_result choose_algorithms(jar_job *j, hs_error *e)
{
    EVP_PKEY *pub = j->p->key->public_key;
    j->rsa = EVP_PKEY_is_a(pub, "RSA");
    if (!j->rsa && !EVP_PKEY_is_a(pub, "EC"))
        return hs_fail(e, HS_E_USAGE, "%s: v1 signing supports RSA and EC keys", j->path);
    j->sha256 = j->p->min_sdk >= SDK_JELLY_BEAN_MR2;
    if (!j->rsa && !j->sha256)
        return hs_fail(e, HS_E_USAGE,
                       "%s: v1 ECDSA signatures need minSdk 18 or higher (minSdk is %d)", j->path,
                       j->p->min_sdk);
    j->md = j->sha256 ? EVP_sha256() : EVP_sha1();
    safe_signer_name(j->p->key->v1_name, j->name);
    return HS_OK;
}

hs_result hs_jar_sign_build(const hs_jar_sign_params *p, hs_jar_files *out, hs_error *e)
{
    jar_job j = {.p = p, .path = p->zip->path};
    memset(out, 0, sizeof *out);
    hs_result r = choose_algorithms(&j, e);
    if (r == HS_OK)
        r = collect_entries(&j, e);
    if (r == HS_OK)
        r = build_manifest(&j, e);
    if (r == HS_OK)
        r = build_sf(&j, e);
    if (r == HS_OK)
        r = sign_sf(&j, e);
    free(j.entries);
    /* apksig's order: the signature files, then MANIFEST.MF. */
    snprintf(out->name[0], sizeof out->name[0], "META-INF/%s.SF", j.name);
    snprintf(out->name[1], sizeof out->name[1], "META-INF/%s.%s", j.name, j.rsa ? "RSA" : "EC");
    snprintf(out->name[2], sizeof out->name[2], "META-INF/MANIFEST.MF");
    out->data[0] = j.sf;
    out->data[1] = j.block;
    out->data[2] = j.manifest;
    if (r != HS_OK)
        hs_jar_files_free(out);
    return r;
}

void hs_jar_files_free(hs_jar_files *f)
{
    for (size_t i = 0; i < 3; i++)
        hs_apk_buf_free(&f->data[i]);
}

hs_result hs_jar_sign_append(const hs_jar_sign_params *p, hs_apk_out *out, hs_jar_entries *added,
                             hs_error *e)
{
    hs_jar_files f;
    hs_result r = hs_jar_sign_build(p, &f, e);
    for (size_t i = 0; r == HS_OK && i < 3; i++)
        r = hs_jar_write_new_entry(p->zip->path, f.name[i], &f.data[i], p->mod_time,
                                   p->mod_date, out, added, e);
    hs_jar_files_free(&f);
    return r;
}

void hs_jar_entries_free(hs_jar_entries *added)
{
    hs_apk_buf_free(&added->cd);
    added->count = 0;
}
