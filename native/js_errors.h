// Errors thrown to JS carry a stable code from the table in src/errors.ts;
// src/native.ts turns them into a NativeError (a MailfrontError) at the boundary.
// JS thread only.
#pragma once
#include <napi.h>

#include <string>

namespace mf {

namespace code {
constexpr const char* kSnapshotField = "MF_SNAPSHOT_FIELD";  // missing, wrong type or out of range; with .path
constexpr const char* kTlsContext = "MF_TLS_CONTEXT";        // OpenSSL refused a pair or a TLS setting
constexpr const char* kTicketKeys = "MF_TICKET_KEYS";        // the random generator failed
constexpr const char* kListen = "MF_LISTEN";                 // a listening socket could not be opened
constexpr const char* kNative = "MF_NATIVE";                 // called out of order (start before apply...)
}  // namespace code

// Throws (as a pending JS exception) an Error with <code>, and <path> when there is one.
inline void throw_coded(Napi::Env env, const char* code, const std::string& message, const std::string& path = {}) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", code);
  if (!path.empty()) e.Set("path", path);
  e.ThrowAsJavaScriptException();
}

}  // namespace mf
