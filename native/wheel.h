// Timing wheel of 100 ms ticks: O(1) insert, remove and expiry per connection.
// Idle deadlines move lazily: a connection found early in its slot is re-slotted.
#pragma once
#include <cstdint>
#include <vector>

namespace mf {

struct WheelNode {
  void* owner = nullptr;
  WheelNode* prev = nullptr;
  WheelNode* next = nullptr;
  bool linked() const { return prev != nullptr; }
  void unlink() {
    if (!prev) return;
    prev->next = next;
    next->prev = prev;
    prev = next = nullptr;
  }
};

class TimerWheel {
 public:
  static constexpr int64_t kTickMs = 100;
  static constexpr size_t kSlots = 16384;  // 27 minutes; longer deadlines go round again

  TimerWheel() : slots_(kSlots) {
    for (auto& s : slots_) s.prev = s.next = &s;
  }

  void start(int64_t now_ms) { last_tick_ = now_ms / kTickMs; }

  void insert(WheelNode* n, int64_t deadline_ms) {
    n->unlink();
    int64_t tick = deadline_ms / kTickMs;
    if (tick <= last_tick_) tick = last_tick_ + 1;
    WheelNode& head = slots_[size_t(tick) % kSlots];
    n->prev = head.prev;
    n->next = &head;
    head.prev->next = n;
    head.prev = n;
  }

  // Calls <due>(node) for every node in the slots passed since the last call.
  // <due> must unlink the node or re-insert it.
  template <typename F>
  void advance(int64_t now_ms, F&& due) {
    int64_t tick = now_ms / kTickMs;
    size_t steps = 0;
    while (last_tick_ < tick && steps++ < kSlots) {
      last_tick_++;
      WheelNode& head = slots_[size_t(last_tick_) % kSlots];
      // Detach the slot first: re-inserted nodes must not be visited twice.
      WheelNode list;
      if (head.next == &head) continue;
      list.next = head.next;
      list.prev = head.prev;
      list.next->prev = &list;
      list.prev->next = &list;
      head.prev = head.next = &head;
      while (list.next != &list) {
        WheelNode* n = list.next;
        n->unlink();
        due(n);
      }
    }
    if (last_tick_ < tick) last_tick_ = tick;
  }

 private:
  std::vector<WheelNode> slots_;
  int64_t last_tick_ = 0;
};

}  // namespace mf
