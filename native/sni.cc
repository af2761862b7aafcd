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
  for (size_t i = 0; i < n; i++) {
    char c = char(std::tolower(static_cast<unsigned char>(raw[i])));
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')) return false;
    // Empty labels ("a..b", ".a", "a.." after the one trailing dot) are no DNS name.
    if (c == '.' && (i == 0 || i + 1 == n || raw[i - 1] == '.')) return false;
    if (!((c >= '0' && c <= '9') || c == '.')) all_digits_dots = false;
    out[i] = c;
  }
  return !all_digits_dots;
}

}  // namespace mf
