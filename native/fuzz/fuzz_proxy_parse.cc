// PROXY protocol header READER (native/proxy_parse.h) and the trusted_proxies
// block parser on arbitrary bytes.
//
// Invariants:
//  - never reads past the input; a verdict needs at most 536 bytes: NeedMore
//    only for inputs shorter than that (the connection peeks 536 bytes);
//  - Done: 16 <= length <= 536 for v2, length <= 107 for v1, length <= input;
//    the verdict depends on the header bytes only: the header alone, and the
//    header followed by anything, parse the same (the ClientHello after it is
//    never looked at);
//  - every strict prefix of a complete header is NeedMore (a header arriving
//    in pieces is never refused half-way);
//  - parse_cidr: accepts only what it can match; cidr_match never crashes.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "../proxy_parse.h"
#include "check.h"

using mf::ProxyParse;

namespace {

bool same(const ProxyParse& a, const ProxyParse& b) {
  if (a.status != b.status || a.length != b.length || a.local != b.local) return false;
  if (a.status != ProxyParse::Status::Done || a.local) return true;
  return a.src.len == b.src.len && a.dst.len == b.dst.len && std::memcmp(&a.src.ss, &b.src.ss, a.src.len) == 0 &&
         std::memcmp(&a.dst.ss, &b.dst.ss, a.dst.len) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ProxyParse p = mf::parse_proxy_header(in);
  if (p.status == ProxyParse::Status::NeedMore)
    FUZZ_CHECK(size < mf::kProxyPeek, "NeedMore after %zu bytes", size);
  if (p.status == ProxyParse::Status::Malformed) FUZZ_CHECK(p.why && *p.why, "malformed without a reason");
  if (p.status == ProxyParse::Status::Done) {
    FUZZ_CHECK(p.length <= size && p.length <= mf::kProxyV2Max, "length %zu of %zu", p.length, size);
    if (data[0] == 'P') FUZZ_CHECK(p.length <= mf::kProxyV1Max, "v1 length %zu", p.length);
    else FUZZ_CHECK(p.length >= 16, "v2 length %zu", p.length);
    if (!p.local) {
      FUZZ_CHECK(p.src.family() == p.dst.family() && (p.src.family() == AF_INET || p.src.family() == AF_INET6), "families");
    }
    std::string_view header = in.substr(0, p.length);
    FUZZ_CHECK(same(mf::parse_proxy_header(header), p), "the header alone parses differently");
    std::string more(header);
    more += "\x16\x03\x01junk after the header";
    FUZZ_CHECK(same(mf::parse_proxy_header(more), p), "bytes after the header change the verdict");
    for (size_t k = 0; k < p.length; k++)
      FUZZ_CHECK(mf::parse_proxy_header(header.substr(0, k)).status == ProxyParse::Status::NeedMore,
                 "prefix of %zu bytes (of %zu) is not NeedMore", k, p.length);
  }

  // parse_cidr / cidr_match on the same bytes: the first line is the block, the rest an address.
  FuzzedDataProvider fdp(data, size);
  std::string text = fdp.ConsumeRandomLengthString(64);
  mf::Cidr c;
  if (mf::parse_cidr(text, c)) {
    FUZZ_CHECK(c.family == AF_INET || c.family == AF_INET6, "cidr family");
    FUZZ_CHECK(c.prefix <= (c.family == AF_INET ? 32u : 128u), "cidr prefix %u", c.prefix);
    mf::SockAddr a;
    auto raw = fdp.ConsumeBytes<uint8_t>(sizeof a.ss);
    if (!raw.empty()) std::memcpy(&a.ss, raw.data(), raw.size());
    a.ss.ss_family = fdp.ConsumeBool() ? AF_INET : AF_INET6;
    (void)mf::cidr_match({c}, a);
    // A block always holds its own network address.
    mf::SockAddr self;
    if (c.family == AF_INET) {
      self.ss.ss_family = AF_INET;
      std::memcpy(&reinterpret_cast<sockaddr_in*>(&self.ss)->sin_addr, c.addr, 4);
    } else {
      self.ss.ss_family = AF_INET6;
      std::memcpy(&reinterpret_cast<sockaddr_in6*>(&self.ss)->sin6_addr, c.addr, 16);
    }
    FUZZ_CHECK(mf::cidr_match({c}, self), "a block does not hold its own address");
  }
  return 0;
}
