/* HSMSIGN_SHIM_* environment variables -> struct shim_config.
 *
 * Parsing is strict: a typo in a test's environment must fail loudly
 * (C_Initialize returns CKR_GENERAL_ERROR and stderr names the variable)
 * rather than silently run the scenario without its fault. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11shim.h"

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

static const char *const fn_names[SHIM_FN_COUNT] = {
#define SHIM_NAME_ENTRY(name) "C_" #name,
    SHIM_FUNCTIONS(SHIM_NAME_ENTRY)
#undef SHIM_NAME_ENTRY
};

const char *shim_fn_name(enum shim_fn fn)
{
    return (unsigned)fn < SHIM_FN_COUNT ? fn_names[fn] : "C_?";
}

int shim_fn_from_name(const char *name)
{
    for (int i = 0; i < SHIM_FN_COUNT; i++)
        if (strcmp(fn_names[i], name) == 0)
            return i;
    return -1;
}

static const struct {
    const char *name;
    CK_RV rv;
} rv_names[] = {
    {"CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED},
    {"CKR_SESSION_COUNT", CKR_SESSION_COUNT},
    {"CKR_DEVICE_ERROR", CKR_DEVICE_ERROR},
    {"CKR_PIN_INCORRECT", CKR_PIN_INCORRECT},
    {"CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID},
    {"CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT},
    {"CKR_USER_NOT_LOGGED_IN", CKR_USER_NOT_LOGGED_IN},
    {"CKR_GENERAL_ERROR", CKR_GENERAL_ERROR},
    {"CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED},
};

static bool config_error(const char *var, const char *value, const char *why)
{
    fprintf(stderr, "hsmsign-p11shim: %s=\"%s\": %s\n", var, value, why);
    return false;
}

/* An unset and an empty variable both mean "not configured". */
static const char *env(const char *var)
{
    const char *value = getenv(var);
    return value != NULL && value[0] != '\0' ? value : NULL;
}

/* Digits only: strtoul alone would accept "-1", " 5" and "5ms". */
static bool parse_ulong(const char *text, int base, unsigned long *out)
{
    if (text[0] == '\0')
        return false;
    for (const char *p = text; *p != '\0'; p++) {
        bool ok = base == 16 ? strchr("0123456789abcdefABCDEF", *p) != NULL
                             : (*p >= '0' && *p <= '9');
        if (!ok)
            return false;
    }
    errno = 0;
    char *end = NULL;
    unsigned long value = strtoul(text, &end, base);
    if (errno != 0 || end == NULL || *end != '\0')
        return false;
    *out = value;
    return true;
}

static bool load_number(const char *var, unsigned long *out)
{
    const char *value = env(var);
    if (value == NULL)
        return true;
    if (!parse_ulong(value, 10, out))
        return config_error(var, value, "expected a decimal number");
    return true;
}

static bool load_path(const char *var, char *out, size_t size)
{
    const char *value = env(var);
    if (value == NULL)
        return true;
    if (strlen(value) >= size)
        return config_error(var, value, "path too long");
    strcpy(out, value);
    return true;
}

static bool parse_rv(const char *text, CK_RV *out)
{
    for (size_t i = 0; i < sizeof rv_names / sizeof rv_names[0]; i++) {
        if (strcmp(rv_names[i].name, text) == 0) {
            *out = rv_names[i].rv;
            return true;
        }
    }
    unsigned long value;
    if ((text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) &&
        strlen(text) <= 2 + 2 * sizeof(CK_RV) && parse_ulong(text + 2, 16, &value)) {
        *out = value;
        return true;
    }
    return false;
}

/* A function named in a variable must be one the shim forwards. */
static bool parse_fn(const char *var, const char *full_value, const char *name, int *out)
{
    if (strcmp(name, "C_GetFunctionList") == 0)
        return config_error(var, full_value,
                            "C_GetFunctionList is answered by the shim itself and "
                            "is never counted, delayed or failed");
    int fn = shim_fn_from_name(name);
    if (fn < 0)
        return config_error(var, full_value, "unknown PKCS#11 function name");
    *out = fn;
    return true;
}

