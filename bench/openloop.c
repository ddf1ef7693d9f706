/*
 * openloop: a small open-loop HTTP/1.1 load generator for dibble's benchmarks.
 *
 * wrk is closed-loop: each connection sends its next request only when the
 * previous answer arrived, so a slow server is offered less load and its
 * latency looks better than it is ("coordinated omission"). Neither wrk2 nor
 * oha is packaged for this machine, so this program does what wrk2 does, in
 * one thread (it is pinned to its own core by the harness):
 *
 *   - C keep-alive connections share a fixed rate R. Connection i sends its
 *     k-th request at the *intended* time  start + (i + k*C) / R, whatever
 *     happened to earlier requests.
 *   - A request's latency is measured from its intended send time, not from
 *     when it could actually be written. If the server falls behind, the next
 *     request on that connection goes out as soon as the previous answer is
 *     in, and its latency includes the time it waited for its turn.
 *   - Latencies of the requests intended after the warm-up are kept in an
 *     array; percentiles are exact (sorted), printed as one JSON line with
 *     the rate achieved (answers completed during the measured window).
 *   - A server that cannot keep up builds a queue that grows for the whole
 *     run; requests intended late in the run are then never sent, so its
 *     percentiles are lower bounds ("samples" says how many were measured).
 *
 * One request in flight per connection (no pipelining); a connection the
 * server closes is reopened. Responses are framed by Content-Length or by
 * the zero-length last chunk of a chunked body. With -e BODY, every
 * Content-Length body is compared with BODY and mismatches are counted.
 *
 *   openloop -p PORT -r RATE [-H 127.0.0.1] [-c 64] [-d 5] [-w 1] [-u /plaintext] [-e BODY]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { CONNECTING, IDLE, WAITING };

struct conn {
    int fd;
    enum state state;
    uint64_t next_due;  /* intended send time of the next request, ns */
    uint64_t intended;  /* intended send time of the request in flight */
    size_t len;
    char buf[16384];
};

