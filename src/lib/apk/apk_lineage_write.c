/* SigningCertificateLineage: create, extend (signatures through
 * hs_sign_fn), read back with every link checked, encode. The layout is
 * in apk_lineage_write.h. */
#include "apk/apk_lineage_write.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "apk/apk_signing_block.h"
#include "util/file.h"

/* A lineage is a few certificates; anything near this is not one. */
#define LINEAGE_MAX_FILE (1u << 20)

static uint8_t *dup_bytes(const uint8_t *p, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);
    if (d != NULL && len > 0)
        memcpy(d, p, len);
    return d;
}

void hs_lineage_free(hs_lineage *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++) {
        free(l->nodes[i].cert_der);
        free(l->nodes[i].sig);
    }
    free(l->nodes);
    l->nodes = NULL;
    l->count = 0;
}

/* Takes ownership of cert and sig (freed on failure too). */
static hs_result push_node(hs_lineage *l, hs_lineage_node n, hs_error *e)
{
    hs_lineage_node *grown = NULL;
    if (n.cert_der != NULL && n.sig != NULL && l->count < 1000)
        grown = realloc(l->nodes, (l->count + 1) * sizeof *grown);
    if (grown == NULL) {
        free(n.cert_der);
        free(n.sig);
        return hs_fail(e, HS_E_NOMEM, "signing certificate lineage: out of memory");
    }
    l->nodes = grown;
    l->nodes[l->count++] = n;
    return HS_OK;
}

hs_result hs_lineage_init(hs_lineage *l, const uint8_t *cert_der, size_t cert_der_len,
                          uint32_t flags, hs_error *e)
{
    memset(l, 0, sizeof *l);
    hs_lineage_node n = {.cert_der = dup_bytes(cert_der, cert_der_len),
                         .cert_der_len = cert_der_len, .flags = flags, .sig = dup_bytes(NULL, 0)};
    return push_node(l, n, e);
}

long hs_lineage_find(const hs_lineage *l, const uint8_t *cert_der, size_t cert_der_len)
{
    for (size_t i = 0; i < l->count; i++)
        if (l->nodes[i].cert_der_len == cert_der_len &&
            memcmp(l->nodes[i].cert_der, cert_der, cert_der_len) == 0)
            return (long)i;
    return -1;
}

/* What the parent signs for a node: lp(certificate), u32 algorithm. */
static void put_signed_data(hs_apk_buf *b, const uint8_t *cert, size_t cert_len, uint32_t alg)
{
    hs_apk_buf_lp(b, cert, cert_len);
    hs_apk_buf_u32(b, alg);
}

static hs_result sign_link(const hs_apk_key *parent, const hs_apk_sig_algorithm *alg,
                           const hs_apk_buf *tbs, hs_sign_fn sign, const char *artifact,
                           uint8_t **sig, size_t *sig_len, hs_error *e)
{
    uint8_t digest[HS_MAX_DIGEST_LEN];
    hs_sign_request req = {.key_name = parent->key_name, .alg = alg->alg,
                           .operation = "apk-lineage", .artifact = artifact};
    hs_result r = hs_sign_request_hash(&req, digest, tbs->data, tbs->len, e);
    if (r == HS_OK)
        r = sign.sign(sign.ctx, &req, sig, sig_len, e);
    if (r == HS_OK && sign.sync != NULL)
        r = sign.sync(sign.ctx, e);
    return r;
}

