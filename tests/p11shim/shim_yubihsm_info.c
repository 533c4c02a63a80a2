/* The yubihsm2 personality's C_GetInfo (kept apart from shim_yubihsm.c,
 * which is long enough). yubihsm_pkcs11.c C_GetInfo: manufacturer
 * "Yubico (www.yubico.com)", description "YubiHSM PKCS#11 Library",
 * library version {major, minor * 10 + patch} of yubihsm-shell (2.4.0
 * here), flags 0. hsmsign chooses its yubihsm profile from these two
 * strings, as it would with Yubico's module. */
#include <string.h>

#include "p11shim.h"

static void pad(CK_UTF8CHAR *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    memset(dst, ' ', size);
    memcpy(dst, src, n < size ? n : size);
}

CK_RV shim_yh_get_info(CK_INFO_PTR info)
{
    CK_RV rv = shim_real()->C_GetInfo(info);
    if (rv != CKR_OK)
        return rv;
    pad(info->manufacturerID, sizeof info->manufacturerID, "Yubico (www.yubico.com)");
    pad(info->libraryDescription, sizeof info->libraryDescription, "YubiHSM PKCS#11 Library");
    info->libraryVersion = (CK_VERSION){2, 40};
    info->flags = 0;
    return CKR_OK;
}
