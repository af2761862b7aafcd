// The client socket under OpenSSL: a BIO of our own in place of OpenSSL's
// socket BIO, for three syscalls per connection it makes and we need not:
// - a read() that came back short means "drained": the socket is edge-triggered,
//   so bytes arriving later raise a new edge; no read() that can only say EAGAIN
//   (OpenSSL asks again after every record and after every flight it writes);
// - OpenSSL 3.2+ ignores read_ahead until the handshake is over and reads each
//   record as a 5-byte header, then the body: we read ahead for it;
// - small writes of one pass of the state machine (the session ticket and the
//   backend's greeting, a goodbye and a close_notify) leave in one write().
#pragma once
#include <openssl/bio.h>

#include "buffer.h"

namespace mf {

struct ClientIo {
  // Writes up to this size are held for flush() (handshake flights, tickets,
  // replies); larger ones (bulk records) go out at once, after what is held.
  static constexpr uint32_t kHoldMax = 4096;

  int fd = -1;
  BufferPool* pool = nullptr;
  // Edge-triggered readiness, cleared when a call would block (or a read came back short).
  bool readable = true, writable = true;
  // The peer's FIN (or an error) was signalled: read on to the end, as a short
  // read no longer says "drained" (the edge that announced the FIN is spent).
  bool hup = false;
  bool eof = false;
  Buf in;   // read ahead of OpenSSL's asks
  Buf out;  // small writes held until flush()
  // While counting (a handshake that may hand over to mailfront's record layer,
  // tls13_record.h): protected records (outer type application_data) written so
  // far, whole ones only, and where the stream is within the current record.
  bool counting = false;
  uint8_t header_seen = 0;
  uint8_t header[5] = {};
  uint32_t body_left = 0;
  uint32_t protected_records = 0;

  // A new BIO reading and writing through this (SSL_set_bio takes it).
  BIO* make_bio();
  // Bytes read ahead and not yet given to OpenSSL.
  bool has_input() const { return in.len > 0; }
  // Sends what writes held back; false on a socket error (errno says which).
  // What the socket does not take stays for the next flush (writable is then false).
  bool flush();
  // recv() into <p>: bytes read, 0 at EOF, -1 with errno (EAGAIN clears readable).
  int read_socket(char* p, size_t len);
  // The stream ends with a whole record (nothing half written).
  bool at_record_boundary() const { return header_seen == 0 && body_left == 0; }
  void release();
};

}  // namespace mf
