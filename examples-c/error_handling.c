/* error_handling.c: every call's status checked, the group closed on every path.
 * Usage: error_handling [group] [port] */
#include <stdio.h>
#include <stdlib.h>

#include "multicast.h"

/* Reports a failed call; returns 1 so callers can `rc |= report(...)`. */
static int report(const char *what, mc_status status) {
    fprintf(stderr, "%s failed: %s: %s\n", what, mc_status_str(status), mc_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *group_addr = argc > 1 ? argv[1] : "239.1.1.1";
    int port = argc > 2 ? atoi(argv[2]) : 9999;
    mc_group *group = NULL;
    mc_status s;

    /* Errors are values with a message, never crashes. */
    s = mc_join("192.168.1.1", port, NULL, &group);
    printf("joining a unicast address: %s: %s\n", mc_status_str(s), mc_last_error());
    s = mc_join(group_addr, 0, NULL, &group);
    printf("joining port 0: %s: %s\n", mc_status_str(s), mc_last_error());

    s = mc_join(group_addr, port, NULL, &group);
    if (s != MC_OK) return report("join", s);

    int rc = 0;
    /* try ... finally: every path below reaches the close. */
    s = mc_send(group, "Hello!", 6);
    if (s != MC_OK) {
        rc = report("send", s);
    } else {
        char data[MC_MAX_MESSAGE_SIZE];
        size_t len = 0;
        s = mc_receive(group, 5.0, data, sizeof data, &len, NULL, 0);
        if (s == MC_OK) {
            printf("Received: %.*s\n", (int)len, data);
        } else if (s != MC_TIMEOUT) {
            rc = report("receive", s);
        }
    }
    s = mc_close(group);
    if (s != MC_OK) rc = report("close", s);
    s = mc_send(group, "late", 4);
    printf("sending after close: %s: %s\n", mc_status_str(s), mc_last_error());
    mc_free(group);
    return rc;
}
