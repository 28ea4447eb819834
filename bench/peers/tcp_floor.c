/*
 * tcp_floor.c - what request/response over TCP loopback can do on this
 * machine at all: the floor under Tessera's and Redis' figures in
 * kv_peers.sh (bench/RESULTS.md, 2026-11-28).
 *
 *   tcp_floor N MS [REQ_BYTES=32] [RESP_BYTES=80]
 *
 * A server process (pinned to CPU 1, as kv_peers.sh pins Redis and
 * Tessera's owner) answers each REQ_BYTES request with RESP_BYTES from one
 * epoll loop - no parsing, no data structure, no allocation - and N client
 * processes (floating), each with one request outstanding (a blocking write,
 * then reads until the whole reply is in), run for MS milliseconds: the
 * shape of N x `redis-benchmark -c 1` and of N Tessera client processes,
 * with nothing but the system calls a request/response needs (client: write,
 * read; server: epoll_wait, shared by the ready connections, read, write).
 * Prints one line: N, round trips per second (each client's rate, summed), and
 * CPU microseconds per round trip (clients + server, from getrusage of the
 * children). Exit 0, or 1 when a process failed (its error on stderr).
 *
 * Every child is stopped by its pid: clients end on their own after MS (an
 * alarm bounds them), the server by SIGKILL once they have.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 256
#define MAX_MSG 65536

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void pin_cpu(int cpu)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) <= cpu)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)sched_setaffinity(0, sizeof(set), &set);
}

/* The server: answers every whole request on every connection. Runs until
 * killed. */
static void serve(int ls, size_t req, size_t resp)
{
    pin_cpu(1);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev) != 0)
        _exit(1);
    static unsigned char in[MAX_MSG], out[MAX_MSG];
    memset(out, 'v', resp);
    /* bytes of a partial request per connection (fds are small numbers) */
    static size_t have[4096];
    struct epoll_event evs[64];
    for (;;) {
        int k = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < k; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c = accept(ls, NULL, NULL);
                int one = 1;
                if (c < 0 || c >= 4096)
                    continue;
                (void)setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                struct epoll_event e2 = {.events = EPOLLIN, .data.fd = c};
                (void)epoll_ctl(ep, EPOLL_CTL_ADD, c, &e2);
                have[c] = 0;
                continue;
            }
            ssize_t r = read(fd, in, sizeof(in));
            if (r <= 0) {
                close(fd);
                continue;
            }
            have[fd] += (size_t)r;
            for (; have[fd] >= req; have[fd] -= req)
                if (write(fd, out, resp) != (ssize_t)resp)
                    break;
        }
    }
}

/* What a client reports: its round trips and the seconds they took. */
typedef struct result {
    long n;
    double secs;
} result_t;

/* A client: round trips for secs, then its result on `res`. */
static void client(const struct sockaddr_in *a, size_t req, size_t resp, double secs, int res)
{
    alarm((unsigned)secs + 30);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    if (s < 0 || connect(s, (const struct sockaddr *)a, sizeof(*a)) != 0) {
        perror("tcp_floor: connect");
        _exit(1);
    }
    (void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    static unsigned char q[MAX_MSG], b[MAX_MSG];
    memset(q, 'k', req);
    long n = 0;
    double t0 = now_s(), end = t0 + secs;
    while (now_s() < end) {
        if (write(s, q, req) != (ssize_t)req)
            _exit(1);
        for (size_t got = 0; got < resp;) {
            ssize_t r = read(s, b + got, resp - got);
            if (r <= 0)
                _exit(1);
            got += (size_t)r;
        }
        n++;
    }
    result_t r = {n, now_s() - t0};
    _exit(write(res, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tcp_floor N MS [REQ_BYTES=32] [RESP_BYTES=80]\n");
        return 2;
    }
    int n = atoi(argv[1]);
    double secs = atof(argv[2]) / 1000.0;
    long req = argc > 3 ? atol(argv[3]) : 32, resp = argc > 4 ? atol(argv[4]) : 80;
    if (n < 1 || n > MAX_CLIENTS || secs <= 0 || req < 1 || req > MAX_MSG || resp < 1 ||
        resp > MAX_MSG) {
        fprintf(stderr, "tcp_floor: N 1..%d, MS > 0, sizes 1..%d\n", MAX_CLIENTS, MAX_MSG);
        return 2;
    }
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, MAX_CLIENTS) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) != 0) {
        perror("tcp_floor: listen");
        return 1;
    }
    pid_t srv = fork();
    if (srv == 0)
        serve(ls, (size_t)req, (size_t)resp);
    if (srv < 0) {
        perror("tcp_floor: fork");
        return 1;
    }
    close(ls);
    /* after the server's fork: only the clients hold its write end, so the
     * reads below end when the last client has */
    int res[2];
    if (pipe(res) != 0) {
        perror("tcp_floor: pipe");
        kill(srv, SIGKILL);
        waitpid(srv, NULL, 0);
        return 1;
    }
    pid_t kids[MAX_CLIENTS];
    int started = 0, failed = 0;
    for (; started < n; started++) {
        kids[started] = fork();
        if (kids[started] == 0) {
            close(res[0]);
            client(&a, (size_t)req, (size_t)resp, secs, res[1]);
        }
        if (kids[started] < 0) {
            perror("tcp_floor: fork");
            failed = 1;
            break;
        }
    }
    close(res[1]);
    double total = 0, rate = 0;
    for (int i = 0; i < started; i++) {
        int st = 0;
        if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            failed = 1;
    }
    result_t r;
    while (read(res[0], &r, sizeof(r)) == (ssize_t)sizeof(r)) {
        total += (double)r.n;
        rate += r.secs > 0 ? (double)r.n / r.secs : 0.0;
    }
    kill(srv, SIGKILL);
    waitpid(srv, NULL, 0);
    if (failed) {
        fprintf(stderr, "tcp_floor: a client failed\n");
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    printf("%d %.0f %.2f\n", n, rate, total > 0 ? cpu / total * 1e6 : 0.0);
    return 0;
}
