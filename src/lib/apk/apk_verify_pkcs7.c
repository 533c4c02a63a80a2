/* The PKCS#7 SignedData block of a JAR signer, checked the way apksig's
 * V1SchemeVerifier does (its rules decide what Android accepts, which is
 * not what OpenSSL's PKCS7_verify accepts):
 *  - the digest + signature algorithm pair must be supported on every
 *    platform in range (apksig's OidConstants table);
 *  - below Android 7.0 only the first SignerInfo counts, from 7.0 on the
 *    first that verifies;
 *  - signed attributes: none twice, exactly one content type equal to
 *    the encapsulated content type (from 7.0), exactly one message digest
 *    equal to the .SF's digest; the signature covers them as encoded
 *    (not re-sorted);
 *  - the certificate is the one named by issuer and serial number, with
 *    a keyUsage (if any) allowing signatures, reported as stored.
 * DER with definite lengths only. */
#include "apk/apk_verify_internal.h"

#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

typedef struct der {
    const uint8_t *p;
    size_t len;
} der;

typedef struct tlv {
    uint8_t tag;
    der value; /* contents */
    der whole; /* tag, length and contents */
} tlv;

/* Next TLV of *in (advancing it); false when malformed. */
static bool der_next(der *in, tlv *t)
{
    if (in->len < 2)
        return false;
    size_t pos = 2, n = in->p[1];
    if (n & 0x80) {
        size_t bytes = n & 0x7f;
        if (bytes == 0 || bytes > 4 || in->len < 2 + bytes)
            return false;
        n = 0;
        for (size_t i = 0; i < bytes; i++)
            n = (n << 8) | in->p[2 + i];
        pos += bytes;
    }
    if ((in->p[0] & 0x1f) == 0x1f || n > in->len - pos)
        return false;
    t->tag = in->p[0];
    t->value = (der){in->p + pos, n};
    t->whole = (der){in->p, pos + n};
    in->p += pos + n;
    in->len -= pos + n;
    return true;
}

static bool der_expect(der *in, uint8_t tag, tlv *t)
{
    return der_next(in, t) && t->tag == tag;
}

static bool oid_is(const der *oid, const uint8_t *want, size_t len)
{
    return oid->len == len && memcmp(oid->p, want, len) == 0;
}

/* Digest algorithm OIDs (under 2.16.840.1.101.3.4.2 except MD5, SHA-1). */
enum { D_MD5, D_SHA1, D_SHA224, D_SHA256, D_SHA384, D_SHA512, D_COUNT };
/* Signature algorithm OIDs. */
enum {
    S_RSA, S_MD5_RSA, S_SHA1_RSA, S_SHA224_RSA, S_SHA256_RSA, S_SHA384_RSA, S_SHA512_RSA,
    S_DSA, S_SHA1_DSA, S_SHA224_DSA, S_SHA256_DSA,
    S_EC, S_SHA1_EC, S_SHA224_EC, S_SHA256_EC, S_SHA384_EC, S_SHA512_EC, S_COUNT
};

static const struct { uint8_t len; uint8_t b[9]; } digest_oids[D_COUNT] = {
    {8, {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05}},
    {5, {0x2b, 0x0e, 0x03, 0x02, 0x1a}},
    {9, {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04}},
    {9, {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}},
    {9, {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02}},
    {9, {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03}},
};

#define RSA_OID(x) {9, {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, x}}
#define NIST_SIG(x) {9, {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, x}}
static const struct { uint8_t len; uint8_t b[9]; } sig_oids[S_COUNT] = {
    RSA_OID(1), RSA_OID(4), RSA_OID(5), RSA_OID(14), RSA_OID(11), RSA_OID(12), RSA_OID(13),
    {7, {0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01}},
    {7, {0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03}},
    NIST_SIG(1), NIST_SIG(2),
    {7, {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01}},
    {7, {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01}},
    {8, {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x01}},
    {8, {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}},
    {8, {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03}},
    {8, {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04}},
};

/* Platforms on which Android's JAR verifier accepts a digest + signature
 * algorithm pair: up to two ranges [lo, hi]; absent pairs never work.
 * Pairs of a hash with a signature OID naming another hash only worked on
 * 21..23 and are summed up by the `mixed` rule below. */
