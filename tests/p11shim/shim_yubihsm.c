/* HSMSIGN_SHIM_PERSONALITY=yubihsm2: the documented semantics of Yubico's
 * yubihsm_pkcs11 module, reproduced over SoftHSM (README.md lists each
 * behaviour and its source). Every key operation still happens in
 * SoftHSM: signatures, key generation, the AES key wrap that carries the
 * key material and the AES-GCM that seals a wrap blob's metadata. The
 * personality only changes what the application sees: the module's
 * identity, its one wrap mechanism, persistent-only objects, the storage
 * limits, the PIN format and the connector configuration.
 *
 * The personality's own calls into SoftHSM (object enumeration, the
 * cascade delete of a key pair's public half, the AES-GCM seal) are not
 * counted and never faulted: they stand for work inside the device. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim_yubihsm.h"

#define CKM_AES_KEY_WRAP_KWP_ 0x210BUL /* PKCS#11 3.0; not in every pkcs11.h */
/* yubihsm_pkcs11.c: the password part of the PIN is 8..64 bytes. */
#define YH_MIN_PIN_LEN 8
#define YH_MAX_PIN_LEN 64

static void copy_padded(CK_UTF8CHAR *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    memset(dst, ' ', size);
    memcpy(dst, src, n < size ? n : size);
}

static bool is_auth_key(unsigned id)
{
    const struct shim_config *c = shim_cfg();
    for (size_t i = 0; i < c->n_yh_auth_keys; i++)
        if (c->yh_auth_keys[i] == id)
            return true;
    return false;
}

/* ---- C_Initialize: the connector configuration ---------------------------- */

/* yubihsm_pkcs11 reads options from pReserved ("connector=URL debug ...",
 * each word becomes --word) and from the file named by YUBIHSM_PKCS11_CONF
 * ("connector = URL" lines); without a connector C_Initialize fails with
 * CKR_ARGUMENTS_BAD (yubihsm_pkcs11.c C_Initialize). */
static bool connector_in_words(const char *text, char *out, size_t size)
{
    const char *p = text;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        size_t len = strcspn(p, " \t\r\n");
        if (len > 10 && strncmp(p, "connector=", 10) == 0 && len - 10 < size) {
            memcpy(out, p + 10, len - 10);
            out[len - 10] = '\0';
            return true;
        }
        p += len;
    }
    return false;
}

static CK_RV connector_in_file(const char *path, char *out, size_t size, bool *found)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "hsmsign-p11shim: yubihsm2: YUBIHSM_PKCS11_CONF=%s: %s\n", path,
                strerror(errno));
        return CKR_GENERAL_ERROR; /* the module's "Unable to parse configuration file" */
    }
    char line[512];
    *found = false;
    while (!*found && fgets(line, sizeof line, f) != NULL) {
        char *p = line + strspn(line, " \t");
        if (strncmp(p, "connector", 9) != 0)
            continue;
        p += 9;
        p += strspn(p, " \t=");
        p[strcspn(p, " \t\r\n\"")] = '\0';
        if (*p == '\0' || strlen(p) >= size)
            continue;
        strcpy(out, p);
        *found = true;
    }
    fclose(f);
    return CKR_OK;
}

CK_RV shim_yh_initialize(CK_VOID_PTR init_args)
{
    const CK_C_INITIALIZE_ARGS *args = init_args;
    char connector[256] = "";
    const char *source = NULL;
    if (args != NULL && args->pReserved != NULL &&
        connector_in_words(args->pReserved, connector, sizeof connector))
        source = "pReserved";
    const char *conf = getenv("YUBIHSM_PKCS11_CONF");
    if (source == NULL && conf != NULL && conf[0] != '\0') {
        bool found = false;
        CK_RV rv = connector_in_file(conf, connector, sizeof connector, &found);
        if (rv != CKR_OK)
            return rv;
        if (found)
            source = "YUBIHSM_PKCS11_CONF";
    }
    if (source == NULL) {
        fputs("hsmsign-p11shim: yubihsm2: no connector: set connector=URL in pReserved or in "
              "the file named by YUBIHSM_PKCS11_CONF\n",
              stderr);
        return CKR_ARGUMENTS_BAD;
    }
    /* SoftHSM refuses a non-NULL pReserved: it is the personality's. */
    CK_C_INITIALIZE_ARGS forwarded = {0};
    if (args != NULL) {
        forwarded = *args;
        forwarded.pReserved = NULL;
    }
    yh_cache_clear();
    CK_RV rv = R()->C_Initialize(args != NULL ? &forwarded : NULL);
    if (rv == CKR_OK) {
        pthread_mutex_lock(&yh_lock);
        strcpy(yh_counts.connector, connector);
        strcpy(yh_counts.config_source, source);
        snprintf(yh_counts.firmware, sizeof yh_counts.firmware, "%s", shim_cfg()->yh_firmware);
        pthread_mutex_unlock(&yh_lock);
    }
    return rv;
}

