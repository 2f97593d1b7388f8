// `moat fuzz`: continuous fuzzing of every fuzz target (R28).
//
//   moat fuzz                                  all targets, libFuzzer, 600 s in total
//   moat fuzz --seconds 3600 --engine afl      AFL++ for an hour
//   moat fuzz frame_header_fuzzer --seconds-per-target 60 --jobs 1
//
// Phases: build (bazel, three configs) -> fuzz (targets spread over --jobs
// processes, live progress) -> merge new coverage into OUT/new-corpus/<t>/
// min-<sha1> (corpus/<t>/ itself with --merge-into-source) -> reproduce and
// minimize every crash into OUT/crashes/<t>/crash-<sha1> -> summary table (and --json). Exits 1 if a crash was found, 130 on Ctrl-C.
// fuzz/README.md documents the flags and the output layout.
#include <poll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tools/cli/command.h"
#include "tools/fuzz/sha1.h"
#include "tools/fuzz/stats_parser.h"
#include "tools/fuzz/subprocess.h"
#include "tools/inspect/inspector.h"

namespace moat::tools::fuzz {
namespace {

namespace fs = std::filesystem;

constexpr int kProgressEverySeconds = 10;
// How long a fuzzer may overrun its budget (startup, final stats) before it is stopped.
constexpr int kOverrunSeconds = 60;

struct Options {
  std::string engine = "libfuzzer";
  int seconds = 600;
  bool per_target = false;  // --seconds-per-target: `seconds` is per target, not in total
  int jobs = 0;
  int minimize_seconds = 60;
  std::string bin_dir;  // prebuilt binaries: BIN/{libfuzzer,afl,replay}/<target>
  std::string out_dir = "fuzz-out";
  bool merge = true;
  bool merge_into_source = false;  // new entries into corpus/<t>/ instead of OUT/new-corpus/<t>/
  bool json = false;
  std::vector<std::string> targets;
};

struct Crash {
  std::string kind;      // crash, leak, timeout, oom (libFuzzer's artifact prefix) or crash (AFL)
  std::string path;      // OUT/crashes/<t>/crash-<sha1>
  size_t original_size = 0;
  size_t size = 0;       // after minimization
  bool reproduced = false;
};

struct TargetResult {
  std::string name;
  std::string error;     // set if the target could not be fuzzed (e.g. did not build)
  FuzzStats stats;
  size_t corpus_before = 0;
  size_t corpus_after = 0;
  size_t merged = 0;     // new min-* files
  double seconds = 0;
  std::vector<std::string> raw_crashes;
  std::vector<Crash> crashes;
};

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

size_t CountFiles(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

void CopyFiles(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  std::error_code ec;
  if (!fs::is_directory(from, ec)) return;
  for (const auto& e : fs::directory_iterator(from)) {
    if (e.is_regular_file()) fs::copy_file(e.path(), to / e.path().filename(), fs::copy_options::overwrite_existing);
  }
}

std::string Abs(const fs::path& p) { return fs::absolute(p).lexically_normal().string(); }

std::string Rate(double r) {
  char buf[32];
  if (r >= 1e6) std::snprintf(buf, sizeof(buf), "%.1fM", r / 1e6);
  else if (r >= 1e3) std::snprintf(buf, sizeof(buf), "%.1fk", r / 1e3);
  else std::snprintf(buf, sizeof(buf), "%.0f", r);
  return buf;
}

std::string Coverage(const FuzzStats& s, const std::string& engine) {
  char buf[48];
  if (engine == "afl") std::snprintf(buf, sizeof(buf), "%.2f%% map", s.bitmap_cvg < 0 ? 0 : s.bitmap_cvg);
  else std::snprintf(buf, sizeof(buf), "cov %llu", static_cast<unsigned long long>(s.coverage));
  return buf;
}

int Usage(FILE* to = stderr) {
  std::fprintf(to,
               "usage: moat fuzz [TARGET...] [--engine libfuzzer|afl] [--seconds N | --seconds-per-target N]\n"
               "                 [--jobs N] [--bin-dir DIR] [--out DIR] [--no-merge | --merge-into-source]\n"
               "                 [--minimize-seconds N] [--json]\n"
               "  TARGET             fuzz targets (default: every target tagged fuzz_target in //fuzz)\n"
               "  --seconds N        total wall-clock fuzzing budget (default 600); targets share\n"
               "                     it, --jobs at a time: each gets N*jobs/targets seconds (min 10)\n"
               "  --seconds-per-target N   give every target N seconds instead\n"
               "  --jobs N           fuzzer processes at once (default: number of cores)\n"
               "  --bin-dir DIR      use prebuilt DIR/{libfuzzer,afl,replay}/TARGET, do not build\n"
               "  --out DIR          work dir, logs, crashes/ and summary.json (default fuzz-out)\n"
               "  --no-merge         do not merge new coverage at all\n"
               "  --merge-into-source  add new coverage to corpus/TARGET/min-* in the source tree\n"
               "                     (default: OUT/new-corpus/TARGET/min-*, the source tree is not written)\n"
               "  Relative DIRs are relative to where you ran the command (also under bazel run).\n"
               "  --json             print the summary as JSON on stdout (progress stays on stderr)\n");
  return to == stdout ? 0 : 2;
}

// Usage error, or --help (help set).
bool ParseOptions(int argc, char** argv, Options& o, bool& help) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    auto number = [&](int& out) {
      std::string v = value();
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n <= 0 || n > 1000000) return false;
      out = static_cast<int>(n);
      return true;
    };
    if (a == "--engine") {
      o.engine = value();
      if (o.engine != "libfuzzer" && o.engine != "afl") return false;
    } else if (a == "--seconds") {
      if (!number(o.seconds)) return false;
    } else if (a == "--seconds-per-target") {
      if (!number(o.seconds)) return false;
      o.per_target = true;
    } else if (a == "--jobs") {
      if (!number(o.jobs)) return false;
    } else if (a == "--minimize-seconds") {
      if (!number(o.minimize_seconds)) return false;
    } else if (a == "--bin-dir") {
      o.bin_dir = value();
      if (o.bin_dir.empty()) return false;
    } else if (a == "--out") {
      o.out_dir = value();
      if (o.out_dir.empty()) return false;
    } else if (a == "--no-merge") {
      o.merge = false;
    } else if (a == "--merge-into-source") {
      o.merge_into_source = true;
    } else if (a == "-h" || a == "--help") {
      help = true;
      return true;
    } else if (a == "--json") {
      o.json = true;
    } else if (!a.empty() && a[0] != '-') {
      o.targets.push_back(a);
    } else {
      return false;
    }
  }
  if (!o.merge && o.merge_into_source) return false;
  if (o.jobs == 0) o.jobs = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
  return true;
}

