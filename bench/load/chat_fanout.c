/* Chat fan-out: MEMBERS connections join a line chat (each sends a nick
   line "m<run>NNNNN" first, <run> three letters or digits of its own so a
   run never meets the last run's nicks still held in a cluster), then the first SENDERS of them send lines
   "BENCH <send time in ns> s<sender> <pad>" and every member that receives
   one counts it and its delivery latency (receive time minus the embedded
   send time; CLOCK_MONOTONIC, one host). Senders keep at most WINDOW lines
   in flight, a line being in flight until the last member (the probe, never
   a sender) has received it, so a slow server slows the senders instead of
   piling up. Lines that do not carry "BENCH " (welcome text, join notices)
   are skipped.
   PORT may be a comma-separated list (daemons sharing rooms, e.g. through
   Redis): member i connects to port i mod the number of ports, so senders
   and receivers are spread over every daemon.
   Usage: chat_fanout HOST PORT[,PORT...] MEMBERS SECONDS [SENDERS=4] [WINDOW=8] [WARMUP_S]
   Prints "MARK count" when counting starts and "MARK end" when it stops
   (flushed at once, so a caller can read the servers' CPU time then), then
   one JSON object: deliveries/s (lines received, summed over all members),
   lines sent/s, the counted totals, p50/p99 delivery latency in
   microseconds, all counted after the warm-up. Then, sending nothing more,
   it reads on for up to DRAIN_S seconds until every counted line has
   reached every member but its sender ("undelivered": how many had not);
   the run fails (exit 3) if a member heard no counted line of some other
   sender that sent one: a server cannot look fast by not delivering (two
   daemons that do not share the room). */
#include "common.h"
#include <sys/epoll.h>
#include <sys/resource.h>

#define HIST_US 2000000 /* 1 us buckets up to 2 s */
#define RBUF 65536
#define MAX_PORTS 16
#define MAX_SENDERS 64
#define DRAIN_S 5.0

typedef struct {
    int fd;
    int idx;
    size_t have;
    uint64_t heard_from; /* bit s: a counted line of sender s arrived */
    char buf[RBUF];
} conn_t;

static uint32_t hist[HIST_US + 1];
static uint64_t delivered, late, lat_count, probe_got, sent_total;
static int counting; /* 0 warm-up, 1 counting, 2 counted: only who heard whom */

static double percentile(double p) {
    uint64_t want = (uint64_t)((double)lat_count * p), seen = 0;
    for (int i = 0; i <= HIST_US; i++) {
        seen += hist[i];
        if (seen > want) return (double)i;
    }
    return (double)HIST_US;
}

/* One complete line: count it if it is a bench line sent after warm-up. */
static void on_line(conn_t *c, char *line, int nconn, uint64_t now) {
    char *mark = strstr(line, "BENCH ");
    if (!mark) return;
    uint64_t ts = strtoull(mark + 6, NULL, 10);
    if (c->idx == nconn - 1) probe_got++;
    if (!counting || ts == 0) return;
    if (ts & 1) { /* odd stamps were sent during warm-up */
        return;
    }
    char *from = strstr(mark + 6, " s");
    if (from) {
        int sender = atoi(from + 2);
        if (sender >= 0 && sender < MAX_SENDERS) c->heard_from |= 1ull << sender;
    }
    if (counting == 2) { /* delivered after counting stopped */
        late++;
        return;
    }
    delivered++;
    uint64_t us = now > ts ? (now - ts) / 1000 : 0;
    hist[us > HIST_US ? HIST_US : us]++;
    lat_count++;
}

/* A member's own bit among the senders' (a sender does not hear itself). */
static uint64_t self_bit(int idx, int senders) {
    return idx < senders ? 1ull << idx : 0;
}

