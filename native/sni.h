// SNI normalization (pure; extracted from conn.cc so it can be fuzzed alone).
#pragma once
#include <string>

namespace mf {

// The one host-name rule of mailfront: the SNI a client sends, and (through
// the normalizeHostName export, native/rules.cc) every name in the
// configuration and in certificates. Lowercased, without a trailing dot; false
// when it cannot be a DNS name: characters other than [A-Za-z0-9._-], an empty
// label, a label over 63 bytes or starting or ending with "-", over 253 bytes,
// or an IP literal (RFC 6066 3 forbids one in SNI). Cases: test/cases/hostnames.json.
// Reads at most 256 bytes of <raw> (a NUL-terminated string or nullptr).
bool normalize_sni(const char* raw, std::string& out);

}  // namespace mf
