/* The C reference: a single-threaded epoll echo server, TCP and UDP, on
   127.0.0.1. It is what the hardware can do with one core and no framework.
   Like the event-loop servers it writes at once and queues what the socket
   will not take, but the queue is capped at CAP: past it the connection
   stops reading, so a fast sender cannot grow it without bound.
   Usage: c_echo TCP_PORT UDP_PORT   (0 skips that protocol) */
#include "../load/common.h"
#include <sys/epoll.h>

#define BUF 262144 /* as large as asyncio's reads, so C is not handicapped */

#define CAP (1 << 20) /* unsent echo a connection may hold before it stops reading */

typedef struct {
    int fd;
    uint32_t events;
    size_t pend_off, pend_len;
    unsigned char *pend; /* CAP bytes once needed */
} conn_t;

static int ep;
static unsigned char buf[BUF];

static void add(conn_t *c, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, op, c->fd, &ev) < 0) die("epoll_ctl");
    c->events = events;
}

static int listen_on(int type, int port) {
    int fd = socket(AF_INET, type, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = make_addr("127.0.0.1", port);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
    if (type == SOCK_STREAM && listen(fd, 1024) < 0) die("listen");
    set_nonblocking(fd);
    return fd;
}

static void close_conn(conn_t *c) {
    close(c->fd);
    free(c->pend);
    free(c);
}

/* Write what is pending; 0 when the connection had to be closed. */
static int flush(conn_t *c) {
    while (c->pend_len) {
        ssize_t n = write(c->fd, c->pend + c->pend_off, c->pend_len);
        if (n < 0) return errno == EAGAIN;
        c->pend_off += (size_t)n;
        c->pend_len -= (size_t)n;
    }
    c->pend_off = 0;
    return 1;
}

/* Read while there is room, echo at once when nothing is queued, queue the
   rest (like a framework's write buffer, but bounded by CAP). */
static void on_tcp(conn_t *c, uint32_t events) {
    if ((events & EPOLLOUT) && !flush(c)) { close_conn(c); return; }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->pend_len < CAP) {
        size_t room = CAP - c->pend_len;
        ssize_t n = read(c->fd, buf, room < BUF ? room : BUF);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) { close_conn(c); return; }
        if (n > 0) {
            ssize_t w = 0;
            if (!c->pend_len) {
                w = write(c->fd, buf, (size_t)n);
                if (w < 0 && errno != EAGAIN) { close_conn(c); return; }
                if (w < 0) w = 0;
            }
            if (w < n) {
                if (!c->pend) c->pend = malloc(CAP);
                if (c->pend_off + c->pend_len + (size_t)(n - w) > CAP) {
                    memmove(c->pend, c->pend + c->pend_off, c->pend_len);
                    c->pend_off = 0;
                }
                memcpy(c->pend + c->pend_off + c->pend_len, buf + w, (size_t)(n - w));
                c->pend_len += (size_t)(n - w);
            }
        }
    }
    uint32_t want = (c->pend_len < CAP ? EPOLLIN : 0) | (c->pend_len ? EPOLLOUT : 0);
    if (want != c->events) add(c, want, EPOLL_CTL_MOD);
}

static void on_udp(int fd) {
    for (;;) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fd, buf, BUF, 0, (struct sockaddr *)&from, &len);
        if (n < 0) return;
        sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s TCP_PORT UDP_PORT\n", argv[0]); return 2; }
    int tcp_port = atoi(argv[1]), udp_port = atoi(argv[2]);
    ep = epoll_create1(0);
    conn_t lst = {.fd = -1}, udp = {.fd = -1};
    if (tcp_port) { lst.fd = listen_on(SOCK_STREAM, tcp_port); add(&lst, EPOLLIN, EPOLL_CTL_ADD); }
    if (udp_port) { udp.fd = listen_on(SOCK_DGRAM, udp_port); add(&udp, EPOLLIN, EPOLL_CTL_ADD); }
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            if (c == &udp) { on_udp(udp.fd); continue; }
            if (c == &lst) {
                int fd;
                while ((fd = accept4(lst.fd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    add(nc, EPOLLIN, EPOLL_CTL_ADD);
                }
                continue;
            }
            on_tcp(c, evs[k].events);
        }
    }
}
