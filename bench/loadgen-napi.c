// bench/loadgen.c as a Node-API addon, so that it runs on the OpenSSL inside a Node binary
// (Node 24: OpenSSL 3.5, which has X25519MLKEM768; Debian 12's libssl 3.0 has no ML-KEM).
//
// Built by bench/Makefile (`make -C bench NODE24=DIR work/bin/loadgen-node24.node`) from loadgen.c
// with -Dmain=loadgen_main and this file, against DIR/include/node, and WITHOUT -lssl/-lcrypto:
// the OpenSSL symbols resolve from the node binary that loads the addon (as mailfront's addon's
// do), so the process has one OpenSSL. Run by bench/loadgen-node.mjs: run(argv) calls
// loadgen_main synchronously on the main thread (stdin/stdout are the process's, as for the C
// program) and returns its exit status.
#include <node_api.h>
#include <stdlib.h>
#include <string.h>

int loadgen_main(int argc, char** argv);

static napi_value run(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1], result;
  uint32_t n = 0;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_array_length(env, args[0], &n) != napi_ok || n < 1) {
    napi_throw_type_error(env, NULL, "run(argv: string[]) with argv[0] the program name");
    return NULL;
  }
  char** argv = calloc(n + 1, sizeof *argv);
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    size_t len = 0;
    if (napi_get_element(env, args[0], i, &v) != napi_ok ||
        napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
      napi_throw_type_error(env, NULL, "argv must hold strings");
      return NULL;
    }
    argv[i] = malloc(len + 1);
    napi_get_value_string_utf8(env, v, argv[i], len + 1, &len);
  }
  int rc = loadgen_main((int)n, argv);  // argv stays allocated: loadgen keeps pointers into it
  napi_create_int32(env, rc, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "run", NAPI_AUTO_LENGTH, run, NULL, &fn);
  napi_set_named_property(env, exports, "run", fn);
  return exports;
}
