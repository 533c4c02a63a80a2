#include "util/encoding.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

void hs_hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool hs_hex_decode(const char *in, uint8_t *out, size_t out_len)
{
    if (strlen(in) != 2 * out_len)
        return false;
    for (size_t i = 0; i < out_len; i++) {
        int hi = hex_value(in[2 * i]), lo = hex_value(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

char *hs_base64_encode(const uint8_t *in, size_t len)
{
    if (len > (size_t)INT32_MAX / 2)
        return NULL;
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out == NULL)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

bool hs_base64_decode(const char *in, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    size_t n = strlen(in);
    if (n % 4 != 0 || n > (size_t)INT32_MAX / 2)
        return false;
    uint8_t *buf = malloc(n / 4 * 3 + 1);
    if (buf == NULL)
        return false;
    int got = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
    if (got < 0) {
        free(buf);
        return false;
    }
    /* EVP_DecodeBlock counts padding as zero bytes; remove them, and
     * reject anything that does not re-encode to the same text so that
     * only one text maps to each value. */
    size_t len = (size_t)got;
    if (n > 0 && in[n - 1] == '=')
        len--;
    if (n > 1 && in[n - 2] == '=')
        len--;
    char *again = hs_base64_encode(buf, len);
    bool ok = again != NULL && strcmp(again, in) == 0;
    free(again);
    if (!ok) {
        free(buf);
        return false;
    }
    *out = buf;
    *out_len = len;
    return true;
}

bool hs_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}
