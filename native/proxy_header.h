// PROXY protocol header (v1 text, v2 binary) that tells a backend the real client.
// https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt
#pragma once
#include <string>
#include <string_view>

#include "net.h"
#include "snapshot.h"

namespace mf {

// v2 TLV types and the SSL TLV's client bits (proxy-protocol.txt 2.2).
constexpr unsigned char kPp2TypeAuthority = 0x02, kPp2TypeCrc32c = 0x03, kPp2TypeSsl = 0x20;
constexpr unsigned char kPp2SubtypeSslVersion = 0x21, kPp2SubtypeSslCipher = 0x23;
constexpr unsigned char kPp2ClientSsl = 0x01;

// What the client side negotiated, for V2Ssl (HAProxy's send-proxy-v2-ssl).
struct ProxyTls {
  std::string_view version;  // "TLSv1.3" (SSL_get_version)
  std::string_view cipher;   // "TLS_AES_256_GCM_SHA384" (SSL_CIPHER_get_name)
  std::string_view sni;      // the server name the client sent; empty: none
};

// Header for a connection from <client> to <local> (the address it reached).
// Mixed or non-IP families give the "UNKNOWN"/LOCAL forms. V2Ssl appends, in
// this order, PP2_TYPE_CRC32C, PP2_TYPE_AUTHORITY (when there is an SNI) and
// PP2_TYPE_SSL with the SSL_VERSION and SSL_CIPHER sub-TLVs; <tls> must be set.
std::string proxy_header(ProxyHeader version, const SockAddr& client, const SockAddr& local,
                         const ProxyTls* tls = nullptr);

}  // namespace mf
