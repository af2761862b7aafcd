// The connection's states and the one place where they advance (advance()):
// accept, the PROXY header, the pre-TLS dialog, the deadlines. The handshake is in
// conn_handshake.cc, the backend pool in conn_backend.cc, the relay in
// conn_relay.cc, the teardown in conn_close.cc, the record in conn_record.cc.
#include "conn.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "admission.h"
#include "client_net.h"
#include "engine.h"
#include "proxy_parse.h"
#include "tls.h"

namespace mf {

namespace {

// Pre-TLS replies a client leaves unread: no reading beyond the first bound, and
// a close beyond the second (one 4 KiB read of pipelined CAPABILITY commands can
// ask for ~30 times its size in replies).
constexpr size_t kMaxPlainOut = 8 * 1024;
constexpr size_t kMaxPlainOutHard = 16 * 1024;

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
  cio_.fd = fd;
  cio_.pool = &w_.pool;
}

Conn::~Conn() {
  if (ssl_) SSL_free(ssl_);
  if (cfd_ >= 0) ::close(cfd_);
  if (bfd_ >= 0) ::close(bfd_);
  c2b_.release(w_.pool);
  b2c_.release(w_.pool);
  cio_.release();
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
      return close(CloseReason::ProxyHeaderRefused, format_addr(peer_) + " is not in trusted_proxies");
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
    if (events & EPOLLRDHUP || hup) b_hup_ = true;
    if (events & EPOLLOUT || hup) b_writable_ = true;
  } else {
    if (events & (EPOLLIN | EPOLLRDHUP) || hup) cio_.readable = true;
    if (events & EPOLLRDHUP || hup) cio_.hup = true;
    if (events & EPOLLOUT || hup) cio_.writable = true;
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
    if (state_ == before) break;
  }
  flush_client();
}

// What OpenSSL wrote during the pass leaves in one write() (client_io.h). A
// socket error here ends the connection as the failed SSL call would have.
void Conn::flush_client() {
  if (state_ == State::Closed || cio_.out.empty() || cio_.flush()) return;
  int err = errno;
  cio_.out.release(w_.pool);
  errno = err;
  if (state_ != State::Handshake) return client_failed();
  ListenerCounters::bump(w_.counters[size_t(listener_)].handshake_failures);
  close(CloseReason::HandshakeFailed, strerror(err));
}

// ---- PROXY header from a trusted balancer (accept_proxy listeners) ----

// Peeks, so that nothing past the header leaves the socket: the ClientHello (or
// the client's first pre-TLS bytes) is read by the next state as if the header
// had never been there. Only the header's own bytes are consumed.
void Conn::step_proxy_header() {
  ListenerCounters& ctr = w_.counters[size_t(listener_)];
  while (cio_.readable) {
    char buf[kProxyPeek];
    ssize_t n = ::recv(cfd_, buf, sizeof buf, MSG_PEEK);
    if (n == 0) {
      ListenerCounters::bump(ctr.proxy_malformed);
      return close(CloseReason::ProxyHeaderMalformed, "connection closed before the end of the PROXY header");
    }
    if (n < 0) {
      if (errno == EAGAIN) { cio_.readable = false; return; }
      if (errno == EINTR) continue;
      return close(CloseReason::ClientError, strerror(errno));
    }
    ProxyParse p = parse_proxy_header(std::string_view(buf, size_t(n)));
    if (p.status == ProxyParse::Status::Malformed) {
      ListenerCounters::bump(ctr.proxy_malformed);
      return close(CloseReason::ProxyHeaderMalformed, p.why);
    }
    if (p.status == ProxyParse::Status::NeedMore) {
      // Edge-triggered: the next segment wakes us again even though these bytes stay queued.
      if (size_t(n) >= sizeof buf) {
        ListenerCounters::bump(ctr.proxy_malformed);
        return close(CloseReason::ProxyHeaderMalformed, "header longer than 536 bytes");
      }
      cio_.readable = false;
      return;
    }
    // The header is all there: take exactly its bytes (a short read of peeked bytes cannot happen).
    ssize_t r = ::recv(cfd_, buf, p.length, 0);
    if (r != ssize_t(p.length)) return close(CloseReason::ClientError, r < 0 ? strerror(errno) : "short read of a peeked PROXY header");
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
      return close(CloseReason::PerClientLimit, format_addr(peer_) + " holds limits.per_client connections");
    }
    if (a != Admission::Ok) {
      ListenerCounters::bump(a == Admission::Banned ? ctr.rejected_banned : ctr.rejected_rate);
      say_goodbye(refusal_line(policy().proto, a));
      return close(a == Admission::Banned ? CloseReason::Banned : CloseReason::RateLimited, format_network(client_key_));
    }
    client_held_ = !exempt_;
    // Bytes after the header may be queued already: the next state reads without waiting for an edge.
    cio_.readable = true;
    begin_session();
    return;
  }
}

