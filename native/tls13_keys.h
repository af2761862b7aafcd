// The pieces of the TLS 1.3 key schedule a record layer needs once the handshake
// is over (RFC 8446 7.1, 7.3, 4.6.3): traffic keys and IVs from a traffic secret,
// the next secret for a KeyUpdate, and the secrets read from OpenSSL's key log.
#pragma once
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mf {

enum class Tls13Suite : uint8_t { Aes128Gcm, Aes256Gcm, Chacha20Poly1305 };

constexpr size_t kMaxSecret = 48;  // SHA-384
constexpr size_t kIvLen = 12;
constexpr size_t kTagLen = 16;

// The suite of an IANA id (SSL_CIPHER_get_protocol_id): 0x1301, 0x1302, 0x1303; false for any other.
bool tls13_suite_of(uint16_t id, Tls13Suite& out);
size_t tls13_secret_len(Tls13Suite s);
size_t tls13_key_len(Tls13Suite s);
// The AEAD, fetched once per process (shared by every worker; EVP_CIPHERs are immutable).
const EVP_CIPHER* tls13_cipher(Tls13Suite s);

// HKDF-Expand-Label(secret, label, "", out_len) for out_len up to the hash length: then HKDF-Expand
// is one block, the first out_len bytes of HMAC-Hash(secret, HkdfLabel || 0x01).
bool hkdf_expand_label(Tls13Suite s, const uint8_t* secret, std::string_view label, uint8_t* out, size_t out_len);

struct TrafficKey {
  uint8_t key[32];
  uint8_t iv[kIvLen];
};
// key = HKDF-Expand-Label(secret, "key", "", key_len), iv = HKDF-Expand-Label(secret, "iv", "", 12).
bool derive_traffic_key(Tls13Suite s, const uint8_t* secret, TrafficKey& out);
// In place: secret = HKDF-Expand-Label(secret, "traffic upd", "", Hash.length) (a KeyUpdate).
bool next_traffic_secret(Tls13Suite s, uint8_t* secret);

// A key-log line ("SERVER_TRAFFIC_SECRET_0 <client random> <secret>", both hex): the secret
// into <out> (at most kMaxSecret bytes) when the line has label <label>; false otherwise.
bool parse_keylog_secret(const char* line, std::string_view label, uint8_t* out, size_t& len);

// The application traffic secrets of one handshake, as the key log gives them
// (SSL_CTX_set_keylog_callback), until the record layer takes them. Never logged.
struct Tls13Secrets {
  uint8_t client[kMaxSecret];
  uint8_t server[kMaxSecret];
  size_t client_len = 0, server_len = 0;
  // Protected records the server had written when its application key came into use
  // (ClientIo::protected_records): the ones after it are under that key.
  uint32_t records_before_server = 0;
  ~Tls13Secrets() { OPENSSL_cleanse(this, sizeof *this); }
};

}  // namespace mf
