#include "event_queue.h"

#include <iterator>
#include <utility>

#include "login.h"

namespace mf {

// Any thread.
void EventQueue::push(std::vector<Event>& batch) {
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

// JS thread.
void EventQueue::deliver(Napi::Env env, Napi::Function cb, State* s) {
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
  for (Event& e : batch) arr[i++] = to_js(env, e, s);
  if (dropped) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("kind", "dropped");
    o.Set("count", double(dropped));
    arr[i++] = o;
  }
  cb.Call({arr});
}

Napi::Value EventQueue::to_js(Napi::Env env, const Event& e, State* s) {
  if (e.kind == Event::Kind::Connection) return connection_to_js(env, e.record, s);
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
  }
  return o;
}

// The record's property names, made once per queue: a name passed as a C string
// costs V8 a string-table look-up on every Set, 23 per record. With the names at
// hand the object is made in one napi_define_properties call.
namespace {
constexpr const char* kRecordNames[] = {"listener", "protocol", "client", "server", "serverLocal", "pool", "sni",
                                        "tlsVersion", "cipher", "group", "resumed", "bytesIn", "bytesOut", "handshakeMs",
                                        "connectMs", "durationMs", "reason", "detail", "login", "user", "loginFailures",
                                        "kind", "record"};
constexpr size_t kRecordFields = std::size(kRecordNames) - 2;  // the last two name the wrapper's fields
}  // namespace

Napi::Value EventQueue::connection_to_js(Napi::Env env, const ConnRecord& r, State* s) {
  if (s->names.IsEmpty()) {
    Napi::Array names = Napi::Array::New(env, std::size(kRecordNames));
    for (uint32_t i = 0; i < std::size(kRecordNames); i++) names[i] = Napi::String::New(env, kRecordNames[i]);
    s->names = Napi::Persistent(names);
  }
  Napi::Array names = s->names.Value();
  auto str = [&](const std::string& v) -> napi_value { return Napi::String::New(env, v); };
  auto num = [&](double v) -> napi_value { return Napi::Number::New(env, v); };
  napi_value values[] = {str(r.listener), str(r.protocol), str(r.client), str(r.server), str(r.server_local),
                         str(r.pool), str(r.sni), str(r.tls_version), str(r.cipher), str(r.group),
                         Napi::Boolean::New(env, r.resumed), num(double(r.bytes_in)), num(double(r.bytes_out)),
                         num(r.handshake_ms), num(r.connect_ms), num(r.duration_ms), str(r.reason), str(r.detail),
                         str(r.login), str(r.user), num(double(r.login_failures))};
  static_assert(std::size(values) == kRecordFields);
  auto make = [&](const napi_value* vals, uint32_t first, size_t n) {
    napi_property_descriptor d[kRecordFields];
    for (size_t i = 0; i < n; i++) d[i] = {nullptr, names.Get(uint32_t(first + i)), nullptr, nullptr, nullptr, vals[i], napi_default_jsproperty, nullptr};
    Napi::Object o = Napi::Object::New(env);
    NAPI_THROW_IF_FAILED(env, napi_define_properties(env, o, n, d), Napi::Object());
    return o;
  };
  Napi::Object rec = make(values, 0, kRecordFields);
  napi_value wrapper[] = {Napi::String::New(env, "connection"), rec};
  return make(wrapper, kRecordFields, 2);
}

}  // namespace mf
