/* The audit log directory as a git repository (see git.h). */
#include "audit/git.h"
#include "audit/git_run.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit/checkpoint.h"
#include "audit/log.h"
#include "audit/record.h"
#include "util/file.h"

extern char **environ;

#define MAX_GIT_ARGS 24
#define MAX_GIT_OUTPUT ((size_t)1 << 32)

static const char gitignore[] = ".lock\n*.tmp.*\n";

/* Reads all of fd into a growing buffer. */
static hs_result slurp(int fd, uint8_t **out, size_t *out_len, hs_error *e)
{
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap + 1);
    if (buf == NULL)
        return hs_fail(e, HS_E_NOMEM, "out of memory");
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_GIT_OUTPUT) {
                free(buf);
                return hs_fail(e, HS_E_IO, "git: output too large");
            }
            uint8_t *bigger = realloc(buf, cap * 2 + 1);
            if (bigger == NULL) {
                free(buf);
                return hs_fail(e, HS_E_NOMEM, "out of memory");
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            return hs_fail(e, HS_E_IO, "git: reading its output: %s", strerror(errno));
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return HS_OK;
}

/* Every path built here is DIR plus at most 40 bytes ("/.git",
 * "--work-tree=", a file name of the log): checked once, so that no
 * snprintf below can cut a path short. */
#define PATH_ROOM 4200
#define MAX_DIR_LEN (PATH_ROOM - 64)

static hs_result check_dir_len(const char *dir, hs_error *e)
{
    if (strlen(dir) > MAX_DIR_LEN)
        return hs_fail(e, HS_E_USAGE, "audit log %.64s...: path longer than %d bytes", dir,
                       MAX_DIR_LEN);
    return HS_OK;
}

