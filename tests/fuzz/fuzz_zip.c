/* ZIP archives as APKs: hs_zip_open (EOCD, central directory, local
 * headers, APK signing block location), reading each small entry
 * (inflate, CRC) and the minSdkVersion from the binary manifest. */
#include "fuzz_common.h"
#include "apk/axml.h"
#include "zip/zip.h"
#include "zip/zip_inflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path);
    if (fd < 0)
        return 0;
    hs_zip z;
    hs_error e;
    if (hs_zip_open(&z, path, &e) == HS_OK) {
        for (size_t i = 0; i < z.entry_count && i < 64; i++) {
            uint8_t *buf = NULL;
            size_t len = 0;
            if (hs_zip_read_entry(&z, &z.entries[i], 1u << 20, &buf, &len, &e) == HS_OK)
                free(buf);
        }
        int min_sdk = 0;
        (void)hs_axml_apk_min_sdk(&z, &min_sdk, &e);
        hs_zip_close(&z);
    }
    close(fd);
    return 0;
}
