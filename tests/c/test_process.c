/*
 * test_process.c: libmulticast at the edges of a process's life, each case in a child
 * process of its own so that a crash, an abort or a hang is reported, not fatal:
 *   - calls during thread-local teardown (an atexit handler, a pthread_key destructor);
 *   - fork: a child that closes or frees its inherited copy leaves the parent working,
 *     also when a parent thread was inside mc_receive at the time of the fork;
 *   - _Fork (no atfork handlers run): the child still refuses its inherited handles,
 *     so it never seals under its parent's nonces;
 *   - every export on a thread with a 32 KiB stack (the minimum the header states);
 *   - no copy of a group key is left anywhere in the process's memory after mc_free,
 *     nor of a key mc_rotate_key dropped (uninstrumented build: ASan keeps memory),
 *     also after a rotation that kept the first key, in 20 new processes (a layout
 *     each) while another thread keeps the upkeep thread busy.
 * Run inside scripts/netns (it refuses otherwise).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "multicast.h"

static int next_port = 31000;

/* Inside a child: a failed expectation ends it with this exit code. */
#define REQUIRE(cond, code)                                                           \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "child: %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, mc_last_error());                                          \
            _exit(code);                                                              \
        }                                                                             \
    } while (0)

static void pause_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Runs `child` in a forked process and checks that it exits 0 within `limit_s`
 * seconds (a hang is killed and reported). */
static pid_t (*forker)(void) = fork;

static void in_child(const char *what, void (*child)(void), int limit_s) {
    fflush(NULL);
    pid_t pid = forker();
    if (pid == 0) {
        alarm((unsigned)limit_s);
        child();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        passed++;
    } else {
        failed++;
        if (WIFSIGNALED(status))
            fprintf(stderr, "FAIL %s: child died of signal %d%s\n", what, WTERMSIG(status),
                    WTERMSIG(status) == SIGALRM ? " (hung)" : "");
        else
            fprintf(stderr, "FAIL %s: child exited %d\n", what, WEXITSTATUS(status));
    }
}

static mc_group *join_or_die(const char *group, int port) {
    mc_group *g = NULL;
    if (mc_join(group, port, NULL, &g) != MC_OK) {
        fprintf(stderr, "cannot join %s:%d: %s\n", group, port, mc_last_error());
        exit(1);
    }
    return g;
}

/* A failing call and mc_last_error, as a program's cleanup code would make them. */
static int failing_calls_work(void) {
    mc_group *g = NULL;
    if (mc_join("10.0.0.1", 9999, NULL, &g) != MC_ERR_NOT_MULTICAST || g) return 0;
    const char *message = mc_last_error();
    if (!message || !*message) return 0;
    if (mc_send(NULL, "x", 1) != MC_ERR_INVALID_ARGUMENT) return 0;
    return mc_last_error() != NULL && strstr(mc_status_str(MC_ERR_CLOSED), "CLOSED") != NULL;
}

/* An authenticated group seals each send in a per-thread buffer: a send made after that
 * buffer is gone must still work. */
static mc_group *keyed;

/* An authenticated group's handle (a fixed key; every member here uses the same). */
static mc_group *join_keyed_at(const char *group, int port) {
    uint8_t key[MC_GROUP_KEY_SIZE] = {1};
    mc_join_options o;
    mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION);
    o.group_key = key;
    o.group_key_len = sizeof key;
    mc_group *g = NULL;
    if (mc_join_with_options(group, port, &o, &g) != MC_OK) {
        fprintf(stderr, "cannot join %s:%d with a key: %s\n", group, port, mc_last_error());
        exit(1);
    }
    return g;
}

static mc_group *join_keyed(void) { return join_keyed_at("239.1.9.3", 9993); }

static int keyed_send_works(void) {
    return mc_send(keyed, "sealed during teardown", 22) == MC_OK;
}

/* ---- thread-local teardown ---- */

