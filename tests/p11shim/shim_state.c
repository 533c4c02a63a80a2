/* Process-wide state of the shim: configuration, the real module, the
 * counters and the table of sessions opened through the shim.
 *
 * One mutex guards everything here. It is never held while the real
 * module runs an application's call or while latency is applied, so
 * concurrent callers stay concurrent (the session pool tests rely on it). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "p11shim.h"

struct session {
    CK_SESSION_HANDLE handle;
    CK_SLOT_ID slot;
    unsigned long long last_used_ms;
    unsigned in_use; /* calls in flight: an active call never expires */
};

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static bool setup_ok;
static pid_t setup_pid;
static struct shim_config cfg;
static CK_FUNCTION_LIST *real;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct shim_counts counts;
static struct session *sessions;
static size_t n_sessions, cap_sessions;
static unsigned long reserved_sessions; /* C_OpenSession calls in flight */
/* Handles the shim closed for idleness: calls on them are refused, not
 * forwarded, because the module might hand the number out again. */
static CK_SESSION_HANDLE *expired;
static size_t n_expired, cap_expired;

static void setup(void)
{
    if (!shim_config_load(&cfg))
        return;
    void *lib = dlopen(cfg.module_path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "hsmsign-p11shim: cannot load module %s: %s\n", cfg.module_path,
                dlerror());
        return;
    }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (get == NULL) {
        fprintf(stderr, "hsmsign-p11shim: %s has no C_GetFunctionList\n", cfg.module_path);
        return;
    }
    if (get == C_GetFunctionList) {
        fprintf(stderr, "hsmsign-p11shim: HSMSIGN_SHIM_MODULE=%s is the shim itself\n",
                cfg.module_path);
        return;
    }
    CK_RV rv = get(&real);
    if (rv != CKR_OK || real == NULL) {
        fprintf(stderr, "hsmsign-p11shim: C_GetFunctionList of %s failed: 0x%lx\n",
                cfg.module_path, (unsigned long)rv);
        return;
    }
    setup_pid = getpid();
    setup_ok = true;
}

CK_FUNCTION_LIST *shim_real(void)
{
    return real;
}

const struct shim_config *shim_cfg(void)
{
    return &cfg;
}

/* The personality's fields, taken last, outside the lock: they have their
 * own lock in shim_yubihsm.c. */
static void add_personality_counts(struct shim_counts *snapshot)
{
    snapshot->yubihsm = cfg.yubihsm;
    if (cfg.yubihsm)
        shim_yh_counts(&snapshot->yh);
}

/* A test module may die on allocation failure: there is nothing sensible
 * to forward or to report once the bookkeeping is incomplete. */
static void *grow(void *array, size_t *cap, size_t elem_size)
{
    size_t new_cap = *cap == 0 ? 16 : *cap * 2;
    void *bigger = realloc(array, new_cap * elem_size);
    if (bigger == NULL) {
        fputs("hsmsign-p11shim: out of memory\n", stderr);
        abort();
    }
    *cap = new_cap;
    return bigger;
}

static unsigned long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned long ms)
{
    struct timespec left = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        continue;
}

static struct session *find_session(CK_SESSION_HANDLE handle)
{
    for (size_t i = 0; i < n_sessions; i++)
        if (sessions[i].handle == handle)
            return &sessions[i];
    return NULL;
}

static void remove_session_at(size_t i)
{
    sessions[i] = sessions[--n_sessions];
    counts.sessions_open = n_sessions;
    counts.sessions_closed++;
}

static bool is_expired(CK_SESSION_HANDLE handle)
{
    for (size_t i = 0; i < n_expired; i++)
        if (expired[i] == handle)
            return true;
    return false;
}

static void forget_expired(CK_SESSION_HANDLE handle)
{
    for (size_t i = 0; i < n_expired; i++) {
        if (expired[i] == handle) {
            expired[i] = expired[--n_expired];
            return;
        }
    }
}

/* Moves idle sessions to the expired list under the lock, then closes them
 * in the real module (outside the lock, like any other module call), so
 * their session objects are really gone, as on a YubiHSM 2. */