static struct sockaddr_in addr;
static char request[512];
static size_t request_len;
static int epfd;
static uint64_t *samples;
static size_t nsamples, capsamples;
static uint64_t non2xx, mismatched, errors, reconnects, completed_window, unanswered;
static const char *expected_body;
static size_t expected_len;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void open_conn(struct conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
        die("connect");
    c->state = CONNECTING;
    c->len = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void reopen(struct conn *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    reconnects++;
    open_conn(c);
}

static void record(uint64_t latency) {
    if (nsamples == capsamples) {
        capsamples = capsamples ? capsamples * 2 : 1 << 20;
        samples = realloc(samples, capsamples * sizeof *samples);
        if (!samples) die("realloc");
    }
    samples[nsamples++] = latency;
}

/* Length of the complete response at the start of buf, 0 if incomplete, -1 if
 * it cannot be framed. Sets *status and *close_after. */
static long response_length(const char *buf, size_t len, int *status, int *close_after, int *bad_body) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return len >= sizeof(((struct conn *)0)->buf) ? -1 : 0;
    size_t head = (size_t)(end - buf) + 4;
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(buf + 9);
    *close_after = strncmp(buf, "HTTP/1.0", 8) == 0;
    long content_length = -1;
    int chunked = 0;
    for (const char *line = (const char *)memchr(buf, '\n', head) + 1; line < buf + head - 2;) {
        const char *eol = memchr(line, '\n', (size_t)(buf + head - line));
        if (!eol) break;
        if (strncasecmp(line, "content-length:", 15) == 0) content_length = atol(line + 15);
        else if (strncasecmp(line, "transfer-encoding:", 18) == 0)
            chunked = memmem(line, (size_t)(eol - line), "chunked", 7) != NULL;
        else if (strncasecmp(line, "connection:", 11) == 0) {
            if (memmem(line, (size_t)(eol - line), "close", 5)) *close_after = 1;
            else if (memmem(line, (size_t)(eol - line), "keep-alive", 10)) *close_after = 0;
        }
        line = eol + 1;
    }
    if (content_length >= 0) {
        if (len < head + (size_t)content_length) return 0;
        *bad_body = expected_body && ((size_t)content_length != expected_len ||
                                      memcmp(buf + head, expected_body, expected_len) != 0);
        return (long)(head + content_length);
    }
    if (chunked) {
        const char *last = memmem(buf + head, len - head, "\r\n0\r\n\r\n", 7);
        if (!last && len - head >= 5 && memcmp(buf + head, "0\r\n\r\n", 5) == 0) return (long)head + 5;
        return last ? (long)(last + 7 - buf) : 0;
    }
    return -1;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p) {
    if (!nsamples) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(nsamples - 1) + 0.5);
    return (double)samples[i] / 1e6;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *path = "/plaintext";
    int port = 0, nconns = 64;
    double rate = 0, duration = 5, warmup = 1;
    for (int opt; (opt = getopt(argc, argv, "H:p:c:r:d:w:u:e:")) != -1;) {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': nconns = atoi(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'u': path = optarg; break;
        case 'e': expected_body = optarg; expected_len = strlen(optarg); break;
        default:
            fprintf(stderr, "usage: %s -p PORT -r RATE [-H host] [-c conns] [-d s] [-w s] [-u path]"
                            " [-e body]\n", argv[0]);
            return 2;
        }
    }
    if (port <= 0 || rate <= 0 || nconns <= 0) {
        fprintf(stderr, "openloop: -p PORT and -r RATE are required\n");
        return 2;
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("inet_pton");
    request_len = (size_t)snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                                   path, host, port);

    prctl(PR_SET_TIMERSLACK, 1000UL); /* wake within a microsecond, not the default 50 */
    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns) die("calloc");

    uint64_t interval = (uint64_t)(1e9 * nconns / rate); /* per connection */
    uint64_t start = now_ns() + 100000000ull;             /* 100 ms to connect */
    uint64_t measure_from = start + (uint64_t)(warmup * 1e9);
    uint64_t stop_sending = measure_from + (uint64_t)(duration * 1e9);
    for (int i = 0; i < nconns; i++) {
        open_conn(&conns[i]);
        conns[i].next_due = start + (uint64_t)(1e9 * i / rate);
    }

    struct epoll_event events[256];
    uint64_t drain_deadline = stop_sending + 1000000000ull;
    for (;;) {
        uint64_t now = now_ns(), earliest = UINT64_MAX;
        int in_flight = 0;
        for (int i = 0; i < nconns; i++) {
            struct conn *c = &conns[i];
            if (c->state == IDLE && c->next_due <= now && c->next_due < stop_sending) {
                ssize_t n = send(c->fd, request, request_len, MSG_NOSIGNAL);
                if (n != (ssize_t)request_len) {
                    errors++;
                    reopen(c);
                    continue;
                }
                c->intended = c->next_due;
                c->next_due += interval;
                c->state = WAITING;
            }
            if (c->state == WAITING) in_flight++;
            if (c->state == IDLE && c->next_due < stop_sending && c->next_due < earliest)
                earliest = c->next_due;
        }
        if (now >= stop_sending && (in_flight == 0 || now >= drain_deadline)) {
            unanswered = (uint64_t)in_flight; /* still waiting a second after the end */
            break;
        }
        /* Sleep until the next request is due (at most 10 ms), to the microsecond. */
        uint64_t wait_ns = 10000000ull;
        if (earliest != UINT64_MAX) wait_ns = earliest <= now ? 0 : earliest - now;
        if (wait_ns > 10000000ull) wait_ns = 10000000ull;
        struct timespec timeout = {.tv_sec = 0, .tv_nsec = (long)wait_ns};
        int n = epoll_pwait2(epfd, events, 256, &timeout, NULL);
        if (n < 0 && errno == ENOSYS) /* a kernel older than 5.11 */
            n = epoll_wait(epfd, events, 256, (int)(wait_ns / 1000000ull));
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int e = 0; e < n; e++) {
            struct conn *c = events[e].data.ptr;
            if (c->state == CONNECTING) {
                int err = 0;
                socklen_t errlen = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &errlen);
                if (err) {
                    errors++;
                    reopen(c);
                    continue;
                }
                c->state = IDLE;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }
            ssize_t got = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
            if (got <= 0) {
                if (got < 0 && errno == EAGAIN) continue;
                if (c->state == WAITING) errors++; /* closed or reset mid-request */
                reopen(c);
                continue;
            }
            c->len += (size_t)got;
            if (c->state != WAITING) continue; /* unsolicited bytes: ignore */
            int status = 0, close_after = 0, bad_body = 0;
            long used = response_length(c->buf, c->len, &status, &close_after, &bad_body);
            if (used == 0) continue;
            if (used < 0) {
                errors++;
                reopen(c);
                continue;
            }
            uint64_t done = now_ns();
            if (c->intended >= measure_from) record(done - c->intended);
            if (done >= measure_from && done < stop_sending) completed_window++;
            if (status < 200 || status > 299) non2xx++;
            if (bad_body) mismatched++;
            memmove(c->buf, c->buf + used, c->len - (size_t)used);
            c->len -= (size_t)used;
            c->state = IDLE;
            if (close_after) reopen(c);
        }
    }
    qsort(samples, nsamples, sizeof *samples, cmp_u64);
    printf("{\"target_rps\": %.1f, \"achieved_rps\": %.1f, \"requests\": %llu, \"non2xx\": %llu, "
           "\"mismatched\": %llu, \"errors\": %llu, \"unanswered\": %llu, \"reconnects\": %llu, "
           "\"connections\": %d, \"samples\": %llu, "
           "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f}\n",
           rate, (double)completed_window / duration, (unsigned long long)completed_window,
           (unsigned long long)non2xx, (unsigned long long)mismatched, (unsigned long long)errors,
           (unsigned long long)unanswered, (unsigned long long)reconnects, nconns, (unsigned long long)nsamples,
           pct(50), pct(90), pct(99), pct(99.9), nsamples ? (double)samples[nsamples - 1] / 1e6 : 0.0);
    return 0;
}
