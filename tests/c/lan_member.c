/*
 * lan_member.c: one member of the simulated LAN (scripts/test-lan). Joins the group on
 * mc0, says it is ready (SYNC_DIR/ready.SELF), waits for the common start time the
 * script writes once every member is ready (SYNC_DIR/go), sends COUNT paced messages "self:seq" while
 * receiving everyone's, and prints one result line:
 *   member I sent S errors E received R lost_from_steady L lost_from_flapped F tail_ok T
 * "steady" senders are all but FLAP (the member whose link is cut); tail_ok says whether
 * the last TAIL messages of every other steady sender arrived (i.e. reception works
 * after a link flap).
 * Usage: lan_member SELF HOSTS COUNT INTERVAL_MS SYNC_DIR FLAP PORT
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "multicast.h"

#define MAX_HOSTS 64
#define TAIL 50

static int self, hosts, count, interval_ms, flap;
static long long start_ms;
static mc_group *group;
static int sent, send_errors;

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(long long ms) {
    if (ms <= 0) return;
    struct timespec t = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void *sender(void *arg) {
    (void)arg;
    for (int seq = 0; seq < count; seq++) {
        sleep_ms(start_ms + (long long)seq * interval_ms - now_ms());
        char text[32];
        int n = snprintf(text, sizeof text, "%d:%d", self, seq);
        if (mc_send(group, text, (size_t)n) == MC_OK) sent++;
        else send_errors++;
    }
    return NULL;
}

/* Joined: tell the script, then wait (as long as it takes) for the start time it
 * writes once all members are joined, so a slow start never costs a message. */
static long long wait_for_start(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/ready.%d", dir, self);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fclose(f);
    snprintf(path, sizeof path, "%s/go", dir);
    long long start = 0;
    while (start <= 0) {
        f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%lld", &start) != 1) start = 0;
            fclose(f);
        }
        if (start <= 0) sleep_ms(10);
    }
    return start;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: lan_member SELF HOSTS COUNT INTERVAL_MS SYNC_DIR FLAP PORT\n");
        return 2;
    }
    self = atoi(argv[1]);
    hosts = atoi(argv[2]);
    count = atoi(argv[3]);
    interval_ms = atoi(argv[4]);
    flap = atoi(argv[6]);
    int port = atoi(argv[7]);
    if (hosts > MAX_HOSTS || count <= TAIL) return 2;
    if (mc_join("239.5.0.1", port, "mc0", &group) != MC_OK) {
        fprintf(stderr, "member %d: join: %s\n", self, mc_last_error());
        return 1;
    }
    start_ms = wait_for_start(argv[5]);
    if (start_ms < 0) {
        fprintf(stderr, "member %d: cannot write to %s\n", self, argv[5]);
        return 1;
    }
    static unsigned char seen[MAX_HOSTS + 1][4096];
    pthread_t t;
    pthread_create(&t, NULL, sender, NULL);
    /* Generous: a member that has everything leaves at once. */
    long long end_ms = start_ms + (long long)count * interval_ms + 10000;
    int received = 0;
    while (now_ms() < end_ms && received < hosts * count) {
        char buf[64], source[MC_SOURCE_MAX];
        size_t len = 0;
        mc_status s = mc_receive(group, 0.2, buf, sizeof buf - 1, &len, source, sizeof source);
        if (s == MC_TIMEOUT) continue;
        if (s != MC_OK) {
            fprintf(stderr, "member %d: receive: %s\n", self, mc_last_error());
            break;
        }
        buf[len] = '\0';
        int from, seq;
        if (sscanf(buf, "%d:%d", &from, &seq) == 2 && from >= 1 && from <= hosts && seq >= 0 &&
            seq < count && !seen[from][seq]) {
            seen[from][seq] = 1;
            received++;
        }
    }
    pthread_join(t, NULL);
    int lost_steady = 0, lost_flapped = 0, tail_ok = 1;
    for (int h = 1; h <= hosts; h++) {
        for (int seq = 0; seq < count; seq++) {
            if (seen[h][seq]) continue;
            if (h == flap) lost_flapped++;
            else lost_steady++;
            if (h != flap && seq >= count - TAIL) tail_ok = 0;
        }
    }
    printf("member %d sent %d errors %d received %d lost_from_steady %d lost_from_flapped %d tail_ok %d\n",
           self, sent, send_errors, received, lost_steady, lost_flapped, tail_ok);
    mc_close(group);
    mc_free(group);
    return 0;
}
