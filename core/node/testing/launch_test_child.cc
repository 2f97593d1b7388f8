// The child process of launch_test.
//
//   launch_test_child fds   print the open descriptors ("0,1,2") on stdout
//   launch_test_child cwd   print the working directory on stdout
//   launch_test_child env NAME  print $NAME on stdout
#include <dirent.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "fds") == 0) {
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) return 3;
    std::string out;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      if (std::atoi(e->d_name) == ::dirfd(d)) continue;
      if (!out.empty()) out += ",";
      out += e->d_name;
    }
    ::closedir(d);
    std::printf("%s", out.c_str());
    return 0;
  }
  if (argc >= 2 && std::strcmp(argv[1], "cwd") == 0) {
    char buf[PATH_MAX];
    if (::getcwd(buf, sizeof(buf)) == nullptr) return 3;
    std::printf("%s", buf);
    return 0;
  }
  if (argc >= 3 && std::strcmp(argv[1], "env") == 0) {
    const char* v = std::getenv(argv[2]);
    std::printf("%s", v != nullptr ? v : "(unset)");
    return 0;
  }
  std::fprintf(stderr, "usage: launch_test_child fds|cwd|env NAME\n");
  return 2;
}
