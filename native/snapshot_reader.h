// The snapshot JS hands to apply() (src/native.ts NativeSnapshot), read into
// a Snapshot, and the small readers of JS values it (and the Proxy) use.
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "snapshot.h"
#include "tickets.h"

namespace mf {

// A property of <o>, or the fallback when it is missing or of another type.
std::string str(const Napi::Object& o, const char* key);
double num(const Napi::Object& o, const char* key, double dflt);
Napi::Object obj(const Napi::Object& o, const char* key);
Napi::Array arr(const Napi::Object& o, const char* key);

// Reads a snapshot (src/native.ts NativeSnapshot). Empty with <err> on failure.
// The ticket keys go to <keys>: they are process-wide, installed only once the
// snapshot is accepted (a refused snapshot must change nothing).
std::shared_ptr<Snapshot> read_snapshot(const Napi::Object& js, std::vector<TicketKey>& keys, std::string& err);

}  // namespace mf
