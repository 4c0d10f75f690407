/*
 * mcbench: one side of a libmulticast benchmark pair, run by benches/run.py inside
 * scripts/netns. Each mode runs the same loop over libmulticast ("lib") or over a raw
 * socket configured exactly as libmulticast configures its own ("raw"), and prints one
 * JSON object.
 *
 *   mcbench send IMPL SIZE SECONDS        send rate (the socket also hears its own sends)
 *   mcbench sendpair SIZE SECONDS SLICES [A B]  A and B (default lib and raw) send in
 *                                         one process, alternating slices, so both see
 *                                         the same machine
 *   mcbench recvpair SIZE SECONDS SLICES A B  receive cost of A and B in one process,
 *                                         alternating slices: 64 datagrams sent by a
 *                                         sender of the same kind, then drained, timed
 *   mcbench recv IMPL SIZE SECONDS [PORT] receive rate while `blast` (or `send`, with
 *                                         PORT 47000) saturates the group
 *   mcbench blast SIZE SECONDS            raw sender for recv: as fast as sendto goes
 *   mcbench ping IMPL COUNT               round trips against `pong`: p50/p99 in us
 *   mcbench pong IMPL SECONDS             answers pings
 *   mcbench handles N SECONDS             send+receive rate on one of N joined handles
 *   mcbench bsend SIZE SECONDS PORT MIXED [KEYED]  mc_send_batch, 64 per call (MIXED=1:
 *                                         sizes vary; KEYED=1: an authenticated group)
 *   mcbench brecv SIZE SECONDS PORT GRO [KEYED]    mc_receive_batch, 64 slots (GRO=1:
 *                                         UDP_GRO on)
 *   mcbench send raw SIZE SECONDS PORT    the per-message baseline for the batch pairs
 *   mcbench upkeep GROUPS EVENTS          the upkeep thread's CPU while GROUPS groups are
 *                                         joined on MC_TEST_IFACE and EVENTS interface
 *                                         events happen elsewhere (veth pairs added
 *                                         and deleted, one `ip` command each), and
 *                                         the CPU those `ip` commands used
 *
 * MC_BENCH_TTL=N in the environment sends with TTL N (default 1, the library's), for
 * paths through routers (benches/routed.sh).
 *
 * IMPL "auth" is libmulticast on an authenticated group (a fixed group key): every
 * datagram sealed and opened with ChaCha20-Poly1305.
 *
 * malloc and friends are interposed to count heap allocations inside the timed loops.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "multicast.h"

#define GROUP "239.77.0.1"
#define PORT 47000

/* ---- allocation counting ---- */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
static atomic_long allocations;
void *malloc(size_t n) { atomic_fetch_add(&allocations, 1); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add(&allocations, 1); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add(&allocations, 1); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
int posix_memalign(void **out, size_t align, size_t n) {
    atomic_fetch_add(&allocations, 1);
    void *p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "mcbench: %s: %s / %s\n", what, strerror(errno), mc_last_error());
    exit(1);
}

/* ---- the two implementations behind one interface ---- */
typedef struct {
    int raw;             /* 1: raw socket, 0: libmulticast */
    int poll;            /* raw: wait in ppoll (nanosecond timeout), not SO_RCVTIMEO */
    mc_group *g;
    int fd;
    struct sockaddr_in dest;
    double timeout; /* SO_RCVTIMEO now set (raw): set once, as a raw user would */
} side;

static int bench_ttl(void) {
    return getenv("MC_BENCH_TTL") ? atoi(getenv("MC_BENCH_TTL")) : 1;
}

/* The socket libmulticast builds in mc_join, built by hand. */
static int raw_join(const char *group, int port) {
    const char *ifname = getenv("MC_TEST_IFACE");
    const char *ifaddr = getenv("MC_TEST_ADDR");
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
    int on = 1, off = 0, ttl = bench_ttl();
    if (fd < 0) die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &off, sizeof off);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, group, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) die("bind");
    struct ip_mreqn m = {.imr_multiaddr = a.sin_addr, .imr_ifindex = (int)if_nametoindex(ifname)};
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) != 0) die("IP_ADD_MEMBERSHIP");
    struct in_addr out;
    inet_pton(AF_INET, ifaddr, &out);
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &out, sizeof out);
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &on, sizeof on);
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof on); /* libmulticast always sets it */
    return fd;
}

