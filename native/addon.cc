// Module init and the JS-facing Proxy class. JS_ methods check types only:
// validation and defaults live in TypeScript (src/config, src/snapshot.ts).
#include <napi.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcntl.h>
#include <cerrno>
#include <cstring>
#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "client_net.h"
#include "crc32c.h"
#include "dialog.h"
#include "engine.h"
#include "login.h"
#include "proxy_header.h"
#include "proxy_parse.h"
#include "tickets.h"
#include "tls.h"

namespace mf {

namespace {

// Workers push records; JS receives them in batches through one ThreadSafeFunction.
// The pending queue lives on the heap and belongs to the ThreadSafeFunction: a
// delivery still queued when the Proxy goes away (GC, env teardown) finds it
// alive; the finalizer frees it after the last call.
// The queue is bounded: when the JS thread stalls (stdout blocked by journald
// back-pressure, a long GC) connection records beyond <max_pending> are dropped
// and counted (stats().eventsDropped); the next delivery says how many. Error
// events are few (one per worker every 5 s at most) and always kept; so are a
// ban's start and end (one each per banned network: each must be logged once).
class EventQueue : public EventSink {
 public:
  static constexpr size_t kDefaultMaxPending = 10000;  // about 7 MB of records

  void open(Napi::Env env, Napi::Function cb, size_t max_pending) {
    max_pending_ = max_pending;
    state_ = new State;
    tsfn_ = Napi::ThreadSafeFunction::New(env, cb, "mailfront-events", 0, 1, state_, [](Napi::Env, State* s) { delete s; });
    tsfn_.Unref(env);
  }
  void ref(Napi::Env env) { if (tsfn_) tsfn_.Ref(env); }
  void unref(Napi::Env env) { if (tsfn_) tsfn_.Unref(env); }
  // JS thread, once no worker pushes any more.
  void close() {
    if (tsfn_) tsfn_.Release();
    tsfn_ = {};
    state_ = nullptr;
  }

  // Any thread.
  void push(std::vector<Event>& batch) override {
    if (batch.empty() || !state_) return;
    bool first;
    uint64_t dropped = 0;
    {
      std::lock_guard lk(state_->mu);
      first = state_->pending.empty() && state_->dropped == 0;
      for (Event& e : batch) {
        bool keep = e.kind == Event::Kind::Error || e.kind == Event::Kind::Ban || e.kind == Event::Kind::BanEnded;
        if (state_->pending.size() < max_pending_ || keep) state_->pending.push_back(std::move(e));
        else dropped++;
      }
      state_->dropped += dropped;
    }
    batch.clear();
    if (dropped) dropped_.fetch_add(dropped, std::memory_order_relaxed);
    if (first) tsfn_.NonBlockingCall(state_, [](Napi::Env env, Napi::Function cb, State* s) { deliver(env, cb, s); });
  }

 private:
  struct State {
    std::mutex mu;
    std::deque<Event> pending;
    uint64_t dropped = 0;  // since the last delivery
  };

  // JS thread.
  static void deliver(Napi::Env env, Napi::Function cb, State* s) {
    std::deque<Event> batch;
    uint64_t dropped;
    {
      std::lock_guard lk(s->mu);
      batch.swap(s->pending);
      dropped = std::exchange(s->dropped, 0);
    }
    if ((batch.empty() && !dropped) || !cb) return;
    Napi::Array arr = Napi::Array::New(env, batch.size() + (dropped ? 1 : 0));
    uint32_t i = 0;
    for (Event& e : batch) arr[i++] = to_js(env, e);
    if (dropped) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("kind", "dropped");
      o.Set("count", double(dropped));
      arr[i++] = o;
    }
    cb.Call({arr});
  }

