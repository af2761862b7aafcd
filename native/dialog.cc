#include "dialog.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace mf {

namespace {

// Literals are skipped, not stored; beyond this a pre-TLS client is up to no good.
constexpr uint64_t kMaxLiteral = 64 * 1024;

std::string_view first_word(std::string_view s, std::string_view& rest) {
  size_t sp = s.find(' ');
  std::string_view w = s.substr(0, sp);
  rest = sp == std::string_view::npos ? std::string_view() : s.substr(sp + 1);
  return w;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(uint8_t(x)) == std::tolower(uint8_t(y)); });
}

// IMAP tag: astring chars without '+', at most 64 of them (RFC 9051 tag).
bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > 64) return false;
  for (char c : t) {
    uint8_t u = uint8_t(c);
    if (u <= 0x20 || u >= 0x7f || c == '(' || c == ')' || c == '{' || c == '%' || c == '*' || c == '"' ||
        c == '\\' || c == '+' || c == ']')
      return false;
  }
  return true;
}

}  // namespace

PreTlsDialog::PreTlsDialog(Proto proto, std::string_view capabilities, size_t max_line)
    : proto_(proto), caps_(capabilities), max_line_(max_line) {}

std::string PreTlsDialog::greeting() const {
  switch (family(proto_)) {
    case ProtoFamily::Imap: return "* OK [CAPABILITY " + caps_ + "] mailfront ready\r\n";
    case ProtoFamily::Pop3: return "+OK mailfront ready\r\n";
    case ProtoFamily::Sieve: return caps_ + "OK \"mailfront ready\"\r\n";
  }
  return {};
}

std::string PreTlsDialog::timeout_goodbye() const {
  return goodbye(proto_, "", "Timeout before STARTTLS");
}

int64_t PreTlsDialog::trailing_literal(std::string_view line, bool& sync) {
  if (line.empty() || line.back() != '}') return -1;
  size_t open = line.rfind('{');
  if (open == std::string_view::npos) return -1;
  std::string_view num = line.substr(open + 1, line.size() - open - 2);
  sync = true;
  if (!num.empty() && num.back() == '+') { sync = false; num.remove_suffix(1); }
  if (num.empty() || num.size() > 12) return -1;
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
  if (ec != std::errc() || p != num.data() + num.size()) return -1;
  return int64_t(n);
}

