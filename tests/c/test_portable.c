/*
 * test_portable.c: the C API test that needs nothing but the C standard library and
 * the header, so it runs wherever the library does: natively here, and as a Windows
 * program under wine (scripts/test-windows), both inside scripts/netns.
 *
 * It covers what differs by system: binding (Windows cannot bind a group address, so
 * the library binds the port's wildcard address and drops other destinations'
 * datagrams; the groups-do-not-leak checks prove it), interface names and indexes,
 * non-blocking receives with timeouts, batches as loops, the capabilities reported,
 * and authenticated groups. Expected capability bits come from MC_EXPECT_CAPABILITIES.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "multicast.h"

static int next_port = 41000;

static const char *env(const char *name) {
    const char *value = getenv(name);
    if (!value || !*value) {
        fprintf(stderr, "test_portable: %s is not set (run inside scripts/netns)\n", name);
        exit(2);
    }
    return value;
}

static mc_group *join_on(const char *group, int port, const char *iface) {
    mc_group *g = NULL;
    mc_status s = mc_join(group, port, iface, &g);
    if (s != MC_OK) {
        fprintf(stderr, "cannot join %s:%d on %s: %s %s\n", group, port, iface ? iface : "(default)",
                mc_status_str(s), mc_last_error());
        exit(1);
    }
    return g;
}

/* The next datagram within 5 s, NUL-terminated in buf; its length, or -1. */
static long next_datagram(mc_group *g, char *buf, size_t capacity, char *source) {
    size_t len = 0;
    mc_status s = mc_receive(g, 5.0, buf, capacity - 1, &len, source, source ? MC_SOURCE_MAX : 0);
    if (s != MC_OK) return -1;
    buf[len] = '\0';
    return (long)len;
}

static void test_round_trip(void) {
    const char *iface = env("MC_TEST_IFACE");
    int port = next_port++;
    mc_group *a = join_on("239.5.0.1", port, iface), *b = join_on("239.5.0.1", port, iface);
    char buf[256], source[MC_SOURCE_MAX], expected[MC_SOURCE_MAX];
    CHECK_STATUS(mc_send(a, "hello", 5), MC_OK);
    CHECK(next_datagram(b, buf, sizeof buf, source) == 5 && strcmp(buf, "hello") == 0);
    snprintf(expected, sizeof expected, "%s:%d", env("MC_TEST_ADDR"), port);
    CHECK(strcmp(source, expected) == 0);
    if (strcmp(source, expected) != 0) fprintf(stderr, "  source %s, want %s\n", source, expected);
    CHECK(next_datagram(a, buf, sizeof buf, NULL) == 5); /* loopback: the sender hears itself */
    CHECK(strcmp(mc_group_addr(a), "239.5.0.1") == 0 && mc_port(a) == port);
    mc_membership_status status = MC_MEMBERSHIP_INTERFACE_GONE;
    CHECK_STATUS(mc_membership(a, &status, NULL), MC_OK);
    CHECK(status == MC_MEMBERSHIP_JOINED);
    int fd = -1;
    CHECK_STATUS(mc_fd(a, &fd), MC_OK);
    CHECK(fd >= 0);
    mc_free(a);
    mc_free(b);
}

/* Two groups on one port, and a third handle on the port's other group: each hears its
 * own group only (on Windows the sockets share the port's wildcard address). */
static void test_groups_do_not_leak(void) {
    const char *iface = env("MC_TEST_IFACE");
    int port = next_port++;
    mc_group *one = join_on("239.5.0.2", port, iface), *two = join_on("239.5.0.3", port, iface);
    char buf[64];
    size_t len = 0;
    CHECK_STATUS(mc_send(one, "for one", 7), MC_OK);
    CHECK_STATUS(mc_send(two, "for two", 7), MC_OK);
    CHECK(next_datagram(one, buf, sizeof buf, NULL) == 7 && strcmp(buf, "for one") == 0);
    CHECK(next_datagram(two, buf, sizeof buf, NULL) == 7 && strcmp(buf, "for two") == 0);
    CHECK_STATUS(mc_receive(one, 0.3, buf, sizeof buf, &len, NULL, 0), MC_TIMEOUT);
    CHECK_STATUS(mc_receive(two, 0.3, buf, sizeof buf, &len, NULL, 0), MC_TIMEOUT);
    /* Small buffers: the other group's datagram must not be reported as too large. */
    char big[200];
    memset(big, 'x', sizeof big);
    CHECK_STATUS(mc_send(two, big, sizeof big), MC_OK);
    CHECK_STATUS(mc_send(one, "ok", 2), MC_OK);
    char small[8];
    CHECK_STATUS(mc_receive(one, 5.0, small, sizeof small, &len, NULL, 0), MC_OK);
    CHECK(len == 2 && memcmp(small, "ok", 2) == 0);
    mc_free(one);
    mc_free(two);
}

