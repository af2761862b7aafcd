#include <napi.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "addon.h"
#include "util.h"

namespace mf {

// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET.
Napi::Value sd_notify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* path = getenv("NOTIFY_SOCKET");
  if (!path || !info[0].IsString()) return Napi::Boolean::New(env, false);
  std::string state = info[0].As<Napi::String>().Utf8Value();
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof sa.sun_path) return Napi::Boolean::New(env, false);
  memcpy(sa.sun_path, path, n);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';  // abstract namespace
  Fd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return Napi::Boolean::New(env, false);
  ssize_t r = sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&sa),
                     socklen_t(offsetof(sockaddr_un, sun_path) + n));
  return Napi::Boolean::New(env, r == ssize_t(state.size()));
}

}  // namespace mf
