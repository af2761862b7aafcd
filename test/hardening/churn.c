// Connection churn for the soak test (test/hardening/soak.test.ts).
// Every connection: TCP connect, TLS 1.3 handshake resuming the newest ticket,
// the backend greeting line, R echo round trips of L bytes each (compared byte
// for byte), close_notify, close. One thread, epoll, C connections at once.
// Bounded: -n connections or -t seconds, whichever comes first.
//
//   churn --port P [-c 64] [-n 200000] [-t 300] [-r 3] [-l 256] [--sni NAME] [--ca FILE]
//
// Prints one JSON object on stdout at the end; a progress line on stderr every 10 s.
// Built by test/hardening/util.ts: cc -O2 -o tmp/hardening/bin/churn churn.c -lssl -lcrypto
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum st { FREE, CONNECTING, HANDSHAKE, GREETING, ECHO, SHUTDOWN };
typedef struct {
  int fd;
  SSL* ssl;
  enum st st;
  int round;
  char out[4096];
  int out_len, out_off;
  char in[4096];
  int in_len;
  double t0;
} conn;

static int port, conc = 64, rounds = 3, len = 256;
static long total = 200000;
static double seconds = 300;
static const char* sni = "mail.example.com";
static const char* ca;
static SSL_CTX* ctx;
static SSL_SESSION* latest;
static int ep;
static long tickets, tickets_on_resumed, started, ok, resumed, fail_connect, fail_hs, fail_greet, fail_echo, fail_timeout, mismatches;
static long long compared;
static char first_err[256];

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int new_session_cb(SSL* ssl, SSL_SESSION* s) {
  tickets++;
  if (SSL_session_reused(ssl)) tickets_on_resumed++;
  if (latest) SSL_SESSION_free(latest);
  latest = s;  // keep the reference
  return 1;
}

static void note(const char* what) {
  if (!first_err[0]) {
    unsigned long e = ERR_peek_error();
    snprintf(first_err, sizeof first_err, "%s: %s / %s", what, e ? ERR_reason_error_string(e) : "-", strerror(errno));
  }
  ERR_clear_error();
}

static void release(conn* c) {
  if (c->ssl) SSL_free(c->ssl);
  if (c->fd >= 0) close(c->fd);
  c->ssl = NULL;
  c->fd = -1;
  c->st = FREE;
}

static void fail(conn* c, long* counter, const char* what) {
  (*counter)++;
  note(what);
  release(c);
}

static void fill_round(conn* c) {
  // "aNNN ECHO <payload>\r\n" with a per-connection, per-round pattern.
  int n = snprintf(c->out, sizeof c->out, "a%d ECHO ", c->round);
  for (int i = n; i < len - 2; i++) c->out[i] = 'A' + (char)((i * 7 + c->round * 13 + (int)(started & 15)) % 26);
  c->out[len - 2] = '\r';
  c->out[len - 1] = '\n';
  c->out_len = len;
  c->out_off = 0;
  c->in_len = 0;
}

static int start_conn(conn* c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { note("socket"); return -1; }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  c->fd = fd;
  c->t0 = now_s();
  c->round = 0;
  started++;
  if (connect(fd, (struct sockaddr*)&a, sizeof a) < 0 && errno != EINPROGRESS) { fail(c, &fail_connect, "connect"); return 0; }
  c->st = CONNECTING;
  c->ssl = SSL_new(ctx);
  SSL_set_fd(c->ssl, fd);
  SSL_set_tlsext_host_name(c->ssl, sni);
  SSL_set1_host(c->ssl, sni);
  if (latest) SSL_set_session(c->ssl, latest);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  return 0;
}

