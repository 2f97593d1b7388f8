// Parsers for what the fuzzing engines report, kept apart from process
// management so they can be unit-tested against real engine output.
//
//   moat::tools::fuzz::FuzzStats stats;
//   for (each stderr line of libFuzzer) ParseLibFuzzerLine(line, stats);
//   // stats.execs_per_sec, stats.coverage, stats.corpus_count, stats.artifacts
//
//   stats = ParseAflFuzzerStats(contents_of("OUT/default/fuzzer_stats"));
//
// libFuzzer reports "cov:" (covered edges/PCs, an absolute count); AFL++
// reports "bitmap_cvg" (percent of its edge map). They are not comparable, so
// both are kept and the report says which one it shows.
#ifndef MOAT_TOOLS_FUZZ_STATS_PARSER_H_
#define MOAT_TOOLS_FUZZ_STATS_PARSER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moat::tools::fuzz {

struct FuzzStats {
  uint64_t execs = 0;
  double execs_per_sec = 0;
  uint64_t coverage = 0;        // libFuzzer "cov:"; 0 for AFL
  double bitmap_cvg = -1;       // AFL "bitmap_cvg" in percent; -1 for libFuzzer
  uint64_t edges_found = 0;     // AFL "edges_found"
  uint64_t corpus_count = 0;    // entries in the engine's working corpus
  uint64_t crashes = 0;         // crashing inputs the engine saved
  std::vector<std::string> artifacts;  // libFuzzer "Test unit written to PATH"
  bool done = false;            // libFuzzer printed its final "DONE" line
};

// Updates `stats` from one line of libFuzzer's stderr. Returns true if the
// line carried statistics (progress, final stats, or a saved artifact).
bool ParseLibFuzzerLine(std::string_view line, FuzzStats& stats);

// Updates `stats` from one line of AFL++'s AFL_NO_UI stdout, e.g.
// "[*] Fuzzing test case #7 (17 total, 0 crashes saved, ...)". Returns true if
// the line carried statistics. Colour escape codes are tolerated.
bool ParseAflStatusLine(std::string_view line, FuzzStats& stats);

// Parses AFL++'s OUT/default/fuzzer_stats ("key : value" lines).
FuzzStats ParseAflFuzzerStats(std::string_view contents);

}  // namespace moat::tools::fuzz

#endif  // MOAT_TOOLS_FUZZ_STATS_PARSER_H_
