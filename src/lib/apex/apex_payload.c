/* Reading an APEX payload's AVB metadata straight from the container's
 * mapping (see apex.h). */
#include "apex/apex.h"

#include <stdlib.h>
#include <string.h>

#include "util/encoding.h"

#define APEX_KEY_PROP "apex.key"
/* avbtool info_image prints longer property values as "(N bytes)". */
#define MAX_PRINTED_VALUE 255

hs_result hs_apex_payload_vbmeta(const hs_zip *z, const hs_zip_entry **payload,
                                 hs_avb_vbmeta *vbmeta, hs_error *e)
{
    memset(vbmeta, 0, sizeof *vbmeta);
    long i = hs_zip_find(z, HS_APEX_PAYLOAD);
    if (i < 0 && hs_zip_find(z, "original_apex") >= 0)
        return hs_fail(e, HS_E_USAGE, "%s: compressed APEX (original_apex inside) is not "
                       "supported", z->path);
    if (i < 0)
        return hs_fail(e, HS_E_FORMAT, "%s: not an APEX: no %s entry", z->path, HS_APEX_PAYLOAD);
    const hs_zip_entry *ent = &z->entries[i];
    if (ent->method != HS_ZIP_METHOD_STORED || ent->compressed_size != ent->uncompressed_size)
        return hs_fail(e, HS_E_FORMAT, "%s: %s is compressed (APEX payloads are stored)", z->path,
                       HS_APEX_PAYLOAD);
    const uint8_t *data = z->map + ent->data_offset;
    uint64_t size = ent->uncompressed_size;
    bool found = false;
    hs_avb_footer f;
    hs_result r = size >= HS_AVB_FOOTER_SIZE
                      ? hs_avb_footer_parse(data + size - HS_AVB_FOOTER_SIZE, HS_AVB_FOOTER_SIZE,
                                            size, HS_APEX_PAYLOAD, &found, &f, e)
                      : HS_OK;
    if (r != HS_OK)
        return hs_error_prefix(e, "%s: ", z->path);
    if (!found)
        return hs_fail(e, HS_E_FORMAT, "%s: %s has no AVB footer", z->path, HS_APEX_PAYLOAD);
    /* hs_avb_footer_parse checked that the vbmeta lies inside the image. */
    r = hs_avb_vbmeta_parse(data + f.vbmeta_offset, (size_t)f.vbmeta_size, HS_APEX_PAYLOAD,
                            vbmeta, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "%s: ", z->path);
    *payload = ent;
    return HS_OK;
}

/* A value releasetools reads back unchanged from avbtool's repr(): printable
 * ASCII without quotes or backslashes, short enough to be printed. */
static bool plain_value(const hs_avb_bytes *v)
{
    if (v->len == 0 || v->len > MAX_PRINTED_VALUE)
        return false;
    for (size_t i = 0; i < v->len; i++)
        if (v->p[i] < 0x20 || v->p[i] > 0x7e || v->p[i] == '\'' || v->p[i] == '"' ||
            v->p[i] == '\\')
            return false;
    return true;
}

hs_result hs_apex_payload_info_get(const hs_avb_vbmeta *v, const char *what,
                                   hs_apex_payload_info *info, hs_error *e)
{
    memset(info, 0, sizeof *info);
    if (v->alg == NULL || v->alg->hash_len == 0)
        return hs_fail(e, HS_E_FORMAT, "%s: the payload is not signed (algorithm NONE)", what);
    info->alg = v->alg;
    const hs_avb_desc *hashdesc = NULL, *prop = NULL;
    /* The last of each wins, as in ParseApexPayloadInfo's dict. */
    for (size_t i = 0; i < v->n_descs; i++) {
        const hs_avb_desc *d = &v->descs[i];
        if (d->tag == HS_AVB_DESC_HASH || d->tag == HS_AVB_DESC_HASHTREE)
            hashdesc = d;
        else if (d->tag == HS_AVB_DESC_PROPERTY && d->key.len == strlen(APEX_KEY_PROP) &&
                 memcmp(d->key.p, APEX_KEY_PROP, d->key.len) == 0)
            prop = d;
    }
    if (hashdesc == NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: no hash or hashtree descriptor (no salt)", what);
    if (prop == NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: no %s property", what, APEX_KEY_PROP);
    if (!plain_value(&prop->value))
        return hs_fail(e, HS_E_FORMAT, "%s: unsupported %s value (want 1 to %d printable "
                       "characters without quotes)", what, APEX_KEY_PROP, MAX_PRINTED_VALUE);
    snprintf(info->hash_algorithm, sizeof info->hash_algorithm, "%s", hashdesc->hash_algorithm);
    info->salt_hex = malloc(2 * hashdesc->salt.len + 1);
    info->apex_key = strndup((const char *)prop->value.p, prop->value.len);
    if (info->salt_hex == NULL || info->apex_key == NULL) {
        hs_apex_payload_info_free(info);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    hs_hex_encode(hashdesc->salt.p, hashdesc->salt.len, info->salt_hex);
    return HS_OK;
}

void hs_apex_payload_info_free(hs_apex_payload_info *info)
{
    free(info->salt_hex);
    free(info->apex_key);
    memset(info, 0, sizeof *info);
}