  static Napi::Object to_js(Napi::Env env, const Event& e) {
    Napi::Object o = Napi::Object::New(env);
    if (e.kind == Event::Kind::Error) {
      o.Set("kind", "error");
      o.Set("message", e.message);
      o.Set("listener", e.listener);
      return o;
    }
    if (e.kind == Event::Kind::Login) {
      const LoginRecord& l = e.login;
      Napi::Object r = Napi::Object::New(env);
      r.Set("listener", e.listener);
      r.Set("protocol", l.protocol);
      r.Set("client", l.client);
      r.Set("network", l.network);
      r.Set("sni", l.sni);
      r.Set("user", l.user);
      r.Set("mech", l.mech);
      r.Set("result", l.result);
      o.Set("kind", "login");
      o.Set("login", r);
      return o;
    }
    if (e.kind == Event::Kind::Ban || e.kind == Event::Kind::BanEnded) {
      o.Set("kind", e.kind == Event::Kind::Ban ? "ban" : "ban_ended");
      o.Set("network", e.network);
      if (e.kind == Event::Kind::Ban) {
        o.Set("listener", e.listener);
        o.Set("banMs", double(e.ban_ms));
        o.Set("failures", double(e.failures));
      }
      return o;
    }
    const ConnRecord& r = e.record;
    Napi::Object rec = Napi::Object::New(env);
    rec.Set("listener", r.listener);
    rec.Set("protocol", r.protocol);
    rec.Set("client", r.client);
    rec.Set("backend", r.backend);
    rec.Set("backendLocal", r.backend_local);
    rec.Set("pool", r.pool);
    rec.Set("sni", r.sni);
    rec.Set("tlsVersion", r.tls_version);
    rec.Set("cipher", r.cipher);
    rec.Set("group", r.group);
    rec.Set("resumed", r.resumed);
    rec.Set("bytesIn", double(r.bytes_in));
    rec.Set("bytesOut", double(r.bytes_out));
    rec.Set("handshakeMs", r.handshake_ms);
    rec.Set("connectMs", r.connect_ms);
    rec.Set("durationMs", r.duration_ms);
    rec.Set("reason", r.reason);
    rec.Set("detail", r.detail);
    rec.Set("login", r.login);
    rec.Set("user", r.user);
    rec.Set("loginFailures", double(r.login_failures));
    o.Set("kind", "connection");
    o.Set("record", rec);
    return o;
  }

  State* state_ = nullptr;
  Napi::ThreadSafeFunction tsfn_;
  size_t max_pending_ = kDefaultMaxPending;
  std::atomic<uint64_t> dropped_{0};