/* Objects left on the device, measured once more while the application
 * is still logged in (a logged-out session cannot see private keys, so
 * then the running count stands). */
void shim_yh_before_finalize(void)
{
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    if (R()->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_SESSION_HANDLE own;
        if (R()->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &own) != CKR_OK)
            continue;
        CK_SESSION_INFO si;
        struct storage st;
        if (R()->C_GetSessionInfo(own, &si) == CKR_OK && si.state == CKS_RO_USER_FUNCTIONS &&
            yh_measure(own, &st) == CKR_OK)
            yh_note_storage(&st);
        R()->C_CloseSession(own);
    }
    yh_cache_clear(); /* handles mean nothing after C_Finalize */
}

/* ---- identity ------------------------------------------------------------ */

CK_RV shim_yh_get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
    CK_RV rv = R()->C_GetSlotInfo(slot, info);
    if (rv != CKR_OK)
        return rv;
    /* slotDescription is 64 characters: a long URL is cut, as by the module */
    char desc[sizeof yh_counts.connector + 32];
    pthread_mutex_lock(&yh_lock);
    snprintf(desc, sizeof desc, "YubiHSM Connector %s", yh_counts.connector);
    pthread_mutex_unlock(&yh_lock);
    copy_padded(info->slotDescription, sizeof info->slotDescription, desc);
    copy_padded(info->manufacturerID, sizeof info->manufacturerID, "Yubico");
    info->flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT | (info->flags & CKF_TOKEN_PRESENT);
    info->hardwareVersion = shim_cfg()->yh_version;
    info->firmwareVersion = shim_cfg()->yh_version;
    return CKR_OK;
}

/* yubihsm_pkcs11.c C_GetTokenInfo: label and model "YubiHSM", manufacturer
 * "Yubico (www.yubico.com)", version {major, minor * 10 + patch}. The
 * serial number stays SoftHSM's, so two emulated devices differ. */
CK_RV shim_yh_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    CK_RV rv = R()->C_GetTokenInfo(slot, info);
    if (rv != CKR_OK || (info->flags & CKF_TOKEN_INITIALIZED) == 0)
        return rv; /* SoftHSM's spare empty slot stays what it is */
    copy_padded(info->label, sizeof info->label, "YubiHSM");
    copy_padded(info->manufacturerID, sizeof info->manufacturerID, "Yubico (www.yubico.com)");
    copy_padded(info->model, sizeof info->model, "YubiHSM");
    info->flags = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED;
    info->ulMinPinLen = YH_MIN_PIN_LEN;
    info->ulMaxPinLen = YH_MAX_PIN_LEN;
    info->hardwareVersion = shim_cfg()->yh_version;
    info->firmwareVersion = shim_cfg()->yh_version;
    return CKR_OK;
}

/* ---- mechanisms ----------------------------------------------------------- */

static bool hidden_mechanism(CK_MECHANISM_TYPE m)
{
    return m == CKM_AES_KEY_WRAP || m == CKM_AES_KEY_WRAP_PAD || m == CKM_AES_KEY_WRAP_KWP_;
}

/* SoftHSM's list without its AES key wrap mechanisms, plus the Yubico
 * CCM wrap: the one mechanism that wraps objects. */
