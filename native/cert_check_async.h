// checkCertificatesAsync: checkCertificates (cert_check_js.h) without blocking the JS thread.
// A reload of thousands of pairs takes seconds of check-thread time; the control plane's logs,
// /metrics and signal handlers go on meanwhile.
#pragma once
#include <napi.h>

namespace mf {

// JS: checkCertificatesAsync(pairs[], append?) -> Promise<results>: the arguments and the results
// of checkCertificates; a malformed argument throws at once, as there.
Napi::Value CheckCertificatesAsync(const Napi::CallbackInfo& info);

// Tests (test_exports.cc): while held, checks wait before their first pair (the JS thread runs
// on); they go on when released, or when their environment or the process is going away.
void hold_checks(bool held);

}  // namespace mf
