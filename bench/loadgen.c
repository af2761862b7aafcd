// TLS load generator for the mailfront benchmarks (OpenSSL client, epoll, one thread).
//
//   loadgen --port P --mode full|resumed|bulk|rtt|idle [options]
//
//   -c N              concurrent connections (full/resumed/bulk/idle); rtt uses 1
//   -n N              bound: connections (full/resumed/idle) or round trips (rtt)
//   -t S              bound: seconds (bulk: how long each connection writes)
//   --rate R          start at most R new connections per second (steady arrival, e.g. reload test)
//   --names N         SNI rotates over N names made from --sni-fmt (default 100, "mail.d%02d.bench.test")
//   --ca FILE         also verify the chain against this root (SSL_get_verify_result); the
//                     leaf's subjectAltName is ALWAYS checked against the SNI sent (X509_check_host)
//   --sync            after the warm phase (resumed: one full handshake per name to get tickets;
//                     idle: all N connections established), print {"event":"ready",...} and wait
//                     for a line on stdin before the measured phase (idle: before closing all)
//   --hold S          idle without --sync: how long to hold the connections
//   --reuse-tickets   resumed: keep using a name's newest ticket until a newer one arrives (default: each
//                     ticket once, as RFC 8446 C.4 asks of clients)
//   --ciphersuites S  TLS 1.3 suites the client offers, OpenSSL list syntax (default
//                     TLS_AES_256_GCM_SHA384, so every server ends on the same suite; "default":
//                     OpenSSL's client default). Every handshake must negotiate one of them.
//   --groups LIST     key-exchange groups the client offers, OpenSSL list syntax (default "X25519");
//                     e.g. X25519MLKEM768, which needs OpenSSL 3.5: Debian's libssl 3.0 has no ML-KEM,
//                     so run the build against Node 24's OpenSSL (work/bin/loadgen-node24.node, see
//                     bench/loadgen-node.mjs)
//   --expect-group G  the group every handshake must negotiate (default: any group of --groups)
//   --conn-timeout S  per-connection bound for connect+handshake+greeting (default 10)
//   --times           also print "done_t" and "fail_t": CLOCK_MONOTONIC seconds of every completed and
//                     failed connection (the gap between completions shows a pause in accepting)
//
// Every connection: TCP connect, TLS 1.3 handshake (X25519 only unless --groups), certificate
// check, negotiated-group and suite checks, read the backend's greeting line through the proxy. full/resumed: close_notify and close. bulk: write
// 16 KiB records until the time bound. rtt: `aNNN NOOP\r\n` echoed, latency per round trip.
// A presented certificate that does not match the SNI, a key exchange on a group other than the
// requested one, or a suite that was not offered, is a failure, never a figure.
// Prints one JSON object on stdout at the end.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { M_FULL, M_RESUMED, M_BULK, M_RTT, M_IDLE };
enum state { S_FREE, S_CONNECT, S_HS, S_GREET, S_BULK, S_RTT, S_IDLE };
enum fail { F_CONNECT, F_HANDSHAKE, F_VERIFY, F_GROUP, F_CIPHER, F_GREETING, F_TIMEOUT, F_DROPPED, F_IO, F_N };
static const char* fail_names[F_N] = {"connect", "handshake", "verify", "group", "cipher", "greeting", "timeout", "dropped", "io"};

typedef struct conn {
  int fd;
  SSL* ssl;
  enum state st;
  int name;
  unsigned events;
  double t0;
  char line[1024];
  int linelen;
  int rtt_seq;
  double rtt_t0;
  int next_free;
} conn;

