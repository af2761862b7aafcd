// Why a connection ended: the one list of close reasons. The record (events.h)
// carries the name; src/log.ts logs the ordinary ones at info and the rest at
// warn; metrics label mailfront_connections_closed_total with the name. JS
// reads the table through the addon (closeReasons), so no list is kept there.
#pragma once
#include <cstddef>
#include <cstdint>
#include <iterator>

namespace mf {

enum class CloseReason : uint8_t {
  // Ordinary ends.
  ClientClosed,   // the client closed first (close_notify or FIN), then the backend
  BackendClosed,  // the backend closed first (Cyrus after LOGOUT), then the client
  PretlsClosed,   // a STARTTLS client left, or said LOGOUT/QUIT, before STARTTLS
  IdleTimeout,    // timeouts.idle with no byte either way
  Shutdown,       // stop(): the service is going down
  // Failures and refusals.
  ClientError,
  BackendError,
  BackendUnavailable,  // no server of the pool answered
  FdExhausted,         // no file descriptor for the backend connection
  InternalError,
  HandshakeFailed,
  HandshakeTimeout,
  SniRejected,   // unknown_sni: reject
  SniChanged,    // the ClientHello after a HelloRetryRequest names another server
  AlpnRejected,  // no ALPN id of this listener offered
  PretlsTimeout,
  PretlsFlood,  // commands faster than the replies are read
  ProxyHeaderRefused,
  ProxyHeaderMalformed,
  ProxyHeaderTimeout,
  PerClientLimit,
  Banned,
  RateLimited,
};

struct CloseReasonInfo {
  CloseReason reason;
  const char* name;
  bool ordinary;  // how connections end: logged at info, not warn
};

// In the enum's order (checked below).
inline constexpr CloseReasonInfo kCloseReasons[] = {
    {CloseReason::ClientClosed, "client_closed", true},
    {CloseReason::BackendClosed, "backend_closed", true},
    {CloseReason::PretlsClosed, "pretls_closed", true},
    {CloseReason::IdleTimeout, "idle_timeout", true},
    {CloseReason::Shutdown, "shutdown", true},
    {CloseReason::ClientError, "client_error", false},
    {CloseReason::BackendError, "backend_error", false},
    {CloseReason::BackendUnavailable, "backend_unavailable", false},
    {CloseReason::FdExhausted, "fd_exhausted", false},
    {CloseReason::InternalError, "internal_error", false},
    {CloseReason::HandshakeFailed, "handshake_failed", false},
    {CloseReason::HandshakeTimeout, "handshake_timeout", false},
    {CloseReason::SniRejected, "sni_rejected", false},
    {CloseReason::SniChanged, "sni_changed", false},
    {CloseReason::AlpnRejected, "alpn_rejected", false},
    {CloseReason::PretlsTimeout, "pretls_timeout", false},
    {CloseReason::PretlsFlood, "pretls_flood", false},
    {CloseReason::ProxyHeaderRefused, "proxy_header_refused", false},
    {CloseReason::ProxyHeaderMalformed, "proxy_header_malformed", false},
    {CloseReason::ProxyHeaderTimeout, "proxy_header_timeout", false},
    {CloseReason::PerClientLimit, "per_client_limit", false},
    {CloseReason::Banned, "banned", false},
    {CloseReason::RateLimited, "rate_limited", false},
};

constexpr bool close_reasons_in_order() {
  for (size_t i = 0; i < std::size(kCloseReasons); i++)
    if (size_t(kCloseReasons[i].reason) != i) return false;
  return size_t(CloseReason::RateLimited) + 1 == std::size(kCloseReasons);
}
static_assert(close_reasons_in_order(), "kCloseReasons: one entry per CloseReason, in the enum's order");

constexpr const char* close_reason_name(CloseReason r) { return kCloseReasons[size_t(r)].name; }

}  // namespace mf
