#include "snapshot.h"

namespace mf {

int Snapshot::find_context(std::string_view name) const {
  if (name.empty()) return -1;
  std::string key(name);
  if (auto it = exact.find(key); it != exact.end()) return it->second;
  size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0) return -1;
  key.assign(name.substr(dot + 1));
  if (auto it = wildcard.find(key); it != wildcard.end()) return it->second;
  return -1;
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
