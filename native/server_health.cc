#include "server_health.h"

#include "snapshot.h"

namespace mf {

void ServerHealthTable::attach(Snapshot& snap) {
  std::unordered_map<std::string, std::shared_ptr<ServerHealth>> next;
  for (auto& b : snap.backends) {
    b->health.clear();
    for (const SockAddr& addr : b->servers) {
      std::string key = format_addr(addr);
      auto& entry = next[key];
      if (!entry) {
        auto old = by_address_.find(key);
        entry = old != by_address_.end() ? old->second : std::make_shared<ServerHealth>();
      }
      b->health.push_back(entry);
    }
  }
  by_address_.swap(next);
}

}  // namespace mf
