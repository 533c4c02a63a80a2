/* checkpoint.state (audit/state.h): the compact range the fast gate
 * trusts only when it reproduces the signed root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit/merkle.h"
#include "audit/state.h"

#define H HS_MERKLE_HASH_LEN
#define MAXN 70

/* Entry i's line: what record.c writes, reduced to what the gate reads. */
static size_t line(size_t i, char *buf, size_t cap)
{
    return (size_t)snprintf(buf, cap, "{\"op\":\"sign\",\"pad\":\"%0*zu\",\"seq\":%zu}",
                            (int)(i % 7), (size_t)0, i);
}

/* The state of the first n entries, pushed one at a time, and the leaf
 * hashes laid end to end for hs_merkle_root. */
static void build(size_t n, hs_auditstate *s, uint8_t *leaves)
{
    hs_error e;
    hs_auditstate_init(s);
    char buf[128];
    for (size_t i = 0; i < n; i++) {
        size_t len = line(i, buf, sizeof buf);
        assert_int_equal(hs_merkle_leaf_hash((const uint8_t *)buf, len, leaves + i * H, &e), HS_OK);
        assert_int_equal(hs_auditstate_push_leaf(s, leaves + i * H, len, &e), HS_OK);
    }
}

static void checkpoint_of(const uint8_t *leaves, size_t n, hs_checkpoint *cp)
{
    hs_error e;
    memset(cp, 0, sizeof *cp);
    cp->size = n;
    assert_int_equal(hs_merkle_root(leaves, n, cp->root, &e), HS_OK);
}

/* Every size up to 70: the range's root is RFC 6962's root, the state
 * checks against its checkpoint, and survives format and parse. */
static void test_roundtrip(void **state)
{
    (void)state;
    static uint8_t leaves[MAXN * H];
    hs_error e;
    for (size_t n = 0; n <= MAXN; n++) {
        hs_auditstate s, back;
        hs_checkpoint cp;
        build(n, &s, leaves);
        checkpoint_of(leaves, n, &cp);
        assert_int_equal(hs_auditstate_check(&s, &cp, &e), HS_OK);
        char *text;
        size_t len;
        assert_int_equal(hs_auditstate_format(&s, &text, &len, &e), HS_OK);
        assert_int_equal(hs_auditstate_parse(text, len, &back, &e), HS_OK);
        free(text);
        assert_int_equal(hs_auditstate_check(&back, &cp, &e), HS_OK);
        assert_int_equal(back.end, s.end);
        assert_int_equal(back.last_start, s.last_start);
    }
}

/* A state that does not reproduce the signed root is refused: a changed
 * subtree root, a changed last leaf or path, another size, garbage. */
static void test_forged_refused(void **state)
{
    (void)state;
    static uint8_t leaves[MAXN * H];
    hs_error e;
    hs_auditstate s, f;
    hs_checkpoint cp;
    build(12, &s, leaves); /* 12 = 8 + 4: two subtrees, path of 2 */
    checkpoint_of(leaves, 12, &cp);
    f = s;
    f.roots[0][3] ^= 1;
    assert_int_equal(hs_auditstate_check(&f, &cp, &e), HS_E_VERIFY);
    f = s;
    f.last_leaf[0] ^= 1;
    assert_int_equal(hs_auditstate_check(&f, &cp, &e), HS_E_VERIFY);
    f = s;
    f.path[1][31] ^= 1;
    assert_int_equal(hs_auditstate_check(&f, &cp, &e), HS_E_VERIFY);
    f = s;
    f.nroots = 1; /* one root: not the shape of 12 */
    assert_int_equal(hs_auditstate_check(&f, &cp, &e), HS_E_VERIFY);
    hs_checkpoint other;
    checkpoint_of(leaves, 11, &other);
    assert_int_equal(hs_auditstate_check(&s, &other, &e), HS_E_VERIFY);
    assert_int_equal(hs_auditstate_parse("{\"v\":1}", 7, &f, &e), HS_E_FORMAT);
    assert_int_equal(hs_auditstate_parse("not json", 8, &f, &e), HS_E_FORMAT);
}

