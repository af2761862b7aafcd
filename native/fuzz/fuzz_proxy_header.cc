// PROXY protocol header writer (native/proxy_header.h) for random addresses,
// ports and families (AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC, mixed).
//
// Invariants (https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt):
//  - v1: "PROXY TCP4|TCP6 src dst sport dport\r\n" or "PROXY UNKNOWN\r\n",
//    at most 107 bytes, one line, fields that read back to the inputs;
//  - v2: the 12-byte signature, version/command 0x21 (PROXY) or 0x20 (LOCAL),
//    family 0x11/0x21 (0x00 for LOCAL), a length field equal to the bytes
//    after the 16-byte header, addresses and ports that read back;
//  - v2-ssl: the v2 header, then exactly the TLVs CRC32C, AUTHORITY (when an
//    SNI is given) and SSL (client PP2_CLIENT_SSL, verify non-zero, VERSION
//    and CIPHER sub-TLVs), each value read back (cut at 255 bytes), a length
//    field that covers them, a CRC32C over the header with its field zeroed,
//    and mailfront's own reader (proxy_parse) takes it whole;
//  - off: nothing.
#include <arpa/inet.h>
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "../crc32c.h"
#include "../proxy_header.h"
#include "../proxy_parse.h"
#include "check.h"

using mf::SockAddr;

namespace {

SockAddr make_addr(FuzzedDataProvider& fdp) {
  SockAddr a;
  static const int fams[] = {AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC};
  uint8_t pick = fdp.ConsumeIntegral<uint8_t>();
  int fam = pick < 252 ? fams[pick % 3 == 2 && pick & 8 ? 3 : pick % 3] : fdp.ConsumeIntegral<uint8_t>();
  // The rest of the storage: arbitrary bytes (what a buggy caller might leave).
  auto raw = fdp.ConsumeBytes<uint8_t>(sizeof a.ss);
  if (!raw.empty()) std::memcpy(&a.ss, raw.data(), raw.size());
  a.ss.ss_family = sa_family_t(fam);
  a.len = fam == AF_INET ? sizeof(sockaddr_in) : fam == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_un);
  return a;
}

std::string ntop(const SockAddr& a) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (a.family() == AF_INET) inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_addr, buf, sizeof buf);
  else inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_addr, buf, sizeof buf);
  return buf;
}

uint16_t port(const SockAddr& a) {
  return a.family() == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_port)
                               : ntohs(reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_port);
}