typedef struct alg_support {
    uint8_t d, s;
    int lo1, hi1, lo2, hi2;
} alg_support;

#define ALWAYS 0, HS_SDK_LATEST, 1, 0
#define FROM(x) x, HS_SDK_LATEST, 1, 0
#define OLD_AND_FROM(x) 0, 8, x, HS_SDK_LATEST
static const alg_support support[] = {
    {D_MD5, S_RSA, ALWAYS},          {D_MD5, S_MD5_RSA, OLD_AND_FROM(21)},
    {D_SHA1, S_RSA, ALWAYS},         {D_SHA1, S_SHA1_RSA, ALWAYS},
    {D_SHA224, S_RSA, OLD_AND_FROM(21)}, {D_SHA224, S_SHA224_RSA, OLD_AND_FROM(21)},
    {D_SHA224, S_SHA256_RSA, 21, 21, 1, 0},
    {D_SHA256, S_RSA, OLD_AND_FROM(18)}, {D_SHA256, S_SHA256_RSA, OLD_AND_FROM(18)},
    {D_SHA256, S_SHA1_RSA, 21, 21, 1, 0},
    {D_SHA384, S_RSA, FROM(18)},     {D_SHA384, S_SHA384_RSA, FROM(21)},
    {D_SHA512, S_RSA, FROM(18)},     {D_SHA512, S_SHA512_RSA, FROM(21)},
    {D_SHA512, S_SHA384_RSA, 21, 21, 1, 0},
    {D_SHA1, S_DSA, ALWAYS},         {D_SHA1, S_SHA1_DSA, FROM(9)},
    {D_SHA224, S_DSA, FROM(22)},     {D_SHA224, S_SHA224_DSA, FROM(21)},
    {D_SHA256, S_DSA, FROM(22)},     {D_SHA256, S_SHA256_DSA, FROM(21)},
    {D_SHA1, S_EC, FROM(18)},        {D_SHA224, S_EC, FROM(21)},
    {D_SHA256, S_EC, FROM(18)},      {D_SHA384, S_EC, FROM(18)},
    {D_SHA512, S_EC, FROM(18)},      {D_SHA1, S_SHA1_EC, FROM(18)},
    {D_SHA224, S_SHA224_EC, FROM(21)}, {D_SHA256, S_SHA256_EC, FROM(21)},
    {D_SHA384, S_SHA384_EC, FROM(21)}, {D_SHA512, S_SHA512_EC, FROM(21)},
};

static bool in_ranges(int lo, int hi, const alg_support *a)
{
    /* [lo, hi] must lie within the union of the two ranges (64-bit: hi
     * may be INT_MAX). */
    int64_t pos = lo;
    for (int pass = 0; pass < 2 && pos <= hi; pass++) {
        if (pos >= a->lo1 && pos <= a->hi1)
            pos = (int64_t)a->hi1 + 1;
        if (pos <= hi && pos >= a->lo2 && pos <= a->hi2)
            pos = (int64_t)a->hi2 + 1;
    }
    return pos > hi;
}

static bool supported(int d, int s, int min_sdk, int max_sdk)
{
    for (size_t i = 0; i < sizeof support / sizeof support[0]; i++)
        if (support[i].d == d && support[i].s == s)
            return in_ranges(min_sdk, max_sdk, &support[i]);
    /* Any other hash with a signature OID naming a hash worked on 21..23
     * only; other hashes with the bare key OIDs never did. */
    if (s == S_RSA || s == S_DSA || s == S_EC)
        return false;
    return min_sdk >= 21 && max_sdk <= 23;
}

static int find_digest(const der *oid)
{
    for (int i = 0; i < D_COUNT; i++)
        if (oid_is(oid, digest_oids[i].b, digest_oids[i].len))
            return i;
    return -1;
}

static int find_sig(const der *oid)
{
    for (int i = 0; i < S_COUNT; i++)
        if (oid_is(oid, sig_oids[i].b, sig_oids[i].len))
            return i;
    return -1;
}

