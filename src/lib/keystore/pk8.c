/* Private key files for import, read without OpenSSL (see pk8.h for why).
 *
 * The reader is a cursor over the input: der_take removes one element from
 * its front after checking that its header and contents lie within what is
 * left, so every span handed out is inside the input and no later code
 * needs a bounds check. */
#include "keystore/pk8.h"
#include "keystore/placeholder.h"

#include <openssl/evp.h>
#include <string.h>

#include "p11/objects.h"
#include "util/secmem.h"

enum {
    TAG_INTEGER = 0x02,
    TAG_BIT_STRING = 0x03,
    TAG_OCTET_STRING = 0x04,
    TAG_NULL = 0x05,
    TAG_OID = 0x06,
    TAG_SEQUENCE = 0x30,
    TAG_CTX0 = 0xa0, /* [0] constructed */
    TAG_CTX1 = 0xa1, /* [1] constructed */
};

/* OID contents (without tag and length). */
static const uint8_t oid_rsa[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
static const uint8_t oid_ec[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};

#define P256_SCALAR_LEN 32

/* What the bytes were found to hold. */
typedef enum { KIND_PKCS8, KIND_RSA, KIND_EC } key_kind;

typedef struct parse {
    const char *path;
    hs_error *e;
} parse;

static hs_result bad(const parse *ps, const char *reason)
{
    return hs_fail(ps->e, HS_E_FORMAT, "%s: not an unencrypted PKCS#8 (.pk8) or PEM private key (%s)",
                   ps->path, reason);
}

static hs_result unsupported(const parse *ps)
{
    return hs_fail(ps->e, HS_E_USAGE,
                   "%s: key type not supported (RSA 2048/3072/4096/8192 or EC P-256)", ps->path);
}

static hs_result encrypted(const parse *ps)
{
    return bad(ps, "it is encrypted; hsmsign reads only unencrypted keys");
}

static bool der_peek(const hs_pk8_span *in, uint8_t tag)
{
    return in->len > 0 && in->p[0] == tag;
}

/* Removes one element with the given tag from the front of in and points
 * content at its contents. DER only: a definite length in the fewest
 * bytes, within what is left of in. */
static hs_result der_take(const parse *ps, hs_pk8_span *in, uint8_t tag, hs_pk8_span *content)
{
    if (in->len < 2)
        return bad(ps, "truncated DER");
    if (in->p[0] != tag)
        return bad(ps, "unexpected DER element");
    size_t hdr = 2, len = in->p[1];
    if (len == 0x80)
        return bad(ps, "indefinite length (BER, not DER)");
    if (len > 0x80) {
        size_t n = len & 0x7f;
        if (n > 4)
            return bad(ps, "DER length too large");
        if (in->len - 2 < n)
            return bad(ps, "truncated DER");
        len = 0;
        for (size_t i = 0; i < n; i++)
            len = len << 8 | in->p[2 + i];
        if (in->p[2] == 0 || len < 0x80)
            return bad(ps, "DER length not in its shortest form");
        hdr += n;
    }
    if (len > in->len - hdr)
        return bad(ps, "truncated DER");
    content->p = in->p + hdr;
    content->len = len;
    in->p += hdr + len;
    in->len -= hdr + len;
    return HS_OK;
}

/* A non-negative INTEGER in minimal form; out is its magnitude (the sign
 * byte a high bit needs is dropped: PKCS#11 big integers are unsigned). */
static hs_result der_uint(const parse *ps, hs_pk8_span *in, hs_pk8_span *out)
{
    hs_result r = der_take(ps, in, TAG_INTEGER, out);
    if (r != HS_OK)
        return r;
    if (out->len == 0)
        return bad(ps, "empty INTEGER");
    if (out->p[0] & 0x80)
        return bad(ps, "negative INTEGER");
    if (out->p[0] == 0 && out->len > 1) {
        if (!(out->p[1] & 0x80))
            return bad(ps, "INTEGER not in its shortest form");
        out->p++;
        out->len--;
    }
    return HS_OK;
}

/* A version field: an INTEGER that must equal want. */
static hs_result der_version(const parse *ps, hs_pk8_span *in, uint8_t want)
{
    hs_pk8_span v;
    hs_result r = der_uint(ps, in, &v);
    if (r == HS_OK && (v.len != 1 || v.p[0] != want))
        r = bad(ps, "unknown version");
    return r;
}

static bool span_is(hs_pk8_span s, const uint8_t *want, size_t len)
{
    return s.len == len && memcmp(s.p, want, len) == 0;
}

/* The whole of in must be one SEQUENCE; seq is its contents. */
static hs_result der_only_sequence(const parse *ps, hs_pk8_span in, hs_pk8_span *seq)
{
    hs_result r = der_take(ps, &in, TAG_SEQUENCE, seq);
    if (r == HS_OK && in.len != 0)
        r = bad(ps, "data after the key");
    return r;
}

static hs_result der_end(const parse *ps, const hs_pk8_span *seq)
{
    return seq->len == 0 ? HS_OK : bad(ps, "unexpected data inside the key");
}

/* RSAPrivateKey (RFC 8017 A.1.2), two-prime. */
static hs_result parse_rsa(const parse *ps, hs_pk8_span in, hs_pk8_key *k)
{
    hs_pk8_span seq = {NULL, 0}, v = {NULL, 0};
    hs_result r = der_only_sequence(ps, in, &seq);
    if (r == HS_OK)
        r = der_uint(ps, &seq, &v);
    if (r == HS_OK && !(v.len == 1 && v.p[0] == 0))
        r = v.len == 1 && v.p[0] == 1 ? unsupported(ps) /* multi-prime */
                                      : bad(ps, "unknown version");
    for (size_t i = 0; i < HS_PK8_RSA_PARTS && r == HS_OK; i++)
        r = der_uint(ps, &seq, &k->rsa_parts[i]);
    if (r == HS_OK)
        r = der_end(ps, &seq);
    k->rsa = true;
    return r;
}

/* The named-curve parameters: only P-256 is signed with. */
static hs_result parse_curve(const parse *ps, hs_pk8_span *in)
{
    hs_pk8_span oid;
    hs_result r = der_take(ps, in, TAG_OID, &oid);
    if (r != HS_OK)
        return r;
    /* hs_p256_oid_der is the whole element: tag, length, contents. */
    return span_is(oid, hs_p256_oid_der + 2, sizeof hs_p256_oid_der - 2) ? HS_OK
                                                                         : unsupported(ps);
}

/* ECPrivateKey (RFC 5915). The curve comes from here unless the PKCS#8
 * algorithm gave it; the public key must be present: it is what is
 * compared with the certificate, and the scalar never meets OpenSSL. */
static hs_result parse_ec(const parse *ps, hs_pk8_span in, bool need_curve, hs_pk8_key *k)
{
    hs_pk8_span seq = {NULL, 0}, params = {NULL, 0}, pub = {NULL, 0};
    bool have_curve = false;
    k->rsa = false;
    hs_result r = der_only_sequence(ps, in, &seq);
    if (r == HS_OK)
        r = der_version(ps, &seq, 1);
    if (r == HS_OK)
        r = der_take(ps, &seq, TAG_OCTET_STRING, &k->ec_scalar);
    if (r == HS_OK && der_peek(&seq, TAG_CTX0)) {
        r = der_take(ps, &seq, TAG_CTX0, &params);
        if (r == HS_OK)
            r = parse_curve(ps, &params);
        if (r == HS_OK)
            r = der_end(ps, &params);
        have_curve = true;
    }
    if (r == HS_OK && need_curve && !have_curve)
        r = bad(ps, "EC key without its curve");
    if (r == HS_OK && k->ec_scalar.len != P256_SCALAR_LEN)
        r = bad(ps, "EC private key is not 32 bytes (RFC 5915)");
    if (r == HS_OK && !der_peek(&seq, TAG_CTX1))
        r = bad(ps, "EC key without its public key; re-export it with openssl pkcs8 -topk8");
    if (r == HS_OK)
        r = der_take(ps, &seq, TAG_CTX1, &pub);
    if (r == HS_OK)
        r = der_take(ps, &pub, TAG_BIT_STRING, &k->ec_point);
    if (r == HS_OK)
        r = der_end(ps, &pub);
    if (r == HS_OK && (k->ec_point.len < 2 || k->ec_point.p[0] != 0))
        r = bad(ps, "EC public key is not a whole number of bytes");
    if (r == HS_OK) {
        k->ec_point.p++; /* the unused-bits byte */
        k->ec_point.len--;
        r = der_end(ps, &seq);
    }
    return r;
}

/* PrivateKeyInfo (RFC 5208), version 0, attributes ignored. */
static hs_result parse_pkcs8(const parse *ps, hs_pk8_span in, hs_pk8_key *k)
{
    hs_pk8_span seq = {NULL, 0}, alg = {NULL, 0}, oid = {NULL, 0}, key = {NULL, 0},
                null = {NULL, 0}, attrs;
    hs_result r = der_only_sequence(ps, in, &seq);
    if (r == HS_OK)
        r = der_version(ps, &seq, 0);
    if (r == HS_OK)
        r = der_take(ps, &seq, TAG_SEQUENCE, &alg);
    if (r == HS_OK)
        r = der_take(ps, &alg, TAG_OID, &oid);
    bool rsa = span_is(oid, oid_rsa, sizeof oid_rsa);
    /* rsaEncryption's parameters are NULL (RFC 8017 A.1), absent accepted. */
    if (r == HS_OK && rsa && der_peek(&alg, TAG_NULL))
        r = der_take(ps, &alg, TAG_NULL, &null);
    else if (r == HS_OK && !rsa)
        r = span_is(oid, oid_ec, sizeof oid_ec) ? parse_curve(ps, &alg) : unsupported(ps);
    if (r == HS_OK && (alg.len != 0 || null.len != 0))
        r = bad(ps, "unexpected algorithm parameters");
    if (r == HS_OK)
        r = der_take(ps, &seq, TAG_OCTET_STRING, &key);
    if (r == HS_OK && der_peek(&seq, TAG_CTX0))
        r = der_take(ps, &seq, TAG_CTX0, &attrs);
    if (r == HS_OK)
        r = der_end(ps, &seq);
    if (r == HS_OK)
        r = rsa ? parse_rsa(ps, key, k) : parse_ec(ps, key, false, k);
    return r;
}

/* Which of the three structures DER holds, from its first elements:
 * PrivateKeyInfo {INTEGER, SEQUENCE ...}, RSAPrivateKey {INTEGER,
 * INTEGER ...}, ECPrivateKey {INTEGER, OCTET STRING ...};
 * EncryptedPrivateKeyInfo starts {SEQUENCE ...}. */
static hs_result parse_der(const parse *ps, hs_pk8_span in, hs_pk8_key *k, key_kind *kind)
{
    hs_pk8_span probe = in, seq, version;
    hs_result r = der_take(ps, &probe, TAG_SEQUENCE, &seq);
    if (r != HS_OK)
        return r;
    if (der_peek(&seq, TAG_SEQUENCE))
        return encrypted(ps);
    r = der_take(ps, &seq, TAG_INTEGER, &version);
    if (r != HS_OK)
        return r;
    if (der_peek(&seq, TAG_SEQUENCE)) {
        *kind = KIND_PKCS8;
        return parse_pkcs8(ps, in, k);
    }
    if (der_peek(&seq, TAG_INTEGER)) {
        *kind = KIND_RSA;
        return parse_rsa(ps, in, k);
    }
    if (der_peek(&seq, TAG_OCTET_STRING)) {
        *kind = KIND_EC;
        return parse_ec(ps, in, true, k);
    }
    return bad(ps, "not a private key structure");
}

/* PEM (RFC 7468) ------------------------------------------------------- */

static const struct {
    const char *label;
    key_kind kind;
} pem_labels[] = {
    {"PRIVATE KEY", KIND_PKCS8},
    {"RSA PRIVATE KEY", KIND_RSA},
    {"EC PRIVATE KEY", KIND_EC},
};

/* The next line of text (without its line break and trailing blanks). */
static bool next_line(hs_pk8_span *text, hs_pk8_span *line)
{
    if (text->len == 0)
        return false;
    const uint8_t *nl = memchr(text->p, '\n', text->len);
    size_t len = nl != NULL ? (size_t)(nl - text->p) : text->len;
    line->p = text->p;
    line->len = len;
    text->p += len + (nl != NULL);
    text->len -= len + (nl != NULL);
    while (line->len > 0 && (line->p[line->len - 1] == '\r' || line->p[line->len - 1] == ' ' ||
                             line->p[line->len - 1] == '\t'))
        line->len--;
    return true;
}

static bool line_is(hs_pk8_span line, const char *pre, const char *label, const char *post)
{
    size_t a = strlen(pre), b = strlen(label), c = strlen(post);
    return line.len == a + b + c && memcmp(line.p, pre, a) == 0 &&
           memcmp(line.p + a, label, b) == 0 && memcmp(line.p + a + b, post, c) == 0;
}

/* Finds the first BEGIN line of a private key, skipping other blocks (an
 * "EC PARAMETERS" block before the key, as openssl ecparam writes). */
static hs_result find_begin(const parse *ps, hs_pk8_span *text, size_t *label)
{
    hs_pk8_span line;
    while (next_line(text, &line)) {
        if (line_is(line, "-----BEGIN ", "ENCRYPTED PRIVATE KEY", "-----"))
            return encrypted(ps);
        for (size_t i = 0; i < sizeof pem_labels / sizeof pem_labels[0]; i++) {
            if (line_is(line, "-----BEGIN ", pem_labels[i].label, "-----")) {
                *label = i;
                return HS_OK;
            }
        }
    }
    return bad(ps, "neither DER nor a PEM private key block");
}

/* Decodes the base64 lines up to the END line into k->der (locked). Each
 * line is a whole number of 4-character groups; '=' padding only on the
 * last one. */
static hs_result decode_body(const parse *ps, hs_pk8_span text, const char *label, hs_pk8_key *k,
                             size_t *der_len)
{
    k->der_cap = text.len / 4 * 3 + 3;
    k->der = hs_secure_alloc(k->der_cap);
    if (k->der == NULL)
        return hs_fail(ps->e, HS_E_NOMEM, "%s: cannot allocate secure memory", ps->path);
    size_t len = 0;
    bool padded = false;
    hs_pk8_span line;
    while (next_line(&text, &line)) {
        if (line_is(line, "-----END ", label, "-----")) {
            *der_len = len;
            return len > 0 ? HS_OK : bad(ps, "empty PEM block");
        }
        if (memchr(line.p, ':', line.len) != NULL)
            return memmem(line.p, line.len, "ENCRYPTED", 9) != NULL
                       ? encrypted(ps)
                       : bad(ps, "PEM headers are not supported");
        if (line.len == 0)
            continue;
        if (padded || line.len % 4 != 0)
            return bad(ps, "malformed base64 in the PEM block");
        /* EVP_DecodeBlock allocates nothing: it decodes straight into the
         * locked buffer. It counts '=' as zero bytes, removed below. */
        int n = EVP_DecodeBlock(k->der + len, line.p, (int)line.len);
        if (n < 0)
            return bad(ps, "malformed base64 in the PEM block");
        size_t pad = line.p[line.len - 1] == '=' ? 1 + (line.p[line.len - 2] == '=') : 0;
        padded = pad > 0;
        len += (size_t)n - pad;
    }
    return bad(ps, "PEM block without its END line");
}

static hs_result parse_pem(const parse *ps, hs_pk8_span text, hs_pk8_key *k)
{
    size_t label = 0;
    size_t der_len = 0;
    key_kind kind = KIND_PKCS8;
    hs_result r = find_begin(ps, &text, &label);
    if (r == HS_OK)
        r = decode_body(ps, text, pem_labels[label].label, k, &der_len);
    if (r == HS_OK)
        r = parse_der(ps, (hs_pk8_span){k->der, der_len}, k, &kind);
    if (r == HS_OK && kind != pem_labels[label].kind)
        r = bad(ps, "the PEM label does not match the key inside");
    return r;
}

hs_result hs_pk8_parse(const uint8_t *in, size_t len, const char *path, hs_pk8_key *out,
                       hs_error *e)
{
    memset(out, 0, sizeof *out);
    parse ps = {path, e};
    key_kind kind = KIND_PKCS8;
    hs_pk8_span all = {in, len};
    /* Say what a releasetools key directory's placeholder is, rather
     * than "not a PKCS#8 key", to whoever tries to import it. */
    char name[HS_KEY_NAME_MAX + 1];
    uint8_t fp[32];
    hs_error ignored;
    if (hs_placeholder_pk8_parse(in, len, path, name, fp, &ignored) == HS_OK)
        return hs_fail(e, HS_E_USAGE,
                       "%s: a placeholder written by `hsmsign key export-releasetools` for the "
                       "key '%s', not a private key (that key is already kept by hsmsign)",
                       path, name);
    if (der_peek(&all, TAG_SEQUENCE))
        return parse_der(&ps, all, out, &kind);
    return parse_pem(&ps, all, out);
}

hs_result hs_pk8_public(const hs_pk8_key *k, const char *path, EVP_PKEY **out, hs_error *e)
{
    *out = NULL;
    hs_result r;
    if (k->rsa)
        r = hs_rsa_public_from_parts(k->rsa_parts[HS_PK8_N].p, k->rsa_parts[HS_PK8_N].len,
                                     k->rsa_parts[HS_PK8_E].p, k->rsa_parts[HS_PK8_E].len,
                                     "the key's modulus and exponent", out, e);
    else
        r = hs_p256_public_from_point(k->ec_point.p, k->ec_point.len, "the key's public point",
                                      out, e);
    if (r != HS_OK)
        return hs_error_prefix(e, "%s: ", path);
    return HS_OK;
}

void hs_pk8_free(hs_pk8_key *k)
{
    hs_secure_free(k->der, k->der_cap);
    memset(k, 0, sizeof *k);
}
