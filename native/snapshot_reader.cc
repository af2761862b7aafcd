#include "snapshot_reader.h"

#include <algorithm>
#include <atomic>

#include "cert_check_js.h"
#include "ctx_cache.h"
#include "js_fields.h"
#include "snapshot_fields.h"
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

Napi::Array arr(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsArray() ? v.As<Napi::Array>() : Napi::Array::New(o.Env());
}

std::shared_ptr<Snapshot> read_snapshot(const Napi::Object& object, CtxCache& cache, const std::shared_ptr<TicketKeys>& tickets,
                                        std::vector<TicketKey>& keys, std::string& err) {
  JsField js(object, "");
  // First: whatever else this snapshot holds, every key Buffer given is wiped.
  keys = read_ticket_keys(js["tls"]["ticketKeys"]);
  TlsPolicy policy = read_tls_policy(js["tls"]);
  policy.ticket_keys = tickets;
  // The fields that are not certificates, before any context is built: a bad one costs nothing.
  auto s = std::make_shared<Snapshot>();
  read_backends(js["backends"], *s);
  read_listeners(js["listeners"], *s);
  s->timeouts = read_timeouts(js["timeouts"]);
  s->limits = read_limits(js["limits"]);
  s->own_record_layer = policy.own_record_layer;
  size_t context_count = js["contexts"].length();
  if (context_count == 0) js["contexts"].fail("expected at least one certificate context");
  read_sni_index(js, context_count, *s);

  Napi::Array contexts = arr(object, "contexts");
  // Each context names pairs checkCertificates parsed and checked (cert_check.h): they go into
  // the SSL_CTXs as they are. The SSL_CTXs are built on a few threads (thousands of contexts take
  // seconds on one core), and kept in order.
  std::vector<std::vector<CheckedPairPtr>> all(contexts.Length());
  for (uint32_t i = 0; i < contexts.Length(); i++) {
    Napi::Object c = contexts.Get(i).As<Napi::Object>();
    Napi::Array certs = arr(c, "certs");
    for (uint32_t j = 0; j < certs.Length(); j++) {
      CheckedPairPtr p = checked_pair_of(object.Env(), certs.Get(j));
      if (!p) throw FieldError{"contexts[" + std::to_string(i) + "].certs[" + std::to_string(j) + "]", "not a pair from checkCertificates"};
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
  return s;
}

}  // namespace mf
