// Session-ticket keys shared by every SSL_CTX of the process, so a ticket issued
// under one certificate context (or one snapshot) resumes under the next.
#pragma once
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <memory>
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
  // Newest first: the first key encrypts, every key decrypts.
  // Empty <keys>: keys are made here and rotated by rotate_if_due().
  // False (nothing changed) when a key was to be made and the random generator failed.
  static bool set(std::vector<TicketKey> keys);
  // Any thread. Makes a new key every <period_s> when the keys are our own.
  static void rotate_if_due(int64_t now_ms);
  static void install(SSL_CTX* ctx);
  // Parses 80-byte keys (name 16, HMAC 32, AES 32).
  static bool parse(const unsigned char* data, size_t len, TicketKey& out);
};

}  // namespace mf
