// SSL_CTX construction with mailfront's policy, and the SNI / ALPN callbacks.
#pragma once
#include <openssl/ssl.h>

#include <string>
#include <vector>

#include "util.h"

namespace mf {

struct TlsPolicy {
  int min_version = TLS1_2_VERSION;
  std::string ciphers;       // TLS 1.2
  std::string ciphersuites;  // TLS 1.3
};

struct PemPair {
  std::string chain_pem;
  std::string key_pem;
};

// A server context holding every pair (one per key type). Empty on failure, with <err> set;
// <err> names what failed, never key material.
SslCtxPtr make_server_ctx(const TlsPolicy& policy, const std::vector<PemPair>& pairs, std::string& err);

// Defined with the connection (conn.cc): servername and ALPN callbacks, which
// find their Conn through the SSL's app data.
void install_conn_callbacks(SSL_CTX* ctx);

}  // namespace mf