// Every cc_binary tagged fuzz_target by moat_fuzz_target (fuzz/fuzz.bzl).
std::vector<std::string> DiscoverTargets(std::string& error) {
  RunResult r = RunToEnd({"bazel", "query", "--noshow_progress",
                          "attr(tags, \"fuzz_target\", kind(cc_binary, //fuzz:*))"},
                         {}, 0);
  if (!r.ok()) {
    error = "bazel query failed:\n" + r.output;
    return {};
  }
  std::vector<std::string> out;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("//fuzz:")) out.push_back(line.substr(7));
  }
  return out;
}

// Builds `targets` with `bazel build --config=CONFIG` and copies each binary to
// BIN/DIR/<target>. If the batch fails (someone's target does not compile),
// builds one by one so the others still run; returns the targets that failed.
std::set<std::string> Build(const std::vector<std::string>& targets, const std::string& config,
                            const fs::path& dest, const fs::path& log_dir) {
  fs::create_directories(dest);
  // Not the bazel-bin symlink: a concurrent build of another config may move it,
  // and configs with a --platform_suffix have their own tree.
  RunResult info = RunToEnd({"bazel", "info", "--config=" + config, "bazel-bin"}, {}, 0);
  std::string bin_dir = "bazel-bin";
  std::istringstream lines(info.output);  // stdout and stderr: keep the path line
  for (std::string line; std::getline(lines, line);) {
    if (info.ok() && line.starts_with("/") && fs::is_directory(line)) bin_dir = line;
  }
  auto build = [&](const std::vector<std::string>& batch) {
    std::vector<std::string> argv = {"bazel", "build", "--noshow_progress", "--config=" + config};
    for (const std::string& t : batch) argv.push_back("//fuzz:" + t);
    const double started = Now();
    RunResult r = RunToEnd(argv, {}, 0);
    std::ofstream(log_dir / ("build-" + config + ".log"), std::ios::app) << r.output;
    std::fprintf(stderr, "        %s in %.0f s\n", r.ok() ? "built" : "FAILED", Now() - started);
    if (!r.ok()) {
      // The end of bazel's output holds the error.
      std::fputs(r.output.substr(r.output.size() > 3000 ? r.output.size() - 3000 : 0).c_str(), stderr);
      return false;
    }
    for (const std::string& t : batch) {
      fs::copy_file(fs::path(bin_dir) / "fuzz" / t, dest / t, fs::copy_options::overwrite_existing);
    }
    return true;
  };
  std::set<std::string> failed;
  if (build(targets) || InterruptRequested()) return failed;
  for (const std::string& t : targets) {
    if (!build({t})) failed.insert(t);
  }
  return failed;
}

