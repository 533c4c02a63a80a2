/* libgit2 by dlopen (git_dl.h).
 *
 * Linked, libgit2 and the 15 libraries it needs (mbedTLS, libssh2, krb5,
 * http_parser, pcre2, ...) were loaded and relocated by ld.so before
 * main(): 3 to 4 ms of a signing command's ~40 on the 2-core VM, before it
 * could start on the token (`hsmsign --version`: 9.8 ms against 6.5 ms
 * for a program linking only libcrypto). Loaded here, that work runs on
 * the thread that warms libgit2 up (hs_auditgit_warm_up) while the main
 * thread talks to the token, and a command that never commits (key show,
 * verify, token list) does not pay it at all. */
#define HS_GIT_DL_IMPL
#include <dlfcn.h>
#include <git2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "audit/git_dl.h"

hs_git_api hs_git;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static bool loaded;
static char load_error[256];

static void load(void)
{
    /* RTLD_LAZY: functions are bound on first call, as when linked.
     * RTLD_GLOBAL is not needed: nothing else resolves against libgit2. */
    void *h = dlopen(HSMSIGN_LIBGIT2_SONAME, RTLD_LAZY | RTLD_LOCAL);
    if (h == NULL) {
        snprintf(load_error, sizeof load_error, "cannot load %s: %s", HSMSIGN_LIBGIT2_SONAME,
                 dlerror());
        return;
    }
    /* The handle is never closed: libgit2 stays for git_libgit2_shutdown
     * at exit. */
#define HS_GIT_SYM(name)                                                                    \
    if ((hs_git.name = (__typeof__(name) *)(uintptr_t)dlsym(h, #name)) == NULL) {           \
        snprintf(load_error, sizeof load_error, "%s has no %s", HSMSIGN_LIBGIT2_SONAME, #name); \
        return;                                                                             \
    }
    HS_GIT_FUNCTIONS(HS_GIT_SYM)
#undef HS_GIT_SYM
    loaded = true;
}

bool hs_git_load(char *buf, size_t cap)
{
    if (pthread_once(&load_once, load) != 0) {
        snprintf(buf, cap, "cannot load %s", HSMSIGN_LIBGIT2_SONAME);
        return false;
    }
    if (!loaded)
        snprintf(buf, cap, "%s", load_error);
    return loaded;
}
