#include "keystore/cert.h"

#include <openssl/bn.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

static hs_result add_rdn(X509_NAME *name, const char *attr, const char *value, const char *text,
                         hs_error *e)
{
    if (*attr == '\0' || *value == '\0')
        return hs_fail(e, HS_E_USAGE, "subject '%s': empty attribute or value", text);
    if (!X509_NAME_add_entry_by_txt(name, attr, MBSTRING_UTF8, (const unsigned char *)value, -1, -1,
                                    0))
        return hs_fail(e, HS_E_USAGE, "subject '%s': unknown attribute '%s' (use CN, O, OU, L, ST, C, ...)",
                       text, attr);
    return HS_OK;
}

hs_result hs_dn_parse(const char *text, X509_NAME **out, hs_error *e)
{
    *out = NULL;
    bool slash_form = text[0] == '/';
    char sep = slash_form ? '/' : ',';
    size_t n = strlen(text);
    char *buf = malloc(n + 1), *attr = malloc(n + 1);
    X509_NAME *name = X509_NAME_new();
    hs_result r = HS_OK;
    if (buf == NULL || attr == NULL || name == NULL) {
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
        goto out;
    }
    /* Walk the text once, splitting on unescaped separators; each piece
     * is ATTR=VALUE with surrounding blanks dropped. */
    size_t i = slash_form ? 1 : 0, len = 0;
    for (;; i++) {
        char c = text[i];
        if (c == '\\' && text[i + 1] != '\0') {
            buf[len++] = text[++i];
            continue;
        }
        if (c != sep && c != '\0') {
            buf[len++] = c;
            continue;
        }
        buf[len] = '\0';
        char *piece = buf;
        while (*piece == ' ')
            piece++;
        char *eq = strchr(piece, '=');
        if (eq == NULL) {
            r = hs_fail(e, HS_E_USAGE, "subject '%s': '%s' is not ATTR=VALUE", text, piece);
            goto out;
        }
        *eq = '\0';
        char *value = eq + 1, *end = eq;
        while (end > piece && end[-1] == ' ')
            *--end = '\0';
        while (*value == ' ')
            value++;
        for (end = value + strlen(value); end > value && end[-1] == ' ';)
            *--end = '\0';
        snprintf(attr, n + 1, "%s", piece);
        r = add_rdn(name, attr, value, text, e);
        if (r != HS_OK)
            goto out;
        len = 0;
        if (c == '\0')
            break;
    }
    if (X509_NAME_entry_count(name) == 0)
        r = hs_fail(e, HS_E_USAGE, "subject '%s' is empty", text);
out:
    free(buf);
    free(attr);
    if (r == HS_OK)
        *out = name;
    else
        X509_NAME_free(name);
    return r;
}

static bool add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    bool ok = ext != NULL && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* Random positive 127-bit serial, as CAs do (RFC 5280 allows 20 bytes). */
static bool set_serial(X509 *x)
{
    uint8_t raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return false;
    raw[0] &= 0x7f;
    raw[0] |= 0x01;
    BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
    ASN1_INTEGER *serial = bn != NULL ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    bool ok = serial != NULL && X509_set_serialNumber(x, serial);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return ok;
}

static size_t der_header(uint8_t tag, size_t len, uint8_t out[6])
{
    out[0] = tag;
    if (len < 0x80) {
        out[1] = (uint8_t)len;
        return 2;
    }
    size_t n = 0;
    for (size_t v = len; v > 0; v >>= 8)
        n++;
    out[1] = (uint8_t)(0x80 | n);
    for (size_t i = 0; i < n; i++)
        out[2 + i] = (uint8_t)(len >> (8 * (n - 1 - i)));
    return 2 + n;
}

/* Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, BIT STRING } */
static hs_result assemble(const uint8_t *tbs, size_t tbs_len, const uint8_t *alg, size_t alg_len,
                          const uint8_t *sig, size_t sig_len, X509 **out, hs_error *e)
{
    uint8_t bit_hdr[6], seq_hdr[6];
    size_t bit_hl = der_header(0x03, sig_len + 1, bit_hdr);
    size_t body = tbs_len + alg_len + bit_hl + 1 + sig_len;
    size_t seq_hl = der_header(0x30, body, seq_hdr);
    uint8_t *der = malloc(seq_hl + body), *p = der;
    if (der == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    memcpy(p, seq_hdr, seq_hl), p += seq_hl;
    memcpy(p, tbs, tbs_len), p += tbs_len;
    memcpy(p, alg, alg_len), p += alg_len;
    memcpy(p, bit_hdr, bit_hl), p += bit_hl;
    *p++ = 0; /* no unused bits */
    memcpy(p, sig, sig_len);
    const unsigned char *q = der;
    *out = d2i_X509(NULL, &q, (long)(seq_hl + body));
    free(der);
    return *out != NULL ? HS_OK : hs_fail(e, HS_E_CRYPTO, "cannot assemble the certificate");
}

hs_result hs_cert_self_signed(EVP_PKEY *pub, hs_keyalg alg, const char *subject,
                              unsigned validity_days, const char *key_name, hs_sign_fn sign,
                              X509 **out, hs_error *e)
{
    *out = NULL;
    X509_NAME *name = NULL;
    hs_result r = hs_dn_parse(subject, &name, e);
    if (r != HS_OK)
        return r;
    X509 *x = X509_new();
    uint8_t *tbs = NULL, *algder = NULL, *sig = NULL;
    int tbs_len = 0, alg_len = 0;
    size_t sig_len = 0;
    hs_sig_alg salg = hs_keyalg_default_sigalg(alg);
    int nid = hs_keyalg_is_rsa(alg) ? NID_sha256WithRSAEncryption : NID_ecdsa_with_SHA256;
    if (x == NULL || !X509_set_version(x, 2) || !set_serial(x) || !X509_set_subject_name(x, name) ||
        !X509_set_issuer_name(x, name) || !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), (int)validity_days, 0, NULL) ||
        !X509_set_pubkey(x, pub) || !add_ext(x, NID_subject_key_identifier, "hash") ||
        !add_ext(x, NID_authority_key_identifier, "keyid:always") ||
        !add_ext(x, NID_basic_constraints, "critical,CA:TRUE"))
        goto fail;
    /* The TBS carries the signature algorithm too; OpenSSL offers no
     * setter for it outside X509_sign, so set the algorithm object it owns. */
    X509_ALGOR *tbs_alg = (X509_ALGOR *)X509_get0_tbs_sigalg(x);
    if (!X509_ALGOR_set0(tbs_alg, OBJ_nid2obj(nid), hs_keyalg_is_rsa(alg) ? V_ASN1_NULL : V_ASN1_UNDEF,
                         NULL))
        goto fail;
    tbs_len = i2d_re_X509_tbs(x, &tbs);
    alg_len = i2d_X509_ALGOR(tbs_alg, &algder);
    if (tbs_len <= 0 || alg_len <= 0)
        goto fail;
    hs_sign_request req = {.key_name = key_name, .alg = salg, .operation = "x509-self-signed",
                           .artifact = NULL};
    uint8_t digest[HS_MAX_DIGEST_LEN];
    r = hs_sign_request_hash(&req, digest, tbs, (size_t)tbs_len, e);
    if (r == HS_OK)
        r = sign.sign(sign.ctx, &req, &sig, &sig_len, e);
    if (r == HS_OK)
        r = assemble(tbs, (size_t)tbs_len, algder, (size_t)alg_len, sig, sig_len, out, e);
    if (r == HS_OK && X509_verify(*out, pub) != 1) {
        X509_free(*out);
        *out = NULL;
        r = hs_fail(e, HS_E_VERIFY, "the certificate for '%s' does not verify with its own key",
                    key_name);
    }
    goto done;
fail:
    r = hs_fail(e, HS_E_CRYPTO, "cannot build a certificate for '%s'", key_name);
done:
    OPENSSL_free(tbs);
    OPENSSL_free(algder);
    free(sig);
    X509_free(x);
    X509_NAME_free(name);
    return r;
}

hs_result hs_cert_der(X509 *cert, uint8_t **der, size_t *len, hs_error *e)
{
    unsigned char *buf = NULL;
    int n = i2d_X509(cert, &buf);
    if (n <= 0)
        return hs_fail(e, HS_E_CRYPTO, "cannot encode the certificate");
    *der = malloc((size_t)n);
    if (*der == NULL) {
        OPENSSL_free(buf);
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    memcpy(*der, buf, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(buf);
    return HS_OK;
}
