// Module init: the addon's exports, each made in its own file (addon.h).
#include <napi.h>

#include "addon.h"
#include "cert_check_js.h"

namespace mf {

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Proxy", proxy_class(env));
  export_library_queries(env, exports);
  exports.Set("checkCertificates", Napi::Function::New(env, CheckCertificates));
  exports.Set("sdNotify", Napi::Function::New(env, sd_notify));
  export_rules(env, exports);
  export_test_functions(env, exports);
  return exports;
}

}  // namespace

}  // namespace mf

Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return mf::Init(env, exports); }

NODE_API_MODULE(mailfront, InitAll)
