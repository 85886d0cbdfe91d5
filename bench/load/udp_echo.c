/* UDP echo: one socket keeps up to WINDOW datagrams in flight, so the rate
   follows the server's pace rather than flooding it; a datagram not
   answered within TIMEOUT_MS is presumed lost and frees its slot.
   Usage: udp_echo HOST PORT SECONDS [BYTES=64] [WINDOW=32] [WARMUP_S]
   Prints one JSON object: answered datagrams/s and the share lost, both
   counted after the warm-up (replies are drained for 200 ms at the end). */
#include "common.h"
#include <poll.h>

#define TIMEOUT_MS 20

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s HOST PORT SECONDS [BYTES] [WINDOW] [WARMUP_S]\n", argv[0]);
        return 2;
    }
    struct sockaddr_in sa = make_addr(argv[1], atoi(argv[2]));
    double secs = atof(argv[3]);
    size_t size = argc > 4 ? (size_t)atoi(argv[4]) : 64;
    int window = argc > 5 ? atoi(argv[5]) : 32;
    double warmup = argc > 6 ? atof(argv[6]) : secs / 5;
    if (size < 8) size = 8;

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
    set_nonblocking(fd);

    unsigned char *out = calloc(1, size), *in = malloc(65536);
    memset(out + 8, 'x', size - 8);
    uint64_t seq = 0, sent = 0, recvd = 0, sent0 = 0, recvd0 = 0;
    int inflight = 0, measuring = 0;
    double start = now_s(), measure_from = start + warmup, end = measure_from + secs;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    for (;;) {
        double t = now_s();
        if (t >= end) break;
        if (!measuring && t >= measure_from) {
            measuring = 1;
            sent0 = sent;
            recvd0 = recvd;
            measure_from = t;
        }
        while (inflight < window) {
            memcpy(out, &seq, 8);
            if (send(fd, out, size, 0) < 0) {
                if (errno == EAGAIN || errno == ECONNREFUSED || errno == ENOBUFS) break;
                die("send");
            }
            seq++, sent++, inflight++;
        }
        int r = poll(&pfd, 1, TIMEOUT_MS);
        if (r == 0) { inflight = 0; continue; } /* presume the window lost */
        for (;;) {
            ssize_t n = recv(fd, in, 65536, 0);
            if (n < 0) break; /* EAGAIN, or a refused-port ICMP error */
            recvd++;
            if (inflight > 0) inflight--;
        }
    }
    double elapsed = now_s() - measure_from;
    double drain_until = now_s() + 0.2;
    while (now_s() < drain_until) {
        if (poll(&pfd, 1, 20) > 0)
            while (recv(fd, in, 65536, 0) >= 0) recvd++;
    }
    uint64_t s = sent - sent0, g = recvd - recvd0;
    double loss = s ? (double)(s > g ? s - g : 0) / (double)s : 1.0;
    printf("{\"sent\": %llu, \"received\": %llu, \"seconds\": %.3f, "
           "\"dgrams_per_s\": %.1f, \"loss_pct\": %.3f}\n",
           (unsigned long long)s, (unsigned long long)g, elapsed,
           (double)g / elapsed, loss * 100.0);
    return g ? 0 : 3;
}