static side open_side(const char *impl, const char *group, int port) {
    side s = {0};
    s.poll = strcmp(impl, "rawpoll") == 0;
    s.raw = s.poll || strcmp(impl, "raw") == 0;
    s.dest.sin_family = AF_INET;
    s.dest.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, group, &s.dest.sin_addr);
    if (s.raw) {
        s.fd = raw_join(group, port);
        return s;
    }
    mc_join_options o;
    static const uint8_t key[MC_GROUP_KEY_SIZE] = {0x5a, 0x5a, 0x5a, 0x5a};
    if (mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION) != MC_OK) die("mc_join_options_init");
    o.interface_name = getenv("MC_TEST_IFACE");
    o.ttl = bench_ttl();
    if (strcmp(impl, "auth") == 0) {
        o.group_key = key;
        o.group_key_len = sizeof key;
    }
    if (mc_join_with_options(group, port, &o, &s.g) != MC_OK) die("mc_join");
    return s;
}

static int side_send(side *s, const void *buf, size_t len) {
    if (s->raw) return sendto(s->fd, buf, len, 0, (struct sockaddr *)&s->dest, sizeof s->dest) == (ssize_t)len;
    return mc_send(s->g, buf, len) == MC_OK;
}

/* 1: got one (len in *len), 0: timeout. Both take the sender's address, as a user would. */
static int side_receive(side *s, void *buf, size_t cap, size_t *len, double timeout) {
    if (s->raw && s->poll) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        struct timespec ts = {(time_t)timeout, (long)((timeout - (double)(time_t)timeout) * 1e9)};
        if (ppoll(&p, 1, timeout < 0 ? NULL : &ts, NULL) != 1) return 0;
    }
    if (s->raw) {
        if (!s->poll && timeout > 0 && timeout != s->timeout) {
            s->timeout = timeout;
            struct timeval tv = {.tv_sec = (time_t)timeout, .tv_usec = (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
            setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        }
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(s->fd, buf, cap, 0, (struct sockaddr *)&from, &fl);
        if (n < 0) return 0;
        *len = (size_t)n;
        return 1;
    }
    char source[MC_SOURCE_MAX];
    mc_status st = mc_receive(s->g, timeout, buf, cap, len, source, sizeof source);
    if (st == MC_OK) return 1;
    if (st == MC_TIMEOUT) return 0;
    die("mc_receive");
    return 0;
}

static void side_close(side *s) {
    if (s->raw) close(s->fd);
    else mc_free(s->g);
}

/* ---- modes ---- */

/* Mixed sizes (SIZE 0): no two neighbours equal, so a batch goes through sendmmsg. */
static const size_t mixed_sizes[] = {64, 100, 200, 500, 1000, 1400, 300, 80};
static int mode_send(const char *impl, size_t size, double seconds, int port) {
    side s = open_side(impl, GROUP, port);
    char *buf = calloc(1, size ? size : 1500);
    long sent = 0, failed = 0;
    long allocs_before = atomic_load(&allocations);
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        for (int i = 0; i < 256; i++) {
            if (side_send(&s, buf, size ? size : mixed_sizes[i % 8])) sent++;
            else failed++;
        }
        t = now();
    }
    long allocs = atomic_load(&allocations) - allocs_before;
    printf("{\"mode\":\"send\",\"impl\":\"%s\",\"size\":%zu,\"messages\":%ld,\"failed\":%ld,\"seconds\":%.6f,"
           "\"rate\":%.1f,\"allocs_per_message\":%.6f}\n",
           impl, size, sent, failed, t - start, (double)sent / (t - start), (double)allocs / (double)(sent + failed));
    side_close(&s);
    free(buf);
    return 0;
}

