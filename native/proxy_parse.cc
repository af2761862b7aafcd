#include "proxy_parse.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "crc32c.h"

namespace mf {

namespace {

constexpr char kSigV2[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
constexpr std::string_view kSigV1 = "PROXY ";

ProxyParse malformed(const char* why) {
  ProxyParse p;
  p.status = ProxyParse::Status::Malformed;
  p.why = why;
  return p;
}

// <data> so far agrees with <sig> (as far as both go).
bool agrees(std::string_view data, std::string_view sig) {
  size_t n = data.size() < sig.size() ? data.size() : sig.size();
  return memcmp(data.data(), sig.data(), n) == 0;
}

void set_v4(SockAddr& a, const unsigned char* ip, uint16_t port_be) {
  auto* s = reinterpret_cast<sockaddr_in*>(&a.ss);
  s->sin_family = AF_INET;
  memcpy(&s->sin_addr, ip, 4);
  s->sin_port = port_be;
  a.len = sizeof(sockaddr_in);
}

void set_v6(SockAddr& a, const unsigned char* ip, uint16_t port_be) {
  auto* s = reinterpret_cast<sockaddr_in6*>(&a.ss);
  s->sin6_family = AF_INET6;
  memcpy(&s->sin6_addr, ip, 16);
  s->sin6_port = port_be;
  a.len = sizeof(sockaddr_in6);
}

bool parse_port(std::string_view t, uint16_t& be) {
  unsigned v = 0;
  if (t.empty() || t.size() > 5) return false;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || p != t.data() + t.size() || v > 65535) return false;
  be = htons(uint16_t(v));
  return true;
}

ProxyParse parse_v1(std::string_view data) {
  // The line is printable ASCII up to its CRLF; anything else is refused as
  // soon as it shows, without waiting for 107 bytes.
  size_t end = std::string_view::npos;
  for (size_t i = 0; i < data.size() && i < kProxyV1Max; i++) {
    unsigned char c = static_cast<unsigned char>(data[i]);
    if (c == '\r') {
      if (i + 1 == data.size()) return {};  // the LF may follow
      if (data[i + 1] != '\n') return malformed("v1: CR without LF");
      // 107 bytes at most, the CRLF included.
      if (i + 2 > kProxyV1Max) return malformed("v1: no CRLF within 107 bytes");
      end = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return malformed("v1: a byte that is not printable ASCII");
  }
  if (end == std::string_view::npos) {
    if (data.size() >= kProxyV1Max) return malformed("v1: no CRLF within 107 bytes");
    return {};
  }
  std::string_view line = data.substr(0, end);
  ProxyParse p;
  p.status = ProxyParse::Status::Done;
  p.length = end + 2;
  // "UNKNOWN": the sender does not know the addresses; the rest of the line is ignored.
  if (line == "PROXY UNKNOWN" || line.starts_with("PROXY UNKNOWN ")) { p.local = true; return p; }
  std::string_view f[6];
  size_t n = 0, start = 0;
  for (size_t i = 0; i <= line.size(); i++) {
    if (i == line.size() || line[i] == ' ') {
      if (n == 6) return malformed("v1: too many fields");
      f[n++] = line.substr(start, i - start);
      start = i + 1;
    }
  }
  if (n != 6) return malformed("v1: expected PROXY TCP4|TCP6 src dst sport dport");
  int fam = f[1] == "TCP4" ? AF_INET : f[1] == "TCP6" ? AF_INET6 : 0;
  if (!fam) return malformed("v1: protocol is not TCP4, TCP6 or UNKNOWN");
  unsigned char s[16], d[16];
  char buf[64];
  for (int k = 0; k < 2; k++) {
    std::string_view t = f[2 + k];
    if (t.empty() || t.size() >= sizeof buf) return malformed("v1: bad address");
    memcpy(buf, t.data(), t.size());
    buf[t.size()] = '\0';
    if (inet_pton(fam, buf, k == 0 ? s : d) != 1) return malformed("v1: bad address");
  }
  uint16_t sp, dp;
  if (!parse_port(f[4], sp) || !parse_port(f[5], dp)) return malformed("v1: bad port");
  if (fam == AF_INET) { set_v4(p.src, s, sp); set_v4(p.dst, d, dp); }
  else { set_v6(p.src, s, sp); set_v6(p.dst, d, dp); }
  return p;
}

// The TLVs in [from, end): false when a PP2_TYPE_CRC32C TLV is there and the
// header's CRC32C (with that field zeroed) differs (the spec: the receiver
// MUST then treat the connection as invalid). Other TLVs are skipped, and so
// are trailing bytes too short to be a TLV, as before.
bool crc_ok(std::string_view data, size_t from, size_t end) {
  for (size_t i = from; i + 3 <= end;) {
    unsigned type = static_cast<unsigned char>(data[i]);
    size_t len = size_t(static_cast<unsigned char>(data[i + 1])) << 8 | static_cast<unsigned char>(data[i + 2]);
    if (i + 3 + len > end) return true;
    if (type == 0x03 && len == 4) {
      auto* v = reinterpret_cast<const unsigned char*>(data.data() + i + 3);
      uint32_t got = uint32_t(v[0]) << 24 | uint32_t(v[1]) << 16 | uint32_t(v[2]) << 8 | v[3];
      std::string copy(data.substr(0, end));
      memset(copy.data() + i + 3, 0, 4);
      return crc32c(copy.data(), copy.size()) == got;
    }
    i += 3 + len;
  }
  return true;
}

ProxyParse parse_v2(std::string_view data) {
  if (data.size() < 16) return {};
  auto u8 = [&](size_t i) { return static_cast<unsigned char>(data[i]); };
  if ((u8(12) >> 4) != 2) return malformed("v2: version is not 2");
  unsigned cmd = u8(12) & 0x0f;
  if (cmd > 1) return malformed("v2: command is neither LOCAL nor PROXY");
  size_t len = size_t(u8(14)) << 8 | u8(15);
  if (16 + len > kProxyV2Max) return malformed("v2: header longer than 536 bytes");
  if (data.size() < 16 + len) return {};
  ProxyParse p;
  p.status = ProxyParse::Status::Done;
  p.length = 16 + len;
  unsigned fam = u8(13) >> 4, proto = u8(13) & 0x0f;
  static const size_t kAddrLen[4] = {0, 12, 36, 216};
  if (fam <= 3 && kAddrLen[fam] <= len && !crc_ok(data, 16 + kAddrLen[fam], 16 + len))
    return malformed("v2: CRC32C does not match");
  // LOCAL: the balancer's own connection (a health check): its address is the real one.
  if (cmd == 0) { p.local = true; return p; }
  if (fam > 3 || proto > 2) return malformed("v2: unknown address family or protocol");
  // UNSPEC and unix sockets carry no client IP: keep the socket's addresses.
  if (fam == 0 || fam == 3) { p.local = true; return p; }
  if (proto != 1) return malformed("v2: not a stream (TCP) connection");
  auto* a = reinterpret_cast<const unsigned char*>(data.data() + 16);
  uint16_t sp, dp;
  if (fam == 1) {
    if (len < 12) return malformed("v2: address block too short for IPv4");
    memcpy(&sp, a + 8, 2);
    memcpy(&dp, a + 10, 2);
    set_v4(p.src, a, sp);
    set_v4(p.dst, a + 4, dp);
  } else {
    if (len < 36) return malformed("v2: address block too short for IPv6");
    memcpy(&sp, a + 32, 2);
    memcpy(&dp, a + 34, 2);
    set_v6(p.src, a, sp);
    set_v6(p.dst, a + 16, dp);
  }
  // TLVs after the addresses are skipped: nothing in them changes what we do.
  return p;
}

}  // namespace

ProxyParse parse_proxy_header(std::string_view data) {
  if (data.empty()) return {};
  if (data[0] == 'P') {
    if (!agrees(data, kSigV1)) return malformed("not a PROXY header");
    if (data.size() < kSigV1.size()) return {};
    return parse_v1(data);
  }
  if (data[0] == '\r') {
    if (!agrees(data, std::string_view(kSigV2, sizeof kSigV2))) return malformed("not a PROXY header");
    return parse_v2(data);
  }
  // A ClientHello (0x16) or a command: the sender speaks without a header.
  return malformed("not a PROXY header");
}

bool parse_cidr(std::string_view text, Cidr& out) {
  size_t slash = text.find('/');
  std::string_view ip = text.substr(0, slash);
  char buf[64];
  if (ip.empty() || ip.size() >= sizeof buf) return false;
  memcpy(buf, ip.data(), ip.size());
  buf[ip.size()] = '\0';
  Cidr c;
  if (inet_pton(AF_INET, buf, c.addr) == 1) c.family = AF_INET;
  else if (inet_pton(AF_INET6, buf, c.addr) == 1) c.family = AF_INET6;
  else return false;
  unsigned max = c.family == AF_INET ? 32 : 128;
  c.prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), c.prefix);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || c.prefix > max) return false;
  }
  out = c;
  return true;
}

bool cidr_match(const std::vector<Cidr>& nets, const SockAddr& a) {
  int fam = a.family();
  const unsigned char* ip;
  if (fam == AF_INET) {
    ip = reinterpret_cast<const unsigned char*>(&reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_addr);
  } else if (fam == AF_INET6) {
    ip = reinterpret_cast<const unsigned char*>(&reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_addr);
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(ip, mapped, 12) == 0) { fam = AF_INET; ip += 12; }
  } else {
    return false;
  }
  for (const Cidr& n : nets) {
    if (n.family != fam) continue;
    unsigned full = n.prefix / 8, rest = n.prefix % 8;
    if (memcmp(ip, n.addr, full) != 0) continue;
    if (rest) {
      unsigned char mask = static_cast<unsigned char>(0xff00 >> rest);
      if ((ip[full] & mask) != (n.addr[full] & mask)) continue;
    }
    return true;
  }
  return false;
}

}  // namespace mf
