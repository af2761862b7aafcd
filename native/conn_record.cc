// The record of a finished connection, for the log and the metrics (events.h).
#include "conn.h"
#include "engine.h"
#include "tls.h"

namespace mf {

namespace {

double ms_between(int64_t from_us, int64_t to_us) { return from_us && to_us >= from_us ? double(to_us - from_us) / 1000.0 : 0; }

}  // namespace

// Everything but the reason and its detail, which close() adds.
void Conn::fill_record(ConnRecord& r) const {
  const ListenerPolicy& lp = policy();
  r.listener = lp.name;
  r.protocol = proto_name(lp.proto);
  r.client = format_addr(peer_);
  if (backend_ >= 0 && handshake_done_) {
    const Backend& b = *snap_->backends[size_t(backend_)];
    r.pool = b.name;
    if (t_connected_us_) r.server = b.server_names[server_];
  }
  r.server_local = server_local_;
  r.sni = sni_;
  if (handshake_done_) {
    r.tls_version = tls_facts_.version ? tls_facts_.version : "";
    r.cipher = tls_facts_.cipher ? tls_facts_.cipher : "";
    r.group = tls_facts_.group;
    r.resumed = tls_facts_.resumed;
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
}

}  // namespace mf
