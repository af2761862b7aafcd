// mailfront_testing.node, an addon for the tests only (binding.gyp: built into
// build/Release/testing/, not shipped by scripts/prebuild.sh; loaded by
// test/helpers/testing-addon.ts): functions for the table tests of the data
// plane's pure parts (dialog, login parser, client networks, PROXY header,
// CRC32C, CIDR match, TLS 1.3 traffic keys), linked from the same objects as the production addon;
// and the asynchronous certificate check with a hold on its threads (this library has its own
// copy of the check's state: the hold acts on this library's checkCertificatesAsync only).
#include <napi.h>

#include <cstring>
#include <string>
#include <vector>

#include "cert_check_async.h"
#include "client_net.h"
#include "crc32c.h"
#include "dialog.h"
#include "login.h"
#include "net.h"
#include "proxy_header.h"
#include "proxy_parse.h"
#include "tls13_keys.h"

namespace mf {

namespace {

// For the dialog's table tests: feed chunks, get back what mailfront answers.
Napi::Value TestDialog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Proto p;
  if (!info[0].IsString() || !parse_proto(info[0].As<Napi::String>().Utf8Value(), p) || !info[1].IsString() || !info[2].IsArray()) {
    Napi::TypeError::New(env, "testDialog(protocol, capabilities, chunks[])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  PreTlsDialog d(p, info[1].As<Napi::String>().Utf8Value(), info[3].IsNumber() ? info[3].As<Napi::Number>().Uint32Value() : 8192);
  std::string out = d.greeting();
  const char* next = "continue";
  Napi::Array chunks = info[2].As<Napi::Array>();
  for (uint32_t i = 0; i < chunks.Length(); i++) {
    std::string chunk = chunks.Get(i).As<Napi::String>().Utf8Value();
    auto r = d.feed(chunk, out);
    if (r == PreTlsDialog::Next::StartTls) { next = "starttls"; break; }
    if (r == PreTlsDialog::Next::Close) { next = "close"; break; }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("output", out);
  o.Set("next", next);
  return o;
}

// For the login parser's table tests: steps [["c"|"s", bytes], ...] in order;
// returns the outcomes and the parser's final state.
Napi::Value TestLogin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Proto p;
  if (!info[0].IsString() || !parse_proto(info[0].As<Napi::String>().Utf8Value(), p) || !info[1].IsArray()) {
    Napi::TypeError::New(env, "testLogin(protocol, steps[])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  LoginWatch w(family(p), info[2].IsNumber() ? info[2].As<Napi::Number>().Uint32Value() : LoginWatch::kDefaultBound);
  std::vector<LoginOutcome> out;
  Napi::Array steps = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < steps.Length(); i++) {
    Napi::Array st = steps.Get(i).As<Napi::Array>();
    std::string dir = st.Get(0u).As<Napi::String>().Utf8Value();
    Napi::Value d = st.Get(1u);
    std::string bytes = d.IsBuffer() ? std::string(d.As<Napi::Buffer<char>>().Data(), d.As<Napi::Buffer<char>>().Length())
                                     : d.As<Napi::String>().Utf8Value();
    if (dir == "c") w.client(bytes, out);
    else w.server(bytes, out);
  }
  Napi::Array outcomes = Napi::Array::New(env, out.size());
  for (size_t i = 0; i < out.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("result", login_result_name(out[i].result));
    o.Set("user", out[i].user);
    o.Set("mech", out[i].mech);
    outcomes.Set(uint32_t(i), o);
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("outcomes", outcomes);
  r.Set("state", w.state() == LoginWatch::State::Watching ? "watching" : w.state() == LoginWatch::State::Authenticated ? "authenticated" : "bound");
  return r;
}

// For the client network tests: the network an "ip:port" counts against, as logged.
Napi::Value TestClientNetwork(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "testClientNetwork(address, ipv6Prefix)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto a = parse_addr(info[0].As<Napi::String>().Utf8Value());
  if (!a) return env.Null();
  return Napi::String::New(env, format_network(client_network(*a, info[1].As<Napi::Number>().Int32Value())));
}

// For the PROXY header reader's table tests: parse_proxy_header() on one buffer.
Napi::Value TestProxyParse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBuffer()) {
    Napi::TypeError::New(env, "testProxyParse(buffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto b = info[0].As<Napi::Buffer<char>>();
  ProxyParse p = parse_proxy_header(std::string_view(b.Data(), b.Length()));
  Napi::Object o = Napi::Object::New(env);
  o.Set("status", p.status == ProxyParse::Status::Done ? "done" : p.status == ProxyParse::Status::NeedMore ? "more" : "malformed");
  if (p.status == ProxyParse::Status::Done) {
    o.Set("length", double(p.length));
    o.Set("local", p.local);
    if (!p.local) {
      o.Set("src", format_addr(p.src));
      o.Set("dst", format_addr(p.dst));
    }
  }
  if (p.status == ProxyParse::Status::Malformed) o.Set("why", p.why);
  return o;
}

// For the PROXY header writer's tests: proxy_header() for "ip:port" addresses,
// with {version, cipher, sni} for v2-ssl.
Napi::Value TestProxyHeader(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsString() || !info[2].IsString()) {
    Napi::TypeError::New(env, "testProxyHeader(version, client, local, tls?)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string v = info[0].As<Napi::String>().Utf8Value();
  ProxyHeader version = v == "v1" ? ProxyHeader::V1 : v == "v2" ? ProxyHeader::V2 : v == "v2-ssl" ? ProxyHeader::V2Ssl : ProxyHeader::Off;
  auto client = parse_addr(info[1].As<Napi::String>().Utf8Value());
  auto local = parse_addr(info[2].As<Napi::String>().Utf8Value());
  if (!client || !local) {
    Napi::TypeError::New(env, "testProxyHeader: bad address").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string tv, tc, ts;
  if (info[3].IsObject()) {
    Napi::Object t = info[3].As<Napi::Object>();
    auto get = [&](const char* k) { Napi::Value x = t.Get(k); return x.IsString() ? x.As<Napi::String>().Utf8Value() : std::string(); };
    tv = get("version");
    tc = get("cipher");
    ts = get("sni");
  }
  ProxyTls tls{tv, tc, ts};
  std::string h = proxy_header(version, *client, *local, &tls);
  return Napi::Buffer<char>::Copy(env, h.data(), h.size());
}

// For the key schedule's known answers: the traffic key and IV of <secret> under the suite with
// IANA id <suite> (0x1301..0x1303), and the next secret (a KeyUpdate).
Napi::Value TestTrafficKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Tls13Suite suite;
  if (!info[0].IsNumber() || !tls13_suite_of(uint16_t(info[0].As<Napi::Number>().Uint32Value()), suite) || !info[1].IsBuffer() ||
      info[1].As<Napi::Buffer<uint8_t>>().Length() != tls13_secret_len(suite)) {
    Napi::TypeError::New(env, "testTrafficKey(suite id, secret of the suite's hash length)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint8_t secret[kMaxSecret];
  memcpy(secret, info[1].As<Napi::Buffer<uint8_t>>().Data(), tls13_secret_len(suite));
  TrafficKey k;
  if (!derive_traffic_key(suite, secret, k) || !next_traffic_secret(suite, secret)) {
    Napi::Error::New(env, "testTrafficKey: derivation failed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("key", Napi::Buffer<uint8_t>::Copy(env, k.key, tls13_key_len(suite)));
  o.Set("iv", Napi::Buffer<uint8_t>::Copy(env, k.iv, kIvLen));
  o.Set("next", Napi::Buffer<uint8_t>::Copy(env, secret, tls13_secret_len(suite)));
  return o;
}

// For the CRC32C check values.
Napi::Value TestCrc32c(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBuffer()) {
    Napi::TypeError::New(env, "testCrc32c(buffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto b = info[0].As<Napi::Buffer<char>>();
  return Napi::Number::New(env, double(crc32c(b.Data(), b.Length())));
}

// For the trusted_proxies tests: does <address> ("ip:port") lie in <cidrs>? Throws on a bad CIDR.
Napi::Value TestCidrMatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray() || !info[1].IsString()) {
    Napi::TypeError::New(env, "testCidrMatch(cidrs[], address)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<Cidr> nets;
  Napi::Array a = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Cidr c;
    if (!parse_cidr(a.Get(i).As<Napi::String>().Utf8Value(), c)) {
      Napi::Error::New(env, "bad CIDR").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    nets.push_back(c);
  }
  auto addr = parse_addr(info[1].As<Napi::String>().Utf8Value());
  return Napi::Boolean::New(env, addr && cidr_match(nets, *addr));
}

// For the lifetime tests: checks started while held wait (before their first pair) until released.
Napi::Value TestHoldChecks(const Napi::CallbackInfo& info) {
  hold_checks(info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("checkCertificatesAsync", Napi::Function::New(env, CheckCertificatesAsync));
  exports.Set("testHoldChecks", Napi::Function::New(env, TestHoldChecks));
  exports.Set("testDialog", Napi::Function::New(env, TestDialog));
  exports.Set("testProxyParse", Napi::Function::New(env, TestProxyParse));
  exports.Set("testCidrMatch", Napi::Function::New(env, TestCidrMatch));
  exports.Set("testProxyHeader", Napi::Function::New(env, TestProxyHeader));
  exports.Set("testCrc32c", Napi::Function::New(env, TestCrc32c));
  exports.Set("testLogin", Napi::Function::New(env, TestLogin));
  exports.Set("testClientNetwork", Napi::Function::New(env, TestClientNetwork));
  exports.Set("testTrafficKey", Napi::Function::New(env, TestTrafficKey));
  return exports;
}

}  // namespace

}  // namespace mf

Napi::Object InitTesting(Napi::Env env, Napi::Object exports) { return mf::Init(env, exports); }

NODE_API_MODULE(mailfront_testing, InitTesting)
