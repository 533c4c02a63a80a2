#include "avb/avb_vbmeta.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "avb/avb_alg.h"
#include "avb/avb_desc.h"
#include "avb/avb_info.h"
#include "avb/avb_pubkey.h"
#include "avb/avb_verify.h"
#include "util/file.h"

#define AVB_MAX_PROP_FILE (16u * 1024 * 1024)
#define AVB_MAX_PKMD_FILE (1024u * 1024)

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool parse_u32(const char *s, size_t len, uint32_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 10)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* One "NAME:LOCATION:PUBKEY_PATH" spec; used[] holds locations taken so far. */
static hs_result add_chain(hs_avb_buf *out, const char *spec, uint32_t *used, size_t *n_used,
                           hs_error *e)
{
    const char *c1 = strchr(spec, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    uint32_t loc;
    if (c1 == NULL || c2 == NULL || strchr(c2 + 1, ':') != NULL || c1 == spec || c2[1] == '\0')
        return hs_fail(e, HS_E_USAGE,
                       "malformed chain partition \"%s\" (want NAME:LOCATION:PUBKEY_FILE)", spec);
    if (!parse_u32(c1 + 1, (size_t)(c2 - c1 - 1), &loc))
        return hs_fail(e, HS_E_USAGE,
                       "chain partition \"%s\": rollback index location is not a number", spec);
    for (size_t i = 0; i < *n_used; i++)
        if (used[i] == loc)
            return hs_fail(e, HS_E_USAGE,
                           "chain partition \"%s\": rollback index location %u is already in use",
                           spec, loc);
    if (loc < 1)
        return hs_fail(e, HS_E_USAGE,
                       "chain partition \"%s\": rollback index location must be 1 or larger", spec);
    used[(*n_used)++] = loc;
    size_t nlen = (size_t)(c1 - spec);
    char where[64 + 32];
    snprintf(where, sizeof where, "chain partition \"%.64s\"", spec);
    hs_result r = hs_avb_partition_name_check((const uint8_t *)spec, nlen, false, where, e);
    if (r != HS_OK)
        return r;
    char *name = strndup(spec, nlen);
    if (name == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    uint8_t *key;
    size_t key_len;
    r = hs_avb_pubkey_read(c2 + 1, &key, &key_len, e);
    if (r == HS_OK) {
        r = hs_avb_desc_chain(out, name, loc, key, key_len, 0, e);
        free(key);
    } else {
        hs_error_prefix(e, "chain partition %s: ", name);
    }
    free(name);
    return r;
}

static hs_result add_chains(const hs_avb_vbmeta_opts *o, hs_avb_buf *out, hs_error *e)
{
    size_t n = o->n_chain_partitions;
    if (n == 0)
        return HS_OK;
    /* avbtool sorts the specs as strings before encoding them. */
    const char **sorted = malloc(n * sizeof *sorted);
    uint32_t *used = malloc((n + 1) * sizeof *used);
    hs_result r = HS_OK;
    if (sorted == NULL || used == NULL) {
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
        goto out;
    }
    memcpy(sorted, o->chain_partitions, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_str);
    size_t n_used = 1;
    used[0] = o->rollback_index_location;
    for (size_t i = 0; i < n && r == HS_OK; i++)
        r = add_chain(out, sorted[i], used, &n_used, e);
out:
    free(sorted);
    free(used);
    return r;
}

static hs_result add_props(const hs_avb_vbmeta_opts *o, hs_avb_buf *out, hs_error *e)
{
    hs_result r = HS_OK;
    for (size_t i = 0; i < o->n_props && r == HS_OK; i++) {
        const char *p = o->props[i], *colon = strchr(p, ':');
        if (colon == NULL)
            return hs_fail(e, HS_E_USAGE, "malformed property \"%s\" (want KEY:VALUE)", p);
        r = hs_avb_desc_property(out, p, (size_t)(colon - p), (const uint8_t *)colon + 1,
                                 strlen(colon + 1), e);
    }
    for (size_t i = 0; i < o->n_props_from_file && r == HS_OK; i++) {
        const char *p = o->props_from_file[i], *colon = strchr(p, ':');
        uint8_t *value;
        size_t value_len;
        if (colon == NULL)
            return hs_fail(e, HS_E_USAGE, "malformed property \"%s\" (want KEY:PATH)", p);
        r = hs_read_file(colon + 1, AVB_MAX_PROP_FILE, &value, &value_len, e);
        if (r != HS_OK)
            return r;
        r = hs_avb_desc_property(out, p, (size_t)(colon - p), value, value_len, e);
        free(value);
    }
    for (size_t i = 0; i < o->n_kernel_cmdlines && r == HS_OK; i++)
        r = hs_avb_desc_kernel_cmdline(out, 0, o->kernel_cmdlines[i], e);
    return r;
}

/* Descriptors copied from other images that name a partition are keyed by
 * type and partition: the last one seen wins, and they are emitted sorted
 * by key after every other copied descriptor (avbtool bug 76386656). */
typedef struct keyed_desc {
    char *key;
    hs_avb_buf enc;
} keyed_desc;

static int cmp_keyed(const void *a, const void *b)
{
    return strcmp(((const keyed_desc *)a)->key, ((const keyed_desc *)b)->key);
}

static const char *class_name(uint64_t tag)
{
    switch (tag) {
    case HS_AVB_DESC_HASHTREE: return "AvbHashtreeDescriptor";
    case HS_AVB_DESC_HASH: return "AvbHashDescriptor";
    case HS_AVB_DESC_CHAIN_PARTITION: return "AvbChainPartitionDescriptor";
    default: return NULL;
    }
}

static hs_result keyed_put(keyed_desc **arr, size_t *n, const hs_avb_desc *d, hs_error *e)
{
    const char *cls = class_name(d->tag);
    size_t klen = strlen(cls) + 1 + d->partition_name.len;
    char *key = malloc(klen + 1);
    if (key == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    memcpy(key, cls, strlen(cls));
    key[strlen(cls)] = '_';
    memcpy(key + strlen(cls) + 1, d->partition_name.p, d->partition_name.len);
    key[klen] = '\0';
    keyed_desc *slot = NULL;
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*arr)[i].key, key) == 0)
            slot = &(*arr)[i];
    if (slot == NULL) {
        keyed_desc *na = realloc(*arr, (*n + 1) * sizeof *na);
        if (na == NULL) {
            free(key);
            return hs_fail(e, HS_E_NOMEM, "out of memory");
        }
        *arr = na;
        slot = &na[(*n)++];
        memset(slot, 0, sizeof *slot);
        slot->key = key;
    } else {
        free(key);
        slot->enc.len = 0;
    }
    return hs_avb_desc_copy(&slot->enc, d, e);
}

