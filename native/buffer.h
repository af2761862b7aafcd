// Relay buffers: fixed 16 KiB chunks from a per-worker pool, held by a
// connection only while data is pending, so an idle connection holds none.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace mf {

constexpr uint32_t kChunk = 16 * 1024;

class BufferPool {
 public:
  ~BufferPool() { for (char* c : free_) std::free(c); }
  char* get() {
    if (free_.empty()) return static_cast<char*>(std::malloc(kChunk));
    char* c = free_.back();
    free_.pop_back();
    return c;
  }
  void put(char* c) {
    if (free_.size() < 256) free_.push_back(c);
    else std::free(c);
  }

 private:
  std::vector<char*> free_;
};

// A linear buffer: data lives in [off, off+len).
struct Buf {
  char* data = nullptr;
  uint32_t off = 0, len = 0;

  // Room left in all, once compacted.
  uint32_t room() const { return kChunk - len; }
  bool empty() const { return len == 0; }
  char* head() { return data + off; }
  // Where new data goes, taking a chunk from <pool> when needed; data is moved
  // to the front when less than half a chunk is left behind it.
  char* tail(BufferPool& pool) {
    if (!data) data = pool.get();
    if (off > 0 && kChunk - off - len < kChunk / 2) {
      memmove(data, data + off, len);
      off = 0;
    }
    return data + off + len;
  }
  // Contiguous room behind the data: what may be written at tail().
  uint32_t tail_room() const { return data ? kChunk - off - len : kChunk; }
  void consume(uint32_t n, BufferPool& pool) {
    off += n;
    len -= n;
    if (len == 0) release(pool);
  }
  void release(BufferPool& pool) {
    if (data) pool.put(data);
    data = nullptr;
    off = len = 0;
  }
  // Bytes [at, at + count) of the data become the <n> bytes at <p>, the rest
  // moving up behind them. Only shrinks: n <= count, at + count <= len, and <p>
  // lies outside the buffer (the greeting and capability filters of conn_relay.cc).
  void replace(uint32_t at, uint32_t count, const char* p, uint32_t n) {
    if (count == 0) return;
    char* h = head() + at;
    memmove(h + n, h + count, len - at - count);
    memcpy(h, p, n);
    len -= count - n;
  }
  bool append(const char* p, uint32_t n, BufferPool& pool) {
    if (n > room()) return false;
    char* t = tail(pool);
    if (n > tail_room()) {
      memmove(data, data + off, len);
      off = 0;
      t = data + len;
    }
    memcpy(t, p, n);
    len += n;
    return true;
  }
};

}  // namespace mf
