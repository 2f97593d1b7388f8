// The parsers against lines captured from the real engines on this project's
// frame_header_fuzzer (libFuzzer of clang-14, AFL++ 4.04c).
#include "tools/fuzz/stats_parser.h"

#include <gtest/gtest.h>

namespace moat::tools::fuzz {
namespace {

TEST(LibFuzzerLine, ProgressLinesUpdateExecsCoverageAndCorpus) {
  FuzzStats s;
  EXPECT_TRUE(ParseLibFuzzerLine("#6\tINITED cov: 81 ft: 82 corp: 2/50b exec/s: 0 rss: 31Mb", s));
  EXPECT_EQ(s.execs, 6u);
  EXPECT_EQ(s.coverage, 81u);
  EXPECT_EQ(s.corpus_count, 2u);
  EXPECT_EQ(s.execs_per_sec, 0);
  EXPECT_TRUE(ParseLibFuzzerLine(
      "#262144\tpulse  cov: 280 ft: 314 corp: 18/316b lim: 2611 exec/s: 131072 rss: 312Mb", s));
  EXPECT_EQ(s.execs_per_sec, 131072);
  EXPECT_FALSE(s.done);
  EXPECT_TRUE(ParseLibFuzzerLine(
      "#435865\tDONE   cov: 280 ft: 314 corp: 18/316b lim: 4096 exec/s: 108966 rss: 467Mb", s));
  EXPECT_EQ(s.execs, 435865u);
  EXPECT_EQ(s.coverage, 280u);
  EXPECT_EQ(s.corpus_count, 18u);
  EXPECT_EQ(s.execs_per_sec, 108966);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.crashes, 0u);
}

TEST(LibFuzzerLine, NewAndReduceLinesCarryStats) {
  FuzzStats s;
  EXPECT_TRUE(ParseLibFuzzerLine(
      "#2645\tNEW    cov: 280 ft: 314 corp: 18/316b lim: 38 exec/s: 0 rss: 35Mb L: 25/25 MS: 1 "
      "ChangeBit-",
      s));
  EXPECT_EQ(s.coverage, 280u);
  EXPECT_TRUE(ParseLibFuzzerLine(
      "#1176\tREDUCE cov: 272 ft: 306 corp: 17/294b lim: 29 exec/s: 0 rss: 33Mb L: 5/25 MS: 3 "
      "ChangeBit-CMP-CrossOver- DE: \"\\000\\000\\000\\004\"-",
      s));
  EXPECT_EQ(s.coverage, 272u);
  EXPECT_EQ(s.corpus_count, 17u);
}

TEST(LibFuzzerLine, CrashArtifactIsRecorded) {
  FuzzStats s;
  EXPECT_FALSE(ParseLibFuzzerLine("SUMMARY: libFuzzer: deadly signal", s));
  EXPECT_TRUE(ParseLibFuzzerLine(
      "artifact_prefix='art/'; Test unit written to art/crash-c94720e80e8da5afd1861151f5693a19b65c2b03",
      s));
  ASSERT_EQ(s.artifacts.size(), 1u);
  EXPECT_EQ(s.artifacts[0], "art/crash-c94720e80e8da5afd1861151f5693a19b65c2b03");
  EXPECT_EQ(s.crashes, 1u);
}

TEST(LibFuzzerLine, FinalStatsKeepTheLastRealRate) {
  FuzzStats s;
  s.execs_per_sec = 5000;
  EXPECT_TRUE(ParseLibFuzzerLine("stat::number_of_executed_units: 111541", s));
  EXPECT_TRUE(ParseLibFuzzerLine("stat::average_exec_per_sec:     0", s));
  EXPECT_EQ(s.execs, 111541u);
  EXPECT_EQ(s.execs_per_sec, 5000);  // a sub-second run reports 0
  EXPECT_TRUE(ParseLibFuzzerLine("stat::average_exec_per_sec:     108966", s));
  EXPECT_EQ(s.execs_per_sec, 108966);
  EXPECT_FALSE(ParseLibFuzzerLine("stat::peak_rss_mb:              39", s));
}

TEST(LibFuzzerLine, OtherLinesAreIgnored) {
  FuzzStats s;
  EXPECT_FALSE(ParseLibFuzzerLine("INFO: Seed: 283028778", s));
  EXPECT_FALSE(ParseLibFuzzerLine(
      "INFO: Loaded 1 modules   (815 inline 8-bit counters): 815 [0x5573f2303b70, 0x5573f2303e9f), ",
      s));
  EXPECT_FALSE(ParseLibFuzzerLine(
      "    #7 0x558664b6213e in LLVMFuzzerTestOneInput (/tmp/fz/crashy+0x11d13e)", s));
  EXPECT_FALSE(ParseLibFuzzerLine("", s));
  EXPECT_EQ(s.execs, 0u);
  EXPECT_EQ(s.coverage, 0u);
}

TEST(AflStatusLine, CorpusAndCrashesFromNoUiOutput) {
  FuzzStats s;
  EXPECT_TRUE(ParseAflStatusLine(
      "\x1b[1;94m[*] \x1b[0mFuzzing test case #7 (17 total, 0 crashes saved, perf_score=172, "
      "exec_us=28, hits=151013, map=46, ascii=0)...\x1b[0m",
      s));
  EXPECT_EQ(s.corpus_count, 17u);
  EXPECT_EQ(s.crashes, 0u);
  EXPECT_TRUE(ParseAflStatusLine(
      "[*] Fuzzing test case #2 (31 total, 3 crashes saved, perf_score=100, exec_us=40, hits=1, "
      "map=50, ascii=0)...",
      s));
  EXPECT_EQ(s.corpus_count, 31u);
  EXPECT_EQ(s.crashes, 3u);
  EXPECT_FALSE(ParseAflStatusLine("\x1b[1;94m[*] \x1b[0mEntering queue cycle 27.\x1b[0m", s));
  EXPECT_FALSE(ParseAflStatusLine("[+] All test cases processed.", s));
}

TEST(AflFuzzerStats, ParsesTheStatsFile) {
  constexpr char kStats[] =
      "start_time        : 1795316576\n"
      "last_update       : 1795316591\n"
      "run_time          : 15\n"
      "cycles_done       : 26\n"
      "execs_done        : 493504\n"
      "execs_per_sec     : 32895.88\n"
      "execs_ps_last_min : 0.00\n"
      "corpus_count      : 17\n"
      "corpus_found      : 12\n"
      "stability         : 100.00%\n"
      "bitmap_cvg        : 28.11%\n"
      "saved_crashes     : 0\n"
      "saved_hangs       : 0\n"
      "edges_found       : 183\n"
      "total_edges       : 651\n"
      "afl_banner        : ./afl/frame_header_fuzzer\n"
      "target_mode       : persistent shmem_testcase deferred \n"
      "command_line      : afl-fuzz -V 15 -i corpus/frame_header_fuzzer -o aflout -- ./a\n";
  FuzzStats s = ParseAflFuzzerStats(kStats);
  EXPECT_EQ(s.execs, 493504u);
  EXPECT_DOUBLE_EQ(s.execs_per_sec, 32895.88);
  EXPECT_DOUBLE_EQ(s.bitmap_cvg, 28.11);
  EXPECT_EQ(s.edges_found, 183u);
  EXPECT_EQ(s.corpus_count, 17u);
  EXPECT_EQ(s.crashes, 0u);
}

TEST(AflFuzzerStats, OlderKeyNamesAndCrashes) {
  FuzzStats s = ParseAflFuzzerStats("paths_total : 40\nunique_crashes : 2\nbitmap_cvg : 1.50%");
  EXPECT_EQ(s.corpus_count, 40u);
  EXPECT_EQ(s.crashes, 2u);
  EXPECT_DOUBLE_EQ(s.bitmap_cvg, 1.5);
  EXPECT_EQ(ParseAflFuzzerStats("").execs, 0u);
}

}  // namespace
}  // namespace moat::tools::fuzz
