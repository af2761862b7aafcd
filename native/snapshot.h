// The immutable configuration the workers serve from: certificate contexts,
// the SNI index, backends, listener policies, timeouts and limits. Built on the
// JS thread, published atomically; a connection keeps the one it started with.
// No field has a default here: the reader takes every value from the JS snapshot
// (src/snapshot.ts sends them all; the defaults are src/config/schema.ts's).
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ctx_cache.h"
#include "guard.h"
#include "net.h"
#include "server_health.h"
#include "proxy_parse.h"
#include "protocol.h"
#include "util.h"

namespace mf {

// V2Ssl: v2 with the TLS TLVs (HAProxy's send-proxy-v2-ssl).
enum class ProxyHeader : uint8_t { Off, V1, V2, V2Ssl };

// Backend connections a pool may have opened for clients still in their TLS
// handshake (the early connect of Conn::on_servername). Beyond it, a client's
// backend connect waits for the end of its handshake: a client that sends a
// ClientHello and goes silent cannot hold more Cyrus processes than this.
constexpr uint32_t kEarlyConnectsPerPool = 32;

struct Backend {
  std::string name;
  std::vector<SockAddr> servers;
  std::vector<std::string> server_names;
  ProxyHeader proxy_header{};
  bool round_robin{};
  // One per server: the engine's entry for its address (ServerHealthTable::attach).
  std::vector<std::shared_ptr<ServerHealth>> health;
  // Shared by all workers: next server for round-robin.
  mutable std::atomic<uint32_t> next{0};
  // Early connects in flight (all workers), at most kEarlyConnectsPerPool.
  mutable std::atomic<uint32_t> early_connects{0};
};

struct Route {
  std::string sni;  // exact name, or ".example.org" for "*.example.org"
  int backend;
};

struct ListenerPolicy {
  std::string name;
  Proto proto{};
  int backend{};
  std::vector<Route> routes;
  std::string capabilities;
  std::string alpn;  // wire form: length byte + id
  // Behind an L4 balancer: every connection starts with a PROXY header (v1 or
  // v2) from one of <trusted_proxies>; its client address replaces the peer's.
  bool accept_proxy{};
  std::vector<Cidr> trusted_proxies;
};

struct Timeouts {
  int64_t handshake_ms{}, pretls_ms{}, connect_ms{}, idle_ms{};
};

struct Limits {
  uint32_t connections{}, per_client{}, line_bytes{};
  GuardPolicy guard;          // login bans and connection rate per client network
  int ipv6_prefix{};          // an IPv6 client network is its /ipv6_prefix
  bool login_tracking{};      // watch logins after TLS (outcomes, bans)
  std::vector<Cidr> exempt;   // client networks no per-client limit applies to
};

// The SNI lookup rule: the exact name, then the wildcard of its parent, one
// label up ("*.example.org" covers "a.example.org", not "example.org" nor
// "a.b.example.org"). <find>(wildcard, key) gives the context of <key> in the
// exact (false) or wildcard (true) table, or -1. One rule for the Snapshot's
// maps and for the index `mailfront check` reports on (findContext export,
// native/rules.cc). Cases: test/cases/sni-lookup.json.
struct NameMatch {
  int context = -1;
  bool wildcard = false;
};
template <class Find>
NameMatch match_name(std::string_view name, Find&& find) {
  if (name.empty()) return {};
  if (int c = find(false, name); c >= 0) return {c, false};
  size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0) return {};
  if (int c = find(true, name.substr(dot + 1)); c >= 0) return {c, true};
  return {};
}

struct Snapshot {
  std::vector<CertContextPtr> contexts;  // the default one built, the others on first use
  std::unordered_map<std::string, int> exact;
  std::unordered_map<std::string, int> wildcard;  // keyed by the suffix after "*."
  int default_ctx{};
  bool reject_unknown{};
  bool own_record_layer{};  // tls.recordLayer "mailfront": TLS 1.3 connections leave OpenSSL after the handshake
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<ListenerPolicy> listeners;
  Timeouts timeouts;
  Limits limits;

  // Context for a lowercase <name> (no trailing dot): exact, then one-label
  // wildcard, then -1. Any thread.
  int find_context(std::string_view name) const;
  // Backend pool for <listener> and <sni> ("" without SNI): routes, first match wins.
  int route(int listener, std::string_view sni) const;
};

}  // namespace mf