/* Descriptors copied from another image carry their partition names
 * into ours, where `avb verify` opens files by them: the same rule as for
 * names given on the command line. */
static hs_result named_desc_ok(const hs_avb_desc *d, const char *image, hs_error *e)
{
    if (d->tag != HS_AVB_DESC_HASH && d->tag != HS_AVB_DESC_HASHTREE &&
        d->tag != HS_AVB_DESC_CHAIN_PARTITION)
        return HS_OK;
    return hs_avb_partition_name_check(d->partition_name.p, d->partition_name.len,
                                       d->tag != HS_AVB_DESC_CHAIN_PARTITION, image, e);
}

static hs_result add_included(const hs_avb_vbmeta_opts *o, hs_avb_buf *out, uint32_t *minor,
                              hs_error *e)
{
    keyed_desc *arr = NULL;
    size_t n = 0;
    hs_result r = HS_OK;
    for (size_t i = 0; i < o->n_include_descriptors_from_image && r == HS_OK; i++) {
        hs_avb_image img;
        r = hs_avb_image_load(o->include_descriptors_from_image[i], &img, e);
        if (r != HS_OK)
            break;
        if (img.vbmeta.required_minor > *minor)
            *minor = img.vbmeta.required_minor;
        for (size_t j = 0; j < img.vbmeta.n_descs && r == HS_OK; j++) {
            const hs_avb_desc *d = &img.vbmeta.descs[j];
            r = named_desc_ok(d, img.path, e);
            if (r == HS_OK)
                r = class_name(d->tag) ? keyed_put(&arr, &n, d, e) : hs_avb_desc_copy(out, d, e);
        }
        hs_avb_image_free(&img);
    }
    if (r == HS_OK && n > 0)
        qsort(arr, n, sizeof *arr, cmp_keyed);
    for (size_t i = 0; i < n; i++) {
        if (r == HS_OK)
            r = hs_avb_buf_append(out, arr[i].enc.data, arr[i].enc.len, e);
        free(arr[i].key);
        hs_avb_buf_free(&arr[i].enc);
    }
    free(arr);
    return r;
}

