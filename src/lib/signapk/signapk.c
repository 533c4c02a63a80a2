/* hs_signapk_sign: SignApk.java's copyFiles / signWholeFile and the
 * DefaultApkSignerEngine calls it makes, with java.util.zip's exact record
 * layout (JDK 17): see signapk.h. */
#include "signapk/signapk.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
/* next_in is const: zlib only reads the input. */
#define ZLIB_CONST
#include <zlib.h>

#include "apk/apk_digest.h"
#include "apk/apk_sign_internal.h"
#include "apk/apk_signing_block.h"
#include "apk/axml.h"
#include "jar/jar_pkcs7.h"
#include "jar/jar_sign.h"
#include "zip/zip_inflate.h"

/* SignApk sets every time to 2009-01-01 00:00:00 (local time, corrected
 * so that the MS-DOS fields always say that date). */
#define DOS_TIME 0x0000u
#define DOS_DATE 0x3a21u
#define JAR_MAGIC 0xcafeu            /* JarOutputStream's first-entry extra field */
#define ALIGN_EXTRA_ID 0xd935u       /* SignApk's alignment extra field */
#define ALIGN_EXTRA_MIN 6u
#define SO_ALIGNMENT 16384u          /* AOSP main aligns .so to 16 KiB pages (the maximum) */
#define FLAG_UTF8 0x0800u            /* ZipOutputStream always writes UTF-8 names */
#define DESCRIPTOR_SIG 0x08074b50u
#define LEVEL_APK 9                  /* outputJar.setLevel(9) for APKs */
#define LEVEL_OTA Z_DEFAULT_COMPRESSION /* -w keeps the Deflater default */
#define MEM_LEVEL 8                  /* DEF_MEM_LEVEL of Java's zlib binding */
#define MAX_ENTRY (1024u * 1024u * 1024u)
#define PIN_HINTS "assets/com.android.hints.pins.txt"
#define PIN_LIST "pinlist.meta"
#define OTACERT "META-INF/com/android/otacert"
#define OTA_MESSAGE "signed by SignApk"
#define CREATED_BY "1.0 (Android SignApk)"

/* The archive as JarOutputStream writes it: entries, then the CD. */
typedef struct jzip {
    hs_apk_buf data, cd;
    size_t count;
    bool first_written;
    int level;
} jzip;

typedef struct job {
    const char *in;
    const hs_apk_key *key;
    const hs_signapk_options *opt;
    hs_sign_fn sign;
    hs_signapk_result *res;
    hs_zip zip;
    bool zip_open;
    size_t *names; /* indexes of the entries copied, sorted by name */
    size_t name_count;
    jzip out;
    hs_apk_buf eocd;
} job;

void hs_signapk_options_init(hs_signapk_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->alignment = 4;
    opt->so_alignment = (int)SO_ALIGNMENT;
    opt->min_sdk = -1;
    opt->v2 = true;
}

void hs_signapk_result_free(hs_signapk_result *res)
{
    hs_apk_buf_free(&res->out);
}

static void put16(hs_apk_buf *b, uint32_t v)
{
    uint8_t x[2];
    hs_put_le16(x, (uint16_t)v);
    hs_apk_buf_append(b, x, 2);
}

static void put32(hs_apk_buf *b, uint32_t v)
{
    uint8_t x[4];
    hs_put_le32(x, v);
    hs_apk_buf_append(b, x, 4);
}

/* One entry as ZipOutputStream.putNextEntry/closeEntry write it. A stored
 * entry has its sizes in the local header (version 10); a deflated one
 * has zeros there and a data descriptor after the data (version 20).
 * unix_attrs >= 0: the entry was copied from a Unix-made one and keeps
 * its mode (the JDK's extraAttributes). */
typedef struct jentry {
    const char *name;
    size_t name_len;
    bool stored;
    uint32_t crc, size;
    const uint8_t *payload; /* stored: the data; deflated: the compressed data */
    size_t payload_len;
    const uint8_t *extra;
    size_t extra_len;
    long unix_attrs;
} jentry;

