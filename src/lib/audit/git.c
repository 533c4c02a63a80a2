/* The audit log directory as a git repository (see git.h), written with
 * libgit2 in this process (see git_lib.h for what that rules out). */
#include "audit/git.h"
#include "audit/git_lib.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/lock.h"
#include "audit/log.h"
#include "audit/record.h"
#include "audit/state.h"
#include "util/file.h"

/* What the commits are made as, whatever the operator's git config says. */
#define GIT_NAME "hsmsign"
#define GIT_EMAIL "hsmsign@localhost"
#define MAX_FILE ((size_t)1 << 32)

/* entries.jsonl is in the repository as log/ segments (git_lib.h): the
 * file itself is ignored, and the segments' index entries are marked
 * skip-worktree, so that `git status` stays clean. */
static const char gitignore[] = ".lock\n*.tmp.*\n/" HS_AUDIT_ENTRIES_FILE "\n";

unsigned hs_auditgit_segment_entries = 256;

/* Every path built here is DIR plus at most 64 bytes ("/.git/", a file
 * name of the log, a lock file of git's): checked once, so that no
 * snprintf below can cut a path short. */
#define PATH_ROOM 4200
#define MAX_DIR_LEN (PATH_ROOM - 200)

/* libgit2 is initialised once per process. The search paths of the
 * system, XDG, global and ProgramData config are emptied before any
 * repository is opened: no ~/.gitconfig, $XDG_CONFIG_HOME/git/config or
 * /etc/gitconfig can change what is recorded. git_libgit2_shutdown runs at
 * exit, so valgrind and LeakSanitizer see libgit2's global state freed. */
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status = -1;

/* True on the thread running git_libgit2_init, and only while it runs. */
static _Thread_local bool in_lib_init;

/* mbedTLS's CA loaders, interposed: this executable's definitions come
 * before libmbedx509's in symbol lookup (exported by the link arguments of
 * libhsmsign_dep, src/lib/meson.build), so libgit2's calls land here.
 * Debian's libgit2 1.5 is built with mbedTLS, and git_libgit2_init parses
 * the whole CA bundle (GIT_DEFAULT_CERT_LOCATION, ~140 certificates):
 * ~13 ms of CPU, a third of a `sign raw`, for TLS that hsmsign never
 * speaks (no fetch, push or clone; the audit log is a local repository).
 * libgit2 has no option to skip it (the path is compiled in and loaded
 * before any option can be set). Measured against the alternative of
 * dlopen'ing libgit2 only for a commit: every signing command commits, so
 * that would still pay the whole initialisation; this pays none of it.
 * Only the calls made inside git_libgit2_init, on the thread running it,
 * are skipped, answering "parsed, no certificates": libgit2 then holds an
 * empty CA chain, so any TLS it were ever asked to make would fail
 * certificate verification (fail closed). Every other caller (a PKCS#11
 * module using mbedTLS, say) gets the real function.
 * tests/integration/test_fixed_cost.sh checks that a signing command
 * neither opens the bundle nor connects anywhere, and still commits.
 * The chain is an opaque mbedtls_x509_crt here: mbedTLS's headers are not
 * a build dependency. */
typedef int (*crt_parse_fn)(void *chain, const char *path);

static int crt_parse_next(const char *name, void *chain, const char *path)
{
    if (in_lib_init)
        return 0;
    crt_parse_fn next = (crt_parse_fn)(uintptr_t)dlsym(RTLD_NEXT, name);
    /* -0x2900: MBEDTLS_ERR_X509_FILE_IO_ERROR (unreachable: a caller of
     * mbedTLS has it loaded). */
    return next != NULL ? next(chain, path) : -0x2900;
}

int mbedtls_x509_crt_parse_file(void *chain, const char *path);
int mbedtls_x509_crt_parse_path(void *chain, const char *path);

