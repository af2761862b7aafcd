// PreTlsDialog::feed for imap, pop3 and managesieve, input fed in random chunk splits.
//
// Input layout: byte 0 selects the protocol (low 2 bits: 0 imap, 1 pop3,
// 2 managesieve, 3 imap) and the line limit (bits 2-3: 8192 (the default),
// 64, 1024, 8192); byte 1 seeds the chunk splits; the rest is what the client sends.
//
// Invariants:
//  - no crash, no sanitizer report;
//  - the greeting and every batch of replies end in CRLF, and no reply line
//    holds a CR, LF or NUL of its own;
//  - the outcome (replies and decision) does not depend on how the bytes are
//    split into reads, and after StartTls or Close nothing more is consumed:
//    feeding only the bytes up to the end of the read that ended the dialog
//    gives the same result, and the replies end with the STARTTLS reply;
//  - the replies are bounded: at most a fixed amount per input line plus one
//    echo of the input (the ManageSieve NOOP tag).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "../dialog.h"
#include "check.h"

using mf::PreTlsDialog;
using mf::Proto;

namespace {

const char* kImapCaps = "IMAP4rev1 STARTTLS LOGINDISABLED";
const char* kPop3Caps = "TOP\r\nUIDL\r\nSTLS\r\nPIPELINING\r\n";
const char* kSieveCaps = "\"IMPLEMENTATION\" \"mailfront\"\r\n\"SIEVE\" \"fileinto\"\r\n\"STARTTLS\"\r\n\"VERSION\" \"1.0\"\r\n";

bool ends_crlf(std::string_view s) { return s.size() >= 2 && s.substr(s.size() - 2) == "\r\n"; }

struct Result {
  std::string out;
  PreTlsDialog::Next next = PreTlsDialog::Next::Continue;
  size_t fed = 0;  // bytes handed to feed() up to and including the deciding read
};

// Feeds <in> in chunks whose sizes come from a small PRNG seeded by <seed>
// (seed 0: one read).
Result run(Proto p, std::string_view caps, size_t max_line, std::string_view in, uint32_t seed) {
  PreTlsDialog d(p, caps, max_line);
  Result r;
  uint32_t x = seed * 2654435761u + 1;
  size_t pos = 0;
  while (pos < in.size()) {
    size_t n = in.size() - pos;
    if (seed) {
      x ^= x << 13; x ^= x >> 17; x ^= x << 5;
      // Mostly small reads (1..16), sometimes large ones.
      size_t want = (x & 0x80) ? (x >> 8) % 4096 + 1 : (x >> 8) % 16 + 1;
      if (want < n) n = want;
    }
    std::string batch;
    r.next = d.feed(in.substr(pos, n), batch);
    pos += n;
    FUZZ_CHECK(batch.empty() || ends_crlf(batch), "reply batch without CRLF: [%s]", batch.c_str());
    r.out += batch;
    if (r.next != PreTlsDialog::Next::Continue) break;
  }
  r.fed = pos;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const Proto protos[4] = {Proto::Imap, Proto::Pop3, Proto::ManageSieve, Proto::Imap};
  static const size_t limits[4] = {8192, 64, 1024, 8192};
  Proto p = protos[data[0] & 3];
  size_t max_line = limits[(data[0] >> 2) & 3];
  uint32_t seed = data[1] + 1;
  std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
  std::string_view caps = p == Proto::Imap ? kImapCaps : p == Proto::Pop3 ? kPop3Caps : kSieveCaps;

  {
    PreTlsDialog d(p, caps, max_line);
    FUZZ_CHECK(ends_crlf(d.greeting()), "greeting without CRLF");
    FUZZ_CHECK(ends_crlf(d.timeout_goodbye()), "timeout goodbye without CRLF");
  }

  Result whole = run(p, caps, max_line, in, 0);
  Result split = run(p, caps, max_line, in, seed);
  FUZZ_CHECK(whole.next == split.next, "decision depends on the read split: %d vs %d", int(whole.next), int(split.next));
  FUZZ_CHECK(whole.out == split.out, "replies depend on the read split:\n  whole [%s]\n  split [%s]", whole.out.c_str(),
             split.out.c_str());

  if (split.next != PreTlsDialog::Next::Continue) {
    // Whatever followed the deciding read was never looked at: cut it off.
    Result cut = run(p, caps, max_line, in.substr(0, split.fed), seed);
    FUZZ_CHECK(cut.next == split.next && cut.out == split.out, "bytes after the decision changed the outcome");
    // And the bytes after the deciding line in that read were not answered either.
    if (split.next == PreTlsDialog::Next::StartTls) {
      std::string_view o(split.out);
      bool ok = o.ends_with(" OK Begin TLS negotiation now\r\n") || o.ends_with("+OK Begin TLS negotiation now\r\n") ||
                o.ends_with("OK \"Begin TLS negotiation now\"\r\n");
      FUZZ_CHECK(ok, "a reply follows the STARTTLS reply: [%s]", split.out.c_str());
    }
  }

  // Every reply line is one line: no CR or LF but its CRLF, no NUL.
  {
    std::string_view o(split.out);
    size_t at = 0;
    while (at < o.size()) {
      size_t e = o.find("\r\n", at);
      FUZZ_CHECK(e != std::string_view::npos, "reply without CRLF");
      std::string_view line = o.substr(at, e - at);
      bool clean = line.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
      FUZZ_CHECK(clean, "a control byte inside a reply line: [%.*s]", int(line.size()), line.data());
      at = e + 2;
    }
  }

  // Output bound: every input line yields at most one reply of a fixed size
  // plus the capabilities plus an echo (IMAP tag <= 64, ManageSieve NOOP tag <= line).
  size_t lines = 1;
  for (char c : in.substr(0, split.fed)) lines += c == '\n';
  size_t bound = lines * (std::string_view(caps).size() + 2 * 64 + 128) + split.fed;
  FUZZ_CHECK(split.out.size() <= bound, "replies too large: %zu bytes for %zu input bytes in %zu lines", split.out.size(),
             split.fed, lines);
  return 0;
}
