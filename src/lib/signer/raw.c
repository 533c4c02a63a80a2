#include "signer/raw.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/file.h"

#define CHUNK (1 << 20)

hs_result hs_hash_file(const char *path, const EVP_MD *md, uint8_t *digest, unsigned *digest_len,
                       uint8_t sha256[32], uint64_t *size, hs_error *e)
{
    /* Regular files only, opened without blocking: a FIFO with no writer
     * used to hang here, and with one it would be signed as whatever
     * happened to be written, which no one can hash again to check. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return hs_fail(e, errno == ENOENT ? HS_E_NOTFOUND : HS_E_IO, "%s: cannot open: %s", path,
                       strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return hs_fail(e, HS_E_IO, "%s: not a regular file", path);
    }
    EVP_MD_CTX *a = EVP_MD_CTX_new(), *b = EVP_MD_CTX_new();
    uint8_t *buf = malloc(CHUNK);
    hs_result r = HS_OK;
    *size = 0;
    if (a == NULL || b == NULL || buf == NULL || !EVP_DigestInit_ex(a, md, NULL) ||
        !EVP_DigestInit_ex(b, EVP_sha256(), NULL)) {
        r = hs_fail(e, HS_E_NOMEM, "%s: cannot start hashing", path);
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = hs_fail(e, HS_E_IO, "%s: read failed: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(a, buf, (size_t)n);
        EVP_DigestUpdate(b, buf, (size_t)n);
        *size += (uint64_t)n;
    }
    if (!EVP_DigestFinal_ex(a, digest, digest_len) || !EVP_DigestFinal_ex(b, sha256, NULL))
        r = hs_fail(e, HS_E_CRYPTO, "%s: hashing failed", path);
out:
    free(buf);
    EVP_MD_CTX_free(a);
    EVP_MD_CTX_free(b);
    close(fd);
    return r;
}

hs_result hs_sign_raw_file(hs_signer *s, const char *key_name, hs_sig_alg alg, const char *in,
                           const char *out, hs_raw_report *rep, hs_error *e)
{
    memset(rep, 0, sizeof *rep);
    if (hs_same_file(in, out))
        return hs_fail(e, HS_E_USAGE, "output %s is the input file; refusing to overwrite it", out);
    /* Fail on a bad key before reading a large input. */
    const hs_keyfile *kf;
    hs_result r = hs_signer_keyfile(s, key_name, &kf, e);
    if (r != HS_OK)
        return r;
    if (!hs_keyalg_can_sign(kf->alg, alg))
        return hs_fail(e, HS_E_USAGE, "key '%s' is %s and cannot make %s signatures", key_name,
                       hs_keyalg_name(kf->alg), hs_sig_alg_name(alg));
    uint8_t digest[HS_MAX_DIGEST_LEN];
    unsigned dlen = 0;
    r = hs_hash_file(in, hs_sig_alg_md(alg), digest, &dlen, rep->input_sha256, &rep->input_size, e);
    if (r != HS_OK)
        return r;
    hs_sign_request req = {
        .key_name = key_name, .alg = alg, .digest = digest, .digest_len = dlen,
        .operation = "raw", .artifact = in, .artifact_sha256 = rep->input_sha256,
    };
    memcpy(req.tbs_sha256, rep->input_sha256, 32); /* the bytes signed are the file */
    uint8_t *sig;
    size_t sig_len;
    r = hs_signer_sign(s, &req, &sig, &sig_len, e);
    if (r != HS_OK)
        return r;
    r = hs_write_file_atomic(out, sig, sig_len, 0644, false, e);
    if (r == HS_OK) {
        SHA256(sig, sig_len, rep->sig_sha256);
        rep->sig_len = sig_len;
    }
    free(sig);
    return r;
}
