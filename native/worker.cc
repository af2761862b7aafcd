#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "admission.h"
#include "cert_check.h"
#include "client_net.h"
#include "conn.h"
#include "engine.h"
#include "thread_priority.h"
#include "tickets.h"

namespace mf {

namespace {

// epoll data: a Conn pointer (bit 0: backend side), or a tagged small number.
constexpr uint64_t kTagListener = 2;
constexpr uint64_t kWake = 3;

uint64_t conn_tag(Conn* c, bool backend) { return reinterpret_cast<uint64_t>(c) | (backend ? 1 : 0); }

}  // namespace

Worker::Worker(Engine& e, int i, size_t listeners)
    : engine(e), id(i), counters(new ListenerCounters[listeners ? listeners : 1]) {
  ep_ = Fd(epoll_create1(EPOLL_CLOEXEC));
  wake_ = Fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWake;
  epoll_ctl(ep_.get(), EPOLL_CTL_ADD, wake_.get(), &ev);
}

Worker::~Worker() {
  join();
  for (Conn* c : retired_) delete c;
}

void Worker::start() { thread_ = std::thread([this] { run(); }); }

void Worker::wake() {
  uint64_t one = 1;
  ssize_t r = write(wake_.get(), &one, sizeof one);
  (void)r;
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::watch(int fd, Conn* c, bool backend_side) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = conn_tag(c, backend_side);
  epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev);
}

void Worker::unwatch(int fd) {
  // Explicit: a copy of the fd in a child between fork and exec would keep the
  // registration alive after close(), and its events would name a freed Conn.
  epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void Worker::link(Conn* c) {
  c->all_next = all_;
  c->all_prev = nullptr;
  if (all_) all_->all_prev = c;
  all_ = c;
}

void Worker::unlink(Conn* c) {
  if (c->all_prev) c->all_prev->all_next = c->all_next;
  else if (all_ == c) all_ = c->all_next;
  if (c->all_next) c->all_next->all_prev = c->all_prev;
  c->all_prev = c->all_next = nullptr;
}

void Worker::retire(Conn* c) {
  unlink(c);
  retired_.push_back(c);
}

void Worker::emit(Event&& e) {
  events_.push_back(std::move(e));
  if (events_.size() >= 256) flush_events(true);
}

void Worker::flush_events(bool force) {
  if (events_.empty()) return;
  if (!force && now - events_flushed_ms_ < 50) return;
  engine.events.push(events_);
  events_flushed_ms_ = now;
}

void Worker::resume_listeners() {
  for (size_t i = 0; i < engine.sockets.size(); i++) {
    epoll_event ev{};
    // EPOLLEXCLUSIVE: one worker wakes for a new connection, not all of them.
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.u64 = (uint64_t(i) << 2) | kTagListener;
    epoll_ctl(ep_.get(), EPOLL_CTL_ADD, engine.sockets[i].fd.get(), &ev);
  }
  listening_ = true;
}

void Worker::pause_listeners(int64_t until_ms) {
  for (auto& s : engine.sockets) epoll_ctl(ep_.get(), EPOLL_CTL_DEL, s.fd.get(), nullptr);
  listening_ = false;
  paused_until_ = until_ms;
}

void Worker::accept_from(size_t index) {
  ListenSocket& ls = engine.sockets[index];
  auto snap = engine.snapshot();
  ListenerCounters& ctr = counters[size_t(ls.listener)];
  for (int i = 0; i < 64; i++) {
    SockAddr peer;
    peer.len = sizeof peer.ss;
    int fd = accept4(ls.fd.get(), peer.sa(), &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: stop accepting for a moment, keep serving the open connections.
        pause_listeners(now + 250);
        if (now - last_error_event_ > 5000) {
          last_error_event_ = now;
          Event ev;
          ev.kind = Event::Kind::Error;
          ev.listener = snap->listeners[size_t(ls.listener)].name;
          ev.message = std::string("accept on ") + ls.address + ": " + strerror(errno) + "; pausing new connections";
          emit(std::move(ev));
        }
      }
      return;
    }
    ListenerCounters::bump(ctr.accepted);
    const Limits& lim = snap->limits;
    // Taken first, given back on refusal: workers racing cannot overshoot the limit.
    if (engine.active.fetch_add(1, std::memory_order_relaxed) >= int64_t(lim.connections)) {
      engine.active.fetch_sub(1, std::memory_order_relaxed);
      ListenerCounters::bump(ctr.rejected_limit);
      ::close(fd);
      continue;
    }
    // Behind a balancer the peer is the balancer: the Conn admits the client its PROXY header names.
    const ListenerPolicy& lp = snap->listeners[size_t(ls.listener)];
    if (!lp.accept_proxy) {
      bool exempt = !lim.exempt.empty() && cidr_match(lim.exempt, peer);
      Admission a = admit_client(engine.clients, engine.guard, client_network(peer, lim.ipv6_prefix), exempt, now, lim);
      if (a != Admission::Ok) {
        engine.active.fetch_sub(1, std::memory_order_relaxed);
        ListenerCounters::bump(a == Admission::Banned ? ctr.rejected_banned : a == Admission::Rate ? ctr.rejected_rate : ctr.rejected_per_client);
        if (a != Admission::PerClient) {
          std::string line = refusal_line(lp.proto, a);
          if (!line.empty()) {
            ssize_t r = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)r;
          }
        }
        ::close(fd);
        continue;
      }
    }
    ctr.active.fetch_add(1, std::memory_order_relaxed);
    Conn* c = new Conn(*this, ls.listener, fd, peer, snap);
    link(c);
    c->start();
  }
}