static hs_result release_string(const hs_avb_vbmeta_opts *o,
                                char out[HS_AVB_RELEASE_STRING_MAX + 1], hs_error *e)
{
    const char *base = o->release_string ? o->release_string : HS_AVB_RELEASE_STRING;
    const char *extra = o->append_to_release_string;
    size_t len = strlen(base) + (extra ? 1 + strlen(extra) : 0);
    if (len > HS_AVB_RELEASE_STRING_MAX)
        return hs_fail(e, HS_E_USAGE, "release string of %zu bytes exceeds the %d AVB allows", len,
                       HS_AVB_RELEASE_STRING_MAX);
    snprintf(out, HS_AVB_RELEASE_STRING_MAX + 1, "%s%s%s", base, extra ? " " : "",
             extra ? extra : "");
    return HS_OK;
}

typedef struct layout {
    uint64_t desc_len, key_len, pkmd_len, aux_size, auth_size;
} layout;

static void encode_header(uint8_t h[HS_AVB_HEADER_SIZE], const hs_avb_vbmeta_opts *o,
                          const hs_avb_alg *alg, const layout *l, uint32_t minor, const char *rel)
{
    memset(h, 0, HS_AVB_HEADER_SIZE);
    memcpy(h, "AVB0", 4);
    hs_avb_put_be32(h + 4, HS_AVB_VERSION_MAJOR);
    hs_avb_put_be32(h + 8, minor);
    hs_avb_put_be64(h + 12, l->auth_size);
    hs_avb_put_be64(h + 20, l->aux_size);
    hs_avb_put_be32(h + 28, alg->type);
    hs_avb_put_be64(h + 32, 0);              /* hash first in the auth block */
    hs_avb_put_be64(h + 40, alg->hash_len);
    hs_avb_put_be64(h + 48, alg->hash_len);  /* signature right after it */
    hs_avb_put_be64(h + 56, alg->sig_len);
    hs_avb_put_be64(h + 64, l->desc_len);    /* aux: descriptors, key, metadata */
    hs_avb_put_be64(h + 72, l->key_len);
    hs_avb_put_be64(h + 80, l->desc_len + l->key_len);
    hs_avb_put_be64(h + 88, l->pkmd_len);
    hs_avb_put_be64(h + 96, 0);
    hs_avb_put_be64(h + 104, l->desc_len);
    hs_avb_put_be64(h + 112, o->rollback_index);
    hs_avb_put_be32(h + 120, o->flags);
    hs_avb_put_be32(h + 124, o->rollback_index_location);
    memcpy(h + 128, rel, strlen(rel));
}

/* Hashes header ‖ aux, asks the signer once, checks the signature against
 * the public key, and fills auth (hash ‖ signature). */