// A running fuzzer.
struct Job {
  TargetResult* result;
  Child child;
  std::string pending;  // partial output line
  fs::path work;
  double started = 0;
  double last_progress = 0;
  std::ofstream log;
};

class Runner {
 public:
  Runner(const Options& o, fs::path bin, fs::path out) : o_(o), bin_(std::move(bin)), out_(std::move(out)) {}

  std::vector<std::string> FuzzerArgv(const std::string& t, const fs::path& work) const {
    const std::string dict = "corpus/" + t + ".dict";
    const bool has_dict = fs::exists(dict);
    std::vector<std::string> argv;
    if (o_.engine == "afl") {
      argv = {"afl-fuzz", "-V", std::to_string(per_target_), "-i", (work / "in").string(), "-o",
              (work / "afl").string()};
      if (has_dict) argv.insert(argv.end(), {"-x", dict});
      argv.insert(argv.end(), {"--", (bin_ / "afl" / t).string()});
    } else {
      argv = {(bin_ / "libfuzzer" / t).string(), "-max_total_time=" + std::to_string(per_target_),
              "-print_final_stats=1", "-rss_limit_mb=2560", "-timeout=25",
              "-artifact_prefix=" + (work / "artifacts").string() + "/"};
      if (has_dict) argv.push_back("-dict=" + dict);
      argv.push_back((work / "corpus").string());
    }
    return argv;
  }

  void Start(TargetResult& r) {
    auto job = std::make_unique<Job>();
    job->result = &r;
    job->work = out_ / "work" / r.name;
    fs::remove_all(job->work);
    // The fuzzers write into copies: corpus/<t>/ only changes by the merge below.
    CopyFiles("corpus/" + r.name, job->work / (o_.engine == "afl" ? "in" : "corpus"));
    fs::create_directories(job->work / "artifacts");
    r.corpus_before = CountFiles("corpus/" + r.name);
    std::vector<std::string> env;
    if (o_.engine == "afl") {
      env = {"AFL_SKIP_CPUFREQ=1", "AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1", "AFL_NO_UI=1",
             "AFL_NO_AFFINITY=1"};
    }
    std::vector<std::string> argv = FuzzerArgv(r.name, job->work);
    job->log.open(job->work / "engine.log");
    job->log << "$ " << ShellQuote(argv) << "\n";
    job->child = Spawn(argv, env);
    job->started = job->last_progress = Now();
    std::fprintf(stderr, "start   %-32s %s, %d s\n", r.name.c_str(), o_.engine.c_str(), per_target_);
    jobs_.push_back(std::move(job));
  }

  void Progress(Job& job) {
    if (o_.engine == "afl") {
      fs::path stats = job.work / "afl" / "default" / "fuzzer_stats";
      if (fs::exists(stats)) {
        FuzzStats from_file = ParseAflFuzzerStats(ReadFile(stats));
        FuzzStats& s = job.result->stats;
        s.execs = from_file.execs;
        s.execs_per_sec = from_file.execs_per_sec;
        s.bitmap_cvg = from_file.bitmap_cvg;
        s.edges_found = from_file.edges_found;
      }
    }
    const FuzzStats& s = job.result->stats;
    std::fprintf(stderr, "[%4.0fs] %-32s %8s exec/s  %-14s corpus %-6llu crashes %llu\n",
                 Now() - job.started, job.result->name.c_str(), Rate(s.execs_per_sec).c_str(),
                 Coverage(s, o_.engine).c_str(), static_cast<unsigned long long>(s.corpus_count),
                 static_cast<unsigned long long>(s.crashes));
  }

