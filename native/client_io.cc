#include "client_io.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mf {

namespace {

constexpr uint32_t kHoldMax = ClientIo::kHoldMax;
// Asks for at least this many bytes (read_ahead in force) go straight into
// OpenSSL's buffer; smaller ones (a record header) are served from ours.
constexpr int kDirectRead = 4096;

ClientIo& io_of(BIO* b) { return *static_cast<ClientIo*>(BIO_get_data(b)); }

int recv_some(ClientIo& io, char* p, size_t len) {
  for (;;) {
    ssize_t n = ::recv(io.fd, p, len, 0);
    if (n > 0) {
      if (size_t(n) < len && !io.hup) io.readable = false;
      return int(n);
    }
    if (n == 0) {
      io.eof = true;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) io.readable = false;
    return -1;
  }
}

int send_some(ClientIo& io, const char* p, size_t len) {
  for (;;) {
    ssize_t n = ::send(io.fd, p, len, MSG_NOSIGNAL);
    if (n >= 0) return int(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) io.writable = false;
    return -1;
  }
}

int io_read(BIO* b, char* out, int len) {
  ClientIo& io = io_of(b);
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (io.in.len == 0) {
    if (io.eof) return 0;
    if (!io.readable) {
      BIO_set_retry_read(b);
      return -1;
    }
    if (len >= kDirectRead) {
      int n = recv_some(io, out, size_t(len));
      if (n < 0 && errno == EAGAIN) BIO_set_retry_read(b);
      return n;
    }
    int n = recv_some(io, io.in.tail(*io.pool), io.in.tail_room());
    if (n <= 0) {
      int saved = errno;
      io.in.release(*io.pool);
      errno = saved;
      if (n < 0 && errno == EAGAIN) BIO_set_retry_read(b);
      return n;
    }
    io.in.len += uint32_t(n);
  }
  uint32_t take = std::min(uint32_t(len), io.in.len);
  memcpy(out, io.in.head(), take);
  io.in.consume(take, *io.pool);
  return int(take);
}

// Counts the protected records in what OpenSSL wrote (<p, n>, accepted by the
// socket or held): headers may arrive split across writes.
void count_records(ClientIo& io, const char* p, size_t n) {
  while (n > 0) {
    if (io.body_left > 0) {
      size_t skip = std::min<size_t>(n, io.body_left);
      io.body_left -= uint32_t(skip);
      p += skip;
      n -= skip;
      if (io.body_left == 0 && io.header[0] == 23) io.protected_records++;
      continue;
    }
    io.header[io.header_seen++] = uint8_t(*p++);
    n--;
    if (io.header_seen < 5) continue;
    io.header_seen = 0;
    io.body_left = uint32_t(io.header[3]) << 8 | io.header[4];
    if (io.body_left == 0 && io.header[0] == 23) io.protected_records++;
  }
}

int io_write_some(BIO* b, const char* data, int len) {
  ClientIo& io = io_of(b);
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (uint32_t(len) <= kHoldMax && uint32_t(len) <= io.out.room()) {
    io.out.append(data, uint32_t(len), *io.pool);
    return len;
  }
  if (io.out.len > 0) {
    if (!io.flush()) return -1;
    if (io.out.len > 0) {
      BIO_set_retry_write(b);
      return -1;
    }
  }
  if (!io.writable) {
    BIO_set_retry_write(b);
    return -1;
  }
  int n = send_some(io, data, size_t(len));
  if (n < 0 && errno == EAGAIN) BIO_set_retry_write(b);
  return n;
}

int io_write(BIO* b, const char* data, int len) {
  int n = io_write_some(b, data, len);
  if (n > 0 && io_of(b).counting) count_records(io_of(b), data, size_t(n));
  return n;
}

long io_ctrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;  // held writes leave at the end of the pass (Conn::advance)
    case BIO_CTRL_EOF: return io_of(b).eof ? 1 : 0;
    case BIO_CTRL_PENDING: return long(io_of(b).in.len);
    case BIO_CTRL_WPENDING: return long(io_of(b).out.len);
    default: return 0;
  }
}

int io_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD* method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* x = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mailfront client socket");
    BIO_meth_set_read(x, io_read);
    BIO_meth_set_write(x, io_write);
    BIO_meth_set_ctrl(x, io_ctrl);
    BIO_meth_set_create(x, io_create);
    return x;
  }();
  return m;
}

}  // namespace

BIO* ClientIo::make_bio() {
  BIO* b = BIO_new(method());
  if (b) BIO_set_data(b, this);
  return b;
}

int ClientIo::read_socket(char* p, size_t len) { return recv_some(*this, p, len); }

bool ClientIo::flush() {
  while (out.len > 0 && writable) {
    int n = send_some(*this, out.head(), out.len);
    if (n < 0) return errno == EAGAIN;
    out.consume(uint32_t(n), *pool);
  }
  return true;
}

void ClientIo::release() {
  if (!pool) return;
  in.release(*pool);
  out.release(*pool);
}

}  // namespace mf
