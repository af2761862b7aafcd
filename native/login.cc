#include "login.h"

#include <algorithm>
#include <cstring>

#include "login_text.h"

namespace mf {

using namespace login_text;

namespace {

constexpr size_t kClientHead = 2048;   // a LOGIN line's user, an initial response
constexpr size_t kServerHead = 64;     // a tag and a status word
constexpr size_t kMaxCmd = 4096;
constexpr size_t kMaxLiteralKept = 2048;
constexpr size_t kMaxPending = 4096;   // with the byte bound, ~1000 pipelined commands at most in practice

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

}  // namespace mf