static void at_exit_calls(void) {
    /* exit() has already destroyed the main thread's thread-locals here. */
    if (!failing_calls_work()) _exit(3);
    if (!keyed_send_works()) _exit(10);
    printf("atexit: last error reads \"%s\"\n", mc_last_error());
}

static void child_atexit(void) {
    failing_calls_work(); /* the thread-local message exists before teardown */
    keyed = join_keyed();
    keyed_send_works(); /* and so does the sealing buffer */
    atexit(at_exit_calls);
    exit(0);
}

static pthread_key_t key;
static volatile int destructor_ok = -1;

static void key_destructor(void *value) {
    (void)value;
    destructor_ok = failing_calls_work() && keyed_send_works();
}

static void *thread_with_key(void *arg) {
    (void)arg;
    pthread_setspecific(key, &key);
    failing_calls_work();
    keyed_send_works();
    return NULL;
}

static void child_key_destructor(void) {
    keyed = join_keyed();
    pthread_key_create(&key, key_destructor);
    pthread_t t;
    pthread_create(&t, NULL, thread_with_key, NULL);
    pthread_join(t, NULL);
    REQUIRE(destructor_ok == 1, 4);
}

/* ---- fork ---- */

static mc_group *shared;

static void child_closes_and_frees(void) {
    char buf[16];
    size_t len = 0;
    /* In the child the inherited handle acts as closed, with a message saying why. */
    REQUIRE(mc_send(shared, "child", 5) == MC_ERR_CLOSED, 5);
    REQUIRE(strstr(mc_last_error(), "inherited across fork()") != NULL, 6);
    REQUIRE(mc_receive(shared, 0.1, buf, sizeof buf, &len, NULL, 0) == MC_ERR_CLOSED, 7);
    int fd = 0;
    REQUIRE(mc_fd(shared, &fd) == MC_ERR_CLOSED, 8);
    REQUIRE(mc_close(shared) == MC_OK, 9);
    mc_free(shared);
    /* A fresh join in the child works. */
    mc_group *own = NULL;
    REQUIRE(mc_join("239.1.3.9", next_port, NULL, &own) == MC_OK, 10);
    mc_free(own);
}

/* After a child closed and freed its copy, the parent still sends and hears itself. */
static void parent_still_works(mc_group *g, const char *text) {
    char buf[64];
    size_t len = 0;
    CHECK(mc_send(g, text, strlen(text)) == MC_OK);
    CHECK(mc_receive(g, 5.0, buf, sizeof buf, &len, NULL, 0) == MC_OK);
    CHECK(len == strlen(text) && memcmp(buf, text, len) == 0);
}

static void test_fork_child_closes(void) {
    shared = join_or_die("239.1.3.1", next_port++);
    in_child("fork: child closes and frees its copy", child_closes_and_frees, 10);
    parent_still_works(shared, "parent after child's close");
    mc_free(shared);
}

/* ---- _Fork: glibc's fork without atfork handlers (as a raw clone) ---- */

static void child_of_raw_fork(void) {
    /* Sealing here would reuse the parent's sender id and next sequence numbers: one
     * (key, nonce) for two messages. The handle must act as inherited, as after fork(). */
    REQUIRE(mc_send(shared, "child", 5) == MC_ERR_CLOSED, 12);
    REQUIRE(strstr(mc_last_error(), "inherited across fork()") != NULL, 13);
    REQUIRE(mc_close(shared) == MC_OK, 14);
    mc_free(shared);
}

static void test_raw_fork(void) {
    shared = join_keyed_at("239.1.3.3", next_port++);
    parent_still_works(shared, "before"); /* the sender's nonces are in use */
    forker = _Fork;
    in_child("_Fork: the child refuses its inherited keyed handle", child_of_raw_fork, 10);
    forker = fork;
    parent_still_works(shared, "parent after _Fork");
    mc_free(shared);
}

/* ---- keys leave no copy behind ---- */

