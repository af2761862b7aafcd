// Login outcomes seen in the plaintext after TLS: IMAP LOGIN and AUTHENTICATE
// (SASL-IR, continuations, literals, pipelining), POP3 USER/PASS, APOP and AUTH,
// ManageSieve AUTHENTICATE. Pure: bytes of both directions in, outcomes out.
//
// Passwords and SASL payloads are never kept: a line or literal that may hold
// one is wiped as soon as it is parsed; only a user name leaves the parser.
// Watching ends at a successful login (what follows may be compressed, and is
// none of our business), at PREAUTH, or when <bound> bytes pass without an
// outcome; the owner then drops the parser and relays as before.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol.h"

namespace mf {

struct LoginOutcome {
  enum class Result : uint8_t { Success, Failure, Error };  // OK / NO (-ERR) / BAD (BYE)
  Result result;
  std::string user;  // printable, at most kMaxUser bytes; "" when the exchange does not show it
  std::string mech;  // "LOGIN" (IMAP command), "USER", "APOP", or the SASL mechanism
};

const char* login_result_name(LoginOutcome::Result r);

class LoginWatch {
 public:
  enum class State : uint8_t { Watching, Authenticated, Bound };
  static constexpr size_t kMaxUser = 128;
  static constexpr size_t kDefaultBound = 64 * 1024;

  LoginWatch(ProtoFamily family, size_t bound = kDefaultBound);
  ~LoginWatch();
  LoginWatch(const LoginWatch&) = delete;
  LoginWatch& operator=(const LoginWatch&) = delete;

  // Client -> backend plaintext, in order. Outcomes are appended to <out>.
  void client(std::string_view data, std::vector<LoginOutcome>& out);
  // Backend -> client, from the backend's first byte (its greeting included).
  void server(std::string_view data, std::vector<LoginOutcome>& out);

  State state() const { return state_; }
  bool watching() const { return state_ == State::Watching; }

 private:
  // One direction split into lines; a line ending in {n} or {n+} is followed
  // by n literal octets (IMAP, ManageSieve). The start of each line is kept
  // (bounded), and the last bytes to find a literal announcement.
  struct Lines {
    std::string head;        // first <cap> bytes of the current line segment
    size_t cap = 0;
    size_t len = 0;          // bytes of the segment so far
    char tail[24] = {};      // last bytes of the segment (literal announcement)
    size_t tail_n = 0;
    uint64_t literal_left = 0;
    uint64_t literal_done = 0;  // octets of the current literal read so far
    bool in_literal = false;
    bool continued = false;  // this segment continues a line after a literal
    bool literals = false;   // the protocol has literals
    size_t capture_max = 0;  // literal octets to keep (0: skip them unread)
    std::string literal;     // kept literal octets
    void append(const char* p, size_t n);
    void reset_segment();
    void wipe();
  };
  struct Pending {
    enum class Kind : uint8_t { Greeting, Other, Login, Auth, User, Pass, Apop } kind;
    std::string tag;   // IMAP only
    std::string user;
    std::string mech;
    bool multiline = false;  // POP3: a +OK answer carries lines up to "."
    uint8_t step = 0;        // client SASL payloads so far (the initial response counts)
    bool asked_user = false; // the last challenge asked for a user name (LOGIN mechanism)
  };

  template <class OnSegment, class OnLiteral>
  void scan(Lines& L, std::string_view data, OnSegment seg, OnLiteral lit);
  bool client_segment(std::string_view line, bool literal_follows, bool sync);
  void client_literal_done();
  bool server_segment(std::string_view line, bool literal_follows, std::vector<LoginOutcome>& out);
  void server_response(std::string_view line, std::vector<LoginOutcome>& out);
  void challenge(std::string_view text);
  void imap_command(std::string_view line);
  void pop3_command(std::string_view line);
  void sieve_command(std::string_view line);
  void sasl_response(std::string_view payload);
  void finish(Pending& p, LoginOutcome::Result r, std::vector<LoginOutcome>& out);
  void push(Pending p);
  void stop(State why);
  Pending* auth_pending();

  ProtoFamily family_;
  size_t bound_, since_outcome_ = 0;
  State state_ = State::Watching;
  Lines c_, s_;
  // Commands awaiting their answer, oldest first (at most kMaxPending). A vector, not a
  // deque: libstdc++'s deque allocates ~580 bytes at construction, which every connection
  // that has not logged in yet would hold while idle.
  std::vector<Pending> pending_;
  std::string last_user_;        // POP3 USER
  // The line of a client command, across literals (IMAP LOGIN user as a literal,
  // ManageSieve AUTHENTICATE initial response as a literal).
  std::string cmd_;
  std::string cmd_lit_;          // the one literal of cmd_ kept (marker \x01)
  size_t cmd_literals_ = 0;
  bool cmd_keep_ = false;        // keep the literal being read
  bool cmd_sasl_ = false;        // the current client line is a SASL response
  uint32_t literal_waits_ = 0;   // IMAP synchronizing literals awaiting "+"
  uint32_t sasl_continues_ = 0;  // server challenges not answered yet
  bool s_in_multiline_ = false;  // POP3: inside a multi-line +OK answer
};

}  // namespace mf
