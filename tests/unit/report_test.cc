// DummyClient's summary (apps/dummy_client/report.h): every error counter
// fails the run, and each is printed and written to the JSON under its name.
#include "apps/dummy_client/report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

namespace game {
namespace {

Summary Clean() {
  Summary s;
  s.mode = "chat";
  s.sent = 10;
  return s;
}

std::string JsonOf(const Summary& s) {
  // One file per test process: ctest runs these tests in parallel.
  const std::string path =
      testing::TempDir() + "report_test_" +
      testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
      std::to_string(getpid()) + ".json";
  EXPECT_TRUE(WriteJson(s, path));
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  std::remove(path.c_str());
  return text;
}

TEST(ReportTest, ARunWithoutErrorsIsOk) {
  const Summary s = Clean();
  EXPECT_EQ(s.errors(), 0u);
  EXPECT_TRUE(s.ok());
  EXPECT_NE(JsonOf(s).find("\"ok\": true"), std::string::npos);
}

TEST(ReportTest, ARunThatSentNothingIsNotOk) {
  Summary s = Clean();
  s.sent = 0;
  EXPECT_FALSE(s.ok());
}

TEST(ReportTest, EveryErrorCounterFailsTheRunAndIsReportedByName) {
  std::vector<uint64_t Summary::*> seen;
  std::set<std::string> names;
  for (const ErrorField& field : ErrorFields()) {
    SCOPED_TRACE(field.json);
    EXPECT_EQ(std::find(seen.begin(), seen.end(), field.count), seen.end())
        << "listed twice";
    seen.push_back(field.count);
    EXPECT_TRUE(names.insert(field.json).second) << "name used twice";
    Summary s = Clean();
    s.*field.count = 12345;
    EXPECT_EQ(s.errors(), 12345u);
    EXPECT_FALSE(s.ok());
    const std::string json = JsonOf(s);
    EXPECT_NE(json.find("\"" + std::string(field.json) + "\": 12345"),
              std::string::npos)
        << json;
    EXPECT_NE(json.find("\"ok\": false"), std::string::npos);

    testing::internal::CaptureStdout();
    PrintSummary(s);
    const std::string text = testing::internal::GetCapturedStdout();
    EXPECT_NE(text.find("  " + std::string(field.text) + " 12345"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("result   FAILED"), std::string::npos);
  }
  // The counters a run can raise: the client's own and the world's rules.
  EXPECT_EQ(seen.size(), 24u);
}

TEST(ReportTest, LatenessIsPrintedWithItsWorstCase) {
  Summary s = Clean();
  s.late = 2;
  s.worst_late_ms = 7.25;
  s.peer_late = 3;
  s.worst_peer_late_ms = 9.5;
  testing::internal::CaptureStdout();
  PrintSummary(s);
  const std::string text = testing::internal::GetCapturedStdout();
  EXPECT_NE(text.find("  late 2 (worst 7.2 ms)"), std::string::npos) << text;
  EXPECT_NE(text.find("  peer-late 3 (worst 9.5 ms)"), std::string::npos)
      << text;
}

}  // namespace
}  // namespace game
