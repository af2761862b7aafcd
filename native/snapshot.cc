#include "snapshot.h"

namespace mf {

int Snapshot::find_context(std::string_view name) const {
  return match_name(name, [this](bool wild, std::string_view key) {
    const auto& table = wild ? wildcard : exact;
    auto it = table.find(std::string(key));
    return it == table.end() ? -1 : it->second;
  }).context;
}

int Snapshot::route(int listener, std::string_view sni) const {
  const ListenerPolicy& lp = listeners[size_t(listener)];
  if (!sni.empty()) {
    for (const Route& r : lp.routes) {
      if (r.sni[0] != '.') {
        if (r.sni == sni) return r.backend;
        continue;
      }
      // ".example.org" matches "a.example.org": exactly one more label.
      size_t dot = sni.find('.');
      if (dot != std::string_view::npos && dot > 0 && sni.substr(dot) == r.sni) return r.backend;
    }
  }
  return lp.backend;
}

}  // namespace mf