uint16_t be16(std::string_view s, size_t at) { return uint16_t(uint8_t(s[at]) << 8 | uint8_t(s[at + 1])); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  SockAddr client = make_addr(fdp);
  SockAddr local = make_addr(fdp);
  bool ip = (client.family() == AF_INET || client.family() == AF_INET6) && client.family() == local.family();

  FUZZ_CHECK(mf::proxy_header(mf::ProxyHeader::Off, client, local).empty(), "off: a header");

  // ---- v1 ----
  std::string v1 = mf::proxy_header(mf::ProxyHeader::V1, client, local);
  FUZZ_CHECK(v1.size() <= 107, "v1: %zu bytes > 107", v1.size());
  FUZZ_CHECK(v1.ends_with("\r\n") && v1.find_first_of(std::string_view("\r\n\0", 3)) == v1.size() - 2,
             "v1: not one CRLF-terminated line");
  if (!ip) {
    FUZZ_CHECK(v1 == "PROXY UNKNOWN\r\n", "v1: non-IP gives [%s]", v1.c_str());
  } else {
    std::string want = std::string("PROXY ") + (client.family() == AF_INET ? "TCP4 " : "TCP6 ") + ntop(client) + " " +
                       ntop(local) + " " + std::to_string(port(client)) + " " + std::to_string(port(local)) + "\r\n";
    FUZZ_CHECK(v1 == want, "v1: [%s] want [%s]", v1.c_str(), want.c_str());
  }

  // ---- v2 ----
  std::string v2 = mf::proxy_header(mf::ProxyHeader::V2, client, local);
  static const char sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
  FUZZ_CHECK(v2.size() >= 16 && std::memcmp(v2.data(), sig, 12) == 0, "v2: no signature");
  FUZZ_CHECK(be16(v2, 14) == v2.size() - 16, "v2: length field %u, payload %zu", be16(v2, 14), v2.size() - 16);
  if (!ip) {
    FUZZ_CHECK(uint8_t(v2[12]) == 0x20 && uint8_t(v2[13]) == 0x00 && v2.size() == 16, "v2: non-IP is not LOCAL/UNSPEC");
  } else {
    FUZZ_CHECK(uint8_t(v2[12]) == 0x21, "v2: command not PROXY");
    bool v4 = client.family() == AF_INET;
    FUZZ_CHECK(uint8_t(v2[13]) == (v4 ? 0x11 : 0x21), "v2: family byte 0x%02x", uint8_t(v2[13]));
    size_t alen = v4 ? 4 : 16;
    FUZZ_CHECK(v2.size() == 16 + 2 * alen + 4, "v2: size %zu", v2.size());
    const void* ca = v4 ? (const void*)&reinterpret_cast<const sockaddr_in*>(&client.ss)->sin_addr
                        : (const void*)&reinterpret_cast<const sockaddr_in6*>(&client.ss)->sin6_addr;
    const void* la = v4 ? (const void*)&reinterpret_cast<const sockaddr_in*>(&local.ss)->sin_addr
                        : (const void*)&reinterpret_cast<const sockaddr_in6*>(&local.ss)->sin6_addr;
    FUZZ_CHECK(std::memcmp(v2.data() + 16, ca, alen) == 0, "v2: source address");
    FUZZ_CHECK(std::memcmp(v2.data() + 16 + alen, la, alen) == 0, "v2: destination address");
    FUZZ_CHECK(be16(v2, 16 + 2 * alen) == port(client) && be16(v2, 18 + 2 * alen) == port(local), "v2: ports");
  }

  // ---- v2-ssl ----
  std::string tv = fdp.ConsumeRandomLengthString(300), tc = fdp.ConsumeRandomLengthString(300),
              ts = fdp.ConsumeRandomLengthString(300);
  mf::ProxyTls tls{tv, tc, ts};
  std::string s = mf::proxy_header(mf::ProxyHeader::V2Ssl, client, local, &tls);
  FUZZ_CHECK(s.size() >= 16 && s.compare(0, 14, v2, 0, 14) == 0, "v2-ssl: fixed part differs from v2's");
  FUZZ_CHECK(be16(s, 14) == s.size() - 16, "v2-ssl: length field %u, payload %zu", be16(s, 14), s.size() - 16);
  size_t at = v2.size();
  FUZZ_CHECK(s.size() >= at && s.compare(16, at - 16, v2, 16, at - 16) == 0, "v2-ssl: addresses differ from v2's");
  auto cut = [](const std::string& v) { return std::string_view(v).substr(0, 255); };
  // CRC32C
  FUZZ_CHECK(at + 7 <= s.size() && uint8_t(s[at]) == 0x03 && be16(s, at + 1) == 4, "v2-ssl: no CRC32C TLV first");
  uint32_t got = uint32_t(uint8_t(s[at + 3])) << 24 | uint32_t(uint8_t(s[at + 4])) << 16 | uint32_t(uint8_t(s[at + 5])) << 8 |
                 uint8_t(s[at + 6]);
  std::string zeroed = s;
  std::memset(zeroed.data() + at + 3, 0, 4);
  FUZZ_CHECK(mf::crc32c(zeroed.data(), zeroed.size()) == got, "v2-ssl: CRC32C");
  at += 7;
  // AUTHORITY
  if (!ts.empty()) {
    FUZZ_CHECK(uint8_t(s[at]) == 0x02 && be16(s, at + 1) == cut(ts).size(), "v2-ssl: AUTHORITY header");
    FUZZ_CHECK(std::string_view(s).substr(at + 3, cut(ts).size()) == cut(ts), "v2-ssl: AUTHORITY value");
    at += 3 + cut(ts).size();
  }
  // SSL
  size_t ssl_len = 5 + 3 + cut(tv).size() + 3 + cut(tc).size();
  FUZZ_CHECK(uint8_t(s[at]) == 0x20 && be16(s, at + 1) == ssl_len && at + 3 + ssl_len == s.size(), "v2-ssl: SSL TLV bounds");
  FUZZ_CHECK(uint8_t(s[at + 3]) == 0x01 && s.compare(at + 4, 4, std::string("\0\0\0\1", 4)) == 0, "v2-ssl: client/verify");
  size_t v = at + 8;
  FUZZ_CHECK(uint8_t(s[v]) == 0x21 && std::string_view(s).substr(v + 3, be16(s, v + 1)) == cut(tv), "v2-ssl: VERSION");
  v += 3 + cut(tv).size();
  FUZZ_CHECK(uint8_t(s[v]) == 0x23 && std::string_view(s).substr(v + 3, be16(s, v + 1)) == cut(tc), "v2-ssl: CIPHER");
  // The reader takes it whole (when it fits the reader's bound), with the same addresses.
  if (s.size() <= mf::kProxyV2Max) {
    mf::ProxyParse p = mf::parse_proxy_header(s);
    FUZZ_CHECK(p.status == mf::ProxyParse::Status::Done && p.length == s.size(), "v2-ssl: reader says %d (%s)", int(p.status), p.why);
    FUZZ_CHECK(p.local == !ip, "v2-ssl: reader's LOCAL");
  }
  return 0;
}
