// What the running OpenSSL offers, for the control plane (src/tls-library.ts).
#include <napi.h>
#include <openssl/crypto.h>

#include <string>
#include <vector>

#include "addon.h"
#include "tls.h"

namespace mf {

namespace {

// tlsGroupKnown(name): does the running OpenSSL offer this key-exchange group?
Napi::Value TlsGroupKnown(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) { Napi::TypeError::New(env, "tlsGroupKnown(name)").ThrowAsJavaScriptException(); return env.Undefined(); }
  return Napi::Boolean::New(env, tls_group_known(info[0].As<Napi::String>().Utf8Value()));
}

// tlsCipherList(list): what OpenSSL makes of a TLS 1.2 cipher string ({suites, securityLevel}); throws its refusal.
Napi::Value TlsCipherList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) { Napi::TypeError::New(env, "tlsCipherList(list)").ThrowAsJavaScriptException(); return env.Undefined(); }
  std::vector<CipherSuite> suites;
  int level = 0;
  std::string err;
  if (!expand_cipher_list(info[0].As<Napi::String>().Utf8Value(), suites, level, err)) {
    Napi::Error::New(env, err.empty() ? "refused by OpenSSL" : err).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array arr = Napi::Array::New(env, suites.size());
  for (uint32_t i = 0; i < suites.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", suites[i].name);
    o.Set("kx", suites[i].kx);
    o.Set("auth", suites[i].auth);
    o.Set("aead", suites[i].aead);
    arr[i] = o;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("suites", arr);
  out.Set("securityLevel", level);
  return out;
}

}  // namespace

void export_library_queries(Napi::Env env, Napi::Object exports) {
  exports.Set("opensslVersion", OpenSSL_version(OPENSSL_VERSION));
  // The running library's number (0xMNN00PP0L), not the headers': one build runs on 3.0 and 3.5.
  exports.Set("opensslVersionNumber", double(OpenSSL_version_num()));
  exports.Set("tlsGroupKnown", Napi::Function::New(env, TlsGroupKnown));
  exports.Set("tlsCipherList", Napi::Function::New(env, TlsCipherList));
}

}  // namespace mf
