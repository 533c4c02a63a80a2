/* Finding objects, reading attributes, and turning a token's public key
 * attributes into an OpenSSL key. */
#ifndef HSMSIGN_P11_OBJECTS_H
#define HSMSIGN_P11_OBJECTS_H

#include <stdint.h>

#include <openssl/evp.h>

#include "p11/p11.h"

/* Finds objects matching tmpl. Fills up to max handles into out and the
 * total number found into *count. */
hs_result hs_p11_find(hs_p11 *p, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
                      CK_OBJECT_HANDLE *out, size_t max, size_t *count, hs_error *e) HS_MUST_CHECK;

/* Reads one attribute into a malloc'd buffer. */
hs_result hs_p11_get_attr(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                          CK_ATTRIBUTE_TYPE type, uint8_t **val, size_t *len,
                          hs_error *e) HS_MUST_CHECK;

/* Reads one attribute whose size a length query (pValue NULL) has just
 * given, in one call: hs_p11_get_attr without its own query. */
hs_result hs_p11_get_attr_sized(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                                CK_ATTRIBUTE_TYPE type, CK_ULONG size, uint8_t **val,
                                size_t *len, hs_error *e) HS_MUST_CHECK;

/* Reads n attributes in one C_GetAttributeValue where the token answers
 * a batch as PKCS#11 v2.40 section 5.7 says; each entry of t is a
 * CK_BBOOL (pValue points at one) or a length query (pValue NULL). After
 * it, each entry holds its value or length, or ulValueLen ==
 * CK_UNAVAILABLE_INFORMATION when the token does not know the attribute
 * (CKR_ATTRIBUTE_TYPE_INVALID). A token that answers the batch any other
 * way is asked again, one attribute per call; any other failure of those
 * fails (HS_E_P11) naming what ("the wrap key's custody attributes") and
 * the attribute. On SoftHSM each call re-reads the object's file from
 * disk: one call instead of n is what this is for. */
hs_result hs_p11_get_attrs(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE *t,
                           CK_ULONG n, const char *what, hs_error *e) HS_MUST_CHECK;

/* Reads a CK_BBOOL attribute; *value is false when the token does not
 * know the attribute. */
hs_result hs_p11_get_bool(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                          CK_ATTRIBUTE_TYPE type, bool *value, hs_error *e) HS_MUST_CHECK;

/* Reads an attribute whose value is an array of attributes
 * (CKA_UNWRAP_TEMPLATE, CKA_WRAP_TEMPLATE): *n entries, each pValue
 * malloc'd. Absent or empty: *arr NULL, *n 0, HS_OK. Free with
 * hs_p11_free_attr_array. */
hs_result hs_p11_get_attr_array(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                                CK_ATTRIBUTE_TYPE type, CK_ATTRIBUTE **arr, CK_ULONG *n,
                                hs_error *e) HS_MUST_CHECK;
/* The same, for an array whose size in bytes a length query has given
 * (0: absent, HS_OK). */
hs_result hs_p11_get_attr_array_sized(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                                      CK_ATTRIBUTE_TYPE type, CK_ULONG size, CK_ATTRIBUTE **arr,
                                      CK_ULONG *n, hs_error *e) HS_MUST_CHECK;
void hs_p11_free_attr_array(CK_ATTRIBUTE *arr, CK_ULONG n);

/* Builds an EVP_PKEY from a public key object (CKK_RSA: modulus and
 * exponent; CKK_EC: P-256 point). */
hs_result hs_p11_public_key(hs_p11 *p, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub,
                            EVP_PKEY **out, hs_error *e) HS_MUST_CHECK;

/* Public keys from their parts (public data only): an RSA modulus and
 * exponent (big-endian), a P-256 point (SEC1 encoding). what names where
 * they come from in messages ("the token's attributes"). */
hs_result hs_rsa_public_from_parts(const uint8_t *n, size_t nlen, const uint8_t *ex, size_t elen,
                                   const char *what, EVP_PKEY **out, hs_error *e) HS_MUST_CHECK;
hs_result hs_p256_public_from_point(const uint8_t *pt, size_t len, const char *what,
                                    EVP_PKEY **out, hs_error *e) HS_MUST_CHECK;

/* DER of the P-256 curve OID, for CKA_EC_PARAMS. */
extern const uint8_t hs_p256_oid_der[10];

#endif
