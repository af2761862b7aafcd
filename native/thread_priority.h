// The data plane's workers ahead of the rest of the process on a busy core.
#pragma once
#include <sys/types.h>

#include <vector>

namespace mf {

// How much lower every other thread of the process runs than the workers (nice steps).
constexpr int kControlPlaneNice = 5;

// Every thread of this process but <workers> (the JS thread, V8's garbage-collector helpers,
// libuv's pool, and whatever they start later, which inherits it) goes kControlPlaneNice lower.
// Once per process. Why: perf sched on a reload showed the worker runnable for 13-15 ms while
// V8's helpers and the JS thread each ran out a 4 ms slice at its own nice. Raising the workers
// instead would need CAP_SYS_NICE; lowering one's own threads needs nothing.
void yield_to_workers(const std::vector<pid_t>& workers);

}  // namespace mf
