#include "proxy_header.h"

#include <arpa/inet.h>

#include <cstring>

#include "crc32c.h"

namespace mf {

namespace {

std::string ip_text(const SockAddr& a) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (a.family() == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_addr, buf, sizeof buf);
  else if (a.family() == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_addr, buf, sizeof buf);
  return buf;
}

uint16_t port_of(const SockAddr& a) {
  if (a.family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_port);
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_port);
}

void put16(std::string& h, size_t v) {
  h += char((v >> 8) & 0xff);
  h += char(v & 0xff);
}

void tlv(std::string& h, unsigned char type, std::string_view value) {
  h += char(type);
  put16(h, value.size());
  h += value;
}

// TLS details after the addresses, then the header's length and its CRC32C.
// SNI (<= 253 bytes), version and cipher names are short; each is cut at 255
// rather than trusted.
void append_tls(std::string& h, const ProxyTls& tls) {
  auto cut = [](std::string_view v) { return v.substr(0, 255); };
  size_t crc_at = h.size() + 3;
  tlv(h, kPp2TypeCrc32c, std::string_view("\0\0\0\0", 4));
  if (!tls.sni.empty()) tlv(h, kPp2TypeAuthority, cut(tls.sni));
  std::string ssl;
  ssl += char(kPp2ClientSsl);  // TLS on the client side; no client certificate (never requested)
  // verify: zero only for a presented and verified client certificate (the
  // spec); mailfront asks for none, so it is non-zero. HAProxy sends 0 here.
  ssl.append("\0\0\0\1", 4);
  tlv(ssl, kPp2SubtypeSslVersion, cut(tls.version));
  tlv(ssl, kPp2SubtypeSslCipher, cut(tls.cipher));
  tlv(h, kPp2TypeSsl, ssl);
  size_t len = h.size() - 16;
  h[14] = char(len >> 8);
  h[15] = char(len & 0xff);
  uint32_t crc = crc32c(h.data(), h.size());
  for (int i = 0; i < 4; i++) h[crc_at + size_t(i)] = char((crc >> (24 - 8 * i)) & 0xff);
}

}  // namespace

std::string proxy_header(ProxyHeader version, const SockAddr& client, const SockAddr& local, const ProxyTls* tls) {
  bool ip = (client.family() == AF_INET || client.family() == AF_INET6) && client.family() == local.family();
  if (version == ProxyHeader::V1) {
    if (!ip) return "PROXY UNKNOWN\r\n";
    return std::string("PROXY ") + (client.family() == AF_INET ? "TCP4 " : "TCP6 ") + ip_text(client) + " " +
           ip_text(local) + " " + std::to_string(port_of(client)) + " " + std::to_string(port_of(local)) + "\r\n";
  }
  if (version != ProxyHeader::V2 && version != ProxyHeader::V2Ssl) return {};
  bool with_tls = version == ProxyHeader::V2Ssl && tls;
  static const char sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
  std::string h(sig, sizeof sig);
  if (!ip) {
    h += char(0x20);  // v2, LOCAL
    h += char(0x00);
    h.append(2, '\0');
    // As HAProxy does: the TLS facts hold even when the addresses cannot be told.
    if (with_tls) append_tls(h, *tls);
    return h;
  }
  h += char(0x21);  // v2, PROXY
  bool v4 = client.family() == AF_INET;
  h += char(v4 ? 0x11 : 0x21);  // TCP over IPv4 / IPv6
  uint16_t len = htons(v4 ? 12 : 36);
  h.append(reinterpret_cast<const char*>(&len), 2);
  if (v4) {
    h.append(reinterpret_cast<const char*>(&reinterpret_cast<const sockaddr_in*>(&client.ss)->sin_addr), 4);
    h.append(reinterpret_cast<const char*>(&reinterpret_cast<const sockaddr_in*>(&local.ss)->sin_addr), 4);
  } else {
    h.append(reinterpret_cast<const char*>(&reinterpret_cast<const sockaddr_in6*>(&client.ss)->sin6_addr), 16);
    h.append(reinterpret_cast<const char*>(&reinterpret_cast<const sockaddr_in6*>(&local.ss)->sin6_addr), 16);
  }
  uint16_t sp = htons(port_of(client)), dp = htons(port_of(local));
  h.append(reinterpret_cast<const char*>(&sp), 2);
  h.append(reinterpret_cast<const char*>(&dp), 2);
  if (with_tls) append_tls(h, *tls);
  return h;
}

}  // namespace mf
