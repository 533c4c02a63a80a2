#include "jar/jar_pkcs7.h"

#include <openssl/x509.h>

#include "apk/apk_signing_block.h"

#define TAG_INTEGER 0x02
#define TAG_NULL 0x05
#define TAG_OCTET_STRING 0x04
#define TAG_OID 0x06
#define TAG_SEQUENCE 0x30
#define TAG_SET 0x31
#define TAG_CONTEXT_0 0xa0

static const uint8_t oid_signed_data[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02};
static const uint8_t oid_data[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01};
static const uint8_t oid_sha256[] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
static const uint8_t oid_sha1[] = {0x2b, 0x0e, 0x03, 0x02, 0x1a};
static const uint8_t oid_rsa[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
static const uint8_t oid_ec_public_key[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};

static void der_header(hs_apk_buf *b, uint8_t tag, size_t len)
{
    uint8_t h[6] = {tag};
    size_t n = 1;
    if (len < 0x80) {
        h[n++] = (uint8_t)len;
    } else {
        size_t bytes = len > 0xffffff ? 4 : len > 0xffff ? 3 : len > 0xff ? 2 : 1;
        h[n++] = (uint8_t)(0x80 | bytes);
        for (size_t i = bytes; i-- > 0;)
            h[n++] = (uint8_t)(len >> (8 * i));
    }
    hs_apk_buf_append(b, h, n);
}

static void der_tlv(hs_apk_buf *b, uint8_t tag, const void *content, size_t len)
{
    der_header(b, tag, len);
    hs_apk_buf_append(b, content, len);
}

/* Appends TAG { inner } and frees inner. */
static void der_wrap(hs_apk_buf *b, uint8_t tag, hs_apk_buf *inner)
{
    if (inner->failed)
        b->failed = true;
    der_tlv(b, tag, inner->data, inner->len);
    hs_apk_buf_free(inner);
}

/* AlgorithmIdentifier { oid, NULL }: apksig writes explicit NULL parameters
 * for the digest and for both signature algorithms (even id-ecPublicKey). */
static void algorithm_id(hs_apk_buf *b, const uint8_t *oid, size_t oid_len, bool null_params)
{
    hs_apk_buf alg = {0};
    der_tlv(&alg, TAG_OID, oid, oid_len);
    if (null_params)
        der_tlv(&alg, TAG_NULL, NULL, 0);
    der_wrap(b, TAG_SEQUENCE, &alg);
}

static const uint8_t oid_sha256_rsa[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b};

/* How the two encoders differ: apksig gives every AlgorithmIdentifier
 * NULL parameters and names the key type as signature algorithm; Bouncy
 * Castle's CMSSignedDataGenerator (signapk -w) leaves SHA-256's
 * parameters out and names the signature algorithm (sha256WithRSA),
 * while for SHA-1 it writes what apksig writes. */
typedef struct pkcs7_style {
    bool digest_null;
    const uint8_t *sig_oid;
    size_t sig_oid_len;
} pkcs7_style;

static void digest_algorithm(hs_apk_buf *b, bool sha256, bool null_params)
{
    if (sha256)
        algorithm_id(b, oid_sha256, sizeof oid_sha256, null_params);
    else
        algorithm_id(b, oid_sha1, sizeof oid_sha1, true);
}

static hs_result issuer_and_serial(const uint8_t *cert_der, size_t cert_len, hs_apk_buf *b,
                                   hs_error *e)
{
    const uint8_t *p = cert_der;
    X509 *cert = d2i_X509(NULL, &p, (long)cert_len);
    if (cert == NULL)
        return hs_fail(e, HS_E_FORMAT, "signing certificate is not DER X.509");
    uint8_t *issuer = NULL, *serial = NULL;
    int issuer_len = i2d_X509_NAME(X509_get_issuer_name(cert), &issuer);
    int serial_len = i2d_ASN1_INTEGER((ASN1_INTEGER *)X509_get0_serialNumber(cert), &serial);
    X509_free(cert);
    hs_result r = HS_OK;
    if (issuer_len <= 0 || serial_len <= 0) {
        r = hs_fail(e, HS_E_CRYPTO, "cannot encode the certificate's issuer and serial number");
    } else {
        hs_apk_buf ias = {0};
        hs_apk_buf_append(&ias, issuer, (size_t)issuer_len);
        hs_apk_buf_append(&ias, serial, (size_t)serial_len);
        der_wrap(b, TAG_SEQUENCE, &ias);
    }
    OPENSSL_free(issuer);
    OPENSSL_free(serial);
    return r;
}

static hs_result build(const uint8_t *cert_der, size_t cert_len, bool sha256,
                       const pkcs7_style *st, const uint8_t *sig, size_t sig_len, hs_apk_buf *out,
                       hs_error *e)
{
    static const uint8_t version1 = 1;
    hs_apk_buf signer = {0}, signed_data = {0}, set = {0}, content = {0}, info = {0};
    der_tlv(&signer, TAG_INTEGER, &version1, 1);
    hs_result r = issuer_and_serial(cert_der, cert_len, &signer, e);
    if (r != HS_OK) {
        hs_apk_buf_free(&signer);
        return r;
    }
    digest_algorithm(&signer, sha256, st->digest_null);
    algorithm_id(&signer, st->sig_oid, st->sig_oid_len, true);
    der_tlv(&signer, TAG_OCTET_STRING, sig, sig_len);

    der_tlv(&signed_data, TAG_INTEGER, &version1, 1);
    digest_algorithm(&set, sha256, st->digest_null);
    der_wrap(&signed_data, TAG_SET, &set);
    hs_apk_buf encap = {0};
    der_tlv(&encap, TAG_OID, oid_data, sizeof oid_data);
    der_wrap(&signed_data, TAG_SEQUENCE, &encap);
    der_tlv(&signed_data, TAG_CONTEXT_0, cert_der, cert_len);
    hs_apk_buf signer_seq = {0};
    der_wrap(&signer_seq, TAG_SEQUENCE, &signer);
    der_wrap(&signed_data, TAG_SET, &signer_seq);

    der_wrap(&content, TAG_SEQUENCE, &signed_data);
    der_tlv(&info, TAG_OID, oid_signed_data, sizeof oid_signed_data);
    der_wrap(&info, TAG_CONTEXT_0, &content);
    der_wrap(out, TAG_SEQUENCE, &info);
    return hs_apk_buf_check(out, "JAR signature block", e);
}

hs_result hs_jar_pkcs7_build(const uint8_t *cert_der, size_t cert_len, bool sha256, bool rsa,
                             const uint8_t *sig, size_t sig_len, hs_apk_buf *out, hs_error *e)
{
    pkcs7_style st = {true, rsa ? oid_rsa : oid_ec_public_key,
                      rsa ? sizeof oid_rsa : sizeof oid_ec_public_key};
    return build(cert_der, cert_len, sha256, &st, sig, sig_len, out, e);
}

hs_result hs_jar_pkcs7_build_bc_rsa(const uint8_t *cert_der, size_t cert_len, bool sha256,
                                    const uint8_t *sig, size_t sig_len, hs_apk_buf *out,
                                    hs_error *e)
{
    /* (with SHA-1 it writes what apksig does) */
    pkcs7_style st = {!sha256, sha256 ? oid_sha256_rsa : oid_rsa,
                      sha256 ? sizeof oid_sha256_rsa : sizeof oid_rsa};
    return build(cert_der, cert_len, sha256, &st, sig, sig_len, out, e);
}
