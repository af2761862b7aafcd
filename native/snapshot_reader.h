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

// A property of <o>, or the fallback when it is missing or of another type. Not for snapshot
// fields (snapshot_fields.h reads them strictly); the Proxy's options and start() use them.
std::string str(const Napi::Object& o, const char* key);
double num(const Napi::Object& o, const char* key, double dflt);
Napi::Array arr(const Napi::Object& o, const char* key);

class CtxCache;

// Reads a snapshot (src/native.ts NativeSnapshot). Throws FieldError (js_fields.h) for a field
// it cannot take as given (snapshot_fields.h reads those that are not certificates); empty with
// <err> when OpenSSL refuses a context. Contexts come from <cache> when unchanged, else are built
// with session tickets under <tickets>. The ticket keys given go to <keys>: they are installed
// only once the snapshot is accepted (a refused snapshot must change nothing).
std::shared_ptr<Snapshot> read_snapshot(const Napi::Object& js, CtxCache& cache, const std::shared_ptr<TicketKeys>& tickets,
                                        std::vector<TicketKey>& keys, std::string& err);

}  // namespace mf
