// The part of Conn that follows logins after TLS (login.h): each outcome goes
// to JS as an event; a failure counts against the client network and may ban
// it; the watcher is dropped at the first success or at its byte bound, so the
// relay goes on without any per-byte cost.
#include "client_net.h"
#include "conn.h"
#include "engine.h"

namespace mf {

void Conn::watch_logins(bool from_client, const char* data, size_t n) {
  std::vector<LoginOutcome> outcomes;
  if (from_client) login_->client(std::string_view(data, n), outcomes);
  else login_->server(std::string_view(data, n), outcomes);
  for (const LoginOutcome& o : outcomes) on_login(o);
  if (login_->watching()) return;
  if (login_->state() == LoginWatch::State::Authenticated) login_state_ = "success";
  else if (login_state_ != std::string_view("success")) login_state_ = "bound";
  login_.reset();
}

void Conn::on_login(const LoginOutcome& o) {
  if (!o.user.empty()) user_ = o.user;
  if (o.result == LoginOutcome::Result::Success) login_state_ = "success";
  else if (login_state_ == std::string_view("none")) login_state_ = "failure";
  Event ev;
  ev.kind = Event::Kind::Login;
  ev.listener = policy().name;
  LoginRecord& r = ev.login;
  r.protocol = proto_name(policy().proto);
  r.client = format_addr(peer_);
  r.network = format_network(client_key_);
  r.sni = sni_;
  r.user = o.user;
  r.mech = o.mech;
  r.result = login_result_name(o.result);
  w_.emit(std::move(ev));
  if (o.result != LoginOutcome::Result::Failure) return;
  login_failures_++;
  if (exempt_) return;
  int64_t until = 0;
  if (w_.engine.guard.failed_login(client_key_, w_.now, snap_->limits.guard, until)) {
    Event ban;
    ban.kind = Event::Kind::Ban;
    ban.listener = policy().name;
    ban.network = format_network(client_key_);
    ban.ban_ms = until - w_.now;
    ban.failures = snap_->limits.guard.failures;
    w_.emit(std::move(ban));
  }
  // Banned (now or by another connection): this one ends after the refusal reaches the client.
  if (w_.engine.guard.banned(client_key_, w_.now)) banned_close_ = true;
}

}  // namespace mf