hs_result hs_lineage_extend(hs_lineage *l, const hs_apk_key *parent, const hs_apk_key *child,
                            uint32_t child_flags, hs_sign_fn sign, const char *artifact,
                            hs_error *e)
{
    if (l->count == 0)
        return hs_fail(e, HS_E_USAGE, "signing certificate lineage: empty");
    hs_lineage_node *last = &l->nodes[l->count - 1];
    if (last->cert_der_len != parent->cert_der_len ||
        memcmp(last->cert_der, parent->cert_der, parent->cert_der_len) != 0)
        return hs_fail(e, HS_E_USAGE,
                       "key %s: its certificate is not the newest one in the lineage",
                       parent->key_name);
    if (hs_lineage_find(l, child->cert_der, child->cert_der_len) >= 0)
        return hs_fail(e, HS_E_USAGE, "key %s: its certificate is already in the lineage",
                       child->key_name);
    hs_apk_sig_algorithm alg;
    hs_result r = hs_apk_choose_algorithm(parent->public_key, parent->key_name, &alg, e);
    if (r != HS_OK)
        return r;
    hs_apk_buf tbs = {0};
    put_signed_data(&tbs, child->cert_der, child->cert_der_len, alg.id);
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    r = hs_apk_buf_check(&tbs, "lineage link", e);
    if (r == HS_OK)
        r = sign_link(parent, &alg, &tbs, sign, artifact, &sig, &sig_len, e);
    hs_apk_buf_free(&tbs);
    if (r != HS_OK)
        return r;
    hs_lineage_node n = {.cert_der = dup_bytes(child->cert_der, child->cert_der_len),
                         .cert_der_len = child->cert_der_len, .parent_alg = alg.id,
                         .flags = child_flags, .sig = dup_bytes(sig, sig_len), .sig_len = sig_len};
    free(sig);
    r = push_node(l, n, e);
    if (r == HS_OK)
        l->nodes[l->count - 2].sig_alg = alg.id;
    return r;
}

static EVP_PKEY *cert_key(const uint8_t *der, size_t len)
{
    const uint8_t *p = der;
    X509 *c = d2i_X509(NULL, &p, (long)len);
    EVP_PKEY *k = NULL;
    if (c != NULL && p == der + len)
        k = X509_get_pubkey(c);
    X509_free(c);
    return k;
}