static void test_timeouts_and_small_buffers(void) {
    mc_group *g = join_on("239.5.0.4", next_port++, env("MC_TEST_IFACE"));
    char buf[16];
    size_t len = 99;
    CHECK_STATUS(mc_receive(g, 0, buf, sizeof buf, &len, NULL, 0), MC_TIMEOUT);
    CHECK(len == 0);
    time_t wall = time(NULL);
    CHECK_STATUS(mc_receive(g, 0.2, buf, sizeof buf, &len, NULL, 0), MC_TIMEOUT);
    CHECK(time(NULL) - wall <= 2);
    char hundred[100];
    memset(hundred, 'h', sizeof hundred);
    CHECK_STATUS(mc_send(g, hundred, sizeof hundred), MC_OK);
    CHECK_STATUS(mc_receive(g, 5.0, buf, sizeof buf, &len, NULL, 0), MC_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 100);
    char whole[128];
    CHECK_STATUS(mc_receive(g, 5.0, whole, sizeof whole, &len, NULL, 0), MC_OK);
    CHECK(len == 100 && whole[99] == 'h');
    CHECK_STATUS(mc_close(g), MC_OK);
    CHECK_STATUS(mc_receive(g, 1.0, buf, sizeof buf, &len, NULL, 0), MC_ERR_CLOSED);
    CHECK_STATUS(mc_send(g, "x", 1), MC_ERR_CLOSED);
    mc_free(g);
}

static void test_errors(void) {
    mc_group *g = NULL;
    CHECK_STATUS(mc_join("192.168.1.1", 9999, NULL, &g), MC_ERR_NOT_MULTICAST);
    CHECK_STATUS(mc_join("239.1.1.1", 0, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(mc_join("239.1.1.1", 9999, "no-such-interface", &g), MC_ERR_INTERFACE);
    CHECK_STATUS(mc_join(NULL, 9999, NULL, &g), MC_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(mc_send(NULL, "x", 1), MC_ERR_INVALID_ARGUMENT);
    CHECK(g == NULL);
}

static void test_options_and_interfaces(void) {
    const char *iface = env("MC_TEST_IFACE"), *addr = env("MC_TEST_ADDR");
    int port = next_port++;
    mc_join_options o;
    CHECK_STATUS(mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION), MC_OK);
    o.interface_name = addr; /* by address */
    o.ttl = 4;
    mc_group *by_addr = NULL, *quiet = NULL;
    CHECK_STATUS(mc_join_with_options("239.5.0.5", port, &o, &by_addr), MC_OK);
    o.interface_name = iface; /* by name */
    o.loopback = false;
    CHECK_STATUS(mc_join_with_options("239.5.0.5", port, &o, &quiet), MC_OK);
    char buf[32];
    size_t len = 0;
    if (by_addr && quiet) {
        CHECK_STATUS(mc_send(quiet, "unheard here", 12), MC_OK);
        CHECK_STATUS(mc_receive(by_addr, 0.5, buf, sizeof buf, &len, NULL, 0), MC_TIMEOUT);
        CHECK_STATUS(mc_send(by_addr, "heard", 5), MC_OK);
        CHECK(next_datagram(quiet, buf, sizeof buf, NULL) == 5);
    }
    mc_free(by_addr);
    mc_free(quiet);
}

static void test_batches(void) {
    mc_group *g = join_on("239.5.0.6", next_port++, env("MC_TEST_IFACE"));
    mc_datagram out[3] = {{"a", 1}, {"bb", 2}, {"ccc", 3}};
    size_t sent = 0, got = 0;
    CHECK_STATUS(mc_send_batch(g, out, 3, &sent), MC_OK);
    CHECK(sent == 3);
    static char bufs[3][64];
    mc_received slots[3];
    memset(slots, 0, sizeof slots);
    for (int i = 0; i < 3; i++) {
        slots[i].buf = bufs[i];
        slots[i].capacity = sizeof bufs[i];
    }
    size_t total = 0;
    while (total < 3) {
        if (mc_receive_batch(g, 5.0, slots + total, 3 - total, &got) != MC_OK || got == 0) break;
        total += got;
    }
    CHECK(total == 3 && slots[2].len == 3 && memcmp(bufs[2], "ccc", 3) == 0);
    CHECK(strcmp(slots[0].destination, "239.5.0.6") == 0 || slots[0].destination[0] == '\0');
    mc_free(g);
}

static void test_json_and_auth(void) {
    const char *iface = env("MC_TEST_IFACE");
    int port = next_port++;
    mc_group *plain = join_on("239.5.0.7", port, iface);
    char buf[128];
    CHECK_STATUS(mc_send_json(plain, "{\"b\": 1, \"a\": [true, null]}"), MC_OK);
    CHECK(next_datagram(plain, buf, sizeof buf, NULL) > 0 && strcmp(buf, "{\"a\":[true,null],\"b\":1}") == 0);

    uint8_t key[MC_GROUP_KEY_SIZE];
    CHECK_STATUS(mc_generate_key(key, sizeof key), MC_OK);
    mc_join_options o;
    mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION);
    o.interface_name = iface;
    o.group_key = key;
    o.group_key_len = sizeof key;
    mc_group *sealed = NULL;
    CHECK_STATUS(mc_join_with_options("239.5.0.7", port, &o, &sealed), MC_OK);
    if (!sealed) return;
    CHECK_STATUS(mc_send(plain, "forged", 6), MC_OK);
    CHECK_STATUS(mc_send(sealed, "sealed", 6), MC_OK);
    CHECK(next_datagram(sealed, buf, sizeof buf, NULL) == 6 && strcmp(buf, "sealed") == 0);
    uint64_t unauthenticated = 0;
    CHECK_STATUS(mc_auth_counters(sealed, &unauthenticated, NULL, NULL), MC_OK);
    CHECK(unauthenticated == 1);
    /* The plain member sees the forged text, then the sealed datagram as it went out. */
    CHECK(next_datagram(plain, buf, sizeof buf, NULL) == 6);
    CHECK(next_datagram(plain, buf, sizeof buf, NULL) == 6 + MC_AUTH_OVERHEAD);
    mc_free(sealed);
    mc_free(plain);
}

/* IPv6 groups on a named interface, and in a zone. */
static void test_ipv6(void) {
    const char *iface = env("MC_TEST_IFACE");
    int port = next_port++;
    mc_group *a = join_on("ff15::5:1", port, iface), *b = join_on("ff15::5:1", port, iface);
    char buf[64], source[MC_SOURCE_MAX];
    CHECK_STATUS(mc_send(a, "over v6", 7), MC_OK);
    CHECK(next_datagram(b, buf, sizeof buf, source) == 7 && strcmp(buf, "over v6") == 0);
    CHECK(strncmp(source, "[", 1) == 0);
    mc_free(a);
    mc_free(b);

    char zoned[64];
    snprintf(zoned, sizeof zoned, "ff12::5:2%%%s", iface);
    port = next_port++;
    a = join_on(zoned, port, NULL);
    CHECK_STATUS(mc_send(a, "zoned", 5), MC_OK);
    CHECK(next_datagram(a, buf, sizeof buf, NULL) == 5);
    mc_free(a);

}

/* Source-specific multicast: a handle filtered to the second address hears only it.
 * Returns what the filtered handle heard first ("" for nothing). */
static const char *ssm_heard(void) {
    static char heard[64];
    const char *iface = env("MC_TEST_IFACE");
    int port = next_port++;
    mc_join_options o;
    mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION);
    o.interface_name = iface;
    o.source_address = env("MC_TEST_ADDR_B");
    mc_group *filtered = NULL, *from_a = NULL, *from_b = NULL;
    CHECK_STATUS(mc_join_with_options("232.5.0.1", port, &o, &filtered), MC_OK);
    mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION);
    o.interface_name = env("MC_TEST_ADDR");
    CHECK_STATUS(mc_join_with_options("232.5.0.1", port, &o, &from_a), MC_OK);
    o.interface_name = env("MC_TEST_ADDR_B");
    CHECK_STATUS(mc_join_with_options("232.5.0.1", port, &o, &from_b), MC_OK);
    heard[0] = '\0';
    if (filtered && from_a && from_b) {
        CHECK_STATUS(mc_send(from_a, "from a", 6), MC_OK);
        CHECK_STATUS(mc_send(from_b, "from b", 6), MC_OK);
        if (next_datagram(filtered, heard, sizeof heard, NULL) < 0) heard[0] = '\0';
    }
    mc_free(filtered);
    mc_free(from_a);
    mc_free(from_b);
    return heard;
}