#ifndef MC_NO_SMALL_STACK
#define MASK 0xA5 /* the scan looks for key ^ MASK: its pattern is no copy of the key */
#define WINDOW 65536

static uint8_t window[WINDOW + MC_GROUP_KEY_SIZE];

/* Half a key (16 bytes) counts as a copy: an allocator reusing freed memory overwrites
 * its first words, which can break a whole-key match while the rest stays readable. */
#define PART (MC_GROUP_KEY_SIZE / 2)

static int is_part_at(const uint8_t *at, const uint8_t *masked_part) {
    for (int i = 0; i < PART; i++)
        if ((uint8_t)(at[i] ^ MASK) != masked_part[i])
            return 0;
    return 1;
}

static int is_key_at(const uint8_t *at, const uint8_t *masked) {
    return is_part_at(at, masked) || is_part_at(at, masked + PART);
}

/* Copies of either half of the key (given as key ^ MASK) in every readable mapping of
 * this process, read through /proc/self/mem so that no page can fault. */
static int report_copies; /* where each copy is, once none is expected */

static long copies_in_memory(const uint8_t *masked) {
    FILE *maps = fopen("/proc/self/maps", "r");
    int mem = open("/proc/self/mem", O_RDONLY);
    REQUIRE(maps != NULL && mem >= 0, 30);
    char line[512];
    long found = 0;
    while (fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) != 3 || perms[0] != 'r' ||
            strstr(line, "[vvar") || strstr(line, "[vsyscall]"))
            continue;
        for (unsigned long at = lo; at < hi; at += WINDOW) {
            size_t want = hi - at < sizeof window ? hi - at : sizeof window;
            ssize_t n = pread(mem, window, want, (off_t)at);
            for (ssize_t i = 0; i < WINDOW && i + PART <= n; i++) {
                if (is_key_at(window + i, masked) && report_copies)
                    fprintf(stderr, "child: a copy at %#lx in %s", at + (unsigned long)i, line);
                found += is_key_at(window + i, masked);
            }
            /* The window is in this process too: it must hold no copy when read. */
            explicit_bzero(window, sizeof window);
        }
    }
    close(mem);
    fclose(maps);
    return found;
}

/* A fresh random key, returned as key ^ MASK; the key itself goes to `key`. */
static void new_key(uint8_t *key, uint8_t *masked) {
    REQUIRE(getrandom(key, MC_GROUP_KEY_SIZE, 0) == MC_GROUP_KEY_SIZE, 31);
    for (int i = 0; i < MC_GROUP_KEY_SIZE; i++)
        masked[i] = key[i] ^ MASK;
}

struct sender {
    mc_group *g;
    mc_status status;
    int sent[2], go[2]; /* pipes: "I have sent", "you may end" */
};

static void *send_then_wait(void *arg) {
    struct sender *s = arg;
    char byte;
    s->status = mc_send(s->g, "sealed", 6);
    if (write(s->sent[1], "x", 1) != 1 || read(s->go[0], &byte, 1) != 1)
        s->status = MC_ERR_INTERNAL;
    return NULL;
}

