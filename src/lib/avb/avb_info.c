#include "avb/avb_info.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "avb/avb_bytes.h"

/* Largest vbmeta struct we read from an image: libavb's limit. */
#define AVB_MAX_VBMETA_READ (64 * 1024)

static bool range_ok(uint64_t off, uint64_t size, uint64_t limit)
{
    return off <= limit && size <= limit - off;
}

static hs_avb_bytes sub(const uint8_t *base, uint64_t off, uint64_t size)
{
    hs_avb_bytes b = {base + off, (size_t)size};
    return b;
}

/* Field lengths after a descriptor's fixed part must fit in nbf and match
 * avbtool's encoding exactly (payload rounded up to 8). */
static hs_result check_lengths(uint64_t nbf, uint64_t fixed, uint64_t var_len, const char *kind,
                               const char *what, size_t *used, hs_error *e)
{
    if (var_len > UINT64_MAX - fixed)
        return hs_fail(e, HS_E_FORMAT, "%s: %s descriptor: field lengths overflow", what, kind);
    uint64_t payload = fixed - 16 + var_len, rounded;
    if (!hs_avb_round_up(payload, 8, &rounded) || rounded != nbf)
        return hs_fail(e, HS_E_FORMAT,
                       "%s: %s descriptor: field lengths do not match its size of %llu bytes", what,
                       kind, (unsigned long long)nbf);
    *used = (size_t)(16 + payload);
    return HS_OK;
}