/* Both sides in one process, alternating short slices: background noise hits both. */
static int mode_sendpair(size_t size, double seconds, int slices, const char *a, const char *b) {
    side sides[2] = {open_side(a, GROUP, PORT), open_side(b, GROUP, PORT + 5)};
    char *buf = calloc(1, size);
    long sent[2] = {0, 0};
    double spent[2] = {0, 0};
    long allocs[2] = {0, 0};
    double slice = seconds / slices;
    for (int k = 0; k < 2 * slices; k++) {
        int i = k % 2 != (k / 2) % 2; /* lib, raw, raw, lib, lib, raw, ... */
        long allocs_before = atomic_load(&allocations);
        double start = now(), end = start + slice, t = start;
        while (t < end) {
            for (int j = 0; j < 64; j++) sent[i] += side_send(&sides[i], buf, size);
            t = now();
        }
        spent[i] += t - start;
        allocs[i] += atomic_load(&allocations) - allocs_before;
    }
    /* lib_ and raw_ name the default pair's sides: the first and the second. */
    printf("{\"mode\":\"sendpair\",\"sides\":[\"%s\",\"%s\"],\"size\":%zu,\"lib_rate\":%.1f,\"raw_rate\":%.1f,"
           "\"lib_messages\":%ld,\"raw_messages\":%ld,\"allocs_per_message\":%.6f}\n",
           a, b, size, (double)sent[0] / spent[0], (double)sent[1] / spent[1], sent[0], sent[1],
           (double)allocs[0] / (double)(sent[0] ? sent[0] : 1));
    side_close(&sides[0]);
    side_close(&sides[1]);
    free(buf);
    return 0;
}

static int mode_recv(const char *impl, size_t size, double seconds, int port) {
    side s = open_side(impl, GROUP, port);
    char *buf = malloc(65536);
    size_t len = 0;
    long got = 0;
    /* Wait for the blaster's first datagram, then time a fixed window. */
    if (!side_receive(&s, buf, 65536, &len, 10.0)) die("no traffic from blast");
    long allocs_before = atomic_load(&allocations);
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        for (int i = 0; i < 256; i++) {
            if (side_receive(&s, buf, 65536, &len, 1.0)) got++;
        }
        t = now();
    }
    long allocs = atomic_load(&allocations) - allocs_before;
    printf("{\"mode\":\"recv\",\"impl\":\"%s\",\"size\":%zu,\"messages\":%ld,\"seconds\":%.6f,\"rate\":%.1f,"
           "\"allocs_per_message\":%.6f}\n",
           impl, size, got, t - start, (double)got / (t - start), got ? (double)allocs / (double)got : 0.0);
    side_close(&s);
    free(buf);
    return 0;
}

static int mode_blast(size_t size, double seconds) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0), on = 1, ttl = bench_ttl();
    struct in_addr out;
    inet_pton(AF_INET, getenv("MC_TEST_ADDR"), &out);
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &out, sizeof out);
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &on, sizeof on);
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
    struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(PORT + 1)};
    inet_pton(AF_INET, GROUP, &d.sin_addr);
    char *buf = calloc(1, size);
    long sent = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        for (int i = 0; i < 256; i++)
            if (sendto(fd, buf, size, 0, (struct sockaddr *)&d, sizeof d) == (ssize_t)size) sent++;
        t = now();
    }
    printf("{\"mode\":\"blast\",\"size\":%zu,\"messages\":%ld,\"seconds\":%.6f,\"rate\":%.1f}\n", size, sent,
           t - start, (double)sent / (t - start));
    free(buf);
    return 0;
}

/* Receive cost without a sender's pace in it: a burst of 64 datagrams (which fits the
 * default receive buffer) is sent untimed, then drained timed; A and B alternate slices. */
