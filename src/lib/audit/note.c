/* C2SP signed notes (see note.h). */
#include "audit/note.h"

#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keystore/auditkey.h"
#include "util/encoding.h"

#define SIG_TYPE_ED25519 0x01
#define SIG_TYPE_ECDSA 0x02
/* The em dash (U+2014) and the space that open a signature line. */
static const char sig_prefix[] = "\xe2\x80\x94 ";

hs_result hs_note_key_id(const char *name, EVP_PKEY *pub, uint32_t *id, hs_error *e)
{
    uint8_t h[SHA256_DIGEST_LENGTH];
    if (EVP_PKEY_get_id(pub) == EVP_PKEY_ED25519) {
        uint8_t raw[32];
        size_t raw_len = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(pub, raw, &raw_len) != 1 || raw_len != 32)
            return hs_fail(e, HS_E_CRYPTO, "cannot read the Ed25519 public key of '%s'", name);
        size_t nlen = strlen(name);
        uint8_t *buf = malloc(nlen + 2 + sizeof raw);
        if (buf == NULL)
            return hs_fail(e, HS_E_NOMEM, "out of memory");
        memcpy(buf, name, nlen);
        buf[nlen] = '\n';
        buf[nlen + 1] = SIG_TYPE_ED25519;
        memcpy(buf + nlen + 2, raw, sizeof raw);
        SHA256(buf, nlen + 2 + sizeof raw, h);
        free(buf);
    } else if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC) {
        unsigned char *der = NULL;
        int der_len = i2d_PUBKEY(pub, &der);
        if (der_len <= 0)
            return hs_fail(e, HS_E_CRYPTO, "cannot encode the ECDSA public key of '%s'", name);
        SHA256(der, (size_t)der_len, h);
        OPENSSL_free(der);
    } else {
        return hs_fail(e, HS_E_USAGE, "key '%s': signed notes take an Ed25519 or ECDSA key", name);
    }
    *id = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    return HS_OK;
}

static bool valid_key_name(const char *name)
{
    if (*name == '\0')
        return false;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '+')
            return false;
    return true;
}

hs_result hs_note_assemble(const char *text, const char *name, EVP_PKEY *pub, const uint8_t *sig,
                           size_t sig_len, char **note, hs_error *e)
{
    *note = NULL;
    size_t text_len = strlen(text);
    if (text_len == 0 || text[text_len - 1] != '\n')
        return hs_fail(e, HS_E_INTERNAL, "a signed note's text must end in a newline");
    if (!valid_key_name(name))
        return hs_fail(e, HS_E_USAGE, "'%s' is not a valid signed-note key name", name);
    uint32_t id;
    hs_result r = hs_note_key_id(name, pub, &id, e);
    if (r != HS_OK)
        return r;
    uint8_t *blob = malloc(4 + sig_len);
    if (blob == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    blob[0] = (uint8_t)(id >> 24);
    blob[1] = (uint8_t)(id >> 16);
    blob[2] = (uint8_t)(id >> 8);
    blob[3] = (uint8_t)id;
    memcpy(blob + 4, sig, sig_len);
    char *b64 = hs_base64_encode(blob, 4 + sig_len);
    free(blob);
    if (b64 == NULL || asprintf(note, "%s\n%s%s %s\n", text, sig_prefix, name, b64) < 0) {
        free(b64);
        *note = NULL;
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    free(b64);
    return HS_OK;
}

/* C2SP: valid UTF-8 is the writer's duty; a verifier must at least refuse
 * control characters other than newline, and NULs that would cut strings. */
static bool clean_text(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\n')
            return false;
    return true;
}

/* One signature line (without its newline): checks it when it is from
 * (name, id). *known tells whether it was. */
static hs_result check_line(const char *line, size_t len, const char *name, uint32_t id,
                            EVP_PKEY *pub, const char *text, size_t text_len, bool *known,
                            hs_error *e)
{
    *known = false;
    size_t plen = sizeof sig_prefix - 1, nlen = strlen(name);
    if (len < plen || memcmp(line, sig_prefix, plen) != 0)
        return hs_fail(e, HS_E_FORMAT, "signed note: a signature line does not start with an em dash");
    const char *rest = line + plen, *end = line + len;
    const char *space = memchr(rest, ' ', (size_t)(end - rest));
    if (space == NULL || space == rest)
        return hs_fail(e, HS_E_FORMAT, "signed note: a signature line has no key name");
    if ((size_t)(space - rest) != nlen || memcmp(rest, name, nlen) != 0)
        return HS_OK;
    char b64[1024];
    size_t blen = (size_t)(end - space - 1);
    if (blen >= sizeof b64)
        return hs_fail(e, HS_E_FORMAT, "signed note: signature of '%s' too long", name);
    memcpy(b64, space + 1, blen);
    b64[blen] = '\0';
    uint8_t *blob;
    size_t blob_len;
    bool ok = hs_base64_decode(b64, &blob, &blob_len);
    if (ok && blob_len < 5) {
        free(blob);
        ok = false;
    }
    if (!ok)
        return hs_fail(e, HS_E_FORMAT, "signed note: signature of '%s' is not valid base64", name);
    uint32_t got = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 | (uint32_t)blob[2] << 8 |
                   blob[3];
    hs_result r = HS_OK;
    if (got == id) {
        *known = true;
        r = hs_auditkey_verify(pub, (const uint8_t *)text, text_len, blob + 4, blob_len - 4, e);
        if (r != HS_OK)
            r = hs_fail(e, HS_E_VERIFY, "signed note: the signature of '%s' (key ID %08x) does not "
                                        "verify: the note was altered or forged", name, id);
    }
    free(blob);
    return r;
}

hs_result hs_note_verify(const char *note, size_t len, const char *name, EVP_PKEY *pub,
                         size_t *text_len, hs_error *e)
{
    if (!clean_text(note, len))
        return hs_fail(e, HS_E_FORMAT, "signed note: contains a control character");
    if (len < 2 || note[len - 1] != '\n')
        return hs_fail(e, HS_E_FORMAT, "signed note: does not end in a newline");
    /* The text ends at the last blank line. */
    size_t split = 0;
    for (size_t i = len - 1; i > 0; i--)
        if (note[i] == '\n' && note[i - 1] == '\n') {
            split = i;
            break;
        }
    if (split == 0)
        return hs_fail(e, HS_E_FORMAT, "signed note: no blank line before the signatures");
    uint32_t id;
    hs_result r = hs_note_key_id(name, pub, &id, e);
    if (r != HS_OK)
        return r;
    size_t verified = 0;
    for (size_t pos = split + 1; pos < len;) {
        const char *nl = memchr(note + pos, '\n', len - pos);
        size_t llen = (size_t)(nl - (note + pos));
        bool known;
        r = check_line(note + pos, llen, name, id, pub, note, split, &known, e);
        if (r != HS_OK)
            return r;
        verified += known;
        pos += llen + 1;
    }
    if (verified == 0)
        return hs_fail(e, HS_E_VERIFY, "signed note: no signature by '%s' with key ID %08x (signed "
                                       "by another key)", name, id);
    *text_len = split;
    return HS_OK;
}
