/*
 * test_api.c: the C API contract of libmulticast, over real sockets.
 * Run inside scripts/netns (it refuses otherwise). `test_api --no-route` runs only the
 * check that a namespace without a multicast route gives an actionable MC_ERR_INTERFACE.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "multicast.h"

/* The released layouts are fixed (64-bit; 32-bit in brackets): version 1 is the 56 (32)
 * bytes up to source_address, version 2 the 72 (48) up to max_bytes_per_second, version 3
 * the whole struct. The Rust side and every mirror assert the same. */
_Static_assert(offsetof(mc_join_options, rejoin) == (sizeof(void *) == 8 ? 56 : 32), "mc_join_options v1 layout changed");
_Static_assert(offsetof(mc_join_options, group_key) == (sizeof(void *) == 8 ? 72 : 48), "mc_join_options v2 layout changed");
_Static_assert(sizeof(mc_join_options) == (sizeof(void *) == 8 ? 112 : 68), "mc_join_options v3 layout changed");

/* A catalogue entry: checked like CHECK_STATUS, and written (with the message the
 * library gave) to $MC_CATALOGUE, from which docs/testing.md's table is checked. */
static FILE *catalogue;

static void catalogue_row(const char *what, const char *want, mc_status status) {
    if (!catalogue) return;
    fprintf(catalogue, "| %s | `%s` | %s |\n", what, want, status < 0 ? mc_last_error() : "");
}

