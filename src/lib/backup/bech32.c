#include "backup/bech32.h"

#include <stdlib.h>
#include <string.h>

#include "util/secmem.h"

static const char CHARSET[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
static const uint32_t GENERATOR[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd,
                                      0x2a1462b3};
#define CHECKSUM_WORDS 6

static uint32_t polymod_step(uint32_t chk, uint8_t value)
{
    uint32_t top = chk >> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ value;
    for (int i = 0; i < 5; i++) {
        if ((top >> i) & 1)
            chk ^= GENERATOR[i];
    }
    return chk;
}

/* ASCII only (tolower would follow the locale); the arithmetic is on
 * int, hence the explicit conversion back. */
static char to_lower(char c)
{
    return (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
}

static char to_upper(char c)
{
    return (char)((c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c);
}

/* The checksum covers the expanded lower-case hrp, then the data words. */
static uint32_t hrp_polymod(const char *hrp, size_t hrp_len)
{
    uint32_t chk = 1;
    for (size_t i = 0; i < hrp_len; i++)
        chk = polymod_step(chk, (uint8_t)((uint8_t)to_lower(hrp[i]) >> 5));
    chk = polymod_step(chk, 0);
    for (size_t i = 0; i < hrp_len; i++)
        chk = polymod_step(chk, (uint8_t)((uint8_t)to_lower(hrp[i]) & 31));
    return chk;
}

static int charset_index(char c)
{
    const char *p = (c != '\0') ? strchr(CHARSET, c) : NULL;
    return p ? (int)(p - CHARSET) : -1;
}

size_t hs_bech32_encoded_size(size_t hrp_len, size_t data_len)
{
    return hrp_len + 1 + (data_len * 8 + 4) / 5 + CHECKSUM_WORDS + 1;
}

static bool hrp_valid(const char *hrp, size_t len)
{
    bool has_lower = false, has_upper = false;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)hrp[i];
        if (c < 33 || c > 126)
            return false;
        has_lower |= (c >= 'a' && c <= 'z');
        has_upper |= (c >= 'A' && c <= 'Z');
    }
    return !(has_lower && has_upper);
}

hs_result hs_bech32_encode(const char *hrp, const uint8_t *data, size_t data_len, bool upper,
                           char *out, size_t out_cap, hs_error *e)
{
    size_t hrp_len = strlen(hrp);
    if (!hrp_valid(hrp, hrp_len))
        return hs_fail(e, HS_E_USAGE, "bech32: invalid human-readable part \"%s\"", hrp);
    if (data_len > SIZE_MAX / 8 - hrp_len - 16 ||
        out_cap < hs_bech32_encoded_size(hrp_len, data_len))
        return hs_fail(e, HS_E_INTERNAL, "bech32: output buffer too small");

    size_t pos = 0;
    for (size_t i = 0; i < hrp_len; i++)
        out[pos++] = to_lower(hrp[i]);
    out[pos++] = '1';

    uint32_t chk = hrp_polymod(hrp, hrp_len);
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i <= data_len; i++) {
        bool flush = (i == data_len);
        if (!flush) {
            acc = (acc << 8) | data[i];
            bits += 8;
        } else if (bits > 0) {
            acc <<= 5 - bits; /* zero-pad the final group */
            bits = 5;
        }
        while (bits >= 5) {
            bits -= 5;
            uint8_t w = (uint8_t)((acc >> bits) & 31);
            chk = polymod_step(chk, w);
            out[pos++] = CHARSET[w];
        }
        acc &= (1u << bits) - 1; /* keep only unconsumed bits (secrets pass here) */
    }
    for (int i = 0; i < CHECKSUM_WORDS; i++)
        chk = polymod_step(chk, 0);
    chk ^= 1;
    for (int i = 0; i < CHECKSUM_WORDS; i++)
        out[pos++] = CHARSET[(chk >> (5 * (5 - i))) & 31];
    out[pos] = '\0';
    if (upper) {
        for (size_t i = 0; i < pos; i++)
            out[i] = to_upper(out[i]);
    }
    /* Secret bits passed through acc; a plain `acc = 0` here is a dead
     * store the compiler drops. */
    hs_wipe(&acc, sizeof acc);
    return HS_OK;
}

