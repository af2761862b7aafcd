#include "key_proof.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include <memory>
#include <unordered_map>

namespace mf {

namespace {

struct BnClearFree { void operator()(BIGNUM* b) const { BN_clear_free(b); } };
struct BnCtxFree { void operator()(BN_CTX* c) const { BN_CTX_free(c); } };
struct PointFree { void operator()(EC_POINT* p) const { EC_POINT_free(p); } };
struct GroupFree { void operator()(EC_GROUP* g) const { EC_GROUP_free(g); } };
using GroupPtr = std::unique_ptr<EC_GROUP, GroupFree>;
using PointPtr = std::unique_ptr<EC_POINT, PointFree>;

// A named curve's group, built once per thread (building one precomputes tables).
const EC_GROUP* group_of(int nid) {
  thread_local std::unordered_map<int, GroupPtr> groups;
  GroupPtr& g = groups[nid];
  if (!g) g.reset(EC_GROUP_new_by_curve_name(nid));
  return g.get();
}

// 1: d·G is the certificate's point; 0: it is not; -1: cannot tell here (not an EC key on a
// named curve, or a step failed), the signature decides.
int ec_point_derives(EVP_PKEY* key, X509* cert) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return -1;
  char name[80] = "";
  size_t len = 0;
  if (EVP_PKEY_get_group_name(key, name, sizeof name, &len) != 1) return -1;
  int nid = OBJ_sn2nid(name);
  if (nid == NID_undef) nid = EC_curve_nist2nid(name);
  const EC_GROUP* g = nid == NID_undef ? nullptr : group_of(nid);
  const ASN1_BIT_STRING* bits = X509_get0_pubkey_bitstr(cert);
  if (!g || !bits) return -1;
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &raw) != 1) return -1;
  std::unique_ptr<BIGNUM, BnClearFree> d(raw);
  BN_set_flags(d.get(), BN_FLG_CONSTTIME);
  std::unique_ptr<BN_CTX, BnCtxFree> ctx(BN_CTX_new());
  PointPtr mine(EC_POINT_new(g)), theirs(EC_POINT_new(g));
  if (!ctx || !mine || !theirs || EC_POINT_mul(g, mine.get(), d.get(), nullptr, nullptr, ctx.get()) != 1 ||
      EC_POINT_oct2point(g, theirs.get(), bits->data, size_t(bits->length), ctx.get()) != 1)
    return -1;
  int cmp = EC_POINT_cmp(g, mine.get(), theirs.get(), ctx.get());
  return cmp < 0 ? -1 : cmp == 0 ? 1 : 0;
}

const unsigned char kProbe[] = "mailfront: does this key sign for its certificate?";

// One signature, checked with the certificate's public key: the pair proved the way a client will.
bool signs_for(EVP_PKEY* key, X509* cert) {
  int id = EVP_PKEY_get_base_id(key);
  const EVP_MD* md = id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448 ? nullptr : EVP_sha256();
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> s(EVP_MD_CTX_new(), EVP_MD_CTX_free), v(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned char sig[1024];
  size_t len = sizeof sig;
  EVP_PKEY* pub = X509_get0_pubkey(cert);
  return s && v && pub && EVP_PKEY_get_size(key) <= int(sizeof sig) &&
         EVP_DigestSignInit(s.get(), nullptr, md, nullptr, key) == 1 &&
         EVP_DigestSign(s.get(), sig, &len, kProbe, sizeof kProbe - 1) == 1 &&
         EVP_DigestVerifyInit(v.get(), nullptr, md, nullptr, pub) == 1 &&
         EVP_DigestVerify(v.get(), sig, len, kProbe, sizeof kProbe - 1) == 1;
}

}  // namespace

bool key_works_for(EVP_PKEY* key, X509* cert) {
  int derived = ec_point_derives(key, cert);
  bool ok = derived >= 0 ? derived == 1 : signs_for(key, cert);
  ERR_clear_error();
  return ok;
}

}  // namespace mf
