#pragma once
#include <string>
#include <vector>

#include "tls.h"
#include "util.h"

namespace mf {

// SSL_CTXs of the last snapshot read, by a digest of everything they are built from (policy and
// the pairs' digests, cert_check.h): a reload of thousands of unchanged certificates reuses them (SSL_CTX_up_ref) instead
// of building each again (~0.25 ms each in OpenSSL 3.0). An SSL_CTX holds no per-snapshot state:
// one built from the same inputs is the same. Holds only what the newest snapshot uses.

// A digest of <policy> and <pairs>; "" when hashing fails (such a context is never cached).
std::string ctx_digest(const TlsPolicy& policy, const std::vector<CheckedPairPtr>& pairs);
// The cached context of that digest (a new reference), or null.
SslCtxPtr reuse_ctx(const std::string& digest);
// The cache becomes exactly these contexts (by their digests).
void remember_ctxs(const std::vector<std::string>& digests, const std::vector<SslCtxPtr>& ctxs);

}  // namespace mf
