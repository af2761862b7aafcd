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

// Why an address text is refused; the control plane words each one
// (src/config/address.ts), through the parseAddress export (native/rules.cc).
enum class AddrError : uint8_t {
  None,
  MissingBracket,     // "[::1:993": no "]"
  NoPortAfterBracket, // "[::1]993"
  NotIpv6,            // "[1.2.3.4]:993": brackets hold an IPv6 address
  NoPort,             // "1.2.3.4": no ":"
  UnbracketedIpv6,    // "::1:993"
  NoHost,             // ":993"
  NotIp,              // "mail.example.org:993": no IP literal (the data plane does not resolve)
  BadPort,            // not 1 to 5 digits
  PortRange,          // above 65535
  UnixTooLong,        // over 107 bytes (sun_path with its NUL)
  UnixNul,            // a NUL would cut the path the kernel sees
};

// "1.2.3.4:993", "[::1]:993" or "/abs/unix/path"; port 0..65535, written as
// 1 to 5 digits. Empty on a malformed address, with the reason in <why> and,
// for host:port texts, the host and port texts in <host> and <port>.
std::optional<SockAddr> parse_addr(std::string_view text, AddrError* why = nullptr, std::string_view* host = nullptr,
                                   std::string_view* port = nullptr);
// "1.2.3.4:993", "[::1]:993", "unix:/path".
std::string format_addr(const SockAddr& a);
// Address only, for per-client limits: 4 bytes for IPv4 (also when v4-mapped), 16 for IPv6.
std::string addr_key(const SockAddr& a);

// A non-blocking listening socket bound to <addr>, or -1 with <err> set.
int open_listener(const SockAddr& addr, std::string& err);

}  // namespace mf
