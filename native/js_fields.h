// Checked reads out of the JS snapshot (src/native.ts NativeSnapshot). Every read
// says what it expected and throws FieldError naming the field's path; nothing has a
// default: defaults live in src/config/schema.ts, and src/snapshot.ts sends every
// field. Ranges are those of the native types, not config rules (TypeScript's job).
// JS thread only (napi values).
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

namespace mf {

// Caught at the boundary (Proxy::JS_apply) and thrown to JS with code MF_SNAPSHOT_FIELD.
struct FieldError {
  std::string path;     // "listeners[1].backend", "limits.loginFailures.count"
  std::string message;  // "expected an integer from 0 to 3, got 7"
};

inline std::string describe_js(const Napi::Value& v) {
  if (v.IsUndefined()) return "nothing (missing)";
  if (v.IsNull()) return "null";
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    return "\"" + (s.size() > 40 ? s.substr(0, 40) + "..." : s) + "\"";
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    return std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15 ? std::to_string(int64_t(d)) : "the number " + std::to_string(d);
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsBuffer()) return "a Buffer of " + std::to_string(v.As<Napi::Buffer<char>>().Length()) + " bytes";
  if (v.IsArray()) return "an array";
  if (v.IsFunction()) return "a function";
  return "an object";
}

// One value at <path>.
class JsField {
 public:
  JsField(Napi::Value v, std::string path) : v_(v), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  const Napi::Value& value() const { return v_; }
  [[noreturn]] void fail(const std::string& message) const { throw FieldError{path_, message}; }
  [[noreturn]] void expected(const std::string& what) const { fail("expected " + what + ", got " + describe_js(v_)); }

  std::string str() const {
    if (!v_.IsString()) expected("a string");
    return v_.As<Napi::String>().Utf8Value();
  }
  bool boolean() const {
    if (!v_.IsBoolean()) expected("true or false");
    return v_.As<Napi::Boolean>().Value();
  }
  int64_t integer(int64_t lo, int64_t hi) const {
    double d = v_.IsNumber() ? v_.As<Napi::Number>().DoubleValue() : NAN;
    if (!(d == std::floor(d) && d >= double(lo) && d <= double(hi)))
      expected("an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    return int64_t(d);
  }
  // The index of the string among <names>.
  size_t one_of(std::initializer_list<const char*> names) const {
    std::string list;
    size_t i = 0;
    for (const char* n : names) {
      if (v_.IsString() && v_.As<Napi::String>().Utf8Value() == n) return i;
      list += (i ? ", \"" : "\"") + std::string(n) + "\"";
      i++;
    }
    expected("one of " + list);
  }
  Napi::Object object() const {
    if (!v_.IsObject() || v_.IsArray() || v_.IsFunction()) expected("an object");
    return v_.As<Napi::Object>();
  }
  Napi::Array array() const {
    if (!v_.IsArray()) expected("an array");
    return v_.As<Napi::Array>();
  }

  // Member <key> of this object.
  JsField operator[](const char* key) const { return JsField(object().Get(key), path_.empty() ? key : path_ + "." + key); }
  // Element <i> of this array.
  JsField item(uint32_t i) const { return JsField(array().Get(i), path_ + "[" + std::to_string(i) + "]"); }
  uint32_t length() const { return array().Length(); }

 private:
  Napi::Value v_;
  std::string path_;
};

}  // namespace mf
