#include "snapshot_reader.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <atomic>
#include <unordered_map>

#include "cert_check_js.h"
#include "client_net.h"
#include "ctx_cache.h"
#include "net.h"
#include "tls.h"

namespace mf {

std::string str(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

double num(const Napi::Object& o, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : dflt;
}

Napi::Object obj(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsObject() ? v.As<Napi::Object>() : Napi::Object::New(o.Env());
}

Napi::Array arr(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsArray() ? v.As<Napi::Array>() : Napi::Array::New(o.Env());
}

std::shared_ptr<Snapshot> read_snapshot(const Napi::Object& js, CtxCache& cache, const std::shared_ptr<TicketKeys>& tickets,
                                        std::vector<TicketKey>& keys, std::string& err) {
  auto s = std::make_shared<Snapshot>();
  Napi::Object tls = obj(js, "tls");
  TlsPolicy policy;
  policy.min_version = str(tls, "minVersion") == "TLSv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  policy.ciphers = str(tls, "ciphers");
  policy.ciphersuites = str(tls, "ciphersuites");
  // No silent default here: the control plane decides the groups from this library (tlsGroupKnown).
  policy.groups = str(tls, "groups");
  policy.ticket_keys = tickets;

  // The keys are copied, then every Buffer given is zeroed, whatever else this snapshot holds:
  // from here on the only copies are the data plane's (wiped when dropped, TicketKey).
  keys.clear();
  std::string key_err;
  Napi::Array tk = arr(tls, "ticketKeys");
  for (uint32_t i = 0; i < tk.Length(); i++) {
    Napi::Value v = tk.Get(i);
    if (!v.IsBuffer()) {
      if (key_err.empty()) key_err = "tls.ticketKeys[" + std::to_string(i) + "]: expected an 80-byte Buffer";
      continue;
    }
    auto b = v.As<Napi::Buffer<unsigned char>>();
    TicketKey k;
    if (TicketKeys::parse(b.Data(), b.Length(), k)) keys.push_back(k);
    else if (key_err.empty()) key_err = "tls.ticketKeys[" + std::to_string(i) + "]: expected an 80-byte Buffer";
    OPENSSL_cleanse(b.Data(), b.Length());
  }
  if (!key_err.empty()) { err = key_err; return nullptr; }
  if (policy.groups.empty()) { err = "tls.groups: missing"; return nullptr; }

  Napi::Array contexts = arr(js, "contexts");
  if (contexts.Length() == 0) { err = "no certificate context"; return nullptr; }
  // Each context names pairs checkCertificates parsed and checked (cert_check.h): they go into
  // the SSL_CTXs as they are. The SSL_CTXs are built on a few threads (thousands of contexts take
  // seconds on one core), and kept in order.
  std::vector<std::vector<CheckedPairPtr>> all(contexts.Length());
  for (uint32_t i = 0; i < contexts.Length(); i++) {
    Napi::Object c = contexts.Get(i).As<Napi::Object>();
    Napi::Array certs = arr(c, "certs");
    for (uint32_t j = 0; j < certs.Length(); j++) {
      CheckedPairPtr p = checked_pair_of(js.Env(), certs.Get(j));
      if (!p) {
        err = "contexts[" + std::to_string(i) + "].certs[" + std::to_string(j) + "]: not a pair from checkCertificates";
        return nullptr;
      }
      all[i].push_back(std::move(p));
    }
  }
  std::vector<SslCtxPtr> built(all.size());
  std::vector<std::string> errs(all.size());
  std::vector<std::string> digests(all.size());
  std::atomic<size_t> next{0};
  auto build = [&] {
    for (size_t i; (i = next.fetch_add(1)) < all.size();) {
      digests[i] = ctx_digest(policy, all[i]);
      built[i] = cache.reuse(digests[i]);
      if (built[i]) continue;
      built[i] = make_server_ctx(policy, all[i], errs[i]);
      if (!built[i]) next.store(all.size());  // stop early; the first failure (by index) is reported
    }
  };
  run_in_background(all.size(), build);
  for (size_t i = 0; i < all.size(); i++) {
    if (!built[i]) {
      if (errs[i].empty()) continue;  // not built: an earlier failure stopped the others
      err = "contexts[" + std::to_string(i) + "]: " + errs[i];
      return nullptr;
    }
  }
  for (size_t i = 0; i < all.size(); i++) {
    if (!built[i]) { err = "contexts[" + std::to_string(i) + "]: not built"; return nullptr; }
  }
  cache.remember(digests, built);
  for (size_t i = 0; i < all.size(); i++) s->contexts.push_back(std::move(built[i]));
  auto read_index = [&](const char* key, std::unordered_map<std::string, int>& into) {
    Napi::Object m = obj(js, key);
    Napi::Array names = m.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); i++) {
      std::string name = names.Get(i).As<Napi::String>().Utf8Value();
      int idx = int(num(m, name.c_str(), -1));
      if (idx < 0 || size_t(idx) >= s->contexts.size()) { err = std::string(key) + "[" + name + "]: no such context"; return false; }
      into[name] = idx;
    }
    return true;
  };
  if (!read_index("exact", s->exact) || !read_index("wildcard", s->wildcard)) return nullptr;
  s->default_ctx = int(num(js, "defaultContext", 0));
  if (s->default_ctx < 0 || size_t(s->default_ctx) >= s->contexts.size()) { err = "defaultContext: no such context"; return nullptr; }
  s->reject_unknown = str(js, "unknownSni") == "reject";

