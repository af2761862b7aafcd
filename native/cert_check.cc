#include "cert_check.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/decoder.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "key_proof.h"
#include "pem_files.h"
#include "util.h"

namespace mf {

CheckedPair::~CheckedPair() {
  X509_free(leaf);
  sk_X509_pop_free(chain, X509_free);
  EVP_PKEY_free(key);
}

PairInput::~PairInput() {
  for (std::string& k : keys) OPENSSL_cleanse(k.data(), k.size());
}

namespace {

struct BioFree { void operator()(BIO* b) const { BIO_free(b); } };
struct X509Free { void operator()(X509* x) const { X509_free(x); } };
struct PkeyFree { void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); } };
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

X509* parse_cert(const std::string& pem) {
  std::unique_ptr<BIO, BioFree> b(BIO_new_mem_buf(pem.data(), int(pem.size())));
  return PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr);
}

// Thousands of Let's Encrypt lineages repeat the same intermediate (and root): each is parsed once
// per thread and shared (X509 is reference counted), and an issuer check between two of them
// (intermediate by root) is done once.
class ChainCache {
 public:
  // A new reference to the parsed certificate of <pem> (one PEM block), or null.
  X509* get(const std::string& pem) {
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->first == pem) {
        entries_.splice(entries_.begin(), entries_, it);
        X509_up_ref(it->second.get());
        return it->second.get();
      }
    X509* x = parse_cert(pem);
    if (!x) return nullptr;
    entries_.emplace_front(pem, X509Ptr(x));
    if (entries_.size() > kMax) {
      entries_.pop_back();
      issued_.clear();  // its pointer may come back for another certificate
    }
    X509_up_ref(x);
    return x;
  }
  bool held(const X509* x) const {
    return std::any_of(entries_.begin(), entries_.end(), [x](const auto& e) { return e.second.get() == x; });
  }
  // Did <parent> issue <child> (names and signature)? Remembered when both are held here.
  bool issued(X509* parent, X509* child) {
    bool both = held(parent) && held(child);
    if (both)
      for (const auto& [p, c, ok] : issued_)
        if (p == parent && c == child) return ok;
    EVP_PKEY* pub = X509_get0_pubkey(parent);
    bool ok = X509_check_issued(parent, child) == X509_V_OK && pub && X509_verify(child, pub) > 0;
    ERR_clear_error();
    if (both) issued_.push_back({parent, child, ok});
    return ok;
  }

 private:
  static constexpr size_t kMax = 8;  // a few intermediates (e.g. Let's Encrypt's R10/R11, E5/E6)
  std::list<std::pair<std::string, X509Ptr>> entries_;
  struct Issued { X509* parent; X509* child; bool ok; };
  std::vector<Issued> issued_;
};

// OpenSSL 3.0 builds a fresh decoder context for every PEM_read_bio_PrivateKey (~0.1-0.3 ms of
// name-map look-ups under a lock): one per thread, reused; PEM_read_bio_PrivateKey as the fallback.
struct DecoderFree { void operator()(OSSL_DECODER_CTX* d) const { OSSL_DECODER_CTX_free(d); } };
class KeyDecoder {
 public:
  EVP_PKEY* decode(const std::string& pem) {
    if (!dctx_) {
      dctx_.reset(OSSL_DECODER_CTX_new_for_pkey(&out_, "PEM", nullptr, nullptr, EVP_PKEY_KEYPAIR, nullptr, nullptr));
      if (!dctx_) { ERR_clear_error(); return slow(pem); }
    }
    out_ = nullptr;
    const unsigned char* data = reinterpret_cast<const unsigned char*>(pem.data());
    size_t len = pem.size();
    if (OSSL_DECODER_from_data(dctx_.get(), &data, &len) == 1 && out_) return std::exchange(out_, nullptr);
    EVP_PKEY_free(std::exchange(out_, nullptr));
    ERR_clear_error();
    return slow(pem);
  }