static struct {
  int port, mode, conc, names, sync, verify_chain, reuse_tickets, times;
  long count;
  double seconds, rate, hold, conn_timeout;
  const char* sni_fmt;
  const char* ca;
  const char* ciphersuites;
  const char* groups;
  const char* expect_group;
} opt = {.port = 0, .mode = M_FULL, .conc = 32, .names = 100, .count = 1000000, .seconds = 10,
         .rate = 0, .hold = 30, .conn_timeout = 10, .sni_fmt = "mail.d%02d.bench.test",
         .groups = "X25519", .ciphersuites = "TLS_AES_256_GCM_SHA384"};

static SSL_CTX* ctx;
static int ep;
static conn* conns;
static int nconns, free_head = -1;
static char** names;
static SSL_SESSION** sessions;  // latest ticket per name, taken (owned) by the next connection to that name
static unsigned char** session_der;  // --reuse-tickets: the newest ticket per name, serialized
static int* session_der_len;
static struct sockaddr_in target;
// Groups a handshake may negotiate: the names of --expect-group, or else of --groups, compared
// with SSL_group_to_name() of the negotiated group (case-insensitive; P-256/384/521 = secpNNNr1).
#define MAX_GROUPS 32
static char allowed[MAX_GROUPS][64];
static int nallowed, allow_any;
// Suites a handshake may negotiate: the names of --ciphersuites (none listed: any, for "default").
static char suites[16][64];
static int nsuites;

// Per-phase statistics.
static struct {
  long started, ok, resumed, fails[F_N], active, idle_ready;
  long long bytes;
  double *lat, *hs;  // rtt latencies, connection (connect->greeting) times, in µs
  long nlat, nhs, caplat, caphs;
  double *done_t, *fail_t;  // --times: monotonic seconds of each completion / failure
  long ndone, nfail, capdone, capfail;
  char first_err[F_N][200];
  char version[32], cipher[64], group[32];
  unsigned mismatch_examples;
  int gid[8];      // negotiated groups seen, and how many handshakes each
  long gcount[8];
} st;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void push(double** a, long* n, long* cap, double v) {
  if (*n == *cap) {
    *cap = *cap ? *cap * 2 : 4096;
    if (*cap > 4000000) { *cap /= 2; return; }
    *a = realloc(*a, *cap * sizeof **a);
  }
  (*a)[(*n)++] = v;
}

static void failure(conn* c, enum fail f, const char* why) {
  st.fails[f]++;
  if (opt.times) push(&st.fail_t, &st.nfail, &st.capfail, now_s());
  if (!st.first_err[f][0]) {
    unsigned long e = ERR_peek_error();
    char ebuf[120] = "";
    if (e) ERR_error_string_n(e, ebuf, sizeof ebuf);
    snprintf(st.first_err[f], sizeof st.first_err[f], "%s%s%s (sni %s)", why, ebuf[0] ? ": " : "", ebuf,
             c ? names[c->name] : "-");
  }
  ERR_clear_error();
}

static int new_session_cb(SSL* ssl, SSL_SESSION* sess) {
  conn* c = SSL_get_app_data(ssl);
  if (!c || !SSL_SESSION_is_resumable(sess)) return 0;
  if (opt.reuse_tickets) {
    // OpenSSL's client will not offer an SSL_SESSION object twice in TLS 1.3; a serialized copy
    // can be offered again (like `openssl s_client -sess_in`).
    int len = i2d_SSL_SESSION(sess, NULL);
    if (len <= 0) return 0;
    free(session_der[c->name]);
    session_der[c->name] = malloc(len);
    unsigned char* p = session_der[c->name];
    session_der_len[c->name] = i2d_SSL_SESSION(sess, &p);
    return 0;
  }
  if (sessions[c->name]) SSL_SESSION_free(sessions[c->name]);
  sessions[c->name] = sess;
  return 1;  // we keep the reference
}

static void set_events(conn* c, unsigned ev) {
  if (c->events == ev) return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  epoll_ctl(ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e);
  c->events = ev;
}

