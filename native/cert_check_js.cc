// checkCertificates for the control plane: PEM blocks (strings or Buffers), or the paths of a
// pair's files, in; one result per pair out (src/native.ts CertCheck). A passed pair comes back
// as an opaque handle that snapshots name instead of PEM text.
#include "cert_check_js.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "pem_files.h"

namespace mf {

namespace {

// Marks the handles as ours: read_snapshot takes no other External for a pair.
const napi_type_tag kPairTag = {0x6d61696c66726f6eULL, 0x636865636b656431ULL};

Napi::Value handle_of(Napi::Env env, const CheckedPairPtr& p) {
  auto* holder = new CheckedPairPtr(p);
  auto ext = Napi::External<CheckedPairPtr>::New(env, holder, [](Napi::Env, CheckedPairPtr* h) { delete h; });
  napi_type_tag_object(env, ext, &kPairTag);
  return ext;
}

// PEM blocks given as strings or Buffers; <wipe>: Buffers are zeroed once copied (key text).
bool blocks(const Napi::Value& v, std::vector<std::string>& out, bool wipe) {
  if (!v.IsArray()) return false;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value s = a.Get(i);
    if (s.IsString()) {
      out.push_back(s.As<Napi::String>().Utf8Value());
    } else if (s.IsBuffer()) {
      auto b = s.As<Napi::Buffer<char>>();
      out.emplace_back(b.Data(), b.Length());
      if (wipe) OPENSSL_cleanse(b.Data(), b.Length());
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

CheckedPairPtr checked_pair_of(Napi::Env env, Napi::Value v) {
  bool ours = false;
  if (!v.IsExternal() || napi_check_object_type_tag(env, v, &kPairTag, &ours) != napi_ok || !ours) return nullptr;
  return *v.As<Napi::External<CheckedPairPtr>>().Data();
}

bool pair_inputs(Napi::Env env, Napi::Value v, std::vector<PairInput>& in) {
  if (!v.IsArray()) {
    Napi::TypeError::New(env, "checkCertificates(pairs[])").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Array list = v.As<Napi::Array>();
  in.resize(list.Length());
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (v.IsObject() && v.As<Napi::Object>().Get("certPath").IsString()) {
      Napi::Object o = v.As<Napi::Object>();
      Napi::Value key = o.Get("keyPath");
      if (!key.IsString()) {
        Napi::TypeError::New(env, "checkCertificates: pairs[" + std::to_string(i) + "] has a certPath but no keyPath").ThrowAsJavaScriptException();
        return false;
      }
      in[i].files = PairFiles{o.Get("certPath").As<Napi::String>().Utf8Value(), key.As<Napi::String>().Utf8Value(), o.Get("combined").ToBoolean().Value()};
      continue;
    }
    if (!v.IsObject() || !blocks(v.As<Napi::Object>().Get("certs"), in[i].certs, false) || !blocks(v.As<Napi::Object>().Get("keys"), in[i].keys, true)) {
      Napi::TypeError::New(env, "checkCertificates: pairs[" + std::to_string(i) + "] must be {certs, keys}: arrays of PEM strings or Buffers, or {certPath, keyPath, combined}").ThrowAsJavaScriptException();
      return false;
    }
  }
  return true;
}

Napi::Array check_results(Napi::Env env, const std::vector<CheckResultPtr>& results) {
  Napi::Array out = Napi::Array::New(env, results.size());
  for (uint32_t i = 0; i < results.size(); i++) {
    const CheckResult& r = *results[i];
    Napi::Object o = Napi::Object::New(env);
    if (r.unread) {
      o.Set("unread", true);
    } else if (!r.error.empty()) {
      o.Set("error", r.error);
      o.Set("at", r.at);
      if (!r.detail.empty()) o.Set("detail", r.detail);
      if (r.error == "mismatch") {
        o.Set("keyType", r.key_type);
        o.Set("certType", r.cert_type);
      }
    } else {
      Napi::Array names = Napi::Array::New(env, r.san_dns.size());
      for (uint32_t j = 0; j < r.san_dns.size(); j++) names.Set(j, r.san_dns[j]);
      o.Set("sanDns", names);
      o.Set("cn", r.cn);
      o.Set("keyType", r.key_type);
      o.Set("notBefore", r.not_before_ms);
      o.Set("notAfter", r.not_after_ms);
      o.Set("fingerprint256", r.fingerprint256);
      o.Set("serial", r.serial);
      o.Set("issuer", r.issuer);
      o.Set("ca", r.ca);
      o.Set("serverAuth", r.server_auth);
      o.Set("chain", r.chain);
      o.Set("chainLength", r.chain_length);
      o.Set("keyIndex", r.key_index);
      o.Set("pair", handle_of(env, r.pair));
    }
    out.Set(i, o);
  }
  return out;
}

Napi::Value CheckCertificates(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<PairInput> in;
  if (!pair_inputs(env, info[0], in)) return env.Undefined();
  std::vector<CheckResultPtr> results = check_pairs(in, info[1].ToBoolean().Value());
  in.clear();  // the key text is wiped now, before the results are built
  return check_results(env, results);
}

Napi::Value LineageFiles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsArray()) {
    Napi::TypeError::New(env, "lineageFiles(live, names[])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<std::string> names(list.Length());
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsString()) {
      Napi::TypeError::New(env, "lineageFiles: names[" + std::to_string(i) + "] is not a string").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    names[i] = v.As<Napi::String>().Utf8Value();
  }
  std::vector<int> bits = lineage_files(info[0].As<Napi::String>().Utf8Value(), names);
  Napi::Int32Array out = Napi::Int32Array::New(env, bits.size());
  std::copy(bits.begin(), bits.end(), out.Data());
  return out;
}

}  // namespace mf
