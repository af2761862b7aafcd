#include "tls13_record.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace mf {

namespace {

constexpr uint8_t kChangeCipherSpec = 20, kAlert = 21, kHandshake = 22, kApplicationData = 23;
constexpr uint8_t kKeyUpdate = 24;
// Alert descriptions (RFC 8446 6).
constexpr uint8_t kCloseNotify = 0, kUnexpectedMessage = 10, kBadRecordMac = 20, kRecordOverflow = 22,
                  kIllegalParameter = 47, kDecodeError = 50, kInternalError = 80, kUserCanceled = 90;
// Records in a row that give no application data (empty ones, KeyUpdates, user_canceled):
// each costs a decryption (a KeyUpdate a key schedule) and moves nothing, so without a bound a
// client keeps the worker in tls_read for as long as it sends. OpenSSL ends the connection at
// the 33rd empty record (MAX_EMPTY_RECORDS), BoringSSL at the 33rd KeyUpdate (kMaxKeyUpdates).
constexpr uint32_t kMaxIdleRecords = 32;

uint32_t record_length(const char* h) { return uint32_t(uint8_t(h[3])) << 8 | uint8_t(h[4]); }

// Contiguous room for <need> bytes at <w>'s tail, compacting it if that makes room; null if none.
char* wire_room(Buf& w, uint32_t need, BufferPool& pool) {
  if (need > w.room()) return nullptr;
  char* t = w.tail(pool);
  if (w.tail_room() < need) {
    memmove(w.data, w.head(), w.len);
    w.off = 0;
    t = w.data + w.len;
  }
  return t;
}

}  // namespace

std::unique_ptr<Tls13Record> Tls13Record::make(Tls13Suite suite, const uint8_t* client_secret, const uint8_t* server_secret,
                                               uint64_t write_seq, BufferPool& pool) {
  std::unique_ptr<Tls13Record> r(new Tls13Record(suite, pool));
  size_t len = tls13_secret_len(suite);
  memcpy(r->read_.secret, client_secret, len);
  memcpy(r->write_.secret, server_secret, len);
  r->write_.seq = write_seq;
  if (!r->set_key(r->read_, false) || !r->set_key(r->write_, true)) return nullptr;
  return r;
}

Tls13Record::~Tls13Record() {
  release();
  EVP_CIPHER_CTX_free(read_.ctx);
  EVP_CIPHER_CTX_free(write_.ctx);
  OPENSSL_cleanse(read_.secret, sizeof read_.secret);
  OPENSSL_cleanse(write_.secret, sizeof write_.secret);
  OPENSSL_cleanse(read_.iv, sizeof read_.iv);
  OPENSSL_cleanse(write_.iv, sizeof write_.iv);
}

// The key of <d>'s current secret, set once into its context; per record only the nonce changes.
bool Tls13Record::set_key(Direction& d, bool enc) {
  const EVP_CIPHER* cipher = tls13_cipher(suite_);
  if (!cipher) return false;
  if (!d.ctx && !(d.ctx = EVP_CIPHER_CTX_new())) return false;
  TrafficKey k;
  bool ok = derive_traffic_key(suite_, d.secret, k) && EVP_CipherInit_ex(d.ctx, cipher, nullptr, k.key, nullptr, enc) == 1;
  memcpy(d.iv, k.iv, kIvLen);
  OPENSSL_cleanse(&k, sizeof k);
  return ok;
}

// The per-record nonce: the 64-bit sequence number, big-endian, left-padded, XORed with the IV (RFC 8446 5.3).
void Tls13Record::nonce(const Direction& d, uint8_t* out) const {
  memcpy(out, d.iv, kIvLen);
  for (int i = 0; i < 8; i++) out[kIvLen - 1 - i] ^= uint8_t(d.seq >> (8 * i));
}

