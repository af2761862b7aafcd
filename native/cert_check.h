// The one parser of certificate/key pairs: each pair is parsed and checked here once, and the
// parsed objects go on into the SSL_CTXs (make_server_ctx) without another parse. The control
// plane (src/certs/parse.ts) reads the files, finds the PEM blocks and words the messages.
#pragma once
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mf {

// A pair that passed every check. Immutable; shared by the snapshots that serve it.
struct CheckedPair {
  X509* leaf = nullptr;
  STACK_OF(X509)* chain = nullptr;  // after the leaf, in file order
  EVP_PKEY* key = nullptr;
  std::string digest;  // SHA-256 of the PEM blocks it was read from: the context cache's key

  CheckedPair() = default;
  CheckedPair(const CheckedPair&) = delete;
  CheckedPair& operator=(const CheckedPair&) = delete;
  ~CheckedPair();
};
using CheckedPairPtr = std::shared_ptr<const CheckedPair>;

// The files of one candidate (src/certs/sources.ts Candidate), for the check threads to read
// (pem_files.h) instead of the control plane.
struct PairFiles {
  std::string cert_path;
  std::string key_path;  // equal to cert_path when <combined>
  bool combined = false;
};

// One pair's PEM blocks as the control plane found them: certificates (leaf first) and keys;
// or, with <files>, the blocks read_pair_files finds there.
struct PairInput {
  std::vector<std::string> certs;
  std::vector<std::string> keys;
  std::optional<PairFiles> files;
  ~PairInput();  // the key text is wiped
};

// What the check found. <error> empty: <pair> is set and the facts below describe the leaf.
struct CheckResult {
  // "cert-parse" (at: certificate index), "key-parse" (at: key index), "mismatch" (at: index of the
  // certificate the key belongs to, or -1), "weak" (at: 0 for the key, else certificate index),
  // "signature"; detail: OpenSSL's reason or the weak key's description.
  std::string error;
  int at = -1;
  std::string detail;
  std::string key_type;   // of the leaf's public key ("ec", "rsa", ...); for mismatch also the key's
  std::string cert_type;  // mismatch: the leaf's key type
  std::vector<std::string> san_dns;
  std::string cn;  // first CN of the subject, "" if none
  double not_before_ms = 0, not_after_ms = 0;
  std::string fingerprint256;  // "AB:CD:..."
  std::string serial;          // upper-case hex
  std::string issuer;          // one line, "C=US, O=..., CN=..."
  bool ca = false;
  bool server_auth = true;  // false when an extendedKeyUsage is present without serverAuth
  // -2: chain fine; -1: no chain after the leaf, leaf self-signed; 0: no chain, not self-signed;
  // i > 0: certificate #i+1 did not issue #i (1-based, as the message says).
  int chain = -2;
  int chain_length = 0;  // certificates in the file, leaf included
  int key_index = 0;     // which key block signs for the leaf
  // <files> were not plain (pem_files.h): nothing checked, the control plane reads them itself.
  bool unread = false;
  CheckedPairPtr pair;
};

// Checks <in> on up to a few threads (lowered priority while a data plane runs: its workers come
// first), reading the files of the inputs that name them.
// Pairs whose PEM blocks equal one of the previous call's are not parsed again. The passed pairs
// are remembered for the next call: this call's only, or with <append> (a second call of the same
// load) also those the previous call remembered.
// <stop> (cert_check_async.cc: the environment or the process is going away): once set, each
// thread ends after its current pair, the memo stays as it was and the result is empty.
using CheckResultPtr = std::shared_ptr<const CheckResult>;
std::vector<CheckResultPtr> check_pairs(std::vector<PairInput>& in, bool append = false, const std::atomic<bool>* stop = nullptr);

// Runs <work> (which takes items from a shared counter until none is left) for <items> items: on
// the calling thread when there are few, else on up to 4 threads (no more than the CPUs this
// process may use). While a data plane runs they are at nice 10, so that its workers on the same
// cores come first; before (startup, `mailfront check`) nothing waits for the cores but the load.
void run_in_background(size_t items, const std::function<void()>& work);

// Engines whose workers are running (worker.cc Engine::start/stop).
extern std::atomic<int> running_data_planes;

}  // namespace mf