static void child_keys_leave_no_copy(void) {
    uint8_t key[MC_GROUP_KEY_SIZE], first[MC_GROUP_KEY_SIZE], second[MC_GROUP_KEY_SIZE];
    char buf[64];
    size_t len = 0;
    new_key(key, first);
    mc_join_options o;
    mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION);
    o.group_key = key;
    o.group_key_len = sizeof key;
    mc_group *g = NULL;
    REQUIRE(mc_join_with_options("239.1.3.4", next_port, &o, &g) == MC_OK, 32);
    explicit_bzero(key, sizeof key);
    REQUIRE(mc_send(g, "sealed", 6) == MC_OK, 33);
    REQUIRE(mc_receive(g, 5.0, buf, sizeof buf, &len, NULL, 0) == MC_OK, 34);
    /* The scan finds the key the handle holds (so it can find a copy at all). */
    REQUIRE(copies_in_memory(first) >= 1, 35);

    new_key(key, second);
    REQUIRE(mc_rotate_key(g, 1, key, sizeof key, false) == MC_OK, 36);
    explicit_bzero(key, sizeof key);
    REQUIRE(mc_send(g, "sealed", 6) == MC_OK, 37);
    REQUIRE(mc_receive(g, 5.0, buf, sizeof buf, &len, NULL, 0) == MC_OK, 38);
    report_copies = 1;
    long dropped = copies_in_memory(first);
    report_copies = 0;
    if (dropped != 0)
        fprintf(stderr, "child: %ld copies of the key mc_rotate_key dropped\n", dropped);
    REQUIRE(dropped == 0, 39);
    REQUIRE(copies_in_memory(second) >= 1, 40);

    mc_free(g);
    report_copies = 1;
    long freed = copies_in_memory(second);
    if (freed != 0)
        fprintf(stderr, "child: %ld copies of the key after mc_free\n", freed);
    REQUIRE(freed == 0, 41);

    /* A thread that sent and then waits: sealing's returned frames lie untouched below
     * its stack pointer while this thread frees the handle and scans. */
    uint8_t third[MC_GROUP_KEY_SIZE];
    new_key(key, third);
    struct sender sender = {.status = MC_ERR_INTERNAL};
    REQUIRE(mc_join_with_options("239.1.3.4", next_port, &o, &sender.g) == MC_OK, 42);
    explicit_bzero(key, sizeof key);
    REQUIRE(pipe(sender.sent) == 0 && pipe(sender.go) == 0, 43);
    pthread_t thread;
    pthread_create(&thread, NULL, send_then_wait, &sender);
    char byte;
    REQUIRE(read(sender.sent[0], &byte, 1) == 1 && sender.status == MC_OK, 43);
    mc_free(sender.g);
    report_copies = 1;
    long sent = copies_in_memory(third);
    REQUIRE(write(sender.go[1], "x", 1) == 1, 43);
    pthread_join(thread, NULL);
    if (sent != 0)
        fprintf(stderr, "child: %ld copies of the key of a handle that sent, after mc_free\n", sent);
    REQUIRE(sent == 0, 44);
}

/* A thread that joins and frees a plain group again and again: each join and leave
 * wakes the upkeep thread, which then looks at every group while the keyed one works. */
static atomic_int churning;

static void *join_and_free(void *arg) {
    (void)arg;
    while (atomic_load(&churning)) {
        mc_group *g = NULL;
        if (mc_join("239.1.3.5", 31999, NULL, &g) == MC_OK) mc_free(g);
    }
    return NULL;
}

/* One fresh process (its own address layout): a key from malloc, wiped and freed once
 * joined; rotated to a second key with the first kept; five datagrams sealed, sent and
 * opened while the upkeep thread works; then mc_free, and neither key may be anywhere. */
static int keys_after_rotation_and_free(void) {
    uint8_t *key = malloc(MC_GROUP_KEY_SIZE), first[MC_GROUP_KEY_SIZE], second[MC_GROUP_KEY_SIZE];
    char buf[64];
    size_t len = 0;
    REQUIRE(key != NULL, 50);
    new_key(key, first);
    mc_join_options o;
    mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION);
    o.group_key = key;
    o.group_key_len = MC_GROUP_KEY_SIZE;
    mc_group *g = NULL;
    REQUIRE(mc_join_with_options("239.1.3.6", 31998, &o, &g) == MC_OK, 51);
    explicit_bzero(key, MC_GROUP_KEY_SIZE);
    free(key);
    atomic_store(&churning, 1);
    pthread_t churn;
    pthread_create(&churn, NULL, join_and_free, NULL);
    uint8_t next[MC_GROUP_KEY_SIZE];
    new_key(next, second);
    REQUIRE(mc_rotate_key(g, 1, next, sizeof next, true) == MC_OK, 52);
    explicit_bzero(next, sizeof next);
    for (int i = 0; i < 5; i++) {
        REQUIRE(mc_send(g, "sealed", 6) == MC_OK, 53);
        REQUIRE(mc_receive(g, 5.0, buf, sizeof buf, &len, NULL, 0) == MC_OK, 54);
    }
    atomic_store(&churning, 0);
    pthread_join(churn, NULL);
    /* The first key is kept (accepted during the rotation): the scan finds it. */
    REQUIRE(copies_in_memory(first) >= 1 && copies_in_memory(second) >= 1, 55);
    mc_free(g);
    report_copies = 1;
    long left = copies_in_memory(first) + copies_in_memory(second);
    if (left != 0) fprintf(stderr, "child: %ld copies of the two keys after mc_free\n", left);
    return left == 0 ? 0 : 56;
}

