#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "events.h"

namespace mf {

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
    tsfn_ = Napi::ThreadSafeFunction::New(env, cb, "mailfront-events", 0, 1, state_, [](Napi::Env, State* s) {
      s->make_record.Reset();
      delete s;
    });
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
  void push(std::vector<Event>& batch) override;

 private:
  struct State {
    std::mutex mu;
    std::deque<Event> pending;
    uint64_t dropped = 0;  // since the last delivery
    Napi::FunctionReference make_record;  // JS thread: builds a connection event from its fields
  };

  // JS thread.
  static void deliver(Napi::Env env, Napi::Function cb, State* s);
  static Napi::Value to_js(Napi::Env env, const Event& e, State* s);
  static Napi::Value connection_to_js(Napi::Env env, const ConnRecord& r, State* s);

  State* state_ = nullptr;
  Napi::ThreadSafeFunction tsfn_;
  size_t max_pending_ = kDefaultMaxPending;
  std::atomic<uint64_t> dropped_{0};

 public:
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
};

}  // namespace mf