hs_result hs_bech32_decode_words(const char *s, size_t max_len, char *hrp, size_t hrp_cap,
                                 uint8_t *words, size_t words_cap, size_t *n_words,
                                 hs_error *e)
{
    size_t len = strlen(s);
    *n_words = 0;
    if (max_len != HS_BECH32_NO_LIMIT && len > max_len)
        return hs_fail(e, HS_E_FORMAT, "bech32: string is %zu characters, limit is %zu", len,
                       max_len);

    bool has_lower = false, has_upper = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 33 || c > 126)
            return hs_fail(e, HS_E_FORMAT,
                           "bech32: character %zu is not printable ASCII (0x%02x)", i, c);
        has_lower |= (c >= 'a' && c <= 'z');
        has_upper |= (c >= 'A' && c <= 'Z');
    }
    if (has_lower && has_upper)
        return hs_fail(e, HS_E_FORMAT, "bech32: mixed upper and lower case");

    const char *sep = strrchr(s, '1');
    if (sep == NULL)
        return hs_fail(e, HS_E_FORMAT, "bech32: no '1' separator");
    size_t hrp_len = (size_t)(sep - s);
    size_t data_chars = len - hrp_len - 1;
    if (hrp_len == 0)
        return hs_fail(e, HS_E_FORMAT, "bech32: empty human-readable part");
    if (data_chars < CHECKSUM_WORDS)
        return hs_fail(e, HS_E_FORMAT, "bech32: data part shorter than the 6-character checksum");
    if (hrp_len >= hrp_cap)
        return hs_fail(e, HS_E_FORMAT, "bech32: human-readable part too long (%zu characters)",
                       hrp_len);
    if (data_chars - CHECKSUM_WORDS > words_cap)
        return hs_fail(e, HS_E_FORMAT, "bech32: data part too long (%zu characters)",
                       data_chars);

    uint32_t chk = hrp_polymod(s, hrp_len);
    for (size_t i = 0; i < data_chars; i++) {
        int v = charset_index(to_lower(sep[1 + i]));
        if (v < 0) {
            hs_wipe(words, words_cap);
            return hs_fail(e, HS_E_FORMAT,
                           "bech32: character %zu of the data part is not in the bech32 alphabet",
                           i);
        }
        chk = polymod_step(chk, (uint8_t)v);
        if (i < data_chars - CHECKSUM_WORDS)
            words[i] = (uint8_t)v;
    }
    if (chk != 1) {
        hs_wipe(words, words_cap);
        return hs_fail(e, HS_E_FORMAT, "bech32: checksum mismatch (mistyped or truncated key)");
    }
    for (size_t i = 0; i < hrp_len; i++)
        hrp[i] = to_lower(s[i]);
    hrp[hrp_len] = '\0';
    *n_words = data_chars - CHECKSUM_WORDS;
    return HS_OK;
}

/* 5-bit words to bytes; BIP-173 allows at most 4 padding bits, all zero. */
static hs_result words_to_bytes(const uint8_t *words, size_t n_words, uint8_t *data,
                                size_t data_cap, size_t *data_len, hs_error *e)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;
    hs_result rc = HS_OK;
    for (size_t i = 0; i < n_words; i++) {
        acc = ((acc << 5) | words[i]) & 0xfff;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (n >= data_cap) {
                rc = hs_fail(e, HS_E_FORMAT, "bech32: decoded data longer than %zu bytes",
                             data_cap);
                goto out;
            }
            data[n++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits >= 5)
        rc = hs_fail(e, HS_E_FORMAT, "bech32: more than 4 bits of padding");
    else if ((acc & ((1u << bits) - 1)) != 0)
        rc = hs_fail(e, HS_E_FORMAT, "bech32: non-zero padding bits");
out:
    hs_wipe(&acc, sizeof acc); /* as in the encoder: not a droppable store */
    if (rc != HS_OK)
        hs_wipe(data, data_cap);
    else
        *data_len = n;
    return rc;
}

hs_result hs_bech32_decode(const char *s, size_t max_len, char *hrp, size_t hrp_cap,
                           uint8_t *data, size_t data_cap, size_t *data_len, hs_error *e)
{
    *data_len = 0;
    size_t cap = strlen(s) + 1;
    uint8_t *words = malloc(cap);
    if (words == NULL)
        return hs_fail(e, HS_E_NOMEM, "bech32: out of memory");
    size_t n_words;
    hs_result rc = hs_bech32_decode_words(s, max_len, hrp, hrp_cap, words, cap, &n_words, e);
    if (rc == HS_OK)
        rc = words_to_bytes(words, n_words, data, data_cap, data_len, e);
    hs_wipe(words, cap); /* the words of a secret key are the secret key */
    free(words);
    return rc;
}