CK_RV shim_yh_get_mechanism_list(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
    if (count == NULL)
        return CKR_ARGUMENTS_BAD;
    CK_ULONG n = 0;
    CK_RV rv = R()->C_GetMechanismList(slot, NULL, &n);
    if (rv != CKR_OK)
        return rv;
    CK_MECHANISM_TYPE *all = calloc(n + 1, sizeof *all);
    if (all == NULL)
        return CKR_HOST_MEMORY;
    rv = R()->C_GetMechanismList(slot, all, &n);
    CK_ULONG kept = 0;
    for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++)
        if (!hidden_mechanism(all[i]))
            all[kept++] = all[i];
    all[kept++] = CKM_YUBICO_AES_CCM_WRAP;
    if (rv == CKR_OK && list != NULL) {
        if (*count < kept)
            rv = CKR_BUFFER_TOO_SMALL;
        else
            memcpy(list, all, kept * sizeof *all);
    }
    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL)
        *count = kept;
    free(all);
    return rv;
}

/* util_pkcs11.c get_mechanism_info: CKM_YUBICO_AES_CCM_WRAP is
 * HW | WRAP | UNWRAP | ENCRYPT | DECRYPT, 128 to 256 bits. No other
 * mechanism offers wrapping. */
CK_RV shim_yh_get_mechanism_info(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
                                 CK_MECHANISM_INFO_PTR info)
{
    if (info == NULL)
        return CKR_ARGUMENTS_BAD;
    if (hidden_mechanism(type))
        return CKR_MECHANISM_INVALID;
    if (type == CKM_YUBICO_AES_CCM_WRAP) {
        CK_SLOT_INFO si;
        CK_RV rv = R()->C_GetSlotInfo(slot, &si);
        if (rv != CKR_OK)
            return rv;
        info->ulMinKeySize = 128;
        info->ulMaxKeySize = 256;
        info->flags = CKF_HW | CKF_WRAP | CKF_UNWRAP | CKF_ENCRYPT | CKF_DECRYPT;
        return CKR_OK;
    }
    CK_RV rv = R()->C_GetMechanismInfo(slot, type, info);
    if (rv == CKR_OK)
        info->flags &= ~(CKF_WRAP | CKF_UNWRAP);
    return rv;
}

/* ---- login: "<4 hex digits of the auth key ID><password>" ------------------ */

/* yubihsm_pkcs11.c C_Login/C_LoginUser, in its order: only CKU_USER; the
 * password (after the 4-character ID) is 8..64 bytes, else
 * CKR_ARGUMENTS_BAD; an ID that is not hex is CKR_PIN_INCORRECT, and so
 * is an ID with no authentication key (the device refuses the session).
 * The password is then SoftHSM's user PIN. The '@' (asymmetric) and '#'
 * (YubiKey) forms are not emulated and refused as an incorrect PIN. */
CK_RV shim_yh_login(CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
    if (pin == NULL)
        return CKR_ARGUMENTS_BAD;
    if (user != CKU_USER)
        return CKR_USER_TYPE_INVALID;
    CK_ULONG id_len = len < 4 ? len : 4;
    CK_ULONG pw_len = len - id_len;
    if (pw_len < YH_MIN_PIN_LEN || pw_len > YH_MAX_PIN_LEN)
        return CKR_ARGUMENTS_BAD;
    if (pin[0] == '@' || pin[0] == '#')
        return CKR_PIN_INCORRECT;
    unsigned id = 0;
    for (CK_ULONG i = 0; i < 4; i++) {
        CK_UTF8CHAR c = pin[i];
        unsigned digit = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                         : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                         : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                                : 16u;
        if (digit == 16u)
            return CKR_PIN_INCORRECT;
        id = id * 16 + digit;
    }
    if (!is_auth_key(id))
        return CKR_PIN_INCORRECT;
    CK_RV rv = R()->C_Login(s, CKU_USER, pin + 4, pw_len);
    if (rv == CKR_OK) { /* measure the device now, while private objects are visible */
        CK_SESSION_HANDLE own;
        bool logged_in;
        struct storage st;
        if (yh_own_session(s, &own, &logged_in) == CKR_OK) {
            if (yh_measure(own, &st) == CKR_OK)
                yh_note_storage(&st);
            R()->C_CloseSession(own);
        }
    }
    return rv;
}