static hs_result jzip_put(jzip *z, const jentry *en, hs_error *e)
{
    uint8_t extra[ALIGN_EXTRA_MIN + SO_ALIGNMENT + 4];
    size_t elen = 0;
    if (!z->first_written) { /* JarOutputStream marks the first entry of a JAR */
        hs_put_le16(extra, JAR_MAGIC);
        hs_put_le16(extra + 2, 0);
        elen = 4;
        z->first_written = true;
    }
    if (en->extra_len > sizeof extra - elen)
        return hs_fail(e, HS_E_INTERNAL, "signapk: extra field too long");
    if (en->extra_len)
        memcpy(extra + elen, en->extra, en->extra_len);
    elen += en->extra_len;
    uint64_t off = z->data.len;
    if (off > UINT32_MAX || en->payload_len > UINT32_MAX - 1 || en->name_len > 0xffff)
        return hs_fail(e, HS_E_FORMAT, "signapk: output would need zip64");
    uint32_t version = en->stored ? 10 : 20;
    uint32_t flag = en->stored ? FLAG_UTF8 : FLAG_UTF8 | HS_ZIP_FLAG_DATA_DESCRIPTOR;
    uint32_t method = en->stored ? 0 : 8;
    hs_apk_buf *d = &z->data;
    put32(d, 0x04034b50u);
    put16(d, version);
    put16(d, flag);
    put16(d, method);
    put16(d, DOS_TIME);
    put16(d, DOS_DATE);
    put32(d, en->stored ? en->crc : 0);
    put32(d, en->stored ? en->size : 0);
    put32(d, en->stored ? en->size : 0);
    put16(d, (uint32_t)en->name_len);
    put16(d, (uint32_t)elen);
    hs_apk_buf_append(d, en->name, en->name_len);
    hs_apk_buf_append(d, extra, elen);
    hs_apk_buf_append(d, en->payload, en->payload_len);
    if (!en->stored) {
        put32(d, DESCRIPTOR_SIG);
        put32(d, en->crc);
        put32(d, (uint32_t)en->payload_len);
        put32(d, en->size);
    }
    hs_apk_buf *c = &z->cd;
    put32(c, 0x02014b50u);
    put16(c, en->unix_attrs >= 0 ? 0x0300u | version : version);
    put16(c, version);
    put16(c, flag);
    put16(c, method);
    put16(c, DOS_TIME);
    put16(c, DOS_DATE);
    put32(c, en->crc);
    put32(c, (uint32_t)en->payload_len);
    put32(c, en->size);
    put16(c, (uint32_t)en->name_len);
    put16(c, (uint32_t)elen);
    put16(c, 0); /* comment */
    put16(c, 0); /* disk */
    put16(c, 0); /* internal attributes */
    put32(c, en->unix_attrs >= 0 ? (uint32_t)en->unix_attrs << 16 : 0);
    put32(c, (uint32_t)off);
    hs_apk_buf_append(c, en->name, en->name_len);
    hs_apk_buf_append(c, extra, elen);
    z->count++;
    hs_result r = hs_apk_buf_check(d, "signapk output", e);
    return r == HS_OK ? hs_apk_buf_check(c, "signapk output", e) : r;
}

/* java.util.zip.Deflater(level, nowrap): raw DEFLATE, memLevel 8, default
 * strategy; zlib's output does not depend on how the input was split. */
