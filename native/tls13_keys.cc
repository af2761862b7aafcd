#include "tls13_keys.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include <cstring>

namespace mf {

namespace {

const EVP_MD* digest_of(Tls13Suite s) { return s == Tls13Suite::Aes256Gcm ? EVP_sha384() : EVP_sha256(); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool tls13_suite_of(uint16_t id, Tls13Suite& out) {
  switch (id) {
    case 0x1301: out = Tls13Suite::Aes128Gcm; return true;
    case 0x1302: out = Tls13Suite::Aes256Gcm; return true;
    case 0x1303: out = Tls13Suite::Chacha20Poly1305; return true;
    default: return false;
  }
}

size_t tls13_secret_len(Tls13Suite s) { return s == Tls13Suite::Aes256Gcm ? 48 : 32; }
size_t tls13_key_len(Tls13Suite s) { return s == Tls13Suite::Aes128Gcm ? 16 : 32; }

const EVP_CIPHER* tls13_cipher(Tls13Suite s) {
  // Fetched once: an implicit fetch per EVP_CipherInit would take the provider's lock per connection.
  static EVP_CIPHER* aes128 = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
  static EVP_CIPHER* aes256 = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  static EVP_CIPHER* chacha = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  switch (s) {
    case Tls13Suite::Aes128Gcm: return aes128;
    case Tls13Suite::Aes256Gcm: return aes256;
    case Tls13Suite::Chacha20Poly1305: return chacha;
  }
  return nullptr;
}

bool hkdf_expand_label(Tls13Suite s, const uint8_t* secret, std::string_view label, uint8_t* out, size_t out_len) {
  size_t hash_len = tls13_secret_len(s);
  if (out_len > hash_len || label.size() > 255 - 6) return false;
  // struct { uint16 length; opaque label<7..255> = "tls13 " + label; opaque context<0..255> = ""; } || 0x01
  uint8_t info[2 + 1 + 255 + 1 + 1];
  size_t n = 0;
  info[n++] = uint8_t(out_len >> 8);
  info[n++] = uint8_t(out_len);
  info[n++] = uint8_t(6 + label.size());
  memcpy(info + n, "tls13 ", 6);
  n += 6;
  memcpy(info + n, label.data(), label.size());
  n += label.size();
  info[n++] = 0;  // empty context
  info[n++] = 1;  // T(1): the only block needed
  uint8_t block[EVP_MAX_MD_SIZE];
  unsigned block_len = 0;
  bool ok = HMAC(digest_of(s), secret, int(hash_len), info, n, block, &block_len) != nullptr && block_len == hash_len;
  if (ok) memcpy(out, block, out_len);
  OPENSSL_cleanse(block, sizeof block);
  return ok;
}

bool derive_traffic_key(Tls13Suite s, const uint8_t* secret, TrafficKey& out) {
  return hkdf_expand_label(s, secret, "key", out.key, tls13_key_len(s)) && hkdf_expand_label(s, secret, "iv", out.iv, kIvLen);
}

bool next_traffic_secret(Tls13Suite s, uint8_t* secret) {
  uint8_t next[kMaxSecret];
  bool ok = hkdf_expand_label(s, secret, "traffic upd", next, tls13_secret_len(s));
  if (ok) memcpy(secret, next, tls13_secret_len(s));
  OPENSSL_cleanse(next, sizeof next);
  return ok;
}

bool parse_keylog_secret(const char* line, std::string_view label, uint8_t* out, size_t& len) {
  std::string_view l(line);
  if (l.size() <= label.size() || l.compare(0, label.size(), label) != 0 || l[label.size()] != ' ') return false;
  size_t sp = l.rfind(' ');
  std::string_view hex = l.substr(sp + 1);
  if (sp == label.size() || hex.size() % 2 != 0 || hex.size() / 2 > kMaxSecret || hex.empty()) return false;
  for (size_t i = 0; i < hex.size() / 2; i++) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = uint8_t(hi << 4 | lo);
  }
  len = hex.size() / 2;
  return true;
}

}  // namespace mf
