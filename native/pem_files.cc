#include "pem_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "util.h"

namespace mf {

namespace {

// read.ts MAX_BYTES: a chain is a few KiB; a larger file is read.ts's to refuse.
constexpr off_t kMaxBytes = 1 << 20;

bool is_label(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' '; });
}

// A file's bytes, wiped when dropped (key files, combined files).
struct FileText {
  std::string bytes;
  ~FileText() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

// A regular file of at most kMaxBytes, whole; false for anything read.ts would report on or
// that is not a plain file. <holds_key>: also false when the file holds a private key and every
// user may read it (read.ts warns about that).
bool read_whole(const std::string& path, bool holds_key, FileText& out) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  struct stat st;
  if (!fd || fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxBytes) return false;
  out.bytes.resize(size_t(st.st_size) + 1);
  size_t got = 0;
  for (;;) {
    if (got == out.bytes.size()) {
      if (out.bytes.size() > size_t(kMaxBytes)) return false;  // grew while read: read.ts's case
      out.bytes.resize(out.bytes.size() * 2);
    }
    size_t want = out.bytes.size() - got;
    ssize_t n = ::read(fd.get(), out.bytes.data() + got, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    got += size_t(n);
    // All of fstat's size and not the byte more the buffer has room for: the end, without a
    // second read to hear so (20,000 syscalls for 10,000 pairs). A file that grew fills the
    // buffer and is read on; a short read before that size (FUSE, /proc) is read on too.
    if (size_t(n) < want && got == size_t(st.st_size)) break;
  }
  out.bytes.resize(got);
  if (holds_key && (st.st_mode & S_IROTH) && out.bytes.find("PRIVATE KEY-----") != std::string::npos) return false;
  return true;
}

// The bits of lineage_files for one directory, or -1.
int lineage_bits(int live_fd, const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) return -1;
  Fd dir(::openat(live_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK));
  if (!dir) return -1;
  alignas(8) char buf[4096];
  int bits = 0;
  while (bits != 3) {
    long n = syscall(SYS_getdents64, dir.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    for (long at = 0; at < n;) {
      const auto* d = reinterpret_cast<const struct dirent64*>(buf + at);
      if (std::strcmp(d->d_name, "fullchain.pem") == 0) bits |= 1;
      else if (std::strcmp(d->d_name, "privkey.pem") == 0) bits |= 2;
      at += d->d_reclen;
    }
  }
  return bits;
}

}  // namespace

std::vector<int> lineage_files(const std::string& live, const std::vector<std::string>& names) {
  std::vector<int> out(names.size(), -1);
  Fd live_fd(::open(live.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!live_fd) return out;
  std::atomic<size_t> next{0};
  run_in_background(names.size(), [&] {
    for (size_t i; (i = next.fetch_add(1)) < names.size();) out[i] = lineage_bits(live_fd.get(), names[i]);
  });
  return out;
}

bool is_key_label(std::string_view l) {
  return l == "PRIVATE KEY" || l == "RSA PRIVATE KEY" || l == "EC PRIVATE KEY" || l == "ENCRYPTED PRIVATE KEY";
}

std::vector<PemBlock> pem_blocks(std::string_view buf) {
  std::vector<PemBlock> out;
  for (size_t at = 0;;) {
    size_t begin = buf.find("-----BEGIN ", at);
    if (begin == std::string_view::npos) return out;
    size_t close = buf.find("-----", begin + 11);
    if (close == std::string_view::npos) return out;
    std::string_view label = buf.substr(begin + 11, close - begin - 11);
    size_t eol = close + 5;
    bool line_end = (eol < buf.size() && buf[eol] == '\n') || (eol + 1 < buf.size() && buf[eol] == '\r' && buf[eol + 1] == '\n');
    if (!is_label(label) || !line_end) {
      at = begin + 11;
      continue;
    }
    std::string end_line = "-----END " + std::string(label) + "-----";
    size_t end = buf.find(end_line, eol);
    if (end == std::string_view::npos) return out;
    out.push_back({label, buf.substr(begin, end + end_line.size() - begin)});
    at = end + end_line.size();
  }
}

bool read_pair_files(const PairFiles& files, PairInput& out) {
  FileText cert_text, key_text;
  if (!read_whole(files.cert_path, files.combined, cert_text)) return false;
  std::vector<PemBlock> cert_blocks = pem_blocks(cert_text.bytes);
  std::vector<PemBlock> key_blocks;
  if (files.combined) {
    key_blocks = cert_blocks;  // a combined file without a key (a companion .key) is read.ts's
  } else {
    if (!read_whole(files.key_path, true, key_text)) return false;
    key_blocks = pem_blocks(key_text.bytes);
  }
  std::erase_if(key_blocks, [](const PemBlock& b) { return !is_key_label(b.label); });
  bool has_cert = std::any_of(cert_blocks.begin(), cert_blocks.end(), [](const PemBlock& b) { return b.label == "CERTIFICATE"; });
  if (!has_cert || key_blocks.empty()) return false;
  for (const PemBlock& b : key_blocks)
    if (b.label == "ENCRYPTED PRIVATE KEY" || b.pem.find("Proc-Type: 4,ENCRYPTED") != std::string_view::npos) return false;
  for (const PemBlock& b : cert_blocks)
    if (b.label == "CERTIFICATE") out.certs.emplace_back(b.pem);
  for (const PemBlock& b : key_blocks) out.keys.emplace_back(b.pem);  // PairInput wipes these
  return true;
}

}  // namespace mf
