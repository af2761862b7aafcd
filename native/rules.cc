// The data plane's parsing rules, exported to the control plane so that each
// rule is written once (issue 15): host names (sni.h), "ip:port" addresses
// (net.h), CIDR blocks (proxy_parse.h), the SNI lookup (snapshot.h) and PEM blocks (pem_files.h). The
// control plane words the errors; what is accepted is decided here.
#include <arpa/inet.h>
#include <napi.h>

#include <string>

#include "net.h"
#include "pem_files.h"
#include "proxy_header.h"
#include "proxy_parse.h"
#include "addon.h"
#include "snapshot.h"
#include "sni.h"

namespace mf {
namespace {

// Built without C++ exceptions: a bad argument sets a pending JS TypeError.
bool utf8_arg(const Napi::CallbackInfo& info, size_t i, const char* usage, std::string& out) {
  if (!info[i].IsString()) {
    Napi::TypeError::New(info.Env(), usage).ThrowAsJavaScriptException();
    return false;
  }
  out = info[i].As<Napi::String>().Utf8Value();
  return true;
}

// normalizeHostName(text): the normalized name, or null.
Napi::Value NormalizeHostName(const Napi::CallbackInfo& info) {
  std::string raw;
  if (!utf8_arg(info, 0, "normalizeHostName(text)", raw)) return info.Env().Undefined();
  std::string out;
  // A NUL inside would cut the C string normalize_sni reads: no host name.
  if (raw.find('\0') != std::string::npos || !normalize_sni(raw.c_str(), out)) return info.Env().Null();
  return Napi::String::New(info.Env(), out);
}

const char* addr_error_code(AddrError e) {
  switch (e) {
    case AddrError::MissingBracket: return "missing-bracket";
    case AddrError::NoPortAfterBracket: return "no-port-after-bracket";
    case AddrError::NotIpv6: return "not-ipv6";
    case AddrError::NoPort: return "no-port";
    case AddrError::UnbracketedIpv6: return "unbracketed-ipv6";
    case AddrError::NoHost: return "no-host";
    case AddrError::NotIp: return "not-ip";
    case AddrError::BadPort: return "bad-port";
    case AddrError::PortRange: return "port-range";
    case AddrError::UnixTooLong: return "unix-too-long";
    case AddrError::UnixNul: return "unix-nul";
    case AddrError::None: break;
  }
  return "none";
}

// parseAddress(text): {kind: "tcp", host, port, family} | {kind: "unix", path}
// | {error, host?, port?} (host and port: the texts as split, for messages).
Napi::Value ParseAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string text;
  if (!utf8_arg(info, 0, "parseAddress(text)", text)) return info.Env().Undefined();
  AddrError why;
  std::string_view host, port;
  auto a = parse_addr(text, &why, &host, &port);
  Napi::Object out = Napi::Object::New(env);
  if (!a) {
    out.Set("error", addr_error_code(why));
    if (host.data()) out.Set("host", std::string(host));
    if (port.data()) out.Set("port", std::string(port));
    return out;
  }
  if (a->family() == AF_UNIX) {
    out.Set("kind", "unix");
    out.Set("path", text);
    return out;
  }
  out.Set("kind", "tcp");
  out.Set("host", std::string(host));
  bool v4 = a->family() == AF_INET;
  uint16_t p = v4 ? reinterpret_cast<const sockaddr_in*>(&a->ss)->sin_port : reinterpret_cast<const sockaddr_in6*>(&a->ss)->sin6_port;
  out.Set("port", double(ntohs(p)));
  out.Set("family", v4 ? 4 : 6);
  return out;
}

// parseCidr(text): {family: 4 | 6, bytes: number[], prefix}, or null.
Napi::Value ParseCidr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string text;
  if (!utf8_arg(info, 0, "parseCidr(text)", text)) return info.Env().Undefined();
  Cidr c;
  if (text.find('\0') != std::string::npos || !parse_cidr(text, c)) return env.Null();
  bool v4 = c.family == AF_INET;
  Napi::Array bytes = Napi::Array::New(env, v4 ? 4 : 16);
  for (uint32_t i = 0; i < bytes.Length(); i++) bytes.Set(i, double(c.addr[i]));
  Napi::Object out = Napi::Object::New(env);
  out.Set("family", v4 ? 4 : 6);
  out.Set("bytes", bytes);
  out.Set("prefix", double(c.prefix));
  return out;
}

