/* The whole-file signature of an OTA package (see ota_verify.h). */
#include "ota/ota_verify.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apk/apk_verify_internal.h"
#include "zip/zip.h"

#define FOOTER_SIZE 6
#define EOCD_SIZE 22

/* Where the signed bytes end and the PKCS#7 block lies, as recovery's
 * verifier (bootable/recovery verifier.cpp) finds them; false when the
 * file has no whole-file footer. */
static bool find_block(const uint8_t *f, size_t len, size_t *signed_len, size_t *block_off,
                       size_t *block_len)
{
    if (len < FOOTER_SIZE + EOCD_SIZE)
        return false;
    const uint8_t *footer = f + len - FOOTER_SIZE;
    size_t sig_start = hs_le16(footer), comment = hs_le16(footer + 4);
    if (hs_le16(footer + 2) != 0xffff || sig_start <= FOOTER_SIZE || sig_start > comment ||
        comment + EOCD_SIZE > len)
        return false;
    const uint8_t *eocd = f + len - comment - EOCD_SIZE;
    if (memcmp(eocd, "PK\x05\x06", 4) != 0 || hs_le16(eocd + 20) != comment)
        return false;
    /* A second EOCD signature inside the comment would let a zip reader
     * see another archive than the one signed: recovery refuses it. */
    for (size_t i = 4; i + 4 <= comment + EOCD_SIZE; i++)
        if (memcmp(eocd + i, "PK\x05\x06", 4) == 0)
            return false;
    *signed_len = len - comment - 2;
    *block_off = len - sig_start;
    *block_len = sig_start - FOOTER_SIZE;
    return true;
}

static hs_result verify_mapped(const uint8_t *f, size_t len, const char *path,
                               hs_ota_signature *out, hs_error *e)
{
    size_t signed_len, off, block_len;
    if (!find_block(f, len, &signed_len, &off, &block_len))
        return hs_fail(e, HS_E_NOTFOUND, "%s: no whole-file (signapk -w) signature", path);
    hs_pkcs7_signer s;
    hs_result r = hs_apk_pkcs7_verify(f + off, block_len, f, signed_len, HS_SDK_N, HS_SDK_LATEST,
                                      path, &s, e);
    if (r != HS_OK)
        return r;
    out->cert_der = malloc(s.cert_len);
    if (out->cert_der == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    memcpy(out->cert_der, s.cert, s.cert_len);
    out->cert_der_len = s.cert_len;
    EVP_Digest(s.sig, s.sig_len, out->sig_sha256, NULL, EVP_sha256(), NULL);
    return HS_OK;
}

hs_result hs_ota_wholefile_verify(const char *path, hs_ota_signature *out, hs_error *e)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hs_fail(e, HS_E_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    hs_result r = HS_OK;
    if (fstat(fd, &st) != 0)
        r = hs_fail(e, HS_E_IO, "%s: %s", path, strerror(errno));
    else if (st.st_size < FOOTER_SIZE + EOCD_SIZE)
        r = hs_fail(e, HS_E_NOTFOUND, "%s: no whole-file (signapk -w) signature", path);
    if (r != HS_OK) {
        close(fd);
        return r;
    }
    /* Mapped, not read: OTA packages run to gigabytes and only the signed
     * range is hashed, once. */
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return hs_fail(e, HS_E_IO, "%s: cannot map: %s", path, strerror(errno));
    r = verify_mapped(map, len, path, out, e);
    munmap(map, len);
    return r;
}

void hs_ota_signature_free(hs_ota_signature *s)
{
    free(s->cert_der);
    memset(s, 0, sizeof *s);
}
