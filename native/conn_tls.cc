// The client's TLS once the handshake is over: OpenSSL's SSL, or, after a TLS 1.3
// handshake, mailfront's own record layer (tls13_record.h) with the SSL freed
// (an IMAP IDLE holds its connection for hours: bench/PROFILE.md, idle memory).
// The relay and the close path call tls_read/tls_write/tls_shutdown, whichever carries it.
#include <cerrno>

#include "conn.h"
#include "engine.h"
#include "tls.h"

namespace mf {

namespace {

constexpr std::string_view kClientSecret = "CLIENT_TRAFFIC_SECRET_0";
constexpr std::string_view kServerSecret = "SERVER_TRAFFIC_SECRET_0";

}  // namespace

void Conn::on_keylog(const char* line) {
  if (!secrets_) return;
  size_t len = 0;
  if (parse_keylog_secret(line, kClientSecret, secrets_->client, len)) {
    secrets_->client_len = len;
  } else if (parse_keylog_secret(line, kServerSecret, secrets_->server, len)) {
    secrets_->server_len = len;
    // OpenSSL logs the server's secret as it takes its key into use, right after
    // the server Finished went out: the records written from here on (the ticket) are under it.
    secrets_->records_before_server = cio_.protected_records;
  }
}

// After SSL_do_handshake succeeded: the facts for the record, then the hand-over where it may happen.
void Conn::handshake_finished() {
  tls_facts_.version = SSL_get_version(ssl_);
  tls_facts_.cipher = SSL_get_cipher_name(ssl_);
  tls_facts_.group = negotiated_group(ssl_);
  tls_facts_.resumed = SSL_session_reused(ssl_);
  bool handed = secrets_ && hand_over();
  if (secrets_) ListenerCounters::bump(handed ? w_.counters[size_t(listener_)].record_layer : w_.counters[size_t(listener_)].record_layer_declined);
  secrets_.reset();  // cleansed
  cio_.counting = false;
  // Staying on OpenSSL: one read() per batch of records from now on.
  if (ssl_) SSL_set_read_ahead(ssl_, 1);
}

// Only when every number is known: TLS 1.3, a suite we carry, both secrets, no
// max_fragment_length, nothing left inside OpenSSL (the read side then starts at
// sequence 0: OpenSSL read exactly through the client's Finished, read_ahead being
// off), the write stream at a record boundary. Otherwise the connection stays on OpenSSL.
bool Conn::hand_over() {
  if (SSL_version(ssl_) != TLS1_3_VERSION) return false;
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl_);
  Tls13Suite suite;
  if (!c || !tls13_suite_of(SSL_CIPHER_get_protocol_id(c), suite)) return false;
  size_t len = tls13_secret_len(suite);
  if (secrets_->client_len != len || secrets_->server_len != len) return false;
  if (SSL_has_pending(ssl_) || SSL_want_write(ssl_) || SSL_get_early_data_status(ssl_) == SSL_EARLY_DATA_ACCEPTED) return false;
  // A max_fragment_length the client negotiated (RFC 6066: small clients) bounds records both
  // ways, and OpenSSL keeps to it; ours writes and takes 2^14 bytes: those stay on OpenSSL.
  SSL_SESSION* session = SSL_get_session(ssl_);
  if (session && SSL_SESSION_get_max_fragment_length(session) != TLSEXT_max_fragment_length_DISABLED) return false;
  if (!cio_.at_record_boundary() || cio_.protected_records < secrets_->records_before_server) return false;
  uint64_t write_seq = cio_.protected_records - secrets_->records_before_server;
  rec_ = Tls13Record::make(suite, secrets_->client, secrets_->server, write_seq, w_.pool);
  if (!rec_) {
    ERR_clear_error();
    return false;
  }
  rec_->adopt(cio_.in);  // the client's bytes after its Finished, read ahead
  SSL_free(ssl_);
  ssl_ = nullptr;
  return true;
}

bool Conn::tls_may_read() {
  if (rec_) return cio_.readable || rec_->has_input();
  return cio_.readable || cio_.has_input() || SSL_has_pending(ssl_);
}

Conn::TlsIo Conn::tls_read(char* out, uint32_t cap, uint32_t& got) {
  got = 0;
  if (!rec_) {
    ERR_clear_error();
    int n = SSL_read(ssl_, out, int(cap));
    if (n > 0) {
      got = uint32_t(n);
      return TlsIo::Ok;
    }
    switch (SSL_get_error(ssl_, n)) {
      case SSL_ERROR_WANT_READ: return TlsIo::WantRead;
      case SSL_ERROR_WANT_WRITE: return TlsIo::WantWrite;
      case SSL_ERROR_ZERO_RETURN: return TlsIo::Eof;
      default: return TlsIo::Error;
    }
  }
  for (;;) {
    Tls13Record::Status s = rec_->read(out, cap, got, cio_.out);
    if (s == Tls13Record::Status::Ok) return TlsIo::Ok;
    if (s == Tls13Record::Status::Eof) return TlsIo::Eof;
    if (s == Tls13Record::Status::Error) return TlsIo::Error;
    // A FIN without close_notify is an EOF, as with OpenSSL under SSL_OP_IGNORE_UNEXPECTED_EOF.
    if (cio_.eof) return TlsIo::Eof;
    if (!cio_.readable) return TlsIo::WantRead;
    uint32_t room = 0;
    char* into = rec_->in_space(room);
    int n = cio_.read_socket(into, room);
    rec_->in_added(n > 0 ? uint32_t(n) : 0);
    if (n == 0) return TlsIo::Eof;
    if (n < 0) return errno == EAGAIN ? TlsIo::WantRead : TlsIo::Error;
  }
}

Conn::TlsIo Conn::tls_write(const char* p, uint32_t n, uint32_t& put) {
  put = 0;
  if (!rec_) {
    ERR_clear_error();
    int r = SSL_write(ssl_, p, int(n));
    if (r > 0) {
      put = uint32_t(r);
      return TlsIo::Ok;
    }
    switch (SSL_get_error(ssl_, r)) {
      case SSL_ERROR_WANT_WRITE: return TlsIo::WantWrite;
      case SSL_ERROR_WANT_READ: return TlsIo::WantRead;
      default: return TlsIo::Error;
    }
  }
  // Sealed into ClientIo's held writes, behind what is held there already.
  put = rec_->write(p, n, cio_.out);
  if (put == 0) {
    if (rec_->sending_ended()) return TlsIo::Error;
    if (!cio_.flush()) return TlsIo::Error;
    put = rec_->write(p, n, cio_.out);
    if (put == 0) return rec_->sending_ended() ? TlsIo::Error : TlsIo::WantWrite;
  }
  // Bulk leaves at once, small writes at the end of the pass (Conn::flush_client), as with OpenSSL.
  if (cio_.out.len > ClientIo::kHoldMax && !cio_.flush()) return TlsIo::Error;
  return TlsIo::Ok;
}

void Conn::tls_shutdown() {
  ERR_clear_error();
  if (rec_) rec_->close_notify(cio_.out);
  else if (ssl_) SSL_shutdown(ssl_);
  ERR_clear_error();
}

std::string Conn::tls_error() {
  if (rec_) return rec_->error();
  return take_ssl_error();
}

}  // namespace mf