hs_result hs_git_spawn(const char *dir, const char *const *args, int stdin_fd, bool capture,
                       hs_git_proc *proc, hs_error *e)
{
    proc->pid = -1;
    proc->out_fd = -1;
    hs_result r0 = check_dir_len(dir, e);
    if (r0 != HS_OK)
        return r0;
    char git_dir[PATH_ROOM], work_tree[PATH_ROOM];
    snprintf(git_dir, sizeof git_dir, "--git-dir=%s/.git", dir);
    snprintf(work_tree, sizeof work_tree, "--work-tree=%s", dir);
    /* Explicit repository paths and identity: the operator's environment,
     * hooks or signing configuration must not change what is recorded. */
    const char *argv[MAX_GIT_ARGS] = {"git", git_dir, work_tree, "-c", "user.name=hsmsign",
                                      "-c", "user.email=hsmsign@localhost", "-c",
                                      "core.hooksPath=/dev/null", "-c", "commit.gpgSign=false"};
    size_t n = 11;
    for (size_t i = 0; args[i] != NULL; i++) {
        if (n + 1 >= MAX_GIT_ARGS)
            return hs_fail(e, HS_E_INTERNAL, "git: too many arguments");
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    int pipefd[2] = {-1, -1};
    if (capture && pipe2(pipefd, O_CLOEXEC) != 0)
        return hs_fail(e, HS_E_IO, "git: cannot create a pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (stdin_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, stdin_fd, STDIN_FILENO);
    else
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    if (capture)
        posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
    else
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&proc->pid, "git", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    if (rc != 0) {
        if (pipefd[0] >= 0)
            close(pipefd[0]);
        proc->pid = -1;
        return hs_fail(e, HS_E_IO, "audit log %s: cannot run git: %s", dir, strerror(rc));
    }
    proc->out_fd = pipefd[0];
    return HS_OK;
}

int hs_git_wait(hs_git_proc *proc)
{
    if (proc->out_fd >= 0)
        close(proc->out_fd);
    proc->out_fd = -1;
    if (proc->pid < 0)
        return 128;
    int ws;
    while (waitpid(proc->pid, &ws, 0) < 0) {
        if (errno != EINTR) {
            ws = -1;
            break;
        }
    }
    proc->pid = -1;
    return ws != -1 && WIFEXITED(ws) ? WEXITSTATUS(ws) : 128;
}

/* Runs `git` on the log directory with args (NULL-terminated). Output is
 * captured when out is not NULL, else discarded; stderr is discarded (the
 * message names the command). *status gets the exit status. */
static hs_result run_git(const char *dir, const char *const *args, uint8_t **out, size_t *out_len,
                         int *status, hs_error *e)
{
    hs_git_proc proc;
    hs_result r = hs_git_spawn(dir, args, -1, out != NULL, &proc, e);
    if (r != HS_OK)
        return r;
    if (out != NULL)
        r = slurp(proc.out_fd, out, out_len, e);
    *status = hs_git_wait(&proc);
    return r;
}

/* run_git that must exit 0. */
static hs_result git_ok(const char *dir, const char *const *args, uint8_t **out, size_t *out_len,
                        hs_error *e)
{
    int status;
    hs_result r = run_git(dir, args, out, out_len, &status, e);
    if (r == HS_OK && status != 0) {
        if (out != NULL) {
            free(*out);
            *out = NULL;
        }
        r = hs_fail(e, HS_E_AUDIT, "audit log %s: `git %s` failed (exit %d)", dir, args[0], status);
    }
    return r;
}

static hs_result init_repo(const char *dir, hs_error *e)
{
    hs_result r0 = check_dir_len(dir, e);
    if (r0 != HS_OK)
        return r0;
    char path[PATH_ROOM];
    snprintf(path, sizeof path, "%s/.git", dir);
    struct stat st;
    if (stat(path, &st) == 0)
        return HS_OK;
    const char *init[] = {"init", "-q", NULL};
    hs_result r = git_ok(dir, init, NULL, NULL, e);
    snprintf(path, sizeof path, "%s/.gitignore", dir);
    if (r == HS_OK)
        r = hs_write_file_atomic(path, gitignore, sizeof gitignore - 1, 0644, false, e);
    return r;
}

hs_result hs_auditgit_commit(const char *dir, const char *message, bool known_changed,
                             bool *committed, hs_error *e)
{
    *committed = false;
    hs_result r = init_repo(dir, e);
    const char *add[8] = {"add", "--"};
    const char *files[] = {HS_AUDIT_ENTRIES_FILE, HS_AUDIT_CHECKPOINT_FILE,
                           HS_AUDIT_CHECKPOINT_DIR, ".gitignore"};
    size_t n = 2;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[PATH_ROOM]; /* fits: init_repo checked dir's length */
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (access(path, F_OK) == 0)
            add[n++] = files[i];
    }
    add[n] = NULL;
    if (r == HS_OK && n > 2)
        r = git_ok(dir, add, NULL, NULL, e);
    const char *commit[] = {"commit", "-q", "-m", message, NULL};
    const char *diff[] = {"diff", "--cached", "--quiet", NULL};
    int status = 0;
    if (r == HS_OK && known_changed) {
        /* Commit straight away; only if that fails ask whether there was
         * anything to commit (a log restored from a copy can hold exactly
         * what HEAD holds), which is not an error. */
        r = run_git(dir, commit, NULL, NULL, &status, e);
        if (r == HS_OK && status == 0) {
            *committed = true;
            return HS_OK;
        }
    }
    int staged = 0;
    if (r == HS_OK)
        r = run_git(dir, diff, NULL, NULL, &staged, e);
    if (r == HS_OK && staged == 1 && known_changed)
        r = hs_fail(e, HS_E_AUDIT, "audit log %s: `git commit` failed (exit %d)", dir, status);
    else if (r == HS_OK && staged == 1) {
        r = git_ok(dir, commit, NULL, NULL, e);
        *committed = r == HS_OK;
    } else if (r == HS_OK && staged != 0) {
        r = hs_fail(e, HS_E_AUDIT, "audit log %s: `git diff --cached` failed (exit %d)", dir,
                    staged);
    }
    return r;
}

hs_result hs_git_run(const char *dir, const char *const *args, uint8_t **out, size_t *out_len,
                     hs_error *e)
{
    return git_ok(dir, args, out, out_len, e);
}

