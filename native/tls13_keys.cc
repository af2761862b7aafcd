#include "tls13_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>

#include <cstring>

namespace mf {

namespace {

// One HMAC template per digest and thread, its digest set once (and a zero byte for its key, so
// that it can be copied). The one-shot HMAC() fetched the MAC and the digest by name on every call:
// four look-ups per hand-over, more than the hashing itself (bench/PROFILE.md, issue 17 third
// round). Freed when the thread ends.
struct HmacContexts {
  EVP_MAC_CTX* sha256 = nullptr;
  EVP_MAC_CTX* sha384 = nullptr;
  ~HmacContexts() {
    EVP_MAC_CTX_free(sha256);
    EVP_MAC_CTX_free(sha384);
  }
};

EVP_MAC_CTX* new_hmac(const char* digest) {
  static EVP_MAC* hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (!hmac) return nullptr;
  static const uint8_t zero = 0;
  EVP_MAC_CTX* c = EVP_MAC_CTX_new(hmac);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest), 0),
                         OSSL_PARAM_construct_end()};
  if (c && EVP_MAC_init(c, &zero, 1, params) != 1) {
    EVP_MAC_CTX_free(c);
    c = nullptr;
  }
  return c;
}

EVP_MAC_CTX* hmac_of(Tls13Suite s) {
  thread_local HmacContexts t;
  if (s == Tls13Suite::Aes256Gcm) return t.sha384 ? t.sha384 : (t.sha384 = new_hmac("SHA384"));
  return t.sha256 ? t.sha256 : (t.sha256 = new_hmac("SHA256"));
}

// Labels expanded from one secret, in a row, on a copy of the template: keyed once (the inner
// and outer pads hashed once), then re-initialised from that key per label. The copy is freed
// (and cleansed) at the end, so no traffic secret stays behind in a context that outlives it.
class Expander {
 public:
  Expander(Tls13Suite s, const uint8_t* secret) : hash_len_(tls13_secret_len(s)) {
    EVP_MAC_CTX* t = hmac_of(s);
    c_ = t ? EVP_MAC_CTX_dup(t) : nullptr;
    keyed_ = c_ && EVP_MAC_init(c_, secret, hash_len_, nullptr) == 1;
  }
  ~Expander() { EVP_MAC_CTX_free(c_); }
  Expander(const Expander&) = delete;
  Expander& operator=(const Expander&) = delete;

  // HKDF-Expand-Label(secret, label, "", out_len), out_len up to the hash length: one block,
  // the first out_len bytes of HMAC-Hash(secret, HkdfLabel || 0x01).
  bool expand(std::string_view label, uint8_t* out, size_t out_len) {
    if (!keyed_ || out_len > hash_len_ || label.size() > 255 - 6) return false;
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
    size_t block_len = 0;
    bool ok = (first_ || EVP_MAC_init(c_, nullptr, 0, nullptr) == 1) && EVP_MAC_update(c_, info, n) == 1 &&
              EVP_MAC_final(c_, block, &block_len, sizeof block) == 1 && block_len == hash_len_;
    first_ = false;
    if (ok) memcpy(out, block, out_len);
    OPENSSL_cleanse(block, sizeof block);
    return ok;
  }

 private:
  EVP_MAC_CTX* c_ = nullptr;
  size_t hash_len_;
  bool keyed_ = false;
  bool first_ = true;
};

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
  return Expander(s, secret).expand(label, out, out_len);
}

bool derive_traffic_key(Tls13Suite s, const uint8_t* secret, TrafficKey& out) {
  Expander e(s, secret);
  return e.expand("key", out.key, tls13_key_len(s)) && e.expand("iv", out.iv, kIvLen);
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
