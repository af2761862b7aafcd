#include "snapshot_fields.h"

#include <openssl/crypto.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "net.h"
#include "proxy_parse.h"

namespace mf {

namespace {

constexpr int64_t kMaxU32 = std::numeric_limits<uint32_t>::max();
// Milliseconds up to about 285 years: what a double holds exactly, far below int64 overflow when added to now.
constexpr int64_t kMaxMs = int64_t(1) << 53;

Cidr read_cidr(const JsField& f) {
  Cidr c;
  if (!f.value().IsString() || !parse_cidr(f.str(), c)) f.expected("a CIDR block (\"10.0.0.0/8\", \"2001:db8::/32\")");
  return c;
}

std::vector<Cidr> read_cidrs(const JsField& list) {
  std::vector<Cidr> out;
  for (uint32_t i = 0; i < list.length(); i++) out.push_back(read_cidr(list.item(i)));
  return out;
}

int read_index(const JsField& f, size_t count) { return int(f.integer(0, int64_t(count) - 1)); }

void read_names(const JsField& map, size_t contexts, std::unordered_map<std::string, int>& into) {
  Napi::Object m = map.object();
  Napi::Array names = m.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); i++) {
    std::string name = names.Get(i).As<Napi::String>().Utf8Value();
    into[name] = read_index(JsField(m.Get(name), map.path() + "[\"" + name + "\"]"), contexts);
  }
}

}  // namespace

TlsPolicy read_tls_policy(const JsField& tls) {
  TlsPolicy p;
  p.min_version = tls["minVersion"].one_of({"TLSv1.2", "TLSv1.3"}) == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
  p.ciphers = tls["ciphers"].str();
  p.ciphersuites = tls["ciphersuites"].str();
  // The control plane decides the groups from this library (tlsGroupKnown): never a guess here.
  JsField groups = tls["groups"];
  p.groups = groups.str();
  if (p.groups.empty()) groups.expected("a non-empty OpenSSL group list");
  p.own_record_layer = tls["recordLayer"].one_of({"mailfront", "openssl"}) == 0;
  return p;
}

std::vector<TicketKey> read_ticket_keys(const JsField& list) {
  std::vector<TicketKey> keys;
  std::optional<FieldError> refused;  // the first one, thrown once every Buffer is wiped
  for (uint32_t i = 0; i < list.length(); i++) {
    JsField f = list.item(i);
    if (!f.value().IsBuffer()) {
      if (!refused) refused = FieldError{f.path(), "expected an 80-byte Buffer, got " + describe_js(f.value())};
      continue;
    }
    auto b = f.value().As<Napi::Buffer<unsigned char>>();
    TicketKey k;
    if (TicketKeys::parse(b.Data(), b.Length(), k)) keys.push_back(k);
    else if (!refused) refused = FieldError{f.path(), "expected an 80-byte Buffer, got " + describe_js(f.value())};
    OPENSSL_cleanse(b.Data(), b.Length());
  }
  if (refused) throw *refused;
  return keys;
}

void read_sni_index(const JsField& js, size_t contexts, Snapshot& s) {
  read_names(js["exact"], contexts, s.exact);
  read_names(js["wildcard"], contexts, s.wildcard);
  s.default_ctx = read_index(js["defaultContext"], contexts);
  s.reject_unknown = js["unknownSni"].one_of({"default", "reject"}) == 1;
}

void read_backends(const JsField& list, Snapshot& s) {
  for (uint32_t i = 0; i < list.length(); i++) {
    JsField b = list.item(i);
    auto be = std::make_unique<Backend>();
    be->name = b["name"].str();
    JsField servers = b["servers"];
    for (uint32_t j = 0; j < servers.length(); j++) {
      JsField server = servers.item(j);
      std::string text = server.str();
      auto a = parse_addr(text);
      if (!a) server.expected("an address (\"host:port\", \"[v6]:port\" or \"/unix/path\")");
      be->servers.push_back(*a);
      be->server_names.push_back(text);
    }
    if (be->servers.empty()) servers.fail("no server: expected at least one address");
    static constexpr ProxyHeader kHeaders[] = {ProxyHeader::Off, ProxyHeader::V1, ProxyHeader::V2, ProxyHeader::V2Ssl};
    be->proxy_header = kHeaders[b["proxyProtocol"].one_of({"off", "v1", "v2", "v2-ssl"})];
    be->round_robin = b["balance"].one_of({"first", "roundrobin"}) == 1;
    s.backends.push_back(std::move(be));
  }
  if (s.backends.empty()) list.fail("no backend: expected at least one pool");
}

void read_listeners(const JsField& list, Snapshot& s) {
  const size_t pools = s.backends.size();
  for (uint32_t i = 0; i < list.length(); i++) {
    JsField l = list.item(i);
    ListenerPolicy lp;
    lp.name = l["name"].str();
    lp.proto = Proto(l["protocol"].one_of({"imaps", "pop3s", "imap", "pop3", "managesieve"}));
    lp.backend = read_index(l["backend"], pools);
    JsField routes = l["routes"];
    for (uint32_t j = 0; j < routes.length(); j++) {
      JsField r = routes.item(j);
      JsField sni_field = r["sni"];
      std::string sni = sni_field.str();
      if (sni.rfind("*.", 0) == 0) sni = sni.substr(1);
      if (sni.empty() || sni == ".") sni_field.expected("a name or \"*.suffix\"");
      lp.routes.push_back({sni, read_index(r["backend"], pools)});
    }
    lp.capabilities = l["capabilities"].str();
    JsField alpn_field = l["alpn"];
    std::string alpn = alpn_field.str();
    if (alpn.empty() || alpn.size() > 255) alpn_field.expected("an ALPN protocol id of 1 to 255 bytes");
    lp.alpn = std::string(1, char(alpn.size())) + alpn;
    lp.accept_proxy = l["acceptProxy"].boolean();
    JsField trusted = l["trustedProxies"];
    lp.trusted_proxies = read_cidrs(trusted);
    if (lp.accept_proxy && lp.trusted_proxies.empty()) trusted.fail("acceptProxy without trustedProxies: expected at least one CIDR block");
    s.listeners.push_back(std::move(lp));
  }
}

Timeouts read_timeouts(const JsField& t) {
  Timeouts out;
  out.handshake_ms = t["handshakeMs"].integer(1, kMaxMs);
  out.pretls_ms = t["pretlsMs"].integer(1, kMaxMs);
  out.connect_ms = t["connectMs"].integer(1, kMaxMs);
  out.idle_ms = t["idleMs"].integer(1, kMaxMs);
  return out;
}

Limits read_limits(const JsField& l) {
  Limits out;
  out.connections = uint32_t(l["connections"].integer(1, kMaxU32));
  out.per_client = uint32_t(l["perClient"].integer(1, kMaxU32));
  out.line_bytes = uint32_t(l["lineBytes"].integer(1, kMaxU32));
  out.login_tracking = l["loginTracking"].boolean();
  JsField lf = l["loginFailures"];
  out.guard.failures = uint32_t(lf["count"].integer(0, kMaxU32));
  out.guard.window_ms = lf["windowMs"].integer(0, kMaxMs);
  out.guard.ban_ms = lf["banMs"].integer(0, kMaxMs);
  out.guard.rate_per_min = uint32_t(l["connectionRate"].integer(0, kMaxU32));
  out.ipv6_prefix = int(l["ipv6Prefix"].integer(0, 128));
  out.exempt = read_cidrs(l["exempt"]);
  return out;
}

}  // namespace mf
