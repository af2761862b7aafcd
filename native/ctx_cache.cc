#include "ctx_cache.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <memory>
#include <mutex>
#include <unordered_map>

namespace mf {

std::string ctx_digest(const TlsPolicy& policy, const std::vector<CheckedPairPtr>& pairs) {
  // The pairs by their digest (cert_check.cc: of the PEM blocks they were read from).
  // "" when hashing fails: such a context is built, never cached (CtxCache).
  static EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  bool ok = md && sha256 && EVP_DigestInit_ex(md.get(), sha256, nullptr) == 1;
  auto add = [&](const std::string& v) {
    std::string len = std::to_string(v.size()) + ':';
    ok = ok && EVP_DigestUpdate(md.get(), len.data(), len.size()) == 1 && EVP_DigestUpdate(md.get(), v.data(), v.size()) == 1;
  };
  add(std::to_string(policy.min_version));
  add(policy.ciphers);
  add(policy.ciphersuites);
  add(policy.groups);
  add(policy.own_record_layer ? "keylog" : "");
  for (const CheckedPairPtr& p : pairs) {
    if (p->digest.empty()) ok = false;
    add(p->digest);
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!ok || EVP_DigestFinal_ex(md.get(), out, &n) != 1) { ERR_clear_error(); return {}; }
  return std::string(reinterpret_cast<char*>(out), n);
}

SSL_CTX* CertContext::get() {
  std::call_once(once_, [this] {
    ctx_ = make_server_ctx(*policy_, pairs_, err_);
    if (!ctx_) return state_.store(State::Failed, std::memory_order_release);
    pairs_.clear();  // the SSL_CTX holds its own references now
    pairs_.shrink_to_fit();
    state_.store(State::Built, std::memory_order_release);
  });
  return ctx_.get();
}

CertContextPtr CtxCache::reuse(const std::string& digest) {
  std::lock_guard<std::mutex> lock(mu_);
  if (digest.empty()) return nullptr;
  auto it = by_digest_.find(digest);
  if (it == by_digest_.end() || it->second->state() == CertContext::State::Failed) return nullptr;
  return it->second;
}

void CtxCache::remember(const std::vector<std::string>& digests, const std::vector<CertContextPtr>& ctxs) {
  std::unordered_map<std::string, CertContextPtr> next;
  for (size_t i = 0; i < ctxs.size(); i++)
    if (!digests[i].empty()) next.emplace(digests[i], ctxs[i]);
  std::unordered_map<std::string, CertContextPtr> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old.swap(by_digest_);
    by_digest_.swap(next);
  }
}  // the previous generation's references are released here, outside the lock

}  // namespace mf
