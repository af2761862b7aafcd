// The parts of a snapshot that are not certificates, read strictly from the JS
// value (src/native.ts NativeSnapshot): every field must be there with its type,
// known values only, indexes in range. Each reader throws FieldError (js_fields.h)
// naming the field's path. JS thread only.
#pragma once
#include <cstddef>
#include <vector>

#include "js_fields.h"
#include "snapshot.h"
#include "tickets.h"
#include "tls.h"

namespace mf {

// tls.minVersion, ciphers, ciphersuites, groups, recordLayer (ticketKeys: read_ticket_keys).
TlsPolicy read_tls_policy(const JsField& tls);
// tls.ticketKeys: copied, then every Buffer given is zeroed, also when one of them is refused
// (the FieldError comes after all are wiped): from then on the only copies are the data plane's.
std::vector<TicketKey> read_ticket_keys(const JsField& list);
// exact, wildcard, defaultContext (indexes below <contexts>) and unknownSni.
void read_sni_index(const JsField& js, size_t contexts, Snapshot& s);
void read_backends(const JsField& list, Snapshot& s);
// After read_backends: listeners name pools by index.
void read_listeners(const JsField& list, Snapshot& s);
Timeouts read_timeouts(const JsField& t);
Limits read_limits(const JsField& l);

}  // namespace mf
