/* hs_apex_sign: releasetools' SignUncompressedApex, natively (apex.h). */
#include "apex/apex.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "avb/avb_footer.h"
#include "avb/avb_pubkey.h"
#include "signapk/signapk.h"
#include "util/file.h"
#include "zip/zip_inflate.h"

#define PAYLOAD_FILE "apex_payload.img"
#define CONTAINER_FILE "container.zip"
/* What python's zipfile writes: version 2.0, made on Unix (3) for files
 * it adds; common.ZipWrite chmods them to 0644 (a regular file). */
#define PY_VERSION 20u
#define UNIX_SYSTEM 3u
#define ZIPWRITE_MODE 0100644u
#define DOS_DATE_2009 0x3a21u      /* ZipWrite's fixed 2009-01-01 00:00 */
#define FLAG_UTF8 0x0800u
#define MAX_PAYLOAD ((size_t)UINT32_MAX) /* no zip64 */

typedef struct work {
    const char *in;
    const hs_apex_sign_options *opt;
    hs_sign_fn sign;
    hs_apex_sign_result *res;
    hs_zip zip;
    bool zip_open;
    const hs_zip_entry *payload;
    hs_avb_vbmeta vbmeta;
    hs_apex_payload_info info;
    char *dir, *payload_path, *container_path, *payload_artifact;
    uint8_t *signed_payload, *pubkey;
    size_t signed_payload_len, pubkey_len;
} work;

/* One zip record as python's zipfile writes it (zip2zip's copies and
 * ZipWrite's additions alike): sizes in the local header, no extra field. */
typedef struct pyentry {
    const char *name;
    size_t name_len;
    uint16_t flags, method, time, date, made_by;
    uint32_t crc, external;
    const uint8_t *data;
    uint64_t csize, usize;
} pyentry;

typedef struct pyzip {
    int fd;
    const char *path;
    uint64_t offset;
    hs_apk_buf cd;
    size_t count;
} pyzip;

static void le16(hs_apk_buf *b, uint32_t v)
{
    uint8_t x[2];
    hs_put_le16(x, (uint16_t)v);
    hs_apk_buf_append(b, x, 2);
}

static hs_result pyzip_put(pyzip *z, const pyentry *en, hs_error *e)
{
    if (en->csize > UINT32_MAX || en->usize > UINT32_MAX || z->offset > UINT32_MAX ||
        en->name_len > 0xffff)
        return hs_fail(e, HS_E_FORMAT, "%s: %.*s would need zip64", z->path, (int)en->name_len,
                       en->name);
    hs_apk_buf lfh = {0};
    hs_apk_buf_u32(&lfh, 0x04034b50u);
    le16(&lfh, PY_VERSION);
    le16(&lfh, en->flags);
    le16(&lfh, en->method);
    le16(&lfh, en->time);
    le16(&lfh, en->date);
    hs_apk_buf_u32(&lfh, en->crc);
    hs_apk_buf_u32(&lfh, (uint32_t)en->csize);
    hs_apk_buf_u32(&lfh, (uint32_t)en->usize);
    le16(&lfh, (uint32_t)en->name_len);
    le16(&lfh, 0);
    hs_apk_buf_append(&lfh, en->name, en->name_len);
    hs_apk_buf *c = &z->cd;
    hs_apk_buf_u32(c, 0x02014b50u);
    le16(c, en->made_by);
    le16(c, PY_VERSION);
    le16(c, en->flags);
    le16(c, en->method);
    le16(c, en->time);
    le16(c, en->date);
    hs_apk_buf_u32(c, en->crc);
    hs_apk_buf_u32(c, (uint32_t)en->csize);
    hs_apk_buf_u32(c, (uint32_t)en->usize);
    le16(c, (uint32_t)en->name_len);
    le16(c, 0); /* extra */
    le16(c, 0); /* comment */
    le16(c, 0); /* disk */
    le16(c, 0); /* internal attributes */
    hs_apk_buf_u32(c, en->external);
    hs_apk_buf_u32(c, (uint32_t)z->offset);
    hs_apk_buf_append(c, en->name, en->name_len);
    hs_result r = hs_apk_buf_check(&lfh, z->path, e);
    if (r == HS_OK)
        r = hs_apk_buf_check(c, z->path, e);
    if (r == HS_OK)
        r = hs_write_fd_all(z->fd, lfh.data, lfh.len, z->path, e);
    if (r == HS_OK)
        r = hs_write_fd_all(z->fd, en->data, (size_t)en->csize, z->path, e);
    z->offset += lfh.len + en->csize;
    z->count++;
    hs_apk_buf_free(&lfh);
    return r;
}

