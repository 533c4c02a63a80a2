/* libgit2, loaded with dlopen when the audit log is first committed or
 * verified, not linked (git_dl.c says why). Included by git_lib.h after
 * <git2.h>: every git_* function used in src/lib/audit (and by its tests)
 * is a member of hs_git, and a macro of the same name makes the calls in
 * the sources unchanged go through it. A function used anywhere else must
 * be added to HS_GIT_FUNCTIONS and to the macros below; a missing one
 * fails to link (libgit2 is not on the link line), never at run time. */
#ifndef HSMSIGN_AUDIT_GIT_DL_H
#define HSMSIGN_AUDIT_GIT_DL_H

#include <stdbool.h>

#define HS_GIT_FUNCTIONS(X) \
    X(git_blob_create_from_buffer) \
    X(git_blob_free) \
    X(git_blob_lookup) \
    X(git_blob_rawcontent) \
    X(git_blob_rawsize) \
    X(git_commit_create) \
    X(git_commit_free) \
    X(git_commit_lookup) \
    X(git_commit_parent_id) \
    X(git_commit_parentcount) \
    X(git_commit_tree) \
    X(git_commit_tree_id) \
    X(git_error_last) \
    X(git_index_add) \
    X(git_index_add_bypath) \
    X(git_index_entrycount) \
    X(git_index_find_prefix) \
    X(git_index_free) \
    X(git_index_get_byindex) \
    X(git_index_get_bypath) \
    X(git_index_remove) \
    X(git_index_remove_bypath) \
    X(git_index_remove_directory) \
    X(git_index_write) \
    X(git_index_write_tree) \
    X(git_libgit2_init) \
    X(git_libgit2_opts) \
    X(git_libgit2_shutdown) \
    X(git_object_id) \
    X(git_object_type) \
    X(git_odb_free) \
    X(git_odb_hash) \
    X(git_odb_read_header) \
    X(git_oid_equal) \
    X(git_oid_tostr) \
    X(git_reference_free) \
    X(git_reference_lookup) \
    X(git_reference_name_to_id) \
    X(git_reference_symbolic_target) \
    X(git_repository_free) \
    X(git_repository_index) \
    X(git_repository_init) \
    X(git_repository_odb) \
    X(git_repository_open_ext) \
    X(git_repository_set_ident) \
    X(git_revparse_single) \
    X(git_signature_free) \
    X(git_signature_now) \
    X(git_tree_entry_byindex) \
    X(git_tree_entry_byname) \
    X(git_tree_entry_bypath) \
    X(git_tree_entry_free) \
    X(git_tree_entry_id) \
    X(git_tree_entry_name) \
    X(git_tree_entry_type) \
    X(git_tree_entrycount) \
    X(git_tree_free) \
    X(git_tree_lookup) \

typedef struct hs_git_api {
#define HS_GIT_MEMBER(name) __typeof__(name) *name;
    HS_GIT_FUNCTIONS(HS_GIT_MEMBER)
#undef HS_GIT_MEMBER
} hs_git_api;

/* Filled by hs_git_load; all NULL before. */
extern hs_git_api hs_git;

/* Loads libgit2 (HSMSIGN_LIBGIT2_SONAME) and every function above, once
 * per process, thread-safe. False, with the reason in buf, when the
 * library or a function is missing. */
bool hs_git_load(char *buf, size_t cap);

/* Not in git_dl.c, which fills the members by these names. */
#ifndef HS_GIT_DL_IMPL
#define git_blob_create_from_buffer (hs_git.git_blob_create_from_buffer)
#define git_blob_free (hs_git.git_blob_free)
#define git_blob_lookup (hs_git.git_blob_lookup)
#define git_blob_rawcontent (hs_git.git_blob_rawcontent)
#define git_blob_rawsize (hs_git.git_blob_rawsize)
#define git_commit_create (hs_git.git_commit_create)
#define git_commit_free (hs_git.git_commit_free)
#define git_commit_lookup (hs_git.git_commit_lookup)
#define git_commit_parent_id (hs_git.git_commit_parent_id)
#define git_commit_parentcount (hs_git.git_commit_parentcount)
#define git_commit_tree (hs_git.git_commit_tree)
#define git_commit_tree_id (hs_git.git_commit_tree_id)
#define git_error_last (hs_git.git_error_last)
#define git_index_add (hs_git.git_index_add)
#define git_index_add_bypath (hs_git.git_index_add_bypath)
#define git_index_entrycount (hs_git.git_index_entrycount)
#define git_index_find_prefix (hs_git.git_index_find_prefix)
#define git_index_free (hs_git.git_index_free)
#define git_index_get_byindex (hs_git.git_index_get_byindex)
#define git_index_get_bypath (hs_git.git_index_get_bypath)
#define git_index_remove (hs_git.git_index_remove)
#define git_index_remove_bypath (hs_git.git_index_remove_bypath)
#define git_index_remove_directory (hs_git.git_index_remove_directory)
#define git_index_write (hs_git.git_index_write)
#define git_index_write_tree (hs_git.git_index_write_tree)
#define git_libgit2_init (hs_git.git_libgit2_init)
#define git_libgit2_opts (hs_git.git_libgit2_opts)
#define git_libgit2_shutdown (hs_git.git_libgit2_shutdown)
#define git_object_id (hs_git.git_object_id)
#define git_object_type (hs_git.git_object_type)
#define git_odb_free (hs_git.git_odb_free)
#define git_odb_hash (hs_git.git_odb_hash)
#define git_odb_read_header (hs_git.git_odb_read_header)
#define git_oid_equal (hs_git.git_oid_equal)
#define git_oid_tostr (hs_git.git_oid_tostr)
#define git_reference_free (hs_git.git_reference_free)
#define git_reference_lookup (hs_git.git_reference_lookup)
#define git_reference_name_to_id (hs_git.git_reference_name_to_id)
#define git_reference_symbolic_target (hs_git.git_reference_symbolic_target)
#define git_repository_free (hs_git.git_repository_free)
#define git_repository_index (hs_git.git_repository_index)
#define git_repository_init (hs_git.git_repository_init)
#define git_repository_odb (hs_git.git_repository_odb)
#define git_repository_open_ext (hs_git.git_repository_open_ext)
#define git_repository_set_ident (hs_git.git_repository_set_ident)
#define git_revparse_single (hs_git.git_revparse_single)
#define git_signature_free (hs_git.git_signature_free)
#define git_signature_now (hs_git.git_signature_now)
#define git_tree_entry_byindex (hs_git.git_tree_entry_byindex)
#define git_tree_entry_byname (hs_git.git_tree_entry_byname)
#define git_tree_entry_bypath (hs_git.git_tree_entry_bypath)
#define git_tree_entry_free (hs_git.git_tree_entry_free)
#define git_tree_entry_id (hs_git.git_tree_entry_id)
#define git_tree_entry_name (hs_git.git_tree_entry_name)
#define git_tree_entry_type (hs_git.git_tree_entry_type)
#define git_tree_entrycount (hs_git.git_tree_entrycount)
#define git_tree_free (hs_git.git_tree_free)
#define git_tree_lookup (hs_git.git_tree_lookup)
#endif

#endif