static hs_result deflate_java(const uint8_t *in, size_t len, int level, hs_apk_buf *out,
                              hs_error *e)
{
    if (len > UINT32_MAX)
        return hs_fail(e, HS_E_FORMAT, "signapk: entry too large to compress");
    z_stream zs = {0};
    if (deflateInit2(&zs, level, Z_DEFLATED, -MAX_WBITS, MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
        return hs_fail(e, HS_E_NOMEM, "signapk: cannot set up zlib compression");
    uLong bound = deflateBound(&zs, (uLong)len) + 16;
    out->data = malloc(bound);
    hs_result r = HS_OK;
    if (out->data == NULL) {
        r = hs_fail(e, HS_E_NOMEM, "signapk: out of memory");
        goto out;
    }
    out->cap = bound;
    zs.next_in = in;
    zs.avail_in = (uInt)len;
    zs.next_out = out->data;
    zs.avail_out = (uInt)bound;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
        r = hs_fail(e, HS_E_INTERNAL, "signapk: zlib compression did not finish");
    out->len = zs.total_out;
out:
    deflateEnd(&zs);
    return r;
}

static hs_result put_deflated(jzip *z, const char *name, size_t name_len, const uint8_t *data,
                              size_t len, hs_error *e)
{
    hs_apk_buf packed = {0};
    hs_result r = deflate_java(data, len, z->level, &packed, e);
    if (r == HS_OK) {
        jentry en = {.name = name, .name_len = name_len, .crc = hs_crc32_update(0, data, len),
                     .size = (uint32_t)len, .payload = packed.data,
                     .payload_len = packed.len, .unix_attrs = -1};
        r = jzip_put(z, &en, e);
    }
    hs_apk_buf_free(&packed);
    return r;
}

static bool name_ends(const hs_zip_entry *ent, const char *suffix)
{
    size_t n = strlen(suffix);
    return ent->name_len >= n && memcmp(ent->name + ent->name_len - n, suffix, n) == 0;
}

/* -w's STRIP_PATTERN: ^(META-INF/(.*[.](SF|RSA|DSA|EC)|com/android/otacert))|(META-INF/MANIFEST.MF)$ */
static bool ota_stripped(const hs_zip_entry *ent)
{
    static const char prefix[] = "META-INF/";
    if (ent->name_len < sizeof prefix - 1 || memcmp(ent->name, prefix, sizeof prefix - 1) != 0)
        return false;
    return hs_zip_entry_name_is(ent, OTACERT) || hs_zip_entry_name_is(ent, "META-INF/MANIFEST.MF") ||
           name_ends(ent, ".SF") || name_ends(ent, ".RSA") || name_ends(ent, ".DSA") ||
           name_ends(ent, ".EC");
}

static bool copied(const job *j, const hs_zip_entry *ent)
{
    if (ent->name_len > 0 && ent->name[ent->name_len - 1] == '/')
        return false; /* directories */
    if (hs_zip_entry_name_is(ent, PIN_LIST))
        return false; /* regenerated from the hints (refused below) */
    if (j->opt->whole_file)
        return !ota_stripped(ent);
    /* The engine's output policy: JAR signature files are dropped (SKIP),
     * MANIFEST.MF is its own (OUTPUT_BY_ENGINE). */
    return hs_apk_entry_is_signed_content(ent->name, ent->name_len);
}

/* Java's String order, which is byte order for UTF-8 outside the
 * surrogate range. */
static int cmp_names(const void *a, const void *b, void *ctx)
{
    const hs_zip *z = ctx;
    const hs_zip_entry *x = &z->entries[*(const size_t *)a];
    const hs_zip_entry *y = &z->entries[*(const size_t *)b];
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c != 0 ? c : (int)x->name_len - (int)y->name_len;
}

static hs_result collect_names(job *j, hs_error *e)
{
    const hs_zip *z = &j->zip;
    if (hs_zip_find(z, PIN_HINTS) >= 0)
        return hs_fail(e, HS_E_USAGE,
                       "%s: has %s (pinned byte ranges); signapk's pinlist.meta is not supported",
                       j->in, PIN_HINTS);
    j->names = calloc(z->entry_count ? z->entry_count : 1, sizeof *j->names);
    if (j->names == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->in);
    for (size_t i = 0; i < z->entry_count; i++) {
        const hs_zip_entry *ent = &z->entries[i];
        if (ent->method != HS_ZIP_METHOD_STORED && ent->method != 8)
            return hs_fail(e, HS_E_FORMAT, "%s: entry %.*s uses compression method %u", j->in,
                           (int)ent->name_len, ent->name, ent->method);
        if (copied(j, ent))
            j->names[j->name_count++] = i;
    }
    qsort_r(j->names, j->name_count, sizeof *j->names, cmp_names, (void *)z);
    return HS_OK;
}

/* Java's String.length() of a UTF-8 name (UTF-16 units): SignApk computes
 * the alignment padding with it. */
static uint64_t java_length(const char *name, size_t len)
{
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)name[i];
        if ((c & 0xc0) != 0x80)
            n += c >= 0xf0 ? 2 : 1;
    }
    return n;
}