static bool signature_ok(const uint8_t *parent_cert, size_t parent_len,
                         const hs_apk_sig_algorithm *alg, const hs_apk_lineage_node *child)
{
    EVP_PKEY *key = cert_key(parent_cert, parent_len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = key != NULL && ctx != NULL &&
              EVP_DigestVerifyInit(ctx, &pctx, hs_sig_alg_md(alg->alg), NULL, key) == 1;
    if (ok && hs_sig_alg_is_pss(alg->alg))
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
    ok = ok && EVP_DigestVerify(ctx, child->sig, child->sig_len, child->signed_data,
                                child->signed_data_len) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

/* Checks node i (read as `read`) against node i - 1 (already in l). */
static hs_result check_link(const hs_lineage *l, size_t i, const hs_apk_lineage_node *read,
                            const char *what, hs_error *e)
{
    const hs_lineage_node *parent = &l->nodes[i - 1], *child = &l->nodes[i];
    hs_apk_sig_algorithm alg;
    if (!hs_apk_algorithm_by_id(parent->sig_alg, &alg))
        return hs_fail(e, HS_E_FORMAT, "%s: certificate #%zu: unknown signature algorithm 0x%04x",
                       what, i + 1, parent->sig_alg);
    if (child->parent_alg != parent->sig_alg)
        return hs_fail(e, HS_E_VERIFY,
                       "%s: certificate #%zu: signed with algorithm 0x%04x but its parent names "
                       "0x%04x", what, i + 1, child->parent_alg, parent->sig_alg);
    if (!signature_ok(parent->cert_der, parent->cert_der_len, &alg, read))
        return hs_fail(e, HS_E_VERIFY,
                       "%s: certificate #%zu is not signed by certificate #%zu (a forged or "
                       "reordered link)", what, i + 1, i);
    return HS_OK;
}

static hs_result parse_node(hs_lineage *l, hs_lp *nodes, const char *what, hs_error *e)
{
    size_t i = l->count;
    hs_apk_lineage_node rn;
    const char *why;
    if (!hs_apk_lineage_read_node(nodes, &rn, true, &why))
        return hs_fail(e, HS_E_FORMAT, "%s: certificate #%zu: %s", what, i + 1, why);
    EVP_PKEY *k = cert_key(rn.cert, rn.cert_len);
    EVP_PKEY_free(k);
    if (k == NULL)
        return hs_fail(e, HS_E_FORMAT, "%s: certificate #%zu is not one DER X.509 certificate",
                       what, i + 1);
    if (hs_lineage_find(l, rn.cert, rn.cert_len) >= 0)
        return hs_fail(e, HS_E_FORMAT, "%s: certificate #%zu appears twice", what, i + 1);
    if (i == 0 && rn.sig_len != 0)
        return hs_fail(e, HS_E_FORMAT, "%s: the first certificate carries a signature", what);
    hs_lineage_node n = {.cert_der = dup_bytes(rn.cert, rn.cert_len), .cert_der_len = rn.cert_len,
                         .parent_alg = rn.parent_sig_alg, .flags = rn.flags,
                         .sig_alg = rn.sig_alg, .sig = dup_bytes(rn.sig, rn.sig_len),
                         .sig_len = rn.sig_len};
    hs_result r = push_node(l, n, e);
    if (r == HS_OK && i > 0)
        r = check_link(l, i, &rn, what, e);
    return r;
}

hs_result hs_lineage_parse(const uint8_t *data, size_t len, const char *what, hs_lineage *l,
                           hs_error *e)
{
    memset(l, 0, sizeof *l);
    hs_lp f = {data, len, 0}, body;
    uint32_t magic, version, inner_version;
    if (!hs_lp_u32(&f, &magic) || magic != HS_APK_LINEAGE_MAGIC)
        return hs_fail(e, HS_E_FORMAT, "%s: not a signing certificate lineage (magic)", what);
    if (!hs_lp_u32(&f, &version) || version != HS_APK_LINEAGE_VERSION ||
        !hs_lp_slice(&f, &body) || !hs_lp_end(&f) || !hs_lp_u32(&body, &inner_version) ||
        inner_version != HS_APK_LINEAGE_VERSION)
        return hs_fail(e, HS_E_FORMAT, "%s: unknown lineage version or malformed header", what);
    hs_result r = HS_OK;
    while (r == HS_OK && !hs_lp_end(&body))
        r = parse_node(l, &body, what, e);
    if (r == HS_OK && l->count == 0)
        r = hs_fail(e, HS_E_FORMAT, "%s: the lineage has no certificate", what);
    if (r != HS_OK)
        hs_lineage_free(l);
    return r;
}

hs_result hs_lineage_read_file(const char *path, hs_lineage *l, hs_error *e)
{
    uint8_t *data = NULL;
    size_t len = 0;
    memset(l, 0, sizeof *l);
    hs_result r = hs_read_file(path, LINEAGE_MAX_FILE, &data, &len, e);
    if (r == HS_OK)
        r = hs_lineage_parse(data, len, path, l, e);
    free(data);
    return r;
}

static void put_nodes(const hs_lineage *l, hs_apk_buf *out)
{
    hs_apk_buf_u32(out, HS_APK_LINEAGE_VERSION);
    for (size_t i = 0; i < l->count; i++) {
        const hs_lineage_node *n = &l->nodes[i];
        size_t node = hs_apk_buf_lp_begin(out);
        size_t sd = hs_apk_buf_lp_begin(out);
        put_signed_data(out, n->cert_der, n->cert_der_len, n->parent_alg);
        hs_apk_buf_lp_end(out, sd);
        hs_apk_buf_u32(out, n->flags);
        hs_apk_buf_u32(out, n->sig_alg);
        hs_apk_buf_lp(out, n->sig, n->sig_len);
        hs_apk_buf_lp_end(out, node);
    }
}

hs_result hs_lineage_encode_nodes(const hs_lineage *l, hs_apk_buf *out, hs_error *e)
{
    put_nodes(l, out);
    return hs_apk_buf_check(out, "signing certificate lineage", e);
}

hs_result hs_lineage_encode_file(const hs_lineage *l, hs_apk_buf *out, hs_error *e)
{
    hs_apk_buf_u32(out, HS_APK_LINEAGE_MAGIC);
    hs_apk_buf_u32(out, HS_APK_LINEAGE_VERSION);
    size_t body = hs_apk_buf_lp_begin(out);
    put_nodes(l, out);
    hs_apk_buf_lp_end(out, body);
    return hs_apk_buf_check(out, "signing certificate lineage", e);
}

bool hs_lineage_nodes_start_with(const uint8_t *nodes, size_t len, const uint8_t *cert_der,
                                 size_t cert_der_len)
{
    hs_lp r = {nodes, len, 0};
    hs_apk_lineage_node first;
    uint32_t version;
    return hs_lp_u32(&r, &version) && hs_apk_lineage_read_node(&r, &first, false, NULL) &&
           first.cert_len == cert_der_len && memcmp(first.cert, cert_der, cert_der_len) == 0;
}
