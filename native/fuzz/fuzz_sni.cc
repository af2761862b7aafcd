// normalize_sni (native/sni.h), on the NUL-terminated name OpenSSL hands over.
//
// Invariants:
//  - no crash, no read beyond the terminator or 256 bytes;
//  - accepted: 1..253 bytes of [a-z0-9._-], not only digits and dots (no IPv4
//    literal), no empty label, labels of at most 63 bytes that neither start nor
//    end with "-", equal to the input lowercased without one trailing dot;
//  - idempotent: an accepted name normalizes to itself;
//  - names with characters outside [A-Za-z0-9._-] (IPv6 literals, spaces,
//    controls, UTF-8) are refused.
#include <cctype>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "../sni.h"
#include "check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Exactly what SSL_get_servername gives: a C string (cut at the first NUL).
  std::string raw(reinterpret_cast<const char*>(data), size);
  std::string name;
  bool ok = mf::normalize_sni(raw.c_str(), name);
  std::string_view in(raw.c_str());  // up to the first NUL

  bool bad_char = false, only_digits_dots = true;
  std::string want;
  std::string_view body = in;
  if (!body.empty() && body.back() == '.') body.remove_suffix(1);
  for (char c : body) {
    unsigned char u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '.' || c == '-' || c == '_')) bad_char = true;
    if (!(std::isdigit(u) || c == '.')) only_digits_dots = false;
    want += char(std::tolower(u));
  }
  bool empty_label = !body.empty() && (body.front() == '.' || body.back() == '.' || body.find("..") != std::string_view::npos);
  bool bad_label = false;
  for (size_t start = 0; start <= body.size();) {
    size_t end = body.find('.', start);
    if (end == std::string_view::npos) end = body.size();
    std::string_view label = body.substr(start, end - start);
    if (label.size() > 63 || (!label.empty() && (label.front() == '-' || label.back() == '-'))) bad_label = true;
    start = end + 1;
  }
  bool expect = !in.empty() && in.size() <= 254 && !body.empty() && body.size() <= 253 && !bad_char && !only_digits_dots &&
                !empty_label && !bad_label;
  FUZZ_CHECK(ok == expect, "normalize_sni(\"%s\") = %d, expected %d", raw.c_str(), ok, expect);
  if (!ok) return 0;
  FUZZ_CHECK(name == want, "normalize_sni(\"%s\") = \"%s\", expected \"%s\"", raw.c_str(), name.c_str(), want.c_str());
  std::string again;
  FUZZ_CHECK(mf::normalize_sni(name.c_str(), again) && again == name, "not idempotent on \"%s\"", name.c_str());
  return 0;
}
