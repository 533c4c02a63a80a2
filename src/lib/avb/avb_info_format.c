/* Renders a parsed image the way `avbtool info_image` prints it, so the
 * CLI output can be compared with AOSP's tool line for line. */
#include "avb/avb_info.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "avb/avb_bytes.h"

typedef struct out_buf {
    hs_avb_buf b;
    bool failed;
} out_buf;

static void HS_PRINTF(2, 3) put(out_buf *o, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    /* Every caller formats bounded fields: one that does not fit is a
     * failure, never a silently shortened line. */
    bool fits = n >= 0 && (size_t)n < sizeof tmp;
    if (!fits || (!o->failed && hs_avb_buf_append(&o->b, tmp, (size_t)n, NULL) != HS_OK))
        o->failed = true;
}

static void put_raw(out_buf *o, const void *p, size_t len)
{
    if (!o->failed && hs_avb_buf_append(&o->b, p, len, NULL) != HS_OK)
        o->failed = true;
}

static void put_hex(out_buf *o, hs_avb_bytes b)
{
    for (size_t i = 0; i < b.len; i++)
        put(o, "%02x", b.p[i]);
}

static void put_sha1(out_buf *o, hs_avb_bytes b)
{
    uint8_t d[SHA_DIGEST_LENGTH];
    hs_avb_bytes db = {d, sizeof d};
    SHA1(b.p, b.len, d);
    put_hex(o, db);
}

/* Python's repr() of a bytes value without the leading b, as avbtool
 * prints property values. */
static void put_py_bytes_repr(out_buf *o, hs_avb_bytes b)
{
    bool has_single = memchr(b.p, '\'', b.len) != NULL,
         has_double = memchr(b.p, '"', b.len) != NULL;
    char quote = has_single && !has_double ? '"' : '\'';
    put_raw(o, &quote, 1);
    for (size_t i = 0; i < b.len; i++) {
        uint8_t c = b.p[i];
        if (c == (uint8_t)quote || c == '\\')
            put(o, "\\%c", c);
        else if (c == '\t')
            put(o, "\\t");
        else if (c == '\n')
            put(o, "\\n");
        else if (c == '\r')
            put(o, "\\r");
        else if (c < 0x20 || c >= 0x7f)
            put(o, "\\x%02x", c);
        else
            put_raw(o, &c, 1);
    }
    put_raw(o, &quote, 1);
}

static void put_str(out_buf *o, hs_avb_bytes b)
{
    put_raw(o, b.p, b.len);
}

static void format_hashtree(out_buf *o, const hs_avb_desc *d)
{
    put(o, "    Hashtree descriptor:\n");
    put(o, "      Version of dm-verity:  %u\n", d->dm_verity_version);
    put(o, "      Image Size:            %llu bytes\n", (unsigned long long)d->image_size);
    put(o, "      Tree Offset:           %llu\n", (unsigned long long)d->tree_offset);
    put(o, "      Tree Size:             %llu bytes\n", (unsigned long long)d->tree_size);
    put(o, "      Data Block Size:       %u bytes\n", d->data_block_size);
    put(o, "      Hash Block Size:       %u bytes\n", d->hash_block_size);
    put(o, "      FEC num roots:         %u\n", d->fec_num_roots);
    put(o, "      FEC offset:            %llu\n", (unsigned long long)d->fec_offset);
    put(o, "      FEC size:              %llu bytes\n", (unsigned long long)d->fec_size);
    put(o, "      Hash Algorithm:        %s\n", d->hash_algorithm);
    put(o, "      Partition Name:        ");
    put_str(o, d->partition_name);
    put(o, "\n      Salt:                  ");
    put_hex(o, d->salt);
    put(o, "\n      Root Digest:           ");
    put_hex(o, d->digest);
    put(o, "\n      Flags:                 %u\n", d->flags);
}

static void format_hash(out_buf *o, const hs_avb_desc *d)
{
    put(o, "    Hash descriptor:\n");
    put(o, "      Image Size:            %llu bytes\n", (unsigned long long)d->image_size);
    put(o, "      Hash Algorithm:        %s\n", d->hash_algorithm);
    put(o, "      Partition Name:        ");
    put_str(o, d->partition_name);
    put(o, "\n      Salt:                  ");
    put_hex(o, d->salt);
    put(o, "\n      Digest:                ");
    put_hex(o, d->digest);
    put(o, "\n      Flags:                 %u\n", d->flags);
}

