#include "client_net.h"

#include <arpa/inet.h>

#include <cstring>

namespace mf {

namespace {

std::string v4(const uint8_t* b) { return std::string(reinterpret_cast<const char*>(b), 4); }

}  // namespace

std::string client_network(const SockAddr& a, int v6_prefix) {
  if (a.family() == AF_INET) return v4(reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_addr));
  if (a.family() != AF_INET6) return {};
  const uint8_t* b = reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_addr.s6_addr;
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};  // 64:ff9b::/96 (RFC 6052)
  if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0) return v4(b + 12);
  if (b[0] == 0x20 && b[1] == 0x02) return v4(b + 2);  // 6to4, 2002:AABB:CCDD::/48 (RFC 3056)
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) {
    // Teredo 2001:0::/32 (RFC 4380): the client's public address, inverted, in the last 32 bits.
    uint8_t c[4] = {uint8_t(~b[12]), uint8_t(~b[13]), uint8_t(~b[14]), uint8_t(~b[15])};
    return v4(c);
  }
  int prefix = v6_prefix < 0 ? 0 : v6_prefix > 128 ? 128 : v6_prefix;
  std::string key(17, '\0');
  key[0] = char(prefix);
  for (int i = 0; i < 16; i++) {
    int keep = prefix - i * 8;
    uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : uint8_t(0xff << (8 - keep));
    key[size_t(1 + i)] = char(b[i] & mask);
  }
  return key;
}

std::string format_network(const std::string& key) {
  char buf[INET6_ADDRSTRLEN];
  if (key.size() == 4 && inet_ntop(AF_INET, key.data(), buf, sizeof buf)) return buf;
  if (key.size() == 17 && inet_ntop(AF_INET6, key.data() + 1, buf, sizeof buf))
    return std::string(buf) + "/" + std::to_string(static_cast<unsigned char>(key[0]));
  return "?";
}

}  // namespace mf
