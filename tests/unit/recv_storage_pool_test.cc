#include "recv_storage_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "servercore/recv_buffer.h"

namespace servercore::internal {
namespace {

bool PageAligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 4096 == 0;
}

TEST(RecvStoragePoolTest, BlocksArePageAlignedDistinctAndWritable) {
  RecvStoragePool& pool = RecvStoragePool::Instance();
  std::vector<std::byte*> blocks;
  std::set<std::byte*> seen;
  for (int i = 0; i < 100; ++i) {  // more than one slab's worth
    std::byte* b = pool.Take(16 * 1024);
    ASSERT_NE(b, nullptr);
    EXPECT_TRUE(PageAligned(b));
    EXPECT_TRUE(seen.insert(b).second) << "block handed out twice";
    std::memset(b, i, 16 * 1024);
    blocks.push_back(b);
  }
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(blocks[static_cast<size_t>(i)][16 * 1024 - 1],
              static_cast<std::byte>(i))
        << "blocks overlap";
  }
  for (std::byte* b : blocks) pool.Give(b, 16 * 1024);
}

TEST(RecvStoragePoolTest, ZeroCapacityIsNull) {
  EXPECT_EQ(RecvStoragePool::Instance().Take(0), nullptr);
  RecvStoragePool::Instance().Give(nullptr, 0);
}

TEST(RecvStoragePoolTest, OddSizesGetWholePages) {
  RecvStoragePool& pool = RecvStoragePool::Instance();
  std::byte* a = pool.Take(5000);
  std::byte* b = pool.Take(5000);
  EXPECT_TRUE(PageAligned(a));
  EXPECT_TRUE(PageAligned(b));
  std::memset(a, 1, 5000);
  std::memset(b, 2, 5000);
  EXPECT_EQ(a[4999], std::byte{1});
  pool.Give(a, 5000);
  pool.Give(b, 5000);
}

TEST(RecvStoragePoolTest, RecvBufferStorageComesFromThePool) {
  RecvBuffer buffer(16 * 1024);
  EXPECT_TRUE(PageAligned(buffer.WritePos()));
  RecvBuffer moved(std::move(buffer));
  EXPECT_TRUE(PageAligned(moved.WritePos()));
  EXPECT_EQ(moved.Capacity(), 16u * 1024);
}

}  // namespace
}  // namespace servercore::internal