static void release(conn* c, int polite) {
  if (c->ssl) {
    if (polite) SSL_shutdown(c->ssl);  // one close_notify, no wait for the peer's
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0) close(c->fd);  // epoll forgets it
  c->fd = -1;
  c->st = S_FREE;
  c->events = 0;
  c->next_free = free_head;
  free_head = (int)(c - conns);
  st.active--;
}

static long name_counter;

static int start_conn(int mode) {
  if (free_head < 0) return -1;
  conn* c = &conns[free_head];
  free_head = c->next_free;
  memset(c, 0, sizeof *c);
  c->fd = -1;
  st.active++;
  st.started++;
  c->name = (int)(name_counter++ % opt.names);
  c->t0 = now_s();
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) { failure(c, F_CONNECT, strerror(errno)); release(c, 0); return 0; }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->ssl = SSL_new(ctx);
  SSL_set_app_data(c->ssl, c);
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_tlsext_host_name(c->ssl, names[c->name]);
  if (opt.verify_chain) SSL_set1_host(c->ssl, names[c->name]);
  if (mode == M_RESUMED && opt.reuse_tickets && session_der[c->name]) {
    const unsigned char* p = session_der[c->name];
    SSL_SESSION* sess = d2i_SSL_SESSION(NULL, &p, session_der_len[c->name]);
    if (sess) {
      SSL_set_session(c->ssl, sess);
      SSL_SESSION_free(sess);
    }
  } else if (mode == M_RESUMED && sessions[c->name]) {
    SSL_set_session(c->ssl, sessions[c->name]);
    SSL_SESSION_free(sessions[c->name]);  // the SSL holds its own reference; a ticket is used once
    sessions[c->name] = NULL;
  }
  int r = connect(c->fd, (struct sockaddr*)&target, sizeof target);
  if (r < 0 && errno != EINPROGRESS) { failure(c, F_CONNECT, strerror(errno)); release(c, 0); return 0; }
  c->st = S_CONNECT;
  set_events(c, EPOLLOUT);
  return 0;
}

// Interest from an SSL result; returns 1 when the error is fatal.
static int want(conn* c, int r) {
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ) { set_events(c, EPOLLIN); return 0; }
  if (e == SSL_ERROR_WANT_WRITE) { set_events(c, EPOLLOUT); return 0; }
  return 1;
}

static const char* group_name(SSL* ssl, int g) {
  const char* n = g ? SSL_group_to_name(ssl, g) : NULL;
  return n ? n : g ? "unknown" : "none";
}

static int group_allowed(SSL* ssl, int g) {
  const char* n = g ? SSL_group_to_name(ssl, g) : NULL;
  if (!n) return 0;
  if (allow_any) return 1;
  for (int i = 0; i < nallowed; i++)
    if (!strcasecmp(allowed[i], n)) return 1;
  return 0;
}

// "X25519MLKEM768:X25519", also OpenSSL 3.5's "*X25519MLKEM768/X25519:?P-256" syntax: the names,
// without '*'/'?' prefixes; '-' entries skipped; DEFAULT allows any group (the library still
// refuses a group it did not offer).
static int parse_groups(const char* list) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", list);
  nallowed = 0;
  for (char *save, *t = strtok_r(buf, ":/", &save); t; t = strtok_r(NULL, ":/", &save)) {
    while (*t == '*' || *t == '?') t++;
    if (!*t || *t == '-') continue;
    if (!strcasecmp(t, "DEFAULT")) { allow_any = 1; continue; }
    if (nallowed == MAX_GROUPS) return -1;
    const char* n = !strcasecmp(t, "P-256") ? "secp256r1" : !strcasecmp(t, "P-384") ? "secp384r1"
                  : !strcasecmp(t, "P-521") ? "secp521r1" : t;
    snprintf(allowed[nallowed++], sizeof allowed[0], "%s", n);
  }
  return nallowed || allow_any ? 0 : -1;
}

