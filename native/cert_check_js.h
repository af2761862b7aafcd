// The addon's side of cert_check.h: the JS function and the handles it returns.
#pragma once
#include <napi.h>

#include "cert_check.h"

namespace mf {

// JS: checkCertificates([{certs: string[], keys: string[]}]) -> results (src/native.ts CertCheck).
Napi::Value CheckCertificates(const Napi::CallbackInfo& info);

// checkCertificates' argument as the check's inputs; false (with a TypeError thrown) when malformed.
// Key blocks given as Buffers are zeroed once copied.
bool pair_inputs(Napi::Env env, Napi::Value pairs, std::vector<PairInput>& in);

// The results as checkCertificates returns them (passed pairs as handles). On the JS thread.
Napi::Array check_results(Napi::Env env, const std::vector<CheckResultPtr>& results);

// JS: lineageFiles(live, names[]) -> Int32Array (pem_files.h lineage_files).
Napi::Value LineageFiles(const Napi::CallbackInfo& info);

// The pair behind a handle checkCertificates returned, or null when <v> is not one.
CheckedPairPtr checked_pair_of(Napi::Env env, Napi::Value v);

}  // namespace mf
