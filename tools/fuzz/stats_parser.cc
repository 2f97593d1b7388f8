#include "tools/fuzz/stats_parser.h"

#include <charconv>
#include <cstdlib>
#include <optional>

namespace moat::tools::fuzz {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::optional<uint64_t> ParseUint(std::string_view s) {
  s = Trim(s);
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  return v;
}

// strtod, because std::from_chars for double is not in libstdc++ before 11.
std::optional<double> ParseDouble(std::string_view s) {
  std::string copy(Trim(s));
  if (copy.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(copy.c_str(), &end);
  if (end == copy.c_str()) return std::nullopt;
  return v;
}

// The unsigned number that follows `key` in `line`, e.g. "cov: 280".
std::optional<uint64_t> NumberAfter(std::string_view line, std::string_view key) {
  size_t at = line.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = line.substr(at + key.size());
  size_t digits = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
  return ParseUint(rest.substr(0, digits));
}

}  // namespace

bool ParseLibFuzzerLine(std::string_view line, FuzzStats& stats) {
  line = Trim(line);
  // "Test unit written to ./crash-<sha1>" (also leak-, timeout-, oom-).
  constexpr std::string_view kWritten = "Test unit written to ";
  if (size_t at = line.find(kWritten); at != std::string_view::npos) {
    stats.artifacts.emplace_back(Trim(line.substr(at + kWritten.size())));
    ++stats.crashes;
    return true;
  }
  // Final stats (-print_final_stats=1): "stat::average_exec_per_sec: 108966".
  if (line.starts_with("stat::")) {
    size_t colon = line.find(':', 6);
    if (colon == std::string_view::npos) return false;
    std::string_view key = line.substr(6, colon - 6);
    auto value = ParseUint(line.substr(colon + 1));
    if (!value) return false;
    if (key == "number_of_executed_units") stats.execs = *value;
    // libFuzzer prints 0 for runs under a second; keep the last real rate then.
    else if (key == "average_exec_per_sec") {
      if (*value > 0) stats.execs_per_sec = static_cast<double>(*value);
    } else {
      return false;
    }
    return true;
  }
  // Progress: "#435865\tDONE   cov: 280 ft: 314 corp: 18/316b lim: 4096 exec/s: 108966 rss: 467Mb".
  if (!line.starts_with("#")) return false;
  auto execs = NumberAfter(line, "#");
  auto cov = NumberAfter(line, "cov: ");
  if (!execs || !cov) return false;
  stats.execs = *execs;
  stats.coverage = *cov;
  if (auto corp = NumberAfter(line, "corp: ")) stats.corpus_count = *corp;
  // exec/s is 0 until libFuzzer has run for a second; keep the last real rate.
  if (auto rate = NumberAfter(line, "exec/s: "); rate && *rate > 0) {
    stats.execs_per_sec = static_cast<double>(*rate);
  }
  if (line.find("DONE") != std::string_view::npos) stats.done = true;
  return true;
}

bool ParseAflStatusLine(std::string_view line, FuzzStats& stats) {
  // "... Fuzzing test case #7 (17 total, 0 crashes saved, perf_score=172, ...)"
  size_t open = line.find('(');
  if (open == std::string_view::npos || line.find(" total, ", open) == std::string_view::npos) {
    return false;
  }
  auto total = NumberAfter(line, "(");
  size_t after_total = line.find(" total, ", open) + 8;
  auto crashes = NumberAfter(line.substr(after_total), "");
  if (!total || !crashes || line.find(" crashes saved", after_total) == std::string_view::npos) {
    return false;
  }
  stats.corpus_count = *total;
  stats.crashes = *crashes;
  return true;
}

FuzzStats ParseAflFuzzerStats(std::string_view contents) {
  FuzzStats stats;
  stats.bitmap_cvg = 0;
  while (!contents.empty()) {
    size_t eol = contents.find('\n');
    std::string_view line = contents.substr(0, eol);
    contents = eol == std::string_view::npos ? std::string_view() : contents.substr(eol + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = Trim(line.substr(0, colon));
    std::string_view value = Trim(line.substr(colon + 1));
    if (key == "execs_done") {
      stats.execs = ParseUint(value).value_or(0);
    } else if (key == "execs_per_sec") {
      stats.execs_per_sec = ParseDouble(value).value_or(0);
    } else if (key == "bitmap_cvg") {
      if (value.ends_with("%")) value.remove_suffix(1);
      stats.bitmap_cvg = ParseDouble(value).value_or(0);
    } else if (key == "edges_found") {
      stats.edges_found = ParseUint(value).value_or(0);
    } else if (key == "corpus_count" || key == "paths_total") {  // paths_total: AFL++ < 4
      stats.corpus_count = ParseUint(value).value_or(0);
    } else if (key == "saved_crashes" || key == "unique_crashes") {  // unique_crashes: AFL++ < 4
      stats.crashes = ParseUint(value).value_or(0);
    }
  }
  return stats;
}

}  // namespace moat::tools::fuzz
