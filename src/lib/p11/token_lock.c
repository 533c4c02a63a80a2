/* The inter-process token lock and transient-error retries (see token_lock.h). */
#include "p11/token_lock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"
#include "util/flock.h"

#define SOFTHSM_DEFAULT_CONF "/etc/softhsm/softhsm2.conf"
#define SOFTHSM_DEFAULT_TOKENDIR "/var/lib/softhsm/tokens"
#define LOCK_NAME ".hsmsign.lock"
#define RETRY_FIRST_DELAY_MS 20u
#define RETRY_MAX_DELAY_MS 1000u

static bool module_is_softhsm(const char *module_path)
{
    const char *base = strrchr(module_path, '/');
    return strstr(base != NULL ? base + 1 : module_path, "softhsm") != NULL;
}

/* The configuration file SoftHSM 2.6 reads (SimpleConfigLoader::getConfigPath). */
static void softhsm_conf_path(char *buf, size_t cap)
{
    const char *env = getenv("SOFTHSM2_CONF");
    if (env != NULL) {
        snprintf(buf, cap, "%s", env);
        return;
    }
    const char *home = getenv("HOME");
    if (home != NULL && (size_t)snprintf(buf, cap, "%s/.config/softhsm2/softhsm2.conf", home) < cap &&
        access(buf, R_OK) == 0)
        return;
    snprintf(buf, cap, "%s", SOFTHSM_DEFAULT_CONF);
}

/* directories.tokendir of a SoftHSM configuration ("key = value" lines,
 * '#' comments), without trailing slashes; the default when the file or
 * the key is missing, as SoftHSM does. */
static void softhsm_tokendir(const char *conf, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s", SOFTHSM_DEFAULT_TOKENDIR);
    uint8_t *text;
    size_t len;
    hs_error ignored;
    if (hs_read_file(conf, 1 << 20, &text, &len, &ignored) != HS_OK)
        return;
    for (char *line = (char *)text, *next; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        line += strspn(line, " \t");
        if (strncmp(line, "directories.tokendir", 20) != 0)
            continue;
        char *v = line + 20;
        v += strspn(v, " \t");
        if (*v++ != '=')
            continue;
        v += strspn(v, " \t");
        size_t n = strcspn(v, "\r");
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        while (n > 1 && v[n - 1] == '/')
            n--;
        if (n > 0 && n < cap)
            snprintf(dir, cap, "%.*s", (int)n, v);
    }
    free(text);
}

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h;
}

/* A private directory for lock files: $XDG_RUNTIME_DIR/hsmsign, else
 * /tmp/hsmsign-UID. In /tmp another user could have made the name first:
 * it must be a real directory, ours, writable by nobody else. */
static hs_result runtime_dir(char *buf, size_t cap, hs_error *e)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n = xdg != NULL && xdg[0] == '/' ? snprintf(buf, cap, "%s/hsmsign", xdg)
                                         : snprintf(buf, cap, "/tmp/hsmsign-%lu",
                                                    (unsigned long)getuid());
    if (n < 0 || (size_t)n >= cap)
        return hs_fail(e, HS_E_IO, "token lock directory: path too long");
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return hs_fail(e, HS_E_IO, "token lock directory %s: cannot create: %s", buf,
                       strerror(errno));
    struct stat st;
    if (lstat(buf, &st) != 0)
        return hs_fail(e, HS_E_IO, "token lock directory %s: %s", buf, strerror(errno));
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 022) != 0)
        return hs_fail(e, HS_E_IO,
                       "token lock directory %s is not a directory of ours that only we can "
                       "write: remove it, or set XDG_RUNTIME_DIR",
                       buf);
    return HS_OK;
}

