// What the data plane tells the control plane: one record per finished
// connection, and error events. Workers push; the addon delivers to JS in batches.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mf {

struct ConnRecord {
  std::string listener, protocol, client, backend, backend_local, pool, sni, tls_version, cipher, group, reason, detail;
  bool resumed = false;
  uint64_t bytes_in = 0, bytes_out = 0;
  double handshake_ms = 0, connect_ms = 0, duration_ms = 0;
};

struct Event {
  enum class Kind : uint8_t { Connection, Error } kind = Kind::Connection;
  ConnRecord record;
  std::string message;
  std::string listener;
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