static void expire_idle_sessions(void)
{
    if (cfg.idle_timeout_ms == 0)
        return;
    unsigned long long now = now_ms();
    CK_SESSION_HANDLE *victims = NULL;
    size_t n_victims = 0;

    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_sessions;) {
        struct session *s = &sessions[i];
        if (s->in_use != 0 || now - s->last_used_ms <= cfg.idle_timeout_ms) {
            i++;
            continue;
        }
        if (n_victims == 0) {
            victims = malloc(n_sessions * sizeof *victims);
            if (victims == NULL) {
                fputs("hsmsign-p11shim: out of memory\n", stderr);
                abort();
            }
        }
        victims[n_victims++] = s->handle;
        if (n_expired == cap_expired)
            expired = grow(expired, &cap_expired, sizeof *expired);
        expired[n_expired++] = s->handle;
        counts.sessions_expired++;
        remove_session_at(i);
    }
    pthread_mutex_unlock(&lock);

    for (size_t i = 0; i < n_victims; i++)
        real->C_CloseSession(victims[i]);
    free(victims);
}

/* FAIL_MODE=hang: the call never reaches the module and never returns, so
 * a test can kill -9 the process at exactly this step. The mark file tells
 * the test the process is there (it waits on the file, not on time). */
static void hang_forever(void)
{
    int fd = open(cfg.hang_mark, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (n > 0 && write(fd, pid, (size_t)n) < 0)
            perror("hsmsign-p11shim: HSMSIGN_SHIM_HANG_MARK");
        close(fd);
    } else {
        perror("hsmsign-p11shim: HSMSIGN_SHIM_HANG_MARK");
    }
    for (;;)
        pause();
}

/* Decides under the lock whether this call is the one to fail. */
static bool fault_due(enum shim_fn fn)
{
    if (cfg.fail_at == 0)
        return false;
    unsigned long ordinal;
    if (cfg.fail_fn == SHIM_ANY_FUNCTION)
        ordinal = counts.calls_total;
    else if ((int)fn == cfg.fail_fn)
        ordinal = counts.calls[fn];
    else
        return false;
    return ordinal == cfg.fail_at || (cfg.fail_always && ordinal > cfg.fail_at);
}

/* Calls that release resources reach the module even when they "fail", so
 * an injected fault never leaks a real session or an initialized module. */
static bool forwarded_even_when_failed(enum shim_fn fn)
{
    return fn == SHIM_FN_CloseSession || fn == SHIM_FN_CloseAllSessions ||
           fn == SHIM_FN_Finalize;
}

/* The session checks of shim_enter; called with the lock held. */
static bool check_session(struct shim_call *call)
{
    if (call->has_session) {
        if (is_expired(call->session)) {
            call->rv = call->faulted ? call->injected_rv : CKR_SESSION_HANDLE_INVALID;
            return true;
        }
        struct session *s = find_session(call->session);
        if (s != NULL) {
            s->in_use++;
            s->last_used_ms = now_ms();
        }
    }
    if (call->fn == SHIM_FN_OpenSession && cfg.max_sessions != 0) {
        if (n_sessions + reserved_sessions >= cfg.max_sessions) {
            counts.sessions_refused++;
            call->rv = CKR_SESSION_COUNT;
            return true;
        }
        reserved_sessions++;
        call->reserved_session_slot = true;
    }
    return false;
}

bool shim_enter(struct shim_call *call, enum shim_fn fn, bool has_session,
                CK_SESSION_HANDLE session)
{
    memset(call, 0, sizeof *call);
    call->fn = fn;
    call->has_session = has_session;
    call->session = session;

    pthread_once(&setup_once, setup);
    if (!setup_ok) {
        call->rv = CKR_GENERAL_ERROR;
        return true;
    }

    pthread_mutex_lock(&lock);
    counts.calls_total++;
    counts.calls[fn]++;
    if (fault_due(fn)) {
        counts.faults_injected++;
        call->faulted = true;
        call->injected_rv = cfg.fail_rv;
    }
    pthread_mutex_unlock(&lock);
    if (call->faulted && cfg.fail_hang)
        hang_forever();

    /* The delay comes after the session checks, so it stands for the time
     * the device spends on the call, with the session slot already held. */
    bool answered;
    if (call->faulted && !forwarded_even_when_failed(fn)) {
        call->rv = call->injected_rv;
        if (has_session && shim_fn_ends_operation(fn)) {
            pthread_mutex_lock(&lock);
            call->replay = !is_expired(session);
            pthread_mutex_unlock(&lock);
        }
        answered = true;
    } else {
        expire_idle_sessions();
        pthread_mutex_lock(&lock);
        answered = check_session(call);
        pthread_mutex_unlock(&lock);
    }
    if (cfg.latency_ms[fn] != 0)
        sleep_ms(cfg.latency_ms[fn]);
    return answered;
}