PreTlsDialog::Next PreTlsDialog::feed(std::string_view data, std::string& out) {
  while (!data.empty()) {
    if (literal_left_ > 0) {
      size_t skip = size_t(std::min<uint64_t>(literal_left_, data.size()));
      literal_left_ -= skip;
      data.remove_prefix(skip);
      continue;
    }
    size_t nl = data.find('\n');
    size_t take = nl == std::string_view::npos ? data.size() : nl;
    if (line_.size() + take > max_line_) {
      out += goodbye(proto_, "", "Line too long");
      return Next::Close;
    }
    line_.append(data.substr(0, take));
    if (nl == std::string_view::npos) return Next::Continue;
    data.remove_prefix(nl + 1);
    std::string_view line(line_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool sync = false;
    // POP3 has no literals: "USER {5+}" is an ordinary (refused) command, and
    // the next line is a command of its own, not literal octets.
    int64_t lit = family(proto_) == ProtoFamily::Pop3 ? -1 : trailing_literal(line, sync);
    if (lit >= 0) {
      if (uint64_t(lit) > kMaxLiteral) {
        out += goodbye(proto_, "", "Literal too large before STARTTLS");
        return Next::Close;
      }
      if (!sync || family(proto_) == ProtoFamily::Sieve) {
        // Non-synchronizing literal: the octets follow at once; skip them and
        // keep reading the same command. (ManageSieve clients only send {n+}.)
        literal_left_ = uint64_t(lit);
        line_.resize(line.size());
        line_ += ' ';
        continue;
      }
      // Synchronizing IMAP literal: refuse the command; the client never sends the octets.
      std::string_view rest;
      std::string_view tag = first_word(line, rest);
      out += (valid_tag(tag) ? std::string(tag) : std::string("*")) + " BAD Literals are not accepted before STARTTLS\r\n";
      line_.clear();
      continue;
    }
    Next next = on_line(line, out);
    line_.clear();
    if (next != Next::Continue) return next;
  }
  return Next::Continue;
}

PreTlsDialog::Next PreTlsDialog::on_line(std::string_view line, std::string& out) {
  switch (family(proto_)) {
    case ProtoFamily::Imap: return imap_command(line, out);
    case ProtoFamily::Pop3: return pop3_command(line, out);
    case ProtoFamily::Sieve: return sieve_command(line, out);
  }
  return Next::Close;
}

PreTlsDialog::Next PreTlsDialog::imap_command(std::string_view line, std::string& out) {
  if (line.empty()) return Next::Continue;
  std::string_view rest;
  std::string_view tag = first_word(line, rest);
  if (!valid_tag(tag)) {
    out += "* BAD Invalid tag\r\n";
    return Next::Continue;
  }
  std::string_view args;
  std::string_view cmd = first_word(rest, args);
  std::string t(tag);
  if (iequals(cmd, "CAPABILITY")) {
    out += "* CAPABILITY " + caps_ + "\r\n" + t + " OK CAPABILITY completed\r\n";
  } else if (iequals(cmd, "NOOP")) {
    out += t + " OK NOOP completed\r\n";
  } else if (iequals(cmd, "ID")) {
    out += "* ID NIL\r\n" + t + " OK ID completed\r\n";
  } else if (iequals(cmd, "LOGOUT")) {
    out += "* BYE Logging out\r\n" + t + " OK LOGOUT completed\r\n";
    return Next::Close;
  } else if (iequals(cmd, "STARTTLS")) {
    if (!args.empty()) { out += t + " BAD STARTTLS takes no arguments\r\n"; return Next::Continue; }
    out += t + " OK Begin TLS negotiation now\r\n";
    return Next::StartTls;
  } else if (iequals(cmd, "LOGIN") || iequals(cmd, "AUTHENTICATE")) {
    out += t + " NO [PRIVACYREQUIRED] Authentication requires TLS: use STARTTLS\r\n";
  } else {
    out += t + " BAD Command not allowed before STARTTLS\r\n";
  }
  return Next::Continue;
}

PreTlsDialog::Next PreTlsDialog::pop3_command(std::string_view line, std::string& out) {
  std::string_view args;
  std::string_view cmd = first_word(line, args);
  if (iequals(cmd, "CAPA")) {
    out += "+OK Capability list follows\r\n" + caps_ + ".\r\n";
  } else if (iequals(cmd, "QUIT")) {
    out += "+OK Bye\r\n";
    return Next::Close;
  } else if (iequals(cmd, "STLS")) {
    if (!args.empty()) { out += "-ERR STLS takes no arguments\r\n"; return Next::Continue; }
    out += "+OK Begin TLS negotiation now\r\n";
    return Next::StartTls;
  } else if (iequals(cmd, "USER") || iequals(cmd, "PASS") || iequals(cmd, "APOP") || iequals(cmd, "AUTH")) {
    out += "-ERR [AUTH] Authentication requires TLS: use STLS\r\n";
  } else {
    out += "-ERR Command not allowed before STLS\r\n";
  }
  return Next::Continue;
}

PreTlsDialog::Next PreTlsDialog::sieve_command(std::string_view line, std::string& out) {
  if (line.empty()) return Next::Continue;
  std::string_view args;
  std::string_view cmd = first_word(line, args);
  if (cmd.size() >= 2 && cmd.front() == '"' && cmd.back() == '"') cmd = cmd.substr(1, cmd.size() - 2);
  if (iequals(cmd, "CAPABILITY")) {
    out += caps_ + "OK \"Capability completed\"\r\n";
  } else if (iequals(cmd, "NOOP")) {
    // RFC 5804 2.11: a NOOP argument comes back as a TAG response code.
    std::string_view tag = args;
    bool quoted = tag.size() >= 2 && tag.front() == '"' && tag.back() == '"' &&
                  std::none_of(tag.begin() + 1, tag.end() - 1, [](char c) {
                    return c == '"' || c == '\\' || uint8_t(c) < 0x20 || uint8_t(c) == 0x7f;  // RFC 5804 quoted: no CTLs
                  });
    if (quoted)
      out += "OK (TAG " + std::string(tag) + ") \"Done\"\r\n";
    else
      out += "OK \"Done\"\r\n";
  } else if (iequals(cmd, "LOGOUT")) {
    out += "OK \"Logout completed\"\r\n";
    return Next::Close;
  } else if (iequals(cmd, "STARTTLS")) {
    out += "OK \"Begin TLS negotiation now\"\r\n";
    return Next::StartTls;
  } else if (iequals(cmd, "AUTHENTICATE")) {
    out += "NO (ENCRYPT-NEEDED) \"Authentication requires TLS: use STARTTLS\"\r\n";
  } else {
    out += "NO \"Command not allowed before STARTTLS\"\r\n";
  }
  return Next::Continue;
}

}  // namespace mf