static int mode_recvpair(size_t size, double seconds, int slices, const char *a, const char *b) {
    const char *impls[2] = {a, b};
    side senders[2], receivers[2];
    for (int i = 0; i < 2; i++) {
        senders[i] = open_side(impls[i], GROUP, PORT + 10 + i);
        receivers[i] = open_side(impls[i], GROUP, PORT + 10 + i);
    }
    char *buf = calloc(1, size), *in = malloc(65536);
    long got[2] = {0, 0}, lost[2] = {0, 0};
    double spent[2] = {0, 0};
    double slice = seconds / slices;
    size_t len = 0;
    for (int k = 0; k < 2 * slices; k++) {
        int i = k % 2 != (k / 2) % 2;
        double end = now() + slice;
        while (now() < end) {
            for (int j = 0; j < 64; j++) side_send(&senders[i], buf, size);
            double t0 = now();
            for (int j = 0; j < 64; j++) {
                if (side_receive(&receivers[i], in, 65536, &len, 1.0)) got[i]++;
                else lost[i]++;
            }
            spent[i] += now() - t0;
        }
    }
    printf("{\"mode\":\"recvpair\",\"sides\":[\"%s\",\"%s\"],\"size\":%zu,\"rates\":[%.1f,%.1f],"
           "\"lost\":[%ld,%ld]}\n",
           a, b, size, (double)got[0] / spent[0], (double)got[1] / spent[1], lost[0], lost[1]);
    for (int i = 0; i < 2; i++) {
        side_close(&senders[i]);
        side_close(&receivers[i]);
    }
    free(buf);
    free(in);
    return 0;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Ping-pong on one group: both ends hear their own sends and skip them by tag. */
static int mode_ping(const char *impl, long count) {
    side s = open_side(impl, GROUP, PORT + 2);
    double *rtt = malloc(sizeof(double) * (size_t)count);
    static char buf[65536];
    char msg[64];
    size_t len = 0;
    long lost = 0;
    for (long i = 0; i < count; i++) {
        int n = snprintf(msg, sizeof msg, "P%ld", i);
        double t0 = now();
        side_send(&s, msg, (size_t)n);
        for (;;) {
            if (!side_receive(&s, buf, sizeof buf, &len, 1.0)) { lost++; rtt[i] = 1.0; break; }
            buf[len] = '\0';
            if (buf[0] == 'Q' && atol(buf + 1) == i) { rtt[i] = now() - t0; break; }
        }
    }
    qsort(rtt, (size_t)count, sizeof *rtt, compare_double);
    printf("{\"mode\":\"ping\",\"impl\":\"%s\",\"count\":%ld,\"lost\":%ld,\"p50_us\":%.2f,\"p99_us\":%.2f}\n", impl,
           count, lost, rtt[count / 2] * 1e6, rtt[count * 99 / 100] * 1e6);
    side_send(&s, "X", 1);
    side_close(&s);
    free(rtt);
    return 0;
}

static int mode_pong(const char *impl, double seconds) {
    side s = open_side(impl, GROUP, PORT + 2);
    static char buf[65536];
    size_t len = 0;
    double end = now() + seconds;
    while (now() < end) {
        if (!side_receive(&s, buf, sizeof buf - 1, &len, 0.5)) continue;
        if (buf[0] == 'X') break;
        if (buf[0] != 'P') continue;
        buf[0] = 'Q';
        side_send(&s, buf, len);
    }
    side_close(&s);
    return 0;
}

/* Receive timeouts on an empty group: how late each returns (overrun), per timeout. */
static int mode_timeouts(const char *impl, int scale) {
    static const double timeouts[] = {0.001, 0.005, 0.02, 0.1, 0.5};
    static const int repeats[] = {100, 60, 30, 12, 6};
    side s = open_side(impl, GROUP, PORT + 5);
    static char buf[65536];
    size_t len = 0;
    printf("{\"mode\":\"timeouts\",\"impl\":\"%s\",\"rows\":[", impl);
    for (size_t t = 0; t < sizeof timeouts / sizeof *timeouts; t++) {
        double sum = 0, worst = 0;
        int n = repeats[t] * scale > 0 ? repeats[t] * scale : 1;
        for (int i = 0; i < n; i++) {
            double t0 = now();
            if (side_receive(&s, buf, sizeof buf, &len, timeouts[t])) die("unexpected datagram");
            double over = now() - t0 - timeouts[t];
            sum += over;
            if (over > worst) worst = over;
        }
        printf("%s{\"timeout_ms\":%g,\"count\":%d,\"mean_overrun_ms\":%.3f,\"max_overrun_ms\":%.3f}",
               t ? "," : "", timeouts[t] * 1e3, n, sum / n * 1e3, worst * 1e3);
    }
    printf("]}\n");
    side_close(&s);
    return 0;
}

static long resident_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1) break;
    if (f) fclose(f);
    return kib;
}

