/* The placeholder .pk8 (see placeholder.h). */
#include "keystore/placeholder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/encoding.h"

hs_result hs_placeholder_pk8_format(const hs_keyfile *kf, char **text, size_t *len, hs_error *e)
{
    char fp[65];
    hs_hex_encode(kf->fingerprint, 32, fp);
    int n = asprintf(text,
                     HS_PLACEHOLDER_MAGIC
                     "This is not a private key. The private key of '%s' is kept by hsmsign,\n"
                     "wrapped under an HSM's wrap key, and is used only inside the HSM.\n"
                     "AOSP releasetools requires %s.pk8 to exist; sign through hsmsign\n"
                     "(hsmsign-java / hsmsign signapk, hsmsign payload-signer, hsmsign avb\n"
                     "signing-helper). Written by `hsmsign key export-releasetools`.\n"
                     "key: %s\n"
                     "public-key-sha256: %s\n",
                     kf->name, kf->name, kf->name, fp);
    if (n < 0) {
        *text = NULL;
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    }
    *len = (size_t)n;
    return HS_OK;
}

bool hs_placeholder_pk8_is(const uint8_t *data, size_t len)
{
    size_t m = strlen(HS_PLACEHOLDER_MAGIC);
    return len >= m && memcmp(data, HS_PLACEHOLDER_MAGIC, m) == 0;
}

/* The value of the line "FIELD: value\n" in data, as a span. */
static bool field(const uint8_t *data, size_t len, const char *name, const uint8_t **val,
                  size_t *val_len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < len;) {
        const uint8_t *end = memchr(data + i, '\n', len - i);
        size_t line = end != NULL ? (size_t)(end - (data + i)) : len - i;
        if (line > nl + 2 && memcmp(data + i, name, nl) == 0 && data[i + nl] == ':' &&
            data[i + nl + 1] == ' ') {
            *val = data + i + nl + 2;
            *val_len = line - nl - 2;
            return true;
        }
        i += line + 1;
    }
    return false;
}

hs_result hs_placeholder_pk8_parse(const uint8_t *data, size_t len, const char *path,
                                   char name[HS_KEY_NAME_MAX + 1], uint8_t fingerprint[32],
                                   hs_error *e)
{
    const uint8_t *v, *f;
    size_t vl, fl;
    char hex[65];
    if (!hs_placeholder_pk8_is(data, len) || !field(data, len, "key", &v, &vl) ||
        vl == 0 || vl > HS_KEY_NAME_MAX || !field(data, len, "public-key-sha256", &f, &fl) ||
        fl != 64)
        return hs_fail(e, HS_E_FORMAT, "%s: not an hsmsign placeholder .pk8", path);
    memcpy(name, v, vl);
    name[vl] = '\0';
    memcpy(hex, f, 64);
    hex[64] = '\0';
    if (!hs_hex_decode(hex, fingerprint, 32))
        return hs_fail(e, HS_E_FORMAT, "%s: placeholder .pk8 with a malformed public-key-sha256",
                       path);
    return hs_key_name_check(name, e);
}
