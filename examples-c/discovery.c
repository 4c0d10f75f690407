/* discovery.c: service discovery. Announce this service as a JSON record, listen for
 * other services' records, and print each one found.
 * Usage: discovery NAME HOST SERVICE_PORT [seconds] [group] [port]
 * Announces every 200 ms for `seconds` (default 3) and prints each other service once. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multicast.h"

/* Copies the value of "key" from the compact JSON we send ({"host":"..","port":N,..}). */
static int json_field(const char *json, const char *key, char *out, size_t cap) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *p = strstr(json, pattern);
    if (!p) return 0;
    p += strlen(pattern);
    int quoted = *p == '"';
    p += quoted;
    size_t n = 0;
    while (p[n] && n + 1 < cap && (quoted ? p[n] != '"' : (p[n] != ',' && p[n] != '}'))) n++;
    memcpy(out, p, n);
    out[n] = '\0';
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: discovery NAME HOST SERVICE_PORT [seconds] [group] [port]\n");
        return 2;
    }
    const char *name = argv[1], *host = argv[2];
    int service_port = atoi(argv[3]);
    int rounds = (argc > 4 ? atoi(argv[4]) : 3) * 5;
    const char *group_addr = argc > 5 ? argv[5] : "239.1.1.1";
    int port = argc > 6 ? atoi(argv[6]) : 9999;

    mc_group *group = NULL;
    if (mc_join(group_addr, port, NULL, &group) != MC_OK) {
        fprintf(stderr, "join: %s\n", mc_last_error());
        return 1;
    }
    char record[256], seen[16][64];
    int nseen = 0, rc = 0;
    snprintf(record, sizeof record, "{\"service\": \"%s\", \"port\": %d, \"host\": \"%s\"}", name,
             service_port, host);
    printf("%s: announcing %s on %s:%d\n", name, record, group_addr, port);
    fflush(stdout);
    for (int round = 0; round < rounds && rc == 0; round++) {
        if (mc_send_json(group, record) != MC_OK) {
            fprintf(stderr, "send: %s\n", mc_last_error());
            rc = 1;
            break;
        }
        /* Drain what arrives during this announcement period. */
        for (;;) {
            char data[MC_MAX_MESSAGE_SIZE + 1], source[MC_SOURCE_MAX];
            char service[64], shost[64], sport[16];
            size_t len = 0;
            mc_status s = mc_receive(group, 0.2, data, sizeof data - 1, &len, source, sizeof source);
            if (s == MC_TIMEOUT) break;
            if (s != MC_OK) {
                fprintf(stderr, "receive: %s\n", mc_last_error());
                rc = 1;
                break;
            }
            data[len] = '\0';
            if (!json_field(data, "service", service, sizeof service) ||
                !json_field(data, "host", shost, sizeof shost) ||
                !json_field(data, "port", sport, sizeof sport) || strcmp(service, name) == 0)
                continue;
            int known = 0;
            for (int i = 0; i < nseen; i++) known |= strcmp(seen[i], service) == 0;
            if (!known && nseen < 16) {
                snprintf(seen[nseen++], sizeof seen[0], "%s", service);
                printf("%s: found %s at %s:%s (announced from %s)\n", name, service, shost, sport, source);
                fflush(stdout);
            }
        }
    }
    mc_close(group);
    mc_free(group);
    printf("%s: %d other service(s) found\n", name, nseen);
    return rc;
}
