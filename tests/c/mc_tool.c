/*
 * mc_tool: one member of a scripted multi-host test (scripts/test-multihomed).
 *
 *   mc_tool send GROUP PORT IFACE TEXT       join on IFACE ("" = kernel's choice), send TEXT
 *   mc_tool recv GROUP PORT IFACE SECONDS [UNTIL]
 *                                            join, print "joined", then "SOURCE TEXT" per
 *                                            datagram until one carries UNTIL or SECONDS
 *                                            pass without one
 *   mc_tool join GROUP PORT IFACE            join only; print the status and message
 *
 * With MC_TOOL_REANNOUNCE=SECONDS in the environment, recv re-announces its membership
 * at that interval (mc_join_options.reannounce_seconds); with MC_TOOL_TTL=N, send sends
 * with that TTL; with MC_TOOL_SOURCE=ADDRESS, the join is source-specific (only that
 * sender's datagrams: mc_join_options.source_address).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multicast.h"

static mc_group *join(const char *group, const char *port, const char *iface) {
    mc_group *g = NULL;
    mc_join_options o;
    mc_status s = mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION);
    o.interface_name = iface;
    if (getenv("MC_TOOL_REANNOUNCE")) o.reannounce_seconds = (uint32_t)atoi(getenv("MC_TOOL_REANNOUNCE"));
    if (getenv("MC_TOOL_TTL")) o.ttl = atoi(getenv("MC_TOOL_TTL"));
    if (getenv("MC_TOOL_SOURCE")) o.source_address = getenv("MC_TOOL_SOURCE");
    if (s == MC_OK) s = mc_join_with_options(group, atoi(port), &o, &g);
    if (s != MC_OK) {
        printf("%s %s\n", mc_status_str(s), mc_last_error());
        exit(3);
    }
    return g;
}

int main(int argc, char **argv) {
    if (!getenv("MC_NETNS")) {
        fprintf(stderr, "mc_tool: refusing to run outside scripts/netns\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 6 && strcmp(argv[1], "send") == 0) {
        mc_group *g = join(argv[2], argv[3], argv[4]);
        mc_status s = mc_send(g, argv[5], strlen(argv[5]));
        if (s != MC_OK) printf("%s %s\n", mc_status_str(s), mc_last_error());
        mc_free(g);
        return s == MC_OK ? 0 : 1;
    }
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "recv") == 0) {
        mc_group *g = join(argv[2], argv[3], argv[4]);
        printf("joined\n");
        char buf[2048], src[MC_SOURCE_MAX];
        size_t len;
        while (mc_receive(g, atof(argv[5]), buf, sizeof buf - 1, &len, src, sizeof src) == MC_OK) {
            buf[len] = '\0';
            printf("%s %s\n", src, buf);
            if (argc == 7 && strcmp(buf, argv[6]) == 0) break;
        }
        mc_free(g);
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "join") == 0) {
        mc_group *g = join(argv[2], argv[3], argv[4]);
        printf("MC_OK\n");
        mc_free(g);
        return 0;
    }
    fprintf(stderr, "usage: see tests/c/mc_tool.c\n");
    return 2;
}
