// The JS-facing Proxy class. JS_ methods check types only:
// validation and defaults live in TypeScript (src/config, src/snapshot.ts).
// What they throw carries a code (js_errors.h), which src/native.ts turns into a NativeError.
#include <napi.h>
#include <sys/socket.h>

#include <fcntl.h>

#include <memory>
#include <string>
#include <vector>

#include "addon.h"
#include "ctx_cache.h"
#include "engine.h"
#include "event_queue.h"
#include "js_errors.h"
#include "js_fields.h"
#include "snapshot_reader.h"
#include "tickets.h"

namespace mf {

namespace {

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
    std::shared_ptr<Snapshot> snap;
    try {
      snap = read_snapshot(info[0].As<Napi::Object>(), contexts_, engine_->tickets, keys, err);
    } catch (const FieldError& f) {
      throw_coded(env, code::kSnapshotField, "snapshot refused: " + f.path + ": " + f.message, f.path);
      return env.Undefined();
    }
    if (!snap) { throw_coded(env, code::kTlsContext, "snapshot refused: " + err); return env.Undefined(); }
    if (engine_->running() && snap->listeners.size() != engine_->listener_count) {
      throw_coded(env, code::kNative, "snapshot refused: the listeners cannot change while running");
      return env.Undefined();
    }
    if (!engine_->tickets->set(std::move(keys))) {
      throw_coded(env, code::kTicketKeys, "snapshot refused: no session-ticket key could be made (the random generator failed)");
      return env.Undefined();
    }
    engine_->apply(std::move(snap));
    // No malloc_trim here: it holds each arena's lock while it walks it, the worker's too, and took
    // 50-90 ms after a reload of 10,000 certificates (the worker's arena holds the SSL_CTXs built
    // on first use): the worker stopped accepting for that long (bench/RESULTS.md).
    return env.Undefined();
  }

  Napi::Value JS_start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) { Napi::TypeError::New(env, "start(listeners): array expected").ThrowAsJavaScriptException(); return env.Undefined(); }
    if (engine_->running() || engine_->stopped()) { throw_coded(env, code::kNative, "start(): already started (or stopped)"); return env.Undefined(); }
    auto snap = engine_->snapshot();
    if (!snap) { throw_coded(env, code::kNative, "start() before apply()"); return env.Undefined(); }
    Napi::Array list = info[0].As<Napi::Array>();
    if (list.Length() != snap->listeners.size()) {
      throw_coded(env, code::kNative, "start(): listeners do not match the snapshot's");
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
          throw_coded(env, code::kListen, "listener " + name + " on " + a + ": " + err);
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
    size_t built = 0;
    for (size_t i = 0; snap && i < snap->contexts.size(); i++) built += snap->contexts[i]->state() == CertContext::State::Built;
    out.Set("contexts", double(snap ? snap->contexts.size() : 0));
    out.Set("contextsBuilt", double(built));
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
  CtxCache contexts_;  // JS thread (and the reader's build threads, inside apply)
  Napi::Env::CleanupHook<void (*)(Proxy*), Proxy> cleanup_;
};

}  // namespace

Napi::Function proxy_class(Napi::Env env) { return Proxy::Init(env); }

}  // namespace mf
