#include "login.h"

#include <algorithm>
#include <cstring>

namespace mf {

namespace {

constexpr size_t kClientHead = 2048;   // a LOGIN line's user, an initial response
constexpr size_t kServerHead = 64;     // a tag and a status word
constexpr size_t kMaxCmd = 4096;
constexpr size_t kMaxLiteralKept = 2048;
constexpr size_t kMaxPending = 4096;   // with the byte bound, ~1000 pipelined commands at most in practice

// Bytes that may hold a secret are overwritten before the memory is reused or freed.
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

// A user name as logged: control bytes replaced, bounded.
std::string printable(std::string_view s) {
  std::string r(s.substr(0, LoginWatch::kMaxUser));
  for (char& c : r)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return r;
}

// Tokens of an IMAP or ManageSieve command line. Literals were replaced by a
// marker byte: \x01 a kept literal (cmd_lit), \x02 one skipped unread.
struct Tok {
  enum Type : uint8_t { End, Atom, Quoted, Kept, Skipped } type = End;
  std::string_view text;  // raw: a quoted string without its quotes, escapes left in
};

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

int b64(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Base64 -> bytes into <out> (the caller wipes it); false on a malformed input.
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

}  // namespace

const char* login_result_name(LoginOutcome::Result r) {
  switch (r) {
    case LoginOutcome::Result::Success: return "success";
    case LoginOutcome::Result::Failure: return "failure";
    case LoginOutcome::Result::Error: return "error";
  }
  return "?";
}

// ---- Lines ----

void LoginWatch::Lines::append(const char* p, size_t n) {
  len += n;
  if (head.size() < cap) head.append(p, std::min(n, cap - head.size()));
  if (n >= sizeof tail) {
    memcpy(tail, p + n - sizeof tail, sizeof tail);
    tail_n = sizeof tail;
  } else {
    size_t keep = std::min(tail_n, sizeof tail - n);
    memmove(tail, tail + tail_n - keep, keep);
    memcpy(tail + keep, p, n);
    tail_n = keep + n;
  }
}

void LoginWatch::Lines::reset_segment() {
  mf::wipe(head);
  memset(tail, 0, sizeof tail);
  tail_n = 0;
  len = 0;
}

void LoginWatch::Lines::wipe() {
  reset_segment();
  mf::wipe(literal);
  in_literal = false;
  literal_left = literal_done = 0;
}

// ---- LoginWatch ----

LoginWatch::LoginWatch(ProtoFamily family, size_t bound) : family_(family), bound_(bound) {
  c_.cap = kClientHead;
  s_.cap = kServerHead;
  c_.literals = s_.literals = family != ProtoFamily::Pop3;
  // POP3 and ManageSieve answer in order, the greeting first; IMAP's is untagged.
  if (family != ProtoFamily::Imap) pending_.push_back({Pending::Kind::Greeting, {}, {}, {}});
}

LoginWatch::~LoginWatch() {
  c_.wipe();
  s_.wipe();
  wipe(cmd_);
  wipe(cmd_lit_);
}

void LoginWatch::stop(State why) {
  state_ = why;
  c_.wipe();
  s_.wipe();
  wipe(cmd_);
  wipe(cmd_lit_);
  pending_.clear();
}

// Splits <data> into line segments and literals. <seg>(line, literal_follows,
// sync, n) sees each segment without its line end; it may set L.capture_max to
// keep the literal that follows. <lit>() runs when a literal is complete.
template <class OnSegment, class OnLiteral>
void LoginWatch::scan(Lines& L, std::string_view d, OnSegment seg, OnLiteral lit) {
  size_t i = 0;
  while (i < d.size() && watching()) {
    if (L.in_literal) {
      size_t take = size_t(std::min<uint64_t>(L.literal_left, d.size() - i));
      if (L.literal.size() < L.capture_max) L.literal.append(d.data() + i, std::min(take, L.capture_max - L.literal.size()));
      L.literal_left -= take;
      L.literal_done += take;
      i += take;
      // The bound counts whole lines and literals since the last outcome, and
      // what is under way: where watching stops does not depend on the reads.
      if (since_outcome_ + L.literal_done > bound_) return stop(State::Bound);
      if (L.literal_left == 0) {
        since_outcome_ += L.literal_done;
        L.literal_done = 0;
        L.in_literal = false;
        L.continued = true;
        lit();
        mf::wipe(L.literal);
        L.capture_max = 0;
      }
      continue;
    }
    const void* nl = memchr(d.data() + i, '\n', d.size() - i);
    size_t end = nl ? size_t(static_cast<const char*>(nl) - d.data()) : d.size();
    L.append(d.data() + i, end - i);
    i = end;
    if (!nl) {
      if (since_outcome_ + L.len > bound_) return stop(State::Bound);
      break;
    }
    i++;
    since_outcome_ += L.len + 1;
    if (since_outcome_ > bound_) return stop(State::Bound);
    // The segment is whole: look for "{n}" or "{n+}" at its end (before CR).
    std::string_view t(L.tail, L.tail_n);
    if (!t.empty() && t.back() == '\r') t.remove_suffix(1);
    bool literal = false, sync = true;
    uint64_t n = 0;
    if (L.literals && t.size() >= 3 && t.back() == '}') {
      size_t open = t.rfind('{');
      std::string_view num = open == std::string_view::npos ? std::string_view() : t.substr(open + 1, t.size() - open - 2);
      if (!num.empty() && num.back() == '+') {
        sync = false;
        num.remove_suffix(1);
      }
      literal = !num.empty() && num.size() <= 18 && std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (literal)
        for (char c : num) n = n * 10 + uint64_t(c - '0');
    }
    std::string_view line(L.head);
    if (L.len <= L.cap) {
      // The whole segment is in head: drop the CR and the literal announcement
      // (a marker byte stands for the literal in the command).
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (literal) line = line.substr(0, line.rfind('{'));
    }
    L.capture_max = 0;
    // The handler may refuse the literal: an IMAP SASL response is one base64 line.
    literal = seg(line, literal, sync) && literal;
    L.reset_segment();
    if (!watching()) return;
    if (literal && n > 0) {
      L.in_literal = true;
      L.literal_left = n;
    } else {
      L.continued = literal;  // "{0}": the line goes on at once
      if (literal) {
        lit();
        L.capture_max = 0;
      }
    }
  }
}

void LoginWatch::client(std::string_view data, std::vector<LoginOutcome>& out) {
  if (!watching()) return;
  (void)out;  // client bytes alone decide no outcome
  scan(
      c_, data,
      [&](std::string_view line, bool literal, bool sync) { return client_segment(line, literal, sync); },
      [&] { client_literal_done(); });
}

void LoginWatch::server(std::string_view data, std::vector<LoginOutcome>& out) {
  if (!watching()) return;
  scan(
      s_, data, [&](std::string_view line, bool literal, bool) { return server_segment(line, literal, out); }, [] {});
}

LoginWatch::Pending* LoginWatch::auth_pending() {
  // IMAP: the newest AUTHENTICATE (one runs at a time); POP3, ManageSieve: the oldest command.
  if (pending_.empty()) return nullptr;
  Pending& p = family_ == ProtoFamily::Imap ? pending_.back() : pending_.front();
  return p.kind == Pending::Kind::Auth ? &p : nullptr;
}

void LoginWatch::push(Pending p) {
  if (pending_.size() >= kMaxPending) return stop(State::Bound);
  pending_.push_back(std::move(p));
}

// ---- client ----

bool LoginWatch::client_segment(std::string_view line, bool literal, bool sync) {
  if (!c_.continued) {
    // A new line: the answer to a server challenge, or a command. The client
    // answers only after the challenge reached it through us, so the count is exact.
    cmd_sasl_ = sasl_continues_ > 0 && auth_pending();
    if (cmd_sasl_) sasl_continues_--;
    wipe(cmd_);
    wipe(cmd_lit_);
    cmd_literals_ = 0;
  }
  c_.continued = false;
  if (cmd_sasl_) {
    if (literal && family_ == ProtoFamily::Sieve) {
      // A response as a literal ({n+}); kept only when it may name the user.
      Pending* a = auth_pending();
      if (a && a->user.empty() && a->step == 0) c_.capture_max = kMaxLiteralKept;
      return true;
    }
    if (cmd_literals_ == 0) sasl_response(line);
    return false;
  }
  if (cmd_.size() < kMaxCmd) cmd_.append(line.substr(0, kMaxCmd - cmd_.size()));
  if (literal) {
    if (family_ == ProtoFamily::Imap && sync) literal_waits_++;
    // Keep the literal when it is the IMAP LOGIN user or a ManageSieve initial response.
    std::string_view s(cmd_);
    Tok a = next_tok(s), b = next_tok(s), c = next_tok(s);
    bool keep = family_ == ProtoFamily::Imap ? (a.type == Tok::Atom && b.type == Tok::Atom && iequals(b.text, "LOGIN") && c.type == Tok::End)
                                             : (a.type == Tok::Atom && iequals(a.text, "AUTHENTICATE") && c.type == Tok::End && b.type == Tok::Quoted);
    c_.capture_max = keep ? kMaxLiteralKept : 0;
    cmd_keep_ = keep;
    return true;
  }
  std::string_view whole(cmd_);
  switch (family_) {
    case ProtoFamily::Imap: imap_command(whole); break;
    case ProtoFamily::Pop3: pop3_command(whole); break;
    case ProtoFamily::Sieve: sieve_command(whole); break;
  }
  wipe(cmd_);
  wipe(cmd_lit_);
  return false;
}

void LoginWatch::client_literal_done() {
  if (cmd_sasl_) {
    if (cmd_literals_++ == 0) sasl_response(c_.literal);
    return;
  }
  cmd_literals_++;
  if (cmd_keep_ && cmd_lit_.empty()) {
    cmd_lit_ = c_.literal;
    cmd_ += '\x01';
  } else {
    cmd_ += '\x02';
  }
  cmd_keep_ = false;
}

void LoginWatch::sasl_response(std::string_view payload) {
  Pending* a = auth_pending();
  if (!a) return;
  // ManageSieve sends the response as a string.
  if (family_ == ProtoFamily::Sieve && payload.size() >= 2 && payload.front() == '"' && payload.back() == '"')
    payload = payload.substr(1, payload.size() - 2);
  if (a->user.empty()) a->user = sasl_user(a->mech, a->step, payload, a->asked_user);
  a->asked_user = false;
  if (a->step < 255) a->step++;
}

void LoginWatch::imap_command(std::string_view line) {
  Tok tag = next_tok(line), name = next_tok(line);
  if (tag.type != Tok::Atom || name.type != Tok::Atom) return;
  if (iequals(name.text, "LOGIN")) {
    Tok u = next_tok(line);
    std::string user = u.type == Tok::Atom ? printable(u.text) : u.type == Tok::Quoted ? printable(unquote(u.text)) : u.type == Tok::Kept ? printable(cmd_lit_) : std::string();
    push({Pending::Kind::Login, std::string(tag.text.substr(0, 64)), std::move(user), "LOGIN"});
  } else if (iequals(name.text, "AUTHENTICATE")) {
    Tok mech = next_tok(line), ir = next_tok(line);
    if (mech.type != Tok::Atom) return;
    Pending p{Pending::Kind::Auth, std::string(tag.text.substr(0, 64)), {}, upper_str(mech.text)};
    if (ir.type == Tok::Atom) {
      p.user = sasl_user(p.mech, 0, ir.text, true);
      p.step = 1;
    }
    push(std::move(p));
  }
}

void LoginWatch::pop3_command(std::string_view line) {
  size_t sp = line.find(' ');
  std::string_view name = line.substr(0, sp);
  std::string_view args = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  Pending p{Pending::Kind::Other, {}, {}, {}};
  if (iequals(name, "USER")) {
    last_user_ = printable(args);
    p.kind = Pending::Kind::User;
  } else if (iequals(name, "PASS")) {
    p = {Pending::Kind::Pass, {}, last_user_, "USER"};
  } else if (iequals(name, "APOP")) {
    p = {Pending::Kind::Apop, {}, printable(args.substr(0, args.find(' '))), "APOP"};
  } else if (iequals(name, "AUTH") && !args.empty()) {
    size_t s2 = args.find(' ');
    p = {Pending::Kind::Auth, {}, {}, upper_str(args.substr(0, s2))};
    if (s2 != std::string_view::npos) {
      p.user = sasl_user(p.mech, 0, args.substr(s2 + 1), true);
      p.step = 1;
    }
  } else {
    // Answers that run to a "." line when positive.
    p.multiline = iequals(name, "CAPA") || iequals(name, "AUTH") || iequals(name, "RETR") || iequals(name, "TOP") ||
                  ((iequals(name, "LIST") || iequals(name, "UIDL")) && args.empty());
  }
  push(std::move(p));
}

void LoginWatch::sieve_command(std::string_view line) {
  Tok name = next_tok(line);
  Pending p{Pending::Kind::Other, {}, {}, {}};
  if (name.type == Tok::Atom && iequals(name.text, "AUTHENTICATE")) {
    Tok mech = next_tok(line), ir = next_tok(line);
    if (mech.type == Tok::Quoted) {
      p = {Pending::Kind::Auth, {}, {}, upper_str(mech.text)};
      if (ir.type == Tok::Quoted || ir.type == Tok::Kept) {
        p.user = sasl_user(p.mech, 0, ir.type == Tok::Quoted ? ir.text : std::string_view(cmd_lit_), true);
        p.step = 1;
      } else if (ir.type == Tok::Skipped) {
        p.step = 1;
      }
    }
  }
  push(std::move(p));
}

// ---- server ----

// A SASL challenge: the client's next line answers it. Only "does it ask for
// a user name" is kept (the LOGIN mechanism's "Username:").
void LoginWatch::challenge(std::string_view text) {
  sasl_continues_++;
  Pending* a = auth_pending();
  while (!text.empty() && text[0] == ' ') text.remove_prefix(1);
  std::string raw;
  a->asked_user = unbase64(text.substr(0, 64), raw) && raw.size() >= 4 && iequals(std::string_view(raw).substr(0, 4), "USER");
  wipe(raw);
}

void LoginWatch::finish(Pending& p, LoginOutcome::Result r, std::vector<LoginOutcome>& out) {
  out.push_back({r, p.user, p.mech});
  since_outcome_ = 0;
  if (r == LoginOutcome::Result::Success) stop(State::Authenticated);
}

bool LoginWatch::server_segment(std::string_view line, bool literal, std::vector<LoginOutcome>& out) {
  bool first = !s_.continued;
  s_.continued = false;
  // The rest of a line after a literal: its start decided already.
  if (first) {
    if (family_ == ProtoFamily::Imap && !line.empty() && line[0] == '+') {
      // A continuation (its text is no literal): for a synchronizing literal
      // the client announced, else a SASL challenge.
      if (literal_waits_ > 0) literal_waits_--;
      else if (auth_pending()) challenge(line.substr(1));
      return false;
    }
    server_response(line, out);
  }
  return literal;
}

void LoginWatch::server_response(std::string_view line, std::vector<LoginOutcome>& out) {
  switch (family_) {
    case ProtoFamily::Imap: {
      Tok tag = next_tok(line), status = next_tok(line);
      if (tag.type != Tok::Atom || status.type != Tok::Atom) return;
      if (tag.text == "*") {
        if (iequals(status.text, "PREAUTH")) stop(State::Authenticated);
        return;
      }
      LoginOutcome::Result r;
      if (iequals(status.text, "OK")) r = LoginOutcome::Result::Success;
      else if (iequals(status.text, "NO")) r = LoginOutcome::Result::Failure;
      else if (iequals(status.text, "BAD")) r = LoginOutcome::Result::Error;
      else return;
      // The command this answers is over: a literal it announced will not come.
      if (!cmd_.empty() && c_.in_literal) {
        std::string_view s(cmd_);
        Tok t = next_tok(s);
        if (t.type == Tok::Atom && t.text == tag.text) {
          c_.wipe();
          c_.continued = false;
          literal_waits_ = 0;
          wipe(cmd_);
          wipe(cmd_lit_);
        }
      }
      for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if (it->tag != tag.text) continue;
        Pending p = std::move(*it);
        pending_.erase(it);
        if (p.kind == Pending::Kind::Auth) sasl_continues_ = 0;
        finish(p, r, out);
        return;
      }
      return;
    }
    case ProtoFamily::Pop3: {
      if (s_in_multiline_) {
        if (line == ".") s_in_multiline_ = false;
        return;
      }
      bool ok = line.size() >= 3 && iequals(line.substr(0, 3), "+OK");
      bool err = line.size() >= 4 && iequals(line.substr(0, 4), "-ERR");
      if (!ok && !err) {
        if (!line.empty() && line[0] == '+' && auth_pending()) challenge(line.substr(1));
        return;
      }
      if (pending_.empty()) return;
      Pending p = std::move(pending_.front());
      pending_.pop_front();
      sasl_continues_ = 0;
      if (ok && p.multiline) s_in_multiline_ = true;
      if (p.kind == Pending::Kind::Pass || p.kind == Pending::Kind::Apop || p.kind == Pending::Kind::Auth)
        finish(p, ok ? LoginOutcome::Result::Success : LoginOutcome::Result::Failure, out);
      return;
    }
    case ProtoFamily::Sieve: {
      std::string_view s = line;
      Tok t = next_tok(s);
      std::string_view word = t.type == Tok::Atom ? t.text.substr(0, t.text.find('(')) : std::string_view();
      bool ok = iequals(word, "OK"), no = iequals(word, "NO"), bye = iequals(word, "BYE");
      if (!ok && !no && !bye) {
        // A challenge is a string; one sent as a literal is not read (its text stays unknown).
        if (auth_pending()) challenge(t.type == Tok::Quoted ? t.text : std::string_view());
        return;
      }
      if (pending_.empty()) return;
      Pending p = std::move(pending_.front());
      pending_.pop_front();
      sasl_continues_ = 0;
      if (p.kind == Pending::Kind::Auth)
        finish(p, ok ? LoginOutcome::Result::Success : no ? LoginOutcome::Result::Failure : LoginOutcome::Result::Error, out);
      return;
    }
  }
}

}  // namespace mf