static int open_lock(const char *path)
{
    /* Read-only suffices for flock, so a token directory shared by a group
     * works with a lock file another member created. */
    return open(path, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
}

hs_result hs_p11_token_lock_open(hs_p11 *p, hs_error *e)
{
    char key[1024];
    snprintf(key, sizeof key, "%s", p->module_path);
    if (module_is_softhsm(p->module_path)) {
        softhsm_conf_path(p->softhsm_conf, sizeof p->softhsm_conf);
        softhsm_tokendir(p->softhsm_conf, p->softhsm_tokendir, sizeof p->softhsm_tokendir);
        snprintf(key, sizeof key, "%s", p->softhsm_tokendir);
        if ((size_t)snprintf(p->token_lock_path, sizeof p->token_lock_path, "%s/" LOCK_NAME,
                             p->softhsm_tokendir) < sizeof p->token_lock_path) {
            p->token_lock_fd = open_lock(p->token_lock_path);
            if (p->token_lock_fd >= 0)
                return HS_OK;
        }
    }
    char dir[900];
    hs_result r = runtime_dir(dir, sizeof dir, e);
    if (r != HS_OK)
        return r;
    snprintf(p->token_lock_path, sizeof p->token_lock_path, "%s/token-%016llx.lock", dir,
             (unsigned long long)fnv1a64(key));
    p->token_lock_fd = open_lock(p->token_lock_path);
    if (p->token_lock_fd < 0)
        return hs_fail(e, HS_E_IO, "token lock %s: cannot open: %s", p->token_lock_path,
                       strerror(errno));
    return HS_OK;
}

void hs_p11_token_lock_close(hs_p11 *p)
{
    if (p->token_lock_fd >= 0)
        close(p->token_lock_fd); /* drops the flock, if held */
    p->token_lock_fd = -1;
    p->token_lock_depth = 0;
}

hs_result hs_p11_token_lock(hs_p11 *p, hs_error *e)
{
    if (p->token_lock_fd < 0)
        return HS_OK; /* hs_p11_open failed before opening it: nothing to guard */
    pthread_mutex_lock(&p->token_mutex);
    if (p->token_lock_depth++ > 0)
        return HS_OK;
    unsigned timeout = hs_env_timeout_ms("HSMSIGN_TOKEN_LOCK_TIMEOUT", HS_P11_TOKEN_LOCK_TIMEOUT_MS);
    int err = hs_flock_wait(p->token_lock_fd, timeout);
    if (err == 0)
        return HS_OK;
    p->token_lock_depth--;
    pthread_mutex_unlock(&p->token_mutex);
    if (err != EWOULDBLOCK)
        return hs_fail(e, HS_E_IO, "token lock %s: cannot lock: %s", p->token_lock_path,
                       strerror(err));
    return hs_fail(e, HS_E_P11,
                   "PKCS#11 module %s: the token lock %s was held by another process for more "
                   "than %u s (HSMSIGN_TOKEN_LOCK_TIMEOUT)",
                   p->module_path, p->token_lock_path, timeout / 1000u);
}

void hs_p11_token_unlock(hs_p11 *p)
{
    if (p->token_lock_fd < 0)
        return;
    if (--p->token_lock_depth == 0)
        flock(p->token_lock_fd, LOCK_UN);
    pthread_mutex_unlock(&p->token_mutex);
}

bool hs_p11_rv_transient(CK_RV rv)
{
    return rv == CKR_GENERAL_ERROR || rv == CKR_DEVICE_ERROR;
}

void hs_p11_retry_start(hs_p11_retry *rt)
{
    rt->attempts = 0;
    rt->waited_ms = 0;
    rt->delay_ms = RETRY_FIRST_DELAY_MS;
    rt->budget_ms = hs_env_timeout_ms("HSMSIGN_P11_RETRY_TIMEOUT", HS_P11_RETRY_TIMEOUT_MS);
}

bool hs_p11_retry_again(hs_p11_retry *rt, bool transient, hs_error *e)
{
    rt->attempts++;
    if (transient && rt->waited_ms < rt->budget_ms) {
        unsigned d = rt->delay_ms;
        if (d > rt->budget_ms - rt->waited_ms)
            d = rt->budget_ms - rt->waited_ms;
        hs_sleep_ms(d);
        rt->waited_ms += d;
        rt->delay_ms = rt->delay_ms * 2 > RETRY_MAX_DELAY_MS ? RETRY_MAX_DELAY_MS : rt->delay_ms * 2;
        return true;
    }
    if (transient && rt->attempts > 1 && e != NULL) {
        size_t used = strlen(e->msg);
        snprintf(e->msg + used, sizeof e->msg - used,
                 "; gave up after %u attempts over %u.%01u s (HSMSIGN_P11_RETRY_TIMEOUT)",
                 rt->attempts, rt->waited_ms / 1000u, rt->waited_ms % 1000u / 100u);
    }
    return false;
}

size_t hs_p11_softhsm_token_dirs(const hs_p11 *p)
{
    if (p->softhsm_tokendir[0] == '\0')
        return 0;
    DIR *d = opendir(p->softhsm_tokendir);
    if (d == NULL)
        return 0;
    size_t n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        char path[2048];
        if (de->d_name[0] == '.' ||
            (size_t)snprintf(path, sizeof path, "%s/%s/token.object", p->softhsm_tokendir,
                             de->d_name) >= sizeof path)
            continue;
        if (access(path, F_OK) == 0)
            n++;
    }
    closedir(d);
    return n;
}

void hs_p11_softhsm_hint(const hs_p11 *p, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (p->softhsm_tokendir[0] == '\0' || getenv("SOFTHSM2_CONF") != NULL)
        return;
    snprintf(buf, cap,
             " (SOFTHSM2_CONF is not set, so SoftHSM read %s and its token directory %s; "
             "export SOFTHSM2_CONF=/path/to/softhsm2.conf to use another, e.g. the one "
             "`hsmsign token init --dir DIR` wrote)",
             p->softhsm_conf, p->softhsm_tokendir);
}