/* Per-message cost on one handle while N are joined, and memory per handle. */
static int mode_handles(long n, double seconds) {
    struct rlimit r = {.rlim_cur = (rlim_t)n + 64, .rlim_max = (rlim_t)n + 64};
    setrlimit(RLIMIT_NOFILE, &r);
    long before = resident_kib();
    mc_group **groups = calloc((size_t)n, sizeof *groups);
    for (long i = 0; i < n; i++) {
        char addr[32];
        snprintf(addr, sizeof addr, "239.78.%ld.%ld", i / 250, i % 250 + 1);
        if (mc_join(addr, PORT + 3, getenv("MC_TEST_IFACE"), &groups[i]) != MC_OK) die("mc_join");
    }
    long after = resident_kib();
    char buf[64] = {0}, src[MC_SOURCE_MAX];
    size_t len;
    long done = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        for (int i = 0; i < 256; i++) {
            mc_send(groups[0], buf, 64);
            if (mc_receive(groups[0], 1.0, buf, sizeof buf, &len, src, sizeof src) == MC_OK) done++;
        }
        t = now();
    }
    printf("{\"mode\":\"handles\",\"handles\":%ld,\"round_trips\":%ld,\"rate\":%.1f,\"kib_per_handle\":%.2f}\n", n,
           done, (double)done / (t - start), (double)(after - before) / (double)n);
    for (long i = 0; i < n; i++) mc_free(groups[i]);
    free(groups);
    return 0;
}

#define BATCH 64

/* The batch modes' options: the test interface, GRO as asked, the fixed key if keyed. */
static mc_join_options batch_options(int gro, int keyed) {
    static const uint8_t key[MC_GROUP_KEY_SIZE] = {0x5a, 0x5a, 0x5a, 0x5a};
    mc_join_options o;
    if (mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION) != MC_OK) die("mc_join_options_init");
    o.interface_name = getenv("MC_TEST_IFACE");
    o.gro = gro != 0;
    if (keyed) {
        o.group_key = key;
        o.group_key_len = sizeof key;
    }
    return o;
}

static int mode_bsend(size_t size, double seconds, int port, int mixed, int keyed) {
    /* GRO on the sender's own handle too: it hears its own runs, and a socket without
     * GRO makes the kernel split every run back into datagrams on the way in. */
    mc_join_options o = batch_options(1, keyed);
    mc_group *g = NULL;
    if (mc_join_with_options(GROUP, port, &o, &g) != MC_OK) die("mc_join_with_options");
    static char payload[BATCH][1500];
    mc_datagram batch[BATCH];
    for (int i = 0; i < BATCH; i++) {
        batch[i].data = payload[i];
        batch[i].len = mixed ? mixed_sizes[i % 8] : size;
    }
    long sent = 0, calls = 0;
    long allocs_before = atomic_load(&allocations);
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        for (int i = 0; i < 16; i++) {
            size_t n = 0;
            if (mc_send_batch(g, batch, BATCH, &n) != MC_OK) die("mc_send_batch");
            sent += (long)n;
            calls++;
        }
        t = now();
    }
    long allocs = atomic_load(&allocations) - allocs_before;
    printf("{\"mode\":\"bsend\",\"impl\":\"lib\",\"size\":%zu,\"mixed\":%d,\"keyed\":%d,\"messages\":%ld,"
           "\"seconds\":%.6f,\"rate\":%.1f,\"allocs_per_call\":%.4f}\n",
           size, mixed, keyed, sent, t - start, (double)sent / (t - start), (double)allocs / (double)calls);
    mc_free(g);
    return 0;
}

