/* A test that needs a peer program: fails in CI (where it must be
 * installed), skips with the reason on a developer's machine. Include after
 * <cmocka.h>. */
#ifndef SECHAN_TEST_UTIL_NEED_H
#define SECHAN_TEST_UTIL_NEED_H

#include <stdio.h>

#include "proc.h"

static inline void tp_need_program(const char *prog)
{
    if (tp_have_program(prog))
        return;
    if (tp_in_ci()) {
        print_error("%s is not installed (CI must have it)\n", prog);
        fail();
    }
    printf("# skip: %s is not installed\n", prog);
    skip();
}

#endif
