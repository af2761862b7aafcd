// PROXY protocol header (v1 text, v2 binary) that tells a backend the real client.
// https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt
#pragma once
#include <string>

#include "net.h"
#include "snapshot.h"

namespace mf {

// Header for a connection from <client> to <local> (the address it reached).
// Mixed or non-IP families give the "UNKNOWN"/LOCAL forms.
std::string proxy_header(ProxyHeader version, const SockAddr& client, const SockAddr& local);

}  // namespace mf
