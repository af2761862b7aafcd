// parse_addr / format_addr (native/net.h): "ip:port", "[v6]:port", "/unix/path".
//
// Invariants:
//  - no crash, no sanitizer report, nothing read beyond the input;
//  - a parsed address has a family of AF_INET, AF_INET6 or AF_UNIX and the
//    matching length;
//  - round trip: format_addr of a parsed address parses again (for unix
//    paths, without the "unix:" prefix) to the same address, and formats to
//    the same text;
//  - addr_key is 4 bytes for IPv4, 16 for IPv6, empty otherwise.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "../net.h"
#include "check.h"

using mf::SockAddr;

namespace {

bool same(const SockAddr& a, const SockAddr& b) {
  return a.len == b.len && std::memcmp(&a.ss, &b.ss, sizeof a.ss) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A heap copy of exactly <size> bytes, so ASan sees any read past the end.
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto a = mf::parse_addr(text);
  if (!a) return 0;
  int fam = a->family();
  FUZZ_CHECK(fam == AF_INET || fam == AF_INET6 || fam == AF_UNIX, "family %d", fam);
  if (fam == AF_INET) FUZZ_CHECK(a->len == sizeof(sockaddr_in), "v4 len %u", a->len);
  if (fam == AF_INET6) FUZZ_CHECK(a->len == sizeof(sockaddr_in6), "v6 len %u", a->len);
  if (fam == AF_UNIX) FUZZ_CHECK(a->len <= sizeof(sockaddr_un), "unix len %u", a->len);

  std::string f = mf::format_addr(*a);
  std::string_view back(f);
  if (fam == AF_UNIX) {
    FUZZ_CHECK(back.starts_with("unix:"), "unix format [%s]", f.c_str());
    back.remove_prefix(5);
  }
  auto b = mf::parse_addr(back);
  FUZZ_CHECK(b.has_value(), "[%.*s] parses, its format [%s] does not", int(size), text.data(), f.c_str());
  FUZZ_CHECK(same(*a, *b), "[%.*s] and its format [%s] parse to different addresses", int(size), text.data(), f.c_str());
  FUZZ_CHECK(mf::format_addr(*b) == f, "format not stable for [%s]", f.c_str());

  std::string k = mf::addr_key(*a);
  // A v4-mapped IPv6 address is the same client as its IPv4 address.
  bool mapped = fam == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&reinterpret_cast<const sockaddr_in6*>(&a->ss)->sin6_addr);
  FUZZ_CHECK(k.size() == (fam == AF_INET || mapped ? 4u : fam == AF_INET6 ? 16u : 0u), "addr_key size %zu", k.size());
  return 0;
}
