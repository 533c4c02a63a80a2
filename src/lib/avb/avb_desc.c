#include "avb/avb_desc.h"

#include <stdio.h>
#include <string.h>

/* Appends the 16-byte descriptor header for a body of body_len bytes
 * (fixed part after the header plus variable fields, before padding). */
static hs_result put_header(hs_avb_buf *out, uint64_t tag, size_t body_len, hs_error *e)
{
    uint8_t h[16];
    uint64_t padded;
    if (!hs_avb_round_up(body_len, 8, &padded))
        return hs_fail(e, HS_E_USAGE, "descriptor too large");
    hs_avb_put_be64(h, tag);
    hs_avb_put_be64(h + 8, padded);
    return hs_avb_buf_append(out, h, sizeof h, e);
}

static hs_result check_u32(size_t v, const char *what, hs_error *e)
{
    if (v > UINT32_MAX)
        return hs_fail(e, HS_E_USAGE, "%s is too long for an AVB descriptor", what);
    return HS_OK;
}

hs_result hs_avb_desc_property(hs_avb_buf *out, const char *key, size_t key_len,
                               const uint8_t *value, size_t value_len, hs_error *e)
{
    uint8_t fixed[16];
    hs_result r;
    hs_avb_put_be64(fixed, key_len);
    hs_avb_put_be64(fixed + 8, value_len);
    if ((r = put_header(out, HS_AVB_DESC_PROPERTY, 16 + key_len + 1 + value_len + 1, e)) != HS_OK ||
        (r = hs_avb_buf_append(out, fixed, sizeof fixed, e)) != HS_OK ||
        (r = hs_avb_buf_append(out, key, key_len, e)) != HS_OK ||
        (r = hs_avb_buf_zeros(out, 1, e)) != HS_OK ||
        (r = hs_avb_buf_append(out, value, value_len, e)) != HS_OK ||
        (r = hs_avb_buf_zeros(out, 1, e)) != HS_OK)
        return r;
    return hs_avb_buf_pad(out, 8, e);
}

hs_result hs_avb_desc_kernel_cmdline(hs_avb_buf *out, uint32_t flags, const char *cmdline,
                                     hs_error *e)
{
    size_t len = strlen(cmdline);
    uint8_t fixed[8];
    hs_result r = check_u32(len, "kernel command line", e);
    if (r != HS_OK)
        return r;
    hs_avb_put_be32(fixed, flags);
    hs_avb_put_be32(fixed + 4, (uint32_t)len);
    if ((r = put_header(out, HS_AVB_DESC_KERNEL_CMDLINE, 8 + len, e)) != HS_OK ||
        (r = hs_avb_buf_append(out, fixed, sizeof fixed, e)) != HS_OK ||
        (r = hs_avb_buf_append(out, cmdline, len, e)) != HS_OK)
        return r;
    return hs_avb_buf_pad(out, 8, e);
}

#define MAX_PARTITION_NAME 128

/* The name for a message: printable bytes as they are, others as \xNN,
 * cut to fit. */
static void shown_name(const uint8_t *name, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < cap; i++) {
        if (name[i] >= 0x20 && name[i] < 0x7f && name[i] != '\\')
            out[o++] = (char)name[i];
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", name[i]);
    }
    out[o] = '\0';
}

hs_result hs_avb_partition_name_check(const uint8_t *name, size_t len, bool allow_empty,
                                      const char *where, hs_error *e)
{
    const char *why = NULL;
    if (len == 0)
        why = allow_empty ? NULL : "it is empty";
    else if (len > MAX_PARTITION_NAME)
        why = "it is longer than 128 bytes";
    else if (memchr(name, '/', len) != NULL)
        why = "it contains '/'";
    for (size_t i = 0; why == NULL && i < len; i++) {
        if (name[i] < 0x20 || name[i] >= 0x7f)
            why = "it contains a control or non-ASCII byte";
        else if (name[i] == '.' && i + 1 < len && name[i + 1] == '.')
            why = "it contains \"..\"";
    }
    if (why == NULL)
        return HS_OK;
    char shown[MAX_PARTITION_NAME + 32];
    shown_name(name, len, shown, sizeof shown);
    return hs_fail(e, HS_E_FORMAT,
                   "%s: partition name \"%s\" is not a plain name (%s); partition images are "
                   "found by name beside the image",
                   where, shown, why);
}

