// MovePath: where DummyClient's session number `index` says it is in its
// C_MOVE number `seq` (--mode move). Each session walks its own circle
// around the origin, one lap every kStepsPerLap moves, with a radius and a
// starting angle of its own, so two sessions never send the same position
// for the same seq (short of a float rounding accident): a session can
// recognise its own entity in a snapshot (its id is the server's to choose)
// by the position its last_seq names.
// Every point lies within ±9000, inside the world's ±10000.
//
// Thread safety: immutable after construction.
#ifndef SERVERCORE_APPS_DUMMY_CLIENT_MOVE_PATH_H_
#define SERVERCORE_APPS_DUMMY_CLIENT_MOVE_PATH_H_

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

  explicit MovePath(uint32_t index)
      : radius_(1000.0 + static_cast<double>((uint64_t{index} * 37) % 8000)),
        // The golden angle apart: starting points never line up.
        phase_(static_cast<double>(index) * 2.399963229728653) {}

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
