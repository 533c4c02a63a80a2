/* Strict base64 for age. age needs two variants: unpadded in header
 * stanzas and the MAC line, padded in armor. Both must be canonical so
 * that each value has exactly one encoding (no malleability), which
 * OpenSSL's lenient decoder does not guarantee. */
#include <string.h>

#include "backup/age_internal.h"

static const char ALPHABET[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t age_b64_encoded_len(size_t n, bool pad)
{
    if (pad)
        return (n + 2) / 3 * 4;
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

void age_b64_encode(const uint8_t *in, size_t n, bool pad, char *out)
{
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = ALPHABET[(v >> 18) & 63];
        out[o++] = ALPHABET[(v >> 12) & 63];
        out[o++] = ALPHABET[(v >> 6) & 63];
        out[o++] = ALPHABET[v & 63];
    }
    size_t rest = n - i;
    if (rest > 0) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (rest == 2)
            v |= (uint32_t)in[i + 1] << 8;
        out[o++] = ALPHABET[(v >> 18) & 63];
        out[o++] = ALPHABET[(v >> 12) & 63];
        if (rest == 2)
            out[o++] = ALPHABET[(v >> 6) & 63];
        if (pad) {
            if (rest == 1)
                out[o++] = '=';
            out[o++] = '=';
        }
    }
    out[o] = '\0';
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

bool age_b64_decode(const char *s, size_t n, bool pad, uint8_t *out, size_t out_cap,
                    size_t *out_len)
{
    size_t chars = n;
    if (pad) {
        if (n % 4 != 0)
            return false;
        /* Up to two '=' at the very end, nowhere else. */
        if (chars > 0 && s[chars - 1] == '=')
            chars--;
        if (chars > 0 && s[chars - 1] == '=')
            chars--;
    }
    if (chars % 4 == 1)
        return false;
    size_t len = chars / 4 * 3 + (chars % 4 == 0 ? 0 : chars % 4 - 1);
    if (pad && n - chars != (3 - len % 3) % 3)
        return false; /* padding must bring the text to a multiple of 4 exactly */
    if (len > out_cap)
        return false;

    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < chars; i++) {
        int v = b64_value(s[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Canonical: the bits left over in the last character are zero. */
    if (acc != 0)
        return false;
    *out_len = o;
    return true;
}