static hs_result pyzip_finish(pyzip *z, hs_error *e)
{
    if (z->count > 0xffff || z->cd.len > UINT32_MAX || z->offset > UINT32_MAX)
        return hs_fail(e, HS_E_FORMAT, "%s: would need zip64", z->path);
    hs_apk_buf eocd = {0};
    hs_apk_buf_u32(&eocd, 0x06054b50u);
    le16(&eocd, 0);
    le16(&eocd, 0);
    le16(&eocd, (uint32_t)z->count);
    le16(&eocd, (uint32_t)z->count);
    hs_apk_buf_u32(&eocd, (uint32_t)z->cd.len);
    hs_apk_buf_u32(&eocd, (uint32_t)z->offset);
    le16(&eocd, 0);
    hs_result r = hs_apk_buf_check(&eocd, z->path, e);
    if (r == HS_OK)
        r = hs_write_fd_all(z->fd, z->cd.data, z->cd.len, z->path, e);
    if (r == HS_OK)
        r = hs_write_fd_all(z->fd, eocd.data, eocd.len, z->path, e);
    hs_apk_buf_free(&eocd);
    return r;
}

/* zip2zip -x apex_payload.img -x apex_pubkey: every other entry with its
 * data, method, time and attributes (the data descriptor dropped, as
 * python writes sizes in the local header). */
