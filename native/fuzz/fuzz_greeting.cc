// The backend greeting after STARTTLS (native/backend_greeting.h): IMAP/POP3 swallow,
// ManageSieve STARTTLS strip. The input is what the backend sent (at most one
// 16 KiB relay buffer in conn_relay.cc: run with -max_len=16384).
//
// Invariants:
//  - no crash, no sanitizer report;
//  - the result of the strip is never longer than the input (conn_relay.cc copies it
//    back into the same buffer), and is the input with only "STARTTLS"
//    capability lines taken out, none after the final OK/NO/BYE line;
//  - as bytes arrive (conn_relay.cc calls the filter on every read), a prefix is
//    either incomplete or gives the same answer as the whole: the decision
//    does not depend on the read split;
//  - swallow drops exactly the first line, and only a "* OK"/"+OK" one;
//  - both agree with the code as it was in Conn::filter_backend_greeting
//    before the extraction (a differential check, kept below as a reference);
//  - strip_starttls_lines (every capability list before login), for each
//    protocol family: never longer than what it consumed, consumes exactly
//    through the last LF, the same result whatever the read split, idempotent,
//    lines that offer nothing like STARTTLS unchanged, only POP3 "STLS" and
//    ManageSieve "STARTTLS" lines dropped; starts_authentication never crashes;
//  - Buf::replace, as the relay applies both filters, leaves in the buffer the
//    bytes before, the filtered lines, then the rest unchanged.
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>

#include "../backend_greeting.h"
#include "../buffer.h"
#include "check.h"

namespace {

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); i++)
    if (std::toupper(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

// The pre-extraction code (commit 47ed015, native/conn.cc), minus the buffer.
bool reference_strip(std::string_view data, std::string& kept) {
  size_t pos = 0;
  for (;;) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string_view::npos) return false;
    std::string_view line = data.substr(pos, nl + 1 - pos);
    pos = nl + 1;
    std::string_view bare = line.substr(0, line.find_first_of("\r\n"));
    bool last = starts_with_ci(bare, "OK") || starts_with_ci(bare, "NO") || starts_with_ci(bare, "BYE");
    if (!(bare.size() == 10 && starts_with_ci(bare, "\"STARTTLS\""))) kept.append(line);
    if (last) break;
  }
  kept.append(data.substr(pos));
  return true;
}

bool is_starttls_line(std::string_view line) {
  std::string_view bare = line.substr(0, line.find_first_of("\r\n"));
  return bare.size() == 10 && starts_with_ci(bare, "\"STARTTLS\"");
}

bool contains_ci(std::string_view s, std::string_view upper) {
  for (size_t i = 0; i + upper.size() <= s.size(); i++)
    if (starts_with_ci(s.substr(i), upper)) return true;
  return false;
}

// <in> in a relay buffer behind <ahead> bytes, then bytes [ahead, ahead + count)
// replaced by <with>: what remains must be the bytes before, <with>, the rest.
void check_buffer_replace(std::string_view in, size_t ahead, size_t count, const std::string& with) {
  if (ahead + in.size() > mf::kChunk) return;
  mf::BufferPool pool;
  mf::Buf b;
  std::string before(ahead, 'a');
  b.append(before.data(), uint32_t(ahead), pool);
  b.append(in.data(), uint32_t(in.size()), pool);
  b.replace(uint32_t(ahead), uint32_t(count), with.data(), uint32_t(with.size()));
  std::string want = before + with + std::string(in.substr(count));
  FUZZ_CHECK(std::string_view(b.head(), b.len) == want, "Buf::replace: %u bytes left, %zu expected", b.len, want.size());
  b.release(pool);
}