  Napi::Array backends = arr(js, "backends");
  for (uint32_t i = 0; i < backends.Length(); i++) {
    Napi::Object b = backends.Get(i).As<Napi::Object>();
    auto be = std::make_unique<Backend>();
    be->name = str(b, "name");
    Napi::Array servers = arr(b, "servers");
    for (uint32_t j = 0; j < servers.Length(); j++) {
      std::string text = servers.Get(j).As<Napi::String>().Utf8Value();
      auto a = parse_addr(text);
      if (!a) { err = "backend " + be->name + ": bad server address \"" + text + "\""; return nullptr; }
      be->servers.push_back(*a);
      be->server_names.push_back(text);
    }
    if (be->servers.empty()) { err = "backend " + be->name + ": no server"; return nullptr; }
    std::string pp = str(b, "proxyProtocol");
    be->proxy_header = pp == "v1" ? ProxyHeader::V1 : pp == "v2" ? ProxyHeader::V2 : pp == "v2-ssl" ? ProxyHeader::V2Ssl : ProxyHeader::Off;
    be->round_robin = str(b, "balance") == "roundrobin";
    s->backends.push_back(std::move(be));
  }
  if (s->backends.empty()) { err = "no backend"; return nullptr; }

  Napi::Array listeners = arr(js, "listeners");
  for (uint32_t i = 0; i < listeners.Length(); i++) {
    Napi::Object l = listeners.Get(i).As<Napi::Object>();
    ListenerPolicy lp;
    lp.name = str(l, "name");
    if (!parse_proto(str(l, "protocol"), lp.proto)) { err = "listener " + lp.name + ": unknown protocol"; return nullptr; }
    lp.backend = int(num(l, "backend", -1));
    if (lp.backend < 0 || size_t(lp.backend) >= s->backends.size()) { err = "listener " + lp.name + ": no such backend"; return nullptr; }
    Napi::Array routes = arr(l, "routes");
    for (uint32_t j = 0; j < routes.Length(); j++) {
      Napi::Object r = routes.Get(j).As<Napi::Object>();
      std::string sni = str(r, "sni");
      if (sni.rfind("*.", 0) == 0) sni = sni.substr(1);
      int be = int(num(r, "backend", -1));
      if (sni.empty() || be < 0 || size_t(be) >= s->backends.size()) { err = "listener " + lp.name + ": bad route"; return nullptr; }
      lp.routes.push_back({sni, be});
    }
    lp.capabilities = str(l, "capabilities");
    std::string alpn = str(l, "alpn");
    if (alpn.size() > 255) { err = "listener " + lp.name + ": alpn too long"; return nullptr; }
    lp.alpn = std::string(1, char(alpn.size())) + alpn;
    Napi::Value ap = l.Get("acceptProxy");
    lp.accept_proxy = ap.IsBoolean() && ap.As<Napi::Boolean>().Value();
    Napi::Array trusted = arr(l, "trustedProxies");
    for (uint32_t j = 0; j < trusted.Length(); j++) {
      Napi::Value v = trusted.Get(j);
      Cidr c;
      if (!v.IsString() || !parse_cidr(v.As<Napi::String>().Utf8Value(), c)) { err = "listener " + lp.name + ": bad trustedProxies entry"; return nullptr; }
      lp.trusted_proxies.push_back(c);
    }
    if (lp.accept_proxy && lp.trusted_proxies.empty()) { err = "listener " + lp.name + ": acceptProxy without trustedProxies"; return nullptr; }
    s->listeners.push_back(std::move(lp));
  }
  Napi::Object t = obj(js, "timeouts");
  s->timeouts.handshake_ms = int64_t(num(t, "handshakeMs", 10000));
  s->timeouts.pretls_ms = int64_t(num(t, "pretlsMs", 60000));
  s->timeouts.connect_ms = int64_t(num(t, "connectMs", 5000));
  s->timeouts.idle_ms = int64_t(num(t, "idleMs", 31 * 60000));
  Napi::Object lim = obj(js, "limits");
  s->limits.connections = uint32_t(num(lim, "connections", 100000));
  s->limits.per_client = uint32_t(num(lim, "perClient", 200));
  s->limits.line_bytes = uint32_t(num(lim, "lineBytes", 8192));
  s->limits.ipv6_prefix = int(num(lim, "ipv6Prefix", 64));
  Napi::Value lt = lim.Get("loginTracking");
  s->limits.login_tracking = !lt.IsBoolean() || lt.As<Napi::Boolean>().Value();
  Napi::Object lf = obj(lim, "loginFailures");
  s->limits.guard.failures = uint32_t(num(lf, "count", 10));
  s->limits.guard.window_ms = int64_t(num(lf, "windowMs", 600000));
  s->limits.guard.ban_ms = int64_t(num(lf, "banMs", 900000));
  s->limits.guard.rate_per_min = uint32_t(num(lim, "connectionRate", 600));
  Napi::Array exempt = arr(lim, "exempt");
  for (uint32_t j = 0; j < exempt.Length(); j++) {
    Napi::Value v = exempt.Get(j);
    Cidr c;
    if (!v.IsString() || !parse_cidr(v.As<Napi::String>().Utf8Value(), c)) { err = "limits.exempt[" + std::to_string(j) + "]: bad CIDR"; return nullptr; }
    s->limits.exempt.push_back(c);
  }
  return s;
}

}  // namespace mf
