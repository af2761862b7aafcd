// How a connection ends: the goodbye to the client, and the one teardown.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "conn.h"
#include "engine.h"
#include "tls.h"

namespace mf {

// A TLS read or write to the client failed. Once the session is over (the
// backend closed, as Cyrus does after LOGOUT, or the client had closed) a reset
// is how many clients end (sieve-connect on every session): an ordinary end,
// not a client error.
void Conn::client_failed() {
  std::string d = tls_error();
  if (d.empty()) d = errno ? strerror(errno) : "connection reset";
  if (backend_eof_ || client_eof_) return close(first_eof_.value_or(backend_eof_ ? CloseReason::BackendClosed : CloseReason::ClientClosed), "then the client: " + d);
  close(CloseReason::ClientError, d);
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
  if (handshake_done_ && (ssl_ || rec_)) {
    // Best effort: what still pends for the client goes first, the goodbye after
    // it; not a backend greeting still waiting for its filter (it may say STARTTLS).
    if (greeting_ != Greeting::None) b2c_.release(w_.pool);
    uint32_t n = 0;
    if (sendable() > 0) {
      if (tls_write(b2c_.head(), sendable(), n) == TlsIo::Ok) bytes_out_ += n;
      b2c_.release(w_.pool);
    }
    tls_write(text.data(), uint32_t(text.size()), n);
  } else if (!ssl_ && !rec_) {
    // Pre-TLS replies still queued go first.
    plain_out_ += text;
    ssize_t r = ::send(cfd_, plain_out_.data(), plain_out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)r;
  }
  ERR_clear_error();
}

void Conn::close(CloseReason reason, std::string detail) {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  if ((ssl_ || rec_) && handshake_done_ && !tls_shut_) {
    tls_shutdown();
    tls_shut_ = true;
  }
  cio_.flush();  // best effort: a goodbye and the close_notify, in one write
  cio_.release();
  timer.unlink();
  // Counters first: JS may call stats() as soon as it holds the record.
  flush_counters();
  w_.counters[size_t(listener_)].active.fetch_sub(1, std::memory_order_relaxed);
  w_.engine.active.fetch_sub(1, std::memory_order_relaxed);
  if (client_held_) w_.engine.clients.release(client_key_);
  give_back_early_slot();
  Event ev;
  fill_record(ev.record);
  ConnRecord& r = ev.record;
  r.reason = close_reason_name(reason);
  r.detail = std::move(detail);
  w_.emit(std::move(ev));
  login_.reset();
  if (ssl_) { SSL_free(ssl_); ssl_ = nullptr; }
  rec_.reset();
  secrets_.reset();
  if (cfd_ >= 0) { w_.unwatch(cfd_); ::close(cfd_); cfd_ = -1; }
  drop_backend();
  c2b_.release(w_.pool);
  b2c_.release(w_.pool);
  w_.retire(this);
}

}  // namespace mf
