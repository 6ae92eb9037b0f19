// MovePath: where DummyClient's session number `index` says it is in its
// C_MOVE number `seq` (--mode move). Each session walks its own circle
// around the origin, one lap every kStepsPerLap moves, with a radius and a
// starting angle of its own, so two sessions never send the same position
// for the same seq (short of a float rounding accident): a session can
// recognise its own entity in a snapshot (its id is the server's to choose)
// by the position its last_seq names, and so can every other member of its
// room (IndexResidue narrows the candidates down to one in most runs).
// Every point lies within ±9000, inside the world's ±10000.
//
// Thread safety: immutable after construction.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_MOVE_PATH_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_MOVE_PATH_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace game {

struct Position {
  float x = 0;
  float y = 0;
  friend bool operator==(const Position&, const Position&) = default;
};

class MovePath {
 public:
  static constexpr int kStepsPerLap = 100;
  // Radii are 1000 + (index * 37) % kRadii, whole numbers.
  static constexpr uint32_t kRadii = 8000;

  explicit MovePath(uint32_t index)
      : radius_(1000.0 + static_cast<double>((uint64_t{index} * 37) % kRadii)),
        // The golden angle apart: starting points never line up.
        phase_(static_cast<double>(index) * 2.399963229728653) {}

  // The session index of a point of some path, modulo kRadii: the index
  // whose radius is the point's distance from the origin. Only At() with
  // that index's candidates (residue + k * kRadii) says which it is.
  static uint32_t IndexResidue(Position p) noexcept {
    constexpr uint64_t kInverseOf37 = 4973;  // 37 * 4973 % 8000 == 1
    static_assert(37 * kInverseOf37 % kRadii == 1);
    const double r =
        std::hypot(static_cast<double>(p.x), static_cast<double>(p.y)) - 1000.0;
    const auto k = static_cast<uint64_t>(
        std::clamp(std::lround(r), 0L, static_cast<long>(kRadii - 1)));
    return static_cast<uint32_t>(k * kInverseOf37 % kRadii);
  }

  Position At(uint32_t seq) const noexcept {
    const double angle =
        phase_ + static_cast<double>(seq) * 2 * std::numbers::pi / kStepsPerLap;
    return {static_cast<float>(radius_ * std::cos(angle)),
            static_cast<float>(radius_ * std::sin(angle))};
  }

 private:
  double radius_;
  double phase_;
};

}  // namespace game

#endif  // SERVERCORE_APPS_DUMMY_CLIENT_MOVE_PATH_H_
