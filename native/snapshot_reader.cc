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
  // Not built here (ctx_cache.h): a context the cache does not have is proved instead, its pairs
  // taken by a scratch context of this policy, one per thread (tls.h pairs_fit), a few µs each
  // against an SSL_CTX_new each. The default context is built: every connection starts on it.
  auto shared_policy = std::make_shared<const TlsPolicy>(policy);
  std::vector<CertContextPtr> made(all.size());
  std::vector<std::string> errs(all.size());
  std::vector<std::string> digests(all.size());
  std::atomic<size_t> next{0};
  auto prove = [&] {
    SslCtxPtr scratch;
    for (size_t i; (i = next.fetch_add(1)) < all.size();) {
      digests[i] = ctx_digest(policy, all[i]);
      if ((made[i] = cache.reuse(digests[i]))) continue;
      if (!scratch) scratch = make_server_ctx(policy, {}, errs[i]);
      if (!scratch || !pairs_fit(scratch.get(), all[i], errs[i])) {
        next.store(all.size());  // stop early; the first failure (by index) is reported
        return;
      }
      made[i] = std::make_shared<CertContext>(shared_policy, std::move(all[i]));
    }
  };
  run_in_background(all.size(), prove);
  for (size_t i = 0; i < all.size(); i++) {
    if (!made[i] && !errs[i].empty()) {
      err = "contexts[" + std::to_string(i) + "]: " + errs[i];
      return nullptr;
    }
  }
  for (size_t i = 0; i < all.size(); i++) {
    if (!made[i]) { err = "contexts[" + std::to_string(i) + "]: not proved"; return nullptr; }
  }
  CertContext& first = *made[size_t(s->default_ctx)];
  if (!first.get()) {
    err = "contexts[" + std::to_string(s->default_ctx) + "]: " + first.error();
    return nullptr;
  }
  cache.remember(digests, made);
  s->contexts = std::move(made);
  return s;
}

}  // namespace mf