// Bans that ended are reported once, here; idle networks are forgotten.
void Worker::sweep_guard(const Snapshot& snap) {
  guard_swept_ms_ = now;
  std::vector<std::string> ended;
  engine.guard.sweep(now, snap.limits.guard, ended);
  for (const std::string& key : ended) {
    Event ev;
    ev.kind = Event::Kind::BanEnded;
    ev.network = format_network(key);
    emit(std::move(ev));
  }
}

void Worker::close_all() {
  while (all_) {
    Conn* c = all_;
    c->shutdown_now();
    if (all_ == c) unlink(c);  // defensive: shutdown_now always retires
  }
}

void Worker::run() {
  tid.store(pid_t(syscall(SYS_gettid)), std::memory_order_release);
  now = now_ms();
  wheel.start(now);
  if (engine.accepting.load()) resume_listeners();
  epoll_event events[256];
  bool draining = false;
  while (!engine.stopping.load(std::memory_order_acquire)) {
    int n = epoll_wait(ep_.get(), events, 256, int(TimerWheel::kTickMs));
    now = now_ms();
    heartbeat_ms.store(now, std::memory_order_relaxed);
    for (int i = 0; i < n; i++) {
      uint64_t d = events[i].data.u64;
      if (d == kWake) {
        uint64_t v;
        ssize_t r = read(wake_.get(), &v, sizeof v);
        (void)r;
      } else if ((d & 3) == kTagListener) {
        if (listening_) accept_from(size_t(d >> 2));
      } else {
        auto* c = reinterpret_cast<Conn*>(d & ~uint64_t(1));
        c->on_event(d & 1, events[i].events);
      }
    }
    wheel.advance(now, [this](WheelNode* node) {
      Conn* c = static_cast<Conn*>(node->owner);
      if (c->closed()) return;
      if (now >= c->deadline()) c->on_deadline();
      else wheel.insert(node, c->deadline());
    });
    for (Conn* c : retired_) delete c;
    retired_.clear();
    flush_events(false);
    if (!engine.accepting.load(std::memory_order_relaxed) && !draining) {
      draining = true;
      if (listening_) pause_listeners(INT64_MAX);
    }
    if (!draining && !listening_ && now >= paused_until_) resume_listeners();
    if (id == 0) engine.tickets->rotate_if_due(now);
    if (id == 0 && now - guard_swept_ms_ >= 1000) sweep_guard(*engine.snapshot());
  }
  close_all();
  for (Conn* c : retired_) delete c;
  retired_.clear();
  flush_events(true);
}

// ---- Engine ----

Engine::Engine(int workers, EventSink& sink) : events(sink), worker_count_(workers < 1 ? 1 : workers) {}

Engine::~Engine() { stop(); }

void Engine::apply(std::shared_ptr<Snapshot> next) {
  health_.attach(*next);
  snapshot_.store(std::move(next), std::memory_order_release);
}

void Engine::start(std::vector<ListenSocket> socks) {
  sockets = std::move(socks);
  listener_count = snapshot()->listeners.size();
  for (int i = 0; i < worker_count_; i++) workers.push_back(std::make_unique<Worker>(*this, i, listener_count));
  for (auto& w : workers) w->start();
  std::vector<pid_t> tids;
  for (auto& w : workers) {
    while (!w->tid.load(std::memory_order_acquire)) std::this_thread::yield();
    tids.push_back(w->tid.load());
  }
  yield_to_workers(tids);
  started_ = true;
  running_data_planes.fetch_add(1);  // the certificate threads now yield to these workers
}

void Engine::drain() {
  accepting.store(false);
  // Leave the LISTEN state at once: new clients are refused instead of waiting
  // in a backlog nobody accepts from. The fds stay open until stop().
  for (auto& s : sockets)
    if (!s.adopted) ::shutdown(s.fd.get(), SHUT_RDWR);
  for (auto& w : workers) w->wake();
}

void Engine::stop() {
  if (!started_) return;
  stopping.store(true, std::memory_order_release);
  for (auto& w : workers) w->wake();
  for (auto& w : workers) w->join();
  sockets.clear();
  started_ = false;
  running_data_planes.fetch_sub(1);
}

}  // namespace mf
