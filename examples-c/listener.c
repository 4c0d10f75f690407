/* listener.c: continuous listener. Prints "[source] data" for every message until
 * --count N messages have arrived or SIGINT/SIGTERM, then closes the group.
 * Usage: listener [--count N] [group] [port]; --help prints it. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multicast.h"

static volatile sig_atomic_t stop_requested = 0;

static int usage(FILE *out, int rc) {
    fprintf(out, "usage: listener [--count N] [group] [port]\n"
                 "  Prints \"[source] data\" for each message on group:port (default\n"
                 "  239.1.1.1 9999) until N messages or SIGINT/SIGTERM.\n");
    return rc;
}

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

int main(int argc, char **argv) {
    long count = -1;
    const char *group_addr = "239.1.1.1";
    int port = 9999, positional = 0;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return usage(stdout, 0);
        } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            count = strtol(argv[++i], &end, 10);
            if (*end != '\0' || count < 0) return usage(stderr, 2);
        } else if (argv[i][0] == '-' || positional >= 2) {
            return usage(stderr, 2);
        } else if (positional++ == 0) {
            group_addr = argv[i];
        } else {
            port = (int)strtol(argv[i], &end, 10);
            if (*end != '\0') return usage(stderr, 2);
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    mc_group *group = NULL;
    if (mc_join(group_addr, port, NULL, &group) != MC_OK) {
        fprintf(stderr, "join: %s\n", mc_last_error());
        return 1;
    }
    printf("listening on %s:%d\n", mc_group_addr(group), mc_port(group));
    fflush(stdout);
    int rc = 0;
    long received = 0;
    /* A short timeout lets the loop notice a signal; a timeout is not an error. */
    while (!stop_requested && (count < 0 || received < count)) {
        char data[MC_MAX_MESSAGE_SIZE], source[MC_SOURCE_MAX];
        size_t len = 0;
        mc_status s = mc_receive(group, 0.25, data, sizeof data, &len, source, sizeof source);
        if (s == MC_TIMEOUT) continue;
        if (s != MC_OK) {
            fprintf(stderr, "receive: %s\n", mc_last_error());
            rc = 1;
            break;
        }
        received++;
        printf("[%s] %.*s\n", source, (int)len, data);
        fflush(stdout);
    }
    mc_close(group);
    mc_free(group);
    printf("received %ld message(s)\n", received);
    return rc;
}
