// gomc.h: the cgo wrappers of the Go binding, included by every file that calls C.
#ifndef GOMC_H
#define GOMC_H

#include <stdlib.h>
#include <string.h>
#include "multicast.h"

// Each wrapper returns its status, length and a copy of mc_last_error() by value, taken
// within the same C call that failed: a goroutine may move to another OS thread between
// two cgo calls, and the message is per thread. Returning by value means no Go variable
// has its address passed to C, so nothing escapes to the heap on the hot paths.
typedef struct {
	mc_status status;
	size_t len;  // mc_receive's length, mc_receive_buffer_size's size, mc_fd's descriptor
	char *err;   // malloc'd copy of the error message on failure, else NULL; Go frees it
	mc_group *group;
} gomc_result;

static inline gomc_result gomc_done(mc_status s) {
	gomc_result r = {s, 0, NULL, NULL};
	if (s < 0) r.err = strdup(mc_last_error());
	return r;
}

static inline gomc_result gomc_join_with_options(const char *group, int32_t port, const char *iface,
                                          uint32_t index, int32_t ttl, bool loopback,
                                          size_t receive_buffer, bool gro, const char *source,
                                          bool rejoin, uint32_t reannounce,
                                          uint32_t max_datagrams, uint32_t max_bytes,
                                          const uint8_t *key, size_t key_len, uint8_t key_id,
                                          const uint8_t *previous, size_t previous_len,
                                          uint8_t previous_id) {
	mc_join_options o;
	mc_group *g = NULL;
	mc_status s = mc_join_options_init(&o, MC_JOIN_OPTIONS_VERSION);
	if (s == MC_OK) {
		o.interface_name = iface;
		o.interface_index = index;
		o.ttl = ttl;
		o.loopback = loopback;
		o.receive_buffer_size = receive_buffer;
		o.gro = gro;
		o.source_address = source;
		o.rejoin = rejoin;
		o.reannounce_seconds = reannounce;
		o.max_datagrams_per_second = max_datagrams;
		o.max_bytes_per_second = max_bytes;
		o.group_key = key;
		o.group_key_len = key_len;
		o.group_key_id = key_id;
		o.previous_key = previous;
		o.previous_key_len = previous_len;
		o.previous_key_id = previous_id;
		s = mc_join_with_options(group, port, &o, &g);
	}
	gomc_result r = gomc_done(s);
	r.group = g;
	return r;
}

static inline gomc_result gomc_fd(mc_group *g) {
	int fd = -1;
	gomc_result r = gomc_done(mc_fd(g, &fd));
	r.len = (size_t)fd;
	return r;
}

static inline gomc_result gomc_membership(mc_group *g, uint64_t *rejoins) {
	mc_membership_status status = MC_MEMBERSHIP_JOINED;
	gomc_result r = gomc_done(mc_membership(g, &status, rejoins));
	r.len = (size_t)status;
	return r;
}

static inline gomc_result gomc_receive_buffer_size(mc_group *g) {
	size_t size = 0;
	gomc_result r = gomc_done(mc_receive_buffer_size(g, &size));
	r.len = size;
	return r;
}

static inline gomc_result gomc_send(mc_group *g, const void *data, size_t len) {
	return gomc_done(mc_send(g, data, len));
}

// The source text goes to `source` (MC_SOURCE_MAX bytes), the datagram to `buf`.
static inline gomc_result gomc_receive(mc_group *g, double timeout, void *buf, size_t cap, char *source) {
	size_t n = 0;
	gomc_result r = gomc_done(mc_receive(g, timeout, buf, cap, &n, source, MC_SOURCE_MAX));
	r.len = n;
	return r;
}

static inline gomc_result gomc_send_batch(mc_group *g, const mc_datagram *datagrams, size_t count) {
	size_t sent = 0;
	gomc_result r = gomc_done(mc_send_batch(g, datagrams, count, &sent));
	r.len = sent;
	return r;
}

// Slots and their buffers live in C memory, so no Go pointer is stored in C memory.
static inline gomc_result gomc_receive_batch(mc_group *g, double timeout, mc_received *slots, size_t count) {
	size_t n = 0;
	gomc_result r = gomc_done(mc_receive_batch(g, timeout, slots, count, &n));
	r.len = n;
	return r;
}

static inline gomc_result gomc_rotate_key(mc_group *g, uint8_t id, const uint8_t *key, size_t len, bool keep) {
	return gomc_done(mc_rotate_key(g, id, key, len, keep));
}

static inline gomc_result gomc_auth_counters(mc_group *g, uint64_t *counts) {
	return gomc_done(mc_auth_counters(g, &counts[0], &counts[1], &counts[2]));
}

static inline gomc_result gomc_generate_key(uint8_t *out) {
	return gomc_done(mc_generate_key(out, MC_GROUP_KEY_SIZE));
}

static inline gomc_result gomc_close(mc_group *g) {
	return gomc_done(mc_close(g));
}

#endif