 private:
  // No passphrase callback: OpenSSL's default would prompt on the terminal. Encrypted keys are
  // refused by the control plane before they get here.
  static int no_passphrase(char*, int, int, void*) { return -1; }
  static EVP_PKEY* slow(const std::string& pem) {
    std::unique_ptr<BIO, BioFree> b(BIO_new_mem_buf(pem.data(), int(pem.size())));
    return PEM_read_bio_PrivateKey(b.get(), nullptr, no_passphrase, nullptr);
  }
  EVP_PKEY* out_ = nullptr;
  std::unique_ptr<OSSL_DECODER_CTX, DecoderFree> dctx_;
};

std::string key_type(const EVP_PKEY* k) {
  if (!k) return "unknown";
  switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_EC: return "ec";
    case EVP_PKEY_RSA: return "rsa";
    case EVP_PKEY_RSA_PSS: return "rsa-pss";
    case EVP_PKEY_ED25519: return "ed25519";
    case EVP_PKEY_ED448: return "ed448";
    case EVP_PKEY_DSA: return "dsa";
    default: {
      const char* n = EVP_PKEY_get0_type_name(k);
      return n ? n : "unknown";
    }
  }
}

// A key OpenSSL refuses at security level 2 (tls.h kSecurityLevel: 112-bit), described for the
// message; "" when strong enough.
std::string weak_key(const EVP_PKEY* k) {
  if (!k || EVP_PKEY_get_security_bits(k) >= 112) return "";
  std::string type = key_type(k);
  int bits = EVP_PKEY_get_bits(k);
  if (type == "ec") {
    char group[64] = "";
    size_t n = 0;
    EVP_PKEY_get_group_name(k, group, sizeof group, &n);
    return "EC on " + std::string(group) + "; a curve of 224 bits or more needed";
  }
  if (type == "rsa" || type == "rsa-pss" || type == "dsa") {
    for (char& c : type) c = char(toupper(c));
    return type + ", " + std::to_string(bits) + " bits; 2048 or more needed";
  }
  return type + ", " + std::to_string(EVP_PKEY_get_security_bits(k)) + "-bit security; 112 or more needed";
}

// A certificate signed with a digest under 112 bits (SHA-1, MD5), described; "" otherwise.
// OpenSSL 3.0 refuses such a chain when the context is built ("md too weak"), 3.5 loads it:
// the rule is kept here so that every runtime refuses the same pairs. A self-signed root's
// own signature is not checked by anyone, so it is not judged.
std::string weak_signature(X509* x) {
  if (X509_get_extension_flags(x) & EXFLAG_SS) return "";
  int mdnid = NID_undef, secbits = -1;
  uint32_t flags = 0;
  if (!X509_get_signature_info(x, &mdnid, nullptr, &secbits, &flags) || secbits < 0 || secbits >= 112) return "";
  const char* md = mdnid != NID_undef ? OBJ_nid2sn(mdnid) : "an unknown digest";
  return std::string("signed with ") + md + ", " + std::to_string(secbits) + "-bit security; 112 or more needed";
}

double time_ms(const ASN1_TIME* t) {
  struct tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return double(timegm(&tm)) * 1000;
}

std::string utf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  int n = ASN1_STRING_to_UTF8(&out, s);
  if (n < 0) { ERR_clear_error(); return ""; }
  std::string r(reinterpret_cast<char*>(out), size_t(n));
  OPENSSL_free(out);
  return r;
}

