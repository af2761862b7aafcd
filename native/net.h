// Socket addresses: parsing "ip:port" / "[v6]:port" / unix paths, formatting, listening sockets.
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <optional>
#include <string>
#include <string_view>

namespace mf {

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
  sockaddr* sa() { return reinterpret_cast<sockaddr*>(&ss); }
};

// "1.2.3.4:993", "[::1]:993" or "/abs/unix/path". Empty on a malformed address.
std::optional<SockAddr> parse_addr(std::string_view text);
// "1.2.3.4:993", "[::1]:993", "unix:/path".
std::string format_addr(const SockAddr& a);
// Address only, for per-client limits: 4 bytes for IPv4 (also when v4-mapped), 16 for IPv6.
std::string addr_key(const SockAddr& a);

// A non-blocking listening socket bound to <addr>, or -1 with <err> set.
int open_listener(const SockAddr& addr, std::string& err);

}  // namespace mf
