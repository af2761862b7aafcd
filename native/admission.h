// Whether a new connection from a client network may start, decided before
// any TLS work: login bans and the connection rate (NetGuard), then the
// per_client slot (ClientTable). Exempt networks skip all three.
#pragma once
#include <string>

#include "clients.h"
#include "guard.h"
#include "protocol.h"
#include "snapshot.h"

namespace mf {

enum class Admission : uint8_t { Ok, PerClient, Banned, Rate };

// Any thread. Ok (not exempt): a per_client slot of <key> is taken, released by the caller.
inline Admission admit_client(ClientTable& clients, NetGuard& guard, const std::string& key, bool exempt, int64_t now_ms,
                              const Limits& lim) {
  if (exempt) return Admission::Ok;
  switch (guard.admit(key, now_ms, lim.guard)) {
    case NetGuard::Verdict::Banned: return Admission::Banned;
    case NetGuard::Verdict::Rate: return Admission::Rate;
    case NetGuard::Verdict::Ok: break;
  }
  return clients.acquire(key, lim.per_client) ? Admission::Ok : Admission::PerClient;
}

// The protocol's goodbye to a refused client.
inline std::string refusal_text(Proto p, Admission a) {
  const char* why = a == Admission::Banned ? "Too many failed logins from your network, try again later"
                                           : "Too many connections from your network, try again later";
  switch (family(p)) {
    case ProtoFamily::Imap: return goodbye(p, "UNAVAILABLE", why);
    case ProtoFamily::Pop3: return goodbye(p, a == Admission::Banned ? "AUTH" : "SYS/TEMP", why);
    case ProtoFamily::Sieve: return goodbye(p, "TRYLATER", why);
  }
  return {};
}

// What a STARTTLS listener may say before closing a connection refused at
// accept (an implicit-TLS one can say nothing before the handshake it refuses to pay for).
inline std::string refusal_line(Proto p, Admission a) { return is_starttls(p) ? refusal_text(p, a) : std::string(); }

}  // namespace mf
