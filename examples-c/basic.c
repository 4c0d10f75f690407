/* basic.c: join a group, send a message, receive it (our own, via loopback), close.
 * Usage: basic [group] [port]   (default 239.1.1.1 9999) */
#include <stdio.h>
#include <stdlib.h>

#include "multicast.h"

int main(int argc, char **argv) {
    const char *group_addr = argc > 1 ? argv[1] : "239.1.1.1";
    int port = argc > 2 ? atoi(argv[2]) : 9999;

    mc_group *group = NULL;
    if (mc_join(group_addr, port, NULL, &group) != MC_OK) {
        fprintf(stderr, "join: %s\n", mc_last_error());
        return 1;
    }
    int rc = 0;
    if (mc_send(group, "Hello group!", 12) != MC_OK) {
        fprintf(stderr, "send: %s\n", mc_last_error());
        rc = 1;
    } else {
        char data[MC_MAX_MESSAGE_SIZE], source[MC_SOURCE_MAX];
        size_t len = 0;
        mc_status s = mc_receive(group, 5.0, data, sizeof data, &len, source, sizeof source);
        if (s == MC_OK) {
            printf("From %s: %.*s\n", source, (int)len, data);
        } else if (s == MC_TIMEOUT) {
            printf("No message received (timeout)\n");
        } else {
            fprintf(stderr, "receive: %s\n", mc_last_error());
            rc = 1;
        }
    }
    mc_close(group);
    mc_free(group);
    return rc;
}