int mbedtls_x509_crt_parse_file(void *chain, const char *path)
{
    return crt_parse_next("mbedtls_x509_crt_parse_file", chain, path);
}

int mbedtls_x509_crt_parse_path(void *chain, const char *path)
{
    return crt_parse_next("mbedtls_x509_crt_parse_path", chain, path);
}

static void lib_shutdown(void)
{
    (void)git_libgit2_shutdown(); /* at exit: nothing left to tell */
}

static char lib_error[256];

static void lib_init(void)
{
    static const int levels[] = {GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG,
                                 GIT_CONFIG_LEVEL_GLOBAL, GIT_CONFIG_LEVEL_PROGRAMDATA};
    if (!hs_git_load(lib_error, sizeof lib_error))
        return; /* lib_status stays -1 */
    in_lib_init = true;
    lib_status = git_libgit2_init();
    in_lib_init = false;
    if (lib_status < 0)
        return;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0] && lib_status >= 0; i++)
        lib_status = git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, levels[i], "");
    /* Writing a tree checks that each entry's object exists: an open()
     * per segment (4,000 at a million entries), every commit, for ids this
     * code has just written or read from its own index. A missing object
     * would fail `audit verify --git`, which reads every segment. */
    if (lib_status >= 0)
        lib_status = git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 0);
    if (lib_status >= 0 && atexit(lib_shutdown) != 0)
        lib_status = -1;
}

/* git_libgit2_init still costs CPU without the CA bundle (the loaders
 * above): mbedTLS seeds a DRBG, libgit2 sets up its settings and
 * allocators. A command that will commit runs it on a thread as soon as
 * it knows (hs_auditgit_warm_up), while it waits for the HSM and its
 * fsyncs; the first commit's pthread_once then finds it done or waits. */
static pthread_mutex_t warm_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t warm_thread;
static bool warm_tried, warm_running;

static void *warm_main(void *arg)
{
    (void)arg;
    (void)pthread_once(&lib_once, lib_init); /* lib_status says how it went */
    return NULL;
}

