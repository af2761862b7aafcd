// The server side of the login parser: challenges and the answers that end a login.
#include "login.h"

#include "login_text.h"

namespace mf {

using namespace login_text;

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
      pending_.erase(pending_.begin());
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
      pending_.erase(pending_.begin());
      sasl_continues_ = 0;
      if (p.kind == Pending::Kind::Auth)
        finish(p, ok ? LoginOutcome::Result::Success : no ? LoginOutcome::Result::Failure : LoginOutcome::Result::Error, out);
      return;
    }
  }
}

}  // namespace mf
