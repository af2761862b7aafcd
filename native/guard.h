// Per client network state shared by all workers: failed logins within a
// window, the ban they lead to, and a token bucket of new connections per
// minute. Keyed by client_network(). Workers ask at accept (admit), report
// failed logins, and worker 0 sweeps once a second: bans that ended are
// returned once (so each is logged once), idle entries are dropped.
#pragma once
#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace mf {

// From the snapshot (limits.loginFailures, limits.connectionRate); no defaults here.
struct GuardPolicy {
  uint32_t failures{};      // failed logins within <window_ms> that ban; 0: no bans
  int64_t window_ms{};
  int64_t ban_ms{};
  uint32_t rate_per_min{};  // new connections per minute; 0: unlimited
};

class NetGuard {
 public:
  enum class Verdict : uint8_t { Ok, Banned, Rate };
  static constexpr size_t kMaxEntriesPerShard = 1 << 16;  // 1M networks in all; beyond, new ones go untracked

  // Any thread: a new connection from <key>.
  Verdict admit(const std::string& key, int64_t now_ms, const GuardPolicy& p);
  // Any thread: a failed login from <key>. True when it starts a ban (until <until_ms>).
  bool failed_login(const std::string& key, int64_t now_ms, const GuardPolicy& p, int64_t& until_ms);
  bool banned(const std::string& key, int64_t now_ms);
  // One thread at a time: appends the keys whose ban has ended, drops idle entries.
  void sweep(int64_t now_ms, const GuardPolicy& p, std::vector<std::string>& ended);
  size_t entries();
  size_t bans(int64_t now_ms);

 private:
  struct Entry {
    std::deque<int64_t> failures;  // times of recent failed logins, oldest first
    int64_t banned_until = 0;      // 0: not banned, or its end already reported
    double tokens = -1;            // connection bucket; <0: full (new entry)
    int64_t refilled_ms = 0;
    int64_t last_ms = 0;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Entry> map;
  };
  Shard& shard(const std::string& key) { return shards_[std::hash<std::string>{}(key) % shards_.size()]; }
  std::array<Shard, 16> shards_;
};

}  // namespace mf