static hs_result sign_vbmeta(const hs_avb_vbmeta_opts *o, const hs_avb_alg *alg,
                             const uint8_t *tbs, size_t tbs_len, const hs_sign_fn *signer,
                             const char *artifact, uint8_t *auth, hs_avb_report *rep, hs_error *e)
{
    uint8_t digest[HS_MAX_DIGEST_LEN];
    hs_sign_request req;
    memset(&req, 0, sizeof req);
    req.key_name = o->key_name;
    req.alg = alg->sig_alg;
    req.operation = "avb-vbmeta";
    req.artifact = artifact;
    hs_result r = hs_sign_request_hash(&req, digest, tbs, tbs_len, e);
    if (r != HS_OK)
        return r;
    memcpy(rep->vbmeta_digest, digest, req.digest_len);
    rep->vbmeta_digest_len = req.digest_len;
    memcpy(rep->tbs_sha256, req.tbs_sha256, 32);
    if (signer == NULL || signer->sign == NULL)
        return hs_fail(e, HS_E_USAGE, "algorithm %s needs a signer", alg->name);
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    r = signer->sign(signer->ctx, &req, &sig, &sig_len, e);
    if (r != HS_OK)
        return r;
    if (sig_len != alg->sig_len)
        r = hs_fail(e, HS_E_CRYPTO, "signer returned %zu signature bytes, %s needs %zu", sig_len,
                    alg->name, alg->sig_len);
    else
        r = hs_avb_rsa_verify(o->public_key, alg, digest, sig, sig_len, "new vbmeta signature", e);
    if (r == HS_OK) {
        memcpy(auth, digest, alg->hash_len);
        memcpy(auth + alg->hash_len, sig, sig_len);
        rep->signed_vbmeta = true;
    }
    free(sig);
    return r;
}

static hs_result read_pkmd(const hs_avb_vbmeta_opts *o, uint8_t **pkmd, size_t *len, hs_error *e)
{
    *pkmd = NULL;
    *len = 0;
    if (o->public_key_metadata_path == NULL)
        return HS_OK;
    return hs_read_file(o->public_key_metadata_path, AVB_MAX_PKMD_FILE, pkmd, len, e);
}

static hs_result collect_descriptors(const hs_avb_vbmeta_opts *o, const uint8_t *first,
                                     size_t first_len, uint32_t *minor, hs_avb_buf *descs,
                                     hs_error *e)
{
    hs_result r;
    if ((r = hs_avb_buf_append(descs, first, first_len, e)) != HS_OK ||
        (r = add_chains(o, descs, e)) != HS_OK || (r = add_props(o, descs, e)) != HS_OK)
        return r;
    return add_included(o, descs, minor, e);
}

