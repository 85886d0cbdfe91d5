/* TCP echo ping-pong: each of N connections sends one message, waits for
   all of it to come back (checking the bytes), and sends the next.
   Usage: tcp_pingpong HOST PORT CONNS SECONDS [MSG_BYTES=64] [WARMUP_S]
   Prints "MARK count" when counting starts and "MARK end" when it stops
   (flushed, so a caller can read the server's CPU time then), then one JSON
   object: messages/s and round-trip p50/p99 in microseconds, counted after
   the warm-up. */
#include "common.h"
#include <sys/epoll.h>

#define HIST_US 200000 /* 1 us buckets up to 200 ms; slower ones overflow */

typedef struct {
    int fd;
    size_t got;
    uint64_t sent_at;
} conn_t;

static uint32_t hist[HIST_US + 1];
static unsigned char *msg, *rbuf;
static size_t msg_len;

static void send_msg(conn_t *c) {
    ssize_t n = write(c->fd, msg, msg_len);
    if (n != (ssize_t)msg_len) die("write (short write of one small message)");
    c->got = 0;
    c->sent_at = now_ns();
}

static double percentile(uint64_t total, double p) {
    uint64_t want = (uint64_t)((double)total * p), seen = 0;
    for (int i = 0; i <= HIST_US; i++) {
        seen += hist[i];
        if (seen > want) return (double)i;
    }
    return (double)HIST_US;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SECONDS [MSG_BYTES] [WARMUP_S]\n", argv[0]);
        return 2;
    }
    struct sockaddr_in sa = make_addr(argv[1], atoi(argv[2]));
    int nconn = atoi(argv[3]);
    double secs = atof(argv[4]);
    msg_len = argc > 5 ? (size_t)atoi(argv[5]) : 64;
    double warmup = argc > 6 ? atof(argv[6]) : secs / 5;
    msg = malloc(msg_len);
    rbuf = malloc(msg_len);
    for (size_t i = 0; i < msg_len; i++) msg[i] = (unsigned char)('a' + i % 26);
    msg[msg_len - 1] = '\n';

    int ep = epoll_create1(0);
    conn_t *conns = calloc((size_t)nconn, sizeof *conns);
    for (int i = 0; i < nconn; i++) {
        conns[i].fd = tcp_connect(&sa);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0) die("epoll_ctl");
    }
    for (int i = 0; i < nconn; i++) send_msg(&conns[i]);

    double start = now_s(), measure_from = start + warmup, end = measure_from + secs;
    int measuring = 0;
    uint64_t count = 0;
    struct epoll_event evs[256];
    for (;;) {
        double t = now_s();
        if (t >= end) break;
        if (!measuring && t >= measure_from) {
            measuring = 1;
            printf("MARK count\n");
            fflush(stdout);
        }
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            ssize_t r = read(c->fd, rbuf + c->got, msg_len - c->got);
            if (r == 0) {
                fprintf(stderr, "error: server closed a connection\n");
                return 3;
            }
            if (r < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                die("read");
            }
            c->got += (size_t)r;
            if (c->got < msg_len) continue;
            if (memcmp(rbuf, msg, msg_len) != 0) {
                fprintf(stderr, "error: echo differs from what was sent\n");
                return 3;
            }
            if (measuring) {
                uint64_t us = (now_ns() - c->sent_at) / 1000;
                hist[us > HIST_US ? HIST_US : us]++;
                count++;
            }
            send_msg(c);
        }
    }
    double elapsed = now_s() - measure_from;
    printf("MARK end\n");
    fflush(stdout);
    printf("{\"messages\": %llu, \"seconds\": %.3f, \"msgs_per_s\": %.1f, "
           "\"p50_us\": %.0f, \"p99_us\": %.0f}\n",
           (unsigned long long)count, elapsed, (double)count / elapsed,
           percentile(count, 0.50), percentile(count, 0.99));
    return count ? 0 : 3;
}
