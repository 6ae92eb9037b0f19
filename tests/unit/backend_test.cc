#include "servercore/backend.h"

#include <gtest/gtest.h>

#include <set>
#include <string_view>

#include "servercore/disconnect_reason.h"

namespace servercore {
namespace {

TEST(BackendTest, ParsesEveryNameAndRoundTrips) {
  EXPECT_EQ(ParseBackend("auto"), Backend::kAuto);
  EXPECT_EQ(ParseBackend("uring"), Backend::kUring);
  EXPECT_EQ(ParseBackend("io_uring"), Backend::kUring);
  EXPECT_EQ(ParseBackend("epoll"), Backend::kEpoll);
  for (Backend b : {Backend::kAuto, Backend::kUring, Backend::kEpoll}) {
    EXPECT_EQ(ParseBackend(ToString(b)), b);
  }
}

TEST(BackendTest, RejectsUnknownNames) {
  EXPECT_FALSE(ParseBackend("").has_value());
  EXPECT_FALSE(ParseBackend("EPOLL").has_value());
  EXPECT_FALSE(ParseBackend("select").has_value());
}

TEST(DisconnectReasonTest, EveryReasonHasItsOwnName) {
  std::set<std::string_view> names;
  for (size_t i = 0; i < kDisconnectReasonCount; ++i) {
    const std::string_view name = ToString(static_cast<DisconnectReason>(i));
    EXPECT_NE(name, "?");
    names.insert(name);
  }
  EXPECT_EQ(names.size(), kDisconnectReasonCount);
}

}  // namespace
}  // namespace servercore