static bool load_faults(struct shim_config *cfg)
{
    const char *at = env("HSMSIGN_SHIM_FAIL_AT");
    const char *func = env("HSMSIGN_SHIM_FAIL_FUNC");
    const char *rv = env("HSMSIGN_SHIM_FAIL_RV");
    const char *mode = env("HSMSIGN_SHIM_FAIL_MODE");

    cfg->fail_at = 0;
    cfg->fail_fn = SHIM_ANY_FUNCTION;
    cfg->fail_rv = CKR_DEVICE_ERROR;
    cfg->fail_always = false;

    if (at != NULL && (!parse_ulong(at, 10, &cfg->fail_at) || cfg->fail_at == 0))
        return config_error("HSMSIGN_SHIM_FAIL_AT", at,
                            "expected a call number counted from 1");
    if (func != NULL) {
        if (!parse_fn("HSMSIGN_SHIM_FAIL_FUNC", func, func, &cfg->fail_fn))
            return false;
        if (cfg->fail_at == 0)
            cfg->fail_at = 1; /* "fail C_Sign" alone means its first call */
    }
    if (rv != NULL && !parse_rv(rv, &cfg->fail_rv))
        return config_error("HSMSIGN_SHIM_FAIL_RV", rv,
                            "expected a CKR_ name listed in README.md or 0x<hex>");
    if (mode != NULL) {
        if (strcmp(mode, "always") == 0)
            cfg->fail_always = true;
        else if (strcmp(mode, "hang") == 0)
            cfg->fail_hang = true;
        else if (strcmp(mode, "once") != 0)
            return config_error("HSMSIGN_SHIM_FAIL_MODE", mode,
                                "expected \"once\", \"always\" or \"hang\"");
    }
    if (cfg->fail_hang && cfg->hang_mark[0] == '\0')
        return config_error("HSMSIGN_SHIM_FAIL_MODE", mode,
                            "\"hang\" needs HSMSIGN_SHIM_HANG_MARK: the file a test waits for");
    if (cfg->fail_at == 0 && (rv != NULL || mode != NULL))
        return config_error(rv != NULL ? "HSMSIGN_SHIM_FAIL_RV" : "HSMSIGN_SHIM_FAIL_MODE",
                            rv != NULL ? rv : mode,
                            "set HSMSIGN_SHIM_FAIL_AT or HSMSIGN_SHIM_FAIL_FUNC too");
    return true;
}

