#include "greeting.h"

#include <cctype>

namespace mf {

namespace {

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); i++)
    if (std::toupper(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

}  // namespace

size_t swallow_greeting_len(std::string_view data, bool& complete) {
  size_t nl = data.find('\n');
  complete = nl != std::string_view::npos;
  if (!complete) return 0;
  if (starts_with_ci(data, "* OK") || starts_with_ci(data, "+OK")) return nl + 1;
  return 0;
}

std::string strip_sieve_starttls(std::string_view data, bool& complete) {
  complete = false;
  std::string kept;
  size_t pos = 0;
  for (;;) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string_view::npos) return {};
    std::string_view line = data.substr(pos, nl + 1 - pos);
    pos = nl + 1;
    std::string_view bare = line.substr(0, line.find_first_of("\r\n"));
    bool last = starts_with_ci(bare, "OK") || starts_with_ci(bare, "NO") || starts_with_ci(bare, "BYE");
    if (!(bare.size() == 10 && starts_with_ci(bare, "\"STARTTLS\""))) kept.append(line);
    if (last) break;
  }
  kept.append(data.substr(pos));
  complete = true;
  return kept;
}

}  // namespace mf
