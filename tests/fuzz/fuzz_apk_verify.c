/* Signed APKs: hs_apk_verify_file (APK signing block, v2/v3 signer
 * blocks, certificates, v1 JAR manifest and PKCS#7), as `hsmsign verify
 * apk` reads an untrusted APK. */
#include "fuzz_common.h"
#include "apk/apk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path);
    if (fd < 0)
        return 0;
    hs_apk_verify_report rep;
    hs_error e;
    memset(&rep, 0, sizeof rep);
    (void)hs_apk_verify_file(path, &rep, &e);
    hs_apk_verify_report_free(&rep);
    close(fd);
    return 0;
}