hs_result hs_avb_desc_chain(hs_avb_buf *out, const char *partition_name,
                            uint32_t rollback_index_location, const uint8_t *pubkey,
                            size_t pubkey_len, uint32_t flags, hs_error *e)
{
    size_t nlen = strlen(partition_name);
    uint8_t fixed[76];
    hs_result r;
    if ((r = hs_avb_partition_name_check((const uint8_t *)partition_name, nlen, false,
                                         "chain partition descriptor", e)) != HS_OK ||
        (r = check_u32(nlen, "partition name", e)) != HS_OK ||
        (r = check_u32(pubkey_len, "public key", e)) != HS_OK)
        return r;
    memset(fixed, 0, sizeof fixed);
    hs_avb_put_be32(fixed, rollback_index_location);
    hs_avb_put_be32(fixed + 4, (uint32_t)nlen);
    hs_avb_put_be32(fixed + 8, (uint32_t)pubkey_len);
    hs_avb_put_be32(fixed + 12, flags);
    if ((r = put_header(out, HS_AVB_DESC_CHAIN_PARTITION, sizeof fixed + nlen + pubkey_len, e)) !=
            HS_OK ||
        (r = hs_avb_buf_append(out, fixed, sizeof fixed, e)) != HS_OK ||
        (r = hs_avb_buf_append(out, partition_name, nlen, e)) != HS_OK ||
        (r = hs_avb_buf_append(out, pubkey, pubkey_len, e)) != HS_OK)
        return r;
    return hs_avb_buf_pad(out, 8, e);
}

static hs_result put_variable(hs_avb_buf *out, const hs_avb_desc *d, hs_error *e)
{
    hs_result r;
    if ((r = hs_avb_buf_append(out, d->partition_name.p, d->partition_name.len, e)) != HS_OK ||
        (r = hs_avb_buf_append(out, d->salt.p, d->salt.len, e)) != HS_OK ||
        (r = hs_avb_buf_append(out, d->digest.p, d->digest.len, e)) != HS_OK)
        return r;
    return hs_avb_buf_pad(out, 8, e);
}

static hs_result check_variable(const hs_avb_desc *d, hs_error *e)
{
    hs_result r;
    if ((r = check_u32(d->partition_name.len, "partition name", e)) != HS_OK ||
        (r = check_u32(d->salt.len, "salt", e)) != HS_OK)
        return r;
    if (strlen(d->hash_algorithm) > 32)
        return hs_fail(e, HS_E_USAGE, "hash algorithm name too long");
    return check_u32(d->digest.len, "digest", e);
}

hs_result hs_avb_desc_hash(hs_avb_buf *out, const hs_avb_desc *d, hs_error *e)
{
    uint8_t fixed[116];
    hs_result r = check_variable(d, e);
    if (r != HS_OK)
        return r;
    memset(fixed, 0, sizeof fixed);
    hs_avb_put_be64(fixed, d->image_size);
    memcpy(fixed + 8, d->hash_algorithm, strlen(d->hash_algorithm));
    hs_avb_put_be32(fixed + 40, (uint32_t)d->partition_name.len);
    hs_avb_put_be32(fixed + 44, (uint32_t)d->salt.len);
    hs_avb_put_be32(fixed + 48, (uint32_t)d->digest.len);
    hs_avb_put_be32(fixed + 52, d->flags);
    size_t body = sizeof fixed + d->partition_name.len + d->salt.len + d->digest.len;
    if ((r = put_header(out, HS_AVB_DESC_HASH, body, e)) != HS_OK ||
        (r = hs_avb_buf_append(out, fixed, sizeof fixed, e)) != HS_OK)
        return r;
    return put_variable(out, d, e);
}

hs_result hs_avb_desc_hashtree(hs_avb_buf *out, const hs_avb_desc *d, hs_error *e)
{
    uint8_t fixed[164];
    hs_result r = check_variable(d, e);
    if (r != HS_OK)
        return r;
    memset(fixed, 0, sizeof fixed);
    hs_avb_put_be32(fixed, d->dm_verity_version);
    hs_avb_put_be64(fixed + 4, d->image_size);
    hs_avb_put_be64(fixed + 12, d->tree_offset);
    hs_avb_put_be64(fixed + 20, d->tree_size);
    hs_avb_put_be32(fixed + 28, d->data_block_size);
    hs_avb_put_be32(fixed + 32, d->hash_block_size);
    hs_avb_put_be32(fixed + 36, d->fec_num_roots);
    hs_avb_put_be64(fixed + 40, d->fec_offset);
    hs_avb_put_be64(fixed + 48, d->fec_size);
    memcpy(fixed + 56, d->hash_algorithm, strlen(d->hash_algorithm));
    hs_avb_put_be32(fixed + 88, (uint32_t)d->partition_name.len);
    hs_avb_put_be32(fixed + 92, (uint32_t)d->salt.len);
    hs_avb_put_be32(fixed + 96, (uint32_t)d->digest.len);
    hs_avb_put_be32(fixed + 100, d->flags);
    size_t body = sizeof fixed + d->partition_name.len + d->salt.len + d->digest.len;
    if ((r = put_header(out, HS_AVB_DESC_HASHTREE, body, e)) != HS_OK ||
        (r = hs_avb_buf_append(out, fixed, sizeof fixed, e)) != HS_OK)
        return r;
    return put_variable(out, d, e);
}

hs_result hs_avb_desc_copy(hs_avb_buf *out, const hs_avb_desc *d, hs_error *e)
{
    hs_result r = hs_avb_buf_append(out, d->raw.p, d->used_len, e);
    if (r != HS_OK)
        return r;
    return hs_avb_buf_zeros(out, d->raw.len - d->used_len, e);
}
