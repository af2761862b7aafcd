// The plaintext dialog of a STARTTLS front-end before the handshake
// (IMAP RFC 9051 6.2.1, POP3 RFC 2595 4, ManageSieve RFC 5804 2.2).
// Pure: bytes in, reply bytes and a decision out; no sockets, no OpenSSL.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol.h"

namespace mf {

class PreTlsDialog {
 public:
  enum class Next : uint8_t {
    Continue,  // wait for more input
    StartTls,  // reply written: begin the handshake; every byte after the command is discarded
    Close,     // reply written: close the connection
  };

  // <capabilities> is the listener's pre-TLS capability text (see src/native.ts).
  PreTlsDialog(Proto proto, std::string_view capabilities, size_t max_line);

  std::string greeting() const;

  // Consumes <data>, appends replies to <out>. After StartTls or Close the rest
  // of <data> is ignored: plaintext pipelined after STARTTLS must never reach the
  // TLS session (CVE-2011-0411).
  Next feed(std::string_view data, std::string& out);

  // What to send when the dialog times out.
  std::string timeout_goodbye() const;

 private:
  Next on_line(std::string_view line, std::string& out);
  Next imap_command(std::string_view line, std::string& out);
  Next pop3_command(std::string_view line, std::string& out);
  Next sieve_command(std::string_view line, std::string& out);
  // A line ending in a literal announcement ({n} or {n+}): returns n, or -1.
  static int64_t trailing_literal(std::string_view line, bool& sync);

  Proto proto_;
  std::string caps_;
  size_t max_line_;
  std::string line_;          // the command so far (continuation lines joined)
  uint64_t literal_left_ = 0;  // literal octets still to skip
};

}  // namespace mf
