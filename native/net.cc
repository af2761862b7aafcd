#include "net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace mf {

std::optional<SockAddr> parse_addr(std::string_view text, AddrError* why, std::string_view* host_out,
                                   std::string_view* port_out) {
  auto refuse = [why](AddrError e) -> std::optional<SockAddr> {
    if (why) *why = e;
    return std::nullopt;
  };
  if (why) *why = AddrError::None;
  SockAddr out;
  if (!text.empty() && text[0] == '/') {
    auto* un = reinterpret_cast<sockaddr_un*>(&out.ss);
    if (text.size() >= sizeof(un->sun_path)) return refuse(AddrError::UnixTooLong);
    // A NUL would silently cut the path the kernel sees.
    if (text.find('\0') != std::string_view::npos) return refuse(AddrError::UnixNul);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, text.data(), text.size());
    out.len = socklen_t(offsetof(sockaddr_un, sun_path) + text.size() + 1);
    return out;
  }
  std::string_view host, port;
  bool bracketed = !text.empty() && text[0] == '[';
  if (bracketed) {
    auto close = text.find(']');
    if (close == std::string_view::npos) return refuse(AddrError::MissingBracket);
    host = text.substr(1, close - 1);
    if (host_out) *host_out = host;
    if (close + 1 >= text.size() || text[close + 1] != ':') return refuse(AddrError::NoPortAfterBracket);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return refuse(AddrError::NoPort);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host_out) *host_out = host;
    if (host.find(':') != std::string_view::npos) {
      if (port_out) *port_out = port;
      return refuse(AddrError::UnbracketedIpv6);
    }
    if (host.empty()) return refuse(AddrError::NoHost);
  }
  if (port_out) *port_out = port;
  // inet_pton needs a NUL-terminated copy; a longer text is no address.
  char buf[INET6_ADDRSTRLEN + 1];
  bool fits = host.size() < sizeof buf && host.find('\0') == std::string_view::npos;
  if (fits) {
    memcpy(buf, host.data(), host.size());
    buf[host.size()] = '\0';
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.ss);
  if (bracketed) {
    if (!fits || inet_pton(AF_INET6, buf, &v6->sin6_addr) != 1) return refuse(AddrError::NotIpv6);
  } else if (!fits || inet_pton(AF_INET, buf, &v4->sin_addr) != 1) {
    return refuse(AddrError::NotIp);
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) {
    return refuse(AddrError::BadPort);
  }
  unsigned p = 0;
  std::from_chars(port.data(), port.data() + port.size(), p);
  if (p > 65535) return refuse(AddrError::PortRange);
  if (bracketed) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(uint16_t(p));
    out.len = sizeof(sockaddr_in6);
  } else {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(uint16_t(p));
    out.len = sizeof(sockaddr_in);
  }
  return out;
}

std::string format_addr(const SockAddr& a) {
  char buf[INET6_ADDRSTRLEN];
  switch (a.family()) {
    case AF_INET: {
      auto* v4 = reinterpret_cast<const sockaddr_in*>(&a.ss);
      inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
      return std::string(buf) + ":" + std::to_string(ntohs(v4->sin_port));
    }
    case AF_INET6: {
      auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a.ss);
      inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
      return "[" + std::string(buf) + "]:" + std::to_string(ntohs(v6->sin6_port));
    }
    case AF_UNIX: {
      auto* un = reinterpret_cast<const sockaddr_un*>(&a.ss);
      return std::string("unix:") + un->sun_path;
    }
  }
  return "?";
}

std::string addr_key(const SockAddr& a) {
  if (a.family() == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(&a.ss);
    return std::string(reinterpret_cast<const char*>(&v4->sin_addr), 4);
  }
  if (a.family() == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a.ss);
    // ::ffff:a.b.c.d (a dual-stack socket) is the same client as a.b.c.d.
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) return std::string(reinterpret_cast<const char*>(&v6->sin6_addr) + 12, 4);
    return std::string(reinterpret_cast<const char*>(&v6->sin6_addr), 16);
  }
  return {};
}

int open_listener(const SockAddr& addr, std::string& err) {
  int fd = socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { err = strerror(errno); return -1; }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // "[::]:993" beside "0.0.0.0:993": each socket serves its own family.
  if (addr.family() == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, addr.sa(), addr.len) != 0 || listen(fd, 4096) != 0) {
    err = strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace mf
