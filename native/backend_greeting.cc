#include "backend_greeting.h"

#include <cctype>

namespace mf {

namespace {

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); i++)
    if (std::toupper(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

bool equals_ci(std::string_view s, std::string_view upper) { return s.size() == upper.size() && starts_with_ci(s, upper); }

size_t find_ci(std::string_view s, std::string_view upper) {
  for (size_t i = 0; i + upper.size() <= s.size(); i++)
    if (starts_with_ci(s.substr(i), upper)) return i;
  return std::string_view::npos;
}

// <list> with each space-separated atom STARTTLS taken out with one space.
std::string drop_starttls_atom(std::string_view list) {
  std::string out;
  bool first = true;
  for (size_t i = 0;;) {
    size_t sp = list.find(' ', i);
    std::string_view atom = list.substr(i, sp == std::string_view::npos ? std::string_view::npos : sp - i);
    if (!equals_ci(atom, "STARTTLS")) {
      if (!first) out.push_back(' ');
      out.append(atom);
      first = false;
    }
    if (sp == std::string_view::npos) return out;
    i = sp + 1;
  }
}

// One IMAP response line (<bare>, without its line end) with STARTTLS out of its capability list.
std::string imap_line(std::string_view bare) {
  constexpr std::string_view kUntagged = "* CAPABILITY", kCode = "[CAPABILITY";
  if (starts_with_ci(bare, kUntagged) && (bare.size() == kUntagged.size() || bare[kUntagged.size()] == ' '))
    return std::string(bare.substr(0, kUntagged.size())) + drop_starttls_atom(bare.substr(kUntagged.size()));
  size_t at = find_ci(bare, kCode);
  if (at == std::string_view::npos) return std::string(bare);
  size_t from = at + kCode.size();
  size_t end = bare.find(']', from);
  if (end == std::string_view::npos) end = bare.size();
  return std::string(bare.substr(0, from)) + drop_starttls_atom(bare.substr(from, end - from)) + std::string(bare.substr(end));
}

std::string_view first_word(std::string_view line) { return line.substr(0, line.find(' ')); }

}  // namespace

std::string strip_starttls_lines(ProtoFamily family, std::string_view data, size_t& consumed) {
  std::string out;
  size_t pos = 0;
  for (size_t nl; (nl = data.find('\n', pos)) != std::string_view::npos; pos = nl + 1) {
    std::string_view line = data.substr(pos, nl + 1 - pos);
    size_t bare_len = line.find_first_of("\r\n");
    std::string_view bare = line.substr(0, bare_len), end = line.substr(bare_len);
    switch (family) {
      case ProtoFamily::Imap: out += imap_line(bare); out += end; break;
      case ProtoFamily::Pop3: if (!equals_ci(bare, "STLS")) out += line; break;
      case ProtoFamily::Sieve: if (!equals_ci(bare, "\"STARTTLS\"")) out += line; break;
    }
  }
  consumed = pos;
  return out;
}

bool starts_authentication(ProtoFamily family, std::string_view line) {
  std::string_view word = first_word(line);
  switch (family) {
    case ProtoFamily::Imap: {
      if (word.size() == line.size()) return false;
      std::string_view command = first_word(line.substr(word.size() + 1));
      return equals_ci(command, "LOGIN") || equals_ci(command, "AUTHENTICATE");
    }
    case ProtoFamily::Pop3:
      return equals_ci(word, "USER") || equals_ci(word, "PASS") || equals_ci(word, "APOP") || equals_ci(word, "AUTH");
    case ProtoFamily::Sieve: return equals_ci(word, "AUTHENTICATE");
  }
  return false;
}

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
