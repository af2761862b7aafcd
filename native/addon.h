// The pieces of the addon's JS interface, put together by Init (addon.cc).
// The functions for the tests are another addon (test_exports.cc, target
// mailfront_testing in binding.gyp), never shipped.
#pragma once
#include <napi.h>

namespace mf {

// proxy_object.cc: the Proxy class (apply, start, stats, drain, stop).
Napi::Function proxy_class(Napi::Env env);
// library_queries.cc: opensslVersion, opensslVersionNumber, tlsGroupKnown, tlsCipherList.
void export_library_queries(Napi::Env env, Napi::Object exports);
// sd_notify.cc: sd_notify(3) without libsystemd.
Napi::Value sd_notify(const Napi::CallbackInfo& info);
// rules.cc: normalizeHostName, parseAddress, parseCidr, findContext (the rules the control plane shares).
void export_rules(Napi::Env env, Napi::Object exports);

}  // namespace mf
