// What the backend says after STARTTLS (pure text transforms, used by
// Conn::filter_backend_greeting and Conn::filter_capabilities, fuzzed alone).
// IMAP and POP3 clients ask for capabilities again: the greeting line is dropped.
// ManageSieve clients expect capabilities again (RFC 5804 2.2): the backend's
// pass, without STARTTLS. A refusal (BYE, -ERR, NO) passes unchanged.
// Later capability lists lose STARTTLS too, until the client authenticates.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "protocol.h"

namespace mf {

// IMAP/POP3: the number of leading bytes of <data> to drop: the first line
// (through its LF) when it starts "* OK" or "+OK" (any case), else 0.
// complete is false (and 0 returned) while no full line has arrived.
size_t swallow_greeting_len(std::string_view data, bool& complete);

// ManageSieve: <data> with every line up to and including the first line
// starting OK, NO or BYE (any case) kept except the "STARTTLS" capability line,
// followed by the rest of <data> unchanged. The result is never longer than
// <data>. complete is false (and "" returned) while that final line has not arrived.
std::string strip_sieve_starttls(std::string_view data, bool& complete);

// The complete lines of <data> (through its last LF), without what offers
// STARTTLS: the atom STARTTLS in an IMAP "* CAPABILITY" line or "[CAPABILITY
// ...]" code (with one space next to it), a POP3 "STLS" line, a ManageSieve
// "STARTTLS" line (any case). <consumed>: the input bytes those lines were;
// the rest of <data> is a line still arriving. Never longer than the input.
std::string strip_starttls_lines(ProtoFamily family, std::string_view data, size_t& consumed);

// Does the client's command line <line> (without its CRLF) start authentication?
// IMAP "<tag> LOGIN"/"<tag> AUTHENTICATE", POP3 USER, PASS, APOP, AUTH,
// ManageSieve AUTHENTICATE (any case).
bool starts_authentication(ProtoFamily family, std::string_view line);

}  // namespace mf