static int parse_suites(const char* list) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", list);
  nsuites = 0;
  for (char *save, *t = strtok_r(buf, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
    if (nsuites == 16) return -1;
    snprintf(suites[nsuites++], sizeof suites[0], "%s", t);
  }
  return nsuites ? 0 : -1;
}

static int suite_allowed(const char* name) {
  if (!nsuites) return 1;
  for (int i = 0; i < nsuites; i++)
    if (!strcmp(suites[i], name)) return 1;
  return 0;
}

static void count_group(int g) {
  for (int i = 0; i < 8; i++) {
    if (st.gid[i] == g) { st.gcount[i]++; return; }
    if (!st.gid[i]) { st.gid[i] = g; st.gcount[i] = 1; return; }
  }
}

static double bulk_deadline;
static char bulk_buf[16384];

static void send_rtt(conn* c) {
  char line[32];
  int len = snprintf(line, sizeof line, "a%03d NOOP\r\n", c->rtt_seq % 1000);
  c->rtt_t0 = now_s();
  int r = SSL_write(c->ssl, line, len);  // a tiny record: fits the socket buffer
  if (r <= 0) { failure(c, F_IO, "rtt write"); release(c, 0); return; }
  c->linelen = 0;
  set_events(c, EPOLLIN);
}

static void drive(conn* c, int mode) {
  for (;;) {
    switch (c->st) {
      case S_CONNECT: {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) { failure(c, F_CONNECT, strerror(err)); release(c, 0); return; }
        c->st = S_HS;
        continue;
      }
      case S_HS: {
        int r = SSL_connect(c->ssl);
        if (r != 1) {
          if (want(c, r)) { failure(c, F_HANDSHAKE, "handshake"); release(c, 0); }
          return;
        }
        X509* cert = SSL_get0_peer_certificate(c->ssl);
        if (!cert || X509_check_host(cert, names[c->name], 0, 0, NULL) != 1) {
          char subj[128] = "none";
          if (cert) X509_NAME_oneline(X509_get_subject_name(cert), subj, sizeof subj);
          char why[200];
          snprintf(why, sizeof why, "certificate %s does not match", subj);
          failure(c, F_VERIFY, why);
          release(c, 0);
          return;
        }
        if (opt.verify_chain && SSL_get_verify_result(c->ssl) != X509_V_OK) {
          failure(c, F_VERIFY, X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
          release(c, 0);
          return;
        }
        int g = SSL_get_negotiated_group(c->ssl);
        if (!group_allowed(c->ssl, g)) {
          char why[200];
          snprintf(why, sizeof why, "negotiated group %s, not %s", group_name(c->ssl, g),
                   opt.expect_group ? opt.expect_group : opt.groups);
          failure(c, F_GROUP, why);
          release(c, 0);
          return;
        }
        const char* suite = SSL_get_cipher_name(c->ssl);
        if (!suite_allowed(suite)) {
          char why[200];
          snprintf(why, sizeof why, "negotiated suite %s, not %s", suite, opt.ciphersuites);
          failure(c, F_CIPHER, why);
          release(c, 0);
          return;
        }
        count_group(g);
        if (!st.version[0]) {
          snprintf(st.version, sizeof st.version, "%s", SSL_get_version(c->ssl));
          snprintf(st.cipher, sizeof st.cipher, "%s", SSL_get_cipher_name(c->ssl));
          snprintf(st.group, sizeof st.group, "%s", group_name(c->ssl, g));
        }
        if (SSL_session_reused(c->ssl)) st.resumed++;
        c->st = S_GREET;
        c->linelen = 0;
        continue;
      }
      case S_GREET:
      case S_RTT: {
        int r = SSL_read(c->ssl, c->line + c->linelen, (int)sizeof c->line - 1 - c->linelen);
        if (r <= 0) {
          if (want(c, r)) {
            failure(c, c->st == S_GREET ? F_GREETING : F_IO, c->st == S_GREET ? "no greeting" : "rtt read");
            release(c, 0);
          }
          return;
        }
        c->linelen += r;
        c->line[c->linelen] = 0;
        char* nl = memchr(c->line, '\n', c->linelen);
        if (!nl) {
          if (c->linelen >= (int)sizeof c->line - 1) { failure(c, F_GREETING, "line too long"); release(c, 0); return; }
          continue;
        }
        if (c->st == S_RTT) {
          char expect[16];
          snprintf(expect, sizeof expect, "a%03d NOOP", c->rtt_seq % 1000);
          if (strncmp(c->line, expect, 9) != 0) { failure(c, F_IO, "rtt echo mismatch"); release(c, 0); return; }
          push(&st.lat, &st.nlat, &st.caplat, (now_s() - c->rtt_t0) * 1e6);
          st.ok++;
          c->rtt_seq++;
          if (st.ok >= opt.count || now_s() > bulk_deadline) { release(c, 1); return; }
          send_rtt(c);
          return;
        }
        // Greeting line received through the proxy.
        push(&st.hs, &st.nhs, &st.caphs, (now_s() - c->t0) * 1e6);
        if (opt.times) push(&st.done_t, &st.ndone, &st.capdone, now_s());
        if (mode == M_FULL || mode == M_RESUMED) {
          st.ok++;
          release(c, 1);
          return;
        }
        if (mode == M_IDLE) {
          st.ok++;
          st.idle_ready++;
          c->st = S_IDLE;
          set_events(c, EPOLLIN | EPOLLRDHUP);
          return;
        }
        if (mode == M_RTT) { c->st = S_RTT; send_rtt(c); return; }
        st.ok++;
        c->st = S_BULK;
        continue;
      }
      case S_BULK: {
        for (int i = 0; i < 64; i++) {
          int r = SSL_write(c->ssl, bulk_buf, sizeof bulk_buf);
          if (r <= 0) {
            if (want(c, r)) { failure(c, F_IO, "bulk write"); release(c, 0); }
            return;
          }
          st.bytes += r;
        }
        if (now_s() >= bulk_deadline) { release(c, 1); return; }
        set_events(c, EPOLLOUT);
        continue;
      }
      case S_IDLE: {
        char b[256];
        int r = SSL_read(c->ssl, b, sizeof b);
        if (r > 0) continue;  // stray data (e.g. late tickets) is fine
        if (want(c, r)) { failure(c, F_DROPPED, "idle connection closed by peer"); release(c, 0); }
        return;
      }
      case S_FREE:
        return;
    }
  }
}