static void format_descriptor(out_buf *o, const hs_avb_desc *d)
{
    switch (d->tag) {
    case HS_AVB_DESC_PROPERTY:
        put(o, "    Prop: ");
        put_str(o, d->key);
        put(o, " -> ");
        if (d->value.len < 256)
            put_py_bytes_repr(o, d->value);
        else
            put(o, "(%zu bytes)", d->value.len);
        put(o, "\n");
        break;
    case HS_AVB_DESC_HASHTREE: format_hashtree(o, d); break;
    case HS_AVB_DESC_HASH: format_hash(o, d); break;
    case HS_AVB_DESC_KERNEL_CMDLINE:
        put(o, "    Kernel Cmdline descriptor:\n");
        put(o, "      Flags:                 %u\n", d->flags);
        put(o, "      Kernel Cmdline:        '");
        put_str(o, d->cmdline);
        put(o, "'\n");
        break;
    case HS_AVB_DESC_CHAIN_PARTITION:
        put(o, "    Chain Partition descriptor:\n");
        put(o, "      Partition Name:          ");
        put_str(o, d->partition_name);
        put(o, "\n      Rollback Index Location: %u\n", d->rollback_index_location);
        put(o, "      Public key (sha1):       ");
        put_sha1(o, d->public_key);
        put(o, "\n      Flags:                   %u\n", d->flags);
        break;
    default:
        put(o, "    Unknown descriptor:\n");
        put(o, "      Tag:  %llu\n", (unsigned long long)d->tag);
        put(o, "      Data: %zu bytes\n", d->raw.len - 16);
        break;
    }
}

hs_result hs_avb_info_format(const hs_avb_image *img, char **out, hs_error *e)
{
    out_buf o;
    memset(&o, 0, sizeof o);
    const hs_avb_vbmeta *v = &img->vbmeta;
    *out = NULL;
    if (img->has_footer) {
        put(&o, "Footer version:           %u.%u\n", img->footer.version_major,
            img->footer.version_minor);
        put(&o, "Image size:               %llu bytes\n", (unsigned long long)img->image_size);
        put(&o, "Original image size:      %llu bytes\n",
            (unsigned long long)img->footer.original_image_size);
        put(&o, "VBMeta offset:            %llu\n", (unsigned long long)img->footer.vbmeta_offset);
        put(&o, "VBMeta size:              %llu bytes\n",
            (unsigned long long)img->footer.vbmeta_size);
        put(&o, "--\n");
    }
    put(&o, "Minimum libavb version:   %u.%u\n", v->required_major, v->required_minor);
    put(&o, "Header Block:             %d bytes\n", HS_AVB_HEADER_SIZE);
    put(&o, "Authentication Block:     %llu bytes\n", (unsigned long long)v->auth_size);
    put(&o, "Auxiliary Block:          %llu bytes\n", (unsigned long long)v->aux_size);
    if (v->public_key.len > 0) {
        put(&o, "Public key (sha1):        ");
        put_sha1(&o, v->public_key);
        put(&o, "\n");
    }
    put(&o, "Algorithm:                %s\n", v->alg->name);
    put(&o, "Rollback Index:           %llu\n", (unsigned long long)v->rollback_index);
    put(&o, "Flags:                    %u\n", v->flags);
    put(&o, "Rollback Index Location:  %u\n", v->rollback_index_location);
    put(&o, "Release String:           '%s'\n", v->release_string);
    put(&o, "Descriptors:\n");
    for (size_t i = 0; i < v->n_descs; i++)
        format_descriptor(&o, &v->descs[i]);
    if (v->n_descs == 0)
        put(&o, "    (none)\n");
    put_raw(&o, "", 1);
    if (o.failed) {
        hs_avb_buf_free(&o.b);
        return hs_fail(e, HS_E_NOMEM, "%s: out of memory formatting image information", img->path);
    }
    *out = (char *)o.b.data;
    return HS_OK;
}
