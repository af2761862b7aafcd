#include "conn.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "admission.h"
#include "client_net.h"
#include "engine.h"
#include "greeting.h"
#include "proxy_header.h"
#include "proxy_parse.h"
#include "sni.h"
#include "tls.h"

namespace mf {

namespace {

// Pre-TLS replies a client leaves unread: no reading beyond the first bound, and
// a close beyond the second (one 4 KiB read of pipelined CAPABILITY commands can
// ask for ~30 times its size in replies).
constexpr size_t kMaxPlainOut = 8 * 1024;
constexpr size_t kMaxPlainOutHard = 16 * 1024;
// How long a client may go on sending after the backend closed (HAProxy's client-fin).
constexpr int64_t kFinLingerMs = 10000;
// A backend greeting must fit one relay buffer.
constexpr uint32_t kMaxGreeting = kChunk;
// The STARTTLS filter of capability lists runs before authentication only: it
// stops once this many bytes went either way (a login takes far fewer), or a
// backend line grows longer than the second bound. Bytes after authentication
// are never parsed (COMPRESS=DEFLATE may follow) and cost nothing.
constexpr uint32_t kCapWindowBytes = 16 * 1024;
constexpr uint32_t kMaxCapLine = 4 * 1024;
// Bytes of a client line looked at for the command (the tag and the command word).
constexpr size_t kClientLineStart = 64;

double ms_between(int64_t from_us, int64_t to_us) { return from_us && to_us >= from_us ? double(to_us - from_us) / 1000.0 : 0; }

}  // namespace

Conn::Conn(Worker& w, int listener, int fd, const SockAddr& peer, std::shared_ptr<const Snapshot> snap)
    : w_(w), snap_(std::move(snap)), listener_(listener), cfd_(fd), state_(State::Handshake), peer_(peer),
      t_accept_us_(now_us()) {
  client_key_ = client_network(peer_, snap_->limits.ipv6_prefix);
  exempt_ = !snap_->limits.exempt.empty() && cidr_match(snap_->limits.exempt, peer_);
  // Behind a balancer the per-client slot is taken once the header names the
  // client (step_proxy_header); otherwise accept_from() took it for the peer.
  client_held_ = !policy().accept_proxy && !exempt_;
  timer.owner = this;
}

Conn::~Conn() {
  if (ssl_) SSL_free(ssl_);
  if (cfd_ >= 0) ::close(cfd_);
  if (bfd_ >= 0) ::close(bfd_);
  c2b_.release(w_.pool);
  b2c_.release(w_.pool);
}

void Conn::start() {
  int one = 1;
  setsockopt(cfd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  w_.watch(cfd_, this, false);
  last_activity_ms_ = w_.now;
  if (policy().accept_proxy) {
    // Only a listed balancer may name the client; anyone else is refused unread.
    if (!cidr_match(policy().trusted_proxies, peer_)) {
      ListenerCounters::bump(w_.counters[size_t(listener_)].proxy_refused);
      return close("proxy_header_refused", format_addr(peer_) + " is not in trusted_proxies");
    }
    state_ = State::ProxyHeader;
    set_deadline(w_.now + snap_->timeouts.handshake_ms);
  } else {
    begin_session();
    if (state_ == State::Closed) return;
  }
  advance();
}

// What follows the accept (or the PROXY header): the pre-TLS greeting or the handshake.
void Conn::begin_session() {
  if (is_starttls(policy().proto)) {
    state_ = State::PreTls;
    dialog_ = std::make_unique<PreTlsDialog>(policy().proto, policy().capabilities, snap_->limits.line_bytes);
    plain_out_ = dialog_->greeting();
    set_deadline(w_.now + snap_->timeouts.pretls_ms);
  } else {
    begin_tls();
  }
}

int64_t Conn::deadline() const {
  if (state_ != State::Relaying) return deadline_ms_;
  int64_t idle = last_activity_ms_ + snap_->timeouts.idle_ms;
  return fin_deadline_ms_ && fin_deadline_ms_ < idle ? fin_deadline_ms_ : idle;
}

void Conn::set_deadline(int64_t ms) {
  deadline_ms_ = ms;
  w_.wheel.insert(&timer, deadline());
}

void Conn::on_event(bool backend_side, uint32_t events) {
  if (state_ == State::Closed) return;
  bool hup = events & (EPOLLHUP | EPOLLERR);
  if (backend_side) {
    if (events & (EPOLLIN | EPOLLRDHUP) || hup) b_readable_ = true;
    if (events & EPOLLOUT || hup) b_writable_ = true;
  } else {
    if (events & (EPOLLIN | EPOLLRDHUP) || hup) c_readable_ = true;
    if (events & EPOLLOUT || hup) c_writable_ = true;
  }
  advance();
}

// The one place where the state machine moves: run the current state's step
// until it blocks; a step may move to the next state and go on at once.
void Conn::advance() {
  for (;;) {
    State before = state_;
    switch (state_) {
      case State::ProxyHeader: step_proxy_header(); break;
      case State::PreTls: step_pretls(); break;
      case State::Handshake: step_handshake(); break;
      case State::Connecting: step_connecting(); break;
      case State::Relaying: step_relay(); break;
      case State::Closed: return;
    }
    if (state_ == before) return;
  }
}

// ---- PROXY header from a trusted balancer (accept_proxy listeners) ----

// Peeks, so that nothing past the header leaves the socket: the ClientHello (or
// the client's first pre-TLS bytes) is read by the next state as if the header
// had never been there. Only the header's own bytes are consumed.
void Conn::step_proxy_header() {
  ListenerCounters& ctr = w_.counters[size_t(listener_)];
  while (c_readable_) {
    char buf[kProxyPeek];
    ssize_t n = ::recv(cfd_, buf, sizeof buf, MSG_PEEK);
    if (n == 0) {
      ListenerCounters::bump(ctr.proxy_malformed);
      return close("proxy_header_malformed", "connection closed before the end of the PROXY header");
    }
    if (n < 0) {
      if (errno == EAGAIN) { c_readable_ = false; return; }
      if (errno == EINTR) continue;
      return close("client_error", strerror(errno));
    }
    ProxyParse p = parse_proxy_header(std::string_view(buf, size_t(n)));
    if (p.status == ProxyParse::Status::Malformed) {
      ListenerCounters::bump(ctr.proxy_malformed);
      return close("proxy_header_malformed", p.why);
    }
    if (p.status == ProxyParse::Status::NeedMore) {
      // Edge-triggered: the next segment wakes us again even though these bytes stay queued.
      if (size_t(n) >= sizeof buf) {
        ListenerCounters::bump(ctr.proxy_malformed);
        return close("proxy_header_malformed", "header longer than 536 bytes");
      }
      c_readable_ = false;
      return;
    }
    // The header is all there: take exactly its bytes (a short read of peeked bytes cannot happen).
    ssize_t r = ::recv(cfd_, buf, p.length, 0);
    if (r != ssize_t(p.length)) return close("client_error", r < 0 ? strerror(errno) : "short read of a peeked PROXY header");
    if (!p.local) {
      peer_ = p.src;
      proxied_local_ = p.dst;
      client_key_ = client_network(peer_, snap_->limits.ipv6_prefix);
      exempt_ = !snap_->limits.exempt.empty() && cidr_match(snap_->limits.exempt, peer_);
    }
    // Limits count real clients, not the balancer.
    Admission a = admit_client(w_.engine.clients, w_.engine.guard, client_key_, exempt_, w_.now, snap_->limits);
    if (a == Admission::PerClient) {
      ListenerCounters::bump(ctr.rejected_per_client);
      return close("per_client_limit", format_addr(peer_) + " holds limits.per_client connections");
    }
    if (a != Admission::Ok) {
      ListenerCounters::bump(a == Admission::Banned ? ctr.rejected_banned : ctr.rejected_rate);
      say_goodbye(refusal_line(policy().proto, a));
      return close(a == Admission::Banned ? "banned" : "rate_limited", format_network(client_key_));
    }
    client_held_ = !exempt_;
    // Bytes after the header may be queued already: the next state reads without waiting for an edge.
    c_readable_ = true;
    begin_session();
    return;
  }
}

// ---- pre-TLS dialog (STARTTLS front-ends) ----

void Conn::step_pretls() {
  for (;;) {
    while (!plain_out_.empty() && c_writable_) {
      ssize_t n = ::send(cfd_, plain_out_.data(), plain_out_.size(), MSG_NOSIGNAL);
      if (n > 0) {
        plain_out_.erase(0, size_t(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (errno == EAGAIN) c_writable_ = false;
      } else {
        return close("client_error", strerror(errno));
      }
    }
    if (plain_out_.empty() && after_flush_ == PreTlsDialog::Next::Close) return close("pretls_closed");
    if (plain_out_.empty() && after_flush_ == PreTlsDialog::Next::StartTls) {
      // Whatever the client pipelined after STARTTLS was discarded by the dialog
      // and is never read as plaintext again (CVE-2011-0411).
      begin_tls();
      return;
    }
    if (after_flush_ != PreTlsDialog::Next::Continue) return;  // wait until the reply is out
    if (!c_readable_ || plain_out_.size() > kMaxPlainOut) return;
    char buf[4096];
    ssize_t n = ::recv(cfd_, buf, sizeof buf, 0);
    if (n == 0) return close("pretls_closed", "client closed before STARTTLS");
    if (n < 0) {
      if (errno == EAGAIN) { c_readable_ = false; return; }
      if (errno == EINTR) continue;
      return close("client_error", strerror(errno));
    }
    after_flush_ = dialog_->feed(std::string_view(buf, size_t(n)), plain_out_);
    if (plain_out_.size() > kMaxPlainOutHard) return close("pretls_flood", "client sends commands faster than it reads the replies");
  }
}

bool Conn::begin_tls() {
  SSL_CTX* initial = snap_->contexts[size_t(snap_->default_ctx)].get();
  ssl_ = SSL_new(initial);
  if (!ssl_ || SSL_set_fd(ssl_, cfd_) != 1 || !bind_session_context(ssl_, policy().proto)) {
    close("internal_error", take_ssl_error());
    return false;
  }
  SSL_set_app_data(ssl_, this);
  SSL_set_accept_state(ssl_);
  // One read() per TLS record batch instead of a header read and a body read.
  SSL_set_read_ahead(ssl_, 1);
  dialog_.reset();
  std::string().swap(plain_out_);
  state_ = State::Handshake;
  set_deadline(w_.now + snap_->timeouts.handshake_ms);
  return true;
}

// ---- TLS handshake ----

int Conn::on_servername(int* alert) {
  const char* raw = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  if (hellos_++ > 0) return on_second_hello(raw, alert);
  first_had_sni_ = raw != nullptr;
  if (raw) first_sni_raw_ = raw;
  std::string name;
  bool valid = normalize_sni(raw, name);
  if (valid) sni_ = name;
  int ctx = valid ? snap_->find_context(name) : -1;
  bool ctx_known = ctx >= 0;
  if (ctx < 0 && raw) ListenerCounters::bump(w_.counters[size_t(listener_)].sni_unknown);
  if (ctx < 0) {
    // An unknown name (or an IP literal, or garbage) is not an error unless the
    // policy is "reject"; a client without SNI always gets the default.
    if (snap_->reject_unknown && raw) {
      sni_rejected_ = true;
      if (!valid) sni_ = "(invalid)";
      *alert = SSL_AD_UNRECOGNIZED_NAME;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    ctx = snap_->default_ctx;
  }
  SSL_CTX* chosen = snap_->contexts[size_t(ctx)].get();
  if (chosen != SSL_get_SSL_CTX(ssl_)) SSL_set_SSL_CTX(ssl_, chosen);
  // A known name: its backend connect starts now, while the server does its
  // handshake crypto (bench/RESULTS.md: ~1.2x handshakes per CPU-second). Unknown
  // names wait for the end of the handshake, so scanners cost the backend
  // nothing; a client refused by the ALPN check next loses this connect at once.
  if (ctx_known && backend_ < 0 && may_connect_early()) {
    int saved = errno;
    connect_early();
    errno = saved;
  }
  return SSL_TLSEXT_ERR_OK;
}

// The ClientHello after a HelloRetryRequest must repeat the first one's name
// (RFC 8446 4.1.2): the pool was chosen by the first, the certificate and the
// log would follow the second. A different name (or one added or dropped) is refused.
int Conn::on_second_hello(const char* raw, int* alert) {
  bool same = raw ? first_had_sni_ && first_sni_raw_ == raw : !first_had_sni_;
  if (same) return SSL_TLSEXT_ERR_OK;
  sni_changed_ = true;
  *alert = SSL_AD_ILLEGAL_PARAMETER;
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// Only a ClientHello the server answers with its crypto may open a backend
// connection before the handshake ends. In TLS 1.3 that is one carrying a key
// share the server accepted: OpenSSL reads the key_share extension before it
// calls the servername callback, so none accepted here means a HelloRetryRequest
// next (which costs the server nothing and the client one round trip). After a
// HelloRetryRequest the connect always waits (on_second_hello never connects).
bool Conn::may_connect_early() const {
  if (SSL_version(ssl_) < TLS1_3_VERSION) return true;
  EVP_PKEY* share = nullptr;
  if (SSL_get_peer_tmp_key(ssl_, &share) != 1) return false;
  EVP_PKEY_free(share);
  return true;
}

int Conn::on_alpn(const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen) {
  // ALPACA: a client that names an application protocol must name ours.
  const std::string& want = policy().alpn;
  for (unsigned i = 0; i < inlen;) {
    unsigned len = in[i];
    if (i + 1 + len > inlen) break;
    if (want.size() == len + 1 && memcmp(want.data() + 1, in + i + 1, len) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  alpn_rejected_ = true;
  drop_backend();  // opened by on_servername for a known name: never used
  give_back_early_slot();
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

void Conn::step_handshake() {
  ERR_clear_error();
  errno = 0;
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    handshake_done_ = true;
    t_handshake_us_ = now_us();
    ListenerCounters& c = w_.counters[size_t(listener_)];
    ListenerCounters::bump(c.handshakes);
    if (SSL_session_reused(ssl_)) ListenerCounters::bump(c.resumed);
    give_back_early_slot();  // a finished handshake is a client like any other
    if (snap_->limits.login_tracking) {
      login_ = std::make_unique<LoginWatch>(family(policy().proto));
      login_state_ = "none";
    }
    connect_next();
    return;
  }
  int err = SSL_get_error(ssl_, r);
  if (err == SSL_ERROR_WANT_READ) { c_readable_ = false; return; }
  if (err == SSL_ERROR_WANT_WRITE) { c_writable_ = false; return; }
  ListenerCounters::bump(w_.counters[size_t(listener_)].handshake_failures);
  std::string detail = take_ssl_error();
  if (detail.empty()) detail = err == SSL_ERROR_SYSCALL && errno ? strerror(errno) : "connection closed during handshake";
  if (sni_rejected_) return close("sni_rejected", "unknown server name");
  if (sni_changed_) return close("sni_changed", "the ClientHello after a HelloRetryRequest names another server");
  if (alpn_rejected_) return close("alpn_rejected", "client offered no ALPN id of this listener");
  close("handshake_failed", detail);
}

// ---- backend ----

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
    if (!second_pass && b.down_until_ms[i].load(std::memory_order_relaxed) > w_.now) { skipped_[i] = true; continue; }
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
  b.down_until_ms[i].store(w_.now + 2000, std::memory_order_relaxed);
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
        return close("fd_exhausted", "no file descriptor for the backend connection: " + connect_error_);
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
  const Backend& b = *snap_->backends[size_t(backend_)];
  connect_error_ = b.server_names[server_] + ": " + strerror(err);
  b.down_until_ms[server_].store(w_.now + 2000, std::memory_order_relaxed);
  drop_backend();
  connect_next();
}

void Conn::drop_backend() {
  if (bfd_ >= 0) {
    w_.unwatch(bfd_);
    ::close(bfd_);
  }
  bfd_ = -1;
  b_readable_ = b_writable_ = false;
}

void Conn::connected() {
  t_connected_us_ = now_us();
  SockAddr local;
  local.len = sizeof local.ss;
  if (getsockname(bfd_, local.sa(), &local.len) == 0) backend_local_ = format_addr(local);
  const Backend& b = *snap_->backends[size_t(backend_)];
  if (b.proxy_header != ProxyHeader::Off) {
    SockAddr reached = proxied_local_;
    if (reached.family() == AF_UNSPEC) {
      reached.len = sizeof reached.ss;
      getsockname(cfd_, reached.sa(), &reached.len);
    }
    // connected() runs after the handshake (an early connect waits for it): the TLS facts are final.
    const char* version = ssl_ ? SSL_get_version(ssl_) : nullptr;
    const char* cipher = ssl_ ? SSL_get_cipher_name(ssl_) : nullptr;
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
  close("backend_unavailable", why);
}

// After STARTTLS the backend greets a client that already had our greeting.
// IMAP and POP3 clients ask for capabilities again: drop the greeting line.
// ManageSieve clients expect capabilities again (RFC 5804 2.2): pass the
// backend's, without STARTTLS. A refusal (BYE, -ERR, NO) passes unchanged.
bool Conn::filter_backend_greeting() {
  std::string_view data(b2c_.head(), b2c_.len);
  bool complete = false;
  if (greeting_ == Greeting::Swallow) {
    size_t drop = swallow_greeting_len(data, complete);
    if (!complete) return false;
    if (drop) b2c_.consume(uint32_t(drop), w_.pool);
    greeting_ = Greeting::None;
    return true;
  }
  std::string kept = strip_sieve_starttls(data, complete);
  if (!complete) return false;
  b2c_.len = 0;
  b2c_.off = 0;
  memcpy(b2c_.data, kept.data(), kept.size());
  b2c_.len = uint32_t(kept.size());
  greeting_ = Greeting::None;
  return true;
}

// After STARTTLS the client is in TLS already: a backend that offers STARTTLS
// (Cyrus with a certificate of its own) must not be believed by it, in the
// greeting (filter_backend_greeting) or in any capability list before login.
// Whole lines only: a line still arriving waits in b2c_ behind b2c_ready_.
void Conn::filter_capabilities() {
  if (b2c_.len > b2c_ready_) {
    char* fresh = b2c_.head() + b2c_ready_;
    size_t len = b2c_.len - b2c_ready_, consumed = 0;
    std::string kept = strip_starttls_lines(family(policy().proto), std::string_view(fresh, len), consumed);
    size_t rest = len - consumed;  // kept.size() <= consumed: the buffer never grows
    memmove(fresh + kept.size(), fresh + consumed, rest);
    memcpy(fresh, kept.data(), kept.size());
    b2c_.len = b2c_ready_ + uint32_t(kept.size() + rest);
    b2c_ready_ += uint32_t(kept.size());
  }
  // A line that never ends, or the backend's last words, pass as they are.
  if (backend_eof_ || b2c_.len - b2c_ready_ >= kMaxCapLine) end_capability_window();
}

// The client's lines, looked at until it starts to authenticate: then the window closes.
void Conn::watch_client_lines(const char* data, size_t n) {
  cap_window_bytes_ += uint32_t(n);
  for (size_t i = 0; i < n && cap_window_;) {
    const char* nl = static_cast<const char*>(memchr(data + i, '\n', n - i));
    size_t end = nl ? size_t(nl - data) : n;
    client_line_.append(data + i, std::min(end - i, kClientLineStart - std::min(kClientLineStart, client_line_.size())));
    if (!nl) break;
    std::string_view line(client_line_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (starts_authentication(family(policy().proto), line)) end_capability_window();
    client_line_.clear();
    i = end + 1;
  }
  if (cap_window_bytes_ > kCapWindowBytes) end_capability_window();
}

void Conn::end_capability_window() {
  cap_window_ = false;
  b2c_ready_ = 0;
  std::string().swap(client_line_);
}

// ---- relay ----

void Conn::step_relay() {
  bool progress = true;
  uint64_t in0 = bytes_in_, out0 = bytes_out_;
  while (progress) {
    progress = false;
    // client -> backend
    if (!client_eof_ && c2b_.room() > 0 && (c_readable_ || SSL_has_pending(ssl_))) {
      ERR_clear_error();
      char* into = c2b_.tail(w_.pool);
      int n = SSL_read(ssl_, into, int(c2b_.tail_room()));
      if (n > 0) {
        if (login_) watch_logins(true, into, size_t(n));
        c2b_.len += uint32_t(n);
        bytes_in_ += uint64_t(n);
        progress = true;
        if (cap_window_) watch_client_lines(into, size_t(n));
      } else {
        int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_WANT_READ) c_readable_ = false;
        else if (err == SSL_ERROR_WANT_WRITE) c_writable_ = false;
        else if (err == SSL_ERROR_ZERO_RETURN) { client_eof_ = true; progress = true; }
        else {
          return client_failed();
        }
        if (c2b_.empty()) c2b_.release(w_.pool);
      }
    }
    if (!c2b_.empty() && b_writable_ && bfd_ >= 0) {
      ssize_t n = ::send(bfd_, c2b_.head(), c2b_.len, MSG_NOSIGNAL);
      if (n > 0) {
        c2b_.consume(uint32_t(n), w_.pool);
        progress = true;
      } else if (n < 0 && errno == EAGAIN) {
        b_writable_ = false;
      } else if (!(n < 0 && errno == EINTR)) {
        // After the backend's FIN, a refused write only means it is gone for good.
        if (backend_eof_) return close("backend_closed");
        return close("backend_error", strerror(errno));
      }
    }
    if (client_eof_ && c2b_.empty() && !backend_shut_ && bfd_ >= 0) {
      ::shutdown(bfd_, SHUT_WR);  // close_notify from the client becomes a FIN to the backend
      backend_shut_ = true;
    }
    // backend -> client
    if (!backend_eof_ && b_readable_ && b2c_.room() > 0 && bfd_ >= 0) {
      char* into = b2c_.tail(w_.pool);
      ssize_t n = ::recv(bfd_, into, b2c_.tail_room(), 0);
      if (n > 0) {
        if (login_) watch_logins(false, into, size_t(n));
        b2c_.len += uint32_t(n);
        progress = true;
        if (cap_window_ && (cap_window_bytes_ += uint32_t(n)) > kCapWindowBytes) end_capability_window();
      } else if (n == 0) {
        backend_eof_ = true;
        progress = true;
      } else if (errno == EAGAIN) {
        b_readable_ = false;
      } else if (errno != EINTR) {
        return close("backend_error", strerror(errno));
      }
      if (b2c_.empty()) b2c_.release(w_.pool);
    }
    if (greeting_ != Greeting::None) {
      if (!filter_backend_greeting()) {
        if (backend_eof_) return close("backend_closed", "backend closed before its greeting");
        if (b2c_.len >= kMaxGreeting) return close("backend_error", "backend greeting too long");
        continue;
      }
      progress = true;
    }
    if (cap_window_ && greeting_ == Greeting::None) filter_capabilities();
    if (sendable() > 0 && c_writable_) {
      ERR_clear_error();
      int n = SSL_write(ssl_, b2c_.head(), int(sendable()));
      if (n > 0) {
        bytes_out_ += uint64_t(n);
        if (cap_window_) b2c_ready_ -= uint32_t(n);
        b2c_.consume(uint32_t(n), w_.pool);
        progress = true;
      } else {
        int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_WANT_WRITE) c_writable_ = false;
        else if (err == SSL_ERROR_WANT_READ) c_readable_ = false;
        else {
          return client_failed();
        }
      }
    }
  }
  if (bytes_in_ != in0 || bytes_out_ != out0) {
    last_activity_ms_ = w_.now;
    flush_counters();
  }
  if (banned_close_ && b2c_.empty()) {
    say_goodbye(refusal_text(policy().proto, Admission::Banned));
    return close("banned", format_network(client_key_));
  }
  if (!first_eof_ && (client_eof_ || backend_eof_)) first_eof_ = client_eof_ ? "client_closed" : "backend_closed";
  // The backend's FIN becomes a close_notify once all it sent is out. The client
  // may still finish what it was sending (half-close), for a short while.
  if (backend_eof_ && b2c_.empty() && !tls_shut_) {
    ERR_clear_error();
    SSL_shutdown(ssl_);
    ERR_clear_error();
    tls_shut_ = true;
    fin_deadline_ms_ = w_.now + std::min<int64_t>(kFinLingerMs, snap_->timeouts.idle_ms);
    w_.wheel.insert(&timer, deadline());
  }
  if (backend_eof_ && b2c_.empty() && client_eof_ && c2b_.empty()) return close(first_eof_);
}

// ---- ends ----

// A TLS read or write to the client failed. Once the session is over (the
// backend closed, as Cyrus does after LOGOUT, or the client had closed) a reset
// is how many clients end (sieve-connect on every session): an ordinary end,
// not a client error.
void Conn::client_failed() {
  std::string d = take_ssl_error();
  if (d.empty()) d = errno ? strerror(errno) : "connection reset";
  if (backend_eof_ || client_eof_) return close(first_eof_ ? first_eof_ : backend_eof_ ? "backend_closed" : "client_closed", "then the client: " + d);
  close("client_error", d);
}

// Relayed bytes not yet added to the listener's counters (also on an error path
// that leaves step_relay early, so stats() and the record agree).
void Conn::flush_counters() {
  ListenerCounters& c = w_.counters[size_t(listener_)];
  if (bytes_in_ != counted_in_) ListenerCounters::bump(c.bytes_in, bytes_in_ - counted_in_);
  if (bytes_out_ != counted_out_) ListenerCounters::bump(c.bytes_out, bytes_out_ - counted_out_);
  counted_in_ = bytes_in_;
  counted_out_ = bytes_out_;
}

void Conn::say_goodbye(const std::string& text) {
  ERR_clear_error();
  if (handshake_done_ && ssl_) {
    // Best effort: what still pends for the client goes first, the goodbye after
    // it; not a backend greeting still waiting for its filter (it may say STARTTLS).
    if (greeting_ != Greeting::None) b2c_.release(w_.pool);
    if (sendable() > 0) {
      int n = SSL_write(ssl_, b2c_.head(), int(sendable()));
      if (n > 0) bytes_out_ += uint64_t(n);
      b2c_.release(w_.pool);
    }
    SSL_write(ssl_, text.data(), int(text.size()));
  } else if (!ssl_) {
    // Pre-TLS replies still queued go first.
    plain_out_ += text;
    ssize_t r = ::send(cfd_, plain_out_.data(), plain_out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)r;
  }
  ERR_clear_error();
}

void Conn::on_deadline() {
  switch (state_) {
    case State::PreTls:
      if (dialog_) say_goodbye(dialog_->timeout_goodbye());
      return close("pretls_timeout");
    case State::ProxyHeader:
      ListenerCounters::bump(w_.counters[size_t(listener_)].proxy_malformed);
      return close("proxy_header_timeout", "no complete PROXY header within timeouts.handshake");
    case State::Handshake:
      ListenerCounters::bump(w_.counters[size_t(listener_)].handshake_failures);
      return close("handshake_timeout");
    case State::Connecting: {
      const Backend& b = *snap_->backends[size_t(backend_)];
      connect_error_ = b.server_names[server_] + ": connect timed out";
      b.down_until_ms[server_].store(w_.now + 2000, std::memory_order_relaxed);
      drop_backend();
      connect_next();
      advance();
      return;
    }
    case State::Relaying:
      // The backend is gone and the client did not close in time: nothing to say.
      if (fin_deadline_ms_ && w_.now >= fin_deadline_ms_) return close(first_eof_);
      say_goodbye(goodbye(policy().proto, "", "Autologout; idle for too long"));
      return close("idle_timeout");
    case State::Closed: return;
  }
}

void Conn::shutdown_now() {
  if (state_ == State::Closed) return;
  if (state_ == State::PreTls || state_ == State::Relaying)
    say_goodbye(mf::shutdown_goodbye(policy().proto));
  close("shutdown");
}

// The one teardown: a close_notify where TLS is up, the record for JS, the
// counters, then the fds; the memory goes after the current batch of events.
void Conn::close(const char* reason, std::string detail) {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  if (ssl_ && handshake_done_ && !tls_shut_) {
    ERR_clear_error();
    SSL_shutdown(ssl_);
    ERR_clear_error();
    tls_shut_ = true;
  }
  timer.unlink();
  // Counters first: JS may call stats() as soon as it holds the record.
  flush_counters();
  w_.counters[size_t(listener_)].active.fetch_sub(1, std::memory_order_relaxed);
  w_.engine.active.fetch_sub(1, std::memory_order_relaxed);
  if (client_held_) w_.engine.clients.release(client_key_);
  give_back_early_slot();
  Event ev;
  ConnRecord& r = ev.record;
  const ListenerPolicy& lp = policy();
  r.listener = lp.name;
  r.protocol = proto_name(lp.proto);
  r.client = format_addr(peer_);
  if (backend_ >= 0 && handshake_done_) {
    const Backend& b = *snap_->backends[size_t(backend_)];
    r.pool = b.name;
    if (t_connected_us_) r.backend = b.server_names[server_];
  }
  r.backend_local = backend_local_;
  r.sni = sni_;
  if (ssl_ && handshake_done_) {
    r.tls_version = SSL_get_version(ssl_);
    r.cipher = SSL_get_cipher_name(ssl_);
    r.group = negotiated_group(ssl_);
    r.resumed = SSL_session_reused(ssl_);
  }
  r.bytes_in = bytes_in_;
  r.bytes_out = bytes_out_;
  r.login = login_state_;
  r.user = user_;
  r.login_failures = login_failures_;
  int64_t t_end = now_us();
  r.handshake_ms = ms_between(t_accept_us_, t_handshake_us_);
  r.connect_ms = ms_between(t_connect_start_us_, t_connected_us_);
  r.duration_ms = ms_between(t_accept_us_, t_end);
  r.reason = reason;
  r.detail = std::move(detail);
  w_.emit(std::move(ev));
  login_.reset();
  if (ssl_) { SSL_free(ssl_); ssl_ = nullptr; }
  if (cfd_ >= 0) { w_.unwatch(cfd_); ::close(cfd_); cfd_ = -1; }
  drop_backend();
  c2b_.release(w_.pool);
  b2c_.release(w_.pool);
  w_.retire(this);
}

// ---- OpenSSL callbacks: find the Conn through the SSL's app data ----

namespace {

int servername_cb(SSL* ssl, int* alert, void*) {
  auto* c = static_cast<Conn*>(SSL_get_app_data(ssl));
  return c ? c->on_servername(alert) : SSL_TLSEXT_ERR_NOACK;
}

int alpn_cb(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen, void*) {
  auto* c = static_cast<Conn*>(SSL_get_app_data(ssl));
  return c ? c->on_alpn(out, outlen, in, inlen) : SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

void install_conn_callbacks(SSL_CTX* ctx) {
  SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, nullptr);
}

}  // namespace mf
