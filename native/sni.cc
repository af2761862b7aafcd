#include "sni.h"

#include <cctype>
#include <cstring>

namespace mf {

bool normalize_sni(const char* raw, std::string& out) {
  if (!raw) return false;
  size_t n = strnlen(raw, 256);
  if (n == 0 || n > 254) return false;
  if (raw[n - 1] == '.') n--;
  if (n == 0 || n > 253) return false;
  out.resize(n);
  bool all_digits_dots = true;
  size_t label_start = 0;
  for (size_t i = 0; i < n; i++) {
    char c = char(std::tolower(static_cast<unsigned char>(raw[i])));
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')) return false;
    if (c == '.') {
      // Empty labels ("a..b", ".a", "a.." after the one trailing dot) are no DNS name.
      if (i == label_start || i + 1 == n) return false;
      label_start = i + 1;
    } else if (i - label_start >= 63) {
      return false;  // a label is at most 63 octets (RFC 1035 2.3.4)
    }
    // A hyphen neither starts nor ends a label (RFC 952, RFC 1123 2.1).
    if (c == '-' && (i == label_start || i + 1 == n || raw[i + 1] == '.')) return false;
    if (!((c >= '0' && c <= '9') || c == '.')) all_digits_dots = false;
    out[i] = c;
  }
  return !all_digits_dots;
}

}  // namespace mf
