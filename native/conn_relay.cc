// The relay: bytes both ways between the client's TLS and the backend socket,
// with the backend's greeting and capability lists filtered after STARTTLS.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "admission.h"
#include "backend_greeting.h"
#include "client_net.h"
#include "conn.h"
#include "engine.h"

namespace mf {

namespace {

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

}  // namespace

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
  b2c_.replace(0, b2c_.len, kept.data(), uint32_t(kept.size()));
  greeting_ = Greeting::None;
  return true;
}

// After STARTTLS the client is in TLS already: a backend that offers STARTTLS
// (Cyrus with a certificate of its own) must not be believed by it, in the
// greeting (filter_backend_greeting) or in any capability list before login.
// Whole lines only: a line still arriving waits in b2c_ behind b2c_ready_.
void Conn::filter_capabilities() {
  if (b2c_.len > b2c_ready_) {
    const char* fresh = b2c_.head() + b2c_ready_;
    size_t consumed = 0;
    std::string kept = strip_starttls_lines(family(policy().proto), std::string_view(fresh, b2c_.len - b2c_ready_), consumed);
    // kept.size() <= consumed: the buffer never grows.
    b2c_.replace(b2c_ready_, uint32_t(consumed), kept.data(), uint32_t(kept.size()));
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
    if (!client_eof_ && c2b_.room() > 0 && tls_may_read()) {
      char* into = c2b_.tail(w_.pool);
      uint32_t n = 0;
      TlsIo r = tls_read(into, c2b_.tail_room(), n);
      if (r == TlsIo::Ok) {
        if (login_) watch_logins(true, into, size_t(n));
        c2b_.len += n;
        bytes_in_ += n;
        progress = true;
        if (cap_window_) watch_client_lines(into, size_t(n));
      } else {
        if (r == TlsIo::WantRead) cio_.readable = false;
        else if (r == TlsIo::WantWrite) cio_.writable = false;
        else if (r == TlsIo::Eof) { client_eof_ = true; progress = true; }
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
        if (backend_eof_) return close(CloseReason::BackendClosed);
        return close(CloseReason::BackendError, strerror(errno));
      }
    }
    if (client_eof_ && c2b_.empty() && !backend_shut_ && bfd_ >= 0) {
      ::shutdown(bfd_, SHUT_WR);  // close_notify from the client becomes a FIN to the backend
      backend_shut_ = true;
    }
    // backend -> client
    if (!backend_eof_ && b_readable_ && b2c_.room() > 0 && bfd_ >= 0) {
      char* into = b2c_.tail(w_.pool);
      uint32_t asked = b2c_.tail_room();
      ssize_t n = ::recv(bfd_, into, asked, 0);
      if (n > 0) {
        // Edge-triggered: a short read emptied the socket, and bytes arriving
        // later raise a new edge; no recv() that can only say EAGAIN (nginx does the same).
        if (uint32_t(n) < asked && !b_hup_) b_readable_ = false;
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
        return close(CloseReason::BackendError, strerror(errno));
      }
      if (b2c_.empty()) b2c_.release(w_.pool);
    }
    if (greeting_ != Greeting::None) {
      if (!filter_backend_greeting()) {
        if (backend_eof_) return close(CloseReason::BackendClosed, "backend closed before its greeting");
        if (b2c_.len >= kMaxGreeting) return close(CloseReason::BackendError, "backend greeting too long");
        continue;
      }
      progress = true;
    }
    if (cap_window_ && greeting_ == Greeting::None) filter_capabilities();
    if (sendable() > 0 && cio_.writable) {
      uint32_t n = 0;
      TlsIo r = tls_write(b2c_.head(), sendable(), n);
      if (r == TlsIo::Ok) {
        bytes_out_ += n;
        if (cap_window_) b2c_ready_ -= n;
        b2c_.consume(n, w_.pool);
        progress = true;
      } else {
        if (r == TlsIo::WantWrite) cio_.writable = false;
        else if (r == TlsIo::WantRead) cio_.readable = false;
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
    return close(CloseReason::Banned, format_network(client_key_));
  }
  if (!first_eof_ && (client_eof_ || backend_eof_)) first_eof_ = client_eof_ ? CloseReason::ClientClosed : CloseReason::BackendClosed;
  // The backend's FIN becomes a close_notify once all it sent is out. The client
  // may still finish what it was sending (half-close), for a short while.
  if (backend_eof_ && b2c_.empty() && !tls_shut_) {
    tls_shutdown();
    tls_shut_ = true;
    fin_deadline_ms_ = w_.now + std::min<int64_t>(kFinLingerMs, snap_->timeouts.idle_ms);
    w_.wheel.insert(&timer, deadline());
  }
  if (backend_eof_ && b2c_.empty() && client_eof_ && c2b_.empty()) return close(*first_eof_);
}

}  // namespace mf
