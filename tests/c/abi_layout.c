/*
 * abi_layout.c: compiled (never run) by scripts/test-cross for every target ABI the
 * library is built for, with clang in C11 and C++ modes, -Wall -Wpedantic -Werror
 * (GNU-only constructs fail there) and MSVC's mode for Windows: the header is valid for
 * each, and mc_join_options has the layout every mirror asserts (versions 1, 2 and 3), on
 * LP64, LLP64 (Windows) and ILP32 (i686, armv7) alike.
 */
#include <stddef.h>

#include "multicast.h"

#ifdef __cplusplus
#define STATIC_ASSERT static_assert
#else
#define STATIC_ASSERT _Static_assert
#endif

#define WIDE (sizeof(void *) == 8)

STATIC_ASSERT(offsetof(mc_join_options, rejoin) == (WIDE ? 56 : 32), "mc_join_options v1 layout");
STATIC_ASSERT(sizeof(mc_join_options) == (WIDE ? 112 : 68), "mc_join_options v3 layout");
STATIC_ASSERT(offsetof(mc_join_options, group_key) == (WIDE ? 72 : 48), "mc_join_options v2 layout");
STATIC_ASSERT(sizeof(mc_status) == sizeof(int), "mc_status is an int");
STATIC_ASSERT(MC_SOURCE_MAX == 64, "MC_SOURCE_MAX");

int abi_layout_checked(void);
int abi_layout_checked(void) { return (int)sizeof(mc_join_options); }