void check_capability_filter(mf::ProtoFamily family, std::string_view in) {
  size_t consumed = 0;
  std::string out = mf::strip_starttls_lines(family, in, consumed);
  size_t last_nl = in.rfind('\n');
  FUZZ_CHECK(consumed == (last_nl == std::string_view::npos ? 0 : last_nl + 1), "caps: consumed %zu", consumed);
  FUZZ_CHECK(out.size() <= consumed, "caps: output grew %zu > %zu", out.size(), consumed);
  check_buffer_replace(in, in.empty() ? 0 : size_t(uint8_t(in[0])) % 64, consumed, out);
  size_t again_consumed = 0;
  FUZZ_CHECK(mf::strip_starttls_lines(family, out, again_consumed) == out, "caps: not idempotent");
  // Read split: the lines of a prefix, then those of the rest with the carried partial line.
  size_t cut = in.empty() ? 0 : size_t(in[0]) % (in.size() + 1);
  size_t c1 = 0, c2 = 0;
  std::string split = mf::strip_starttls_lines(family, in.substr(0, cut), c1);
  split += mf::strip_starttls_lines(family, in.substr(c1), c2);
  FUZZ_CHECK(split == out && c1 + c2 == consumed, "caps: depends on the read split at %zu", cut);
  // Line by line: unchanged unless it offers STARTTLS; POP3 and ManageSieve only drop whole lines.
  size_t ip = 0, op = 0;
  for (size_t nl; (nl = in.find('\n', ip)) != std::string_view::npos; ip = nl + 1) {
    std::string_view line = in.substr(ip, nl + 1 - ip);
    std::string_view bare = line.substr(0, line.find_first_of("\r\n"));
    bool offers = contains_ci(bare, family == mf::ProtoFamily::Pop3 ? "STLS" : "STARTTLS");
    size_t dummy = 0;
    std::string alone = mf::strip_starttls_lines(family, line, dummy);
    if (!offers) FUZZ_CHECK(alone == line, "caps: a line without STARTTLS changed");
    if (family != mf::ProtoFamily::Imap) FUZZ_CHECK(alone.empty() || alone == line, "caps: a line was edited, not dropped");
    FUZZ_CHECK(std::string_view(out).substr(op, alone.size()) == alone, "caps: not the lines one by one");
    op += alone.size();
  }
  FUZZ_CHECK(op == out.size(), "caps: extra output");
  (void)mf::starts_authentication(family, in.substr(0, in.find('\n')));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (auto f : {mf::ProtoFamily::Imap, mf::ProtoFamily::Pop3, mf::ProtoFamily::Sieve}) check_capability_filter(f, in);

  // ---- IMAP / POP3: swallow ----
  bool complete = false;
  size_t drop = mf::swallow_greeting_len(in, complete);
  size_t nl = in.find('\n');
  FUZZ_CHECK(complete == (nl != std::string_view::npos), "swallow: complete without a full line");
  if (!complete) FUZZ_CHECK(drop == 0, "swallow: drops from an incomplete line");
  if (drop) {
    FUZZ_CHECK(drop == nl + 1, "swallow: drops %zu, first line is %zu", drop, nl + 1);
    FUZZ_CHECK(starts_with_ci(in, "* OK") || starts_with_ci(in, "+OK"), "swallow: drops a non-OK line");
  } else if (complete) {
    FUZZ_CHECK(!(starts_with_ci(in, "* OK") || starts_with_ci(in, "+OK")), "swallow: keeps an OK greeting");
  }

  // ---- ManageSieve: strip STARTTLS ----
  std::string out = mf::strip_sieve_starttls(in, complete);
  std::string ref;
  bool ref_complete = reference_strip(in, ref);
  FUZZ_CHECK(complete == ref_complete, "strip: complete differs from the reference");
  if (!complete) {
    FUZZ_CHECK(out.empty(), "strip: output while incomplete");
    return 0;
  }
  FUZZ_CHECK(out == ref, "strip: output differs from the reference");
  FUZZ_CHECK(out.size() <= in.size(), "strip: output grew %zu > %zu", out.size(), in.size());
  check_buffer_replace(in, 0, in.size(), out);

  // Walk input and output together: each input line up to the final one is
  // either copied or a STARTTLS line; the rest is copied verbatim.
  size_t ip = 0, op = 0;
  bool done = false;
  while (!done) {
    size_t e = in.find('\n', ip);
    FUZZ_CHECK(e != std::string_view::npos, "strip: complete but no final line");
    std::string_view line = in.substr(ip, e + 1 - ip);
    std::string_view bare = line.substr(0, line.find_first_of("\r\n"));
    done = starts_with_ci(bare, "OK") || starts_with_ci(bare, "NO") || starts_with_ci(bare, "BYE");
    if (!is_starttls_line(line)) {
      FUZZ_CHECK(std::string_view(out).substr(op, line.size()) == line, "strip: a line changed");
      op += line.size();
    }
    ip = e + 1;
  }
  FUZZ_CHECK(std::string_view(out).substr(op) == in.substr(ip), "strip: bytes after the final line changed");

  // Read split: every shorter prefix that ends before the final line's LF is incomplete.
  size_t final_end = ip;  // one past the final line's LF
  for (size_t cut = 0; cut < final_end; cut += 1 + cut / 8) {
    bool c2 = true;
    std::string o2 = mf::strip_sieve_starttls(in.substr(0, cut), c2);
    FUZZ_CHECK(!c2 && o2.empty(), "strip: prefix of %zu bytes already complete (final line ends at %zu)", cut, final_end);
  }
  bool c3 = false;
  std::string o3 = mf::strip_sieve_starttls(in.substr(0, final_end), c3);
  FUZZ_CHECK(c3 && std::string_view(out).substr(0, o3.size()) == o3 && o3.size() == op,
             "strip: the result at the final line differs from the whole");
  return 0;
}
