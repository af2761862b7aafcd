// Certificate generator for the certificate-store benchmark: a throwaway root + intermediate
// (ECDSA P-256) and N leaves, each with its own P-256 key and one distinct name, written as a
// certbot-shaped tree (like test/helpers/pki.ts makeLetsEncryptTree, but ~0.1 ms per leaf instead of
// ~60 ms with the openssl CLI):
//
//   gencerts --out DIR --count N [--fmt "mail.s%05d.store.test"]
//   -> DIR/ca/{root,intermediate}.pem, DIR/le/live/<name>/{cert,chain,fullchain,privkey}.pem
//      (relative symlinks to DIR/le/archive/<name>/*1.pem), live/README, renewal/<name>.conf
//
// Leaves look like Let's Encrypt's: CN = the name, SAN DNS:name, 90 days, basicConstraints
// CA:FALSE, keyUsage digitalSignature, extendedKeyUsage serverAuth, SKI + AKI.
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char* what) {
  fprintf(stderr, "gencerts: %s: ", what);
  ERR_print_errors_fp(stderr);
  fprintf(stderr, "%s\n", errno ? strerror(errno) : "");
  exit(1);
}

static void mkdirp(const char* p, mode_t m) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", p);
  for (char* s = buf + 1; *s; s++)
    if (*s == '/') { *s = 0; mkdir(buf, m); *s = '/'; }
  if (mkdir(buf, m) != 0 && errno != EEXIST) die(p);
  errno = 0;
}

static EVP_PKEY* genkey(void) {
  EVP_PKEY* k = EVP_EC_gen("P-256");
  if (!k) die("EVP_EC_gen");
  return k;
}

static void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION* ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ex) die(value);
  X509_add_ext(cert, ex, -1);
  X509_EXTENSION_free(ex);
}

static X509* make_cert(const char* cn, const char* org, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, long days, long serial_rand,
                       const char* exts[][2], int next) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  if (serial_rand) {
    unsigned char sb[12];
    RAND_bytes(sb, sizeof sb);
    sb[0] = (sb[0] & 0x3f) | 0x40;
    BIGNUM* bn = BN_bin2bn(sb, sizeof sb, NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
  } else {
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  }
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), days * 86400L);
  X509_NAME* n = X509_get_subject_name(x);
  if (org) X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char*)org, -1, -1, 0);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char*)cn, -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
  X509_set_pubkey(x, key);
  for (int i = 0; i < next; i++) add_ext(x, issuer ? issuer : x, OBJ_sn2nid(exts[i][0]), exts[i][1]);
  if (!X509_sign(x, issuer_key, EVP_sha256())) die("X509_sign");
  return x;
}

static char* pem_cert(X509* x) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char* p;
  long n = BIO_get_mem_data(b, &p);
  char* out = strndup(p, n);
  BIO_free(b);
  return out;
}

static char* pem_key(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);  // PKCS#8, like certbot
  char* p;
  long n = BIO_get_mem_data(b, &p);
  char* out = strndup(p, n);
  BIO_free(b);
  return out;
}

static void write_file(const char* path, const char* a, const char* b, mode_t mode) {
  FILE* f = fopen(path, "w");
  if (!f) die(path);
  fputs(a, f);
  if (b) fputs(b, f);
  if (fclose(f) != 0) die(path);
  chmod(path, mode);
}

