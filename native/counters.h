// Per-worker, per-listener counters: relaxed atomics bumped by the owning
// worker, summed by stats() on the JS thread (a Prometheus scrape).
#pragma once
#include <atomic>
#include <cstdint>

namespace mf {

struct alignas(64) ListenerCounters {
  std::atomic<uint64_t> accepted{0}, rejected_limit{0}, rejected_per_client{0}, handshakes{0},
      handshake_failures{0}, resumed{0}, sni_unknown{0}, bytes_in{0}, bytes_out{0}, backend_failures{0},
      proxy_refused{0}, proxy_malformed{0};
  std::atomic<int64_t> active{0};

  static void bump(std::atomic<uint64_t>& c, uint64_t n = 1) { c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
};

}  // namespace mf