/* Read what is there; return -1 if the server closed the connection. */
static int drain(conn_t *c, int nconn, int parse) {
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->have, RBUF - 1 - c->have);
        if (n == 0) return -1;
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        if (!parse) continue;
        uint64_t now = now_ns();
        c->have += (size_t)n;
        c->buf[c->have] = 0;
        char *start = c->buf, *nl;
        while ((nl = memchr(start, '\n', c->have - (size_t)(start - c->buf)))) {
            *nl = 0;
            on_line(c, start, nconn, now);
            start = nl + 1;
        }
        size_t rest = c->have - (size_t)(start - c->buf);
        if (rest == RBUF - 1) rest = 0; /* an absurd line: drop it */
        memmove(c->buf, start, rest);
        c->have = rest;
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s HOST PORT MEMBERS SECONDS [SENDERS] [WINDOW] [WARMUP_S]\n",
                argv[0]);
        return 2;
    }
    struct sockaddr_in addrs[MAX_PORTS];
    int nports = 0;
    for (const char *p = argv[2]; p && nports < MAX_PORTS; p = strchr(p, ',')) {
        if (*p == ',') p++;
        addrs[nports++] = make_addr(argv[1], atoi(p));
    }
    int nconn = atoi(argv[3]);
    double secs = atof(argv[4]);
    int senders = argc > 5 ? atoi(argv[5]) : 4;
    int window = argc > 6 ? atoi(argv[6]) : 8;
    double warmup = argc > 7 ? atof(argv[7]) : secs / 5;
    if (senders < 1 || senders >= nconn) senders = nconn > 1 ? 1 : 0;
    if (nconn < 2 || senders < 1 || senders > MAX_SENDERS || nports < 1) {
        fprintf(stderr, "error: need at least 2 members, 1 to %d senders and a port\n",
                MAX_SENDERS);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int ep = epoll_create1(0);
    conn_t *conns = calloc((size_t)nconn, sizeof *conns);
    if (!conns) die("calloc");
    char nick[32];
    const char *digits = "0123456789abcdefghijklmnopqrstuvwxyz";
    unsigned run_tag = (unsigned)(getpid() ^ now_ns()) % (36 * 36 * 36);
    char tag[4] = {digits[run_tag / 1296], digits[run_tag / 36 % 36], digits[run_tag % 36], 0};
    for (int i = 0; i < nconn; i++) {
        conns[i].fd = tcp_connect(&addrs[i % nports]);
        conns[i].idx = i;
        int len = snprintf(nick, sizeof nick, "m%s%05d\r\n", tag, i);
        if (write(conns[i].fd, nick, (size_t)len) != len) die("write nick");
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0) die("epoll_ctl");
    }

    struct epoll_event evs[512];
    /* Settle: discard welcome text and join notices until 300 ms of quiet
       (at most 30 s: joins are O(members^2) lines). */
    double settle_end = now_s() + 30, quiet_since = now_s();
    while (now_s() < settle_end && now_s() - quiet_since < 0.3) {
        int n = epoll_wait(ep, evs, 512, 50);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (drain(c, nconn, 0) < 0) {
                fprintf(stderr, "error: server closed member %d while joining\n", c->idx);
                return 1;
            }
        }
        if (n > 0) quiet_since = now_s();
    }

    char line[128];
    char pad[41];
    memset(pad, 'x', 40);
    pad[40] = 0;
    double t0 = now_s(), t_count = t0 + warmup, t_end = t_count + secs;
    uint64_t sent_counted = 0, spoke = 0; /* bit s: sender s sent a counted line */
    int next_sender = 0;
    counting = 0;
    for (;;) {
        double t = now_s();
        if (t >= t_end) break;
        if (!counting && t >= t_count) {
            counting = 1;
            printf("MARK count\n");
            fflush(stdout);
        }
        while (sent_total - probe_got < (uint64_t)window) {
            uint64_t ts = now_ns();
            ts = counting ? (ts & ~1ull) : (ts | 1ull);
            int len = snprintf(line, sizeof line, "BENCH %llu s%d %s\r\n",
                               (unsigned long long)ts, next_sender, pad);
            conn_t *s = &conns[next_sender];
            if (counting) spoke |= 1ull << next_sender;
            next_sender = (next_sender + 1) % senders;
            if (write(s->fd, line, (size_t)len) != len) die("write line");
            sent_total++;
            if (counting) sent_counted++;
        }
        int n = epoll_wait(ep, evs, 512, 20);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (drain(c, nconn, 1) < 0) {
                fprintf(stderr, "error: server closed member %d\n", c->idx);
                return 1;
            }
        }
    }
    printf("MARK end\n");
    fflush(stdout);
    /* Every member must hear every other sender that spoke while counting:
       on two daemons, that is the lines crossed over. Lines still on their
       way (a slow server, a busy machine) are waited for, a while. */
    counting = 2;
    double drain_end = now_s() + DRAIN_S;
    int deaf = 0;
    uint64_t expected = sent_counted * (uint64_t)(nconn - 1);
    for (;;) {
        while (deaf < nconn && (conns[deaf].heard_from | self_bit(deaf, senders) | ~spoke) == ~0ull)
            deaf++;
        if ((deaf == nconn && delivered + late >= expected) || now_s() >= drain_end) break;
        int n = epoll_wait(ep, evs, 512, 20);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (drain(c, nconn, 1) < 0) {
                fprintf(stderr, "error: server closed member %d\n", c->idx);
                return 1;
            }
        }
    }
    if (delivered == 0) {
        fprintf(stderr, "error: no line was delivered while counting (%llu sent)\n",
                (unsigned long long)sent_counted);
        return 3;
    }
    if (deaf < nconn) {
        fprintf(stderr, "error: member %d (port %d of %d) heard no counted line from "
                "sender(s) 0x%llx in %.0f s\n", deaf, deaf % nports + 1, nports,
                (unsigned long long)(spoke & ~conns[deaf].heard_from & ~self_bit(deaf, senders)),
                DRAIN_S);
        return 3;
    }
    printf("{\"deliveries_per_s\": %.1f, \"lines_per_s\": %.1f, \"deliveries\": %llu, "
           "\"lines\": %llu, \"p50_us\": %.1f, \"p99_us\": %.1f, \"members\": %d, "
           "\"senders\": %d, \"window\": %d, \"ports\": %d, \"undelivered\": %lld}\n",
           (double)delivered / secs, (double)sent_counted / secs,
           (unsigned long long)delivered, (unsigned long long)sent_counted,
           percentile(0.50), percentile(0.99), nconn, senders, window, nports,
           (long long)expected - (long long)(delivered + late));
    return 0;
}
