// SNI normalization (pure; extracted from conn.cc so it can be fuzzed alone).
#pragma once
#include <string>

namespace mf {

// SNI as sent, lowercased, without a trailing dot; false when it cannot be a
// DNS name (bad characters, over-long, an IP literal as RFC 6066 3 forbids).
// Reads at most 256 bytes of <raw> (a NUL-terminated string or nullptr).
bool normalize_sni(const char* raw, std::string& out);

}  // namespace mf
