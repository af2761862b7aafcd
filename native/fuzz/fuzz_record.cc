// mailfront's TLS 1.3 record layer, read side (native/tls13_record.h), against a
// client written here with EVP directly. The input is a script: its first byte
// picks the suite; then steps of [kind][length, 2 bytes][bytes]:
//   kind 0: raw bytes on the wire (headers, CCS, garbage);
//   kind 1: a record sealed under the client's current key: bytes[0] is the inner
//           type, the rest its content (a well-formed KeyUpdate changes the key after it);
//   kind 2: as 1, with one bit of the sealed record flipped (bytes[0] picks which);
// the wire then goes to the record layer in pieces whose sizes the script's bytes
// decide, read out with small and large caps alike.
//
// Invariants:
//  - no crash, no sanitizer report (records over a pool chunk take the larger buffer);
//  - every read gives 0 < got <= cap with Ok, else nothing; after Eof or Error, the same again;
//  - while the script holds only well-formed records (application data, KeyUpdate,
//    user_canceled, close_notify; at most 32 in a row without application data), the
//    plaintext out is exactly the application data sealed, in order, up to a close_notify
//    (Eof), and nothing fails;
//  - whatever the record layer writes back (our KeyUpdate, alerts) opens under the
//    server's keys with sequence numbers from 0, one KeyUpdate per key change asked for,
//    and at most one alert, the last record.
#include <openssl/evp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "../tls13_record.h"
#include "check.h"

namespace {

using mf::Tls13Suite;

const uint8_t kClientSecret[48] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
                                   25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48};
const uint8_t kServerSecret[48] = {99, 98, 97, 96, 95, 94, 93, 92, 91, 90, 89, 88, 87, 86, 85, 84, 83, 82, 81, 80, 79, 78, 77, 76,
                                   75, 74, 73, 72, 71, 70, 69, 68, 67, 66, 65, 64, 63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52};

// One direction of the reference peer: its secret, key and sequence number.
struct Ref {
  Tls13Suite suite;
  uint8_t secret[48];
  mf::TrafficKey key;
  uint64_t seq = 0;
  Ref(Tls13Suite s, const uint8_t* sec) : suite(s) {
    memcpy(secret, sec, sizeof secret);
    FUZZ_CHECK(mf::derive_traffic_key(suite, secret, key), "derive");
  }
  void update() {
    FUZZ_CHECK(mf::next_traffic_secret(suite, secret) && mf::derive_traffic_key(suite, secret, key), "update");
    seq = 0;
  }
  void nonce(uint8_t* n) const {
    memcpy(n, key.iv, 12);
    for (int i = 0; i < 8; i++) n[11 - i] ^= uint8_t(seq >> (8 * i));
  }
  // AEAD in one go (enc: seal; else open, false on a bad tag), <aad> the 5-byte header.
  bool crypt(bool enc, const uint8_t* aad, const uint8_t* in, size_t n, uint8_t* out, uint8_t* tag) {
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    uint8_t iv[12];
    nonce(iv);
    int l = 0;
    bool ok = EVP_CipherInit_ex(c, mf::tls13_cipher(suite), nullptr, key.key, iv, enc) == 1 &&
              EVP_CipherUpdate(c, nullptr, &l, aad, 5) == 1 && (n == 0 || EVP_CipherUpdate(c, out, &l, in, int(n)) == 1);
    if (ok && !enc) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1;
    ok = ok && EVP_CipherFinal_ex(c, out + n, &l) == 1;
    if (ok && enc) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    if (ok) seq++;
    return ok;
  }
  std::string seal(uint8_t type, const uint8_t* p, size_t n) {
    std::string pt(reinterpret_cast<const char*>(p), n);
    pt.push_back(char(type));
    size_t clen = pt.size() + 16;
    std::string rec(5 + clen, '\0');
    uint8_t* r = reinterpret_cast<uint8_t*>(rec.data());
    r[0] = 23, r[1] = 3, r[2] = 3, r[3] = uint8_t(clen >> 8), r[4] = uint8_t(clen);
    FUZZ_CHECK(crypt(true, r, reinterpret_cast<const uint8_t*>(pt.data()), pt.size(), r + 5, r + 5 + pt.size()), "seal");
    return rec;
  }
};

bool is_key_update(uint8_t type, const uint8_t* p, size_t n) {
  return type == 22 && n == 5 && p[0] == 24 && p[1] == 0 && p[2] == 0 && p[3] == 1 && p[4] <= 1;
}