int main(int argc, char** argv) {
  const char* out = NULL;
  const char* fmt = "mail.s%05d.store.test";
  long count = 10000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--out")) out = argv[i + 1];
    else if (!strcmp(argv[i], "--count")) count = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--fmt")) fmt = argv[i + 1];
    else { fprintf(stderr, "usage: gencerts --out DIR --count N [--fmt FMT]\n"); return 64; }
  }
  if (!out || count <= 0) { fprintf(stderr, "usage: gencerts --out DIR --count N [--fmt FMT]\n"); return 64; }
  char p[4096], q[4096];
  snprintf(p, sizeof p, "%s/ca", out);
  mkdirp(p, 0755);
  const char* root_ext[][2] = {{"basicConstraints", "critical,CA:TRUE"}, {"keyUsage", "critical,keyCertSign,cRLSign"},
                               {"subjectKeyIdentifier", "hash"}};
  const char* int_ext[][2] = {{"basicConstraints", "critical,CA:TRUE,pathlen:0"}, {"keyUsage", "critical,keyCertSign,cRLSign"},
                              {"subjectKeyIdentifier", "hash"}, {"authorityKeyIdentifier", "keyid:always"}};
  EVP_PKEY* rk = genkey();
  X509* root = make_cert("mailfront store bench root", "mailfront store bench", rk, NULL, rk, 3650, 0, root_ext, 3);
  EVP_PKEY* ik = genkey();
  X509* inter = make_cert("mailfront store bench intermediate", "mailfront store bench", ik, root, rk, 1825, 1, int_ext, 4);
  char* root_pem = pem_cert(root);
  char* int_pem = pem_cert(inter);
  snprintf(p, sizeof p, "%s/ca/root.pem", out);
  write_file(p, root_pem, NULL, 0644);
  snprintf(p, sizeof p, "%s/ca/intermediate.pem", out);
  write_file(p, int_pem, NULL, 0644);

  snprintf(p, sizeof p, "%s/le/live", out);
  mkdirp(p, 0700);
  snprintf(p, sizeof p, "%s/le/archive", out);
  mkdirp(p, 0700);
  snprintf(p, sizeof p, "%s/le/renewal", out);
  mkdirp(p, 0755);
  snprintf(p, sizeof p, "%s/le/live/README", out);
  write_file(p, "This directory contains your keys and certificates.\n", NULL, 0644);

  static const char* files[] = {"cert", "chain", "fullchain", "privkey"};
  for (long i = 0; i < count; i++) {
    char name[256], san[300];
    snprintf(name, sizeof name, fmt, (int)i);
    snprintf(san, sizeof san, "DNS:%s", name);
    const char* leaf_ext[][2] = {{"basicConstraints", "critical,CA:FALSE"}, {"keyUsage", "critical,digitalSignature"},
                                 {"extendedKeyUsage", "serverAuth"}, {"subjectKeyIdentifier", "hash"},
                                 {"authorityKeyIdentifier", "keyid:always"}, {"subjectAltName", san}};
    EVP_PKEY* k = genkey();
    X509* leaf = make_cert(name, NULL, k, inter, ik, 90, 1, leaf_ext, 6);
    char* cert = pem_cert(leaf);
    char* key = pem_key(k);
    snprintf(p, sizeof p, "%s/le/archive/%s", out, name);
    mkdirp(p, 0700);
    snprintf(p, sizeof p, "%s/le/live/%s", out, name);
    mkdirp(p, 0700);
    snprintf(p, sizeof p, "%s/le/archive/%s/cert1.pem", out, name);
    write_file(p, cert, NULL, 0644);
    snprintf(p, sizeof p, "%s/le/archive/%s/chain1.pem", out, name);
    write_file(p, int_pem, NULL, 0644);
    snprintf(p, sizeof p, "%s/le/archive/%s/fullchain1.pem", out, name);
    write_file(p, cert, int_pem, 0644);
    snprintf(p, sizeof p, "%s/le/archive/%s/privkey1.pem", out, name);
    write_file(p, key, NULL, 0600);
    for (int f = 0; f < 4; f++) {
      snprintf(p, sizeof p, "%s/le/live/%s/%s.pem", out, name, files[f]);
      snprintf(q, sizeof q, "../../archive/%s/%s1.pem", name, files[f]);
      unlink(p);
      if (symlink(q, p) != 0) die(p);
    }
    snprintf(p, sizeof p, "%s/le/live/%s/README", out, name);
    write_file(p, "certbot README\n", NULL, 0644);
    snprintf(p, sizeof p, "%s/le/renewal/%s.conf", out, name);
    write_file(p, "# renew_before_expiry = 30 days\nversion = 2.0.0\n", NULL, 0644);
    free(cert);
    free(key);
    X509_free(leaf);
    EVP_PKEY_free(k);
  }
  fprintf(stderr, "gencerts: %ld leaves in %s/le\n", count, out);
  return 0;
}