static hs_result parse_hash_alg(const uint8_t *field, hs_avb_desc *d, const char *what,
                                hs_error *e)
{
    if (memchr(field, 0, 32) == NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: hash algorithm name is not NUL-terminated", what);
    memcpy(d->hash_algorithm, field, 32);
    d->hash_algorithm[32] = '\0';
    const EVP_MD *md = hs_avb_hash_md(d->hash_algorithm);
    if (md == NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: unsupported hash algorithm '%s' in descriptor", what,
                       d->hash_algorithm);
    if (d->digest.len != 0 && d->digest.len != (size_t)EVP_MD_get_size(md))
        return hs_fail(e, HS_E_FORMAT, "%s: digest of %zu bytes does not fit %s", what,
                       d->digest.len, d->hash_algorithm);
    return HS_OK;
}

static hs_result parse_property(const uint8_t *p, uint64_t nbf, hs_avb_desc *d, const char *what,
                                hs_error *e)
{
    if (nbf < 16)
        return hs_fail(e, HS_E_FORMAT, "%s: property descriptor too short", what);
    uint64_t klen = hs_avb_get_be64(p + 16), vlen = hs_avb_get_be64(p + 24);
    if (klen > nbf || vlen > nbf)
        return hs_fail(e, HS_E_FORMAT, "%s: property descriptor lengths exceed its size", what);
    hs_result r = check_lengths(nbf, 32, klen + 1 + vlen + 1, "property", what, &d->used_len, e);
    if (r != HS_OK)
        return r;
    if (p[32 + klen] != 0 || p[32 + klen + 1 + vlen] != 0)
        return hs_fail(e, HS_E_FORMAT, "%s: property key or value is not NUL-terminated", what);
    d->key = sub(p, 32, klen);
    d->value = sub(p, 32 + klen + 1, vlen);
    return HS_OK;
}

static hs_result parse_hash(const uint8_t *p, uint64_t nbf, hs_avb_desc *d, const char *what,
                            hs_error *e)
{
    if (nbf < 132 - 16)
        return hs_fail(e, HS_E_FORMAT, "%s: hash descriptor too short", what);
    d->image_size = hs_avb_get_be64(p + 16);
    uint64_t nlen = hs_avb_get_be32(p + 56), slen = hs_avb_get_be32(p + 60),
             dlen = hs_avb_get_be32(p + 64);
    d->flags = hs_avb_get_be32(p + 68);
    hs_result r = check_lengths(nbf, 132, nlen + slen + dlen, "hash", what, &d->used_len, e);
    if (r != HS_OK)
        return r;
    d->partition_name = sub(p, 132, nlen);
    d->salt = sub(p, 132 + nlen, slen);
    d->digest = sub(p, 132 + nlen + slen, dlen);
    return parse_hash_alg(p + 24, d, what, e);
}

static hs_result parse_hashtree(const uint8_t *p, uint64_t nbf, hs_avb_desc *d, const char *what,
                                hs_error *e)
{
    if (nbf < 180 - 16)
        return hs_fail(e, HS_E_FORMAT, "%s: hashtree descriptor too short", what);
    d->dm_verity_version = hs_avb_get_be32(p + 16);
    d->image_size = hs_avb_get_be64(p + 20);
    d->tree_offset = hs_avb_get_be64(p + 28);
    d->tree_size = hs_avb_get_be64(p + 36);
    d->data_block_size = hs_avb_get_be32(p + 44);
    d->hash_block_size = hs_avb_get_be32(p + 48);
    d->fec_num_roots = hs_avb_get_be32(p + 52);
    d->fec_offset = hs_avb_get_be64(p + 56);
    d->fec_size = hs_avb_get_be64(p + 64);
    uint64_t nlen = hs_avb_get_be32(p + 104), slen = hs_avb_get_be32(p + 108),
             dlen = hs_avb_get_be32(p + 112);
    d->flags = hs_avb_get_be32(p + 116);
    hs_result r = check_lengths(nbf, 180, nlen + slen + dlen, "hashtree", what, &d->used_len, e);
    if (r != HS_OK)
        return r;
    d->partition_name = sub(p, 180, nlen);
    d->salt = sub(p, 180 + nlen, slen);
    d->digest = sub(p, 180 + nlen + slen, dlen);
    return parse_hash_alg(p + 72, d, what, e);
}

static hs_result parse_cmdline(const uint8_t *p, uint64_t nbf, hs_avb_desc *d, const char *what,
                               hs_error *e)
{
    if (nbf < 24 - 16)
        return hs_fail(e, HS_E_FORMAT, "%s: kernel cmdline descriptor too short", what);
    d->flags = hs_avb_get_be32(p + 16);
    uint64_t len = hs_avb_get_be32(p + 20);
    hs_result r = check_lengths(nbf, 24, len, "kernel cmdline", what, &d->used_len, e);
    if (r == HS_OK)
        d->cmdline = sub(p, 24, len);
    return r;
}

static hs_result parse_chain(const uint8_t *p, uint64_t nbf, hs_avb_desc *d, const char *what,
                             hs_error *e)
{
    if (nbf < 92 - 16)
        return hs_fail(e, HS_E_FORMAT, "%s: chain partition descriptor too short", what);
    d->rollback_index_location = hs_avb_get_be32(p + 16);
    uint64_t nlen = hs_avb_get_be32(p + 20), klen = hs_avb_get_be32(p + 24);
    d->flags = hs_avb_get_be32(p + 28);
    hs_result r = check_lengths(nbf, 92, nlen + klen, "chain partition", what, &d->used_len, e);
    if (r != HS_OK)
        return r;
    d->partition_name = sub(p, 92, nlen);
    d->public_key = sub(p, 92 + nlen, klen);
    return HS_OK;
}

static hs_result parse_one_descriptor(const uint8_t *p, uint64_t nbf, hs_avb_desc *d,
                                      const char *what, hs_error *e)
{
    d->used_len = (size_t)(16 + nbf);
    switch (d->tag) {
    case HS_AVB_DESC_PROPERTY: return parse_property(p, nbf, d, what, e);
    case HS_AVB_DESC_HASHTREE: return parse_hashtree(p, nbf, d, what, e);
    case HS_AVB_DESC_HASH: return parse_hash(p, nbf, d, what, e);
    case HS_AVB_DESC_KERNEL_CMDLINE: return parse_cmdline(p, nbf, d, what, e);
    case HS_AVB_DESC_CHAIN_PARTITION: return parse_chain(p, nbf, d, what, e);
    default: return HS_OK; /* unknown descriptors are kept as raw bytes, like avbtool */
    }
}

static hs_result parse_descriptors(hs_avb_vbmeta *v, const char *what, hs_error *e)
{
    const uint8_t *p = v->descriptors.p;
    size_t left = v->descriptors.len;
    size_t cap = 0;
    while (left > 0) {
        if (left < 16)
            return hs_fail(e, HS_E_FORMAT, "%s: truncated descriptor header", what);
        uint64_t nbf = hs_avb_get_be64(p + 8);
        if (nbf % 8 != 0 || nbf > left - 16)
            return hs_fail(
                e, HS_E_FORMAT,
                "%s: descriptor %zu claims %llu bytes, %zu are left or size not a multiple of 8",
                what, v->n_descs, (unsigned long long)nbf, left - 16);
        if (v->n_descs == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            hs_avb_desc *nd = realloc(v->descs, ncap * sizeof *nd);
            if (nd == NULL)
                return hs_fail(e, HS_E_NOMEM, "out of memory");
            v->descs = nd;
            cap = ncap;
        }
        hs_avb_desc *d = &v->descs[v->n_descs];
        memset(d, 0, sizeof *d);
        d->tag = hs_avb_get_be64(p);
        d->raw = sub(p, 0, 16 + nbf);
        hs_result r = parse_one_descriptor(p, nbf, d, what, e);
        if (r != HS_OK)
            return r;
        v->n_descs++;
        p += 16 + nbf;
        left -= (size_t)(16 + nbf);
    }
    return HS_OK;
}

static hs_result parse_header_sizes(const uint8_t *h, size_t len, const char *what,
                                    hs_avb_vbmeta *v, uint64_t *total, hs_error *e)
{
    if (len < HS_AVB_HEADER_SIZE || memcmp(h, "AVB0", 4) != 0)
        return hs_fail(e, HS_E_FORMAT, "%s: not a vbmeta image (no AVB0 magic)", what);
    v->required_major = hs_avb_get_be32(h + 4);
    v->required_minor = hs_avb_get_be32(h + 8);
    if (v->required_major != HS_AVB_VERSION_MAJOR || v->required_minor > HS_AVB_VERSION_MINOR_MAX)
        return hs_fail(e, HS_E_FORMAT,
                       "%s: vbmeta requires libavb %u.%u, this reader supports 1.0-1.%d", what,
                       v->required_major, v->required_minor, HS_AVB_VERSION_MINOR_MAX);
    v->auth_size = hs_avb_get_be64(h + 12);
    v->aux_size = hs_avb_get_be64(h + 20);
    if (v->auth_size % 64 != 0 || v->aux_size % 64 != 0)
        return hs_fail(e, HS_E_FORMAT, "%s: vbmeta block sizes are not multiples of 64", what);
    if (!range_ok(HS_AVB_HEADER_SIZE, v->auth_size, len) ||
        !range_ok(HS_AVB_HEADER_SIZE + v->auth_size, v->aux_size, len))
        return hs_fail(e, HS_E_FORMAT,
                       "%s: vbmeta blocks (%llu + %llu bytes) run past the %zu bytes available",
                       what, (unsigned long long)v->auth_size, (unsigned long long)v->aux_size,
                       len);
    *total = HS_AVB_HEADER_SIZE + v->auth_size + v->aux_size;
    return HS_OK;
}

/* Resolves an (offset, size) header pair inside a block. */
static hs_result block_range(const uint8_t *h, size_t field, const uint8_t *block,
                             uint64_t block_size, const char *name, const char *what,
                             hs_avb_bytes *out, hs_error *e)
{
    uint64_t off = hs_avb_get_be64(h + field), size = hs_avb_get_be64(h + field + 8);
    if (!range_ok(off, size, block_size))
        return hs_fail(e, HS_E_FORMAT, "%s: %s (offset %llu, %llu bytes) lies outside its block",
                       what, name, (unsigned long long)off, (unsigned long long)size);
    *out = sub(block, off, size);
    return HS_OK;
}

static hs_result parse_header_fields(hs_avb_vbmeta *v, const char *what, hs_error *e)
{
    const uint8_t *h = v->blob;
    const uint8_t *auth = h + HS_AVB_HEADER_SIZE, *aux = auth + v->auth_size;
    v->algorithm_type = hs_avb_get_be32(h + 28);
    v->alg = hs_avb_alg_by_type(v->algorithm_type);
    if (v->alg == NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: unknown vbmeta algorithm type %u", what,
                       v->algorithm_type);
    hs_result r;
    if ((r = block_range(h, 32, auth, v->auth_size, "hash", what, &v->hash, e)) != HS_OK ||
        (r = block_range(h, 48, auth, v->auth_size, "signature", what, &v->signature, e)) !=
            HS_OK ||
        (r = block_range(h, 64, aux, v->aux_size, "public key", what, &v->public_key, e)) !=
            HS_OK ||
        (r = block_range(h, 80, aux, v->aux_size, "public key metadata", what,
                         &v->public_key_metadata, e)) != HS_OK ||
        (r = block_range(h, 96, aux, v->aux_size, "descriptors", what, &v->descriptors, e)) !=
            HS_OK)
        return r;
    if (v->alg->hash_len != 0 &&
        (v->hash.len != v->alg->hash_len || v->signature.len != v->alg->sig_len ||
         v->public_key.len != v->alg->pubkey_len))
        return hs_fail(e, HS_E_FORMAT, "%s: hash, signature or key size does not fit %s", what,
                       v->alg->name);
    v->rollback_index = hs_avb_get_be64(h + 112);
    v->flags = hs_avb_get_be32(h + 120);
    v->rollback_index_location = hs_avb_get_be32(h + 124);
    if (memchr(h + 128, 0, 48) == NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: release string is not NUL-terminated", what);
    memcpy(v->release_string, h + 128, sizeof v->release_string);
    v->release_string[HS_AVB_RELEASE_STRING_MAX] = '\0';
    v->header = sub(h, 0, HS_AVB_HEADER_SIZE);
    v->aux = sub(aux, 0, v->aux_size);
    return HS_OK;
}

hs_result hs_avb_vbmeta_parse(const uint8_t *data, size_t len, const char *what, hs_avb_vbmeta *out,
                              hs_error *e)
{
    memset(out, 0, sizeof *out);
    uint64_t total = 0;
    hs_result r = parse_header_sizes(data, len, what, out, &total, e);
    if (r != HS_OK)
        return r;
    out->blob = malloc((size_t)total);
    if (out->blob == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    memcpy(out->blob, data, (size_t)total);
    out->blob_len = (size_t)total;
    r = parse_header_fields(out, what, e);
    if (r == HS_OK)
        r = parse_descriptors(out, what, e);
    if (r != HS_OK)
        hs_avb_vbmeta_free(out);
    return r;
}

void hs_avb_vbmeta_free(hs_avb_vbmeta *v)
{
    free(v->blob);
    free(v->descs);
    memset(v, 0, sizeof *v);
}

/* A footer cut short by truncation leaves its magic inside the last 64
 * bytes instead of at their start. */
static bool looks_truncated(const uint8_t *tail, size_t tail_len)
{
    for (size_t i = 1; i + 4 <= tail_len; i++)
        if (memcmp(tail + i, "AVBf", 4) == 0)
            return true;
    return false;
}

hs_result hs_avb_footer_parse(const uint8_t *tail, size_t tail_len, uint64_t file_size,
                              const char *what, bool *found, hs_avb_footer *out, hs_error *e)
{
    *found = false;
    memset(out, 0, sizeof *out);
    if (tail_len < HS_AVB_FOOTER_SIZE || memcmp(tail, "AVBf", 4) != 0) {
        if (looks_truncated(tail, tail_len))
            return hs_fail(
                e, HS_E_FORMAT,
                "%s: ends with a truncated AVB footer (magic not in the last 64 bytes' start)",
                what);
        return HS_OK;
    }
    out->version_major = hs_avb_get_be32(tail + 4);
    out->version_minor = hs_avb_get_be32(tail + 8);
    out->original_image_size = hs_avb_get_be64(tail + 12);
    out->vbmeta_offset = hs_avb_get_be64(tail + 20);
    out->vbmeta_size = hs_avb_get_be64(tail + 28);
    if (out->version_major != 1)
        return hs_fail(e, HS_E_FORMAT, "%s: AVB footer version %u.%u is not supported", what,
                       out->version_major, out->version_minor);
    uint64_t body = file_size - HS_AVB_FOOTER_SIZE;
    if (file_size < HS_AVB_FOOTER_SIZE || !range_ok(out->vbmeta_offset, out->vbmeta_size, body) ||
        out->original_image_size > out->vbmeta_offset || out->vbmeta_size < HS_AVB_HEADER_SIZE)
        return hs_fail(
            e, HS_E_FORMAT,
            "%s: AVB footer is inconsistent (original size %llu, vbmeta at %llu, %llu bytes, "
            "file %llu bytes): truncated or corrupt image",
            what, (unsigned long long)out->original_image_size,
            (unsigned long long)out->vbmeta_offset, (unsigned long long)out->vbmeta_size,
            (unsigned long long)file_size);
    *found = true;
    return HS_OK;
}

void hs_avb_footer_encode(const hs_avb_footer *f, uint8_t out[HS_AVB_FOOTER_SIZE])
{
    memset(out, 0, HS_AVB_FOOTER_SIZE);
    memcpy(out, "AVBf", 4);
    hs_avb_put_be32(out + 4, f->version_major);
    hs_avb_put_be32(out + 8, f->version_minor);
    hs_avb_put_be64(out + 12, f->original_image_size);
    hs_avb_put_be64(out + 20, f->vbmeta_offset);
    hs_avb_put_be64(out + 28, f->vbmeta_size);
}

hs_result hs_avb_image_read_footer(int fd, const char *path, uint64_t file_size, bool *found,
                                   hs_avb_footer *out, hs_error *e)
{
    uint8_t tail[HS_AVB_FOOTER_SIZE];
    size_t n = file_size < HS_AVB_FOOTER_SIZE ? (size_t)file_size : HS_AVB_FOOTER_SIZE;
    hs_result r = hs_avb_pread_all(fd, tail, n, file_size - n, path, e);
    if (r != HS_OK)
        return r;
    return hs_avb_footer_parse(tail, n, file_size, path, found, out, e);
}

static hs_result load_vbmeta_at(int fd, const char *path, uint64_t off, uint64_t avail,
                                hs_avb_vbmeta *v, hs_error *e)
{
    if (avail < HS_AVB_HEADER_SIZE)
        return hs_fail(e, HS_E_FORMAT, "%s: too small to hold a vbmeta struct", path);
    uint8_t hdr[HS_AVB_HEADER_SIZE];
    hs_result r = hs_avb_pread_all(fd, hdr, sizeof hdr, off, path, e);
    if (r != HS_OK)
        return r;
    if (memcmp(hdr, "AVB0", 4) != 0)
        return hs_fail(e, HS_E_FORMAT, "%s: no vbmeta struct (AVB0 magic) at offset %llu%s", path,
                       (unsigned long long)off, off == 0 ? " and no AVB footer" : "");
    /* Block sizes are checked against what the file holds before allocating. */
    if (avail > AVB_MAX_VBMETA_READ)
        avail = AVB_MAX_VBMETA_READ;
    uint64_t a = hs_avb_get_be64(hdr + 12), x = hs_avb_get_be64(hdr + 20);
    if (!range_ok(HS_AVB_HEADER_SIZE, a, avail) || !range_ok(HS_AVB_HEADER_SIZE + a, x, avail))
        return hs_fail(e, HS_E_FORMAT,
                       "%s: vbmeta blocks (%llu + %llu bytes) run past the %llu bytes available",
                       path, (unsigned long long)a, (unsigned long long)x,
                       (unsigned long long)avail);
    uint64_t total = HS_AVB_HEADER_SIZE + a + x;
    uint8_t *buf = malloc((size_t)total);
    if (buf == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    r = hs_avb_pread_all(fd, buf, (size_t)total, off, path, e);
    if (r == HS_OK)
        r = hs_avb_vbmeta_parse(buf, (size_t)total, path, v, e);
    free(buf);
    return r;
}

hs_result hs_avb_open_regular(const char *path, bool follow_symlink, int *fd, hs_error *e)
{
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer forever; a regular file ignores the flag. */
    int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (follow_symlink ? 0 : O_NOFOLLOW);
    *fd = open(path, flags);
    if (*fd < 0) {
        int err = errno;
        if (err == ELOOP && !follow_symlink)
            return hs_fail(e, HS_E_IO, "%s: is a symbolic link; partition images named by a "
                                       "descriptor are opened only as regular files", path);
        return hs_fail(e, err == ENOENT ? HS_E_NOTFOUND : HS_E_IO, "%s: cannot open: %s", path,
                       strerror(err));
    }
    struct stat st;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(*fd);
        *fd = -1;
        return hs_fail(e, HS_E_IO, "%s: not a readable regular file", path);
    }
    return HS_OK;
}

static hs_result image_load(const char *path, bool follow_symlink, hs_avb_image *out,
                            hs_error *e)
{
    memset(out, 0, sizeof *out);
    int fd;
    hs_result r = hs_avb_open_regular(path, follow_symlink, &fd, e);
    if (r != HS_OK)
        return r;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        r = hs_fail(e, HS_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto out;
    }
    out->image_size = (uint64_t)st.st_size;
    r = hs_avb_image_read_footer(fd, path, out->image_size, &out->has_footer, &out->footer, e);
    if (r != HS_OK)
        goto out;
    if (out->has_footer)
        r = load_vbmeta_at(fd, path, out->footer.vbmeta_offset, out->footer.vbmeta_size,
                           &out->vbmeta, e);
    else
        r = load_vbmeta_at(fd, path, 0, out->image_size, &out->vbmeta, e);
    if (r == HS_OK && (out->path = strdup(path)) == NULL)
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
out:
    close(fd);
    if (r != HS_OK)
        hs_avb_image_free(out);
    return r;
}

hs_result hs_avb_image_load(const char *path, hs_avb_image *out, hs_error *e)
{
    return image_load(path, true, out, e);
}

hs_result hs_avb_partition_image_load(const char *path, hs_avb_image *out, hs_error *e)
{
    return image_load(path, false, out, e);
}

void hs_avb_image_free(hs_avb_image *img)
{
    free(img->path);
    hs_avb_vbmeta_free(&img->vbmeta);
    memset(img, 0, sizeof *img);
}
