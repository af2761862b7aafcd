// The listener protocols and their fixed texts (greetings, goodbyes).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace mf {

enum class Proto : uint8_t { Imaps, Pop3s, Imap, Pop3, ManageSieve };

inline bool parse_proto(std::string_view s, Proto& out) {
  if (s == "imaps") out = Proto::Imaps;
  else if (s == "pop3s") out = Proto::Pop3s;
  else if (s == "imap") out = Proto::Imap;
  else if (s == "pop3") out = Proto::Pop3;
  else if (s == "managesieve") out = Proto::ManageSieve;
  else return false;
  return true;
}

inline const char* proto_name(Proto p) {
  switch (p) {
    case Proto::Imaps: return "imaps";
    case Proto::Pop3s: return "pop3s";
    case Proto::Imap: return "imap";
    case Proto::Pop3: return "pop3";
    case Proto::ManageSieve: return "managesieve";
  }
  return "?";
}

// STARTTLS front-ends speak a plaintext dialog before the handshake.
inline bool is_starttls(Proto p) { return p == Proto::Imap || p == Proto::Pop3 || p == Proto::ManageSieve; }

enum class ProtoFamily : uint8_t { Imap, Pop3, Sieve };
inline ProtoFamily family(Proto p) {
  if (p == Proto::Imaps || p == Proto::Imap) return ProtoFamily::Imap;
  if (p == Proto::Pop3s || p == Proto::Pop3) return ProtoFamily::Pop3;
  return ProtoFamily::Sieve;
}

// The protocol's own way to say goodbye, with a reason; <why> is plain ASCII without quotes.
inline std::string goodbye(Proto p, std::string_view code, std::string_view why) {
  switch (family(p)) {
    case ProtoFamily::Imap:
      return "* BYE " + (code.empty() ? std::string() : "[" + std::string(code) + "] ") + std::string(why) + "\r\n";
    case ProtoFamily::Pop3:
      return "-ERR " + (code.empty() ? std::string() : "[" + std::string(code) + "] ") + std::string(why) + "\r\n";
    case ProtoFamily::Sieve:
      return "BYE " + (code.empty() ? std::string() : "(" + std::string(code) + ") ") + "\"" + std::string(why) + "\"\r\n";
  }
  return {};
}

inline std::string backend_unavailable(Proto p) {
  switch (family(p)) {
    case ProtoFamily::Imap: return goodbye(p, "UNAVAILABLE", "Mail server unavailable, try again later");
    case ProtoFamily::Pop3: return goodbye(p, "SYS/TEMP", "Mail server unavailable, try again later");
    case ProtoFamily::Sieve: return goodbye(p, "TRYLATER", "Sieve server unavailable, try again later");
  }
  return {};
}

// On stop(): each protocol's own "temporary, come back later" code (IMAP RFC 5530
// UNAVAILABLE, POP3 RFC 3206 SYS/TEMP, ManageSieve RFC 5804 TRYLATER).
inline std::string shutdown_goodbye(Proto p) {
  switch (family(p)) {
    case ProtoFamily::Imap: return goodbye(p, "UNAVAILABLE", "Server shutting down");
    case ProtoFamily::Pop3: return goodbye(p, "SYS/TEMP", "Server shutting down");
    case ProtoFamily::Sieve: return goodbye(p, "TRYLATER", "Server shutting down");
  }
  return {};
}

}  // namespace mf
