#include "servercore/recv_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

namespace servercore {
namespace {

static_assert(!std::is_copy_constructible_v<RecvBuffer>);
static_assert(!std::is_copy_assignable_v<RecvBuffer>);
static_assert(std::is_nothrow_move_constructible_v<RecvBuffer>);
static_assert(std::is_nothrow_move_assignable_v<RecvBuffer>);

// Bytes 0, 1, 2, ... (mod 256), so a moved byte shows where it came from.
std::vector<std::byte> Pattern(size_t n, size_t start = 0) {
  std::vector<std::byte> bytes(n);
  for (size_t i = 0; i < n; ++i) {
    bytes[i] = static_cast<std::byte>((start + i) & 0xFF);
  }
  return bytes;
}

// Copies `bytes` into the writable tail and commits them.
void Write(RecvBuffer& buffer, const std::vector<std::byte>& bytes) {
  ASSERT_LE(bytes.size(), buffer.FreeSize());
  std::memcpy(buffer.WritePos(), bytes.data(), bytes.size());
  buffer.OnWrite(bytes.size());
}

std::vector<std::byte> Contents(const RecvBuffer& buffer) {
  return {buffer.Data().begin(), buffer.Data().end()};
}

TEST(RecvBufferTest, NewBufferIsEmptyWithAllRoomFree) {
  RecvBuffer buffer(64);
  EXPECT_EQ(buffer.Capacity(), 64u);
  EXPECT_EQ(buffer.DataSize(), 0u);
  EXPECT_EQ(buffer.FreeSize(), 64u);
  EXPECT_EQ(buffer.ReadPos(), buffer.WritePos());
  EXPECT_TRUE(buffer.Data().empty());
  EXPECT_EQ(buffer.Free().data(), buffer.WritePos());
  EXPECT_EQ(buffer.Free().size(), 64u);
}

TEST(RecvBufferTest, OnWriteAndOnReadMoveTheCursors) {
  RecvBuffer buffer(64);
  std::byte* const base = buffer.WritePos();

  Write(buffer, Pattern(10));
  EXPECT_EQ(buffer.DataSize(), 10u);
  EXPECT_EQ(buffer.FreeSize(), 54u);
  EXPECT_EQ(buffer.ReadPos(), base);
  EXPECT_EQ(buffer.WritePos(), base + 10);
  EXPECT_EQ(Contents(buffer), Pattern(10));

  buffer.OnRead(4);
  EXPECT_EQ(buffer.DataSize(), 6u);
  EXPECT_EQ(buffer.FreeSize(), 54u);  // reading frees nothing before Clean()
  EXPECT_EQ(buffer.ReadPos(), base + 4);
  EXPECT_EQ(Contents(buffer), Pattern(6, 4));

  Write(buffer, Pattern(5, 10));
  EXPECT_EQ(buffer.DataSize(), 11u);
  EXPECT_EQ(buffer.FreeSize(), 49u);
  EXPECT_EQ(Contents(buffer), Pattern(11, 4));

  buffer.OnRead(0);
  buffer.OnWrite(0);
  EXPECT_EQ(buffer.DataSize(), 11u);
  EXPECT_EQ(buffer.FreeSize(), 49u);
}

TEST(RecvBufferTest, ConstReadPosMatchesData) {
  RecvBuffer buffer(16);
  Write(buffer, Pattern(8));
  buffer.OnRead(3);
  const RecvBuffer& view = buffer;
  EXPECT_EQ(view.ReadPos(), buffer.ReadPos());
  EXPECT_EQ(view.Data().data(), view.ReadPos());
  EXPECT_EQ(view.Data().size(), 5u);
}

TEST(RecvBufferTest, FillsToExactlyCapacity) {
  RecvBuffer buffer(32);
  Write(buffer, Pattern(32));
  EXPECT_EQ(buffer.FreeSize(), 0u);
  EXPECT_TRUE(buffer.Free().empty());
  EXPECT_EQ(buffer.DataSize(), 32u);

  buffer.OnRead(32);
  EXPECT_EQ(buffer.DataSize(), 0u);
  EXPECT_EQ(buffer.FreeSize(), 0u);  // until Clean()
}

TEST(RecvBufferTest, CleanOnEmptyRewindsBothCursors) {
  RecvBuffer buffer(32);
  std::byte* const base = buffer.WritePos();
  Write(buffer, Pattern(20));
  buffer.OnRead(20);

  buffer.Clean();
  EXPECT_EQ(buffer.ReadPos(), base);
  EXPECT_EQ(buffer.WritePos(), base);
  EXPECT_EQ(buffer.DataSize(), 0u);
  EXPECT_EQ(buffer.FreeSize(), 32u);
}

TEST(RecvBufferTest, CleanMovesUnreadBytesToTheFrontWithoutReallocating) {
  RecvBuffer buffer(32);
  std::byte* const base = buffer.WritePos();
  Write(buffer, Pattern(30));
  buffer.OnRead(25);  // 5 unread bytes at offset 25: a partial packet

  buffer.Clean();
  EXPECT_EQ(buffer.ReadPos(), base);  // same storage: no reallocation
  EXPECT_EQ(buffer.DataSize(), 5u);
  EXPECT_EQ(buffer.FreeSize(), 27u);  // maximal: Capacity() - DataSize()
  EXPECT_EQ(Contents(buffer), Pattern(5, 25));

  // The freed room is usable and lands right after the kept bytes.
  Write(buffer, Pattern(27, 30));
  EXPECT_EQ(buffer.FreeSize(), 0u);
  EXPECT_EQ(Contents(buffer), Pattern(32, 25));
}

TEST(RecvBufferTest, CleanHandlesOverlappingMove) {
  // 20 unread bytes moved 4 to the left: source and destination overlap.
  RecvBuffer buffer(24);
  std::byte* const base = buffer.WritePos();
  Write(buffer, Pattern(24));
  buffer.OnRead(4);

  buffer.Clean();
  EXPECT_EQ(buffer.ReadPos(), base);
  EXPECT_EQ(buffer.FreeSize(), 4u);
  EXPECT_EQ(Contents(buffer), Pattern(20, 4));
}

TEST(RecvBufferTest, CleanWhenAlreadyAtTheFrontChangesNothing) {
  RecvBuffer buffer(16);
  std::byte* const base = buffer.WritePos();
  Write(buffer, Pattern(7));

  buffer.Clean();
  EXPECT_EQ(buffer.ReadPos(), base);
  EXPECT_EQ(buffer.DataSize(), 7u);
  EXPECT_EQ(buffer.FreeSize(), 9u);
  EXPECT_EQ(Contents(buffer), Pattern(7));
}

TEST(RecvBufferTest, ManyRoundsKeepTheSameStorage) {
  RecvBuffer buffer(16);
  std::byte* const base = buffer.WritePos();
  size_t next = 0;      // next pattern byte to write
  size_t expected = 0;  // next pattern byte to read
  for (int round = 0; round < 100; ++round) {
    const size_t n = std::min<size_t>(buffer.FreeSize(), 7);
    Write(buffer, Pattern(n, next));
    next += n;
    ASSERT_EQ(Contents(buffer), Pattern(next - expected, expected));
    const size_t take = buffer.DataSize() / 2 + 1;
    buffer.OnRead(take);
    expected += take;
    buffer.Clean();
    ASSERT_EQ(buffer.ReadPos(), base);
    ASSERT_EQ(buffer.FreeSize(), buffer.Capacity() - buffer.DataSize());
  }
  EXPECT_EQ(Contents(buffer), Pattern(next - expected, expected));
}

TEST(RecvBufferTest, MoveTransfersStorageAndEmptiesTheSource) {
  RecvBuffer source(16);
  std::byte* const base = source.WritePos();
  Write(source, Pattern(6));
  source.OnRead(2);

  RecvBuffer moved(std::move(source));
  EXPECT_EQ(moved.ReadPos(), base + 2);
  EXPECT_EQ(moved.Capacity(), 16u);
  EXPECT_EQ(Contents(moved), Pattern(4, 2));
  // NOLINTNEXTLINE(bugprone-use-after-move): the moved-from state is defined.
  EXPECT_EQ(source.Capacity(), 0u);
  EXPECT_EQ(source.DataSize(), 0u);
  EXPECT_EQ(source.FreeSize(), 0u);

  RecvBuffer assigned(4);
  assigned = std::move(moved);
  EXPECT_EQ(assigned.ReadPos(), base + 2);
  EXPECT_EQ(Contents(assigned), Pattern(4, 2));
  EXPECT_EQ(moved.Capacity(), 0u);  // NOLINT(bugprone-use-after-move)
}

// Death tests fork; "threadsafe" re-executes the binary so they also work
// under TSan/ASan and with other threads running.
class RecvBufferDeathTest : public testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(RecvBufferDeathTest, OnReadPastTheDataAborts) {
  RecvBuffer buffer(16);
  Write(buffer, Pattern(4));
  EXPECT_DEATH(buffer.OnRead(5),
               "RecvBuffer::OnRead: n=5 exceeds DataSize\\(\\)=4");
}

TEST_F(RecvBufferDeathTest, OnReadOnEmptyAborts) {
  RecvBuffer buffer(16);
  EXPECT_DEATH(buffer.OnRead(1),
               "RecvBuffer::OnRead: n=1 exceeds DataSize\\(\\)=0");
}

TEST_F(RecvBufferDeathTest, OnWritePastTheFreeRoomAborts) {
  RecvBuffer buffer(16);
  Write(buffer, Pattern(10));
  EXPECT_DEATH(buffer.OnWrite(7),
               "RecvBuffer::OnWrite: n=7 exceeds FreeSize\\(\\)=6");
}

}  // namespace
}  // namespace servercore