/* SignApk's getStoredEntryDataAlignment. */
static uint32_t stored_alignment(const hs_zip_entry *ent, int def, int so)
{
    if (def <= 0)
        return 0;
    return name_ends(ent, ".so") ? (uint32_t)so : (uint32_t)def;
}

/* The first pass of copyFiles: STORED entries, each aligned through the
 * 0xd935 field, with SignApk's own running offset (which counts the name
 * in UTF-16 units, as it does). */
static hs_result copy_stored(job *j, hs_error *e)
{
    const hs_zip *z = &j->zip;
    uint64_t offset = 0;
    bool first = true;
    for (size_t k = 0; k < j->name_count; k++) {
        const hs_zip_entry *ent = &z->entries[j->names[k]];
        if (ent->method != HS_ZIP_METHOD_STORED)
            continue;
        if (ent->compressed_size != ent->uncompressed_size || ent->uncompressed_size > UINT32_MAX)
            return hs_fail(e, HS_E_FORMAT, "%s: stored entry %.*s has inconsistent sizes", j->in,
                           (int)ent->name_len, ent->name);
        const uint8_t *data = z->map + ent->data_offset;
        if (hs_crc32_update(0, data, (size_t)ent->uncompressed_size) != ent->crc32)
            return hs_fail(e, HS_E_FORMAT, "%s: entry %.*s: CRC mismatch", j->in,
                           (int)ent->name_len, ent->name);
        /* signWholeFile copies with alignment 0 (the field is still added). */
        uint32_t alignment = stored_alignment(ent, j->opt->whole_file ? 0 : j->opt->alignment,
                                              j->opt->so_alignment);
        offset += HS_ZIP_LFH_SIZE + java_length(ent->name, ent->name_len);
        if (first)
            offset += 4;
        first = false;
        uint32_t pad = 0;
        if (alignment > 0)
            pad = (uint32_t)((alignment - (offset + ALIGN_EXTRA_MIN) % alignment) % alignment);
        uint8_t extra[ALIGN_EXTRA_MIN + SO_ALIGNMENT] = {0};
        hs_put_le16(extra, ALIGN_EXTRA_ID);
        hs_put_le16(extra + 2, (uint16_t)(2 + pad));
        hs_put_le16(extra + 4, (uint16_t)alignment);
        offset += ALIGN_EXTRA_MIN + pad + ent->uncompressed_size;
        const uint8_t *cd = z->map + ent->cd_offset;
        /* The JDK keeps the mode of entries made on Unix (extraAttributes). */
        long attrs = (hs_le16(cd + 4) >> 8) == 3 ? (long)(hs_le32(cd + 38) >> 16) : -1;
        jentry en = {.name = ent->name, .name_len = ent->name_len, .stored = true,
                     .crc = ent->crc32, .size = (uint32_t)ent->uncompressed_size,
                     .payload = data, .payload_len = (size_t)ent->uncompressed_size,
                     .extra = extra, .extra_len = ALIGN_EXTRA_MIN + pad, .unix_attrs = attrs};
        hs_result r = jzip_put(&j->out, &en, e);
        if (r != HS_OK)
            return r;
    }
    return HS_OK;
}

/* The second pass: everything else, inflated and deflated again. */
static hs_result copy_deflated(job *j, hs_error *e)
{
    const hs_zip *z = &j->zip;
    for (size_t k = 0; k < j->name_count; k++) {
        const hs_zip_entry *ent = &z->entries[j->names[k]];
        if (ent->method == HS_ZIP_METHOD_STORED)
            continue;
        uint8_t *data = NULL;
        size_t len = 0;
        hs_result r = hs_zip_read_entry(z, ent, MAX_ENTRY, &data, &len, e);
        if (r == HS_OK)
            r = put_deflated(&j->out, ent->name, ent->name_len, data, len, e);
        free(data);
        if (r != HS_OK)
            return r;
    }
    return HS_OK;
}