static const EVP_MD *digest_md(int d)
{
    switch (d) {
    case D_MD5: return EVP_md5();
    case D_SHA1: return EVP_sha1();
    case D_SHA224: return EVP_sha224();
    case D_SHA256: return EVP_sha256();
    case D_SHA384: return EVP_sha384();
    default: return EVP_sha512();
    }
}

static const char *sig_key_type(int s)
{
    return s < S_DSA ? "RSA" : s < S_EC ? "DSA" : "EC";
}

typedef struct signed_data {
    der content_type; /* encapContentInfo's */
    der certs;        /* contents of certificates [0] */
    der signer_infos; /* contents of the SET */
} signed_data;

static bool parse_signed_data(const uint8_t *block, size_t len, signed_data *sd)
{
    static const uint8_t oid_signed_data[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02};
    der in = {block, len}, ci, sdv;
    tlv t, oid, content, v;
    if (!der_expect(&in, 0x30, &t))
        return false;
    ci = t.value;
    if (!der_expect(&ci, 0x06, &oid) || !oid_is(&oid.value, oid_signed_data, sizeof oid_signed_data) ||
        !der_expect(&ci, 0xa0, &content))
        return false;
    der inner = content.value;
    if (!der_expect(&inner, 0x30, &t))
        return false;
    sdv = t.value;
    if (!der_expect(&sdv, 0x02, &v) || !der_expect(&sdv, 0x31, &t) || !der_expect(&sdv, 0x30, &t))
        return false;
    der encap = t.value;
    if (!der_expect(&encap, 0x06, &oid))
        return false;
    sd->content_type = oid.value;
    sd->certs = (der){NULL, 0};
    if (!der_next(&sdv, &t))
        return false;
    if (t.tag == 0xa0) {
        sd->certs = t.value;
        if (!der_next(&sdv, &t))
            return false;
    }
    if (t.tag == 0xa1 && !der_next(&sdv, &t))
        return false;
    if (t.tag != 0x31)
        return false;
    sd->signer_infos = t.value;
    return true;
}

typedef struct signer_info {
    der sid;           /* IssuerAndSerialNumber contents */
    int digest, sig;   /* indices, -1 unknown */
    bool has_attrs;
    der attrs;         /* [0] contents */
    der attrs_whole;   /* [0] with its header, re-tagged as SET for signing */
    der signature;
} signer_info;

static bool parse_signer_info(const tlv *si, signer_info *out)
{
    memset(out, 0, sizeof *out);
    der in = si->value;
    tlv t, alg, oid;
    if (!der_expect(&in, 0x02, &t) || !der_expect(&in, 0x30, &t))
        return false;
    out->sid = t.value;
    if (!der_expect(&in, 0x30, &alg))
        return false;
    der a = alg.value;
    if (!der_expect(&a, 0x06, &oid))
        return false;
    out->digest = find_digest(&oid.value);
    if (!der_next(&in, &t))
        return false;
    out->has_attrs = t.tag == 0xa0;
    if (out->has_attrs) {
        out->attrs = t.value;
        out->attrs_whole = t.whole;
        if (!der_next(&in, &t))
            return false;
    }
    if (t.tag != 0x30)
        return false;
    a = t.value;
    if (!der_expect(&a, 0x06, &oid))
        return false;
    out->sig = find_sig(&oid.value);
    if (!der_expect(&in, 0x04, &t))
        return false;
    out->signature = t.value;
    return true;
}

/* The certificate named by issuer and serial number, as stored. */
static bool find_cert(const der *certs, const der *sid, der *out)
{
    der s = *sid, c = *certs;
    tlv issuer, serial, cert;
    if (!der_expect(&s, 0x30, &issuer) || !der_expect(&s, 0x02, &serial))
        return false;
    const uint8_t *q = issuer.whole.p;
    X509_NAME *name = d2i_X509_NAME(NULL, &q, (long)issuer.whole.len);
    q = serial.whole.p;
    ASN1_INTEGER *sn = d2i_ASN1_INTEGER(NULL, &q, (long)serial.whole.len);
    bool found = false;
    while (!found && name != NULL && sn != NULL && der_next(&c, &cert)) {
        q = cert.whole.p;
        X509 *x = d2i_X509(NULL, &q, (long)cert.whole.len);
        found = x != NULL && X509_NAME_cmp(X509_get_issuer_name(x), name) == 0 &&
                ASN1_INTEGER_cmp(X509_get0_serialNumber(x), sn) == 0;
        X509_free(x);
        if (found)
            *out = cert.whole;
    }
    X509_NAME_free(name);
    ASN1_INTEGER_free(sn);
    return found;
}