static hs_result assemble(const hs_avb_vbmeta_opts *o, const hs_avb_alg *alg,
                          const hs_avb_buf *descs, const uint8_t *key, size_t key_len,
                          const uint8_t *pkmd, size_t pkmd_len, uint32_t minor, const char *rel,
                          const hs_sign_fn *signer, const char *artifact, hs_avb_buf *out,
                          hs_avb_report *rep, hs_error *e)
{
    layout l = {descs->len, key_len, pkmd_len, 0, 0};
    if (!hs_avb_round_up(l.desc_len + l.key_len + l.pkmd_len, 64, &l.aux_size) ||
        !hs_avb_round_up(alg->hash_len + alg->sig_len, 64, &l.auth_size))
        return hs_fail(e, HS_E_USAGE, "vbmeta too large");
    hs_result r;
    size_t total = HS_AVB_HEADER_SIZE + (size_t)l.auth_size + (size_t)l.aux_size;
    if ((r = hs_avb_buf_zeros(out, total, e)) != HS_OK)
        return r;
    uint8_t *h = out->data, *auth = h + HS_AVB_HEADER_SIZE, *aux = auth + l.auth_size;
    encode_header(h, o, alg, &l, minor, rel);
    if (descs->len)
        memcpy(aux, descs->data, descs->len);
    if (key_len)
        memcpy(aux + descs->len, key, key_len);
    if (pkmd_len)
        memcpy(aux + descs->len + key_len, pkmd, pkmd_len);
    rep->vbmeta_size = total;
    rep->required_minor = minor;
    if (alg->hash_len == 0)
        return HS_OK;
    /* The signed bytes are header ‖ aux, which are not adjacent in the blob. */
    uint8_t *tbs = malloc(HS_AVB_HEADER_SIZE + (size_t)l.aux_size);
    if (tbs == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    memcpy(tbs, h, HS_AVB_HEADER_SIZE);
    memcpy(tbs + HS_AVB_HEADER_SIZE, aux, (size_t)l.aux_size);
    r = sign_vbmeta(o, alg, tbs, HS_AVB_HEADER_SIZE + (size_t)l.aux_size, signer, artifact, auth,
                    rep, e);
    free(tbs);
    return r;
}

hs_result hs_avb_vbmeta_build(const hs_avb_vbmeta_opts *o, const uint8_t *first_descs,
                              size_t first_len, uint32_t min_required_minor,
                              const hs_sign_fn *signer, const char *artifact, hs_avb_buf *out,
                              hs_avb_report *rep, hs_error *e)
{
    const char *alg_name = o->algorithm ? o->algorithm : "NONE";
    const hs_avb_alg *alg = hs_avb_alg_by_name(alg_name);
    if (alg == NULL)
        return hs_fail(e, HS_E_USAGE, "unknown AVB algorithm \"%s\"", alg_name);
    rep->algorithm = alg->name;
    char rel[HS_AVB_RELEASE_STRING_MAX + 1];
    hs_result r = release_string(o, rel, e);
    if (r != HS_OK)
        return r;
    uint32_t minor = min_required_minor;
    if (o->rollback_index_location > 0 && minor < 2)
        minor = 2;
    uint8_t *key = NULL, *pkmd = NULL;
    size_t key_len = 0, pkmd_len = 0;
    hs_avb_buf descs = {0};
    if (alg->pubkey_len > 0) {
        if (o->public_key == NULL)
            return hs_fail(e, HS_E_USAGE, "algorithm %s needs the signing key's public key",
                           alg->name);
        if ((r = hs_avb_pubkey_encode(o->public_key, &key, &key_len, e)) != HS_OK)
            return r;
        if (key_len != alg->pubkey_len) {
            r = hs_fail(
                e, HS_E_USAGE, "key %s is the wrong size for %s (%zu-byte AVB key, needs %zu)",
                o->key_name ? o->key_name : "(unnamed)", alg->name, key_len, alg->pubkey_len);
            goto out;
        }
    }
    if ((r = collect_descriptors(o, first_descs, first_len, &minor, &descs, e)) != HS_OK ||
        (r = read_pkmd(o, &pkmd, &pkmd_len, e)) != HS_OK)
        goto out;
    r = assemble(o, alg, &descs, key, key_len, pkmd, pkmd_len, minor, rel, signer, artifact, out,
                 rep, e);
out:
    free(key);
    free(pkmd);
    hs_avb_buf_free(&descs);
    return r;
}

hs_result hs_avb_make_vbmeta_image(const char *output_path, const hs_avb_vbmeta_opts *opts,
                                   uint64_t padding_size, const hs_sign_fn *signer,
                                   hs_avb_report *report, hs_error *e)
{
    hs_avb_buf blob = {0};
    memset(report, 0, sizeof *report);
    hs_result r = hs_avb_vbmeta_build(opts, NULL, 0, 0, signer, output_path, &blob, report, e);
    if (r == HS_OK && padding_size > 0)
        r = hs_avb_buf_pad(&blob, (size_t)padding_size, e);
    if (r == HS_OK)
        r = hs_write_file_atomic(output_path, blob.data, blob.len, 0644, false, e);
    hs_avb_buf_free(&blob);
    return r;
}