// One phase: keeps `conc` connections going until `count` are started (or the time bound),
// then waits for the in-flight ones (bounded). Idle mode returns with connections held.
static void engine(int mode, long count, double seconds, int conc) {
  double t0 = now_s(), deadline = t0 + seconds, next_start = t0, last_sweep = t0;
  bulk_deadline = deadline;
  long started0 = st.started;
  struct epoll_event evs[512];
  for (;;) {
    double now = now_s();
    int may_start = now < deadline && st.started - started0 < count;
    while (may_start && st.active - (mode == M_IDLE ? st.idle_ready : 0) < conc && st.started - started0 < count) {
      if (opt.rate > 0) {
        if (now < next_start) break;
        next_start += 1.0 / opt.rate;
        if (next_start < now - 1) next_start = now;  // do not burst after a stall
      }
      start_conn(mode);
    }
    if (mode == M_IDLE && st.started - started0 >= count && st.active == st.idle_ready) break;
    if (mode == M_IDLE && st.active == st.idle_ready && !may_start) break;
    if (mode != M_IDLE && st.active == 0 && (!may_start)) break;
    if (now > deadline + (mode == M_IDLE ? opt.conn_timeout : 3.0) && mode != M_IDLE) break;
    if (mode == M_IDLE && now > deadline + opt.conn_timeout) break;
    int timeout = 100;
    if (opt.rate > 0 && may_start) {
      int ms = (int)((next_start - now) * 1000);
      timeout = ms < 0 ? 0 : ms < timeout ? ms : timeout;
    }
    int n = epoll_wait(ep, evs, 512, timeout);
    for (int i = 0; i < n; i++) drive(evs[i].data.ptr, mode);
    now = now_s();
    if (now - last_sweep > 0.25) {
      last_sweep = now;
      for (int i = 0; i < nconns; i++) {
        conn* c = &conns[i];
        if (c->st != S_FREE && c->st != S_IDLE && c->st != S_BULK && c->st != S_RTT && now - c->t0 > opt.conn_timeout) {
          failure(c, F_TIMEOUT, "connection bound exceeded");
          release(c, 0);
        }
      }
    }
  }
  // Whatever is still in flight at the bound is counted as timed out (not idle holders).
  for (int i = 0; i < nconns; i++)
    if (conns[i].st != S_FREE && conns[i].st != S_IDLE) { failure(&conns[i], F_TIMEOUT, "unfinished at the time bound"); release(&conns[i], 0); }
}