/* "C_Sign:100,C_UnwrapKey:50", added on top of HSMSIGN_SHIM_LATENCY_MS. */
static bool load_latency_list(struct shim_config *cfg)
{
    const char *var = "HSMSIGN_SHIM_LATENCY";
    const char *value = env(var);
    if (value == NULL)
        return true;

    char list[1024];
    if (strlen(value) >= sizeof list)
        return config_error(var, value, "list too long");
    strcpy(list, value);

    char *save = NULL;
    for (char *item = strtok_r(list, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(item, ':');
        if (colon == NULL)
            return config_error(var, value, "expected C_Function:milliseconds[,...]");
        *colon = '\0';
        int fn;
        unsigned long ms;
        if (!parse_fn(var, value, item, &fn))
            return false;
        if (!parse_ulong(colon + 1, 10, &ms))
            return config_error(var, value, "milliseconds must be a decimal number");
        cfg->latency_ms[fn] += ms;
    }
    return true;
}

static bool load_latency(struct shim_config *cfg)
{
    unsigned long every_call = 0;
    if (!load_number("HSMSIGN_SHIM_LATENCY_MS", &every_call))
        return false;
    for (int i = 0; i < SHIM_FN_COUNT; i++)
        cfg->latency_ms[i] = every_call;
    return load_latency_list(cfg);
}

/* "2.4.0" -> {2, 40}: yubihsm_pkcs11's C_GetTokenInfo reports major and
 * minor * 10 + patch (yubihsm_pkcs11.c, C_GetTokenInfo). */
static bool load_firmware(struct shim_config *cfg)
{
    const char *var = "HSMSIGN_SHIM_YUBIHSM_FIRMWARE";
    const char *value = env(var);
    if (value == NULL)
        value = "2.4.0";
    unsigned major, minor, patch;
    char tail;
    if (strlen(value) >= sizeof cfg->yh_firmware ||
        sscanf(value, "%u.%u.%u%c", &major, &minor, &patch, &tail) != 3 || major > 255 ||
        minor > 24 || patch > 9)
        return config_error(var, value, "expected MAJOR.MINOR.PATCH such as 2.4.0");
    strcpy(cfg->yh_firmware, value);
    cfg->yh_version.major = (CK_BYTE)major;
    cfg->yh_version.minor = (CK_BYTE)(minor * 10 + patch);
    return true;
}

/* "0001,0002": the authentication keys the emulated device holds. */
static bool load_auth_keys(struct shim_config *cfg)
{
    const char *var = "HSMSIGN_SHIM_YUBIHSM_AUTH_KEYS";
    const char *value = env(var);
    if (value == NULL)
        value = "0001";
    char list[256];
    if (strlen(value) >= sizeof list)
        return config_error(var, value, "list too long");
    strcpy(list, value);
    char *save = NULL;
    for (char *item = strtok_r(list, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        unsigned long id;
        if (strlen(item) != 4 || !parse_ulong(item, 16, &id) || id == 0 || id == 0xffff)
            return config_error(var, value, "expected 4-hex-digit key IDs (not 0000 or ffff)");
        if (cfg->n_yh_auth_keys == sizeof cfg->yh_auth_keys / sizeof cfg->yh_auth_keys[0])
            return config_error(var, value, "at most 16 authentication keys");
        cfg->yh_auth_keys[cfg->n_yh_auth_keys++] = (unsigned)id;
    }
    if (cfg->n_yh_auth_keys == 0)
        return config_error(var, value, "at least one authentication key");
    return true;
}

/* HSMSIGN_SHIM_PERSONALITY=yubihsm2 also changes two defaults: 16 sessions
 * and a 30 s idle timeout, the device's documented limits, unless the
 * test sets them itself. */
static bool load_personality(struct shim_config *cfg)
{
    const char *var = "HSMSIGN_SHIM_PERSONALITY";
    const char *value = env(var);
    if (value == NULL)
        return true;
    if (strcmp(value, "yubihsm2") != 0)
        return config_error(var, value, "the only personality is \"yubihsm2\"");
    cfg->yubihsm = true;
    if (env("HSMSIGN_SHIM_MAX_SESSIONS") == NULL)
        cfg->max_sessions = 16;
    if (env("HSMSIGN_SHIM_IDLE_TIMEOUT_MS") == NULL)
        cfg->idle_timeout_ms = 30000;
    return load_firmware(cfg) && load_auth_keys(cfg);
}

bool shim_config_load(struct shim_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->module_path, DEFAULT_MODULE);

    return load_path("HSMSIGN_SHIM_MODULE", cfg->module_path, sizeof cfg->module_path) &&
           load_path("HSMSIGN_SHIM_COUNTS", cfg->counts_path, sizeof cfg->counts_path) &&
           load_path("HSMSIGN_SHIM_HANG_MARK", cfg->hang_mark, sizeof cfg->hang_mark) &&
           load_faults(cfg) && load_latency(cfg) &&
           load_number("HSMSIGN_SHIM_MAX_SESSIONS", &cfg->max_sessions) &&
           load_number("HSMSIGN_SHIM_IDLE_TIMEOUT_MS", &cfg->idle_timeout_ms) &&
           load_personality(cfg);
}
