/* PKCS#11 return values and mechanisms in words: every message that
 * involves the token says CKR_PIN_INCORRECT, never 0xa0. */
#ifndef HSMSIGN_P11_CKR_H
#define HSMSIGN_P11_CKR_H

#include <p11-kit/pkcs11.h>

const char *hs_ckr_name(CK_RV rv);
const char *hs_ckm_name(CK_MECHANISM_TYPE m);

#endif