  // Reads what the job printed; returns false at end of output.
  bool Drain(Job& job) {
    char buf[8192];
    ssize_t n = read(job.child.out_fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) return false;
    job.log.write(buf, n);
    job.pending.append(buf, static_cast<size_t>(n));
    size_t eol;
    while ((eol = job.pending.find('\n')) != std::string::npos) {
      std::string_view line(job.pending.data(), eol);
      if (o_.engine == "afl") ParseAflStatusLine(line, job.result->stats);
      else ParseLibFuzzerLine(line, job.result->stats);
      job.pending.erase(0, eol + 1);
    }
    return true;
  }

  void Finish(Job& job) {
    int status = Reap(job.child);
    TargetResult& r = *job.result;
    r.seconds = Now() - job.started;
    if (o_.engine == "afl") {
      // The Progress() below re-reads fuzzer_stats, which AFL++ rewrites on exit.
      fs::path crashes = job.work / "afl" / "default" / "crashes";
      if (fs::is_directory(crashes)) {
        for (const auto& e : fs::directory_iterator(crashes)) {
          if (e.path().filename().string().starts_with("id:")) r.raw_crashes.push_back(e.path());
        }
      }
      if (r.stats.execs == 0 && !interrupted_) {
        r.error = "afl-fuzz did not start (see " + (job.work / "engine.log").string() + ")";
      }
    } else {
      for (const auto& e : fs::directory_iterator(job.work / "artifacts")) r.raw_crashes.push_back(e.path());
      if (r.stats.execs == 0 && !interrupted_) {
        r.error = "libFuzzer did not start (see " + (job.work / "engine.log").string() + ")";
      }
    }
    std::sort(r.raw_crashes.begin(), r.raw_crashes.end());
    r.stats.crashes = r.raw_crashes.size();
    Progress(job);
    std::fprintf(stderr, "done    %-32s exit %d after %.1f s%s\n", r.name.c_str(),
                 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), r.seconds,
                 r.raw_crashes.empty() ? "" : "  (found a crash)");
  }

  // Runs every target, `o_.jobs` at a time. Returns false if interrupted.
  bool RunAll(std::vector<TargetResult>& results) {
    const int n = static_cast<int>(results.size());
    per_target_ = o_.per_target || n <= o_.jobs ? o_.seconds
                                                : std::max(10, o_.seconds * o_.jobs / n);
    std::deque<TargetResult*> queue;
    for (TargetResult& r : results) {
      if (r.error.empty()) queue.push_back(&r);
    }
    while (!queue.empty() || !jobs_.empty()) {
      if (InterruptRequested() && !interrupted_) {
        interrupted_ = true;
        queue.clear();
        std::fprintf(stderr, "interrupted: stopping %zu fuzzers\n", jobs_.size());
        for (auto& job : jobs_) Terminate(job->child);
      }
      while (!queue.empty() && static_cast<int>(jobs_.size()) < o_.jobs) {
        Start(*queue.front());
        queue.pop_front();
      }
      std::vector<pollfd> fds;
      for (auto& job : jobs_) fds.push_back({job->child.out_fd, POLLIN, 0});
      poll(fds.data(), fds.size(), 500);
      for (size_t i = 0; i < jobs_.size();) {
        Job& job = *jobs_[i];
        bool open = (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0 || Drain(job);
        if (open && Now() - job.started > per_target_ + kOverrunSeconds) {
          std::fprintf(stderr, "%s overran its budget: stopping it\n", job.result->name.c_str());
          Terminate(job.child);
        }
        if (open && Now() - job.last_progress >= kProgressEverySeconds) {
          job.last_progress = Now();
          Progress(job);
        }
        if (!open) {
          Finish(job);
          jobs_.erase(jobs_.begin() + static_cast<long>(i));
          fds.erase(fds.begin() + static_cast<long>(i));
        } else {
          ++i;
        }
      }
    }
    return !interrupted_;
  }

  // libFuzzer -merge=1 of the fuzzer's corpus (or AFL's queue) against the
  // checked-in corpus; inputs that add coverage become min-<sha1> in
  // OUT/new-corpus/<t>/ (or corpus/<t>/ with --merge-into-source).
  void Merge(TargetResult& r) {
    fs::path work = out_ / "work" / r.name;
    fs::path staging = work / "merge";
    fs::remove_all(staging);
    CopyFiles("corpus/" + r.name, staging);
    std::set<std::string> before;
    for (const auto& e : fs::directory_iterator(staging)) before.insert(e.path().filename());
    fs::path found = o_.engine == "afl" ? work / "afl" / "default" / "queue" : work / "corpus";
    RunResult m = RunToEnd({(bin_ / "libfuzzer" / r.name).string(), "-merge=1", "-rss_limit_mb=2560",
                            "-timeout=25", staging.string(), found.string()},
                           {}, 0);
    std::ofstream(work / "merge.log") << m.output;
    if (!m.ok()) {
      std::fprintf(stderr, "merge   %-32s failed (see %s)\n", r.name.c_str(), (work / "merge.log").c_str());
    } else {
      for (const auto& e : fs::directory_iterator(staging)) {
        if (before.count(e.path().filename())) continue;
        const std::string entry = "min-" + Sha1Hex(ReadFile(e.path()));
        if (fs::exists(fs::path("corpus") / r.name / entry)) continue;
        const fs::path dir = o_.merge_into_source ? fs::path("corpus") / r.name
                                                  : out_ / "new-corpus" / r.name;
        fs::create_directories(dir);
        fs::path dest = dir / entry;
        if (!fs::exists(dest)) {
          fs::copy_file(e.path(), dest);
          ++r.merged;
        }
      }
    }
    r.corpus_after = r.corpus_before + r.merged;
  }

  std::vector<std::string> ReplayArgv(const std::string& t, const std::string& input) const {
    return {(bin_ / "replay" / t).string(), input};
  }

  // Reproduces `raw` with the sanitizer replay binary, minimizes it with
  // libFuzzer and saves it as OUT/crashes/<t>/crash-<sha1>.
  void Triage(TargetResult& r, const std::string& raw) {
    Crash c;
    std::string base = fs::path(raw).filename();
    c.kind = o_.engine == "afl" ? "crash" : base.substr(0, base.find('-'));
    std::string bytes = ReadFile(raw);
    c.original_size = bytes.size();
    fs::path dir = out_ / "crashes" / r.name;
    fs::create_directories(dir);
    RunResult replay = RunToEnd(ReplayArgv(r.name, raw), {}, 120);
    c.reproduced = replay.crashed();
    // Minimizing a timeout or an OOM would take as long as the budget allows; keep those whole.
    if (c.reproduced && (c.kind == "crash" || c.kind == "leak")) {
      fs::path minimized = dir / ("minimizing-" + Sha1Hex(bytes));
      RunResult m = RunToEnd({(bin_ / "libfuzzer" / r.name).string(), "-minimize_crash=1",
                              "-max_total_time=" + std::to_string(o_.minimize_seconds), "-runs=1000000",
                              "-exact_artifact_path=" + minimized.string(), raw},
                             {}, o_.minimize_seconds + 60);
      std::string smaller = ReadFile(minimized);
      fs::remove(minimized);
      // Keep the minimized input only if the replay binary still fails on it.
      if (!smaller.empty() && smaller.size() < bytes.size()) {
        fs::path check = dir / "check";
        std::ofstream(check, std::ios::binary) << smaller;
        if (RunToEnd(ReplayArgv(r.name, check.string()), {}, 120).crashed()) bytes = smaller;
        fs::remove(check);
      }
    }
    c.size = bytes.size();
    c.path = Abs(dir / ("crash-" + Sha1Hex(bytes)));
    std::ofstream(c.path, std::ios::binary) << bytes;
    std::ofstream(c.path + ".log") << replay.output;
    r.crashes.push_back(c);
  }

 private:
  const Options& o_;
  fs::path bin_, out_;
  int per_target_ = 0;
  bool interrupted_ = false;
  std::vector<std::unique_ptr<Job>> jobs_;
};

