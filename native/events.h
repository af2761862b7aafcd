// What the data plane tells the control plane: one record per finished
// connection, and error events. Workers push; the addon delivers to JS in batches.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mf {

struct ConnRecord {
  // pool: the backend pool (config backends.<name>); server: the one of its
  // servers the connection reached, server_local our address towards it.
  std::string listener, protocol, client, server, server_local, pool, sni, tls_version, cipher, group, reason, detail;
  // Logins seen on the connection: "off" (not watched), "none", "success",
  // "failure" (failures only), "bound" (watching stopped at the byte bound).
  std::string login = "off", user;
  uint32_t login_failures = 0;
  bool resumed = false;
  uint64_t bytes_in = 0, bytes_out = 0;
  double handshake_ms = 0, connect_ms = 0, duration_ms = 0;
};

// One login outcome (never a password or SASL payload), or a ban of a client
// network starting (network, ban_ms, failures) or ending (network).
struct LoginRecord {
  std::string protocol, client, network, sni, user, mech, result;
};

struct Event {
  enum class Kind : uint8_t { Connection, Error, Login, Ban, BanEnded } kind = Kind::Connection;
  ConnRecord record;
  LoginRecord login;
  std::string message;
  std::string listener;
  std::string network;
  int64_t ban_ms = 0;  // Ban: how long it lasts from now
  uint32_t failures = 0;
};

// Any thread. Workers hand over events in batches (see Worker::emit), so the
// JS thread wakes a few times a second under load, not once per connection.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Takes every event of <batch>, leaving it empty.
  virtual void push(std::vector<Event>& batch) = 0;
};

}  // namespace mf
