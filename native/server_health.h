// Whether each backend server answered lately. Shared by every worker and owned by
// the engine, keyed by the server's address, so it outlives snapshots: a server that
// refused or timed out is skipped for kBackoffMs also by connections under a snapshot
// applied since (a SIGHUP does not forget which servers are down).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

namespace mf {

struct Snapshot;

class ServerHealth {
 public:
  // A failed server is left alone this long; when every server of a pool is down,
  // they are tried anyway (Conn::next_server's second pass).
  static constexpr int64_t kBackoffMs = 2000;

  // Any thread.
  bool down(int64_t now_ms) const { return down_until_ms_.load(std::memory_order_relaxed) > now_ms; }
  void mark_down(int64_t now_ms) { down_until_ms_.store(now_ms + kBackoffMs, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> down_until_ms_{0};
};

class ServerHealthTable {
 public:
  // JS thread, before <snap> is published: gives each server of <snap> the entry of its
  // address (a new one for a new address) and forgets the addresses <snap> does not have.
  // A connection still under an older snapshot keeps its entries alive through that snapshot.
  void attach(Snapshot& snap);
  // JS thread: addresses tracked (the servers of the current snapshot).
  size_t size() const { return by_address_.size(); }

 private:
  std::unordered_map<std::string, std::shared_ptr<ServerHealth>> by_address_;
};

}  // namespace mf