bool Tls13Record::seal(uint8_t type, const char* p, uint32_t n, Buf& wire) {
  // A sequence number never wraps (a nonce reused under one key breaks AES-GCM): the connection ends first.
  if (write_.seq == UINT64_MAX) return false;
  uint32_t total = n + kSealOverhead;
  char* at = wire_room(wire, total, pool_);
  if (!at) return false;
  uint8_t* h = reinterpret_cast<uint8_t*>(at);
  uint32_t clen = n + 1 + kTagLen;
  h[0] = kApplicationData;  // the outer type of every protected record
  h[1] = 3;
  h[2] = 3;
  h[3] = uint8_t(clen >> 8);
  h[4] = uint8_t(clen);
  uint8_t iv[kIvLen];
  nonce(write_, iv);
  uint8_t* body = h + kRecordHeader;
  int l = 0;
  EVP_CIPHER_CTX* c = write_.ctx;
  bool ok = EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, iv, 1) == 1 && EVP_CipherUpdate(c, nullptr, &l, h, kRecordHeader) == 1 &&
            (n == 0 || EVP_CipherUpdate(c, body, &l, reinterpret_cast<const uint8_t*>(p), int(n)) == 1) &&
            EVP_CipherUpdate(c, body + n, &l, &type, 1) == 1 && EVP_CipherFinal_ex(c, body + n + 1, &l) == 1 &&
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, int(kTagLen), body + n + 1) == 1;
  if (!ok) {
    // Nothing of it was appended; the connection ends rather than try this nonce again.
    failed_ = true;
    why_ = "internal_error: sealing a record failed";
    return false;
  }
  write_.seq++;
  wire.len += total;
  return true;
}

// Decrypts the record at <rec> (header and <len> bytes of ciphertext) in place; false on a bad tag
// (or a sequence number at its end: it never wraps).
bool Tls13Record::open(uint8_t* rec, uint32_t len) {
  if (len < 1 + kTagLen || read_.seq == UINT64_MAX) return false;
  uint8_t iv[kIvLen];
  nonce(read_, iv);
  uint8_t* body = rec + kRecordHeader;
  uint32_t n = len - kTagLen;
  int l = 0;
  EVP_CIPHER_CTX* c = read_.ctx;
  bool ok = EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, iv, 0) == 1 && EVP_CipherUpdate(c, nullptr, &l, rec, kRecordHeader) == 1 &&
            EVP_CipherUpdate(c, body, &l, body, int(n)) == 1 &&
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, int(kTagLen), body + n) == 1 && EVP_CipherFinal_ex(c, body + n, &l) == 1;
  if (ok) read_.seq++;
  return ok;
}

// A fatal error of ours: its alert (encrypted, best effort), and nothing more is read or sent.
Tls13Record::Status Tls13Record::fail(uint8_t alert, const char* why, Buf& wire) {
  if (!failed_) {
    const char a[2] = {2, char(alert)};
    seal(kAlert, a, 2, wire);
    failed_ = true;
    why_ = why;
  }
  return Status::Error;
}

std::string Tls13Record::error() const {
  if (peer_alert_) return "the client sent alert " + std::to_string(peer_alert_) + " (record layer)";
  return why_ ? why_ : "";
}

void Tls13Record::adopt(Buf& b) {
  if (b.len == 0) return b.release(pool_);
  release();
  in_ = b.data;
  in_cap_ = kChunk;
  in_off_ = b.off;
  in_len_ = b.len;
  b.data = nullptr;
  b.off = b.len = 0;
}

void Tls13Record::release() {
  if (in_) {
    if (in_cap_ == kChunk) pool_.put(in_);
    else std::free(in_);
  }
  in_ = nullptr;
  in_cap_ = in_off_ = in_len_ = 0;
  open_len_ = pt_at_ = pt_left_ = 0;
}

