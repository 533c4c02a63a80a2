#include "apk/apk_lineage.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "apk/apk_verify_alg.h"

static bool same_cert(const hs_apk_lineage_node *n, const uint8_t *cert, size_t len)
{
    return n->cert_len == len && memcmp(n->cert, cert, len) == 0;
}

long hs_apk_lineage_find(const hs_apk_lineage *l, const uint8_t *cert, size_t cert_len)
{
    for (size_t i = 0; i < l->count; i++)
        if (same_cert(&l->nodes[i], cert, cert_len))
            return (long)i;
    return -1;
}

static hs_result grow(hs_apk_lineage *l, size_t *cap, hs_error *e)
{
    if (l->count < *cap)
        return HS_OK;
    size_t n = *cap ? *cap * 2 : 4;
    hs_apk_lineage_node *p = realloc(l->nodes, n * sizeof *p);
    if (p == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    l->nodes = p;
    *cap = n;
    return HS_OK;
}

bool hs_apk_lineage_read_node(hs_lp *nodes, hs_apk_lineage_node *n, bool exact,
                              const char **why)
{
    const char *unused = NULL;
    why = why != NULL ? why : &unused;
    hs_lp node, sd, cert, sig;
    *why = "truncated";
    if (!hs_lp_slice(nodes, &node))
        return false;
    *why = "malformed node";
    if (!hs_lp_slice(&node, &sd) || !hs_lp_u32(&node, &n->flags) ||
        !hs_lp_u32(&node, &n->sig_alg) || !hs_lp_slice(&node, &sig) || (exact && !hs_lp_end(&node)))
        return false;
    n->signed_data = sd.p;
    n->signed_data_len = sd.len;
    n->sig = sig.p;
    n->sig_len = sig.len;
    *why = "malformed signed data";
    if (!hs_lp_slice(&sd, &cert) || !hs_lp_u32(&sd, &n->parent_sig_alg) ||
        (exact && !hs_lp_end(&sd)))
        return false;
    n->cert = cert.p;
    n->cert_len = cert.len;
    return true;
}

/* The parent's key must have signed the child's signed data with the
 * algorithm the parent announced, and the child must name that algorithm. */
static hs_result verify_link(const hs_apk_lineage_node *parent, const hs_apk_lineage_node *child,
                             size_t index, const char *what, hs_error *e)
{
    const hs_apk_valg *alg = hs_apk_valg_find(parent->sig_alg);
    if (alg == NULL)
        return hs_fail(e, HS_E_VERIFY, "%s: lineage certificate #%zu: unknown algorithm 0x%04x",
                       what, index + 1, parent->sig_alg);
    if (child->parent_sig_alg != parent->sig_alg)
        return hs_fail(e, HS_E_VERIFY,
                       "%s: lineage certificate #%zu: signed with 0x%04x but names 0x%04x", what,
                       index + 1, parent->sig_alg, child->parent_sig_alg);
    const uint8_t *q = parent->cert;
    X509 *x = d2i_X509(NULL, &q, (long)parent->cert_len);
    EVP_PKEY *key = x != NULL ? X509_get0_pubkey(x) : NULL;
    bool ok = key != NULL && hs_apk_valg_verify(alg, key, child->signed_data,
                                                child->signed_data_len, child->sig, child->sig_len);
    X509_free(x);
    if (!ok)
        return hs_fail(e, HS_E_VERIFY,
                       "%s: lineage certificate #%zu is not signed by certificate #%zu", what,
                       index + 1, index);
    return HS_OK;
}

static hs_result check_cert(const hs_apk_lineage_node *n, size_t index, const char *what,
                            hs_error *e)
{
    const uint8_t *q = n->cert;
    X509 *x = d2i_X509(NULL, &q, (long)n->cert_len);
    bool ok = x != NULL && q == n->cert + n->cert_len;
    X509_free(x);
    if (!ok)
        return hs_fail(e, HS_E_VERIFY, "%s: lineage certificate #%zu is not X.509", what,
                       index + 1);
    return HS_OK;
}

hs_result hs_apk_lineage_parse(const uint8_t *p, size_t len, hs_apk_lineage_format fmt,
                               const char *what, hs_apk_lineage *out, hs_error *e)
{
    memset(out, 0, sizeof *out);
    hs_lp all = {p, len, 0};
    uint32_t version = 0;
    if (fmt == HS_APK_LINEAGE_FILE) {
        /* magic, version, then the v3 attribute form length-prefixed */
        uint32_t magic = 0, outer = 0;
        hs_lp inner;
        if (!hs_lp_u32(&all, &magic) || !hs_lp_u32(&all, &outer))
            return hs_fail(e, HS_E_FORMAT, "%s: lineage is truncated", what);
        if (magic != HS_APK_LINEAGE_MAGIC)
            return hs_fail(e, HS_E_FORMAT, "%s: not a signing certificate lineage (bad magic)",
                           what);
        if (outer != HS_APK_LINEAGE_VERSION)
            return hs_fail(e, HS_E_FORMAT, "%s: lineage version %u is not supported", what, outer);
        if (!hs_lp_slice(&all, &inner) || all.pos != all.len)
            return hs_fail(e, HS_E_FORMAT, "%s: lineage is truncated or has trailing bytes", what);
        all = inner;
    }
    if (!hs_lp_u32(&all, &version))
        return hs_fail(e, HS_E_FORMAT, "%s: lineage is truncated", what);
    if (version != HS_APK_LINEAGE_VERSION)
        return hs_fail(e, HS_E_FORMAT, "%s: lineage version %u is not supported", what, version);
    size_t cap = 0;
    hs_result r = HS_OK;
    while (r == HS_OK && all.pos < all.len) {
        if ((r = grow(out, &cap, e)) != HS_OK)
            break;
        hs_apk_lineage_node *n = &out->nodes[out->count];
        if (!hs_apk_lineage_read_node(&all, n, false, NULL) || n->cert_len == 0) {
            r = hs_fail(e, HS_E_FORMAT, "%s: lineage node #%zu is malformed", what,
                        out->count + 1);
            break;
        }
        r = check_cert(n, out->count, what, e);
        if (r == HS_OK && out->count > 0)
            r = verify_link(&out->nodes[out->count - 1], n, out->count, what, e);
        if (r == HS_OK && hs_apk_lineage_find(out, n->cert, n->cert_len) >= 0)
            r = hs_fail(e, HS_E_VERIFY, "%s: lineage certificate #%zu appears twice", what,
                        out->count + 1);
        if (r == HS_OK)
            out->count++;
    }
    if (r == HS_OK && out->count == 0)
        r = hs_fail(e, HS_E_FORMAT, "%s: lineage has no certificate", what);
    if (r != HS_OK)
        hs_apk_lineage_free(out);
    return r;
}

hs_result hs_apk_lineage_copy(const hs_apk_lineage *src, hs_apk_lineage *out, hs_error *e)
{
    out->count = 0;
    out->nodes = malloc((src->count ? src->count : 1) * sizeof *out->nodes);
    if (out->nodes == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    if (src->count)
        memcpy(out->nodes, src->nodes, src->count * sizeof *out->nodes);
    out->count = src->count;
    return HS_OK;
}

hs_result hs_apk_lineage_merge(const hs_apk_lineage *a, const hs_apk_lineage *b,
                               hs_apk_lineage *out, hs_error *e)
{
    memset(out, 0, sizeof *out);
    if (a->count == 0 || b->count == 0)
        return hs_apk_lineage_copy(a->count ? a : b, out, e);
    /* The descendant is the one whose root appears in the other. */
    const hs_apk_lineage *anc = b, *desc = a;
    if (hs_apk_lineage_find(b, a->nodes[0].cert, a->nodes[0].cert_len) < 0) {
        anc = a;
        desc = b;
    }
    long start = hs_apk_lineage_find(anc, desc->nodes[0].cert, desc->nodes[0].cert_len);
    if (start < 0)
        return hs_fail(e, HS_E_VERIFY, "the lineages are unrelated (neither continues the other)");
    size_t i = (size_t)start, k = 0;
    for (; i < anc->count && k < desc->count; i++, k++)
        if (!same_cert(&anc->nodes[i], desc->nodes[k].cert, desc->nodes[k].cert_len))
            return hs_fail(e, HS_E_VERIFY, "the lineages diverge at certificate #%zu", i + 1);
    /* The longer one is the merged history (anc's nodes first, then the
     * descendant's, which carry its capabilities for the shared part). */
    size_t total = (size_t)start + (desc->count > anc->count - (size_t)start
                                         ? desc->count : anc->count - (size_t)start);
    out->nodes = malloc(total * sizeof *out->nodes);
    if (out->nodes == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    for (size_t j = 0; j < total; j++) {
        bool from_desc = j >= (size_t)start && j - (size_t)start < desc->count;
        out->nodes[j] = from_desc ? desc->nodes[j - (size_t)start] : anc->nodes[j];
    }
    out->count = total;
    return HS_OK;
}

void hs_apk_lineage_free(hs_apk_lineage *l)
{
    free(l->nodes);
    l->nodes = NULL;
    l->count = 0;
}