#define CATALOGUE(what, expr, want)                  \
    do {                                             \
        mc_status status_ = (expr);                  \
        CHECK_STATUS(status_, want);                 \
        catalogue_row(what, #want, status_);         \
    } while (0)

#define LAST_ERROR_HAS(text) CHECK(strstr(mc_last_error(), (text)) != NULL)

/* What this build can do here (mc_capabilities): the portable path documents a stand-in
 * for each capability it lacks, and these tests check that stand-in instead. */
static int has(mc_capability cap) {
    uint32_t bits = 0;
    if (mc_capabilities(&bits) != MC_OK) {
        fprintf(stderr, "mc_capabilities failed: %s\n", mc_last_error());
        exit(1);
    }
    return (bits & (uint32_t)cap) != 0;
}

static const char *test_addr(void) {
    const char *a = getenv("MC_TEST_ADDR");
    return a ? a : "";
}

static int next_port = 30000;

static mc_group *join_or_die(const char *group, int port) {
    mc_group *g = NULL;
    mc_status s = mc_join(group, port, NULL, &g);
    if (s != MC_OK) {
        fprintf(stderr, "cannot join %s:%d: %s %s\n", group, port, mc_status_str(s), mc_last_error());
        exit(1);
    }
    return g;
}

static int count_fds(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

static void test_version(void) {
    CHECK(strcmp(mc_version(), MC_VERSION) == 0);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", MC_VERSION_MAJOR, MC_VERSION_MINOR, MC_VERSION_PATCH);
    CHECK(strcmp(mc_version(), want) == 0);
    /* The suite says which build it runs: every capability on Linux, none on the
     * portable path. */
    uint32_t bits = 0xffff;
    CHECK_STATUS(mc_capabilities(&bits), MC_OK);
    const char *expect = getenv("MC_EXPECT_CAPABILITIES");
    if (expect) CHECK(bits == (uint32_t)strtoul(expect, NULL, 0));
}

static void test_status_names(void) {
    CHECK(strcmp(mc_status_str(MC_OK), "MC_OK") == 0);
    CHECK(strcmp(mc_status_str(MC_TIMEOUT), "MC_TIMEOUT") == 0);
    CHECK(strcmp(mc_status_str(MC_ERR_CLOSED), "MC_ERR_CLOSED") == 0);
    CHECK(strcmp(mc_status_str(MC_ERR_INTERNAL), "MC_ERR_INTERNAL") == 0);
    CHECK(strcmp(mc_status_str((mc_status)42), "MC_UNKNOWN_STATUS") == 0);
    CHECK(sizeof(mc_status) == sizeof(int));
}

static void test_join_errors(void) {
    mc_group *sentinel = (mc_group *)&passed; /* any non-NULL value: must stay untouched */
    mc_group *g = sentinel;
    CHECK_STATUS(mc_join(NULL, 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    LAST_ERROR_HAS("group_addr is NULL");
    CHECK_STATUS(mc_join("239.1.1.1", 9999, NULL, NULL), MC_ERR_INVALID_ARGUMENT);
    LAST_ERROR_HAS("out is NULL");
    CHECK_STATUS(mc_join("\xff\xfe", 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    LAST_ERROR_HAS("not valid UTF-8");
    CHECK_STATUS(mc_join("239.1.1.1", 9999, "\xc3\x28", &g), MC_ERR_INVALID_ARGUMENT);
    LAST_ERROR_HAS("interface_name is not valid UTF-8");
    CHECK_STATUS(mc_join("", 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(mc_join("not-an-ip", 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    LAST_ERROR_HAS("invalid multicast address");
    char *long_text = malloc(100001);
    memset(long_text, '9', 100000);
    long_text[100000] = '\0';
    CHECK_STATUS(mc_join(long_text, 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CHECK(strlen(mc_last_error()) < 200);
    CHECK_STATUS(mc_join("239.1.1.1", 9999, long_text, &g), MC_ERR_INTERFACE);
    CHECK(strlen(mc_last_error()) < 200);
    free(long_text);
    CHECK_STATUS(mc_join("192.168.1.1", 9999, NULL, &g), MC_ERR_NOT_MULTICAST);
    CHECK(strcmp(mc_last_error(), "address 192.168.1.1 is not a multicast address") == 0);
    int bad_ports[] = {0, -1, 65536, INT32_MIN};
    for (size_t i = 0; i < sizeof bad_ports / sizeof bad_ports[0]; i++) {
        CHECK_STATUS(mc_join("239.1.1.1", bad_ports[i], NULL, &g), MC_ERR_INVALID_ARGUMENT);
        CHECK(strcmp(mc_last_error(), "port must be between 1 and 65535") == 0);
    }
    CHECK_STATUS(mc_join("239.1.1.1", 9999, "eth-nope", &g), MC_ERR_INTERFACE);
    CHECK(strcmp(mc_last_error(), "interface not found: eth-nope") == 0);
    CHECK_STATUS(mc_join("239.1.1.1", 9999, "10.99.99.99", &g), MC_ERR_INTERFACE);
    CHECK(strcmp(mc_last_error(), "interface not found: 10.99.99.99") == 0);
    CHECK_STATUS(mc_join("239.1.1.1", 9999, "mc0 ", &g), MC_ERR_INTERFACE);
    CHECK(strcmp(mc_last_error(), "interface not found: mc0 ") == 0);
    CHECK_STATUS(mc_join("[ff02::1%mc0", 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CHECK(strcmp(mc_last_error(), "invalid multicast address: \"[ff02::1%mc0\" is not an IPv4 or IPv6 address literal") == 0);
    CHECK(g == sentinel);
}

static mc_join_options default_options(void);

/* Go's host:port spellings of a group, and an interface without IPv4 (joined by index). */
static void test_group_spellings_and_index_joins(void) {
    mc_group *g = NULL;
    static const struct { const char *spelling, *group; int zoned; } spellings[] = {
        {"[ff02::1%mc0]", "ff02::1", 1},
        {"ff02::1%mc0", "ff02::1", 1},
        {"[ff05::1:7]", "ff05::1:7", 0},
        {"[239.1.1.7]", "239.1.1.7", 0},
    };
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        const char *iface = spellings[i].zoned ? NULL : getenv("MC_TEST_IFACE");
        CHECK_STATUS(mc_join(spellings[i].spelling, next_port++, iface, &g), MC_OK);
        if (g) {
            CHECK(strcmp(mc_group_addr(g), spellings[i].group) == 0);
            mc_free(g);
            g = NULL;
        }
    }
    /* mc1 has no IPv4 address: joined and sent through by index, heard across the pair. */
    int port = next_port++;
    mc_join_options o = default_options();
    o.loopback = 0;
    o.interface_name = "mc1";
    mc_group *on_mc1 = NULL, *on_mc0 = NULL;
    CHECK_STATUS(mc_join_with_options("239.1.1.8", port, &o, &on_mc1), MC_OK);
    o.interface_name = getenv("MC_TEST_IFACE");
    CHECK_STATUS(mc_join_with_options("239.1.1.8", port, &o, &on_mc0), MC_OK);
    if (on_mc1 && on_mc0) {
        char buf[16];
        size_t len = 0;
        CHECK_STATUS(mc_send(on_mc1, "via mc1", 7), MC_OK);
        CHECK_STATUS(mc_receive(on_mc0, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
        CHECK(len == 7 && memcmp(buf, "via mc1", 7) == 0);
        CHECK_STATUS(mc_send(on_mc0, "via mc0", 7), MC_OK);
        CHECK_STATUS(mc_receive(on_mc1, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
        CHECK(len == 7 && memcmp(buf, "via mc0", 7) == 0);
    }
    mc_free(on_mc1);
    mc_free(on_mc0);
}

static void test_null_arguments(void) {
    char buf[16], src[MC_SOURCE_MAX];
    size_t len = 99;
    CHECK_STATUS(mc_send(NULL, "x", 1), MC_ERR_INVALID_ARGUMENT);
    LAST_ERROR_HAS("group is NULL");
    CHECK_STATUS(mc_send_json(NULL, "{}"), MC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(mc_receive(NULL, 0, buf, sizeof buf, &len, src, sizeof src), MC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(mc_close(NULL), MC_ERR_INVALID_ARGUMENT);
    mc_free(NULL);
    CHECK(mc_group_addr(NULL) == NULL);
    LAST_ERROR_HAS("group is NULL");
    CHECK(mc_port(NULL) == -1);
    CHECK(mc_local_addr(NULL) == NULL);

    mc_group *g = join_or_die("239.1.2.1", next_port++);
    CHECK_STATUS(mc_send(g, NULL, 5), MC_ERR_INVALID_ARGUMENT);
    LAST_ERROR_HAS("data is NULL");
    CHECK_STATUS(mc_send_json(g, NULL), MC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(mc_send_json(g, "\"\xff\""), MC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(mc_receive(g, 0, buf, sizeof buf, NULL, src, sizeof src), MC_ERR_INVALID_ARGUMENT);
    LAST_ERROR_HAS("out_len is NULL");
    CHECK_STATUS(mc_receive(g, 0, NULL, 10, &len, src, sizeof src), MC_ERR_INVALID_ARGUMENT);
    LAST_ERROR_HAS("buf is NULL");
    CHECK_STATUS(mc_receive(g, NAN, buf, sizeof buf, &len, src, sizeof src), MC_ERR_INVALID_ARGUMENT);
    LAST_ERROR_HAS("NaN");
    mc_free(g);
}

static void test_round_trip_and_properties(void) {
    int port = next_port++;
    mc_group *g = join_or_die("239.1.2.2", port);
    char want[64];
    snprintf(want, sizeof want, "239.1.2.2:%d", port);
    CHECK(strcmp(mc_group_addr(g), "239.1.2.2") == 0);
    CHECK(mc_port(g) == port);
    CHECK(strcmp(mc_local_addr(g), want) == 0);

    CHECK_STATUS(mc_send(g, "Hello group!", 12), MC_OK);
    char buf[MC_MAX_MESSAGE_SIZE], src[MC_SOURCE_MAX];
    size_t len = 0;
    CHECK_STATUS(mc_receive(g, 5.0, buf, sizeof buf, &len, src, sizeof src), MC_OK);
    CHECK(len == 12 && memcmp(buf, "Hello group!", 12) == 0);
    snprintf(want, sizeof want, "%s:%d", test_addr(), port);
    CHECK(strcmp(src, want) == 0);

    /* Binary-safe, and source may be NULL. */
    const unsigned char bin[] = {0, 1, 0, 255};
    CHECK_STATUS(mc_send(g, bin, sizeof bin), MC_OK);
    CHECK_STATUS(mc_receive(g, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
    CHECK(len == 4 && memcmp(buf, bin, 4) == 0);
    mc_free(g);
}

static void test_interface_choice(void) {
    int port = next_port++;
    mc_group *by_name = NULL, *by_addr = NULL;
    CHECK_STATUS(mc_join("239.1.2.3", port, getenv("MC_TEST_IFACE"), &by_name), MC_OK);
    CHECK_STATUS(mc_join("239.1.2.3", port, test_addr(), &by_addr), MC_OK);
    CHECK_STATUS(mc_send(by_name, "x", 1), MC_OK);
    char buf[8];
    size_t len = 0;
    CHECK_STATUS(mc_receive(by_addr, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
    CHECK_STATUS(mc_receive(by_name, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
    mc_free(by_name);
    mc_free(by_addr);
}

static void test_sizes(void) {
    mc_group *g = join_or_die("239.1.2.4", next_port++);
    static unsigned char big[MC_MAX_MESSAGE_SIZE + 1], got[MC_MAX_MESSAGE_SIZE];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (unsigned char)(i * 7);
    size_t len = 1;
    CHECK_STATUS(mc_send(g, big, MC_MAX_MESSAGE_SIZE + 1), MC_ERR_MESSAGE_TOO_LARGE);
    LAST_ERROR_HAS("65508 bytes");
    CHECK_STATUS(mc_send(g, big, MC_MAX_MESSAGE_SIZE), MC_OK);
    CHECK_STATUS(mc_send(g, NULL, 0), MC_OK);
    CHECK_STATUS(mc_receive(g, 5.0, got, sizeof got, &len, NULL, 0), MC_OK);
    CHECK(len == MC_MAX_MESSAGE_SIZE && memcmp(got, big, len) == 0);
    CHECK_STATUS(mc_receive(g, 5.0, got, sizeof got, &len, NULL, 0), MC_OK);
    CHECK(len == 0);
    /* The too-large message was never sent. */
    CHECK_STATUS(mc_receive(g, 0.1, got, sizeof got, &len, NULL, 0), MC_TIMEOUT);
    mc_free(g);
}

static void test_small_buffers_lose_nothing(void) {
    mc_group *g = join_or_die("239.1.2.5", next_port++);
    CHECK_STATUS(mc_send(g, "0123456789", 10), MC_OK);
    char small[4], src_small[8], src[MC_SOURCE_MAX], buf[16];
    size_t len = 0;
    CHECK_STATUS(mc_receive(g, 5.0, small, sizeof small, &len, NULL, 0), MC_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 10);
    LAST_ERROR_HAS("too small");
    CHECK_STATUS(mc_receive(g, 5.0, NULL, 0, &len, NULL, 0), MC_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 10);
    CHECK_STATUS(mc_receive(g, 5.0, buf, sizeof buf, &len, src_small, sizeof src_small),
                 MC_ERR_INVALID_ARGUMENT);
    LAST_ERROR_HAS("source_capacity");
    CHECK_STATUS(mc_receive(g, 5.0, buf, 10, &len, src, 22), MC_OK);
    CHECK(len == 10 && memcmp(buf, "0123456789", 10) == 0);
    mc_free(g);
}

static void test_timeouts(void) {
    mc_group *g = join_or_die("239.1.2.6", next_port++);
    char buf[16], src[MC_SOURCE_MAX] = "junk";
    size_t len = 7;
    CHECK_STATUS(mc_receive(g, 0, buf, sizeof buf, &len, src, sizeof src), MC_TIMEOUT);
    CHECK(len == 0 && src[0] == '\0');
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK_STATUS(mc_receive(g, 0.1, buf, sizeof buf, &len, NULL, 0), MC_TIMEOUT);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double waited = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    CHECK(waited >= 0.1);
    mc_free(g);
}

static void test_json(void) {
    mc_group *g = join_or_die("239.1.2.7", next_port++);
    CHECK_STATUS(mc_send_json(g, "{\"node\": \"worker-1\", \"action\": \"heartbeat\", \"ts\": 1.0}"), MC_OK);
    char buf[256];
    size_t len = 0;
    CHECK_STATUS(mc_receive(g, 5.0, buf, sizeof buf - 1, &len, NULL, 0), MC_OK);
    buf[len] = '\0';
    CHECK(strcmp(buf, "{\"action\":\"heartbeat\",\"node\":\"worker-1\",\"ts\":1}") == 0);
    CHECK_STATUS(mc_send_json(g, "{\"a\": }"), MC_ERR_INVALID_JSON);
    LAST_ERROR_HAS("line 1 column 7");
    CHECK_STATUS(mc_send_json(g, ""), MC_ERR_INVALID_JSON);
    CHECK_STATUS(mc_receive(g, 0.1, buf, sizeof buf, &len, NULL, 0), MC_TIMEOUT);
    mc_free(g);
}

static void test_groups_do_not_leak(void) {
    int port = next_port++;
    mc_group *a = join_or_die("239.1.2.8", port);
    mc_group *b = join_or_die("239.1.2.9", port);
    CHECK_STATUS(mc_send(b, "for b", 5), MC_OK);
    char buf[16];
    size_t len = 0;
    CHECK_STATUS(mc_receive(b, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
    CHECK_STATUS(mc_receive(a, 0.2, buf, sizeof buf, &len, NULL, 0), MC_TIMEOUT);
    mc_free(a);
    mc_free(b);
}

struct blocked {
    mc_group *g;
    mc_status status;
};

static void *receive_forever(void *arg) {
    struct blocked *b = arg;
    char buf[16];
    size_t len = 0;
    b->status = mc_receive(b->g, -1.0, buf, sizeof buf, &len, NULL, 0);
    return NULL;
}

static void test_close_wakes_receivers(void) {
    mc_group *g = join_or_die("239.1.2.10", next_port++);
    pthread_t threads[3];
    struct blocked b[3];
    for (int i = 0; i < 3; i++) {
        b[i].g = g;
        b[i].status = MC_OK;
        pthread_create(&threads[i], NULL, receive_forever, &b[i]);
    }
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    CHECK_STATUS(mc_close(g), MC_OK);
    for (int i = 0; i < 3; i++) {
        pthread_join(threads[i], NULL);
        CHECK_STATUS(b[i].status, MC_ERR_CLOSED);
    }
    CHECK_STATUS(mc_close(g), MC_OK);
    CHECK_STATUS(mc_send(g, "x", 1), MC_ERR_CLOSED);
    CHECK(strcmp(mc_last_error(), "send failed: group is closed") == 0);
    CHECK_STATUS(mc_send_json(g, "{}"), MC_ERR_CLOSED);
    char buf[4];
    size_t len;
    CHECK_STATUS(mc_receive(g, 1.0, buf, sizeof buf, &len, NULL, 0), MC_ERR_CLOSED);
    CHECK(strcmp(mc_last_error(), "receive failed: group is closed") == 0);
    /* Properties stay valid after close, until mc_free. */
    CHECK(strcmp(mc_group_addr(g), "239.1.2.10") == 0);
    mc_free(g);
}

static void test_no_descriptor_leak(void) {
    int port = next_port++;
    int before = count_fds();
    for (int i = 0; i < 300; i++) {
        mc_group *g = join_or_die("239.1.2.11", port);
        if (i % 2) CHECK_STATUS(mc_close(g), MC_OK);
        mc_free(g);
    }
    CHECK(count_fds() == before);
}

#include <sys/resource.h>

static mc_join_options default_options(void) {
    mc_join_options o;
    memset(&o, 0x5a, sizeof o); /* garbage, so init must set every field */
    if (mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION) != MC_OK) {
        fprintf(stderr, "mc_join_options_init failed: %s\n", mc_last_error());
        exit(1);
    }
    return o;
}

static int socket_int_option(mc_group *g, int level, int name) {
    int fd = -1, value = -1;
    socklen_t size = sizeof value;
    if (mc_fd(g, &fd) != MC_OK || getsockopt(fd, level, name, &value, &size) != 0) return -1;
    return value;
}

static void test_join_options(void) {
    mc_join_options o = default_options();
    CHECK(o.version == MC_JOIN_OPTIONS_VERSION && o.interface_name == NULL && o.interface_index == 0);
    CHECK(o.ttl == 1 && o.loopback && o.receive_buffer_size == 0 && !o.gro && !o.packet_info);
    CHECK(o.rejoin && o.reannounce_seconds == 0);

    /* A caller compiled against version 1 has only its 56 bytes: init and join must not
     * touch a byte past them (ASan and valgrind watch this heap block's edge). */
    mc_join_options *v1 = malloc(offsetof(mc_join_options, rejoin));
    CHECK_STATUS(mc_join_options_init(v1, 1), MC_OK);
    CHECK(v1->version == 1 && v1->ttl == 1 && v1->loopback);
    mc_group *from_v1 = NULL;
    CHECK_STATUS(mc_join_with_options("239.1.3.2", next_port++, v1, &from_v1), MC_OK);
    mc_membership_status status = MC_MEMBERSHIP_INTERFACE_GONE;
    uint64_t rejoins = 99;
    CHECK_STATUS(mc_membership(from_v1, &status, &rejoins), MC_OK);
    CHECK(status == MC_MEMBERSHIP_JOINED && rejoins == 0);
    CHECK_STATUS(mc_membership(from_v1, NULL, NULL), MC_OK);
    mc_free(from_v1);
    free(v1);

    /* Likewise a version-2 caller: nothing past max_bytes_per_second is read or written. */
    mc_join_options *v2 = malloc(offsetof(mc_join_options, group_key));
    CHECK_STATUS(mc_join_options_init(v2, 2), MC_OK);
    CHECK(v2->version == 2 && v2->rejoin && v2->max_bytes_per_second == 0);
    mc_group *from_v2 = NULL;
    CHECK_STATUS(mc_join_with_options("239.1.3.2", next_port++, v2, &from_v2), MC_OK);
    mc_free(from_v2);
    free(v2);

    /* A send budget: one call takes its tokens at one instant, so these counts are exact. */
    mc_join_options limited = default_options();
    limited.max_datagrams_per_second = 2;
    mc_group *budgeted = NULL;
    CHECK_STATUS(mc_join_with_options("239.1.3.3", next_port++, &limited, &budgeted), MC_OK);
    mc_datagram five[5] = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}, {"e", 1}};
    size_t sent = 0;
    CHECK_STATUS(mc_send_batch(budgeted, five, 5, &sent), MC_OK);
    CHECK(sent == 2);
    mc_free(budgeted);

    /* Defaults and NULL options both behave as mc_join. */
    mc_group *g = NULL;
    int port = next_port++;
    CHECK_STATUS(mc_join_with_options("239.1.3.1", port, NULL, &g), MC_OK);
    CHECK(socket_int_option(g, IPPROTO_IP, IP_MULTICAST_TTL) == 1);
    mc_free(g);

    /* TTL, by interface index, and a receive buffer read back as granted. */
    o.ttl = 32;
    o.interface_index = if_nametoindex(getenv("MC_TEST_IFACE"));
    o.receive_buffer_size = 4096;
    CHECK_STATUS(mc_join_with_options("239.1.3.1", port, &o, &g), MC_OK);
    CHECK(socket_int_option(g, IPPROTO_IP, IP_MULTICAST_TTL) == 32);
    size_t granted = 0;
    CHECK_STATUS(mc_receive_buffer_size(g, &granted), MC_OK);
    CHECK(granted == 8192); /* Linux doubles the request for its bookkeeping */
    CHECK_STATUS(mc_send(g, "by index", 8), MC_OK);
    char buf[16], src[MC_SOURCE_MAX], want[64];
    size_t len = 0;
    CHECK_STATUS(mc_receive(g, 5.0, buf, sizeof buf, &len, src, sizeof src), MC_OK);
    snprintf(want, sizeof want, "%s:%d", test_addr(), port);
    CHECK(len == 8 && strcmp(src, want) == 0);
    mc_free(g);

    /* Loopback off: another member on this host does not hear the sender. */
    mc_join_options quiet = default_options();
    quiet.loopback = false;
    mc_group *sender = NULL, *listener = NULL;
    port = next_port++;
    CHECK_STATUS(mc_join_with_options("239.1.3.2", port, &quiet, &sender), MC_OK);
    CHECK_STATUS(mc_join("239.1.3.2", port, NULL, &listener), MC_OK);
    CHECK_STATUS(mc_send(sender, "unheard", 7), MC_OK);
    CHECK_STATUS(mc_receive(listener, 0.3, buf, sizeof buf, &len, NULL, 0), MC_TIMEOUT);
    CHECK_STATUS(mc_send(listener, "heard", 5), MC_OK); /* listener's loopback is on */
    CHECK_STATUS(mc_receive(listener, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
    CHECK(len == 5 && memcmp(buf, "heard", 5) == 0);
    mc_free(sender);
    mc_free(listener);
}

static void test_event_loop(void) {
    mc_group *g = join_or_die("239.1.3.3", next_port++);
    int fd = -1;
    CHECK_STATUS(mc_fd(g, &fd), MC_OK);
    CHECK(fd >= 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK(poll(&p, 1, 0) == 0); /* nothing queued yet */
    CHECK_STATUS(mc_send(g, "one", 3), MC_OK);
    CHECK_STATUS(mc_send(g, "two", 3), MC_OK);
    CHECK(poll(&p, 1, 5000) == 1 && (p.revents & POLLIN));
    /* Drain without blocking, as an event loop does. */
    char buf[8];
    size_t len = 0;
    int drained = 0;
    mc_status s;
    while ((s = mc_receive(g, 0, buf, sizeof buf, &len, NULL, 0)) == MC_OK) drained++;
    CHECK_STATUS(s, MC_TIMEOUT);
    CHECK(drained == 2);
    CHECK(poll(&p, 1, 0) == 0);
    mc_close(g);
    CHECK_STATUS(mc_fd(g, &fd), MC_ERR_CLOSED);
    LAST_ERROR_HAS("group is closed");
    size_t granted = 0;
    CHECK_STATUS(mc_receive_buffer_size(g, &granted), MC_ERR_CLOSED);
    mc_free(g);
}

static void test_catalogue_options(void) {
    mc_group *g = NULL;
    mc_join_options o;
    int fd = 0;
    size_t size = 0;
    CATALOGUE("`mc_join_options_init` options NULL", mc_join_options_init(NULL, MC_JOIN_OPTIONS_VERSION), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_join_options_init` version 0", mc_join_options_init(&o, 0), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_join_options_init` version from a newer header", mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION + 1), MC_ERR_INVALID_ARGUMENT);
    o = default_options();
    o.version = 99;
    CATALOGUE("`mc_join_with_options` options of an unknown version", mc_join_with_options("239.1.1.1", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    o = default_options();
    CATALOGUE("`mc_join_with_options` out NULL", mc_join_with_options("239.1.1.1", 9999, &o, NULL), MC_ERR_INVALID_ARGUMENT);
    o.ttl = 0;
    CATALOGUE("`mc_join_with_options` ttl 0", mc_join_with_options("239.1.1.1", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    o.ttl = 256;
    CATALOGUE("`mc_join_with_options` ttl 256", mc_join_with_options("239.1.1.1", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    o.ttl = -1;
    CATALOGUE("`mc_join_with_options` ttl -1", mc_join_with_options("239.1.1.1", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    o = default_options();
    o.interface_name = "mc0";
    o.interface_index = 1;
    CATALOGUE("`mc_join_with_options` interface name and index", mc_join_with_options("239.1.1.1", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    o = default_options();
    o.interface_index = 999999;
    CATALOGUE("`mc_join_with_options` unknown interface index", mc_join_with_options("239.1.1.1", 9999, &o, &g), MC_ERR_INTERFACE);
    o = default_options();
    o.interface_name = "\xff";
    CATALOGUE("`mc_join_with_options` interface_name not UTF-8", mc_join_with_options("239.1.1.1", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    o = default_options();
    o.receive_buffer_size = (size_t)1 << 40;
    CATALOGUE("`mc_join_with_options` receive buffer 1 TiB", mc_join_with_options("239.1.1.1", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    CHECK(g == NULL);
    mc_membership_status status;
    CATALOGUE("`mc_membership` group NULL", mc_membership(NULL, &status, NULL), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_fd` group NULL", mc_fd(NULL, &fd), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_receive_buffer_size` group NULL", mc_receive_buffer_size(NULL, &size), MC_ERR_INVALID_ARGUMENT);
    g = join_or_die("239.1.2.22", next_port++);
    CATALOGUE("`mc_fd` out_fd NULL", mc_fd(g, NULL), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_receive_buffer_size` out NULL", mc_receive_buffer_size(g, NULL), MC_ERR_INVALID_ARGUMENT);
    mc_close(g);
    CATALOGUE("`mc_fd` after close", mc_fd(g, &fd), MC_ERR_CLOSED);
    CATALOGUE("`mc_membership` after close", mc_membership(g, &status, NULL), MC_ERR_CLOSED);
    mc_free(g);
}

static void test_batches(void) {
    int port = next_port++;
    mc_join_options o = default_options();
    o.interface_name = getenv("MC_TEST_IFACE");
    o.gro = true;
    o.packet_info = true;
    o.receive_buffer_size = 1 << 20;
    mc_group *g = NULL;
    CHECK_STATUS(mc_join_with_options("239.1.3.4", port, &o, &g), MC_OK);
    enum { N = 100 };
    static unsigned char payload[N][64];
    mc_datagram out[N];
    for (int i = 0; i < N; i++) {
        memset(payload[i], i, sizeof payload[i]);
        out[i].data = payload[i];
        out[i].len = i == N - 1 ? 10 : 64; /* a shorter last one ends the GSO run */
    }
    size_t sent = 0;
    CHECK_STATUS(mc_send_batch(g, out, N, &sent), MC_OK);
    CHECK(sent == N);
    static unsigned char bufs[16][128];
    mc_received slots[16];
    int got = 0, in_order = 1, meta_ok = 1;
    char want_source[64];
    snprintf(want_source, sizeof want_source, "%s:%d", test_addr(), port);
    while (got < N) {
        for (int i = 0; i < 16; i++) slots[i] = (mc_received){.buf = bufs[i], .capacity = sizeof bufs[i]};
        size_t n = 0;
        mc_status s = mc_receive_batch(g, 5.0, slots, 16, &n);
        if (s != MC_OK) break;
        for (size_t i = 0; i < n; i++, got++) {
            size_t want_len = got == N - 1 ? 10 : 64;
            if (slots[i].len != want_len || bufs[i][0] != got) in_order = 0;
            int want_meta = has(MC_CAP_PACKET_INFO);
            if (strcmp(slots[i].source, want_source) != 0 ||
                strcmp(slots[i].destination, want_meta ? "239.1.3.4" : "") != 0 ||
                slots[i].interface_index != (want_meta ? if_nametoindex(getenv("MC_TEST_IFACE")) : 0))
                meta_ok = 0;
        }
    }
    CHECK(got == N);
    CHECK(in_order);
    CHECK(meta_ok);
    size_t n = 7;
    CHECK_STATUS(mc_receive_batch(g, 0, slots, 16, &n), MC_TIMEOUT);
    CHECK(n == 0);
    uint32_t dropped = 99;
    CHECK_STATUS(mc_dropped(g, &dropped), MC_OK);
    CHECK(dropped == 0);
    mc_free(g);
}

static void test_catalogue_batches(void) {
    mc_group *g = join_or_die("239.1.2.23", next_port++);
    size_t n = 0;
    uint32_t dropped = 0;
    char buf[16];
    mc_datagram one = {"x", 1}, null_data = {NULL, 5};
    static char big[MC_MAX_MESSAGE_SIZE + 1];
    mc_datagram too_big[2] = {{"x", 1}, {big, sizeof big}};
    mc_received slot = {.buf = buf, .capacity = sizeof buf}, null_slot = {.buf = NULL, .capacity = 16};
    CATALOGUE("`mc_send_batch` group NULL", mc_send_batch(NULL, &one, 1, &n), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_send_batch` out_sent NULL", mc_send_batch(g, &one, 1, NULL), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_send_batch` datagrams NULL, count 3", mc_send_batch(g, NULL, 3, &n), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_send_batch` a datagram's data NULL, len 5", mc_send_batch(g, &null_data, 1, &n), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_send_batch` second datagram 65508 bytes", mc_send_batch(g, too_big, 2, &n), MC_ERR_MESSAGE_TOO_LARGE);
    CHECK_STATUS(mc_receive(g, 0.2, buf, sizeof buf, &n, NULL, 0), MC_TIMEOUT); /* nothing went out */
    CATALOGUE("`mc_receive_batch` slots NULL, count 4", mc_receive_batch(g, 0, NULL, 4, &n), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_receive_batch` out_count NULL", mc_receive_batch(g, 0, &slot, 1, NULL), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_receive_batch` a slot's buf NULL, capacity 16", mc_receive_batch(g, 0, &null_slot, 1, &n), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_receive_batch` NaN timeout", mc_receive_batch(g, NAN, &slot, 1, &n), MC_ERR_INVALID_ARGUMENT);
    mc_send(g, big, 100);
    CATALOGUE("`mc_receive_batch` 100-byte datagram, 16-byte slot", mc_receive_batch(g, 5, &slot, 1, &n), MC_ERR_BUFFER_TOO_SMALL);
    CHECK(slot.len == 100);
    /* Every slot is checked before any datagram is taken: a bad slot 80 costs nothing. */
    static char many_bufs[100][128];
    static mc_received many[100];
    for (int i = 0; i < 70; i++) mc_send(g, "queued", 6);
    for (int i = 0; i < 100; i++) many[i] = (mc_received){.buf = many_bufs[i], .capacity = 128};
    many[80].buf = NULL;
    n = 99;
    CATALOGUE("`mc_receive_batch` 100 slots, slot 80's buf NULL", mc_receive_batch(g, 5, many, 100, &n), MC_ERR_INVALID_ARGUMENT);
    CHECK(n == 0);
    LAST_ERROR_HAS("slots[80].buf is NULL");
    /* count 0: MC_TIMEOUT at once, nothing consumed (documented). */
    CHECK_STATUS(mc_receive_batch(g, -1.0, NULL, 0, &n), MC_TIMEOUT);
    CHECK(n == 0);
    many[80].buf = many_bufs[80];
    CHECK_STATUS(mc_receive_batch(g, 5, many, 100, &n), MC_OK);
    CHECK(n == 71); /* the 100-byte datagram left queued above, then the 70 */
    CATALOGUE("`mc_dropped` out NULL", mc_dropped(g, NULL), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_dropped` group NULL", mc_dropped(NULL, &dropped), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_capabilities` out NULL", mc_capabilities(NULL), MC_ERR_INVALID_ARGUMENT);
    mc_join_options tight = default_options();
    tight.max_bytes_per_second = 10;
    mc_group *budgeted = NULL;
    CHECK_STATUS(mc_join_with_options("239.1.3.5", next_port++, &tight, &budgeted), MC_OK);
    CATALOGUE("`mc_send` 11 bytes, max_bytes_per_second 10", mc_send(budgeted, "eleven byte", 11), MC_ERR_RATE_LIMITED);
    mc_datagram eleven = {"eleven byte", 11};
    CATALOGUE("`mc_send_batch` over max_bytes_per_second", mc_send_batch(budgeted, &eleven, 1, &n), MC_ERR_RATE_LIMITED);
    mc_free(budgeted);
    mc_close(g);
    CATALOGUE("`mc_send_batch` after close", mc_send_batch(g, &one, 1, &n), MC_ERR_CLOSED);
    mc_free(g);
}

static void test_ipv6_and_ssm(void) {
    int port = next_port++;
    mc_group *g = NULL;
    CHECK_STATUS(mc_join("ff05::1:9", port, getenv("MC_TEST_IFACE"), &g), MC_OK);
    CHECK(strcmp(mc_group_addr(g), "ff05::1:9") == 0);
    char want[80], buf[64], src[MC_SOURCE_MAX];
    snprintf(want, sizeof want, "[ff05::1:9]:%d", port);
    CHECK(strcmp(mc_local_addr(g), want) == 0);
    CHECK_STATUS(mc_send(g, "six", 3), MC_OK);
    size_t len = 0;
    CHECK_STATUS(mc_receive(g, 5.0, buf, sizeof buf, &len, src, sizeof src), MC_OK);
    CHECK(len == 3 && src[0] == '[' && strstr(src, "fd00:203::") == src + 1);
    /* A batch datagram between the IPv4 and the IPv6 limit is an IPv6 group's to send. */
    static char big6[MC_MAX_MESSAGE_SIZE_V6], got6[MC_MAX_MESSAGE_SIZE_V6];
    mc_datagram one6 = {big6, sizeof big6};
    size_t sent6 = 0;
    CHECK_STATUS(mc_send_batch(g, &one6, 1, &sent6), MC_OK);
    CHECK(sent6 == 1);
    CHECK_STATUS(mc_receive(g, 5.0, got6, sizeof got6, &len, NULL, 0), MC_OK);
    CHECK(len == MC_MAX_MESSAGE_SIZE_V6);
    mc_free(g);

    /* A zone picks the interface of a link-scoped group; the source shows its zone. */
    char zoned[64];
    snprintf(zoned, sizeof zoned, "ff02::1:9%%%s", getenv("MC_TEST_IFACE"));
    CHECK_STATUS(mc_join(zoned, port, NULL, &g), MC_OK);
    CHECK_STATUS(mc_send(g, "link", 4), MC_OK);
    CHECK_STATUS(mc_receive(g, 5.0, buf, sizeof buf, &len, src, sizeof src), MC_OK);
    snprintf(want, sizeof want, "%%%s]:%d", getenv("MC_TEST_IFACE"), port);
    CHECK(strncmp(src, "[fe80::", 7) == 0 && strstr(src, want) != NULL);
    mc_free(g);

    /* Source-specific: only MC_TEST_ADDR_B's datagrams get through. */
    mc_join_options o = default_options();
    o.interface_name = getenv("MC_TEST_IFACE");
    o.source_address = getenv("MC_TEST_ADDR_B");
    mc_group *only_b = NULL, *from_a = NULL, *from_b = NULL;
    port = next_port++;
    CHECK_STATUS(mc_join_with_options("232.1.2.3", port, &o, &only_b), MC_OK);
    CHECK_STATUS(mc_join("232.1.2.3", port, getenv("MC_TEST_ADDR"), &from_a), MC_OK);
    CHECK_STATUS(mc_join("232.1.2.3", port, getenv("MC_TEST_ADDR_B"), &from_b), MC_OK);
    CHECK_STATUS(mc_send(from_a, "a", 1), MC_OK);
    CHECK_STATUS(mc_send(from_b, "b", 1), MC_OK);
    CHECK_STATUS(mc_receive(only_b, 5.0, buf, sizeof buf, &len, src, sizeof src), MC_OK);
    snprintf(want, sizeof want, "%s:%d", getenv("MC_TEST_ADDR_B"), port);
    CHECK(len == 1 && buf[0] == 'b' && strcmp(src, want) == 0);
    CHECK_STATUS(mc_receive(only_b, 0.3, buf, sizeof buf, &len, src, sizeof src), MC_TIMEOUT);
    mc_free(only_b);
    mc_free(from_a);
    mc_free(from_b);
}

static void test_catalogue_ipv6(void) {
    mc_group *g = NULL;
    char buf[16], src22[22];
    size_t len = 0;
    CATALOGUE("`mc_join` IPv6 zone naming no interface", mc_join("ff02::1%nope0", 9999, NULL, &g), MC_ERR_INTERFACE);
    CATALOGUE("`mc_join` IPv6 unicast address", mc_join("fd00::1", 9999, NULL, &g), MC_ERR_NOT_MULTICAST);
    CATALOGUE("`mc_join` bracket not closed", mc_join("[ff02::1%mc0", 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_join` IPv6 zone empty", mc_join("[ff02::1%]", 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    mc_join_options o = default_options();
    o.source_address = "fd00::1";
    CATALOGUE("`mc_join_with_options` IPv4 group, IPv6 source", mc_join_with_options("232.1.1.1", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    o.source_address = "not-an-address";
    CATALOGUE("`mc_join_with_options` source not an address", mc_join_with_options("232.1.1.1", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    o.source_address = "255.255.255.255";
    CATALOGUE("`mc_join_with_options` broadcast source 255.255.255.255", mc_join_with_options("232.1.1.1", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    CHECK(g == NULL);
    CHECK_STATUS(mc_join("ff05::1:10", next_port++, getenv("MC_TEST_IFACE"), &g), MC_OK);
    static char big[65528];
    CATALOGUE("`mc_send` IPv6 group, 65528 bytes", mc_send(g, big, sizeof big), MC_ERR_MESSAGE_TOO_LARGE);
    CATALOGUE("`mc_receive` IPv6 group, source_capacity 22", mc_receive(g, 0, buf, sizeof buf, &len, src22, sizeof src22), MC_ERR_INVALID_ARGUMENT);
    mc_free(g);
}

/* Two keys with recognisable bytes ('A' and 'B'), so an error message quoting a key would show. */
static uint8_t KEY_A[MC_GROUP_KEY_SIZE], KEY_B[MC_GROUP_KEY_SIZE];

static void make_keys(void) {
    memset(KEY_A, 'A', sizeof KEY_A);
    memset(KEY_B, 'B', sizeof KEY_B);
}

static int contains(const char *hay, size_t len, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(hay + i, needle, n) == 0) return 1;
    return 0;
}

static mc_group *join_keyed(const char *group, int port, uint8_t id, const uint8_t *key) {
    mc_join_options o = default_options();
    o.group_key = key;
    o.group_key_len = MC_GROUP_KEY_SIZE;
    o.group_key_id = id;
    mc_group *g = NULL;
    CHECK_STATUS(mc_join_with_options(group, port, &o, &g), MC_OK);
    if (!g) exit(1);
    return g;
}

/* Receives the next datagram into buf (5 s at most), returning its length or -1. */
static long next_datagram(mc_group *g, char *buf, size_t capacity) {
    size_t len = 0;
    mc_status s = mc_receive(g, 5.0, buf, capacity, &len, NULL, 0);
    return s == MC_OK ? (long)len : -1;
}

static void check_counters(mc_group *g, uint64_t unauthenticated, uint64_t unknown_key, uint64_t replayed) {
    uint64_t u = 99, k = 99, r = 99;
    CHECK_STATUS(mc_auth_counters(g, &u, &k, &r), MC_OK);
    CHECK(u == unauthenticated && k == unknown_key && r == replayed);
    if (u != unauthenticated || k != unknown_key || r != replayed)
        fprintf(stderr, "  counters %llu %llu %llu, want %llu %llu %llu\n", (unsigned long long)u,
                (unsigned long long)k, (unsigned long long)r, (unsigned long long)unauthenticated,
                (unsigned long long)unknown_key, (unsigned long long)replayed);
}

/* Members of a keyed group hear each other; the wire carries sealed datagrams only. */
static void test_authenticated_groups(void) {
    int port = next_port++;
    mc_group *a = join_keyed("239.1.6.1", port, 1, KEY_A), *b = join_keyed("239.1.6.1", port, 1, KEY_A);
    mc_group *tap = join_or_die("239.1.6.1", port);
    char buf[256];
    CHECK_STATUS(mc_send(a, "hello members", 13), MC_OK);
    CHECK(next_datagram(b, buf, sizeof buf) == 13 && memcmp(buf, "hello members", 13) == 0);
    CHECK(next_datagram(tap, buf, sizeof buf) == 13 + MC_AUTH_OVERHEAD && buf[0] == 1 && buf[1] == 1);
    CHECK(!contains(buf, 13 + MC_AUTH_OVERHEAD, "hello"));
    check_counters(b, 0, 0, 0);
    check_counters(tap, 0, 0, 0);

    /* Rotation: b first (keeping the old key), then a; then b retires the old key. */
    CHECK_STATUS(mc_rotate_key(b, 2, KEY_B, MC_GROUP_KEY_SIZE, true), MC_OK);
    CHECK_STATUS(mc_send(a, "old", 3), MC_OK);
    CHECK(next_datagram(b, buf, sizeof buf) == 3);
    CHECK_STATUS(mc_rotate_key(a, 2, KEY_B, MC_GROUP_KEY_SIZE, false), MC_OK);
    CHECK_STATUS(mc_send(a, "new", 3), MC_OK);
    CHECK(next_datagram(b, buf, sizeof buf) == 3 && memcmp(buf, "new", 3) == 0);

    /* A generated key is random: two differ, and both work. */
    uint8_t k1[MC_GROUP_KEY_SIZE], k2[MC_GROUP_KEY_SIZE];
    CHECK_STATUS(mc_generate_key(k1, sizeof k1), MC_OK);
    CHECK_STATUS(mc_generate_key(k2, sizeof k2), MC_OK);
    CHECK(memcmp(k1, k2, sizeof k1) != 0);
    mc_free(a);
    mc_free(b);
    mc_free(tap);
}

/* What a keyed receiver does with datagrams that are not for it: each row's call
 * receives past them to a genuine "marker" (the socket queue keeps order, so by then all
 * of them were judged) and the counters say why each was dropped. */
static void test_catalogue_auth_datagrams(void) {
    int port = next_port++;
    mc_group *sender = join_keyed("239.1.6.2", port, 1, KEY_A), *member = join_keyed("239.1.6.2", port, 1, KEY_A);
    mc_group *stranger = join_keyed("239.1.6.2", port, 7, KEY_B);
    mc_group *tap = join_or_die("239.1.6.2", port);
    char genuine[64], altered[64], buf[64];
    CHECK_STATUS(mc_send(sender, "twenty bytes of text", 20), MC_OK);
    CHECK(next_datagram(member, buf, sizeof buf) == 20);
    long n = next_datagram(tap, genuine, sizeof genuine);
    CHECK(n == 20 + MC_AUTH_OVERHEAD);
    if (n <= 1) exit(1);
    size_t len = 0;
    uint64_t base_u = 0;

    for (long i = 0; i < n; i++) {
        memcpy(altered, genuine, (size_t)n);
        altered[i] ^= 1;
        mc_send(tap, altered, (size_t)n);
    }
    mc_send(sender, "marker", 6);
    CATALOGUE("`mc_receive` keyed group: each byte of a sealed datagram flipped, one datagram each: dropped, counted as unauthenticated (as unknown_key for byte 1, the key id); the call returns the next genuine message", mc_receive(member, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
    CHECK(len == 6 && memcmp(buf, "marker", 6) == 0);
    /* Byte 1 is the key id: flipped, it names a key the group does not hold. */
    check_counters(member, (uint64_t)n - 1, 1, 0);
    base_u = (uint64_t)n - 1;

    mc_send(tap, genuine, (size_t)n - 1);
    mc_send(tap, genuine, 14);
    mc_send(sender, "marker", 6);
    CATALOGUE("`mc_receive` keyed group: a sealed datagram cut short (by 1 byte, to its header): dropped, counted as unauthenticated", mc_receive(member, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
    check_counters(member, base_u + 2, 1, 0);

    memcpy(altered, genuine, (size_t)n);
    altered[n] = 'x';
    mc_send(tap, altered, (size_t)n + 1);
    mc_send(sender, "marker", 6);
    CATALOGUE("`mc_receive` keyed group: a sealed datagram with a byte appended: dropped, counted as unauthenticated", mc_receive(member, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
    check_counters(member, base_u + 3, 1, 0);

    mc_send(tap, genuine, (size_t)n);
    mc_send(tap, genuine, (size_t)n);
    mc_send(sender, "marker", 6);
    CATALOGUE("`mc_receive` keyed group: a recorded datagram replayed twice: dropped, counted as replayed", mc_receive(member, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
    CHECK(len == 6);
    check_counters(member, base_u + 3, 1, 2);

    mc_send(tap, "plain text from anyone", 22);
    mc_send(tap, "", 0);
    mc_send(sender, "marker", 6);
    CATALOGUE("`mc_receive` keyed group: plain datagrams from a host without the key (22 bytes, empty): dropped, counted as unauthenticated", mc_receive(member, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
    check_counters(member, base_u + 5, 1, 2);

    mc_send(stranger, "other key id", 12);
    mc_send(sender, "marker", 6);
    CATALOGUE("`mc_receive` keyed group: a datagram sealed under a key id it does not hold: dropped, counted as unknown_key", mc_receive(member, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
    check_counters(member, base_u + 5, 2, 2);

    mc_send(sender, "a message of 40 bytes, too big for 16..", 40);
    CATALOGUE("`mc_receive` keyed group: 40-byte message, 16-byte buffer", mc_receive(member, 5.0, buf, 16, &len, NULL, 0), MC_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 40);
    CHECK_STATUS(mc_receive(member, 5.0, buf, sizeof buf, &len, NULL, 0), MC_OK);
    CHECK(len == 40);

    char *big = calloc(1, MC_MAX_MESSAGE_SIZE);
    CATALOGUE("`mc_send` keyed group: MC_MAX_MESSAGE_SIZE - MC_AUTH_OVERHEAD + 1 bytes", mc_send(sender, big, MC_MAX_MESSAGE_SIZE - MC_AUTH_OVERHEAD + 1), MC_ERR_MESSAGE_TOO_LARGE);
    free(big);
    mc_free(sender);
    mc_free(member);
    mc_free(stranger);
    mc_free(tap);
}

/* Bad keys and key calls. */
static void test_catalogue_auth_keys(void) {
    mc_group *g = NULL;
    mc_join_options o = default_options();
    o.group_key = KEY_A;
    o.group_key_len = 16;
    CATALOGUE("`mc_join_with_options` group_key of 16 bytes", mc_join_with_options("239.1.6.3", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    o.group_key = NULL;
    o.group_key_len = MC_GROUP_KEY_SIZE;
    CATALOGUE("`mc_join_with_options` group_key NULL, group_key_len 32", mc_join_with_options("239.1.6.3", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    o.group_key_len = 0;
    o.previous_key = KEY_B;
    o.previous_key_len = MC_GROUP_KEY_SIZE;
    CATALOGUE("`mc_join_with_options` previous_key without group_key", mc_join_with_options("239.1.6.3", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    o.group_key = KEY_A;
    o.group_key_len = MC_GROUP_KEY_SIZE;
    o.group_key_id = o.previous_key_id = 4;
    CATALOGUE("`mc_join_with_options` previous_key_id equal to group_key_id", mc_join_with_options("239.1.6.3", 9999, &o, &g), MC_ERR_INVALID_ARGUMENT);
    CHECK(g == NULL);
    CHECK(strstr(mc_last_error(), "AAAA") == NULL && strstr(mc_last_error(), "65") == NULL);

    uint8_t key[MC_GROUP_KEY_SIZE];
    CATALOGUE("`mc_generate_key` out_len 16", mc_generate_key(key, 16), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_generate_key` out NULL", mc_generate_key(NULL, MC_GROUP_KEY_SIZE), MC_ERR_INVALID_ARGUMENT);

    int port = next_port++;
    mc_group *plain = join_or_die("239.1.6.3", port), *keyed = join_keyed("239.1.6.3", port, 1, KEY_A);
    CATALOGUE("`mc_rotate_key` group joined without a key", mc_rotate_key(plain, 2, KEY_B, MC_GROUP_KEY_SIZE, true), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_rotate_key` group NULL", mc_rotate_key(NULL, 2, KEY_B, MC_GROUP_KEY_SIZE, true), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_rotate_key` key NULL", mc_rotate_key(keyed, 2, NULL, MC_GROUP_KEY_SIZE, true), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_rotate_key` 31-byte key", mc_rotate_key(keyed, 2, KEY_B, 31, true), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_rotate_key` the current key's id", mc_rotate_key(keyed, 1, KEY_B, MC_GROUP_KEY_SIZE, true), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_auth_counters` group NULL", mc_auth_counters(NULL, NULL, NULL, NULL), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_auth_counters` plain group", mc_auth_counters(plain, NULL, NULL, NULL), MC_OK);
    mc_close(keyed);
    CATALOGUE("`mc_rotate_key` after close", mc_rotate_key(keyed, 2, KEY_B, MC_GROUP_KEY_SIZE, true), MC_ERR_CLOSED);
    CATALOGUE("`mc_auth_counters` after close", mc_auth_counters(keyed, NULL, NULL, NULL), MC_ERR_CLOSED);
    mc_free(plain);
    mc_free(keyed);
}

/* Bad inputs and faults, one row each in the catalogue (docs/testing.md). */
static void test_catalogue(void) {
    mc_group *g = NULL;
    char buf[16], src[MC_SOURCE_MAX], small_src[8];
    size_t len = 0;
    char *long_text = malloc(100001);
    memset(long_text, 'a', 100000);
    long_text[100000] = '\0';
    CATALOGUE("`mc_join` group_addr NULL", mc_join(NULL, 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_join` out NULL", mc_join("239.1.1.1", 9999, NULL, NULL), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_join` group_addr \"\"", mc_join("", 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_join` group_addr not UTF-8", mc_join("\xff", 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_join` group_addr 100 kB of text", mc_join(long_text, 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_join` group_addr a host name", mc_join("localhost", 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_join` unicast address", mc_join("192.168.1.1", 9999, NULL, &g), MC_ERR_NOT_MULTICAST);
    CATALOGUE("`mc_join` port 0", mc_join("239.1.1.1", 0, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_join` port 65536", mc_join("239.1.1.1", 65536, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_join` unknown interface", mc_join("239.1.1.1", 9999, "eth-nope", &g), MC_ERR_INTERFACE);
    CATALOGUE("`mc_join` interface 100 kB of text", mc_join("239.1.1.1", 9999, long_text, &g), MC_ERR_INTERFACE);
    CATALOGUE("`mc_join` group_addr with a leading space", mc_join(" 239.1.1.1", 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_join` group_addr with a trailing newline", mc_join("239.1.1.1\n", 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_join` interface with a trailing space", mc_join("239.1.1.1", 9999, "mc0 ", &g), MC_ERR_INTERFACE);
    CATALOGUE("`mc_join` interface address not on this host", mc_join("239.1.1.1", 9999, "10.99.99.99", &g), MC_ERR_INTERFACE);
    CATALOGUE("`mc_join` interface not UTF-8", mc_join("239.1.1.1", 9999, "\xff", &g), MC_ERR_INVALID_ARGUMENT);

    g = join_or_die("239.1.2.20", next_port++);
    char *big = calloc(1, MC_MAX_MESSAGE_SIZE + 1);
    CATALOGUE("`mc_send` group NULL", mc_send(NULL, "x", 1), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_send` data NULL, len 5", mc_send(g, NULL, 5), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_send` 65508 bytes", mc_send(g, big, MC_MAX_MESSAGE_SIZE + 1), MC_ERR_MESSAGE_TOO_LARGE);
    CATALOGUE("`mc_send_json` json NULL", mc_send_json(g, NULL), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_send_json` not UTF-8", mc_send_json(g, "\"\xff\""), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_send_json` \"\"", mc_send_json(g, ""), MC_ERR_INVALID_JSON);
    CATALOGUE("`mc_send_json` malformed", mc_send_json(g, "{\"a\": }"), MC_ERR_INVALID_JSON);
    /* A JSON string of 100 000 characters encodes past the UDP limit. */
    long_text[0] = '"';
    long_text[99999] = '"';
    CATALOGUE("`mc_send_json` 100 kB of JSON", mc_send_json(g, long_text), MC_ERR_MESSAGE_TOO_LARGE);
    CATALOGUE("`mc_receive` group NULL", mc_receive(NULL, 0, buf, sizeof buf, &len, src, sizeof src), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_receive` out_len NULL", mc_receive(g, 0, buf, sizeof buf, NULL, src, sizeof src), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_receive` buf NULL, capacity 16", mc_receive(g, 0, NULL, 16, &len, src, sizeof src), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_receive` NaN timeout", mc_receive(g, NAN, buf, sizeof buf, &len, src, sizeof src), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_receive` source_capacity 8", mc_receive(g, 0, buf, sizeof buf, &len, small_src, sizeof small_src), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_receive` nothing queued, timeout 0", mc_receive(g, 0, buf, sizeof buf, &len, src, sizeof src), MC_TIMEOUT);
    mc_send(g, big, 100);
    CATALOGUE("`mc_receive` 100-byte datagram, 16-byte buffer", mc_receive(g, 5, buf, sizeof buf, &len, src, sizeof src), MC_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 100);
    CATALOGUE("`mc_close` group NULL", mc_close(NULL), MC_ERR_INVALID_ARGUMENT);
    CATALOGUE("`mc_close` twice", (mc_close(g), mc_close(g)), MC_OK);
    CATALOGUE("`mc_send` after close", mc_send(g, "x", 1), MC_ERR_CLOSED);
    CATALOGUE("`mc_send` after close, 65,508 bytes", mc_send(g, big, MC_MAX_MESSAGE_SIZE + 1), MC_ERR_CLOSED);
    CATALOGUE("`mc_receive` after close", mc_receive(g, 1, buf, sizeof buf, &len, src, sizeof src), MC_ERR_CLOSED);
    mc_free(g);
    free(big);
    free(long_text);
    test_catalogue_options();
    test_catalogue_batches();
    test_catalogue_ipv6();
    test_catalogue_auth_keys();
    test_catalogue_auth_datagrams();
}

/* With the descriptor limit reached, mc_join fails cleanly and works again afterwards. */
static void test_descriptor_exhaustion(void) {
    struct rlimit old, tight;
    getrlimit(RLIMIT_NOFILE, &old);
    int port = next_port++;
    int before = count_fds();
    tight = old;
    tight.rlim_cur = (rlim_t)before + 3;
    setrlimit(RLIMIT_NOFILE, &tight);
    mc_group *held[8] = {0};
    int n = 0;
    mc_status s = MC_OK;
    while (n < 8 && (s = mc_join("239.1.2.21", port, NULL, &held[n])) == MC_OK) n++;
    CATALOGUE("`mc_join` with no descriptor left (`ulimit -n`)", s, MC_ERR_IO);
    LAST_ERROR_HAS("Too many open files");
    CHECK(n >= 1 && n < 8);
    for (int i = 0; i < n; i++) mc_free(held[i]);
    CHECK(count_fds() == before);
    mc_group *again = NULL;
    CHECK_STATUS(mc_join("239.1.2.21", port, NULL, &again), MC_OK);
    mc_free(again);
    setrlimit(RLIMIT_NOFILE, &old);
}

static void test_no_route(void) {
    mc_group *g = NULL;
    CATALOGUE("`mc_join` with no multicast route, no interface named", mc_join("239.1.1.1", 9999, NULL, &g), MC_ERR_INTERFACE);
    LAST_ERROR_HAS("name an interface or add a multicast route");
    CATALOGUE("`mc_join` link-scoped IPv6 group, no route, no interface named", mc_join("[ff02::1]", 9999, NULL, &g), MC_ERR_INTERFACE);
    LAST_ERROR_HAS(has(MC_CAP_INTERFACE_EVENTS) ? "ip -6 route add ff00::/8 dev IFACE" : "name the interface");
    CHECK(g == NULL);
}

int main(int argc, char **argv) {
    if (!getenv("MC_NETNS") && !(argc > 1 && strcmp(argv[1], "--no-route") == 0)) {
        fprintf(stderr, "refusing to run outside scripts/netns (no MC_NETNS)\n");
        return 2;
    }
    if (getenv("MC_CATALOGUE")) catalogue = fopen(getenv("MC_CATALOGUE"), "a");
    make_keys();
    if (argc > 1 && strcmp(argv[1], "--no-route") == 0) {
        test_no_route();
    } else {
        test_version();
        test_status_names();
        test_join_errors();
        test_group_spellings_and_index_joins();
        test_null_arguments();
        test_round_trip_and_properties();
        test_interface_choice();
        test_join_options();
        test_event_loop();
        test_batches();
        test_ipv6_and_ssm();
        test_sizes();
        test_small_buffers_lose_nothing();
        test_timeouts();
        test_json();
        test_groups_do_not_leak();
        test_close_wakes_receivers();
        test_authenticated_groups();
        test_no_descriptor_leak();
        test_catalogue();
        /* valgrind virtualises RLIMIT_NOFILE, so this one runs in the plain and ASan runs. */
        if (!getenv("MC_UNDER_VALGRIND")) test_descriptor_exhaustion();
        else fprintf(stderr, "note: descriptor exhaustion is tested outside valgrind\n");
    }
    if (catalogue) fclose(catalogue);
    printf("c-api: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