// Room for <need> bytes from in_off_: a larger block than a chunk for a record that needs it.
void Tls13Record::ensure_capacity(uint32_t need) {
  if (!in_) {
    in_ = pool_.get();
    in_cap_ = kChunk;
    in_off_ = in_len_ = 0;
  }
  if (need > in_cap_) {
    char* big = static_cast<char*>(std::malloc(kMaxRecord));
    if (!big) std::abort();  // as the pool does not survive malloc failing either
    memcpy(big, in_ + in_off_, in_len_);
    if (in_cap_ == kChunk) pool_.put(in_);
    else std::free(in_);
    in_ = big;
    in_cap_ = kMaxRecord;
    in_off_ = 0;
  }
  // Move the data to the front when the record would not fit behind it, or little room is left.
  if (in_off_ > 0 && (in_off_ + need > in_cap_ || in_cap_ - in_off_ - in_len_ < in_cap_ / 4)) {
    memmove(in_, in_ + in_off_, in_len_);
    in_off_ = 0;
  }
}

char* Tls13Record::in_space(uint32_t& room) {
  // Room for the record at the head (its header says how long), at least one byte more.
  uint32_t need = in_len_ + 1;
  if (in_len_ >= kRecordHeader) need = std::max(need, kRecordHeader + std::min(record_length(in_ + in_off_), kMaxCiphertext));
  ensure_capacity(need);
  room = in_cap_ - in_off_ - in_len_;
  return in_ + in_off_ + in_len_;
}

void Tls13Record::in_added(uint32_t n) {
  in_len_ += n;
  if (in_len_ == 0) release();  // an idle connection holds no buffer
}

void Tls13Record::consume_record() {
  in_off_ += open_len_;
  in_len_ -= open_len_;
  open_len_ = pt_at_ = pt_left_ = 0;
  if (in_len_ == 0) release();
}

Tls13Record::Status Tls13Record::read(char* out, uint32_t cap, uint32_t& got, Buf& wire) {
  got = 0;
  for (;;) {
    if (pt_left_ > 0) {
      got = std::min(cap, pt_left_);
      memcpy(out, in_ + in_off_ + pt_at_, got);
      pt_at_ += got;
      pt_left_ -= got;
      if (pt_left_ == 0) consume_record();
      return Status::Ok;
    }
    if (failed_) return Status::Error;
    if (eof_) return Status::Eof;
    if (in_len_ < kRecordHeader) return Status::WantRead;
    uint8_t* rec = reinterpret_cast<uint8_t*>(in_ + in_off_);
    uint32_t len = record_length(in_ + in_off_);
    // After the handshake every record is protected: a ChangeCipherSpec (or anything
    // else in the clear) is unexpected now (RFC 8446 5).
    if (rec[0] != kApplicationData) return fail(kUnexpectedMessage, "unexpected_message: a record in the clear after the handshake", wire);
    if (len > kMaxCiphertext) return fail(kRecordOverflow, "record_overflow: a record longer than 2^14 + 256 bytes", wire);
    if (in_len_ < kRecordHeader + len) return Status::WantRead;
    if (!open(rec, len)) return fail(kBadRecordMac, "bad_record_mac: a record failed authentication", wire);
    open_len_ = kRecordHeader + len;
    // The inner type is the last non-zero byte; zeros after it are padding.
    uint32_t n = len - kTagLen;
    const uint8_t* pt = rec + kRecordHeader;
    while (n > 0 && pt[n - 1] == 0) n--;
    if (n == 0) return fail(kUnexpectedMessage, "unexpected_message: a record of padding only", wire);
    uint8_t type = pt[--n];
    if (n > kMaxPlaintext) return fail(kRecordOverflow, "record_overflow: more than 2^14 bytes of plaintext in a record", wire);
    bool idle = (type == kApplicationData && n == 0) || type == kHandshake || (type == kAlert && n == 2 && pt[1] == kUserCanceled);
    if (!idle) idle_records_ = 0;
    else if (++idle_records_ > kMaxIdleRecords)
      return fail(kUnexpectedMessage, "unexpected_message: more than 32 records in a row without application data", wire);
    switch (type) {
      case kApplicationData:
        if (n == 0) {  // allowed (traffic analysis cover); nothing to give
          consume_record();
          continue;
        }
        pt_at_ = kRecordHeader;
        pt_left_ = n;
        continue;
      case kAlert: {
        // One alert per record, never fragmented (RFC 8446 5.1).
        if (n != 2) return fail(kDecodeError, "decode_error: an alert record that is not one alert", wire);
        uint8_t desc = pt[1];  // taken first: consume_record frees the buffer when it empties
        consume_record();
        // user_canceled is the one alert besides close_notify that ends nothing (RFC 8446 6.1,
        // as OpenSSL): a close_notify is to follow.
        if (desc == kUserCanceled) continue;
        if (desc == kCloseNotify) {
          eof_ = true;  // the client's EOF, as SSL_read's SSL_ERROR_ZERO_RETURN
          return Status::Eof;
        }
        failed_ = true;  // any other alert ends the connection: nothing more is sent
        peer_alert_ = desc;
        return Status::Error;
      }
      case kHandshake: {
        Status s = on_handshake(pt, n, wire);
        if (s != Status::Ok) return s;
        consume_record();
        continue;
      }
      default:
        (void)kChangeCipherSpec;
        return fail(kUnexpectedMessage, "unexpected_message: a record type other than application data, alert or KeyUpdate", wire);
    }
  }
}