// The server's records: each opens in order under its keys; KeyUpdates move them; an alert ends
// them. Application data only where <data> says (our write after the script).
void check_replies(Ref& server, mf::Buf& wire, size_t updates_asked, bool failed, bool data = false) {
  size_t at = 0, updates = 0, alerts = 0;
  std::string w(wire.data ? wire.head() : "", wire.len);
  while (at < w.size()) {
    FUZZ_CHECK(w.size() - at >= 5, "reply: a partial header");
    const uint8_t* h = reinterpret_cast<const uint8_t*>(w.data() + at);
    size_t len = size_t(h[3]) << 8 | h[4];
    FUZZ_CHECK(h[0] == 23 && len >= 17 && w.size() - at >= 5 + len, "reply: a bad record header");
    std::string body(w.substr(at + 5, len));
    uint8_t* b = reinterpret_cast<uint8_t*>(body.data());
    FUZZ_CHECK(server.crypt(false, h, b, len - 16, b, b + len - 16), "reply: does not open under the server's key (seq %llu)",
               (unsigned long long)server.seq);
    FUZZ_CHECK(alerts == 0, "reply: a record after an alert");
    uint8_t type = b[len - 17];
    if (type == 23 && data) {
      at += 5 + len;
      continue;
    }
    if (type == 22) {
      FUZZ_CHECK(len - 17 == 5 && is_key_update(22, b, 5) && b[4] == 0, "reply: a handshake message other than KeyUpdate(0)");
      server.update();
      updates++;
    } else {
      FUZZ_CHECK(type == 21 && len - 17 == 2 && b[0] == 2, "reply: neither KeyUpdate nor a fatal alert");
      alerts++;
    }
    at += 5 + len;
  }
  FUZZ_CHECK(updates <= updates_asked, "reply: %zu KeyUpdates for %zu asked", updates, updates_asked);
  if (!failed) FUZZ_CHECK(alerts == 0, "reply: an alert without an error");
}

}  // namespace

