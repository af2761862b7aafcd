#include "guard.h"

#include <algorithm>

namespace mf {

NetGuard::Verdict NetGuard::admit(const std::string& key, int64_t now, const GuardPolicy& p) {
  if (p.rate_per_min == 0 && p.failures == 0) return Verdict::Ok;
  Shard& s = shard(key);
  std::lock_guard lk(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) {
    // Without a rate limit, an unknown network has nothing to remember yet.
    if (s.map.size() >= kMaxEntriesPerShard || p.rate_per_min == 0) return Verdict::Ok;
    it = s.map.emplace(key, Entry{}).first;
  }
  Entry& e = it->second;
  e.last_ms = now;
  if (e.banned_until > now) return Verdict::Banned;
  if (p.rate_per_min == 0) return Verdict::Ok;
  double cap = double(p.rate_per_min);
  if (e.tokens < 0) e.tokens = cap;
  else e.tokens = std::min(cap, e.tokens + double(now - e.refilled_ms) * cap / 60000.0);
  e.refilled_ms = now;
  if (e.tokens < 1) return Verdict::Rate;
  e.tokens -= 1;
  return Verdict::Ok;
}

bool NetGuard::failed_login(const std::string& key, int64_t now, const GuardPolicy& p, int64_t& until) {
  if (p.failures == 0) return false;
  Shard& s = shard(key);
  std::lock_guard lk(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) {
    if (s.map.size() >= kMaxEntriesPerShard) return false;
    it = s.map.emplace(key, Entry{}).first;
  }
  Entry& e = it->second;
  e.last_ms = now;
  if (e.banned_until > now) return false;  // banned already: one ban, one log line
  while (!e.failures.empty() && e.failures.front() <= now - p.window_ms) e.failures.pop_front();
  e.failures.push_back(now);
  if (e.failures.size() < p.failures) return false;
  e.failures.clear();
  e.banned_until = until = now + p.ban_ms;
  return true;
}

bool NetGuard::banned(const std::string& key, int64_t now) {
  Shard& s = shard(key);
  std::lock_guard lk(s.mu);
  auto it = s.map.find(key);
  return it != s.map.end() && it->second.banned_until > now;
}

void NetGuard::sweep(int64_t now, const GuardPolicy& p, std::vector<std::string>& ended) {
  for (Shard& s : shards_) {
    std::lock_guard lk(s.mu);
    for (auto it = s.map.begin(); it != s.map.end();) {
      Entry& e = it->second;
      if (e.banned_until && e.banned_until <= now) {
        ended.push_back(it->first);
        e.banned_until = 0;
      }
      while (!e.failures.empty() && e.failures.front() <= now - p.window_ms) e.failures.pop_front();
      // Idle: no ban, no recent failure, and a bucket that would be full again.
      bool idle = !e.banned_until && e.failures.empty() && now - e.last_ms >= 60000;
      it = idle ? s.map.erase(it) : std::next(it);
    }
  }
}

size_t NetGuard::entries() {
  size_t n = 0;
  for (Shard& s : shards_) {
    std::lock_guard lk(s.mu);
    n += s.map.size();
  }
  return n;
}

size_t NetGuard::bans(int64_t now) {
  size_t n = 0;
  for (Shard& s : shards_) {
    std::lock_guard lk(s.mu);
    for (auto& [k, e] : s.map) n += e.banned_until > now;
  }
  return n;
}

}  // namespace mf
