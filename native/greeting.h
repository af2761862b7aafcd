// The backend greeting after STARTTLS (pure text transforms, extracted from
// Conn::filter_backend_greeting so they can be fuzzed alone).
// IMAP and POP3 clients ask for capabilities again: the greeting line is dropped.
// ManageSieve clients expect capabilities again (RFC 5804 2.2): the backend's
// pass, without STARTTLS. A refusal (BYE, -ERR, NO) passes unchanged.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

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

}  // namespace mf