void describe_leaf(X509* leaf, CheckResult& r) {
  if (auto* san = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(san); i++) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(san, i);
      if (g->type == GEN_DNS) {
        const ASN1_IA5STRING* s = g->d.dNSName;
        r.san_dns.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), size_t(ASN1_STRING_length(s)));
      }
    }
    GENERAL_NAMES_free(san);
  }
  const X509_NAME* subject = X509_get_subject_name(leaf);
  int cn = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (cn >= 0) r.cn = utf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, cn)));
  r.not_before_ms = time_ms(X509_get0_notBefore(leaf));
  r.not_after_ms = time_ms(X509_get0_notAfter(leaf));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(leaf, EVP_sha256(), md, &n) == 1) {
    static const char hex[] = "0123456789ABCDEF";
    for (unsigned i = 0; i < n; i++) {
      if (i) r.fingerprint256 += ':';
      r.fingerprint256 += hex[md[i] >> 4];
      r.fingerprint256 += hex[md[i] & 15];
    }
  }
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), nullptr)) {
    if (char* h = BN_bn2hex(bn)) { r.serial = h; OPENSSL_free(h); }
    BN_free(bn);
  }
  std::unique_ptr<BIO, BioFree> b(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(b.get(), X509_get_issuer_name(leaf), 0,
                     ASN1_STRFLGS_ESC_2253 | ASN1_STRFLGS_ESC_CTRL | ASN1_STRFLGS_UTF8_CONVERT | XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_FN_SN);
  char* p = nullptr;
  long len = BIO_get_mem_data(b.get(), &p);
  if (len > 0) r.issuer.assign(p, size_t(len));
  r.ca = X509_check_ca(leaf) == 1;
  if (X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE) r.server_auth = (X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER) != 0;
  ERR_clear_error();
}

thread_local ChainCache chain_cache;
thread_local KeyDecoder key_decoder;

CheckResult check_one(const PairInput& in) {
  CheckResult r;
  auto fail = [&](const char* what, int at, std::string detail = {}) {
    r.error = what;
    r.at = at;
    r.detail = std::move(detail);
    ERR_clear_error();
    return std::move(r);
  };
  auto pair = std::make_shared<CheckedPair>();
  r.chain_length = int(in.certs.size());
  for (size_t i = 0; i < in.certs.size(); i++) {
    X509* x = i == 0 ? parse_cert(in.certs[i]) : chain_cache.get(in.certs[i]);
    if (!x) return fail("cert-parse", int(i), take_ssl_error());
    if (i == 0) pair->leaf = x;
    else {
      if (!pair->chain) pair->chain = sk_X509_new_null();
      sk_X509_push(pair->chain, x);
    }
  }
  if (!pair->leaf) return fail("cert-parse", 0, "no certificate");
  std::vector<PkeyPtr> keys;
  for (size_t i = 0; i < in.keys.size(); i++) {
    EVP_PKEY* k = key_decoder.decode(in.keys[i]);
    if (!k) return fail("key-parse", int(i), take_ssl_error());
    keys.emplace_back(k);
  }
  if (keys.empty()) return fail("key-parse", 0, "no key");
  X509* leaf = pair->leaf;
  int chosen = -1;
  for (size_t i = 0; i < keys.size() && chosen < 0; i++)
    if (X509_check_private_key(leaf, keys[i].get()) == 1) chosen = int(i);
  ERR_clear_error();
  if (chosen < 0) {
    int other = -1;
    for (int i = 0; pair->chain && i < sk_X509_num(pair->chain) && other < 0; i++)
      for (const PkeyPtr& k : keys)
        if (X509_check_private_key(sk_X509_value(pair->chain, i), k.get()) == 1) { other = i + 1; break; }
    r.key_type = key_type(keys[0].get());
    r.cert_type = key_type(X509_get0_pubkey(leaf));
    return fail("mismatch", other);
  }
  EVP_PKEY* key = keys[size_t(chosen)].get();
  std::string weak = weak_key(key);
  if (!weak.empty()) return fail("weak", 0, weak);
  for (int i = 0; pair->chain && i < sk_X509_num(pair->chain); i++) {
    weak = weak_key(X509_get0_pubkey(sk_X509_value(pair->chain, i)));
    if (!weak.empty()) return fail("weak", i + 1, weak);
  }
  weak = weak_signature(leaf);
  if (!weak.empty()) return fail("weak-signature", 0, weak);
  for (int i = 0; pair->chain && i < sk_X509_num(pair->chain); i++) {
    weak = weak_signature(sk_X509_value(pair->chain, i));
    if (!weak.empty()) return fail("weak-signature", i + 1, weak);
  }
  if (!key_works_for(key, leaf)) return fail("signature", 0);
  describe_leaf(leaf, r);
  r.key_type = key_type(X509_get0_pubkey(leaf));
  r.key_index = chosen;
  int n = pair->chain ? sk_X509_num(pair->chain) : 0;
  if (n == 0) {
    r.chain = chain_cache.issued(leaf, leaf) ? -1 : 0;
  } else {
    X509* child = leaf;
    for (int i = 0; i < n; i++) {
      X509* parent = sk_X509_value(pair->chain, i);
      if (!chain_cache.issued(parent, child)) { r.chain = i + 1; break; }
      child = parent;
    }
  }
  pair->key = keys[size_t(chosen)].release();
  ERR_clear_error();
  r.pair = std::move(pair);
  return r;
}

