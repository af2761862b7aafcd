#include "tls.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tickets.h"

namespace mf {

namespace {

struct BioFree { void operator()(BIO* b) const { BIO_free(b); } };
struct X509Free { void operator()(X509* x) const { X509_free(x); } };
struct PkeyFree { void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); } };
struct ChainFree { void operator()(STACK_OF(X509)* s) const { sk_X509_pop_free(s, X509_free); } };

bool add_pair(SSL_CTX* ctx, const PemPair& pair, std::string& err) {
  std::unique_ptr<BIO, BioFree> cbio(BIO_new_mem_buf(pair.chain_pem.data(), int(pair.chain_pem.size())));
  std::unique_ptr<X509, X509Free> leaf(PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr));
  if (!leaf) { err = "certificate PEM: " + take_ssl_error(); return false; }
  std::unique_ptr<STACK_OF(X509), ChainFree> chain(sk_X509_new_null());
  while (X509* ca = PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr)) sk_X509_push(chain.get(), ca);
  ERR_clear_error();  // the loop ends on a "no start line" error
  std::unique_ptr<BIO, BioFree> kbio(BIO_new_mem_buf(pair.key_pem.data(), int(pair.key_pem.size())));
  std::unique_ptr<EVP_PKEY, PkeyFree> key(PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr));
  if (!key) { ERR_clear_error(); err = "private key cannot be parsed"; return false; }
  if (SSL_CTX_use_cert_and_key(ctx, leaf.get(), key.get(), chain.get(), 1) != 1) {
    err = "certificate and key: " + take_ssl_error();
    return false;
  }
  return true;
}

}  // namespace

SslCtxPtr make_server_ctx(const TlsPolicy& policy, const std::vector<PemPair>& pairs, std::string& err) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) { err = take_ssl_error(); return nullptr; }
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, policy.min_version);
  SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
  // No renegotiation (CVE-2009-3555 class), no compression (CRIME), our cipher order.
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // An idle IMAP connection (IDLE for 30 minutes) should hold no TLS buffers.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (!policy.ciphers.empty() && SSL_CTX_set_cipher_list(c, policy.ciphers.c_str()) != 1) {
    err = "tls.ciphers \"" + policy.ciphers + "\": " + take_ssl_error();
    return nullptr;
  }
  if (!policy.ciphersuites.empty() && SSL_CTX_set_ciphersuites(c, policy.ciphersuites.c_str()) != 1) {
    err = "tls.ciphersuites \"" + policy.ciphersuites + "\": " + take_ssl_error();
    return nullptr;
  }
  SSL_CTX_set1_groups_list(c, "X25519:P-256:P-384");
  // Stateless tickets under process-wide keys, one per handshake; no server cache to walk.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(c, 1);
  SSL_CTX_set_timeout(c, 12 * 3600);
  static const unsigned char sid_ctx[] = "mailfront";
  SSL_CTX_set_session_id_context(c, sid_ctx, sizeof sid_ctx - 1);
  TicketKeys::install(c);
  install_conn_callbacks(c);
  for (const PemPair& p : pairs) {
    if (!add_pair(c, p, err)) return nullptr;
  }
  return ctx;
}

}  // namespace mf