static hs_result add_v1(job *j, int min_sdk, hs_error *e)
{
    const hs_zip *z = &j->zip;
    uint64_t *kept = malloc((z->entry_count ? z->entry_count : 1) * sizeof *kept);
    if (kept == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->in);
    for (size_t i = 0; i < z->entry_count; i++)
        kept[i] = HS_APK_DROPPED;
    for (size_t k = 0; k < j->name_count; k++)
        kept[j->names[k]] = 0;
    hs_jar_sign_params p = {.zip = z, .kept_lfh_offset = kept, .min_sdk = min_sdk,
                            .v2 = j->opt->v2, .v3 = true, .key = j->key, .sign = j->sign,
                            .artifact = j->opt->artifact ? j->opt->artifact : j->in,
                            .artifact_sha256 = j->res->input_sha256, .created_by = CREATED_BY};
    hs_jar_files f;
    hs_result r = hs_jar_sign_build(&p, &f, e);
    free(kept);
    if (r != HS_OK)
        return r;
    j->res->signatures++;
    for (size_t i = 0; r == HS_OK && i < 3; i++)
        r = put_deflated(&j->out, f.name[i], strlen(f.name[i]), f.data[i].data, f.data[i].len, e);
    hs_jar_files_free(&f);
    return r;
}

static hs_result build_eocd(job *j, hs_error *e)
{
    if (j->out.count > 0xffff || j->out.cd.len > UINT32_MAX || j->out.data.len > UINT32_MAX)
        return hs_fail(e, HS_E_FORMAT, "%s: output would need zip64", j->in);
    hs_apk_buf *b = &j->eocd;
    put32(b, 0x06054b50u);
    put16(b, 0);
    put16(b, 0);
    put16(b, (uint32_t)j->out.count);
    put16(b, (uint32_t)j->out.count);
    put32(b, (uint32_t)j->out.cd.len);
    put32(b, (uint32_t)j->out.data.len);
    put16(b, 0);
    return hs_apk_buf_check(b, j->in, e);
}

static hs_result sign_tbs(job *j, const char *operation, hs_sig_alg alg, const uint8_t *tbs,
                          size_t tbs_len, uint8_t **sig, size_t *sig_len, hs_error *e)
{
    uint8_t digest[HS_MAX_DIGEST_LEN];
    hs_sign_request req = {.key_name = j->key->key_name, .alg = alg, .operation = operation,
                           .artifact = j->opt->artifact ? j->opt->artifact : j->in,
                           .artifact_sha256 = j->res->input_sha256};
    hs_result r = hs_sign_request_hash(&req, digest, tbs, tbs_len, e);
    if (r == HS_OK)
        r = j->sign.sign(j->sign.ctx, &req, sig, sig_len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "%s: %s signature: ", j->in, operation);
    j->res->signatures++;
    return HS_OK;
}

typedef struct v23_ctx {
    hs_apk_sig_algorithm alg;
    uint8_t *spki;
    int spki_len;
    uint8_t digest[EVP_MAX_MD_SIZE];
    size_t digest_len;
} v23_ctx;

static hs_result build_scheme(job *j, v23_ctx *c, hs_apk_scheme scheme, hs_apk_buf *value,
                              hs_error *e)
{
    hs_apk_signer_input in = {.algorithm = &c->alg, .content_digest = c->digest,
                              .content_digest_len = c->digest_len, .cert_der = j->key->cert_der,
                              .cert_der_len = j->key->cert_der_len, .spki_der = c->spki,
                              .spki_der_len = (size_t)c->spki_len, .v3_also = true,
                              /* one v3 signer for every platform that has v3 */
                              .min_sdk = c->alg.min_sdk, .max_sdk = HS_APK_V3_MAX_SDK};
    hs_apk_buf signed_data = {0};
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    hs_result r = hs_apk_build_signed_data(scheme, &in, &signed_data, e);
    if (r == HS_OK)
        r = sign_tbs(j, scheme == HS_APK_SCHEME_V2 ? "apk-v2" : "apk-v3", c->alg.alg,
                     signed_data.data, signed_data.len, &sig, &sig_len, e);
    if (r == HS_OK)
        r = hs_apk_build_scheme_value(scheme, &in, &signed_data, sig, sig_len, value, e);
    free(sig);
    hs_apk_buf_free(&signed_data);
    return r;
}