// ---- pre-TLS dialog (STARTTLS front-ends) ----

void Conn::step_pretls() {
  for (;;) {
    while (!plain_out_.empty() && cio_.writable) {
      ssize_t n = ::send(cfd_, plain_out_.data(), plain_out_.size(), MSG_NOSIGNAL);
      if (n > 0) {
        plain_out_.erase(0, size_t(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (errno == EAGAIN) cio_.writable = false;
      } else {
        return close(CloseReason::ClientError, strerror(errno));
      }
    }
    if (plain_out_.empty() && after_flush_ == PreTlsDialog::Next::Close) return close(CloseReason::PretlsClosed);
    if (plain_out_.empty() && after_flush_ == PreTlsDialog::Next::StartTls) {
      // Whatever the client pipelined after STARTTLS was discarded by the dialog
      // and is never read as plaintext again (CVE-2011-0411).
      begin_tls();
      return;
    }
    if (after_flush_ != PreTlsDialog::Next::Continue) return;  // wait until the reply is out
    if (!cio_.readable || plain_out_.size() > kMaxPlainOut) return;
    char buf[4096];
    ssize_t n = ::recv(cfd_, buf, sizeof buf, 0);
    if (n == 0) return close(CloseReason::PretlsClosed, "client closed before STARTTLS");
    if (n < 0) {
      if (errno == EAGAIN) { cio_.readable = false; return; }
      if (errno == EINTR) continue;
      return close(CloseReason::ClientError, strerror(errno));
    }
    after_flush_ = dialog_->feed(std::string_view(buf, size_t(n)), plain_out_);
    if (plain_out_.size() > kMaxPlainOutHard) return close(CloseReason::PretlsFlood, "client sends commands faster than it reads the replies");
  }
}

bool Conn::begin_tls() {
  SSL_CTX* initial = snap_->contexts[size_t(snap_->default_ctx)]->get();  // built by the reader
  ssl_ = SSL_new(initial);
  BIO* bio = ssl_ ? cio_.make_bio() : nullptr;
  if (bio) SSL_set_bio(ssl_, bio, bio);  // one reference, taken by the SSL for both directions
  if (!bio || !bind_session_context(ssl_, policy().proto)) {
    close(CloseReason::InternalError, take_ssl_error());
    return false;
  }
  SSL_set_app_data(ssl_, this);
  SSL_set_accept_state(ssl_);
  if (snap_->own_record_layer) {
    // A hand-over to our record layer after the handshake (conn_tls.cc) needs OpenSSL to
    // have read exactly through the client's Finished: no read_ahead until then (cio_
    // reads ahead for it), and the server's records counted for its write sequence.
    secrets_ = std::make_unique<Tls13Secrets>();
    cio_.counting = true;
  } else {
    // One read() per TLS record batch instead of a header read and a body read
    // (OpenSSL 3.2+ heeds it only after the handshake; until then cio_ reads ahead).
    SSL_set_read_ahead(ssl_, 1);
  }
  dialog_.reset();
  std::string().swap(plain_out_);
  state_ = State::Handshake;
  set_deadline(w_.now + snap_->timeouts.handshake_ms);
  return true;
}

void Conn::on_deadline() {
  switch (state_) {
    case State::PreTls:
      if (dialog_) say_goodbye(dialog_->timeout_goodbye());
      return close(CloseReason::PretlsTimeout);
    case State::ProxyHeader:
      ListenerCounters::bump(w_.counters[size_t(listener_)].proxy_malformed);
      return close(CloseReason::ProxyHeaderTimeout, "no complete PROXY header within timeouts.handshake");
    case State::Handshake:
      ListenerCounters::bump(w_.counters[size_t(listener_)].handshake_failures);
      return close(CloseReason::HandshakeTimeout);
    case State::Connecting:
      server_failed("connect timed out");
      advance();
      return;
    case State::Relaying:
      // The backend is gone and the client did not close in time: nothing to say.
      if (fin_deadline_ms_ && w_.now >= fin_deadline_ms_) return close(first_eof_.value_or(CloseReason::BackendClosed));
      say_goodbye(goodbye(policy().proto, "", "Autologout; idle for too long"));
      return close(CloseReason::IdleTimeout);
    case State::Closed: return;
  }
}

void Conn::shutdown_now() {
  if (state_ == State::Closed) return;
  if (state_ == State::PreTls || state_ == State::Relaying)
    say_goodbye(mf::shutdown_goodbye(policy().proto));
  close(CloseReason::Shutdown);
}

// The one teardown: a close_notify where TLS is up, the record for JS, the

}  // namespace mf
