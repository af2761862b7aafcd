// Session-ticket keys of one Proxy, shared by every SSL_CTX it builds, so a ticket
// issued under one certificate context (or one snapshot) resumes under the next.
#pragma once
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mf {

struct TicketKey {
  std::array<unsigned char, 16> name;
  std::array<unsigned char, 32> hmac;
  std::array<unsigned char, 32> aes;

  TicketKey() = default;
  TicketKey(const TicketKey&) = default;
  TicketKey& operator=(const TicketKey&) = default;
  // Every copy (a vector growing, a key set copied on rotation) is wiped when it goes.
  ~TicketKey() {
    OPENSSL_cleanse(name.data(), name.size());
    OPENSSL_cleanse(hmac.data(), hmac.size());
    OPENSSL_cleanse(aes.data(), aes.size());
  }
};

class TicketKeys {
 public:
  struct KeySet {
    std::vector<TicketKey> keys;  // newest first: the first encrypts, every key decrypts
    bool own = true;              // made here (rotated by rotate_if_due), not given
    int64_t made_ms = 0;
  };

  // Newest first. Empty <keys>: keys are made here and rotated by rotate_if_due().
  // False (nothing changed) when a key was to be made and the random generator failed.
  bool set(std::vector<TicketKey> keys);
  // Any thread. Makes a new key every 6 hours when the keys are our own.
  void rotate_if_due(int64_t now_ms);
  // Any thread, lock-free for the handshakes: the key set in use.
  std::shared_ptr<const KeySet> current() const { return keys_.load(std::memory_order_acquire); }

  // Ties <ctx> to <keys>: its ticket callback encrypts and decrypts under them. The
  // context holds a reference, so the keys live as long as any context using them.
  static void install(SSL_CTX* ctx, const std::shared_ptr<TicketKeys>& keys);
  // Parses 80-byte keys (name 16, HMAC 32, AES 32).
  static bool parse(const unsigned char* data, size_t len, TicketKey& out);

 private:
  std::atomic<std::shared_ptr<const KeySet>> keys_;
  std::mutex write_mu_;  // writers only (apply on the JS thread, rotation on worker 0), never a handshake
};

}  // namespace mf
