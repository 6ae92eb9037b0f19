// DummyClient --hosts (apps/dummy_client/host_list.h): HOST:PORT lists read
// or refused with a reason, and sessions dealt out to the hosts in turn.
#include "apps/dummy_client/host_list.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace game {
namespace {

std::vector<HostPort> Parse(const std::string& text) {
  std::vector<HostPort> hosts;
  std::string error;
  EXPECT_TRUE(ParseHostList(text, &hosts, &error)) << text << ": " << error;
  return hosts;
}

std::string Refusal(const std::string& text) {
  std::vector<HostPort> hosts = {{"kept", 1}};
  std::string error;
  EXPECT_FALSE(ParseHostList(text, &hosts, &error)) << text;
  EXPECT_EQ(hosts, (std::vector<HostPort>{{"kept", 1}})) << "changed on error";
  return error;
}

TEST(HostListTest, ReadsIpv4NamesAndBracketedIpv6) {
  EXPECT_EQ(Parse("127.0.0.1:7777"),
            (std::vector<HostPort>{{"127.0.0.1", 7777}}));
  EXPECT_EQ(Parse("10.0.0.1:1,game-2.local:65535,[::1]:7778"),
            (std::vector<HostPort>{
                {"10.0.0.1", 1}, {"game-2.local", 65535}, {"::1", 7778}}));
}

TEST(HostListTest, TheSameServerMayBeListedTwice) {
  EXPECT_EQ(Parse("127.0.0.1:9,127.0.0.1:9"),
            (std::vector<HostPort>{{"127.0.0.1", 9}, {"127.0.0.1", 9}}));
}

TEST(HostListTest, NamesAreWrittenAsOnTheCommandLine) {
  EXPECT_EQ((HostPort{"127.0.0.1", 7777}).Name(), "127.0.0.1:7777");
  EXPECT_EQ((HostPort{"::1", 7778}).Name(), "[::1]:7778");
}

TEST(HostListTest, RefusesBadInputSayingWhy) {
  EXPECT_EQ(Refusal(""), "empty entry in ''");
  EXPECT_EQ(Refusal("a:1,"), "empty entry in 'a:1,'");
  EXPECT_EQ(Refusal("a:1,,b:2"), "empty entry in 'a:1,,b:2'");
  EXPECT_EQ(Refusal("localhost"), "'localhost': expected HOST:PORT");
  EXPECT_EQ(Refusal(":7777"), "':7777': no host");
  EXPECT_EQ(Refusal("[]:7777"), "'[]:7777': no host");
  EXPECT_EQ(Refusal("a:"), "'a:': the port must be 1 to 65535");
  EXPECT_EQ(Refusal("a:0"), "'a:0': the port must be 1 to 65535");
  EXPECT_EQ(Refusal("a:65536"), "'a:65536': the port must be 1 to 65535");
  EXPECT_EQ(Refusal("a:-1"), "'a:-1': the port must be 1 to 65535");
  EXPECT_EQ(Refusal("a:+1"), "'a:+1': the port must be 1 to 65535");
  EXPECT_EQ(Refusal("a:77x"), "'a:77x': the port must be 1 to 65535");
  EXPECT_EQ(Refusal("a:1 "), "'a:1 ': the port must be 1 to 65535");
  EXPECT_EQ(Refusal("::1:7777"),
            "'::1:7777': an IPv6 address goes in brackets: [::1]:7777");
  EXPECT_EQ(Refusal("[::1:7777"), "'[::1:7777': no ']' after the IPv6 address");
  EXPECT_EQ(Refusal("[::1]7777"), "'[::1]7777': expected ':PORT' after ']'");
  EXPECT_EQ(Refusal("[::1]"), "'[::1]': expected ':PORT' after ']'");
  EXPECT_EQ(Refusal("a b:1"), "'a b:1': bad character in the host");
  EXPECT_EQ(Refusal("a\":1"), "'a\":1': bad character in the host");
  // One bad entry refuses the whole list.
  EXPECT_EQ(Refusal("a:1,b"), "'b': expected HOST:PORT");
}

TEST(HostListTest, SessionsGoToTheHostsInTurn) {
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(HostOf(i, 1), 0u);
  const std::vector<size_t> expected = {0, 1, 2, 0, 1, 2, 0};
  for (uint32_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(HostOf(i, 3), expected[i]) << i;
  }
  // A room of consecutive sessions spreads over every host.
  EXPECT_NE(HostOf(4, 2), HostOf(5, 2));
}

TEST(HostListTest, SessionsOnHostAddUpAndDifferByAtMostOne) {
  for (size_t hosts = 1; hosts <= 4; ++hosts) {
    for (size_t sessions = 0; sessions <= 9; ++sessions) {
      std::vector<size_t> counted(hosts);
      for (uint32_t i = 0; i < sessions; ++i) ++counted[HostOf(i, hosts)];
      for (size_t h = 0; h < hosts; ++h) {
        EXPECT_EQ(SessionsOnHost(h, hosts, sessions), counted[h])
            << h << " of " << hosts << ", " << sessions << " sessions";
      }
    }
  }
  EXPECT_EQ(SessionsOnHost(3, 3, 10), 0u);
}

}  // namespace
}  // namespace game
