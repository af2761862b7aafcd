#include "pem_files.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

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
    ssize_t n = ::read(fd.get(), out.bytes.data() + got, out.bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    got += size_t(n);
  }
  out.bytes.resize(got);
  if (holds_key && (st.st_mode & S_IROTH) && out.bytes.find("PRIVATE KEY-----") != std::string::npos) return false;
  return true;
}

}  // namespace

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
