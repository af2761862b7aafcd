// LoginWatch (native/login.cc) on both directions of a session, in random read splits.
//
// Input layout: byte 0 picks the protocol (low 2 bits: 0 imap, 1 pop3,
// 2 managesieve, 3 imap) and the byte bound (bit 2: the default, else 512);
// byte 1 seeds the read splits; then records of one length byte (bit 7: the
// server's direction, else the client's; bits 0-6: length) and that many bytes.
//
// Invariants:
//  - no crash, no sanitizer report (every literal, line and SASL buffer path);
//  - the outcomes and the final state do not depend on how each record is
//    split into reads (continuations and literals split across reads);
//  - at most one success, and nothing after it: watching ends there;
//  - user names are at most 128 bytes without control bytes; mechanisms at most 32.
// That a LOGIN-mechanism password never becomes a user name, even out of step
// with a broken server, is checked on the input that found it (corpus
// regression-login-F4-password-as-user) by test/native/login.test.ts: the
// fuzzer cannot tell a password from a user that a client chose to name so.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "../login.h"
#include "check.h"

using mf::LoginOutcome;
using mf::LoginWatch;
using mf::ProtoFamily;

namespace {

struct Record {
  bool server;
  std::string_view bytes;
};

struct Result {
  std::vector<LoginOutcome> out;
  LoginWatch::State state;
};

Result run(ProtoFamily f, size_t bound, const std::vector<Record>& recs, uint32_t seed) {
  LoginWatch w(f, bound);
  Result r;
  uint32_t x = seed * 2654435761u + 1;
  for (const Record& rec : recs) {
    size_t pos = 0;
    while (pos < rec.bytes.size()) {
      size_t n = rec.bytes.size() - pos;
      if (seed) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        size_t want = (x >> 8) % 9 + 1;
        if (want < n) n = want;
      }
      size_t before = r.out.size();
      bool was_watching = w.watching();
      if (rec.server) w.server(rec.bytes.substr(pos, n), r.out);
      else w.client(rec.bytes.substr(pos, n), r.out);
      FUZZ_CHECK(was_watching || r.out.size() == before, "an outcome after watching ended");
      pos += n;
    }
  }
  r.state = w.state();
  return r;
}

bool same(const Result& a, const Result& b) {
  if (a.state != b.state || a.out.size() != b.out.size()) return false;
  for (size_t i = 0; i < a.out.size(); i++)
    if (a.out[i].result != b.out[i].result || a.out[i].user != b.out[i].user || a.out[i].mech != b.out[i].mech) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const ProtoFamily fams[4] = {ProtoFamily::Imap, ProtoFamily::Pop3, ProtoFamily::Sieve, ProtoFamily::Imap};
  ProtoFamily f = fams[data[0] & 3];
  size_t bound = (data[0] & 4) ? 512 : LoginWatch::kDefaultBound;
  uint32_t seed = data[1] + 1;
  std::vector<Record> recs;
  for (size_t i = 2; i < size;) {
    size_t len = data[i] & 0x7f;
    bool server = data[i] & 0x80;
    i++;
    len = std::min(len, size - i);
    recs.push_back({server, std::string_view(reinterpret_cast<const char*>(data) + i, len)});
    i += len;
  }
  Result whole = run(f, bound, recs, 0);
  Result split = run(f, bound, recs, seed);
  FUZZ_CHECK(same(whole, split), "outcomes depend on the read split (%zu vs %zu outcomes)", whole.out.size(), split.out.size());
  size_t successes = 0;
  for (size_t i = 0; i < whole.out.size(); i++) {
    const LoginOutcome& o = whole.out[i];
    if (o.result == LoginOutcome::Result::Success) {
      successes++;
      FUZZ_CHECK(i + 1 == whole.out.size(), "an outcome after a success");
    }
    FUZZ_CHECK(o.user.size() <= LoginWatch::kMaxUser, "user of %zu bytes", o.user.size());
    FUZZ_CHECK(o.mech.size() <= 32, "mech of %zu bytes", o.mech.size());
    for (char c : o.user) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f, "control byte in user");
  }
  FUZZ_CHECK(successes <= 1, "%zu successes", successes);
  FUZZ_CHECK(successes == 0 || whole.state == LoginWatch::State::Authenticated, "success without the authenticated state");
  return 0;
}
