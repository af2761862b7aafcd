#include "tls.h"

#include <openssl/objects.h>

#include <cstring>
#include <utility>

#include "tickets.h"

namespace mf {

namespace {

bool add_pair(SSL_CTX* ctx, const CheckedPair& pair, std::string& err) {
  if (SSL_CTX_use_cert_and_key(ctx, pair.leaf, pair.key, pair.chain, 1) != 1) {
    err = "certificate and key: " + take_ssl_error();
    return false;
  }
  return true;
}

}  // namespace

bool tls_group_known(const std::string& name) {
  // OpenSSL 3.5 reads "?name" as "skip if unknown": only plain names are asked about.
  if (name.empty() || name.find_first_of("?:*/-") == 0 || name.find_first_of(":/") != std::string::npos) return false;
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  bool known = ctx && SSL_CTX_set1_groups_list(ctx.get(), name.c_str()) == 1;
  ERR_clear_error();
  return known;
}

bool expand_cipher_list(const std::string& list, std::vector<CipherSuite>& suites, int& level, std::string& err) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) { err = take_ssl_error(); return false; }
  SSL_CTX_set_security_level(ctx.get(), kSecurityLevel);
  // No TLS 1.3 suites in the list (they are tls.ciphersuites', each one AEAD and (EC)DHE).
  if (SSL_CTX_set_ciphersuites(ctx.get(), "") != 1 || SSL_CTX_set_cipher_list(ctx.get(), list.c_str()) != 1) {
    err = take_ssl_error();
    return false;
  }
  level = SSL_CTX_get_security_level(ctx.get());
  // "KxECDHE", "AuthNULL": OpenSSL's short names without their prefix.
  auto name = [](int nid, const char* prefix) {
    const char* sn = OBJ_nid2sn(nid);
    std::string s = sn ? sn : "unknown";
    return s.rfind(prefix, 0) == 0 ? s.substr(strlen(prefix)) : s;
  };
  STACK_OF(SSL_CIPHER)* sk = SSL_CTX_get_ciphers(ctx.get());
  suites.clear();
  for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
    const SSL_CIPHER* c = sk_SSL_CIPHER_value(sk, i);
    suites.push_back({SSL_CIPHER_get_name(c), name(SSL_CIPHER_get_kx_nid(c), "Kx"), name(SSL_CIPHER_get_auth_nid(c), "Auth"),
                      SSL_CIPHER_is_aead(c) == 1});
  }
  return true;
}

std::string negotiated_group(SSL* ssl) {
  // SSL_get_negotiated_group and SSL_group_to_name are in OpenSSL 3.0 and 3.5 alike, so one
  // build of the addon names hybrid groups (X25519MLKEM768) when the running library has them.
  int id = SSL_get_negotiated_group(ssl);
  const char* name = id ? SSL_group_to_name(ssl, id) : nullptr;
  if (!name) return "";
  // OpenSSL answers with its internal names; logs and metrics use the ones tls.groups is written in.
  static const std::pair<const char*, const char*> kAliases[] = {
      {"x25519", "X25519"}, {"x448", "X448"}, {"secp256r1", "P-256"}, {"secp384r1", "P-384"}, {"secp521r1", "P-521"}};
  for (const auto& [internal, shown] : kAliases)
    if (strcmp(name, internal) == 0) return shown;
  return name;
}

bool bind_session_context(SSL* ssl, Proto proto) {
  // Unlike the contexts' own "mailfront", so SSL_set_SSL_CTX (SNI) leaves it in place.
  std::string_view sid;
  switch (family(proto)) {
    case ProtoFamily::Imap: sid = "mailfront/imap"; break;
    case ProtoFamily::Pop3: sid = "mailfront/pop3"; break;
    case ProtoFamily::Sieve: sid = "mailfront/managesieve"; break;
  }
  return SSL_set_session_id_context(ssl, reinterpret_cast<const unsigned char*>(sid.data()), unsigned(sid.size())) == 1;
}

SslCtxPtr make_server_ctx(const TlsPolicy& policy, const std::vector<CheckedPairPtr>& pairs, std::string& err) {
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
  // After the cipher string, which can carry its own "@SECLEVEL=n"; before the pairs, which it checks.
  SSL_CTX_set_security_level(c, kSecurityLevel);
  if (!policy.ciphersuites.empty() && SSL_CTX_set_ciphersuites(c, policy.ciphersuites.c_str()) != 1) {
    err = "tls.ciphersuites \"" + policy.ciphersuites + "\": " + take_ssl_error();
    return nullptr;
  }
  if (SSL_CTX_set1_groups_list(c, policy.groups.c_str()) != 1) {
    err = "tls.groups \"" + policy.groups + "\": " + take_ssl_error();
    return nullptr;
  }
  // Stateless tickets under the Proxy's keys, one per handshake; no server cache to walk.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(c, 1);
  SSL_CTX_set_timeout(c, 12 * 3600);
  // Replaced per connection by its protocol's (bind_session_context); kept for any other SSL.
  static const unsigned char sid_ctx[] = "mailfront";
  SSL_CTX_set_session_id_context(c, sid_ctx, sizeof sid_ctx - 1);
  TicketKeys::install(c, policy.ticket_keys);
  install_conn_callbacks(c, policy.own_record_layer);
  if (!pairs_fit(c, pairs, err)) return nullptr;
  return ctx;
}

bool pairs_fit(SSL_CTX* scratch, const std::vector<CheckedPairPtr>& pairs, std::string& err) {
  for (const CheckedPairPtr& p : pairs) {
    if (!p || !add_pair(scratch, *p, err)) return false;
  }
  return true;
}

}  // namespace mf