// Once, before the inputs: past kRekeyAfterRecords under one key, our next write
// is a KeyUpdate(update_not_requested) under the old key, then the data under the next
// key from sequence 0, unasked; after our close_notify, no write seals anything.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  for (Tls13Suite suite : {Tls13Suite::Aes128Gcm, Tls13Suite::Aes256Gcm, Tls13Suite::Chacha20Poly1305}) {
    mf::BufferPool pool;
    auto rec = mf::Tls13Record::make(suite, kClientSecret, kServerSecret, mf::kRekeyAfterRecords - 1, pool);
    FUZZ_CHECK(rec, "make");
    mf::Buf wire;
    FUZZ_CHECK(rec->write("last", 4, wire) == 4 && rec->write("next", 4, wire) == 4, "rekey: write");
    Ref server(suite, kServerSecret);
    server.seq = mf::kRekeyAfterRecords - 1;
    std::string w(wire.head(), wire.len);
    auto open_next = [&](size_t& at) {
      const uint8_t* h = reinterpret_cast<const uint8_t*>(w.data() + at);
      size_t len = size_t(h[3]) << 8 | h[4];
      FUZZ_CHECK(w.size() - at >= 5 + len && len > 17, "rekey: a short record");
      std::string body(w.substr(at + 5, len));
      uint8_t* b = reinterpret_cast<uint8_t*>(body.data());
      FUZZ_CHECK(server.crypt(false, h, b, len - 16, b, b + len - 16), "rekey: a record does not open at seq %llu", (unsigned long long)server.seq);
      at += 5 + len;
      return body.substr(0, len - 16);
    };
    size_t at = 0;
    FUZZ_CHECK(open_next(at) == std::string("last\x17", 5), "rekey: the last record under the old key");
    std::string update = open_next(at);
    FUZZ_CHECK(update.size() == 6 && is_key_update(22, reinterpret_cast<const uint8_t*>(update.data()), 5) && update[4] == 0 && update[5] == 22,
               "rekey: no KeyUpdate(update_not_requested) after %llu records", (unsigned long long)mf::kRekeyAfterRecords);
    server.update();
    FUZZ_CHECK(open_next(at) == std::string("next\x17", 5) && at == w.size(), "rekey: the data under the next key from sequence 0");
    // After our close_notify nothing more is sealed (RFC 8446 6.1), data or KeyUpdate owed.
    rec->close_notify(wire);
    uint32_t closed_len = wire.len;
    FUZZ_CHECK(rec->write("late", 4, wire) == 0 && wire.len == closed_len && rec->sending_ended(), "close_notify: a record sealed after it");
    wire.release(pool);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const Tls13Suite kSuites[] = {Tls13Suite::Aes128Gcm, Tls13Suite::Aes256Gcm, Tls13Suite::Chacha20Poly1305};
  Tls13Suite suite = kSuites[data[0] % 3];
  Ref client(suite, kClientSecret), server(suite, kServerSecret);
  // Build the wire from the script, and what a correct reader gives while it is all well formed.
  std::string wire, expected;
  bool well_formed = true, eof_expected = false;
  size_t updates_asked = 0, idle_run = 0;
  size_t i = 1;
  while (i + 3 <= size) {
    uint8_t kind = data[i] % 3;
    size_t n = std::min<size_t>(size_t(data[i + 1]) << 8 | data[i + 2], size - i - 3);
    const uint8_t* p = data + i + 3;
    i += 3 + n;
    if (kind == 0 || n == 0) {
      wire.append(reinterpret_cast<const char*>(p), n);
      well_formed = well_formed && n == 0;
      continue;
    }
    uint8_t type = p[0];
    std::string rec = client.seal(type, p + 1, n - 1);
    if (kind == 2) {
      size_t bit = size_t(p[0]) * 131 % (rec.size() * 8);
      rec[bit / 8] = char(rec[bit / 8] ^ (1 << (bit % 8)));
      well_formed = false;
    }
    wire += rec;
    if (!well_formed || eof_expected) continue;
    // What the reader sees (RFC 8446 5.4): the inner type is the last non-zero byte of content || type.
    std::string inner(reinterpret_cast<const char*>(p + 1), n - 1);
    inner.push_back(char(type));
    while (!inner.empty() && inner.back() == 0) inner.pop_back();
    if (inner.empty()) {
      well_formed = false;
      continue;
    }
    uint8_t seen = uint8_t(inner.back());
    inner.pop_back();
    const uint8_t* c = reinterpret_cast<const uint8_t*>(inner.data());
    // Records without application data (empty ones, KeyUpdates, user_canceled): 32 in a row at most.
    bool user_canceled = seen == 21 && inner.size() == 2 && c[1] == 90;
    bool idle = (seen == 23 && inner.empty()) || user_canceled || (seen == 22 && inner.size() <= mf::kMaxPlaintext);
    idle_run = idle ? idle_run + 1 : 0;
    if (idle_run > 32) well_formed = false;
    else if (seen == 23 && inner.size() <= mf::kMaxPlaintext) expected += inner;
    else if (is_key_update(seen, c, inner.size())) client.update(), updates_asked += c[4];
    else if (seen == 21 && inner.size() == 2 && c[1] == 0) eof_expected = true;
    else if (!user_canceled) well_formed = false;
  }
  mf::BufferPool pool;
  auto rec = mf::Tls13Record::make(suite, kClientSecret, kServerSecret, 0, pool);
  FUZZ_CHECK(rec, "make");
  mf::Buf out;
  std::string plain;
  mf::Tls13Record::Status last = mf::Tls13Record::Status::WantRead;
  size_t fed = 0, step = 0;
  char buf[mf::kMaxPlaintext];
  while (last != mf::Tls13Record::Status::Eof && last != mf::Tls13Record::Status::Error) {
    uint32_t cap = step % 3 == 0 ? 1 + uint32_t(data[step % size]) : uint32_t(sizeof buf);
    uint32_t got = 0;
    last = rec->read(buf, cap, got, out);
    step++;
    if (last == mf::Tls13Record::Status::Ok) {
      FUZZ_CHECK(got > 0 && got <= cap, "read: got %u of cap %u", got, cap);
      plain.append(buf, got);
      continue;
    }
    FUZZ_CHECK(got == 0, "read: bytes with status %d", int(last));
    if (last != mf::Tls13Record::Status::WantRead) break;
    if (fed == wire.size()) break;
    uint32_t room = 0;
    char* into = rec->in_space(room);
    FUZZ_CHECK(room > 0, "in_space: no room");
    size_t piece = std::min<size_t>({room, wire.size() - fed, 1 + size_t(data[(fed + step) % size]) * 97});
    memcpy(into, wire.data() + fed, piece);
    rec->in_added(uint32_t(piece));
    fed += piece;
  }
  if (last == mf::Tls13Record::Status::Eof || last == mf::Tls13Record::Status::Error) {
    uint32_t got = 7;
    FUZZ_CHECK(rec->read(buf, sizeof buf, got, out) == last && got == 0, "read: changes its mind after the end");
  }
  // Up to the first step that is not well formed, every byte of application data; none after it
  // (nothing after it opens: the sequence numbers and the stream are off).
  FUZZ_CHECK(plain == expected, "plaintext: %zu bytes, %zu expected", plain.size(), expected.size());
  if (well_formed) {
    FUZZ_CHECK(last != mf::Tls13Record::Status::Error, "error on a well-formed script: %s", rec->error().c_str());
    FUZZ_CHECK((last == mf::Tls13Record::Status::Eof) == eof_expected, "close_notify: status %d", int(last));
  }
  check_replies(server, out, updates_asked, last == mf::Tls13Record::Status::Error);
  // Our application data after it all seals under the key the replies left (a KeyUpdate owed goes first).
  if (last != mf::Tls13Record::Status::Error && !rec->failed()) {
    mf::Buf more;
    uint32_t put = rec->write("after", 5, more);
    FUZZ_CHECK(put == 5, "write: %u", put);
    out.release(pool);
    check_replies(server, more, 1, false, true);
    more.release(pool);
  }
  out.release(pool);
  rec.reset();
  return 0;
}