// findContext({exact, wildcard}, name): {context, match: "exact" | "wildcard"}, or
// null. The tables are the certificate store's (name or suffix -> context).
Napi::Value FindContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) {
    Napi::TypeError::New(env, "findContext({exact, wildcard}, name)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string name;
  if (!utf8_arg(info, 1, "findContext({exact, wildcard}, name)", name)) return info.Env().Undefined();
  Napi::Object index = info[0].As<Napi::Object>();
  Napi::Value exact = index.Get("exact"), wildcard = index.Get("wildcard");
  if (!exact.IsObject() || !wildcard.IsObject()) {
    Napi::TypeError::New(env, "findContext: exact and wildcard must be objects").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  NameMatch m = match_name(name, [&](bool wild, std::string_view key) {
    Napi::Object table = (wild ? wildcard : exact).As<Napi::Object>();
    Napi::String k = Napi::String::New(env, key.data(), key.size());
    if (!table.HasOwnProperty(k)) return -1;
    Napi::Value v = table.Get(k);
    return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : -1;
  });
  if (m.context < 0) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("context", m.context);
  out.Set("match", m.wildcard ? "wildcard" : "exact");
  return out;
}

}  // namespace

// localProxyHeader(version): the PROXY header a connection of mailfront's own
// (a health check, the sieve capability probe) sends to a pool that expects one:
// v1 "PROXY UNKNOWN", v2 LOCAL, so that the server keeps the real endpoints.
// null for "off".
Napi::Value LocalProxyHeader(const Napi::CallbackInfo& info) {
  std::string v;
  if (!utf8_arg(info, 0, "localProxyHeader(version)", v)) return info.Env().Undefined();
  ProxyHeader version = v == "v1" ? ProxyHeader::V1 : v == "v2" || v == "v2-ssl" ? ProxyHeader::V2 : ProxyHeader::Off;
  if (version == ProxyHeader::Off) {
    if (v != "off") Napi::TypeError::New(info.Env(), "localProxyHeader: version is off, v1, v2 or v2-ssl").ThrowAsJavaScriptException();
    return info.Env().Null();
  }
  // No addresses (AF_UNSPEC) give the UNKNOWN/LOCAL forms; a local check is not TLS, so no SSL TLV.
  std::string h = proxy_header(version, SockAddr{}, SockAddr{});
  return Napi::Buffer<char>::Copy(info.Env(), h.data(), h.size());
}

// pemBlocks(buffer): [{label, start, end, key}], byte offsets of each block in <buffer>.
Napi::Value PemBlocks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBuffer()) {
    Napi::TypeError::New(env, "pemBlocks(buffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto buf = info[0].As<Napi::Buffer<char>>();
  std::string_view text(buf.Data(), buf.Length());
  std::vector<PemBlock> blocks = pem_blocks(text);
  Napi::Array out = Napi::Array::New(env, blocks.size());
  for (uint32_t i = 0; i < blocks.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("label", std::string(blocks[i].label));
    o.Set("start", double(blocks[i].pem.data() - text.data()));
    o.Set("end", double(blocks[i].pem.data() - text.data() + blocks[i].pem.size()));
    o.Set("key", is_key_label(blocks[i].label));
    out[i] = o;
  }
  return out;
}

void export_rules(Napi::Env env, Napi::Object exports) {
  exports.Set("pemBlocks", Napi::Function::New(env, PemBlocks));
  exports.Set("normalizeHostName", Napi::Function::New(env, NormalizeHostName));
  exports.Set("parseAddress", Napi::Function::New(env, ParseAddress));
  exports.Set("parseCidr", Napi::Function::New(env, ParseCidr));
  exports.Set("findContext", Napi::Function::New(env, FindContext));
  exports.Set("localProxyHeader", Napi::Function::New(env, LocalProxyHeader));
}

}  // namespace mf