void hs_auditgit_warm_up(void)
{
    pthread_mutex_lock(&warm_lock);
    if (!warm_tried) {
        warm_tried = true;
        /* No signal is delivered to the helper: the command's handlers run
         * on the threads they expect. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        warm_running = pthread_create(&warm_thread, NULL, warm_main, NULL) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_mutex_unlock(&warm_lock);
}

void hs_auditgit_warm_wait(void)
{
    pthread_mutex_lock(&warm_lock);
    if (warm_running)
        (void)pthread_join(warm_thread, NULL); /* warm_main cannot fail */
    warm_running = false;
    pthread_mutex_unlock(&warm_lock);
}

hs_result hs_git_fail(hs_error *e, const char *dir, const char *what)
{
    if (lib_error[0] != '\0') /* libgit2 could not be loaded */
        return hs_fail(e, HS_E_AUDIT, "audit log %s: git: %s: %s", dir, what, lib_error);
    const git_error *ge = git_error_last();
    return hs_fail(e, HS_E_AUDIT, "audit log %s: git: %s: %s", dir, what,
                   ge != NULL && ge->message != NULL ? ge->message : "failed");
}

static hs_result check_dir_len(const char *dir, hs_error *e)
{
    if (strlen(dir) > MAX_DIR_LEN)
        return hs_fail(e, HS_E_USAGE, "audit log %.64s...: path longer than %d bytes", dir,
                       MAX_DIR_LEN);
    return HS_OK;
}

hs_result hs_git_open(const char *dir, bool create, git_repository **repo, hs_error *e)
{
    *repo = NULL;
    hs_result r = check_dir_len(dir, e);
    if (r != HS_OK)
        return r;
    if (pthread_once(&lib_once, lib_init) != 0 || lib_status < 0)
        return hs_git_fail(e, dir, "cannot initialise libgit2");
    char path[PATH_ROOM];
    snprintf(path, sizeof path, "%s/.git", dir);
    struct stat st;
    if (stat(path, &st) == 0 || !create) {
        /* NO_SEARCH: this directory's .git or nothing, never a parent's. */
        if (git_repository_open_ext(repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0)
            return hs_git_fail(e, dir, "cannot open the repository");
        return HS_OK;
    }
    if (git_repository_init(repo, dir, 0) != 0)
        return hs_git_fail(e, dir, "cannot create the repository");
    snprintf(path, sizeof path, "%s/.gitignore", dir);
    r = hs_write_file_atomic(path, gitignore, sizeof gitignore - 1, 0644, false, e);
    if (r != HS_OK) {
        git_repository_free(*repo);
        *repo = NULL;
    }
    return r;
}

/* A process killed in the middle of a commit (SIGKILL, power cut) leaves
 * git's lock files behind, and every later commit would fail on them. The
 * caller holds the audit log's lock, under which alone this repository is
 * written, so a lock file found now belongs to no live writer. */
static void remove_stale_locks(const char *dir, git_repository *repo)
{
    char path[PATH_ROOM];
    static const char *const fixed[] = {"index.lock", "HEAD.lock", "packed-refs.lock"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        snprintf(path, sizeof path, "%s/.git/%s", dir, fixed[i]);
        (void)unlink(path); /* usually absent */
    }
    git_reference *head = NULL;
    if (git_reference_lookup(&head, repo, "HEAD") != 0)
        return;
    const char *branch = git_reference_symbolic_target(head);
    /* The branch HEAD names, checked to be a plain name under refs/heads/
     * before it becomes part of a path to unlink. */
    if (branch != NULL && strncmp(branch, "refs/heads/", 11) == 0 && strstr(branch, "..") == NULL &&
        strlen(branch) < 128) {
        snprintf(path, sizeof path, "%s/.git/%s.lock", dir, branch);
        (void)unlink(path);
    }
    git_reference_free(head);
}

/* Files of checkpoints/ that are not recorded: what .gitignore says. */
static bool ignored(const char *name)
{
    return strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
           strcmp(name, HS_AUDIT_LOCK_FILE) == 0 || fnmatch("*.tmp.*", name, 0) == 0;
}

/* The index entry's stat data still describes the file. Used only for
 * checkpoints/, whose files are written once, by rename (a new inode),
 * and never changed: their content needs no re-reading. */
static bool same_stat(const git_index_entry *ent, const struct stat *st)
{
    return ent->ino == (uint32_t)st->st_ino && ent->file_size == (uint32_t)st->st_size &&
           ent->mtime.seconds == (int32_t)st->st_mtim.tv_sec &&
           ent->mtime.nanoseconds == (uint32_t)st->st_mtim.tv_nsec &&
           ent->ctime.seconds == (int32_t)st->st_ctim.tv_sec &&
           ent->ctime.nanoseconds == (uint32_t)st->st_ctim.tv_nsec;
}

/* Stages DIR/name as `git add` would: its bytes as a blob (no filter of
 * any kind), and its stat data so that the git CLI sees the file clean. */
static hs_result stage_file(const char *dir, git_repository *repo, git_index *idx,
                            const char *name, bool immutable, hs_error *e)
{
    char path[PATH_ROOM];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? HS_OK : hs_fail(e, HS_E_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return HS_OK; /* the log writes regular files only */
    const git_index_entry *old = git_index_get_bypath(idx, name, 0);
    if (immutable && old != NULL && same_stat(old, &st))
        return HS_OK;
    uint8_t *data;
    size_t len;
    hs_result r = hs_read_file(path, MAX_FILE, &data, &len, e);
    if (r != HS_OK)
        return r;
    git_index_entry ent;
    memset(&ent, 0, sizeof ent);
    int rc = git_blob_create_from_buffer(&ent.id, repo, data, len);
    free(data);
    if (rc != 0)
        return hs_git_fail(e, dir, name);
    /* The index keeps 32-bit stat fields, truncated as git does. */
    ent.ctime.seconds = (int32_t)st.st_ctim.tv_sec;
    ent.ctime.nanoseconds = (uint32_t)st.st_ctim.tv_nsec;
    ent.mtime.seconds = (int32_t)st.st_mtim.tv_sec;
    ent.mtime.nanoseconds = (uint32_t)st.st_mtim.tv_nsec;
    ent.dev = (uint32_t)st.st_dev;
    ent.ino = (uint32_t)st.st_ino;
    ent.uid = (uint32_t)st.st_uid;
    ent.gid = (uint32_t)st.st_gid;
    ent.file_size = (uint32_t)len;
    ent.mode = (st.st_mode & S_IXUSR) ? GIT_FILEMODE_BLOB_EXECUTABLE : GIT_FILEMODE_BLOB;
    ent.path = name;
    if (git_index_add(idx, &ent) != 0)
        return hs_git_fail(e, dir, name);
    return HS_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The names in checkpoints/ that are recorded ("checkpoints/NAME"),
 * sorted, from one readdir; *out stays NULL when there is no such
 * directory. */
static hs_result list_checkpoints(const char *dir, char ***out, size_t *n, hs_error *e)
{
    *out = NULL;
    *n = 0;
    char path[PATH_ROOM];
    snprintf(path, sizeof path, "%s/" HS_AUDIT_CHECKPOINT_DIR, dir);
    DIR *d = opendir(path);
    if (d == NULL)
        return errno == ENOENT ? HS_OK : hs_fail(e, HS_E_IO, "%s: %s", path, strerror(errno));
    char **names = malloc(sizeof *names);
    size_t count = 0, cap = 1;
    hs_result r = names != NULL ? HS_OK : hs_fail(e, HS_E_NOMEM, "out of memory");
    const struct dirent *de;
    while (r == HS_OK && (errno = 0, de = readdir(d)) != NULL) {
        if (ignored(de->d_name) || strlen(de->d_name) > 128)
            continue;
        if (count == cap) {
            cap *= 2;
            char **grown = reallocarray(names, cap, sizeof *names);
            if (grown == NULL) {
                r = hs_fail(e, HS_E_NOMEM, "out of memory");
                break;
            }
            names = grown;
        }
        names[count] = malloc(strlen(de->d_name) + sizeof HS_AUDIT_CHECKPOINT_DIR + 1);
        if (names[count] == NULL) {
            r = hs_fail(e, HS_E_NOMEM, "out of memory");
            break;
        }
        sprintf(names[count++], HS_AUDIT_CHECKPOINT_DIR "/%s", de->d_name);
    }
    if (r == HS_OK && errno != 0)
        r = hs_fail(e, HS_E_IO, "%s: %s", path, strerror(errno));
    closedir(d);
    if (r != HS_OK) {
        free_names(names, count);
        return r;
    }
    if (count > 1)
        qsort(names, count, sizeof *names, cmp_names);
    *out = names;
    *n = count;
    return HS_OK;
}

/* `git add checkpoints`: every file in it, and files gone from it are
 * dropped from the index. One readdir and one lstat per file: the
 * directory gains a file per signing command, and the removal check used
 * to lstat each of them a second time. */
static hs_result stage_checkpoints(const char *dir, git_repository *repo, git_index *idx,
                                   hs_error *e)
{
    char **names;
    size_t n;
    hs_result r = list_checkpoints(dir, &names, &n, e);
    if (r != HS_OK || names == NULL)
        return r; /* no checkpoints/ yet */
    static const char prefix[] = HS_AUDIT_CHECKPOINT_DIR "/";
    /* Backwards: removing entry i leaves the indexes below it in place. */
    for (size_t i = git_index_entrycount(idx); r == HS_OK && i-- > 0;) {
        const git_index_entry *ent = git_index_get_byindex(idx, i);
        const char *key = ent->path;
        if (strncmp(key, prefix, sizeof prefix - 1) == 0 &&
            bsearch(&key, names, n, sizeof *names, cmp_names) == NULL &&
            git_index_remove(idx, key, 0) != 0)
            r = hs_git_fail(e, dir, "removing a checkpoint from the index");
    }
    for (size_t i = 0; r == HS_OK && i < n; i++)
        r = stage_file(dir, repo, idx, names[i], true, e);
    free_names(names, n);
    return r;
}

/* The .gitignore of a log created before the segments lacks entries.jsonl:
 * rewritten once, then staged with the rest. */
static hs_result update_gitignore(const char *dir, hs_error *e)
{
    char path[PATH_ROOM];
    snprintf(path, sizeof path, "%s/.gitignore", dir);
    uint8_t *data = NULL;
    size_t len = 0;
    hs_error ignored_error;
    bool same = hs_read_file(path, 4096, &data, &len, &ignored_error) == HS_OK &&
                len == sizeof gitignore - 1 && memcmp(data, gitignore, len) == 0;
    free(data);
    return same ? HS_OK : hs_write_file_atomic(path, gitignore, sizeof gitignore - 1, 0644, false, e);
}

static void segment_path(char *out, size_t size, uint64_t seg)
{
    snprintf(out, size, HS_AUDIT_SEGMENT_PATH,
             (unsigned long long)(seg / HS_AUDIT_SEGMENTS_PER_DIR), (unsigned long long)seg);
}

/* What the index holds of the segments: count of them, numbered 0 to
 * count-1 as paths (anything else: usable false, the segments are cut
 * again from the start), and the last one's offset in the file and id. */
typedef struct segments {
    uint64_t count, last_start;
    uint32_t last_size;
    git_oid last_id;
    bool usable;
} segments;

static void scan_segments(git_index *idx, segments *sg)
{
    memset(sg, 0, sizeof *sg);
    sg->usable = true;
    static const char prefix[] = HS_AUDIT_SEGMENT_DIR "/";
    size_t pos;
    if (git_index_find_prefix(&pos, idx, prefix) != 0)
        return; /* none yet */
    char want[64];
    for (const git_index_entry *ent; (ent = git_index_get_byindex(idx, pos)) != NULL &&
                                     strncmp(ent->path, prefix, sizeof prefix - 1) == 0;
         pos++) {
        segment_path(want, sizeof want, sg->count);
        if (strcmp(ent->path, want) != 0)
            sg->usable = false;
        if (sg->count > 0)
            sg->last_start += sg->last_size;
        sg->last_size = ent->file_size;
        sg->last_id = ent->id;
        sg->count++;
    }
}

/* One segment, bytes [0, len) of data, as log/ entry number seg. */
static hs_result add_segment(const char *dir, git_repository *repo, git_index *idx, uint64_t seg,
                             const uint8_t *data, size_t len, hs_error *e)
{
    char name[64];
    segment_path(name, sizeof name, seg);
    git_index_entry ent;
    memset(&ent, 0, sizeof ent);
    if (git_blob_create_from_buffer(&ent.id, repo, data, len) != 0)
        return hs_git_fail(e, dir, name);
    ent.file_size = (uint32_t)len;
    ent.mode = GIT_FILEMODE_BLOB;
    /* No such file in the directory: entries.jsonl holds the bytes. */
    ent.flags_extended = GIT_INDEX_ENTRY_SKIP_WORKTREE;
    ent.path = name;
    if (git_index_add(idx, &ent) != 0)
        return hs_git_fail(e, dir, name);
    return HS_OK;
}

/* Cuts data[start, len) into segments of hs_auditgit_segment_entries
 * lines from number seg on; the last may be shorter or end in a torn
 * line. */
static hs_result cut_segments(const char *dir, git_repository *repo, git_index *idx,
                              const uint8_t *data, size_t len, size_t start, uint64_t seg,
                              hs_error *e)
{
    unsigned per = hs_auditgit_segment_entries > 0 ? hs_auditgit_segment_entries : 1;
    hs_result r = HS_OK;
    for (size_t pos = start; r == HS_OK && pos < len; seg++) {
        size_t end = pos;
        for (unsigned n = 0; n < per && end < len; n++) {
            const uint8_t *nl = memchr(data + end, '\n', len - end);
            end = nl != NULL ? (size_t)(nl - data) + 1 : len;
        }
        if (end - pos > UINT32_MAX)
            return hs_fail(e, HS_E_AUDIT, "audit log %s: a segment over 4 GiB", dir);
        r = add_segment(dir, repo, idx, seg, data + pos, end - pos, e);
        pos = end;
    }
    return r;
}

/* The last segment the index holds is still the file's bytes at its
 * offset: then only it and what follows need reading. */
static bool last_segment_holds(const segments *sg, const uint8_t *data, size_t len)
{
    git_oid id;
    return sg->usable && sg->count > 0 && sg->last_start <= len &&
           sg->last_size <= len - sg->last_start &&
           git_odb_hash(&id, data + sg->last_start, sg->last_size, GIT_OBJECT_BLOB) == 0 &&
           git_oid_equal(&id, &sg->last_id);
}

/* Stages entries.jsonl as log/ segments. A log from before the segments
 * (entries.jsonl in the index), or an index that does not describe the
 * file, has every segment cut again: once, O(log size). */
static hs_result stage_entries(const char *dir, git_repository *repo, git_index *idx, hs_error *e)
{
    char path[PATH_ROOM];
    snprintf(path, sizeof path, "%s/" HS_AUDIT_ENTRIES_FILE, dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? HS_OK : hs_fail(e, HS_E_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    void *map = MAP_FAILED;
    hs_result r = HS_OK;
    if (fstat(fd, &st) != 0)
        r = hs_fail(e, HS_E_IO, "%s: %s", path, strerror(errno));
    else if ((uint64_t)st.st_size > MAX_FILE)
        r = hs_fail(e, HS_E_AUDIT, "%s: too large", path);
    /* The caller holds the log's lock: nothing truncates the file under
     * the map. */
    else if (st.st_size > 0 &&
             (map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED)
        r = hs_fail(e, HS_E_IO, "%s: %s", path, strerror(errno));
    close(fd);
    if (r != HS_OK)
        return r;
    const uint8_t *data = map != MAP_FAILED ? map : (const uint8_t *)"";
    size_t len = (size_t)st.st_size;
    segments sg;
    scan_segments(idx, &sg);
    size_t start = 0;
    uint64_t seg = 0;
    if (last_segment_holds(&sg, data, len)) {
        start = (size_t)sg.last_start;
        seg = sg.count - 1;
    } else if (sg.count > 0 && git_index_remove_directory(idx, HS_AUDIT_SEGMENT_DIR, 0) != 0) {
        r = hs_git_fail(e, dir, "clearing the index");
    }
    /* The layout from before the segments: the file itself, once. */
    if (r == HS_OK && git_index_get_bypath(idx, HS_AUDIT_ENTRIES_FILE, 0) != NULL &&
        git_index_remove_bypath(idx, HS_AUDIT_ENTRIES_FILE) != 0)
        r = hs_git_fail(e, dir, "clearing the index");
    if (r == HS_OK)
        r = cut_segments(dir, repo, idx, data, len, start, seg, e);
    if (map != MAP_FAILED)
        munmap(map, len);
    return r;
}

static hs_result stage_all(const char *dir, git_repository *repo, git_index *idx, hs_error *e)
{
    /* The state is committed too (small), so that `git status` stays
     * clean; nothing reads it from the history. */
    static const char *const files[] = {HS_AUDIT_CHECKPOINT_FILE, HS_AUDIT_STATE_FILE,
                                        ".gitignore"};
    hs_result r = update_gitignore(dir, e);
    if (r == HS_OK)
        r = stage_entries(dir, repo, idx, e);
    for (size_t i = 0; r == HS_OK && i < sizeof files / sizeof files[0]; i++)
        r = stage_file(dir, repo, idx, files[i], false, e);
    if (r == HS_OK)
        r = stage_checkpoints(dir, repo, idx, e);
    return r;
}

/* Commits tree on HEAD unless HEAD already holds it (or there is nothing
 * at all). The message ends with a newline, as `git commit -m` writes it. */
static hs_result commit_tree(const char *dir, git_repository *repo, const git_oid *tree_id,
                             size_t entries, const char *message, bool *committed, hs_error *e)
{
    git_commit *parent = NULL;
    git_tree *tree = NULL;
    git_signature *sig = NULL;
    char *msg = NULL;
    hs_result r = HS_OK;
    git_oid head_id, id;
    int rc = git_reference_name_to_id(&head_id, repo, "HEAD");
    bool unborn = rc == GIT_ENOTFOUND || rc == GIT_EUNBORNBRANCH; /* no commit yet */
    if ((rc != 0 && !unborn) || (rc == 0 && git_commit_lookup(&parent, repo, &head_id) != 0))
        r = hs_git_fail(e, dir, "reading HEAD");
    if (r != HS_OK || (parent != NULL ? git_oid_equal(git_commit_tree_id(parent), tree_id)
                                      : entries == 0))
        goto out; /* failed, or nothing to commit: a log restored from a copy */
    size_t mlen = strlen(message);
    msg = malloc(mlen + 2);
    if (msg == NULL) {
        r = hs_fail(e, HS_E_NOMEM, "out of memory");
        goto out;
    }
    memcpy(msg, message, mlen);
    memcpy(msg + mlen, "\n", 2);
    const git_commit *parents[1] = {parent};
    if (git_tree_lookup(&tree, repo, tree_id) != 0 ||
        git_signature_now(&sig, GIT_NAME, GIT_EMAIL) != 0 ||
        git_commit_create(&id, repo, "HEAD", sig, sig, NULL, msg, tree, parent != NULL ? 1 : 0,
                          parents) != 0) {
        r = hs_git_fail(e, dir, "commit");
        goto out;
    }
    *committed = true;
out:
    free(msg);
    git_signature_free(sig);
    git_tree_free(tree);
    git_commit_free(parent);
    return r;
}

hs_result hs_auditgit_commit(const char *dir, const char *message, bool known_changed,
                             bool *committed, hs_error *e)
{
    /* Comparing tree ids costs nothing once the index is written: whether
     * the caller knows there is a change no longer matters. */
    (void)known_changed;
    *committed = false;
    git_repository *repo = NULL;
    git_index *idx = NULL;
    git_oid tree_id;
    hs_result r = hs_git_open(dir, true, &repo, e);
    if (r != HS_OK)
        return r;
    remove_stale_locks(dir, repo);
    /* The reflog's identity (HEAD's log), as the commits' is fixed. */
    if (git_repository_set_ident(repo, GIT_NAME, GIT_EMAIL) != 0 ||
        git_repository_index(&idx, repo) != 0) {
        r = hs_git_fail(e, dir, "cannot read the index");
        goto out;
    }
    r = stage_all(dir, repo, idx, e);
    if (r == HS_OK && (git_index_write(idx) != 0 || git_index_write_tree(&tree_id, idx) != 0))
        r = hs_git_fail(e, dir, "cannot write the index");
    if (r == HS_OK)
        r = commit_tree(dir, repo, &tree_id, git_index_entrycount(idx), message, committed, e);
out:
    git_index_free(idx);
    git_repository_free(repo);
    return r;
}