typedef enum attr_verdict { ATTR_OK, ATTR_NO_MATCH, ATTR_BAD } attr_verdict;

/* apksig's SignedAttributes: a duplicate attribute or one of the two with
 * several values is an error; a missing one too; a wrong content type or
 * digest only makes this SignerInfo not match. */
static attr_verdict check_attrs(const signer_info *si, const signed_data *sd, const EVP_MD *md,
                                const uint8_t *sf, size_t sf_len, int max_sdk)
{
    static const uint8_t oid_ct[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03};
    static const uint8_t oid_md[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04};
    der list = si->attrs, seen[64];
    size_t nseen = 0;
    tlv attr, oid, values, v;
    der ct = {0}, digest = {0};
    bool have_ct = false, have_digest = false;
    while (list.len > 0) {
        if (!der_expect(&list, 0x30, &attr))
            return ATTR_BAD;
        der a = attr.value;
        if (!der_expect(&a, 0x06, &oid) || !der_expect(&a, 0x31, &values))
            return ATTR_BAD;
        for (size_t i = 0; i < nseen; i++)
            if (seen[i].len == oid.value.len && memcmp(seen[i].p, oid.value.p, oid.value.len) == 0)
                return ATTR_BAD;
        if (nseen == sizeof seen / sizeof seen[0])
            return ATTR_BAD;
        seen[nseen++] = oid.value;
        bool is_ct = oid_is(&oid.value, oid_ct, sizeof oid_ct);
        bool is_md = oid_is(&oid.value, oid_md, sizeof oid_md);
        if (!is_ct && !is_md)
            continue;
        der vals = values.value;
        if (vals.len == 0)
            continue;
        if (!der_expect(&vals, is_ct ? 0x06 : 0x04, &v) || vals.len != 0)
            return ATTR_BAD;
        if (is_ct) {
            ct = v.value;
            have_ct = true;
        } else {
            digest = v.value;
            have_digest = true;
        }
    }
    if (max_sdk >= HS_SDK_N) {
        if (!have_ct)
            return ATTR_BAD;
        if (ct.len != sd->content_type.len || memcmp(ct.p, sd->content_type.p, ct.len) != 0)
            return ATTR_NO_MATCH;
    }
    if (!have_digest)
        return ATTR_BAD;
    uint8_t actual[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!EVP_Digest(sf, sf_len, actual, &n, md, NULL) || digest.len != n ||
        memcmp(digest.p, actual, n) != 0)
        return ATTR_NO_MATCH;
    return ATTR_OK;
}

static bool verify_sig(EVP_PKEY *key, const EVP_MD *md, const signer_info *si, const uint8_t *sf,
                       size_t sf_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, md, NULL, key) == 1;
    if (ok && si->has_attrs) {
        /* The [0] IMPLICIT tag is replaced by SET's, as signers hash it. */
        static const uint8_t set_tag = 0x31;
        ok = EVP_DigestVerifyUpdate(ctx, &set_tag, 1) == 1 &&
             EVP_DigestVerifyUpdate(ctx, si->attrs_whole.p + 1, si->attrs_whole.len - 1) == 1;
    } else if (ok) {
        ok = EVP_DigestVerifyUpdate(ctx, sf, sf_len) == 1;
    }
    ok = ok && EVP_DigestVerifyFinal(ctx, si->signature.p, si->signature.len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static bool key_usage_allows_signing(X509 *x)
{
    uint32_t ku = X509_get_key_usage(x);
    return ku == UINT32_MAX || (ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)) != 0;
}

/* HS_OK with *matched when this SignerInfo verifies; HS_E_VERIFY when it
 * makes the whole signature invalid. */