/* Runs keys_after_rotation_and_free in `runs` new processes (exec: a layout each). */
static void child_keys_in_new_processes(void) {
    for (int run = 0; run < 20; run++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            execl("/proc/self/exe", "test_process", "--keys-after-rotation", (char *)NULL);
            _exit(57);
        }
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid, 58);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "child: run %d of 20 failed (status %#x)\n", run + 1, status);
        REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0, 59);
    }
}
#endif

struct receiver {
    mc_group *g;
    mc_status status;
    char data[64];
    size_t len;
};

static void *receive_one(void *arg) {
    struct receiver *r = arg;
    r->status = mc_receive(r->g, -1.0, r->data, sizeof r->data, &r->len, NULL, 0);
    return NULL;
}

static void child_closes_while_parent_receives(void) {
    /* The parent's receiving thread holds the handle's locks; the child must not wait. */
    REQUIRE(mc_close(shared) == MC_OK, 11);
    mc_free(shared);
}

static void test_fork_during_receive(void) {
    shared = join_or_die("239.1.3.2", next_port++);
    struct receiver r = {.g = shared, .status = MC_ERR_INTERNAL};
    pthread_t t;
    pthread_create(&t, NULL, receive_one, &r);
    pause_ms(100); /* usually inside mc_receive by now; either way the child must not hang */
    in_child("fork: child closes while a parent thread receives", child_closes_while_parent_receives, 10);
    CHECK(mc_send(shared, "wake", 4) == MC_OK);
    pthread_join(t, NULL);
    CHECK(r.status == MC_OK && r.len == 4 && memcmp(r.data, "wake", 4) == 0);
    parent_still_works(shared, "parent after the fork");
    mc_free(shared);
}

/* ---- small stacks ---- */
#ifndef MC_NO_SMALL_STACK

#define SMALL_STACK (32 * 1024)

static char deep_json[2 * 10000 + 1];