// Only a KeyUpdate may come after the handshake here (no post-handshake authentication is asked
// for, and a client sends no tickets), alone and at the end of its record: it changes the key.
Tls13Record::Status Tls13Record::on_handshake(const uint8_t* msg, uint32_t n, Buf& wire) {
  if (n < 4 || msg[0] != kKeyUpdate) return fail(kUnexpectedMessage, "unexpected_message: a handshake message after the handshake", wire);
  uint32_t body = uint32_t(msg[1]) << 16 | uint32_t(msg[2]) << 8 | msg[3];
  if (body != 1 || n < 5) return fail(kDecodeError, "decode_error: a KeyUpdate of the wrong length", wire);
  if (n != 5) return fail(kUnexpectedMessage, "unexpected_message: a KeyUpdate not at the end of its record", wire);
  if (msg[4] > 1) return fail(kIllegalParameter, "illegal_parameter: a KeyUpdate neither requested nor not", wire);
  if (!next_traffic_secret(suite_, read_.secret) || !set_key(read_, false)) return fail(kInternalError, "internal_error: the client's next key", wire);
  read_.seq = 0;
  // update_requested: ours follows under the current key, then our key changes (4.6.3).
  if (msg[4] == 1) key_update_owed_ = true;
  if (key_update_owed_) write(nullptr, 0, wire);
  return Status::Ok;
}

uint32_t Tls13Record::write(const char* p, uint32_t n, Buf& wire) {
  // After our close_notify nothing more is sent (RFC 8446 6.1): no goodbye, no KeyUpdate owed
  // (OpenSSL refuses SSL_write once SSL_shutdown ran).
  if (failed_ || closed_) return 0;
  if (write_.seq >= kRekeyAfterRecords) key_update_owed_ = true;
  if (key_update_owed_) {
    static const char kUpdate[5] = {char(kKeyUpdate), 0, 0, 1, 0};  // update_not_requested
    if (!seal(kHandshake, kUpdate, sizeof kUpdate, wire)) return 0;
    key_update_owed_ = false;
    if (!next_traffic_secret(suite_, write_.secret) || !set_key(write_, true)) {
      failed_ = true;
      why_ = "internal_error: our next key";
      return 0;
    }
    write_.seq = 0;
  }
  if (n == 0 || wire.room() <= kSealOverhead) return 0;
  uint32_t take = std::min({n, kMaxPlaintext, wire.room() - kSealOverhead});
  return seal(kApplicationData, p, take, wire) ? take : 0;
}

void Tls13Record::close_notify(Buf& wire) {
  if (failed_ || closed_) return;
  closed_ = true;
  const char a[2] = {1, char(kCloseNotify)};
  seal(kAlert, a, 2, wire);
}

}  // namespace mf
