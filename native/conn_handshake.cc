// The TLS handshake: the SNI and ALPN callbacks (which pick the certificate and
// may start the backend connect early) and the handshake step.
#include <cerrno>
#include <cstring>

#include "conn.h"
#include "engine.h"
#include "sni.h"
#include "tls.h"

namespace mf {

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
  // Built here on the first handshake that names it (ctx_cache.h); the reader proved it builds.
  CertContext& cert = *snap_->contexts[size_t(ctx)];
  SSL_CTX* chosen = cert.get();
  if (!chosen) {
    unbuilt_context_ = ctx;
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
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
  // Only the client's bytes move a handshake that waits for them: not an EPOLLOUT
  // edge, nor the early backend connect completing.
  if (hs_wants_read_ && !cio_.readable && !cio_.has_input()) return;
  ERR_clear_error();
  errno = 0;
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    handshake_done_ = true;
    t_handshake_us_ = now_us();
    ListenerCounters& c = w_.counters[size_t(listener_)];
    ListenerCounters::bump(c.handshakes);
    if (SSL_session_reused(ssl_)) ListenerCounters::bump(c.resumed);
    handshake_finished();  // may free the SSL: ssl_ is null after a hand-over
    give_back_early_slot();  // a finished handshake is a client like any other
    if (snap_->limits.login_tracking) {
      login_ = std::make_unique<LoginWatch>(family(policy().proto));
      login_state_ = "none";
    }
    connect_next();
    return;
  }
  int err = SSL_get_error(ssl_, r);
  hs_wants_read_ = err == SSL_ERROR_WANT_READ;
  if (err == SSL_ERROR_WANT_READ) { cio_.readable = false; return; }
  if (err == SSL_ERROR_WANT_WRITE) { cio_.writable = false; return; }
  ListenerCounters::bump(w_.counters[size_t(listener_)].handshake_failures);
  std::string detail = take_ssl_error();
  if (detail.empty()) detail = err == SSL_ERROR_SYSCALL && errno ? strerror(errno) : "connection closed during handshake";
  if (sni_rejected_) return close(CloseReason::SniRejected, "unknown server name");
  if (sni_changed_) return close(CloseReason::SniChanged, "the ClientHello after a HelloRetryRequest names another server");
  if (alpn_rejected_) return close(CloseReason::AlpnRejected, "client offered no ALPN id of this listener");
  if (unbuilt_context_ >= 0)
    return close(CloseReason::InternalError, "certificate context for \"" + sni_ + "\" not built: " + snap_->contexts[size_t(unbuilt_context_)]->error());
  close(CloseReason::HandshakeFailed, detail);
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

void keylog_cb(const SSL* ssl, const char* line) {
  if (auto* c = static_cast<Conn*>(SSL_get_app_data(ssl))) c->on_keylog(line);
}

}  // namespace

void install_conn_callbacks(SSL_CTX* ctx, bool keylog) {
  SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, nullptr);
  if (keylog) SSL_CTX_set_keylog_callback(ctx, keylog_cb);
}

}  // namespace mf
