// The client network a connection counts against (per_client, connection
// rate, login bans): an IPv4 address, or an IPv6 prefix (/64 by default: one
// subscriber's LAN). IPv6 forms that carry an IPv4 address (v4-mapped, 6to4,
// NAT64, Teredo) count as that IPv4 client, so a client cannot escape its
// limits by moving between its addresses. Pure.
#pragma once
#include <cstdint>
#include <string>

#include "net.h"

namespace mf {

// 4 bytes for IPv4 (also when embedded in IPv6), 17 for IPv6 (the prefix
// length, then the address with the bits past it cleared); empty otherwise.
std::string client_network(const SockAddr& a, int v6_prefix);

// "203.0.113.7" or "2001:db8:1:2::/64", for logs.
std::string format_network(const std::string& key);

}  // namespace mf
