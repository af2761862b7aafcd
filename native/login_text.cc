#include "login_text.h"

#include <algorithm>

#include "login.h"

namespace mf::login_text {

void wipe(std::string& s) {
  volatile char* p = s.data();
  for (size_t i = 0; i < s.size(); i++) p[i] = 0;
  s.clear();
}

char upper(char c) { return c >= 'a' && c <= 'z' ? char(c - 32) : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (upper(a[i]) != upper(b[i])) return false;
  return true;
}

std::string upper_str(std::string_view s) {
  std::string r(s.substr(0, 32));
  for (char& c : r) c = upper(c);
  return r;
}

std::string printable(std::string_view s) {
  std::string r(s.substr(0, LoginWatch::kMaxUser));
  for (char& c : r)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return r;
}

Tok next_tok(std::string_view& s) {
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') i++;
  s.remove_prefix(i);
  if (s.empty()) return {};
  Tok t;
  if (s[0] == '\x01' || s[0] == '\x02') {
    t.type = s[0] == '\x01' ? Tok::Kept : Tok::Skipped;
    s.remove_prefix(1);
    return t;
  }
  if (s[0] == '"') {
    size_t j = 1;
    while (j < s.size() && s[j] != '"') j += s[j] == '\\' ? 2 : 1;
    t.type = Tok::Quoted;
    t.text = s.substr(1, std::min(j, s.size()) - 1);
    s.remove_prefix(std::min(j + 1, s.size()));
    return t;
  }
  size_t j = 0;
  while (j < s.size() && s[j] != ' ' && s[j] != '\x01' && s[j] != '\x02') j++;
  t.type = Tok::Atom;
  t.text = s.substr(0, j);
  s.remove_prefix(j);
  return t;
}

std::string unquote(std::string_view q) {
  std::string r;
  for (size_t i = 0; i < q.size() && r.size() < LoginWatch::kMaxUser; i++) {
    if (q[i] == '\\' && i + 1 < q.size()) i++;
    r += q[i];
  }
  return r;
}

namespace {

int b64(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

bool unbase64(std::string_view in, std::string& out) {
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = b64(c);
    if (v < 0) return false;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xff);
    }
  }
  acc = 0;
  return true;
}

// The user name inside a client's SASL payload number <step> (0: the first,
// or the initial response), for the mechanisms that show one. Only the user
// leaves: the decoded bytes (with the password of PLAIN) are wiped here.
// LOGIN sends the user and the password alike: its user is taken only from an
// initial response or an answer to a challenge that asked for it (<asked_user>),
// so that a parser out of step with a broken server never takes the password.
std::string sasl_user(std::string_view mech, unsigned step, std::string_view payload, bool asked_user) {
  bool plain = iequals(mech, "PLAIN"), login = iequals(mech, "LOGIN");
  bool scram = mech.size() > 6 && iequals(mech.substr(0, 6), "SCRAM-");
  if (step != 0 || !(plain || login || scram) || payload == "*" || payload == "=") return {};
  if (login && !asked_user) return {};
  std::string raw;
  std::string user;
  if (unbase64(payload, raw)) {
    if (plain) {
      // authzid NUL authcid NUL password: the authentication identity is the one logged in.
      size_t a = raw.find('\0');
      size_t b = a == std::string::npos ? std::string::npos : raw.find('\0', a + 1);
      if (b != std::string::npos) user = printable(std::string_view(raw).substr(a + 1, b - a - 1));
      if (user.empty() && a != std::string::npos) user = printable(std::string_view(raw).substr(0, a));
    } else if (login) {
      user = printable(raw);
    } else {
      // gs2-header "n,," then "n=user,r=nonce" (RFC 5802); "=2C" and "=3D" stay as written.
      size_t n = raw.find(",n=");
      if (n != std::string::npos) {
        size_t e = raw.find(',', n + 3);
        user = printable(std::string_view(raw).substr(n + 3, e == std::string::npos ? std::string::npos : e - n - 3));
      }
    }
  }
  wipe(raw);
  return user;
}

}  // namespace mf::login_text
