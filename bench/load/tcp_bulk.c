/* TCP bulk echo: each of N connections streams a byte pattern as fast as
   the server echoes it back, with at most WINDOW bytes unechoed so that the
   server's buffers, not the client's, set the pace. Every echoed byte is
   checked against the pattern.
   Usage: tcp_bulk HOST PORT CONNS SECONDS [CHUNK=65536] [WINDOW=1048576] [WARMUP_S]
   Prints one JSON object: echoed MB/s (10^6 bytes) after the warm-up. */
#include "common.h"
#include <sys/epoll.h>

#define PERIOD 251 /* a prime, so chunk boundaries never line up with it */

typedef struct {
    int fd;
    uint64_t sent, recvd;
    int want_out;
} conn_t;

static unsigned char *pattern; /* PERIOD + rsize bytes of the pattern */
static unsigned char *rbuf;
static size_t chunk, window, rsize;
static int ep;

static void watch(conn_t *c, int want_out) {
    if (c->want_out == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
    c->want_out = want_out;
}

static void pump_out(conn_t *c) {
    while (c->sent - c->recvd < window) {
        size_t room = window - (size_t)(c->sent - c->recvd);
        size_t len = room < chunk ? room : chunk;
        ssize_t n = write(c->fd, pattern + c->sent % PERIOD, len);
        if (n < 0) {
            if (errno == EAGAIN) { watch(c, 1); return; }
            die("write");
        }
        c->sent += (uint64_t)n;
    }
    watch(c, 0);
}

static int pump_in(conn_t *c) {
    for (;;) {
        ssize_t n = read(c->fd, rbuf, rsize);
        if (n == 0) { fprintf(stderr, "error: server closed a connection\n"); exit(3); }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return 0;
            die("read");
        }
        if (memcmp(rbuf, pattern + c->recvd % PERIOD, (size_t)n) != 0) {
            fprintf(stderr, "error: echo differs from what was sent\n");
            exit(3);
        }
        c->recvd += (uint64_t)n;
        if ((size_t)n < rsize) return 0;
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SECONDS [CHUNK] [WINDOW] [WARMUP_S]\n", argv[0]);
        return 2;
    }
    struct sockaddr_in sa = make_addr(argv[1], atoi(argv[2]));
    int nconn = atoi(argv[3]);
    double secs = atof(argv[4]);
    chunk = argc > 5 ? (size_t)atol(argv[5]) : 65536;
    window = argc > 6 ? (size_t)atol(argv[6]) : 1048576;
    double warmup = argc > 7 ? atof(argv[7]) : secs / 5;
    rsize = chunk > 262144 ? chunk : 262144; /* read more than one write's worth */
    pattern = malloc(PERIOD + rsize);
    rbuf = malloc(rsize);
    for (size_t i = 0; i < PERIOD + rsize; i++) pattern[i] = (unsigned char)(i % PERIOD);

    ep = epoll_create1(0);
    conn_t *conns = calloc((size_t)nconn, sizeof *conns);
    for (int i = 0; i < nconn; i++) {
        conns[i].fd = tcp_connect(&sa);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0) die("epoll_ctl");
        pump_out(&conns[i]);
    }

    double start = now_s(), measure_from = start + warmup, end = measure_from + secs;
    int measuring = 0;
    uint64_t base = 0;
    struct epoll_event evs[256];
    for (;;) {
        double t = now_s();
        if (t >= end) break;
        if (!measuring && t >= measure_from) {
            measuring = 1;
            for (int i = 0; i < nconn; i++) base += conns[i].recvd;
            measure_from = t;
        }
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) pump_in(c);
            pump_out(c);
        }
    }
    double elapsed = now_s() - measure_from;
    uint64_t total = 0;
    for (int i = 0; i < nconn; i++) total += conns[i].recvd;
    total -= base;
    printf("{\"bytes\": %llu, \"seconds\": %.3f, \"mb_per_s\": %.1f}\n",
           (unsigned long long)total, elapsed, (double)total / elapsed / 1e6);
    return total ? 0 : 3;
}
