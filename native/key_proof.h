// Does a private key work with its certificate? The public halves matching (X509_check_private_key,
// as SSL_CTX_use_cert_and_key does) is not enough: a key whose private half is damaged still
// "matches", and every handshake then fails at signing. This proves the private half.
#pragma once
#include <openssl/evp.h>
#include <openssl/x509.h>

namespace mf {

// For an EC key: the public point derived from the private scalar (d·G) is the certificate's
// point, which is what a signature that verifies under the certificate proves, at a fraction of
// its cost. For other keys, or when the point cannot be worked out: one signature made with the
// key, verified with the certificate's public key.
bool key_works_for(EVP_PKEY* key, X509* cert);

}  // namespace mf