static void test_ssm(void) {
    const char *heard = ssm_heard();
    CHECK(strcmp(heard, "from b") == 0);
    if (strcmp(heard, "from b") != 0) fprintf(stderr, "  the source-filtered handle heard \"%s\"\n", heard);
}

static void test_capabilities(void) {
    uint32_t bits = 0;
    CHECK_STATUS(mc_capabilities(&bits), MC_OK);
    const char *expect = getenv("MC_EXPECT_CAPABILITIES");
    if (expect) {
        CHECK(bits == (uint32_t)strtoul(expect, NULL, 0));
        if (bits != (uint32_t)strtoul(expect, NULL, 0))
            fprintf(stderr, "  capabilities %u, want %s\n", (unsigned)bits, expect);
    }
}

/* test_portable [--without-ssm | --ssm-heard]: the second leaves source-specific
 * multicast out (an emulator that cannot carry it, see scripts/test-windows); the third
 * only prints what a source-filtered handle hears. */
int main(int argc, char **argv) {
    if (!getenv("MC_NETNS")) {
        fprintf(stderr, "refusing to run outside scripts/netns (no MC_NETNS)\n");
        return 2;
    }
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "--ssm-heard") == 0) {
        printf("heard: %s\n", ssm_heard());
        return 0;
    }
    printf("libmulticast %s\n", mc_version());
    test_capabilities();
    test_errors();
    test_round_trip();
    test_groups_do_not_leak();
    test_timeouts_and_small_buffers();
    test_options_and_interfaces();
    test_batches();
    test_json_and_auth();
    test_ipv6();
    if (strcmp(mode, "--without-ssm") == 0) printf("source-specific multicast: not run here\n");
    else test_ssm();
    printf("c-portable: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
