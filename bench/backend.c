// Plaintext backend for the benchmarks: epoll, one thread.
// On accept it writes a greeting line, then either echoes every byte back
// (default) or reads and discards (--discard). Bounded by --max-seconds.
//
//   backend --port 1143 [--discard] [--greeting "* OK bench\r\n"] [--max-seconds 3600]
//
// Prints {"event":"listening","port":N} on stdout once bound (port 0 = any free port).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  int port = 0, discard = 0;
  double max_seconds = 3600;
  const char* greeting = "* OK mailfront bench backend ready\r\n";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--discard")) discard = 1;
    else if (!strcmp(argv[i], "--greeting") && i + 1 < argc) greeting = argv[++i];
    else if (!strcmp(argv[i], "--max-seconds") && i + 1 < argc) max_seconds = atof(argv[++i]);
    else { fprintf(stderr, "usage: backend --port N [--discard] [--greeting S] [--max-seconds S]\n"); return 64; }
  }
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
  size_t glen = strlen(greeting);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr*)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0) { perror("backend: bind/listen"); return 1; }
  socklen_t sl = sizeof sa;
  getsockname(lfd, (struct sockaddr*)&sa, &sl);
  printf("{\"event\":\"listening\",\"port\":%d,\"mode\":\"%s\"}\n", ntohs(sa.sin_port), discard ? "discard" : "echo");
  fflush(stdout);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  static char buf[256 * 1024];
  struct epoll_event evs[256];
  double deadline = now_s() + max_seconds;
  unsigned long accepted = 0;
  while (now_s() < deadline) {
    int n = epoll_wait(ep, evs, 256, 1000);
    if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          accepted++;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          if (write(c, greeting, glen) < 0) { close(c); continue; }
          struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) {
          if (!discard) {
            // Echo: small lines in practice; a short write on a full socket drops the rest (benchmark only).
            ssize_t off = 0;
            while (off < r) {
              ssize_t w = write(fd, buf + off, r - off);
              if (w <= 0) break;
              off += w;
            }
          }
          if ((size_t)r < sizeof buf) break;
          continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
        close(fd);  // EOF or error (epoll forgets a closed fd)
        break;
      }
    }
  }
  fprintf(stderr, "backend: %lu connections, time bound reached\n", accepted);
  return 0;
}
