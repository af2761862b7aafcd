#include "proxy_header.h"

#include <arpa/inet.h>

#include <cstring>

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

}  // namespace

std::string proxy_header(ProxyHeader version, const SockAddr& client, const SockAddr& local) {
  bool ip = (client.family() == AF_INET || client.family() == AF_INET6) && client.family() == local.family();
  if (version == ProxyHeader::V1) {
    if (!ip) return "PROXY UNKNOWN\r\n";
    return std::string("PROXY ") + (client.family() == AF_INET ? "TCP4 " : "TCP6 ") + ip_text(client) + " " +
           ip_text(local) + " " + std::to_string(port_of(client)) + " " + std::to_string(port_of(local)) + "\r\n";
  }
  if (version != ProxyHeader::V2) return {};
  static const char sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
  std::string h(sig, sizeof sig);
  if (!ip) {
    h += char(0x20);  // v2, LOCAL
    h += char(0x00);
    h.append(2, '\0');
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
  return h;
}

}  // namespace mf