std::string digest_of(const PairInput& in) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  bool ok = md && EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) == 1;
  auto add = [&](const std::string& v) {
    uint64_t len = v.size();
    ok = ok && EVP_DigestUpdate(md.get(), &len, sizeof len) == 1 && EVP_DigestUpdate(md.get(), v.data(), v.size()) == 1;
  };
  for (const auto& c : in.certs) add(c);
  add("--");  // certificates and keys kept apart
  for (const auto& k : in.keys) add(k);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!ok || EVP_DigestFinal_ex(md.get(), out, &n) != 1) { ERR_clear_error(); return {}; }
  return std::string(reinterpret_cast<char*>(out), n);
}

// The previous call's passed pairs by digest: a reload of thousands of unchanged files parses
// nothing again. Holds only what the newest call returned.
std::mutex previous_mu;
std::unordered_map<std::string, CheckResultPtr> previous;

unsigned usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

std::atomic<int> running_data_planes{0};

void run_in_background(size_t items, const std::function<void()>& work) {
  size_t n = items < 256 ? 0 : std::min<size_t>({usable_cpus(), 4, (items + 255) / 256});
  if (n == 0) return work();
  bool yield = running_data_planes.load() > 0;
  std::vector<std::thread> threads;
  for (size_t t = 0; t < n; t++)
    threads.emplace_back([&] {
      if (yield) setpriority(PRIO_PROCESS, pid_t(syscall(SYS_gettid)), 10);
      work();
    });
  for (auto& t : threads) t.join();
}

std::vector<CheckResultPtr> check_pairs(std::vector<PairInput>& in, bool append, const std::atomic<bool>* stop) {
  static const CheckResultPtr unread = [] {
    auto r = std::make_shared<CheckResult>();
    r->unread = true;
    return r;
  }();
  std::vector<CheckResultPtr> out(in.size());
  std::vector<std::string> digests(in.size());
  std::unordered_map<std::string, CheckResultPtr> before;
  {
    std::lock_guard<std::mutex> lock(previous_mu);
    before.swap(previous);
  }
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < in.size();) {
      if (stop && stop->load(std::memory_order_relaxed)) return;
      if (in[i].files && !read_pair_files(*in[i].files, in[i])) { out[i] = unread; continue; }
      digests[i] = digest_of(in[i]);
      auto hit = digests[i].empty() ? before.end() : before.find(digests[i]);
      if (hit != before.end()) { out[i] = hit->second; continue; }
      auto r = std::make_shared<CheckResult>(check_one(in[i]));
      if (r->pair) const_cast<CheckedPair&>(*r->pair).digest = digests[i];
      out[i] = std::move(r);
    }
  };
  run_in_background(in.size(), work);
  if (stop && stop->load()) {
    std::lock_guard<std::mutex> lock(previous_mu);
    previous.merge(before);
    return {};
  }
  // Shared, not copied: this runs on the JS thread after the others, 10,000 results at a load.
  std::unordered_map<std::string, CheckResultPtr> keep;
  keep.reserve(in.size());
  for (size_t i = 0; i < in.size(); i++)
    if (out[i]->pair && !digests[i].empty()) keep.emplace(std::move(digests[i]), out[i]);
  if (append) keep.merge(before);
  {
    std::lock_guard<std::mutex> lock(previous_mu);
    previous.swap(keep);
  }
  return out;
}

}  // namespace mf