static void *every_export(void *arg) {
    int *ok = arg;
    int port = next_port;
    mc_group *g = NULL;
    mc_join_options o;
    *ok = mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION) == MC_OK;
    o.packet_info = true;
    *ok &= mc_join_with_options("239.1.3.3", port, &o, &g) == MC_OK;
    if (!*ok) return NULL;
    mc_group *plain = NULL;
    *ok &= mc_join("239.1.3.4", port + 1, NULL, &plain) == MC_OK;
    *ok &= mc_join("10.0.0.1", port, NULL, &plain) == MC_ERR_NOT_MULTICAST;
    *ok &= mc_send(g, "small", 5) == MC_OK;
    *ok &= mc_send_json(g, "{\"b\":[1,2.5,\"<&>\"],\"a\":{\"c\":null}}") == MC_OK;
    *ok &= mc_send_json(g, deep_json) == MC_OK; /* the deepest nesting accepted */
    *ok &= mc_send_json(g, "{") == MC_ERR_INVALID_JSON;
    static char buf[MC_MAX_MESSAGE_SIZE];
    char source[MC_SOURCE_MAX];
    size_t len = 0, n = 0;
    *ok &= mc_receive(g, 5.0, buf, sizeof buf, &len, source, sizeof source) == MC_OK;
    *ok &= mc_receive(g, 5.0, buf, 4, &len, source, sizeof source) == MC_ERR_BUFFER_TOO_SMALL;
    static char slot_bufs[100][64];
    static mc_received slots[100];
    for (int i = 0; i < 100; i++) slots[i] = (mc_received){.buf = slot_bufs[i], .capacity = 64};
    mc_received one = {.buf = buf, .capacity = sizeof buf};
    *ok &= mc_receive_batch(g, 0, &one, 1, &n) == MC_OK && n == 1; /* the JSON */
    *ok &= mc_receive_batch(g, 5.0, &one, 1, &n) == MC_OK && n == 1; /* the deep JSON */
    *ok &= mc_receive_batch(g, 0, slots, 1, &n) == MC_TIMEOUT;
    static mc_datagram datagrams[100];
    for (int i = 0; i < 100; i++) datagrams[i] = (mc_datagram){.data = "batch", .len = (size_t)(i % 3 + 3)};
    *ok &= mc_send_batch(g, datagrams, 100, &n) == MC_OK && n == 100;
    size_t got = 0;
    for (int tries = 0; got < 100 && tries < 100; tries++) {
        if (mc_receive_batch(g, 5.0, slots, 100, &n) != MC_OK) break;
        got += n;
    }
    *ok &= got == 100;
    int fd = -1;
    uint32_t dropped = 0;
    *ok &= mc_fd(g, &fd) == MC_OK && fd >= 0;
    *ok &= mc_dropped(g, &dropped) == MC_OK;
    *ok &= mc_receive_buffer_size(g, &len) == MC_OK;
    *ok &= mc_group_addr(g) != NULL && mc_local_addr(g) != NULL && mc_port(g) == port;
    *ok &= mc_version() != NULL && mc_status_str(MC_OK) != NULL && mc_last_error() != NULL;
    *ok &= mc_close(g) == MC_OK && mc_close(plain) == MC_OK;
    mc_free(g);
    mc_free(plain);
    return NULL;
}

static void child_small_stack(void) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    REQUIRE(pthread_attr_setstacksize(&attr, SMALL_STACK) == 0, 12);
    int ok = 0;
    pthread_t t;
    REQUIRE(pthread_create(&t, &attr, every_export, &ok) == 0, 13);
    pthread_join(t, NULL);
    REQUIRE(ok == 1, 14);
}
#endif

int main(int argc, char **argv) {
    if (!getenv("MC_NETNS")) {
        fprintf(stderr, "refusing to run outside scripts/netns (no MC_NETNS)\n");
        return 2;
    }
#ifndef MC_NO_SMALL_STACK
    if (argc == 2 && strcmp(argv[1], "--keys-after-rotation") == 0)
        return keys_after_rotation_and_free();
#else
    (void)argc;
    (void)argv;
#endif
    in_child("failing calls in an atexit handler", child_atexit, 10);
    in_child("failing calls in a pthread_key destructor", child_key_destructor, 10);
    test_fork_child_closes();
    test_fork_during_receive();
    test_raw_fork();
#ifndef MC_NO_SMALL_STACK
    for (int i = 0; i < 10000; i++) {
        deep_json[i] = '[';
        deep_json[10000 + i] = ']';
    }
    in_child("every export on a 32 KiB thread stack", child_small_stack, 30);
    in_child("no copy of a key after mc_free or mc_rotate_key", child_keys_leave_no_copy, 60);
    in_child("no copy of either key after a rotation and mc_free, 20 new processes",
             child_keys_in_new_processes, 120);
#else
    fprintf(stderr, "note: the 32 KiB stack case runs in the uninstrumented build only\n");
#endif
    printf("c-process: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