static void drive(conn* c) {
  for (;;) {
    switch (c->st) {
      case FREE: return;
      case CONNECTING: {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err == EINPROGRESS) return;
        if (err) { errno = err; return fail(c, &fail_connect, "connect"); }
        c->st = HANDSHAKE;
        break;
      }
      case HANDSHAKE: {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1) {
          if (ca && SSL_get_verify_result(c->ssl) != X509_V_OK) return fail(c, &fail_hs, "verify");
          if (SSL_session_reused(c->ssl)) resumed++;
          c->st = GREETING;
          c->in_len = 0;
          break;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
        return fail(c, &fail_hs, "handshake");
      }
      case GREETING: {
        int r = SSL_read(c->ssl, c->in + c->in_len, (int)sizeof c->in - c->in_len - 1);
        if (r <= 0) {
          int e = SSL_get_error(c->ssl, r);
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
          return fail(c, &fail_greet, "greeting");
        }
        c->in_len += r;
        c->in[c->in_len] = 0;
        if (!strstr(c->in, "\r\n")) break;
        if (strncmp(c->in, "* OK", 4) != 0) return fail(c, &fail_greet, "greeting text");
        c->st = ECHO;
        fill_round(c);
        break;
      }
      case ECHO: {
        while (c->out_off < c->out_len) {
          int r = SSL_write(c->ssl, c->out + c->out_off, c->out_len - c->out_off);
          if (r <= 0) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
            return fail(c, &fail_echo, "echo write");
          }
          c->out_off += r;
        }
        int r = SSL_read(c->ssl, c->in + c->in_len, c->out_len - c->in_len);
        if (r <= 0) {
          int e = SSL_get_error(c->ssl, r);
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
          return fail(c, &fail_echo, "echo read");
        }
        c->in_len += r;
        if (c->in_len < c->out_len) break;
        if (memcmp(c->in, c->out, (size_t)c->out_len) != 0) { mismatches++; return fail(c, &fail_echo, "echo mismatch"); }
        compared += 2LL * c->out_len;
        if (++c->round < rounds) { fill_round(c); break; }
        c->st = SHUTDOWN;
        break;
      }
      case SHUTDOWN:
        SSL_shutdown(c->ssl);
        ok++;
        release(c);
        return;
    }
  }
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) { fprintf(stderr, "churn: %s needs a value\n", a); return 64; }
    if (!strcmp(a, "--port")) port = atoi(v);
    else if (!strcmp(a, "-c")) conc = atoi(v);
    else if (!strcmp(a, "-n")) total = atol(v);
    else if (!strcmp(a, "-t")) seconds = atof(v);
    else if (!strcmp(a, "-r")) rounds = atoi(v);
    else if (!strcmp(a, "-l")) len = atoi(v);
    else if (!strcmp(a, "--sni")) sni = v;
    else if (!strcmp(a, "--ca")) ca = v;
    else { fprintf(stderr, "churn: unknown %s\n", a); return 64; }
    i++;
  }
  if (!port || conc < 1 || len < 16 || len > 4000 || rounds < 1 || seconds > 900) { fprintf(stderr, "churn: bad arguments\n"); return 64; }
  signal(SIGPIPE, SIG_IGN);
  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  if (ca && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) { fprintf(stderr, "churn: cannot load %s\n", ca); return 1; }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
  ep = epoll_create1(EPOLL_CLOEXEC);
  conn* conns = calloc((size_t)conc, sizeof *conns);
  for (int i = 0; i < conc; i++) { conns[i].fd = -1; conns[i].st = FREE; }
  double t0 = now_s(), end = t0 + seconds, next_report = t0 + 10, conn_timeout = 10;
  struct epoll_event evs[256];
  for (;;) {
    double t = now_s();
    if (t >= end) break;
    int active = 0;
    for (int i = 0; i < conc; i++) {
      conn* c = &conns[i];
      if (c->st != FREE && t - c->t0 > conn_timeout) fail(c, &fail_timeout, "timeout");
      if (c->st == FREE && started < total) { start_conn(c); drive(c); }
      if (c->st != FREE) active++;
    }
    if (!active && started >= total) break;
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; i++) drive(evs[i].data.ptr);
    if (t >= next_report) {
      fprintf(stderr, "churn: %.0f s: %ld ok, %ld resumed\n", t - t0, ok, resumed);
      next_report += 10;
    }
  }
  for (int i = 0; i < conc; i++) if (conns[i].st != FREE) fail(&conns[i], &fail_timeout, "time bound");
  double el = now_s() - t0;
  long fails = fail_connect + fail_hs + fail_greet + fail_echo + fail_timeout;
  printf("{\"started\":%ld,\"ok\":%ld,\"resumed\":%ld,\"failures\":%ld,\"connect\":%ld,\"handshake\":%ld,\"greeting\":%ld,"
         "\"echo\":%ld,\"timeout\":%ld,\"tickets\":%ld,\"tickets_on_resumed\":%ld,\"mismatches\":%ld,\"bytes_compared\":%lld,\"elapsed_s\":%.2f,\"rate\":%.1f,\"first_error\":\"",
         started, ok, resumed, fails, fail_connect, fail_hs, fail_greet, fail_echo, fail_timeout, tickets, tickets_on_resumed, mismatches, compared, el,
         el > 0 ? ok / el : 0);
  for (char* p = first_err; *p; p++) putchar(*p == '"' || *p == '\\' ? '\'' : *p);
  printf("\"}\n");
  return 0;
}
