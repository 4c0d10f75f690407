// The header compiles as C++ (extern "C" guard) and links without name mangling.
#include "multicast.h"

#include <cstdio>
#include <cstring>

int main() {
    mc_status s = mc_join("10.0.0.1", 9999, nullptr, nullptr);
    bool ok = s == MC_ERR_INVALID_ARGUMENT && std::strcmp(mc_version(), MC_VERSION) == 0 &&
              std::strcmp(mc_status_str(MC_ERR_CLOSED), "MC_ERR_CLOSED") == 0;
    std::printf("c++-header: %d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
    return ok ? 0 : 1;
}
