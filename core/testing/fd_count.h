// Test helper: the number of open descriptors in this process, read from
// /proc/self/fd. Error-path tests take it before and after and assert equality
// so a leaked descriptor fails the test.
//
//   size_t before = moat::testing::OpenFdCount();
//   ... exercise an error path ...
//   EXPECT_EQ(moat::testing::OpenFdCount(), before);
#ifndef MOAT_CORE_TESTING_FD_COUNT_H_
#define MOAT_CORE_TESTING_FD_COUNT_H_

#include <dirent.h>

#include <cstddef>

namespace moat::testing {

inline size_t OpenFdCount() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  size_t count = 0;
  while (struct dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count - 1;  // the directory stream's own descriptor
}

}  // namespace moat::testing

#endif  // MOAT_CORE_TESTING_FD_COUNT_H_
