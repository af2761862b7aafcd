#pragma once
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tls.h"
#include "util.h"

namespace mf {

// SSL_CTXs of the last snapshot read, by a digest of everything they are built from (policy and
// the pairs' digests, cert_check.h): a reload of thousands of unchanged certificates reuses them (SSL_CTX_up_ref) instead
// of building each again (~0.25 ms each in OpenSSL 3.0). An SSL_CTX holds no per-snapshot state:
// one built from the same inputs is the same. Holds only what the newest snapshot uses.
// One per Proxy, as its contexts carry that Proxy's session-ticket keys.

// A digest of <policy> and <pairs>; "" when hashing fails (such a context is never cached).
std::string ctx_digest(const TlsPolicy& policy, const std::vector<CheckedPairPtr>& pairs);
class CtxCache {
 public:
  // Any thread (the reader's build threads): the cached context of <digest> (a new reference), or null.
  SslCtxPtr reuse(const std::string& digest);
  // JS thread: the cache becomes exactly these contexts (by their digests).
  void remember(const std::vector<std::string>& digests, const std::vector<SslCtxPtr>& ctxs);

 private:
  std::mutex mu_;
  std::unordered_map<std::string, SslCtxPtr> by_digest_;
};

}  // namespace mf