static hs_result try_signer(const signed_data *sd, const tlv *t, const uint8_t *sf, size_t sf_len,
                            int min_sdk, int max_sdk, const char *what, hs_pkcs7_signer *out,
                            bool *matched, hs_error *e)
{
    signer_info si;
    *matched = false;
    if (!parse_signer_info(t, &si))
        return hs_fail(e, HS_E_VERIFY, "%s: malformed SignerInfo", what);
    if (si.digest < 0 || si.sig < 0 || !supported(si.digest, si.sig, min_sdk, max_sdk))
        return hs_fail(e, HS_E_VERIFY,
                       "%s: digest/signature algorithm pair not supported on every API level "
                       "from %d to %d", what, min_sdk, max_sdk);
    der cert;
    if (!find_cert(&sd->certs, &si.sid, &cert))
        return hs_fail(e, HS_E_VERIFY, "%s: the SignerInfo's certificate is not in SignedData",
                       what);
    const uint8_t *q = cert.p;
    X509 *x = d2i_X509(NULL, &q, (long)cert.len);
    EVP_PKEY *key = x != NULL ? X509_get0_pubkey(x) : NULL;
    hs_result r = HS_OK;
    const EVP_MD *md = digest_md(si.digest);
    if (key == NULL || !EVP_PKEY_is_a(key, sig_key_type(si.sig)))
        r = hs_fail(e, HS_E_VERIFY, "%s: the certificate's key does not fit the signature "
                    "algorithm", what);
    else if (!key_usage_allows_signing(x))
        r = hs_fail(e, HS_E_VERIFY, "%s: the certificate's keyUsage forbids signatures", what);
    else if (si.has_attrs && min_sdk < HS_SDK_KITKAT)
        r = hs_fail(e, HS_E_VERIFY, "%s: signed attributes do not work below API level 19",
                    what);
    attr_verdict av = ATTR_OK;
    if (r == HS_OK && si.has_attrs)
        av = check_attrs(&si, sd, md, sf, sf_len, max_sdk);
    if (av == ATTR_BAD)
        r = hs_fail(e, HS_E_VERIFY, "%s: signed attributes are malformed, duplicated or lack "
                    "the content type or message digest", what);
    if (r == HS_OK && av == ATTR_OK && verify_sig(key, md, &si, sf, sf_len)) {
        *matched = true;
        *out = (hs_pkcs7_signer){cert.p, cert.len, si.signature.p, si.signature.len};
    }
    X509_free(x);
    return r;
}

hs_result hs_apk_pkcs7_verify(const uint8_t *block, size_t block_len, const uint8_t *sf,
                              size_t sf_len, int min_sdk, int max_sdk, const char *what,
                              hs_pkcs7_signer *out, hs_error *e)
{
    signed_data sd;
    if (!parse_signed_data(block, block_len, &sd))
        return hs_fail(e, HS_E_VERIFY, "%s: not a PKCS#7 SignedData block", what);
    /* Every certificate must parse (apksig parses them all first). */
    der certs = sd.certs;
    tlv t;
    while (certs.len > 0) {
        if (!der_next(&certs, &t))
            return hs_fail(e, HS_E_VERIFY, "%s: malformed certificate", what);
        const uint8_t *q = t.whole.p;
        X509 *x = d2i_X509(NULL, &q, (long)t.whole.len);
        X509_free(x);
        if (x == NULL)
            return hs_fail(e, HS_E_VERIFY, "%s: malformed certificate", what);
    }
    der infos = sd.signer_infos;
    if (infos.len == 0)
        return hs_fail(e, HS_E_VERIFY, "%s: no signers", what);
    while (infos.len > 0) {
        bool matched = false;
        if (!der_expect(&infos, 0x30, &t))
            return hs_fail(e, HS_E_VERIFY, "%s: malformed SignerInfo", what);
        hs_result r = try_signer(&sd, &t, sf, sf_len, min_sdk, max_sdk, what, out, &matched, e);
        if (r != HS_OK || matched)
            return r;
        if (min_sdk < HS_SDK_N)
            break; /* older platforms look at the first SignerInfo only */
    }
    return hs_fail(e, HS_E_VERIFY, "%s: the signature over the .SF file does not verify", what);
}
