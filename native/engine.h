// The data plane: worker threads, each with its own epoll loop, sharing the
// listening sockets (EPOLLEXCLUSIVE) and the current snapshot.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "buffer.h"
#include "clients.h"
#include "guard.h"
#include "counters.h"
#include "events.h"
#include "server_health.h"
#include "snapshot.h"
#include "tickets.h"
#include "util.h"
#include "wheel.h"

namespace mf {

class Conn;
class Engine;

struct ListenSocket {
  Fd fd;
  int listener;  // index into the snapshot's listener policies
  std::string address;
  bool adopted = false;  // from systemd: its backlog must survive us (a restart takes it over)
};

class Worker {
 public:
  Worker(Engine& engine, int id, size_t listeners);
  ~Worker();
  void start();
  // Any thread: make the loop look at the engine's flags.
  void wake();
  void join();

  // Worker thread only below.
  Engine& engine;
  const int id;
  std::unique_ptr<ListenerCounters[]> counters;
  BufferPool pool;
  TimerWheel wheel;
  int64_t now = 0;
  // Last loop iteration (any thread reads it): a wedged worker shows as an old heartbeat.
  std::atomic<int64_t> heartbeat_ms{0};
  // The thread's id, once it runs (Engine::start waits for it).
  std::atomic<pid_t> tid{0};

  void watch(int fd, Conn* c, bool backend_side);
  void unwatch(int fd);
  void retire(Conn* c);  // freed after the current batch of events
  // Queues an event for JS; the queue goes over every 50 ms or 256 events.
  void emit(Event&& e);
  void link(Conn* c);
  void unlink(Conn* c);

 private:
  void run();
  void accept_from(size_t socket_index);
  void pause_listeners(int64_t until_ms);
  void resume_listeners();
  void close_all();
  void sweep_guard(const Snapshot& snap);

  Fd ep_, wake_;
  std::thread thread_;
  void flush_events(bool force);

  std::vector<Conn*> retired_;
  std::vector<Event> events_;
  int64_t events_flushed_ms_ = 0;
  Conn* all_ = nullptr;  // every live connection, for stop()
  bool listening_ = false;
  int64_t paused_until_ = 0;
  int64_t last_error_event_ = 0;
  int64_t guard_swept_ms_ = 0;
};

class Engine {
 public:
  Engine(int workers, EventSink& events);
  ~Engine();

  // JS thread. Ties <next>'s servers to their health entries (kept across snapshots), then publishes it.
  void apply(std::shared_ptr<Snapshot> next);
  std::shared_ptr<const Snapshot> snapshot() const { return snapshot_.load(std::memory_order_acquire); }
  void start(std::vector<ListenSocket> sockets);
  void drain();
  void stop();
  bool running() const { return started_; }
  // A stopped engine does not start again: a new Proxy does.
  bool stopped() const { return stopping.load(); }

  EventSink& events;
  // Session-ticket keys of every SSL_CTX this engine's Proxy builds (TicketKeys::install).
  const std::shared_ptr<TicketKeys> tickets = std::make_shared<TicketKeys>();
  ClientTable clients;
  NetGuard guard;
  std::atomic<int64_t> active{0};
  std::atomic<bool> accepting{true};
  std::atomic<bool> stopping{false};
  std::vector<ListenSocket> sockets;
  std::vector<std::unique_ptr<Worker>> workers;
  size_t listener_count = 0;

 private:
  std::atomic<std::shared_ptr<const Snapshot>> snapshot_;
  ServerHealthTable health_;  // JS thread only
  int worker_count_;
  bool started_ = false;
};

}  // namespace mf
