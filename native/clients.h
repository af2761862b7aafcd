// Connections per client address, shared by all workers (per_client limit).
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace mf {

class ClientTable {
 public:
  // Any thread. False when <key> already holds <limit> connections.
  bool acquire(const std::string& key, uint32_t limit) {
    Shard& s = shard(key);
    std::lock_guard lk(s.mu);
    uint32_t& n = s.counts[key];
    if (n >= limit) {
      if (n == 0) s.counts.erase(key);
      return false;
    }
    n++;
    return true;
  }
  void release(const std::string& key) {
    Shard& s = shard(key);
    std::lock_guard lk(s.mu);
    auto it = s.counts.find(key);
    if (it != s.counts.end() && --it->second == 0) s.counts.erase(it);
  }

 private:
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, uint32_t> counts;
  };
  Shard& shard(const std::string& key) { return shards_[std::hash<std::string>{}(key) % shards_.size()]; }
  std::array<Shard, 16> shards_;
};

}  // namespace mf
