// mailfront's own TLS 1.3 record layer (RFC 8446 5, 4.6.3) for an established
// connection: once the handshake is over, the SSL (some 18 KiB with its record
// layers, held for hours by an IMAP IDLE) is freed and the records are protected
// here with the traffic keys, as the kernel's kTLS would. Application data, alerts
// and KeyUpdate only: anything else after the handshake is unexpected_message.
// No sockets here: ciphertext comes in through in_space()/in_added(), and what we
// send is sealed into a Buf (ClientIo's held writes, client_io.h). Worker thread only.
#pragma once
#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "buffer.h"
#include "tls13_keys.h"

namespace mf {

constexpr uint32_t kRecordHeader = 5;
constexpr uint32_t kMaxPlaintext = 1 << 14;
constexpr uint32_t kMaxCiphertext = kMaxPlaintext + 256;
constexpr uint32_t kMaxRecord = kRecordHeader + kMaxCiphertext;
// RFC 8446 5.5: at most 2^24.5 full-size records under one AES-GCM key. Neither
// OpenSSL nor clients roll a server's key on their own, so we send a KeyUpdate
// (update_not_requested) and take the next key once this many records went out under one.
constexpr uint64_t kRekeyAfterRecords = uint64_t(1) << 24;
// What sealing adds to the plaintext: header, inner content type, tag.
constexpr uint32_t kSealOverhead = kRecordHeader + 1 + kTagLen;

class Tls13Record {
 public:
  enum class Status : uint8_t { Ok, WantRead, Eof, Error };

  // After the handshake: the client's and the server's application traffic secrets
  // (CLIENT_/SERVER_TRAFFIC_SECRET_0) and the number of records the server sent
  // under its secret already (the session ticket); nothing read yet under the client's.
  // Null when OpenSSL fails. The secrets are copied (a KeyUpdate derives the next from them).
  static std::unique_ptr<Tls13Record> make(Tls13Suite suite, const uint8_t* client_secret, const uint8_t* server_secret,
                                           uint64_t write_seq, BufferPool& pool);
  ~Tls13Record();
  Tls13Record(const Tls13Record&) = delete;
  Tls13Record& operator=(const Tls13Record&) = delete;

  // ---- reading ----
  // Takes over <b>'s bytes: what was read ahead of the handshake's last record.
  void adopt(Buf& b);
  // Where bytes from the socket go next (<room> > 0), and how many came (0: none; an empty buffer is freed).
  char* in_space(uint32_t& room);
  void in_added(uint32_t n);
  // Bytes buffered: ciphertext not yet opened, or plaintext not yet taken.
  bool has_input() const { return in_len_ > 0; }
  // Application data into <out>: Ok with 0 < got <= cap; WantRead (no whole record
  // buffered); Eof (the client's close_notify); Error (error() says why). A KeyUpdate
  // asking for ours, and our alert on an error, are sealed into <wire>.
  Status read(char* out, uint32_t cap, uint32_t& got, Buf& wire);

  // ---- writing ----
  // Seals the start of <p, n> as one record appended to <wire> (after a KeyUpdate
  // we owe): the bytes taken, 0 when <wire> has no room, the connection failed or
  // our close_notify went (sending_ended()).
  uint32_t write(const char* p, uint32_t n, Buf& wire);
  // Our close_notify, best effort (not after a fatal alert either way).
  void close_notify(Buf& wire);

  bool failed() const { return failed_; }
  bool sending_ended() const { return failed_ || closed_; }
  std::string error() const;
  // Frees the input buffer (close).
  void release();

 private:
  struct Direction {
    EVP_CIPHER_CTX* ctx = nullptr;
    uint8_t secret[kMaxSecret];
    uint8_t iv[kIvLen];
    uint64_t seq = 0;
  };
  Tls13Record(Tls13Suite suite, BufferPool& pool) : suite_(suite), pool_(pool) {}
  bool set_key(Direction& d, bool enc);
  void nonce(const Direction& d, uint8_t* out) const;
  bool seal(uint8_t type, const char* p, uint32_t n, Buf& wire);
  bool open(uint8_t* rec, uint32_t len);
  Status on_handshake(const uint8_t* msg, uint32_t n, Buf& wire);
  Status fail(uint8_t alert, const char* why, Buf& wire);
  void consume_record();
  void ensure_capacity(uint32_t need);

  Tls13Suite suite_;
  BufferPool& pool_;
  Direction read_, write_;
  bool key_update_owed_ = false;  // the client asked for ours; sent before our next record
  uint32_t idle_records_ = 0;     // records in a row without application data (kMaxIdleRecords)
  bool eof_ = false, failed_ = false, closed_ = false;
  uint8_t peer_alert_ = 0;        // the client's alert that ended it (0: none)
  const char* why_ = nullptr;     // our reason, when we ended it
  // Ciphertext from the socket: a pool chunk, or a larger block while a record
  // bigger than a chunk is buffered (freed, like the chunk, once empty).
  char* in_ = nullptr;
  uint32_t in_cap_ = 0, in_off_ = 0, in_len_ = 0;
  // The opened record at the head of in_: its length, and its plaintext not yet
  // taken (relative to in_off_).
  uint32_t open_len_ = 0, pt_at_ = 0, pt_left_ = 0;
};

}  // namespace mf
