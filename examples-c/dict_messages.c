/* dict_messages.c: send a JSON object (scriptling's dict messages) and read it back.
 * Usage: dict_messages [group] [port] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multicast.h"

int main(int argc, char **argv) {
    const char *group_addr = argc > 1 ? argv[1] : "239.1.1.1";
    int port = argc > 2 ? atoi(argv[2]) : 9999;

    mc_group *group = NULL;
    if (mc_join(group_addr, port, NULL, &group) != MC_OK) {
        fprintf(stderr, "join: %s\n", mc_last_error());
        return 1;
    }
    int rc = 1;
    /* Sent compact with keys sorted, exactly as scriptling sends a dict. */
    if (mc_send_json(group, "{\"action\": \"heartbeat\", \"node\": \"worker-1\"}") != MC_OK) {
        fprintf(stderr, "send: %s\n", mc_last_error());
    } else {
        char data[MC_MAX_MESSAGE_SIZE + 1];
        size_t len = 0;
        mc_status s = mc_receive(group, 5.0, data, sizeof data - 1, &len, NULL, 0);
        if (s == MC_OK) {
            data[len] = '\0';
            printf("received %s\n", data);
            const char *action = strstr(data, "\"action\":\"");
            if (action) {
                action += strlen("\"action\":\"");
                printf("%.*s\n", (int)strcspn(action, "\""), action);
                rc = 0;
            }
        } else if (s == MC_TIMEOUT) {
            printf("No message received (timeout)\n");
        } else {
            fprintf(stderr, "receive: %s\n", mc_last_error());
        }
    }
    mc_close(group);
    mc_free(group);
    return rc;
}
