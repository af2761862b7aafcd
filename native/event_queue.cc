#include "event_queue.h"

#include <iterator>
#include <string>
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

// A connection record is made by a small JS function that takes its fields as arguments and
// returns the event as one object literal: V8 gives the literal its shape once, where
// napi_define_properties adds the 23 properties one by one through the generic path
// (about 20k instructions per record against 2k: bench/PROFILE.md, issue 17 third round).
// Compiled once per queue from the names below, so they are written in one place.
namespace {
constexpr const char* kRecordNames[] = {"listener", "protocol", "client", "server", "serverLocal", "pool", "sni",
                                        "tlsVersion", "cipher", "group", "resumed", "bytesIn", "bytesOut", "handshakeMs",
                                        "connectMs", "durationMs", "reason", "detail", "login", "user", "loginFailures"};
constexpr size_t kRecordFields = std::size(kRecordNames);

std::string record_maker_source() {
  std::string args, fields;
  for (size_t i = 0; i < kRecordFields; i++) {
    std::string v = "v" + std::to_string(i);
    args += (i ? "," : "") + v;
    fields += std::string(i ? "," : "") + kRecordNames[i] + ":" + v;
  }
  return "(function(" + args + "){return {kind:'connection',record:{" + fields + "}};})";
}
}  // namespace

Napi::Value EventQueue::connection_to_js(Napi::Env env, const ConnRecord& r, State* s) {
  if (s->make_record.IsEmpty()) {
    napi_value fn;
    NAPI_THROW_IF_FAILED(env, napi_run_script(env, Napi::String::New(env, record_maker_source()), &fn), Napi::Value());
    s->make_record = Napi::Persistent(Napi::Function(env, fn));
  }
  auto str = [&](const std::string& v) -> napi_value { return Napi::String::New(env, v); };
  auto num = [&](double v) -> napi_value { return Napi::Number::New(env, v); };
  napi_value values[] = {str(r.listener), str(r.protocol), str(r.client), str(r.server), str(r.server_local),
                         str(r.pool), str(r.sni), str(r.tls_version), str(r.cipher), str(r.group),
                         Napi::Boolean::New(env, r.resumed), num(double(r.bytes_in)), num(double(r.bytes_out)),
                         num(r.handshake_ms), num(r.connect_ms), num(r.duration_ms), str(r.reason), str(r.detail),
                         str(r.login), str(r.user), num(double(r.login_failures))};
  static_assert(std::size(values) == kRecordFields);
  return s->make_record.Value().Call(env.Undefined(), kRecordFields, values);
}

}  // namespace mf
