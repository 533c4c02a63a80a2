/* vbmeta structs: hs_avb_vbmeta_parse (header, authentication and
 * auxiliary blocks, descriptors), then the `avbtool info_image` formatter
 * over everything the parser accepted. */
#include "fuzz_common.h"
#include "avb/avb_info.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hs_avb_image img;
    hs_error e;
    memset(&img, 0, sizeof img);
    if (hs_avb_vbmeta_parse(data, size, "fuzz vbmeta", &img.vbmeta, &e) != HS_OK)
        return 0;
    img.path = (char *)"fuzz.img";
    img.image_size = size;
    char *text = NULL;
    if (hs_avb_info_format(&img, &text, &e) == HS_OK)
        free(text);
    hs_avb_vbmeta_free(&img.vbmeta);
    return 0;
}
