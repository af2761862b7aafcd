// SSL_CTX construction with mailfront's policy, and the SNI / ALPN callbacks.
#pragma once
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cert_check.h"
#include "protocol.h"
#include "util.h"

namespace mf {

class TicketKeys;

// From the snapshot's tls fields; no defaults here (src/config/schema.ts has them).
struct TlsPolicy {
  int min_version{};
  std::string ciphers;       // TLS 1.2
  std::string ciphersuites;  // TLS 1.3
  std::string groups;        // key exchange, an OpenSSL group list ("X25519MLKEM768:X25519:P-256")
  // tls.recordLayer "mailfront": the contexts log the traffic secrets to the connection
  // (install_conn_callbacks), for the hand-over to mailfront's record layer.
  bool own_record_layer{};
  // The keys the contexts' session tickets use: those of the Proxy that builds them.
  std::shared_ptr<TicketKeys> ticket_keys;
};

// OpenSSL's security level of every context (112-bit: RSA keys of 2048 bits or more, no suite or
// signature below that), whatever the cipher string says; the control plane refuses a string that
// tries to change it (src/config/load.ts).
constexpr int kSecurityLevel = 2;

struct CipherSuite {
  std::string name;  // OpenSSL's ("ECDHE-RSA-AES128-GCM-SHA256")
  std::string kx;    // key exchange: "ECDHE", "DHE", "RSA", "PSK", ...
  std::string auth;  // authentication: "ECDSA", "RSA", "NULL" (anonymous), "PSK", ...
  bool aead;
};

// What OpenSSL makes of the TLS 1.2 cipher string <list>: its suites in order (TLS 1.3 suites are
// tls.ciphersuites' business and left out) and the security level the string leaves (an
// "@SECLEVEL=n" in it changes it). False with <err> when OpenSSL refuses the string. Any thread.
bool expand_cipher_list(const std::string& list, std::vector<CipherSuite>& suites, int& level, std::string& err);

// A server context holding every pair (one per key type, parsed and checked by cert_check.h).
// Empty on failure, with <err> set; <err> names what failed, never key material.
SslCtxPtr make_server_ctx(const TlsPolicy& policy, const std::vector<CheckedPairPtr>& pairs, std::string& err);

// Would make_server_ctx take <pairs>? Each goes into <scratch>, a context make_server_ctx built with
// the same policy and no pairs, as it would go into its own: the same OpenSSL checks, the same <err>.
// A pair replaces the previous one of its key type in <scratch>. Any thread, one scratch per thread.
bool pairs_fit(SSL_CTX* scratch, const std::vector<CheckedPairPtr>& pairs, std::string& err);

// Does this OpenSSL offer the key-exchange group <name> ("X25519MLKEM768", "P-256")? Any thread.
bool tls_group_known(const std::string& name);

// The key-exchange group a finished handshake used ("X25519", "X25519MLKEM768"), or "".
std::string negotiated_group(SSL* ssl);

// One session-ID context per application protocol, set on each SSL before its handshake: OpenSSL
// resumes a session (a ticket carries the context sealed inside) only under the same context, so a
// ticket from an IMAP listener does not resume on a POP3 or ManageSieve one (ALPACA). IMAPS and
// IMAP STARTTLS are one application protocol (ALPN "imap") and share theirs; so do POP3S and POP3.
bool bind_session_context(SSL* ssl, Proto proto);

// Defined with the handshake (conn_handshake.cc): servername and ALPN callbacks, and the
// key-log callback when <keylog> (never to a file: to the Conn, for the hand-over), which
// find their Conn through the SSL's app data.
void install_conn_callbacks(SSL_CTX* ctx, bool keylog);

}  // namespace mf