CK_RV shim_leave(struct shim_call *call, CK_RV real_rv)
{
    if (call->has_session) {
        pthread_mutex_lock(&lock);
        struct session *s = find_session(call->session);
        if (s != NULL) {
            /* 0 only if the handle was closed and handed out again while
             * this call ran: it is another session's count then. */
            if (s->in_use > 0)
                s->in_use--;
            s->last_used_ms = now_ms();
        }
        pthread_mutex_unlock(&lock);
    }
    return call->faulted ? call->injected_rv : real_rv;
}

/* The module starts afresh after C_Initialize or C_Finalize, and may reuse
 * handle numbers, so the expired list no longer means anything. */
static void forget_all_expired(void)
{
    n_expired = 0;
}

void shim_note_initialized(CK_RV real_rv)
{
    if (real_rv != CKR_OK)
        return;
    pthread_mutex_lock(&lock);
    counts.finalized = false;
    forget_all_expired();
    pthread_mutex_unlock(&lock);
}

void shim_note_finalized(CK_RV real_rv)
{
    if (real_rv != CKR_OK)
        return;
    struct shim_counts snapshot;
    pthread_mutex_lock(&lock);
    while (n_sessions > 0) {
        counts.sessions_closed_by_finalize++;
        remove_session_at(n_sessions - 1);
    }
    forget_all_expired();
    counts.finalized = true;
    snapshot = counts;
    pthread_mutex_unlock(&lock);

    add_personality_counts(&snapshot);
    if (cfg.counts_path[0] != '\0')
        shim_counts_write(cfg.counts_path, &snapshot);
}

void shim_note_session_opened(struct shim_call *call, CK_RV real_rv, CK_SLOT_ID slot,
                              CK_SESSION_HANDLE handle)
{
    pthread_mutex_lock(&lock);
    if (call->reserved_session_slot) {
        reserved_sessions--;
        call->reserved_session_slot = false;
    }
    if (real_rv == CKR_OK) {
        if (n_sessions == cap_sessions)
            sessions = grow(sessions, &cap_sessions, sizeof *sessions);
        sessions[n_sessions++] = (struct session){
            .handle = handle, .slot = slot, .last_used_ms = now_ms(), .in_use = 0};
        forget_expired(handle);
        counts.sessions_opened++;
        counts.sessions_open = n_sessions;
        if (n_sessions > counts.max_sessions_open)
            counts.max_sessions_open = n_sessions;
    }
    pthread_mutex_unlock(&lock);
}

void shim_note_session_closed(CK_RV real_rv, CK_SESSION_HANDLE handle)
{
    if (real_rv != CKR_OK)
        return;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_sessions; i++) {
        if (sessions[i].handle == handle) {
            remove_session_at(i);
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

void shim_note_all_sessions_closed(CK_RV real_rv, CK_SLOT_ID slot)
{
    if (real_rv != CKR_OK)
        return;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_sessions;) {
        if (sessions[i].slot == slot) {
            counts.sessions_closed_by_close_all++;
            remove_session_at(i);
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&lock);
}

void shim_note_login(CK_RV real_rv)
{
    if (real_rv != CKR_OK)
        return;
    pthread_mutex_lock(&lock);
    counts.logins++;
    pthread_mutex_unlock(&lock);
}

/* A process that leaves the module initialized still gets a counts file,
 * marked "finalized":false, so a test can catch the missing C_Finalize.
 * Forked children that exit() inherit the state but must not overwrite
 * their parent's file. */
__attribute__((destructor)) static void write_counts_at_exit(void)
{
    if (!setup_ok || setup_pid != getpid() || cfg.counts_path[0] == '\0')
        return;
    struct shim_counts snapshot;
    pthread_mutex_lock(&lock);
    snapshot = counts;
    pthread_mutex_unlock(&lock);
    add_personality_counts(&snapshot);
    if (!snapshot.finalized)
        shim_counts_write(cfg.counts_path, &snapshot);
}
