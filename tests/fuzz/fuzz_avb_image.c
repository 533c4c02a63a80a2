/* Whole AVB images from a file: footer detection, vbmeta location and
 * parsing (hs_avb_image_load), as `hsmsign avb info` reads them. */
#include "fuzz_common.h"
#include "avb/avb_info.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path);
    if (fd < 0)
        return 0;
    hs_avb_image img;
    hs_error e;
    memset(&img, 0, sizeof img);
    if (hs_avb_image_load(path, &img, &e) == HS_OK) {
        char *text = NULL;
        if (hs_avb_info_format(&img, &text, &e) == HS_OK)
            free(text);
        hs_avb_image_free(&img);
    }
    close(fd);
    return 0;
}
