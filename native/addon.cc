// Module init: the addon's exports, each made in its own file (addon.h).
#include <napi.h>

#include "addon.h"
#include "cert_check_async.h"
#include "cert_check_js.h"
#include "close_reason.h"

namespace mf {

namespace {

// closeReasons: [{name, ordinary}] in the enum's order (close_reason.h), for the log and the tests.
Napi::Array close_reason_table(Napi::Env env) {
  Napi::Array out = Napi::Array::New(env, std::size(kCloseReasons));
  for (uint32_t i = 0; i < std::size(kCloseReasons); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", kCloseReasons[i].name);
    o.Set("ordinary", kCloseReasons[i].ordinary);
    out[i] = o;
  }
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Proxy", proxy_class(env));
  export_library_queries(env, exports);
  exports.Set("checkCertificates", Napi::Function::New(env, CheckCertificates));
  exports.Set("checkCertificatesAsync", Napi::Function::New(env, CheckCertificatesAsync));
  exports.Set("lineageFiles", Napi::Function::New(env, LineageFiles));
  exports.Set("sdNotify", Napi::Function::New(env, sd_notify));
  export_rules(env, exports);
  exports.Set("closeReasons", close_reason_table(env));
  return exports;
}

}  // namespace

}  // namespace mf

Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return mf::Init(env, exports); }

NODE_API_MODULE(mailfront, InitAll)
