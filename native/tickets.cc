#include "tickets.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace mf {

namespace {

// Own keys rotate every 6 hours and three are kept: a ticket stays good for 12-18 hours.
constexpr int64_t kRotateMs = 6 * 3600 * 1000;
constexpr size_t kKeep = 3;

using KeySet = TicketKeys::KeySet;

// Each SSL_CTX holds a heap shared_ptr to the key set of the Proxy that built it.
void free_keys_ref(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::shared_ptr<TicketKeys>*>(ptr);
}

int keys_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_keys_ref);
  return index;
}

EVP_CIPHER* aes256cbc() {
  // Fetched once: an implicit fetch on every handshake costs OpenSSL 3 a provider look-up.
  static EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  return c;
}

// Ticket IVs from a per-thread batch of DRBG output: one RAND_bytes per 32
// tickets instead of one each (each call costs OpenSSL a lock and a getpid()
// fork check). An IV is public (it travels in the ticket) but must be
// unpredictable for CBC, which the DRBG's output is however it is cut.
bool ticket_iv(unsigned char* iv, size_t len) {
  constexpr size_t kBatch = 32 * EVP_MAX_IV_LENGTH;
  thread_local unsigned char batch[kBatch];
  thread_local size_t used = kBatch;
  if (len > kBatch) return false;
  if (kBatch - used < len) {
    if (RAND_bytes(batch, int(kBatch)) != 1) return false;
    used = 0;
  }
  memcpy(iv, batch + used, len);
  OPENSSL_cleanse(batch + used, len);  // each IV is handed out once
  used += len;
  return true;
}

// Fails closed: a key the random generator could not fill is never used.
bool random_key(TicketKey& k) {
  return RAND_bytes(k.name.data(), int(k.name.size())) == 1 && RAND_bytes(k.hmac.data(), int(k.hmac.size())) == 1 &&
         RAND_bytes(k.aes.data(), int(k.aes.size())) == 1;
}

int ticket_cb(SSL* ssl, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cctx, EVP_MAC_CTX* hctx, int enc) {
  // Whichever context OpenSSL consults (the initial one or the one SNI chose), the Proxy's keys.
  auto* owner = static_cast<std::shared_ptr<TicketKeys>*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), keys_index()));
  if (!owner || !*owner) return enc ? -1 : 0;
  auto set = (*owner)->current();
  if (!set || set->keys.empty()) return enc ? -1 : 0;
  const TicketKey* key = nullptr;
  if (enc) {
    key = &set->keys.front();
    memcpy(key_name, key->name.data(), 16);
    if (!ticket_iv(iv, EVP_MAX_IV_LENGTH)) return -1;
    if (!EVP_EncryptInit_ex(cctx, aes256cbc(), nullptr, key->aes.data(), iv)) return -1;
  } else {
    for (size_t i = 0; i < set->keys.size(); i++) {
      if (memcmp(set->keys[i].name.data(), key_name, 16) == 0) { key = &set->keys[i]; break; }
    }
    if (!key) return 0;  // unknown key: full handshake
    if (!EVP_DecryptInit_ex(cctx, aes256cbc(), nullptr, key->aes.data(), iv)) return -1;
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key->hmac.data()), 32),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("sha256"), 0),
      OSSL_PARAM_construct_end(),
  };
  if (!EVP_MAC_CTX_set_params(hctx, params)) return -1;
  // On decrypt, 2 ("valid, renew") rather than 1: after a TLS 1.3 resumption
  // OpenSSL only sends a new ticket when asked to renew, and clients use a
  // ticket once (RFC 8446 C.4), so without it every other handshake is full.
  return enc ? 1 : 2;
}

}  // namespace

bool TicketKeys::set(std::vector<TicketKey> keys) {
  std::lock_guard lk(write_mu_);
  auto now = keys_.load(std::memory_order_acquire);
  auto next = std::make_shared<KeySet>();
  next->own = keys.empty();
  if (next->own) {
    // Own keys survive a snapshot swap: dropping them would force full handshakes.
    if (now && now->own) return true;
    next->keys.resize(1);
    if (!random_key(next->keys[0])) return false;
  } else {
    next->keys = std::move(keys);
  }
  keys_.store(std::move(next), std::memory_order_release);
  return true;
}

void TicketKeys::rotate_if_due(int64_t now_ms) {
  std::lock_guard lk(write_mu_);
  auto now = keys_.load(std::memory_order_acquire);
  if (!now || !now->own) return;
  if (now->made_ms == 0) {
    auto copy = std::make_shared<KeySet>(*now);
    copy->made_ms = now_ms;
    keys_.store(std::move(copy), std::memory_order_release);
    return;
  }
  if (now_ms - now->made_ms < kRotateMs) return;
  auto next = std::make_shared<KeySet>();
  next->made_ms = now_ms;
  next->keys.resize(1);
  if (!random_key(next->keys[0])) return;  // the current keys go on; tried again on the next tick
  for (size_t i = 0; i < now->keys.size() && next->keys.size() < kKeep; i++) next->keys.push_back(now->keys[i]);
  keys_.store(std::move(next), std::memory_order_release);
}

void TicketKeys::install(SSL_CTX* ctx, const std::shared_ptr<TicketKeys>& keys) {
  auto* ref = new std::shared_ptr<TicketKeys>(keys);
  if (SSL_CTX_set_ex_data(ctx, keys_index(), ref) != 1) delete ref;  // no keys: every ticket is refused
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
}

bool TicketKeys::parse(const unsigned char* data, size_t len, TicketKey& out) {
  if (len != 80) return false;
  memcpy(out.name.data(), data, 16);
  memcpy(out.hmac.data(), data + 16, 32);
  memcpy(out.aes.data(), data + 48, 32);
  return true;
}

}  // namespace mf
