// Reading a pair's files on the check threads (the bulk loader's fast path), for the plain case
// only. The PEM block rule is this file's pem_blocks(), which read.ts calls too (rules.cc). Whatever read.ts would word as
// a problem (a read error, a file too large, no certificate, no key, an encrypted key, a key
// readable by every user) is left to read.ts: the reader answers "not plain" and the control
// plane reads that pair itself, so every message stays the one read.ts writes.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "cert_check.h"

namespace mf {

// A PEM block as read.ts finds it: "-----BEGIN X-----" (line end) to the first "-----END X-----".
struct PemBlock {
  std::string_view label;
  std::string_view pem;
};
std::vector<PemBlock> pem_blocks(std::string_view text);
// A private key's label: PRIVATE KEY, RSA/EC PRIVATE KEY, ENCRYPTED PRIVATE KEY.
bool is_key_label(std::string_view label);

// Fills <out> with the certificate and key blocks of <files>; false when the pair is not plain
// (see above). Key text read here is wiped before returning, whatever the outcome.
bool read_pair_files(const PairFiles& files, PairInput& out);

// Let's Encrypt discovery (src/certs/sources.ts): which of fullchain.pem (bit 1) and privkey.pem
// (bit 2) each <live>/<name> directory lists, read as readdir would (open the directory, read its
// entries, stopping once both are seen); -1 when the directory cannot be listed, for the control
// plane to list again and word (or skip, for a file in live/). Spread over the check threads.
std::vector<int> lineage_files(const std::string& live, const std::vector<std::string>& names);

}  // namespace mf