/* A temporary entries file holding the first n lines, then extra. */
static int entries_file(size_t n, const char *extra)
{
    char path[] = "/tmp/test_audit_state.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    char buf[128];
    for (size_t i = 0; i < n; i++) {
        size_t len = line(i, buf, sizeof buf);
        buf[len++] = '\n';
        assert_int_equal(write(fd, buf, len), (ssize_t)len);
    }
    if (extra != NULL)
        assert_int_equal(write(fd, extra, strlen(extra)), (ssize_t)strlen(extra));
    return fd;
}

/* Extending reads only what follows: the new entries end in the same
 * state as pushing all of them, and a torn last line is ignored. */
static void test_extend(void **state)
{
    (void)state;
    static uint8_t leaves[MAXN * H];
    hs_error e;
    hs_auditstate s, all;
    build(20, &s, leaves);
    build(23, &all, leaves);
    int fd = entries_file(23, "{\"torn");
    assert_int_equal(hs_auditstate_extend(&s, fd, &e), HS_OK);
    close(fd);
    hs_checkpoint cp;
    checkpoint_of(leaves, 23, &cp);
    assert_int_equal(s.size, 23);
    assert_int_equal(s.end, all.end);
    assert_int_equal(hs_auditstate_check(&s, &cp, &e), HS_OK);
    /* From the empty tree too (a log whose checkpoint has size 0). */
    hs_auditstate_init(&s);
    fd = entries_file(3, NULL);
    assert_int_equal(hs_auditstate_extend(&s, fd, &e), HS_OK);
    close(fd);
    assert_int_equal(s.size, 3);
}

static void test_truncated_refused(void **state)
{
    (void)state;
    static uint8_t leaves[MAXN * H];
    hs_error e;
    hs_auditstate s;
    build(20, &s, leaves);
    int fd = entries_file(19, NULL);
    assert_int_equal(hs_auditstate_extend(&s, fd, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "entries were removed"));
    close(fd);
    /* Cut inside the last covered entry. */
    fd = entries_file(19, "{\"op\":\"sign\"}");
    build(20, &s, leaves);
    assert_int_equal(hs_auditstate_extend(&s, fd, &e), HS_E_VERIFY);
    close(fd);
}

/* The last covered entry changed in place, same length: its leaf hash
 * no longer matches the authenticated one. */
static void test_rewritten_last_refused(void **state)
{
    (void)state;
    static uint8_t leaves[MAXN * H];
    hs_error e;
    hs_auditstate s;
    build(20, &s, leaves);
    int fd = entries_file(20, NULL);
    assert_int_equal(pwrite(fd, "X", 1, (off_t)s.last_start + 3), 1);
    assert_int_equal(hs_auditstate_extend(&s, fd, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "was changed"));
    close(fd);
    /* Entries moved: the bytes before last_start no longer end a line. */
    build(20, &s, leaves);
    fd = entries_file(20, NULL);
    assert_int_equal(pwrite(fd, "X", 1, (off_t)s.last_start - 1), 1);
    assert_int_equal(hs_auditstate_extend(&s, fd, &e), HS_E_VERIFY);
    close(fd);
}

/* Lines after the checkpoint must be entries with the next seq. */
static void test_garbage_refused(void **state)
{
    (void)state;
    static uint8_t leaves[MAXN * H];
    hs_error e;
    hs_auditstate s;
    build(20, &s, leaves);
    int fd = entries_file(20, "garbage\n");
    assert_int_equal(hs_auditstate_extend(&s, fd, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "not valid JSON"));
    close(fd);
    build(20, &s, leaves);
    fd = entries_file(20, "{\"seq\":7}\n");
    assert_int_equal(hs_auditstate_extend(&s, fd, &e), HS_E_VERIFY);
    assert_non_null(strstr(e.msg, "sequence number 7"));
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_forged_refused),
        cmocka_unit_test(test_extend),
        cmocka_unit_test(test_truncated_refused),
        cmocka_unit_test(test_rewritten_last_refused),
        cmocka_unit_test(test_garbage_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