 public:
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
};

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

// Reads a snapshot (src/native.ts NativeSnapshot). Empty with <err> on failure.
// The ticket keys go to <keys>: they are process-wide, installed only once the
// snapshot is accepted (a refused snapshot must change nothing).
// SSL_CTXs of the last snapshot read, by a digest of everything they are built from (policy and
// PEM text): a reload of thousands of unchanged certificates reuses them (SSL_CTX_up_ref) instead
// of building each again (~0.25 ms each in OpenSSL 3.0). An SSL_CTX holds no per-snapshot state:
// one built from the same inputs is the same. Holds only what the newest snapshot uses.
std::mutex ctx_cache_mu;
std::unordered_map<std::string, SslCtxPtr> ctx_cache;

std::string ctx_digest(const TlsPolicy& policy, const std::vector<PemPair>& pairs) {
  // Hashed piece by piece: no concatenated copy of the key PEMs to wipe afterwards.
  // "" when hashing fails: such a context is built, never cached (reuse_ctx, remember_ctxs).
  static EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  bool ok = md && sha256 && EVP_DigestInit_ex(md.get(), sha256, nullptr) == 1;
  auto add = [&](const std::string& v) {
    std::string len = std::to_string(v.size()) + ':';
    ok = ok && EVP_DigestUpdate(md.get(), len.data(), len.size()) == 1 && EVP_DigestUpdate(md.get(), v.data(), v.size()) == 1;
  };
  add(std::to_string(policy.min_version));
  add(policy.ciphers);
  add(policy.ciphersuites);
  add(policy.groups);
  for (const PemPair& p : pairs) {
    add(p.chain_pem);
    add(p.key_pem);
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!ok || EVP_DigestFinal_ex(md.get(), out, &n) != 1) { ERR_clear_error(); return {}; }
  return std::string(reinterpret_cast<char*>(out), n);
}

SslCtxPtr reuse_ctx(const std::string& digest) {
  std::lock_guard<std::mutex> lock(ctx_cache_mu);
  if (digest.empty()) return nullptr;
  auto it = ctx_cache.find(digest);
  if (it == ctx_cache.end()) return nullptr;
  SSL_CTX_up_ref(it->second.get());
  return SslCtxPtr(it->second.get());
}

void remember_ctxs(const std::vector<std::string>& digests, const std::vector<SslCtxPtr>& ctxs) {
  std::unordered_map<std::string, SslCtxPtr> next;
  for (size_t i = 0; i < ctxs.size(); i++) {
    if (digests[i].empty() || next.count(digests[i])) continue;
    SSL_CTX_up_ref(ctxs[i].get());
    next.emplace(digests[i], SslCtxPtr(ctxs[i].get()));
  }
  std::unordered_map<std::string, SslCtxPtr> old;
  {
    std::lock_guard<std::mutex> lock(ctx_cache_mu);
    old.swap(ctx_cache);
    ctx_cache.swap(next);
  }
}  // the previous generation's references are released here, outside the lock

std::shared_ptr<Snapshot> read_snapshot(const Napi::Object& js, std::vector<TicketKey>& keys, std::string& err) {
  auto s = std::make_shared<Snapshot>();
  Napi::Object tls = obj(js, "tls");
  TlsPolicy policy;
  policy.min_version = str(tls, "minVersion") == "TLSv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  policy.ciphers = str(tls, "ciphers");
  policy.ciphersuites = str(tls, "ciphersuites");
  // No silent default here: the control plane decides the groups from this library (tlsGroupKnown).
  policy.groups = str(tls, "groups");

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
  // The PEM text is copied out of JS first; the SSL_CTXs are then built on a few threads
  // (thousands of contexts take seconds on one core), and kept in order.
  std::vector<std::vector<PemPair>> all(contexts.Length());
  for (uint32_t i = 0; i < contexts.Length(); i++) {
    Napi::Object c = contexts.Get(i).As<Napi::Object>();
    Napi::Array certs = arr(c, "certs");
    for (uint32_t j = 0; j < certs.Length(); j++) {
      Napi::Object p = certs.Get(j).As<Napi::Object>();
      all[i].push_back({str(p, "chainPem"), str(p, "keyPem")});
    }
  }
  std::vector<SslCtxPtr> built(all.size());
  std::vector<std::string> errs(all.size());
  std::vector<std::string> digests(all.size());
  std::atomic<size_t> next{0};
  auto build = [&] {
    for (size_t i; (i = next.fetch_add(1)) < all.size();) {
      digests[i] = ctx_digest(policy, all[i]);
      built[i] = reuse_ctx(digests[i]);
      if (built[i]) continue;
      built[i] = make_server_ctx(policy, all[i], errs[i]);
      if (!built[i]) next.store(all.size());  // stop early; the first failure (by index) is reported
    }
  };
  size_t hw = std::max(1u, std::thread::hardware_concurrency());
  size_t nthreads = std::min({hw, size_t(4), (all.size() + 255) / 256});
  std::vector<std::thread> threads;
  for (size_t t = 1; t < nthreads; t++) threads.emplace_back(build);
  build();
  for (auto& t : threads) t.join();
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
  remember_ctxs(digests, built);
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
    be->down_until_ms.reset(new std::atomic<int64_t>[be->servers.size()]);
    for (size_t j = 0; j < be->servers.size(); j++) be->down_until_ms[j].store(0);
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

class Proxy : public Napi::ObjectWrap<Proxy> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Proxy",
                       {InstanceMethod("apply", &Proxy::JS_apply), InstanceMethod("start", &Proxy::JS_start),
                        InstanceMethod("stats", &Proxy::JS_stats), InstanceMethod("drain", &Proxy::JS_drain),
                        InstanceMethod("stop", &Proxy::JS_stop)});
  }

  explicit Proxy(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Proxy>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) { Napi::TypeError::New(env, "Proxy(options): options object expected").ThrowAsJavaScriptException(); return; }
    Napi::Object o = info[0].As<Napi::Object>();
    Napi::Value cb = o.Get("onEvents");
    if (!cb.IsFunction()) { Napi::TypeError::New(env, "Proxy(options): onEvents must be a function").ThrowAsJavaScriptException(); return; }
    double max_pending = num(o, "maxPendingEvents", double(EventQueue::kDefaultMaxPending));
    events_.open(env, cb.As<Napi::Function>(), max_pending >= 1 ? size_t(max_pending) : 1);
    engine_ = std::make_unique<Engine>(int(num(o, "workers", 1)), events_);
    // An environment torn down (worker_threads, exit) stops the data plane first.
    cleanup_ = env.AddCleanupHook(&Proxy::OnEnvTeardown, this);
  }

  ~Proxy() override {
    if (!cleanup_.IsEmpty()) cleanup_.Remove(Env());
    Teardown();
  }

  // The hook's own data is freed by node-addon-api once it has run.
  static void OnEnvTeardown(Proxy* p) {
    p->cleanup_ = {};
    p->Teardown();
  }

  void Teardown() {
    if (engine_) engine_->stop();
    events_.close();
  }

 private:
  Napi::Value JS_apply(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) { Napi::TypeError::New(env, "apply(snapshot): object expected").ThrowAsJavaScriptException(); return env.Undefined(); }
    std::string err;
    std::vector<TicketKey> keys;
    auto snap = read_snapshot(info[0].As<Napi::Object>(), keys, err);
    if (!snap) { Napi::Error::New(env, "snapshot refused: " + err).ThrowAsJavaScriptException(); return env.Undefined(); }
    if (engine_->running() && snap->listeners.size() != engine_->listener_count) {
      Napi::Error::New(env, "snapshot refused: the listeners cannot change while running").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!TicketKeys::set(std::move(keys))) {
      Napi::Error::New(env, "snapshot refused: no session-ticket key could be made (the random generator failed)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    engine_->apply(std::move(snap));
    return env.Undefined();
  }

  Napi::Value JS_start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) { Napi::TypeError::New(env, "start(listeners): array expected").ThrowAsJavaScriptException(); return env.Undefined(); }
    if (engine_->running() || engine_->stopped()) { Napi::Error::New(env, "start(): already started (or stopped)").ThrowAsJavaScriptException(); return env.Undefined(); }
    auto snap = engine_->snapshot();
    if (!snap) { Napi::Error::New(env, "start() before apply()").ThrowAsJavaScriptException(); return env.Undefined(); }
    Napi::Array list = info[0].As<Napi::Array>();
    if (list.Length() != snap->listeners.size()) {
      Napi::Error::New(env, "start(): listeners do not match the snapshot's").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::vector<ListenSocket> sockets;
    Napi::Array bound = Napi::Array::New(env, list.Length());
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Object l = list.Get(i).As<Napi::Object>();
      std::string name = str(l, "name");
      Napi::Array addrs = Napi::Array::New(env);
      Napi::Array fds = arr(l, "fds");
      auto add = [&](int fd, bool adopted) {
        SockAddr local;
        local.len = sizeof local.ss;
        getsockname(fd, local.sa(), &local.len);
        std::string text = format_addr(local);
        addrs.Set(addrs.Length(), text);
        sockets.push_back({Fd(fd), int(i), text, adopted});
      };
      for (uint32_t j = 0; j < fds.Length(); j++) {
        int fd = int(fds.Get(j).As<Napi::Number>().Int32Value());
        // Adopted from systemd: make it ours (non-blocking, not inherited by children).
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        add(fd, true);
      }
      Napi::Array text = arr(l, "addresses");
      for (uint32_t j = 0; j < text.Length(); j++) {
        std::string a = text.Get(j).As<Napi::String>().Utf8Value();
        auto addr = parse_addr(a);
        std::string err = "malformed address";
        int fd = addr ? open_listener(*addr, err) : -1;
        if (fd < 0) {
          Napi::Error e = Napi::Error::New(env, "listener " + name + " on " + a + ": " + err);
          e.Set("code", "MF_LISTEN");
          e.ThrowAsJavaScriptException();
          return env.Undefined();
        }
        add(fd, false);
      }
      Napi::Object b = Napi::Object::New(env);
      b.Set("name", name);
      b.Set("addresses", addrs);
      bound[i] = b;
    }
    engine_->start(std::move(sockets));
    events_.ref(env);
    return bound;
  }

  Napi::Value JS_stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("workers", double(engine_->workers.size()));
    out.Set("active", double(engine_->active.load()));
    int64_t now = now_ms(), oldest = 0;
    for (auto& w : engine_->workers) {
      int64_t hb = w->heartbeat_ms.load(std::memory_order_relaxed);
      if (hb && now - hb > oldest) oldest = now - hb;
    }
    out.Set("maxLoopAgeMs", double(oldest));
    out.Set("eventsDropped", double(events_.dropped()));
    out.Set("bannedNetworks", double(engine_->guard.bans(now)));
    out.Set("trackedNetworks", double(engine_->guard.entries()));
    auto snap = engine_->snapshot();
    Napi::Array ls = Napi::Array::New(env);
    for (size_t i = 0; snap && i < engine_->listener_count; i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", snap->listeners[i].name);
      int64_t active = 0;
      for (auto& w : engine_->workers) active += w->counters[i].active.load(std::memory_order_relaxed);
      o.Set("active", double(active));
      for (const CounterField& f : kCounterFields) {
        uint64_t sum = 0;
        for (auto& w : engine_->workers) sum += (w->counters[i].*f.field).load(std::memory_order_relaxed);
        o.Set(f.name, double(sum));
      }
      ls.Set(uint32_t(i), o);
    }
    out.Set("listeners", ls);
    return out;
  }

  Napi::Value JS_drain(const Napi::CallbackInfo& info) {
    engine_->drain();
    return info.Env().Undefined();
  }

  Napi::Value JS_stop(const Napi::CallbackInfo& info) {
    engine_->stop();
    events_.unref(info.Env());
    return info.Env().Undefined();
  }

  EventQueue events_;
  std::unique_ptr<Engine> engine_;
  Napi::Env::CleanupHook<void (*)(Proxy*), Proxy> cleanup_;
};

// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET.
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* path = getenv("NOTIFY_SOCKET");
  if (!path || !info[0].IsString()) return Napi::Boolean::New(env, false);
  std::string state = info[0].As<Napi::String>().Utf8Value();
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof sa.sun_path) return Napi::Boolean::New(env, false);
  memcpy(sa.sun_path, path, n);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';  // abstract namespace
  Fd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return Napi::Boolean::New(env, false);
  ssize_t r = sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&sa),
                     socklen_t(offsetof(sockaddr_un, sun_path) + n));
  return Napi::Boolean::New(env, r == ssize_t(state.size()));
}

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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Proxy", Proxy::Init(env));
  exports.Set("opensslVersion", OpenSSL_version(OPENSSL_VERSION));
  // The running library's number (0xMNN00PP0L), not the headers': one build runs on 3.0 and 3.5.
  exports.Set("opensslVersionNumber", double(OpenSSL_version_num()));
  exports.Set("tlsGroupKnown", Napi::Function::New(env, TlsGroupKnown));
  exports.Set("tlsCipherList", Napi::Function::New(env, TlsCipherList));
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify));
  exports.Set("testDialog", Napi::Function::New(env, TestDialog));
  exports.Set("testProxyParse", Napi::Function::New(env, TestProxyParse));
  exports.Set("testCidrMatch", Napi::Function::New(env, TestCidrMatch));
  exports.Set("testProxyHeader", Napi::Function::New(env, TestProxyHeader));
  exports.Set("testCrc32c", Napi::Function::New(env, TestCrc32c));
  exports.Set("testLogin", Napi::Function::New(env, TestLogin));
  exports.Set("testClientNetwork", Napi::Function::New(env, TestClientNetwork));
  return exports;
}

}  // namespace

}  // namespace mf

Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return mf::Init(env, exports); }

NODE_API_MODULE(mailfront, InitAll)
