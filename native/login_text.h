// Text helpers of the login parser (native/login.cc, login_server.cc):
// case-insensitive words, command tokens, quoted strings, base64, and the
// user name inside a SASL payload. Internal to the parser.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace mf::login_text {

// Bytes that may hold a secret are overwritten before the memory is reused or freed.
void wipe(std::string& s);
char upper(char c);
bool iequals(std::string_view a, std::string_view b);
std::string upper_str(std::string_view s);
// A user name as logged: control bytes replaced, bounded.
std::string printable(std::string_view s);

// Tokens of an IMAP or ManageSieve command line. Literals were replaced by a
// marker byte: \x01 a kept literal (cmd_lit), \x02 one skipped unread.
struct Tok {
  enum Type : uint8_t { End, Atom, Quoted, Kept, Skipped } type = End;
  std::string_view text;  // raw: a quoted string without its quotes, escapes left in
};
Tok next_tok(std::string_view& s);
std::string unquote(std::string_view q);
// Base64 -> bytes into <out> (the caller wipes it); false on a malformed input.
bool unbase64(std::string_view in, std::string& out);
// The user name inside a client's SASL payload number <step>; see login_text.cc.
std::string sasl_user(std::string_view mech, unsigned step, std::string_view payload, bool asked_user);

}  // namespace mf::login_text
