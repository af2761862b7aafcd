#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tls.h"
#include "util.h"

namespace mf {

// One certificate context of a snapshot: its pairs (cert_check.h: parsed and checked) and the
// SSL_CTX made of them, built on the first handshake that selects it, not when the snapshot is
// read. Ten thousand names cost ~1 s of SSL_CTX_new and ~150 MiB at load when built eagerly,
// most of it for names no client asks for soon. The reader proves beforehand that the build
// cannot fail (snapshot_reader.cc: the default context built, every other context's pairs
// taken by a context of the same policy), so a reload still refuses what a handshake would.
class CertContext {
 public:
  CertContext(std::shared_ptr<const TlsPolicy> policy, std::vector<CheckedPairPtr> pairs)
      : policy_(std::move(policy)), pairs_(std::move(pairs)) {}
  CertContext(const CertContext&) = delete;
  CertContext& operator=(const CertContext&) = delete;

  // Any thread: the SSL_CTX, built by the first caller while any other waits for it; null when
  // that build failed (error() says why, and every later call returns null at once).
  SSL_CTX* get();
  const std::string& error() const { return err_; }  // after get() returned null
  enum class State : uint8_t { Waiting, Built, Failed };
  State state() const { return state_.load(std::memory_order_acquire); }

 private:
  std::once_flag once_;
  std::shared_ptr<const TlsPolicy> policy_;
  std::vector<CheckedPairPtr> pairs_;  // until built
  SslCtxPtr ctx_;
  std::string err_;
  std::atomic<State> state_{State::Waiting};
};
using CertContextPtr = std::shared_ptr<CertContext>;

// A digest of <policy> and <pairs>; "" when hashing fails (such a context is never cached).
std::string ctx_digest(const TlsPolicy& policy, const std::vector<CheckedPairPtr>& pairs);

// The contexts of the last snapshot read, by a digest of everything they are built from (policy and
// the pairs' digests, cert_check.h): a reload of thousands of unchanged certificates reuses them,
// SSL_CTX built or not, instead of proving and building each again. An SSL_CTX holds no
// per-snapshot state: one built from the same inputs is the same. Holds only what the newest
// snapshot uses. One per Proxy, as its contexts carry that Proxy's session-ticket keys.
class CtxCache {
 public:
  // Any thread (the reader's threads): the cached context of <digest>, or null (also for one
  // whose build failed: it is proved and made again).
  CertContextPtr reuse(const std::string& digest);
  // JS thread: the cache becomes exactly these contexts (by their digests).
  void remember(const std::vector<std::string>& digests, const std::vector<CertContextPtr>& ctxs);

 private:
  std::mutex mu_;
  std::unordered_map<std::string, CertContextPtr> by_digest_;
};

}  // namespace mf
