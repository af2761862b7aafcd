#include "event_queue.h"

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
  for (Event& e : batch) arr[i++] = to_js(env, e);
  if (dropped) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("kind", "dropped");
    o.Set("count", double(dropped));
    arr[i++] = o;
  }
  cb.Call({arr});
}

Napi::Object EventQueue::to_js(Napi::Env env, const Event& e) {
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
  rec.Set("server", r.server);
  rec.Set("serverLocal", r.server_local);
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

}  // namespace mf