// The `moat inspect --as KIND` for a target: the longest "_"-prefix of the
// target's name that names an inspector, e.g. frame_header_fuzzer -> frame_header.
std::string InspectCommand(const std::string& target, const std::string& path) {
  std::string name = target;
  if (name.ends_with("_fuzzer")) name.resize(name.size() - 7);
  std::string cmd = "bazel run //tools:moat -- inspect " + path;
  while (!name.empty()) {
    if (Inspectors().count(name)) return cmd + " --as " + name;
    size_t cut = name.rfind('_');
    name.resize(cut == std::string::npos ? 0 : cut);
  }
  return cmd;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string Json(const Options& o, const std::vector<TargetResult>& results, bool interrupted) {
  std::ostringstream j;
  j << "{\"engine\": " << JsonString(o.engine) << ", \"interrupted\": " << (interrupted ? "true" : "false")
    << ", \"targets\": [";
  for (size_t i = 0; i < results.size(); ++i) {
    const TargetResult& r = results[i];
    j << (i ? ", " : "") << "\n  {\"target\": " << JsonString(r.name) << ", \"error\": " << JsonString(r.error)
      << ", \"seconds\": " << static_cast<int>(r.seconds) << ", \"execs\": " << r.stats.execs
      << ", \"execs_per_sec\": " << static_cast<uint64_t>(r.stats.execs_per_sec)
      << ", \"coverage\": " << r.stats.coverage << ", \"bitmap_cvg\": " << r.stats.bitmap_cvg
      << ", \"corpus_before\": " << r.corpus_before << ", \"corpus_after\": " << r.corpus_after
      << ", \"merged\": " << r.merged << ", \"crashes\": [";
    for (size_t k = 0; k < r.crashes.size(); ++k) {
      const Crash& c = r.crashes[k];
      j << (k ? ", " : "") << "{\"kind\": " << JsonString(c.kind) << ", \"path\": " << JsonString(c.path)
        << ", \"size\": " << c.size << ", \"original_size\": " << c.original_size
        << ", \"reproduced\": " << (c.reproduced ? "true" : "false") << "}";
    }
    j << "]}";
  }
  j << "\n]}\n";
  return j.str();
}

void PrintSummary(FILE* out, const Options& o, const std::vector<TargetResult>& results) {
  std::fprintf(out, "\n%-32s %-9s %10s %-14s %-16s %s\n", "target", "engine", "exec/s",
               o.engine == "afl" ? "bitmap_cvg" : "coverage", "corpus", "crashes");
  for (const TargetResult& r : results) {
    if (!r.error.empty()) {
      std::fprintf(out, "%-32s %-9s %s\n", r.name.c_str(), o.engine.c_str(), r.error.c_str());
      continue;
    }
    std::string corpus = std::to_string(r.corpus_before) + " -> " +
                         (o.merge ? std::to_string(r.corpus_after) : std::string("(no merge)"));
    std::fprintf(out, "%-32s %-9s %10s %-14s %-16s %zu\n", r.name.c_str(), o.engine.c_str(),
                 Rate(r.stats.execs_per_sec).c_str(), Coverage(r.stats, o.engine).c_str(), corpus.c_str(),
                 r.crashes.size());
  }
  for (const TargetResult& r : results) {
    for (const Crash& c : r.crashes) {
      std::fprintf(out, "\nCRASH in %s (%s, %zu bytes, minimized from %zu)%s\n  saved:     %s\n",
                   r.name.c_str(), c.kind.c_str(), c.size, c.original_size,
                   c.reproduced ? "" : "  [did NOT reproduce in the replay binary]", c.path.c_str());
      std::fprintf(out, "  reproduce: bazel run --config=asan //fuzz:%s -- %s\n", r.name.c_str(), c.path.c_str());
      std::fprintf(out, "  inspect:   %s\n", InspectCommand(r.name, c.path).c_str());
      std::fprintf(out, "  after the fix, keep it as a regression input: cp %s corpus/%s/\n", c.path.c_str(),
                   r.name.c_str());
    }
  }
}

int RunFuzz(int argc, char** argv) {
  Options o;
  bool help = false;
  if (!ParseOptions(argc, argv, o, help)) return Usage();
  if (help) return Usage(stdout);
  // Relative paths are the caller's: under `bazel run` that is
  // BUILD_WORKING_DIRECTORY, not the runfiles tree we start in.
  if (const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY")) {
    for (std::string* dir : {&o.out_dir, &o.bin_dir}) {
      if (!dir->empty() && (*dir)[0] != '/') *dir = (fs::path(cwd) / *dir).string();
    }
  }
  // `bazel run` starts us in the runfiles tree; the corpus lives in the workspace.
  if (const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY")) {
    if (chdir(ws) != 0) return std::perror("chdir"), 2;
  }
  if (!fs::exists("fuzz/BUILD.bazel") || !fs::is_directory("corpus")) {
    std::fprintf(stderr, "moat fuzz: run it from the moat workspace root (or with bazel run)\n");
    return 2;
  }
  InstallInterruptHandler();
  const fs::path out = fs::absolute(o.out_dir);
  fs::create_directories(out);

  if (o.targets.empty()) {
    if (!o.bin_dir.empty()) {
      // Skip the .zip/.dict files a ClusterFuzzLite-style $OUT also holds.
      for (const auto& e : fs::directory_iterator(fs::path(o.bin_dir) / o.engine)) {
        std::string name = e.path().filename();
        if (e.is_regular_file() && name.find('.') == std::string::npos) o.targets.push_back(name);
      }
      std::sort(o.targets.begin(), o.targets.end());
    } else {
      std::string error;
      o.targets = DiscoverTargets(error);
      if (o.targets.empty()) {
        std::fprintf(stderr, "moat fuzz: no fuzz targets found. %s\n", error.c_str());
        return 2;
      }
    }
  }
  std::vector<TargetResult> results;
  for (const std::string& t : o.targets) results.push_back(TargetResult{.name = t});

  fs::path bin = o.bin_dir.empty() ? out / "bin" : fs::path(o.bin_dir);
  if (o.bin_dir.empty()) {
    // libfuzzer: fuzzing (libFuzzer engine), corpus merge and crash minimization;
    // asan: the replay main() under ASan+UBSan that reproduces crashes.
    std::vector<std::pair<std::string, std::string>> configs = {{"libfuzzer", "libfuzzer"}, {"asan", "replay"}};
    if (o.engine == "afl") configs.push_back({"afl", "afl"});
    for (const auto& [config, dir] : configs) {
      std::fprintf(stderr, "build   %zu targets: bazel build --config=%s\n", o.targets.size(), config.c_str());
      for (const std::string& t : Build(o.targets, config, bin / dir, out)) {
        for (TargetResult& r : results) {
          if (r.name == t && r.error.empty()) r.error = "did not build (--config=" + config + ", see " + (out / ("build-" + config + ".log")).string() + ")";
        }
      }
      if (InterruptRequested()) return 130;
    }
  }
  for (TargetResult& r : results) {
    for (const char* dir : {"libfuzzer", "replay", o.engine == "afl" ? "afl" : "libfuzzer"}) {
      if (r.error.empty() && !fs::exists(bin / dir / r.name)) r.error = "no binary " + (bin / dir / r.name).string();
    }
  }

  Runner runner(o, bin, out);
  bool completed = runner.RunAll(results);
  if (completed) {
    for (TargetResult& r : results) {
      if (!r.error.empty()) continue;
      if (o.merge) runner.Merge(r);
      for (const std::string& raw : r.raw_crashes) runner.Triage(r, raw);
      if (InterruptRequested()) break;
    }
  }
  const bool interrupted = !completed || InterruptRequested();
  std::string json = Json(o, results, interrupted);
  std::ofstream(out / "summary.json") << json;
  PrintSummary(o.json ? stderr : stdout, o, results);
  if (o.json) std::fputs(json.c_str(), stdout);
  std::fprintf(stderr, "\nlogs and crashes: %s   (summary.json)\n", out.c_str());
  if (o.merge && !o.merge_into_source && fs::is_directory(out / "new-corpus")) {
    std::fprintf(stderr,
                 "new corpus entries: %s/<target>/min-*  (keep them: cp them into corpus/<target>/, "
                 "or run with --merge-into-source)\n",
                 (out / "new-corpus").c_str());
  }
  if (interrupted) return 130;
  size_t crashes = 0;
  bool errors = false;
  for (const TargetResult& r : results) {
    crashes += r.crashes.size();
    errors = errors || !r.error.empty();
  }
  if (crashes > 0) return 1;
  return errors ? 3 : 0;
}

int Run(int argc, char** argv) {
  try {
    return RunFuzz(argc, argv);
  } catch (const std::exception& e) {  // std::filesystem reports I/O errors by throwing
    std::fprintf(stderr, "moat fuzz: %s\n", e.what());
    return 2;
  }
}

}  // namespace

MOAT_COMMAND(fuzz, "run every fuzz target for a time budget: progress, corpus merge, crash triage", Run);

}  // namespace moat::tools::fuzz
