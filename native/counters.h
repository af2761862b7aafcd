// Per-worker, per-listener counters: relaxed atomics bumped by the owning
// worker, summed by stats() on the JS thread (a Prometheus scrape).
#pragma once
#include <atomic>
#include <cstdint>

namespace mf {

struct alignas(64) ListenerCounters {
  std::atomic<uint64_t> accepted{0}, rejected_limit{0}, rejected_per_client{0}, handshakes{0},
      handshake_failures{0}, resumed{0}, sni_unknown{0}, bytes_in{0}, bytes_out{0}, backend_failures{0},
      proxy_refused{0}, proxy_malformed{0}, early_deferred{0}, rejected_banned{0}, rejected_rate{0}, record_layer{0},
      record_layer_declined{0};
  std::atomic<int64_t> active{0};

  static void bump(std::atomic<uint64_t>& c, uint64_t n = 1) { c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
};

// The counters stats() reports, by their name in src/native.ts (ListenerCounters).
struct CounterField {
  const char* name;
  std::atomic<uint64_t> ListenerCounters::*field;
};
inline constexpr CounterField kCounterFields[] = {
    {"accepted", &ListenerCounters::accepted},
    {"rejectedLimit", &ListenerCounters::rejected_limit},
    {"rejectedPerClient", &ListenerCounters::rejected_per_client},
    {"handshakes", &ListenerCounters::handshakes},
    {"handshakeFailures", &ListenerCounters::handshake_failures},
    {"resumed", &ListenerCounters::resumed},
    {"sniUnknown", &ListenerCounters::sni_unknown},
    {"bytesIn", &ListenerCounters::bytes_in},
    {"bytesOut", &ListenerCounters::bytes_out},
    {"backendFailures", &ListenerCounters::backend_failures},
    {"proxyRefused", &ListenerCounters::proxy_refused},
    {"proxyMalformed", &ListenerCounters::proxy_malformed},
    {"earlyConnectsDeferred", &ListenerCounters::early_deferred},
    {"rejectedBanned", &ListenerCounters::rejected_banned},
    {"rejectedRate", &ListenerCounters::rejected_rate},
    {"recordLayer", &ListenerCounters::record_layer},
    {"recordLayerDeclined", &ListenerCounters::record_layer_declined},
};

}  // namespace mf