static int mode_brecv(size_t size, double seconds, int port, int gro, int keyed) {
    mc_join_options o = batch_options(gro, keyed);
    mc_group *g = NULL;
    if (mc_join_with_options(GROUP, port, &o, &g) != MC_OK) die("mc_join_with_options");
    /* Slots that cannot truncate (65,507 bytes) let the library use recvmmsg. */
    static char bufs[BATCH][MC_MAX_MESSAGE_SIZE];
    mc_received slots[BATCH];
    size_t n = 0;
    for (int i = 0; i < BATCH; i++) slots[i] = (mc_received){.buf = bufs[i], .capacity = sizeof bufs[i]};
    if (mc_receive_batch(g, 10.0, slots, 1, &n) != MC_OK) die("no traffic");
    long got = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        for (int i = 0; i < 16; i++) {
            if (mc_receive_batch(g, 1.0, slots, BATCH, &n) == MC_OK) got += (long)n;
        }
        t = now();
    }
    uint32_t dropped = 0;
    mc_dropped(g, &dropped);
    printf("{\"mode\":\"brecv\",\"impl\":\"lib\",\"size\":%zu,\"gro\":%d,\"messages\":%ld,\"seconds\":%.6f,"
           "\"rate\":%.1f,\"dropped\":%u}\n",
           size, gro, got, t - start, (double)got / (t - start), dropped);
    mc_free(g);
    return 0;
}