static hs_result copy_kept(work *w, pyzip *z, hs_error *e)
{
    const hs_zip *in = &w->zip;
    size_t *order = hs_zip_file_order(in);
    if (order == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    hs_result r = HS_OK;
    for (size_t k = 0; r == HS_OK && k < in->entry_count; k++) {
        const hs_zip_entry *ent = &in->entries[order[k]];
        if (hs_zip_entry_name_is(ent, HS_APEX_PAYLOAD) || hs_zip_entry_name_is(ent, HS_APEX_PUBKEY))
            continue;
        const uint8_t *cd = in->map + ent->cd_offset;
        pyentry en = {.name = ent->name, .name_len = ent->name_len,
                      .flags = (uint16_t)(ent->flags & FLAG_UTF8), .method = ent->method,
                      .time = ent->mod_time, .date = ent->mod_date,
                      .made_by = (uint16_t)((hs_le16(cd + 4) & 0xff00u) | PY_VERSION),
                      .crc = ent->crc32, .external = hs_le32(cd + 38),
                      .data = in->map + ent->data_offset, .csize = ent->compressed_size,
                      .usize = ent->uncompressed_size};
        r = pyzip_put(z, &en, e);
    }
    free(order);
    return r;
}

/* common.ZipWrite(apex_zip, FILE, arcname=NAME) on a ZipFile opened 'a':
 * stored, mode 0644, 2009-01-01. */
static hs_result add_stored(pyzip *z, const char *name, const uint8_t *data, size_t len,
                            hs_error *e)
{
    pyentry en = {.name = name, .name_len = strlen(name), .method = HS_ZIP_METHOD_STORED,
                  .date = DOS_DATE_2009, .made_by = (UNIX_SYSTEM << 8) | PY_VERSION,
                  .crc = hs_crc32_update(0, data, len), .external = ZIPWRITE_MODE << 16,
                  .data = data, .csize = len, .usize = len};
    return pyzip_put(z, &en, e);
}

static hs_result write_container(work *w, hs_error *e)
{
    pyzip z = {.path = w->container_path};
    z.fd = open(w->container_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (z.fd < 0)
        return hs_fail(e, HS_E_IO, "%s: cannot create: %s", w->container_path, strerror(errno));
    hs_result r = copy_kept(w, &z, e);
    if (r == HS_OK)
        r = add_stored(&z, HS_APEX_PAYLOAD, w->signed_payload, w->signed_payload_len, e);
    if (r == HS_OK)
        r = add_stored(&z, HS_APEX_PUBKEY, w->pubkey, w->pubkey_len, e);
    if (r == HS_OK)
        r = pyzip_finish(&z, e);
    if (close(z.fd) != 0 && r == HS_OK)
        r = hs_fail(e, HS_E_IO, "%s: write failed: %s", w->container_path, strerror(errno));
    hs_apk_buf_free(&z.cd);
    return r;
}

static hs_result make_dir(work *w, hs_error *e)
{
    const char *tmp = w->opt->tmp_dir && w->opt->tmp_dir[0] ? w->opt->tmp_dir : "/tmp";
    if (asprintf(&w->dir, "%s/hsmsign-apex.XXXXXX", tmp) < 0) {
        w->dir = NULL;
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    if (mkdtemp(w->dir) == NULL) {
        hs_result r = hs_fail(e, HS_E_IO, "%s: cannot create a work directory: %s", tmp,
                              strerror(errno));
        free(w->dir);
        w->dir = NULL;
        return r;
    }
    if (asprintf(&w->payload_path, "%s/%s", w->dir, PAYLOAD_FILE) < 0)
        w->payload_path = NULL;
    if (asprintf(&w->container_path, "%s/%s", w->dir, CONTAINER_FILE) < 0)
        w->container_path = NULL;
    if (asprintf(&w->payload_artifact, "%s!%s", w->in, HS_APEX_PAYLOAD) < 0)
        w->payload_artifact = NULL;
    if (w->payload_path == NULL || w->container_path == NULL || w->payload_artifact == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    return HS_OK;
}

/* The payload key must be an RSA key of the size the payload's algorithm
 * names (avbtool: "Key is wrong size for algorithm"). */
static hs_result check_payload_key(work *w, hs_error *e)
{
    hs_result r = hs_avb_pubkey_encode(w->opt->payload_public, &w->pubkey, &w->pubkey_len, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "payload key '%s' is not usable for AVB: ", w->opt->payload_key);
    if (w->pubkey_len != w->info.alg->pubkey_len)
        return hs_fail(e, HS_E_USAGE, "payload key '%s' is not usable for %s's payload: %s needs "
                       "a %zu-byte AVB key, this one is %zu bytes", w->opt->payload_key, w->in,
                       w->info.alg->name, w->info.alg->pubkey_len, w->pubkey_len);
    return HS_OK;
}

/* avbtool add_hashtree_footer as SignApexPayload runs it. */
static hs_result sign_payload(work *w, hs_error *e)
{
    const hs_zip_entry *p = w->payload;
    hs_result r = hs_write_file_atomic(w->payload_path, w->zip.map + p->data_offset,
                                       (size_t)p->uncompressed_size, 0600, true, e);
    char *prop = NULL;
    if (r == HS_OK && asprintf(&prop, "apex.key:%s", w->info.apex_key) < 0) {
        prop = NULL;
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    if (r != HS_OK)
        return r;
    const char *props[] = {prop};
    hs_avb_footer_opts fo = {.partition_name = "", .partition_size = 0,
                             .artifact = w->payload_artifact,
                             .hash_algorithm = w->info.hash_algorithm, .salt_hex = w->info.salt_hex,
                             .do_not_generate_fec = true};
    fo.vbmeta.algorithm = w->info.alg->name;
    fo.vbmeta.public_key = w->opt->payload_public;
    fo.vbmeta.key_name = w->opt->payload_key;
    fo.vbmeta.props = props;
    fo.vbmeta.n_props = 1;
    hs_avb_report rep;
    r = hs_avb_add_hashtree_footer(w->payload_path, &fo, &w->sign, &rep, e);
    free(prop);
    if (r != HS_OK)
        return hs_error_prefix(e, "%s: payload (key '%s'): ", w->in, w->opt->payload_key);
    w->res->signatures++;
    return hs_read_file(w->payload_path, MAX_PAYLOAD, &w->signed_payload, &w->signed_payload_len,
                        e);
}

static hs_result sign_container(work *w, hs_error *e)
{
    hs_signapk_options so;
    hs_signapk_options_init(&so);
    so.alignment = HS_APEX_ALIGNMENT;
    so.align_file_size = true;
    so.min_sdk = w->opt->min_sdk;
    so.artifact = w->in;
    hs_signapk_result sr;
    hs_result r = hs_signapk_sign(w->container_path, w->opt->container, &so, w->sign, &sr, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "%s: container (key '%s'): ", w->in,
                               w->opt->container->key_name);
    w->res->out = sr.out; /* taken over */
    w->res->min_sdk = sr.min_sdk;
    w->res->signatures += sr.signatures;
    memcpy(w->res->output_sha256, sr.output_sha256, 32);
    return HS_OK;
}

static hs_result run(work *w, hs_error *e)
{
    hs_result r = hs_zip_open(&w->zip, w->in, e);
    w->zip_open = r == HS_OK;
    if (r == HS_OK && !EVP_Digest(w->zip.map, (size_t)w->zip.size, w->res->input_sha256, NULL,
                                  EVP_sha256(), NULL))
        r = hs_fail(e, HS_E_CRYPTO, "%s: hashing failed", w->in);
    if (r == HS_OK)
        r = hs_apex_payload_vbmeta(&w->zip, &w->payload, &w->vbmeta, e);
    if (r == HS_OK && (r = hs_apex_payload_info_get(&w->vbmeta, w->in, &w->info, e)) == HS_OK) {
        snprintf(w->res->algorithm, sizeof w->res->algorithm, "%s", w->info.alg->name);
        w->res->apex_key = strdup(w->info.apex_key);
        if (w->res->apex_key == NULL)
            r = hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    if (r == HS_OK)
        r = check_payload_key(w, e);
    if (r == HS_OK)
        r = make_dir(w, e);
    if (r == HS_OK)
        r = sign_payload(w, e);
    if (r == HS_OK)
        r = write_container(w, e);
    if (r == HS_OK)
        r = sign_container(w, e);
    return r;
}

static void cleanup(work *w)
{
    if (w->payload_path != NULL)
        unlink(w->payload_path);
    if (w->container_path != NULL)
        unlink(w->container_path);
    if (w->dir != NULL)
        rmdir(w->dir);
    free(w->dir);
    free(w->payload_path);
    free(w->container_path);
    free(w->payload_artifact);
    free(w->signed_payload);
    free(w->pubkey);
    hs_apex_payload_info_free(&w->info);
    hs_avb_vbmeta_free(&w->vbmeta);
    if (w->zip_open)
        hs_zip_close(&w->zip);
}

hs_result hs_apex_sign(const char *in, const hs_apex_sign_options *opt, hs_sign_fn sign,
                       hs_apex_sign_result *res, hs_error *e)
{
    memset(res, 0, sizeof *res);
    if (opt->payload_key == NULL || opt->payload_public == NULL || opt->container == NULL)
        return hs_fail(e, HS_E_USAGE, "APEX signing needs a payload key and a container key");
    work w = {.in = in, .opt = opt, .sign = sign, .res = res};
    hs_result r = run(&w, e);
    cleanup(&w);
    if (r != HS_OK)
        hs_apex_sign_result_free(res);
    return r;
}

void hs_apex_sign_result_free(hs_apex_sign_result *res)
{
    hs_apk_buf_free(&res->out);
    free(res->apex_key);
    res->apex_key = NULL;
}