/* apksig's outputZipSections2: content digest over the entries (padded to
 * 4096), the CD and the EOCD pointing at the block, then v2 and v3. */
static hs_result signing_block(job *j, v23_ctx *c, hs_apk_buf *block, hs_error *e)
{
    uint8_t *eocd = malloc(j->eocd.len);
    if (eocd == NULL)
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory", j->in);
    memcpy(eocd, j->eocd.data, j->eocd.len);
    hs_put_le32(eocd + 16, (uint32_t)j->out.data.len);
    hs_apk_section sections[3] = {
        {.len = j->out.data.len, .mem = j->out.data.data},
        {.len = j->out.cd.len, .mem = j->out.cd.data},
        {.len = j->eocd.len, .mem = eocd},
    };
    hs_result r = hs_apk_content_digest(c->alg.content_md, sections, 3, NULL, j->in, c->digest,
                                        &c->digest_len, e);
    free(eocd);
    hs_apk_buf v2 = {0}, v3 = {0};
    hs_apk_block_pair pairs[2];
    size_t n = 0;
    if (r == HS_OK && j->opt->v2 && (r = build_scheme(j, c, HS_APK_SCHEME_V2, &v2, e)) == HS_OK)
        pairs[n++] = (hs_apk_block_pair){HS_APK_BLOCK_ID_V2, v2.data, v2.len};
    if (r == HS_OK && (r = build_scheme(j, c, HS_APK_SCHEME_V3, &v3, e)) == HS_OK)
        pairs[n++] = (hs_apk_block_pair){HS_APK_BLOCK_ID_V3, v3.data, v3.len};
    if (r == HS_OK)
        r = hs_apk_build_signing_block(pairs, n, block, e);
    hs_apk_buf_free(&v2);
    hs_apk_buf_free(&v3);
    return r;
}

/* SignApk's loop: sign; with --align-file-size, when the file size is not
 * a multiple of the alignment, pad the EOCD comment and sign again. */
static hs_result add_v23(job *j, hs_apk_buf *block, hs_error *e)
{
    size_t pad = (HS_APK_BLOCK_ALIGNMENT - j->out.data.len % HS_APK_BLOCK_ALIGNMENT) %
                 HS_APK_BLOCK_ALIGNMENT;
    hs_apk_buf_zeros(&j->out.data, pad);
    hs_result r = hs_apk_buf_check(&j->out.data, j->in, e);
    if (r != HS_OK)
        return r;
    v23_ctx c = {0};
    r = hs_apk_choose_algorithm(j->key->public_key, j->key->key_name, &c.alg, e);
    c.spki_len = r == HS_OK ? i2d_PUBKEY(j->key->public_key, &c.spki) : 0;
    if (r == HS_OK && c.spki_len <= 0)
        r = hs_fail(e, HS_E_CRYPTO, "key %s: cannot encode its public key", j->key->key_name);
    for (int pass = 0; r == HS_OK; pass++) {
        hs_apk_buf_free(block);
        r = signing_block(j, &c, block, e);
        uint32_t align = (uint32_t)j->opt->alignment;
        if (r != HS_OK || !j->opt->align_file_size || align < 2 || pass > 0)
            break;
        uint64_t size = j->out.data.len + block->len + j->out.cd.len + j->eocd.len;
        if (size % align == 0)
            break;
        size_t comment = align - (size_t)(size % align);
        hs_apk_buf_zeros(&j->eocd, comment);
        r = hs_apk_buf_check(&j->eocd, j->in, e);
        if (r == HS_OK)
            hs_put_le16(j->eocd.data + 20, (uint16_t)(j->eocd.len - HS_ZIP_EOCD_SIZE));
    }
    OPENSSL_free(c.spki);
    if (r == HS_OK && j->out.data.len + block->len > UINT32_MAX)
        r = hs_fail(e, HS_E_FORMAT, "%s: output would need zip64", j->in);
    if (r == HS_OK)
        hs_put_le32(j->eocd.data + 16, (uint32_t)(j->out.data.len + block->len));
    return r;
}

