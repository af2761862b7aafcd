#include "thread_priority.h"

#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>

namespace mf {

void yield_to_workers(const std::vector<pid_t>& workers) {
  static std::atomic<bool> done{false};
  if (done.exchange(true)) return;
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return;
  while (dirent* e = readdir(dir)) {
    pid_t tid = pid_t(atoi(e->d_name));
    if (tid <= 0 || std::find(workers.begin(), workers.end(), tid) != workers.end()) continue;
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, id_t(tid));
    if (errno) continue;  // gone since the listing
    setpriority(PRIO_PROCESS, id_t(tid), std::min(19, nice + kControlPlaneNice));
  }
  closedir(dir);
}

}  // namespace mf