/* CPU seconds the library's upkeep thread has used (its name in /proc/self/task). */
static double upkeep_cpu(void) {
    char path[300], comm[32];
    double ticks = (double)sysconf(_SC_CLK_TCK);
    DIR *tasks = opendir("/proc/self/task");
    if (!tasks) die("/proc/self/task");
    for (struct dirent *task; (task = readdir(tasks));) {
        const char *tid = task->d_name;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", tid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        int named = fgets(comm, sizeof comm, f) && strncmp(comm, "libmulticast-up", 15) == 0;
        fclose(f);
        if (!named) continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", tid);
        f = fopen(path, "r");
        char line[1024];
        if (!f || !fgets(line, sizeof line, f)) die("upkeep thread stat");
        fclose(f);
        unsigned long utime = 0, stime = 0;
        /* After the command's closing parenthesis: state, then 10 fields, utime, stime. */
        if (sscanf(strrchr(line, ')') + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
            die("upkeep thread stat fields");
        closedir(tasks);
        return (double)(utime + stime) / ticks;
    }
    die("no upkeep thread");
    return 0;
}

/* Runs `ip ARGS...` (no shell between, so the children's CPU is ip's own). */
static void run_ip(char *const argv[]) {
    extern char **environ;
    pid_t pid;
    int status;
    if (posix_spawnp(&pid, "ip", NULL, NULL, argv, environ) != 0) die("spawn ip");
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) die("ip link");
}

/* CPU seconds the waited-for children have used. */
static double children_cpu(void) {
    struct rusage use;
    getrusage(RUSAGE_CHILDREN, &use);
    return (double)use.ru_utime.tv_sec + use.ru_utime.tv_usec / 1e6 + (double)use.ru_stime.tv_sec +
           use.ru_stime.tv_usec / 1e6;
}

static int mode_upkeep(int groups, int events) {
    if (events <= 0 || events % 100) die("upkeep: EVENTS must be a multiple of 100");
    mc_group **g = calloc((size_t)groups, sizeof *g);
    for (int i = 0; i < groups; i++) {
        char group[32];
        snprintf(group, sizeof group, "239.77.%d.%d", i / 250, i % 250 + 1);
        if (mc_join(group, PORT, getenv("MC_TEST_IFACE"), &g[i]) != MC_OK) die("mc_join");
    }
    double before = upkeep_cpu(), ip_before = children_cpu(), start = now();
    for (int i = 0; i < events; i++) {
        char name[32], peer[32];
        /* Rounds of 50 pairs added, then the 50 deleted: a host with containers
         * starting and stopping, up to 100 interfaces more than the groups' own. */
        int n = i % 100 % 50;
        snprintf(name, sizeof name, "mcchurn%d", n);
        snprintf(peer, sizeof peer, "mcchurn%dp", n);
        if (i % 100 >= 50) {
            char *argv[] = {"ip", "link", "del", name, NULL};
            run_ip(argv);
        } else {
            char *argv[] = {"ip", "link", "add", name, "type", "veth", "peer", "name", peer, NULL};
            run_ip(argv);
        }
    }
    double wall = now() - start, ip_cpu = children_cpu() - ip_before;
    /* Let the thread finish the last burst before its CPU is read. */
    struct timespec pause = {0, 200 * 1000 * 1000};
    nanosleep(&pause, NULL);
    double cpu = upkeep_cpu() - before;
    printf("{\"mode\":\"upkeep\",\"groups\":%d,\"events\":%d,\"seconds\":%.6f,\"cpu\":%.4f,"
           "\"cpu_ms_per_1000\":%.2f,\"ip_cpu\":%.4f,\"ip_cpu_ms_per_1000\":%.2f}\n",
           groups, events, wall, cpu, cpu * 1e6 / events, ip_cpu, ip_cpu * 1e6 / events);
    for (int i = 0; i < groups; i++) mc_free(g[i]);
    free(g);
    return 0;
}

int main(int argc, char **argv) {
    if (!getenv("MC_NETNS")) {
        fprintf(stderr, "mcbench: refusing to run outside scripts/netns (no MC_NETNS)\n");
        return 2;
    }
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "send") == 0)
        return mode_send(argv[2], strtoul(argv[3], 0, 10), atof(argv[4]), argc == 6 ? atoi(argv[5]) : PORT);
    if ((argc == 5 || argc == 7) && strcmp(argv[1], "sendpair") == 0)
        return mode_sendpair(strtoul(argv[2], 0, 10), atof(argv[3]), atoi(argv[4]), argc == 7 ? argv[5] : "lib",
                             argc == 7 ? argv[6] : "raw");
    if (argc == 7 && strcmp(argv[1], "recvpair") == 0)
        return mode_recvpair(strtoul(argv[2], 0, 10), atof(argv[3]), atoi(argv[4]), argv[5], argv[6]);
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "bsend") == 0)
        return mode_bsend(strtoul(argv[2], 0, 10), atof(argv[3]), atoi(argv[4]), atoi(argv[5]),
                          argc == 7 ? atoi(argv[6]) : 0);
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "brecv") == 0)
        return mode_brecv(strtoul(argv[2], 0, 10), atof(argv[3]), atoi(argv[4]), atoi(argv[5]),
                          argc == 7 ? atoi(argv[6]) : 0);
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "recv") == 0)
        return mode_recv(argv[2], strtoul(argv[3], 0, 10), atof(argv[4]), argc == 6 ? atoi(argv[5]) : PORT + 1);
    if (argc == 4 && strcmp(argv[1], "blast") == 0) return mode_blast(strtoul(argv[2], 0, 10), atof(argv[3]));
    if (argc == 4 && strcmp(argv[1], "ping") == 0) return mode_ping(argv[2], atol(argv[3]));
    if (argc == 4 && strcmp(argv[1], "pong") == 0) return mode_pong(argv[2], atof(argv[3]));
    if (argc == 4 && strcmp(argv[1], "timeouts") == 0) return mode_timeouts(argv[2], atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "handles") == 0) return mode_handles(atol(argv[2]), atof(argv[3]));
    if (argc == 4 && strcmp(argv[1], "upkeep") == 0) return mode_upkeep(atoi(argv[2]), atoi(argv[3]));
    fprintf(stderr, "usage: see the comment at the top of benches/mcbench.c\n");
    return 2;
}
