/* check.h: the pass/fail counting shared by the C test programs (one translation unit
 * each). CHECK reports a failed condition with the calling thread's mc_last_error(). */
#ifndef MC_TEST_CHECK_H
#define MC_TEST_CHECK_H

#include <stdio.h>

#include "multicast.h"

static int passed, failed;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (cond) {                                                                     \
            passed++;                                                                   \
        } else {                                                                        \
            failed++;                                                                   \
            fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__,  \
                    #cond, mc_last_error());                                            \
        }                                                                               \
    } while (0)

#endif
