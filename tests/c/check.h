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

/* CHECK_STATUS: `expr` must return `want`; a failure names both statuses. */
#define CHECK_STATUS(expr, want)                                                        \
    do {                                                                                \
        mc_status got_ = (expr);                                                        \
        if (got_ == (want)) {                                                           \
            passed++;                                                                   \
        } else {                                                                        \
            failed++;                                                                   \
            fprintf(stderr, "FAIL %s:%d: %s gave %s, want %s (last error: %s)\n",       \
                    __FILE__, __LINE__, #expr, mc_status_str(got_), mc_status_str(want), \
                    mc_last_error());                                                   \
        }                                                                               \
    } while (0)

#endif
