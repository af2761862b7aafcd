// One client connection, from accept to close, on one worker: the state
// machine with one place where it advances (advance()) and one teardown (close()).
// States and dispatch: conn.cc; handshake: conn_handshake.cc; backend pool:
// conn_backend.cc; relay: conn_relay.cc; teardown: conn_close.cc; the record:
// conn_record.cc; login watching: conn_login.cc.
#pragma once
#include <openssl/ssl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "buffer.h"
#include "close_reason.h"
#include "client_io.h"
#include "dialog.h"
#include "events.h"
#include "login.h"
#include "net.h"
#include "snapshot.h"
#include "tls13_record.h"
#include "wheel.h"

namespace mf {

class Worker;

enum class State : uint8_t {
  ProxyHeader, // accept_proxy listeners only: reading the balancer's PROXY header, nothing else
  PreTls,      // STARTTLS front-ends only: plaintext dialog with the client
  Handshake,   // TLS handshake in progress; SNI picks the context in the callback
  Connecting,  // non-blocking connect() to a backend server pending
  Relaying,    // bytes flow both ways (after STARTTLS, the backend greeting is filtered first)
  Closed,      // torn down; freed after the current batch of events
};

class Conn {
 public:
  // Worker thread only (all methods).
  Conn(Worker& w, int listener, int fd, const SockAddr& peer, std::shared_ptr<const Snapshot> snap);
  ~Conn();
  void start();
  void on_event(bool backend_side, uint32_t events);
  void on_deadline();
  // stop(): say goodbye and close.
  void shutdown_now();
  int64_t deadline() const;
  bool closed() const { return state_ == State::Closed; }

  // OpenSSL callbacks (worker thread, inside SSL_do_handshake).
  int on_servername(int* alert);
  int on_alpn(const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen);
  // A key-log line: the application traffic secrets, kept for the hand-over (conn_tls.cc).
  void on_keylog(const char* line);

  WheelNode timer;
  Conn* all_prev = nullptr;
  Conn* all_next = nullptr;

 private:
  enum class Greeting : uint8_t { None, Swallow, StripStarttls };

  void advance();
  void flush_client();
  void step_proxy_header();
  void begin_session();
  void step_pretls();
  void step_handshake();
  void step_connecting();
  void step_relay();
  bool begin_tls();
  enum class Attempt : uint8_t { Pending, Failed, NoFd };
  static constexpr size_t kNoServer = SIZE_MAX;
  void choose_backend();
  bool may_connect_early() const;
  void connect_early();
  bool take_early_slot();
  void give_back_early_slot();
  int on_second_hello(const char* raw, int* alert);
  size_t next_server();
  Attempt try_server(size_t i);
  void connect_next();
  void server_failed(const std::string& why);
  void mark_server_down(size_t i);
  void drop_backend();
  void connected();
  void backend_unavailable(const std::string& why);
  bool filter_backend_greeting();
  void filter_capabilities();
  void watch_client_lines(const char* data, size_t n);
  void end_capability_window();
  uint32_t sendable() const { return cap_window_ ? b2c_ready_ : b2c_.len; }
  // The client's TLS after the handshake (conn_tls.cc): OpenSSL's, or after the
  // hand-over mailfront's own record layer (rec_) with the SSL freed.
  enum class TlsIo : uint8_t { Ok, WantRead, WantWrite, Eof, Error };
  void handshake_finished();
  bool hand_over();
  bool tls_may_read();
  TlsIo tls_read(char* out, uint32_t cap, uint32_t& got);
  TlsIo tls_write(const char* p, uint32_t n, uint32_t& put);
  void tls_shutdown();
  std::string tls_error();
  void say_goodbye(const std::string& text);
  void client_failed();
  void flush_counters();
  void close(CloseReason reason, std::string detail = {});
  void fill_record(ConnRecord& r) const;
  // Login watching (conn_login.cc): outcomes, bans, then the watcher goes.
  void watch_logins(bool from_client, const char* data, size_t n);
  void on_login(const LoginOutcome& o);
  void set_deadline(int64_t ms);
  const ListenerPolicy& policy() const { return snap_->listeners[size_t(listener_)]; }