static hs_result sign_apk(job *j, hs_error *e)
{
    int min_sdk = j->opt->min_sdk;
    if (min_sdk < 0 && hs_axml_apk_min_sdk(&j->zip, &min_sdk, e) != HS_OK)
        return hs_error_prefix(e, "cannot detect minSdkVersion, use --min-sdk-version to "
                                  "override: ");
    j->res->min_sdk = min_sdk;
    j->out.level = LEVEL_APK;
    hs_apk_buf block = {0};
    hs_result r = copy_stored(j, e);
    if (r == HS_OK)
        r = copy_deflated(j, e);
    if (r == HS_OK)
        r = add_v1(j, min_sdk, e);
    if (r == HS_OK)
        r = build_eocd(j, e);
    if (r == HS_OK)
        r = add_v23(j, &block, e);
    hs_apk_buf *o = &j->res->out;
    if (r == HS_OK) {
        hs_apk_buf_append(o, j->out.data.data, j->out.data.len);
        hs_apk_buf_append(o, block.data, block.len);
        hs_apk_buf_append(o, j->out.cd.data, j->out.cd.len);
        hs_apk_buf_append(o, j->eocd.data, j->eocd.len);
        r = hs_apk_buf_check(o, j->in, e);
    }
    hs_apk_buf_free(&block);
    return r;
}

/* getDigestAlgorithmForOta: the certificate's own signature algorithm. */
static hs_result ota_alg(job *j, hs_sig_alg *alg, bool *sha256, hs_error *e)
{
    if (!EVP_PKEY_is_a(j->key->public_key, "RSA"))
        return hs_fail(e, HS_E_USAGE, "key %s: -w (OTA) signing supports RSA keys only",
                       j->key->key_name);
    const uint8_t *p = j->key->cert_der;
    X509 *x = d2i_X509(NULL, &p, (long)j->key->cert_der_len);
    int nid = x ? X509_get_signature_nid(x) : NID_undef;
    X509_free(x);
    if (nid == NID_sha1WithRSAEncryption || nid == NID_md5WithRSAEncryption)
        *sha256 = false;
    else if (nid == NID_sha256WithRSAEncryption || nid == NID_ecdsa_with_SHA256)
        *sha256 = true;
    else
        return hs_fail(e, HS_E_USAGE, "key %s: unsupported certificate signature algorithm "
                       "for -w (%s)", j->key->key_name, nid == NID_undef ? "unreadable" : OBJ_nid2sn(nid));
    *alg = *sha256 ? HS_SIG_RSA_PKCS1_SHA256 : HS_SIG_RSA_PKCS1_SHA1;
    return HS_OK;
}

/* The comment signWholeFile writes: message, NUL, the PKCS#7 block, then
 * u16 signature start, 0xffff, u16 comment size (the last 6 bytes the
 * recovery verifier reads first). */
static hs_result ota_comment(job *j, const uint8_t *pkcs7, size_t pkcs7_len, hs_apk_buf *c,
                             hs_error *e)
{
    size_t msg = sizeof OTA_MESSAGE; /* with its NUL */
    size_t total = msg + pkcs7_len + 6;
    if (total > 0xffff)
        return hs_fail(e, HS_E_FORMAT, "%s: signature is too big for a ZIP comment", j->in);
    hs_apk_buf_append(c, OTA_MESSAGE, msg);
    hs_apk_buf_append(c, pkcs7, pkcs7_len);
    put16(c, (uint32_t)(total - msg));
    put16(c, 0xffff);
    put16(c, (uint32_t)total);
    hs_result r = hs_apk_buf_check(c, j->in, e);
    for (size_t i = 0; r == HS_OK && i + 4 <= c->len - 2; i++)
        if (memcmp(c->data + i, "PK\x05\x06", 4) == 0)
            r = hs_fail(e, HS_E_FORMAT, "%s: spurious EOCD signature in the OTA signature at %zu",
                        j->in, i);
    return r;
}

