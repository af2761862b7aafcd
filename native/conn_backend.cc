// The backend pool: which server to try (round robin or first, skipping the
// ones recently down), the non-blocking connect, early connects during the
// handshake, and the PROXY header to the backend once connected.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "conn.h"
#include "engine.h"
#include "proxy_header.h"

namespace mf {

void Conn::choose_backend() {
  backend_ = snap_->route(listener_, sni_);
  const Backend& b = *snap_->backends[size_t(backend_)];
  first_server_ = b.round_robin ? b.next.fetch_add(1, std::memory_order_relaxed) % b.servers.size() : 0;
  attempts_ = 0;
  skipped_.assign(b.servers.size(), false);
}

// Inside the servername callback: the route is known, so the backend connect
// runs while the handshake goes on (it saves a round of the event loop per
// connection). Nothing here may close the connection: failures are left to
// connect_next() once the handshake is done.
void Conn::connect_early() {
  choose_backend();
  if (!take_early_slot()) {
    ListenerCounters::bump(w_.counters[size_t(listener_)].early_deferred);
    return;
  }
  for (size_t i = next_server(); i != kNoServer; i = next_server()) {
    Attempt a = try_server(i);
    if (a == Attempt::Pending) return;
    if (a == Attempt::NoFd) break;
  }
  give_back_early_slot();  // no connect pending: nothing held
}

// The pool's count of early connects in flight, shared by all workers.
bool Conn::take_early_slot() {
  const Backend& b = *snap_->backends[size_t(backend_)];
  if (b.early_connects.fetch_add(1, std::memory_order_relaxed) >= kEarlyConnectsPerPool) {
    b.early_connects.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  early_slot_ = true;
  return true;
}

void Conn::give_back_early_slot() {
  if (!early_slot_) return;
  early_slot_ = false;
  snap_->backends[size_t(backend_)]->early_connects.fetch_sub(1, std::memory_order_relaxed);
}

// Next server to try: the first pass skips servers that failed recently
// (marking them), the second tries only those. Each is tried at most once.
size_t Conn::next_server() {
  const Backend& b = *snap_->backends[size_t(backend_)];
  size_t n = b.servers.size();
  while (attempts_ < 2 * n) {
    size_t i = (first_server_ + attempts_) % n;
    bool second_pass = attempts_ >= n;
    attempts_++;
    if (!second_pass && b.health[i]->down(w_.now)) { skipped_[i] = true; continue; }
    if (second_pass && !skipped_[i]) continue;
    return i;
  }
  return kNoServer;
}

Conn::Attempt Conn::try_server(size_t i) {
  const Backend& b = *snap_->backends[size_t(backend_)];
  const SockAddr& addr = b.servers[i];
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    connect_error_ = b.server_names[i] + ": " + strerror(errno);
    return errno == EMFILE || errno == ENFILE ? Attempt::NoFd : Attempt::Failed;
  }
  if (addr.family() != AF_UNIX) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  server_ = i;
  t_connect_start_us_ = now_us();
  int r = ::connect(fd, addr.sa(), addr.len);
  // EINPROGRESS only: EAGAIN from a unix socket means its backlog is full, not "pending".
  if (r == 0 || errno == EINPROGRESS) {
    bfd_ = fd;
    w_.watch(fd, this, true);
    b_writable_ = r == 0;
    return Attempt::Pending;
  }
  connect_error_ = b.server_names[i] + ": " + strerror(errno);
  mark_server_down(i);
  ::close(fd);
  return Attempt::Failed;
}

// After the handshake, or after a server failed: wait for the connect under
// way, or start one with the next server; none left is the protocol's goodbye.
void Conn::connect_next() {
  if (backend_ < 0) choose_backend();
  const Backend& b = *snap_->backends[size_t(backend_)];
  if (bfd_ < 0) {
    for (size_t i = next_server(); i != kNoServer; i = next_server()) {
      Attempt a = try_server(i);
      if (a == Attempt::Pending) break;
      if (a == Attempt::NoFd) {
        // Out of descriptors is our trouble, not the backend's: say so, and do
        // not mark the server down or count a backend failure.
        say_goodbye(mf::backend_unavailable(policy().proto));
        return close(CloseReason::FdExhausted, "no file descriptor for the backend connection: " + connect_error_);
      }
    }
  }
  if (bfd_ >= 0) {
    state_ = State::Connecting;
    set_deadline(w_.now + snap_->timeouts.connect_ms);
    return;
  }
  backend_unavailable("no server of pool " + b.name + " answered" + (connect_error_.empty() ? "" : " (last: " + connect_error_ + ")"));
}

void Conn::step_connecting() {
  if (!b_writable_) return;
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(bfd_, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err == 0) return connected();
  server_failed(strerror(err));
}

// The connect to server_ failed (<why>) or timed out: pass it over for a while, try the next.
void Conn::server_failed(const std::string& why) {
  const Backend& b = *snap_->backends[size_t(backend_)];
  connect_error_ = b.server_names[server_] + ": " + why;
  mark_server_down(server_);
  drop_backend();
  connect_next();
}

// Passed over for ServerHealth::kBackoffMs, by every worker and under later snapshots too.
void Conn::mark_server_down(size_t i) { snap_->backends[size_t(backend_)]->health[i]->mark_down(w_.now); }

void Conn::drop_backend() {
  if (bfd_ >= 0) {
    w_.unwatch(bfd_);
    ::close(bfd_);
  }
  bfd_ = -1;
  b_readable_ = b_writable_ = b_hup_ = false;
}

void Conn::connected() {
  t_connected_us_ = now_us();
  SockAddr local;
  local.len = sizeof local.ss;
  if (getsockname(bfd_, local.sa(), &local.len) == 0) server_local_ = format_addr(local);
  const Backend& b = *snap_->backends[size_t(backend_)];
  if (b.proxy_header != ProxyHeader::Off) {
    SockAddr reached = proxied_local_;
    if (reached.family() == AF_UNSPEC) {
      reached.len = sizeof reached.ss;
      getsockname(cfd_, reached.sa(), &reached.len);
    }
    // connected() runs after the handshake (an early connect waits for it): the TLS facts are final.
    const char* version = tls_facts_.version;
    const char* cipher = tls_facts_.cipher;
    // string_views of sni_ itself: a ternary with a std::string branch would make a temporary.
    std::string_view sni = sni_ == "(invalid)" ? std::string_view() : std::string_view(sni_);
    ProxyTls tls{version ? version : "", cipher ? cipher : "", sni};
    std::string h = proxy_header(b.proxy_header, peer_, reached, &tls);
    c2b_.append(h.data(), uint32_t(h.size()), w_.pool);
  }
  switch (policy().proto) {
    case Proto::Imap:
    case Proto::Pop3: greeting_ = Greeting::Swallow; break;
    case Proto::ManageSieve: greeting_ = Greeting::StripStarttls; break;
    default: greeting_ = Greeting::None;
  }
  cap_window_ = is_starttls(policy().proto);
  b_readable_ = true;
  state_ = State::Relaying;
  last_activity_ms_ = w_.now;
  set_deadline(0);
}

void Conn::backend_unavailable(const std::string& why) {
  ListenerCounters::bump(w_.counters[size_t(listener_)].backend_failures);
  drop_backend();
  say_goodbye(mf::backend_unavailable(policy().proto));
  close(CloseReason::BackendUnavailable, why);
}

// After STARTTLS the backend greets a client that already had our greeting.

}  // namespace mf
