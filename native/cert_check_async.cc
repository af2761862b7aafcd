// One thread per call runs check_pairs (which spreads the pairs over its own threads) and hands
// the results to the JS thread through a thread-safe function, where the Promise settles.
// Lifetimes: the job (inputs, results, deferred) is owned by the thread-safe function's finalizer,
// which runs on the JS thread once the thread released it, or when the environment is torn down
// (a worker terminated); it stops the thread and joins it before freeing anything. process.exit()
// tears nothing down: an atexit hook stops and waits for the threads before OpenSSL and this
// library's statics (the memo) are destroyed. A stopped check ends after each thread's current pair.
#include "cert_check_async.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "cert_check.h"
#include "cert_check_js.h"

namespace mf {

namespace {

struct Job {
  explicit Job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  std::vector<PairInput> in;
  bool append = false;
  std::atomic<bool> stop{false};
  bool running = true;  // the thread has work left (under Running::mu)
  std::vector<CheckResultPtr> results;
  Napi::Promise::Deferred deferred;
  Napi::ThreadSafeFunction tsfn;
  std::thread thread;
};

// Every job not yet finalized, for the exit hook; and the tests' hold.
struct Running {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Job*> jobs;
  bool held = false;
};
// Never destroyed: the threads use it while exit() runs the destructors of statics.
Running& running() {
  static Running* r = new Running;
  return *r;
}

void stop_job(Job* job) {
  std::lock_guard<std::mutex> lock(running().mu);
  job->stop = true;
  running().cv.notify_all();
}

// exit() runs no finalizer: the jobs are stopped, joined and freed here (no JS runs any more,
// workers' environments are gone), before OpenSSL's cleanup and the leak check. A thread stuck
// in a read (a hung network file system) does not hold the exit up past 2 s: it is left.
void stop_all_at_exit() {
  Running& r = running();
  std::unique_lock<std::mutex> lock(r.mu);
  for (Job* j : r.jobs) j->stop = true;
  r.cv.notify_all();
  r.cv.wait_for(lock, std::chrono::seconds(2), [&] { return std::none_of(r.jobs.begin(), r.jobs.end(), [](Job* j) { return j->running; }); });
  std::erase_if(r.jobs, [](Job* j) {
    if (j->running) return false;
    j->thread.join();
    delete j;
    return true;
  });
}

// On the JS thread: the Promise settles. env is null when the environment is going away.
void settle(Napi::Env env, Napi::Function, Job* job) {
  if (static_cast<napi_env>(env) == nullptr) return;
  Napi::HandleScope scope(env);
  if (job->stop) {
    job->deferred.Reject(Napi::Error::New(env, "checkCertificatesAsync: stopped").Value());
    return;
  }
  job->deferred.Resolve(check_results(env, job->results));
  job->results.clear();  // the handles hold the passed pairs now
}

void run(Job* job) {
  Running& r = running();
  {
    std::unique_lock<std::mutex> lock(r.mu);
    r.cv.wait(lock, [&] { return !r.held || job->stop; });
  }
  job->results = check_pairs(job->in, job->append, &job->stop);
  job->in.clear();  // the key text is wiped here, not on the JS thread
  // napi_closing once the environment is going away: nothing left to settle then.
  job->tsfn.NonBlockingCall(job, settle);
  job->tsfn.Release();
  std::lock_guard<std::mutex> lock(r.mu);
  job->running = false;
  r.cv.notify_all();
}

void finalize(Napi::Env, Job* job, Job*) {
  stop_job(job);
  job->thread.join();
  {
    std::lock_guard<std::mutex> lock(running().mu);
    std::erase(running().jobs, job);
  }
  delete job;
}

std::once_flag at_exit_once;

}  // namespace

void hold_checks(bool held) {
  std::lock_guard<std::mutex> lock(running().mu);
  running().held = held;
  running().cv.notify_all();
}

Napi::Value CheckCertificatesAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // Registered after OpenSSL's and the statics': runs before them.
  std::call_once(at_exit_once, [] { std::atexit(stop_all_at_exit); });
  auto job = std::make_unique<Job>(env);
  if (!pair_inputs(env, info[0], job->in)) return env.Undefined();
  job->append = info[1].ToBoolean().Value();
  Napi::Promise promise = job->deferred.Promise();
  job->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "mailfront.checkCertificates", size_t(0), size_t(1),
                                            job.get(), finalize, job.get());
  if (env.IsExceptionPending()) return env.Undefined();
  Job* j = job.release();
  {
    std::lock_guard<std::mutex> lock(running().mu);
    running().jobs.push_back(j);
  }
  j->thread = std::thread(run, j);
  return promise;
}

}  // namespace mf