  Worker& w_;
  std::shared_ptr<const Snapshot> snap_;
  int listener_;
  int cfd_;
  int bfd_ = -1;
  SSL* ssl_ = nullptr;
  std::unique_ptr<Tls13Secrets> secrets_;  // during a handshake that may hand over
  std::unique_ptr<Tls13Record> rec_;       // after the hand-over (ssl_ is then null)
  // What the record says of the TLS session, taken when the handshake ends (the SSL may go).
  struct TlsFacts {
    const char* version = nullptr;  // static strings of OpenSSL's
    const char* cipher = nullptr;
    std::string group;
    bool resumed = false;
  } tls_facts_;
  State state_;
  Greeting greeting_ = Greeting::None;
  SockAddr peer_;
  std::string client_key_;     // client network (client_net.h): per_client, rate, bans
  bool client_held_ = false;  // client_key_ holds a per_client slot (released in close())
  bool exempt_ = false;       // limits.exempt: no per-client limit, no ban
  std::unique_ptr<LoginWatch> login_;  // until a login succeeds or the byte bound passes
  const char* login_state_ = "off";
  std::string user_;
  uint32_t login_failures_ = 0;
  bool banned_close_ = false;  // a failed login banned the network: close once the answer is out
  // From the PROXY header: what the client reached at the balancer (for our own
  // PROXY header to the backend). Unset: the socket's own local address.
  SockAddr proxied_local_;

  // Edge-triggered readiness, cleared when a call would block.
  // The client socket under OpenSSL (client_io.h), with its edge-triggered readiness.
  ClientIo cio_;
  bool b_readable_ = false, b_writable_ = false;
  // The backend's FIN (or an error) was signalled: read it to the end, as a short
  // read no longer says "drained" (the edge that announced the FIN is spent).
  bool b_hup_ = false;
  bool client_eof_ = false, backend_eof_ = false, backend_shut_ = false, tls_shut_ = false;
  bool hs_wants_read_ = false;  // the handshake waits for the client's bytes
  bool handshake_done_ = false, sni_rejected_ = false, alpn_rejected_ = false;
  // The servername callback runs once per ClientHello: twice after a HelloRetryRequest.
  uint8_t hellos_ = 0;
  bool first_had_sni_ = false, sni_changed_ = false;
  int unbuilt_context_ = -1;  // the SNI's certificate context, when its build failed (on_servername)
  std::string first_sni_raw_;  // the first ClientHello's name, as sent (at most 255 bytes)
  bool early_slot_ = false;    // holds one of the pool's kEarlyConnectsPerPool

  std::unique_ptr<PreTlsDialog> dialog_;
  std::string plain_out_;  // pre-TLS replies waiting to be written
  PreTlsDialog::Next after_flush_ = PreTlsDialog::Next::Continue;

  Buf c2b_, b2c_;
  // After STARTTLS, until the client authenticates (or kCapWindowBytes went by):
  // capability lines from the backend lose STARTTLS. Only the first b2c_ready_
  // bytes of b2c_ are filtered and may go to the client; the rest is a line still arriving.
  bool cap_window_ = false;
  uint32_t b2c_ready_ = 0, cap_window_bytes_ = 0;
  std::string client_line_;  // the start of the client's current command line
  int backend_ = -1;
  size_t server_ = 0, attempts_ = 0, first_server_ = 0;
  std::string sni_, server_local_;
  int64_t deadline_ms_ = 0, last_activity_ms_ = 0, fin_deadline_ms_ = 0;
  std::optional<CloseReason> first_eof_;  // ClientClosed or BackendClosed: who ended it
  int64_t t_accept_us_, t_handshake_us_ = 0, t_connect_start_us_ = 0, t_connected_us_ = 0;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
  uint64_t counted_in_ = 0, counted_out_ = 0;  // already added to the listener counters
  std::vector<bool> skipped_;                  // servers passed over as recently down (connect_next)
  std::string connect_error_;                  // last backend connect failure, for the record
};

}  // namespace mf