static int cmpd(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static double pct(double* a, long n, double p) {
  if (!n) return 0;
  long i = (long)(p * (n - 1) + 0.5);
  return a[i];
}

static void reset_stats(void) {
  free(st.lat);
  free(st.hs);
  free(st.done_t);
  free(st.fail_t);
  long active = st.active, idle = st.idle_ready;
  memset(&st, 0, sizeof st);
  st.active = active;
  st.idle_ready = idle;
}

static SSL* gssl;  // an SSL of ctx, for SSL_group_to_name

static void print_json(const char* event, double elapsed) {
  long fails = 0;
  for (int f = 0; f < F_N; f++) fails += st.fails[f];
  qsort(st.lat, st.nlat, sizeof(double), cmpd);
  qsort(st.hs, st.nhs, sizeof(double), cmpd);
  static const char* mn[] = {"full", "resumed", "bulk", "rtt", "idle"};
  printf("{\"event\":\"%s\",\"mode\":\"%s\",\"concurrency\":%d,\"names\":%d,\"started\":%ld,\"ok\":%ld,\"resumed\":%ld,"
         "\"failures\":%ld,\"failure_kinds\":{",
         event, mn[opt.mode], opt.conc, opt.names, st.started, st.ok, st.resumed, fails);
  int first = 1;
  for (int f = 0; f < F_N; f++)
    if (st.fails[f]) { printf("%s\"%s\":%ld", first ? "" : ",", fail_names[f], st.fails[f]); first = 0; }
  printf("},\"first_errors\":{");
  first = 1;
  for (int f = 0; f < F_N; f++)
    if (st.first_err[f][0]) {
      printf("%s\"%s\":\"", first ? "" : ",", fail_names[f]);
      for (char* p = st.first_err[f]; *p; p++) putchar(*p == '"' || *p == '\\' ? '\'' : *p);
      putchar('"');
      first = 0;
    }
  printf("},\"elapsed_s\":%.4f,\"rate\":%.1f,\"bytes\":%lld,\"mb_per_s\":%.1f,", elapsed, elapsed > 0 ? st.ok / elapsed : 0,
         st.bytes, elapsed > 0 ? st.bytes / elapsed / 1e6 : 0);
  printf("\"conn_us\":{\"p50\":%.0f,\"p99\":%.0f},", pct(st.hs, st.nhs, 0.5), pct(st.hs, st.nhs, 0.99));
  printf("\"rtt_us\":{\"n\":%ld,\"p50\":%.1f,\"p99\":%.1f},", st.nlat, pct(st.lat, st.nlat, 0.5), pct(st.lat, st.nlat, 0.99));
  if (opt.times) {
    printf("\"done_t\":[");
    for (long i = 0; i < st.ndone; i++) printf("%s%.4f", i ? "," : "", st.done_t[i]);
    printf("],\"fail_t\":[");
    for (long i = 0; i < st.nfail; i++) printf("%s%.4f", i ? "," : "", st.fail_t[i]);
    printf("],");
  }
  printf("\"ciphersuites_offered\":\"%s\",", opt.ciphersuites);
  printf("\"groups_offered\":\"%s\",\"groups_negotiated\":{", opt.groups);
  for (int i = 0; i < 8 && st.gid[i]; i++) printf("%s\"%s\":%ld", i ? "," : "", group_name(gssl, st.gid[i]), st.gcount[i]);
  printf("},\"openssl\":\"%s\",", OpenSSL_version(OPENSSL_VERSION));
  printf("\"version\":\"%s\",\"cipher\":\"%s\",\"group\":\"%s\",\"verify_chain\":%s}\n", st.version, st.cipher, st.group,
         opt.verify_chain ? "true" : "false");
  fflush(stdout);
}

static void usage(void) {
  fprintf(stderr, "usage: loadgen --port P --mode full|resumed|bulk|rtt|idle [-c N] [-n N] [-t S] [--rate R] [--names N]\n"
                  "       [--sni-fmt FMT] [--ca FILE] [--sync] [--hold S] [--reuse-tickets] [--ciphersuites S] [--conn-timeout S] [--times]\n"
                  "       [--groups LIST] [--expect-group G]\n");
  exit(64);
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(s) (!strcmp(a, s) && v && ++i)
    if (ARG("--port")) opt.port = atoi(v);
    else if (ARG("--mode")) {
      if (!strcmp(v, "full")) opt.mode = M_FULL;
      else if (!strcmp(v, "resumed")) opt.mode = M_RESUMED;
      else if (!strcmp(v, "bulk")) opt.mode = M_BULK;
      else if (!strcmp(v, "rtt")) opt.mode = M_RTT;
      else if (!strcmp(v, "idle")) opt.mode = M_IDLE;
      else usage();
    } else if (ARG("-c")) opt.conc = atoi(v);
    else if (ARG("-n")) opt.count = atol(v);
    else if (ARG("-t")) opt.seconds = atof(v);
    else if (ARG("--rate")) opt.rate = atof(v);
    else if (ARG("--names")) opt.names = atoi(v);
    else if (ARG("--sni-fmt")) opt.sni_fmt = v;
    else if (ARG("--ca")) { opt.ca = v; opt.verify_chain = 1; }
    else if (ARG("--hold")) opt.hold = atof(v);
    else if (ARG("--ciphersuites")) opt.ciphersuites = v;
    else if (ARG("--groups")) opt.groups = v;
    else if (ARG("--expect-group")) opt.expect_group = v;
    else if (ARG("--conn-timeout")) opt.conn_timeout = atof(v);
    else if (!strcmp(a, "--sync")) opt.sync = 1;
    else if (!strcmp(a, "--reuse-tickets")) opt.reuse_tickets = 1;
    else if (!strcmp(a, "--times")) opt.times = 1;
    else usage();
#undef ARG
  }
  if (!opt.port || opt.conc < 1 || opt.names < 1 || opt.count < 1 || opt.seconds <= 0) usage();
  if (opt.mode == M_RTT) opt.conc = 1;
  if (opt.seconds > 600) opt.seconds = 600;  // hard bound
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }

  names = calloc(opt.names, sizeof *names);
  sessions = calloc(opt.names, sizeof *sessions);
  session_der = calloc(opt.names, sizeof *session_der);
  session_der_len = calloc(opt.names, sizeof *session_der_len);
  for (int i = 0; i < opt.names; i++) {
    names[i] = malloc(256);
    snprintf(names[i], 256, opt.sni_fmt, i);
  }
  target.sin_family = AF_INET;
  target.sin_port = htons(opt.port);
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_set1_groups_list(ctx, opt.groups) != 1) {
    fprintf(stderr, "loadgen: %s: unknown group(s) in --groups %s\n", OpenSSL_version(OPENSSL_VERSION), opt.groups);
    return 1;
  }
  gssl = SSL_new(ctx);
  if (opt.expect_group && (strpbrk(opt.expect_group, ":/*?") || opt.expect_group[0] == '-' || parse_groups(opt.expect_group) != 0 || allow_any)) {
    fprintf(stderr, "loadgen: --expect-group %s: one group name\n", opt.expect_group);
    return 1;
  }
  if (!opt.expect_group && parse_groups(opt.groups) != 0) { fprintf(stderr, "loadgen: --groups %s: no group names\n", opt.groups); return 1; }
  if (!strcasecmp(opt.ciphersuites, "default")) nsuites = 0;  // OpenSSL's client default, any of it
  else if (parse_suites(opt.ciphersuites) != 0 || SSL_CTX_set_ciphersuites(ctx, opt.ciphersuites) != 1) {
    fprintf(stderr, "loadgen: %s: bad --ciphersuites %s\n", OpenSSL_version(OPENSSL_VERSION), opt.ciphersuites);
    return 1;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);  // results are checked after the handshake and counted
  if (opt.ca && SSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != 1) { fprintf(stderr, "loadgen: cannot load %s\n", opt.ca); return 1; }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  memset(bulk_buf, 'x', sizeof bulk_buf);

  nconns = opt.mode == M_IDLE ? (int)opt.count : opt.conc;
  if (opt.mode == M_RESUMED && nconns < opt.conc) nconns = opt.conc;
  conns = calloc(nconns, sizeof *conns);
  for (int i = nconns - 1; i >= 0; i--) { conns[i].fd = -1; conns[i].next_free = free_head; free_head = i; }
  ep = epoll_create1(EPOLL_CLOEXEC);

  // Warm phase.
  if (opt.mode == M_RESUMED) {
    engine(M_FULL, opt.names, 30, opt.conc < opt.names ? opt.conc : opt.names);
    long got = 0;
    for (int i = 0; i < opt.names; i++) got += sessions[i] != NULL || session_der[i] != NULL;
    if (got < opt.names) fprintf(stderr, "loadgen: only %ld of %d names gave a ticket in the warm phase\n", got, opt.names);
    print_json("warm", 0);
    reset_stats();
    name_counter = 0;
  }
  double t0 = now_s();
  if (opt.mode == M_IDLE) {
    engine(M_IDLE, opt.count, opt.seconds, opt.conc);
    print_json("ready", now_s() - t0);
    if (opt.sync) {
      char line[64];
      if (!fgets(line, sizeof line, stdin)) {}
    } else {
      double end = now_s() + opt.hold;
      struct epoll_event evs[64];
      while (now_s() < end) epoll_wait(ep, evs, 64, 200);
    }
    long dropped = 0;
    // Connections the proxy closed while idle show up as readable; count them before closing.
    struct epoll_event evs[512];
    int n;
    while ((n = epoll_wait(ep, evs, 512, 0)) > 0)
      for (int i = 0; i < n; i++) drive(evs[i].data.ptr, M_IDLE);
    dropped = st.fails[F_DROPPED];
    for (int i = 0; i < nconns; i++)
      if (conns[i].st != S_FREE) release(&conns[i], 0);
    (void)dropped;
    print_json("done", now_s() - t0);
    return 0;
  }
  if (opt.sync) {
    printf("{\"event\":\"ready\"}\n");
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) {}
  }
  t0 = now_s();
  engine(opt.mode, opt.mode == M_RTT ? 1 : opt.mode == M_BULK ? opt.conc : opt.count, opt.seconds, opt.conc);
  double elapsed = now_s() - t0;
  if (opt.mode == M_RTT) opt.count = st.nlat;
  print_json("done", elapsed);
  return 0;
}
