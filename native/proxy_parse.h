// PROXY protocol header READER (v1 text, v2 binary) for listeners behind an L4
// balancer, and the trusted-sender check. Pure functions: no sockets, no state,
// so the fuzz target and the table tests call them directly.
// https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "net.h"

namespace mf {

// The most a header can take: v2's 16-byte fixed part + addresses + TLVs. We
// accept up to 520 bytes after the fixed part (unix addresses are 216, the
// rest is room for TLVs such as haproxy's unique-id or SSL info). Larger is refused.
constexpr size_t kProxyV2Max = 536;
// v1: "PROXY TCP6 <39> <39> <5> <5>\r\n" is at most 107 bytes with the CRLF.
constexpr size_t kProxyV1Max = 107;
// How much to peek so one read answers every well-formed header.
constexpr size_t kProxyPeek = kProxyV2Max;

struct ProxyParse {
  enum class Status : uint8_t { NeedMore, Done, Malformed };
  Status status = Status::NeedMore;
  // Done: the header's length in bytes (what to consume; the TLS ClientHello or
  // the pre-TLS bytes follow it and stay in the socket).
  size_t length = 0;
  // Done: true for v2 LOCAL, v1 UNKNOWN and non-IP families: keep the socket's own addresses.
  bool local = false;
  SockAddr src, dst;
  // Malformed: why, for the connection record.
  const char* why = "";
};

// Parses the start of <data>. NeedMore: every byte so far fits a header, and
// the header is not complete yet.
ProxyParse parse_proxy_header(std::string_view data);

// An address block "10.0.0.0/8", "::1/128", or a bare address (a host prefix).
struct Cidr {
  int family = 0;  // AF_INET or AF_INET6
  unsigned char addr[16] = {};
  unsigned prefix = 0;
};
bool parse_cidr(std::string_view text, Cidr& out);
// True when <a> lies in one of <nets>. An IPv4-mapped IPv6 address (a dual-stack
// socket) matches as the IPv4 address it carries.
bool cidr_match(const std::vector<Cidr>& nets, const SockAddr& a);

}  // namespace mf