static hs_result sign_ota(job *j, hs_error *e)
{
    j->res->min_sdk = -1;
    j->out.level = LEVEL_OTA;
    hs_sig_alg alg = HS_SIG_RSA_PKCS1_SHA256;
    bool sha256 = true;
    hs_result r = ota_alg(j, &alg, &sha256, e);
    if (r == HS_OK)
        r = copy_stored(j, e);
    if (r == HS_OK)
        r = copy_deflated(j, e);
    if (r == HS_OK)
        r = put_deflated(&j->out, OTACERT, strlen(OTACERT), j->opt->otacert, j->opt->otacert_len,
                         e);
    if (r == HS_OK)
        r = build_eocd(j, e);
    hs_apk_buf *o = &j->res->out;
    if (r == HS_OK) {
        hs_apk_buf_append(o, j->out.data.data, j->out.data.len);
        hs_apk_buf_append(o, j->out.cd.data, j->out.cd.len);
        hs_apk_buf_append(o, j->eocd.data, j->eocd.len - 2); /* signed: all but the comment length */
        r = hs_apk_buf_check(o, j->in, e);
    }
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    hs_apk_buf pkcs7 = {0}, comment = {0};
    if (r == HS_OK)
        r = sign_tbs(j, "ota-wholefile", alg, o->data, o->len, &sig, &sig_len, e);
    if (r == HS_OK)
        r = hs_jar_pkcs7_build_bc_rsa(j->key->cert_der, j->key->cert_der_len, sha256, sig,
                                      sig_len, &pkcs7, e);
    if (r == HS_OK)
        r = ota_comment(j, pkcs7.data, pkcs7.len, &comment, e);
    if (r == HS_OK) {
        put16(o, (uint32_t)comment.len);
        hs_apk_buf_append(o, comment.data, comment.len);
        r = hs_apk_buf_check(o, j->in, e);
    }
    free(sig);
    hs_apk_buf_free(&pkcs7);
    hs_apk_buf_free(&comment);
    return r;
}

hs_result hs_signapk_sign(const char *in, const hs_apk_key *key, const hs_signapk_options *opt,
                          hs_sign_fn sign, hs_signapk_result *res, hs_error *e)
{
    memset(res, 0, sizeof *res);
    job j = {.in = in, .key = key, .opt = opt, .sign = sign, .res = res};
    if (opt->alignment < 0 || opt->alignment > 65535 || opt->so_alignment < 1 ||
        opt->so_alignment > (int)SO_ALIGNMENT)
        return hs_fail(e, HS_E_USAGE, "alignment %d / .so alignment %d out of range",
                       opt->alignment, opt->so_alignment);
    if (opt->whole_file && opt->otacert == NULL)
        return hs_fail(e, HS_E_USAGE, "-w needs the certificate file's bytes");
    hs_result r = hs_zip_open(&j.zip, in, e);
    j.zip_open = r == HS_OK;
    if (r == HS_OK && !EVP_Digest(j.zip.map, (size_t)j.zip.size, res->input_sha256, NULL,
                                  EVP_sha256(), NULL))
        r = hs_fail(e, HS_E_CRYPTO, "%s: hashing failed", in);
    if (r == HS_OK)
        r = collect_names(&j, e);
    if (r == HS_OK)
        r = opt->whole_file ? sign_ota(&j, e) : sign_apk(&j, e);
    if (r == HS_OK && !EVP_Digest(res->out.data, res->out.len, res->output_sha256, NULL,
                                  EVP_sha256(), NULL))
        r = hs_fail(e, HS_E_CRYPTO, "%s: hashing failed", in);
    free(j.names);
    hs_apk_buf_free(&j.out.data);
    hs_apk_buf_free(&j.out.cd);
    hs_apk_buf_free(&j.eocd);
    if (j.zip_open)
        hs_zip_close(&j.zip);
    if (r != HS_OK)
        hs_signapk_result_free(res);
    return r;
}
