// ChaosClient: attackers for scripts/chaos.sh. Against one GameServer on
// 127.0.0.1 (never another host: it is a test tool) it runs every attack
// kind of attacks.h at once, each on its own thread, for --duration seconds,
// then prints what it did per kind and exits 0 only if the server did
// nothing docs/PROTOCOL.md forbids. DummyClients run beside it as the
// verifiers; scripts/chaos.sh starts both and watches the server.
//
// Usage: ChaosClient --port PORT [--duration 60] [--seed 1] [--scale 1]
//                    [--max-packet 4096] [--packet-timeout 2]
//                    [--idle-timeout 10] [--answer-timeout 10]
//                    [--attack-rooms 1-99] [--keep-out A-B]
//                    [--chat-rooms A-B] [--move-rooms A-B] [--kinds LIST]
//
//   ChaosClient --port 7777 --duration 30
//   ChaosClient --port 7777 --seed 7 --scale 0.5 --kinds fuzz,typed
//   ChaosClient --port 7777 --keep-out 1000-1299 --chat-rooms 1100-1109
//   ChaosClient --port 7777 --keep-out 1000-1299 --move-rooms 1200-1209
//
// --max-packet, --packet-timeout and --idle-timeout must be the server's.
// The same --seed makes the same attacks (timing aside). Exits 2 on a bad
// command line, 1 when a failure was found.
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../../apps/common/command_line.h"
#include "attacks.h"

namespace {

using chaos::ChaosOptions;
using chaos::Kind;
using chaos::RoomRange;

// "A-B" (inclusive) into *range; false if malformed.
bool ParseRange(const std::string& text, RoomRange* range) {
  const size_t dash = text.find('-');
  if (dash == std::string::npos) return false;
  try {
    range->first = static_cast<uint32_t>(std::stoul(text.substr(0, dash)));
    range->last = static_cast<uint32_t>(std::stoul(text.substr(dash + 1)));
  } catch (const std::exception&) {
    return false;
  }
  return range->first <= range->last;
}

game::FlagRule RoomRangeText() {
  return {"A-B", [](std::string& text) {
            RoomRange range;
            return ParseRange(text, &range) ? std::string()
                                            : "not a room range A-B: " + text;
          }};
}

struct Flags {
  ChaosOptions options;
  double duration = 60;
  std::string attack_rooms = "1-99";
  std::string keep_out, chat_rooms, move_rooms;
  std::vector<std::string> kinds;
};

std::optional<int> Parse(int argc, char** argv, Flags* f) {
  game::CommandLine flags(
      "ChaosClient: attackers against one GameServer on 127.0.0.1",
      "ChaosClient");
  ChaosOptions& o = f->options;
  flags.Add("--port", o.port, "the server's port").Required();
  flags.Add("--duration", f->duration, "seconds of attacks (60)",
            game::Above(0));
  flags.Add("--seed", o.seed, "random seed (1)");
  flags.Add("--scale", o.scale, "multiplies every rate and pool (1)",
            game::Above(0));
  flags.Add("--max-packet", o.max_packet, "the server's (4096)",
            game::InRange(8, 65535));
  flags.Add("--packet-timeout", o.packet_timeout, "the server's (2)",
            game::Above(0));
  flags.Add("--idle-timeout", o.idle_timeout, "the server's (10)",
            game::Above(0));
  flags.Add("--answer-timeout", o.answer_timeout,
            "seconds an expected answer may take (10)", game::Above(0));
  flags.Add("--attack-rooms", f->attack_rooms,
            "rooms the attackers use; the first is the flood room (1-99)",
            RoomRangeText());
  flags.Add("--keep-out", f->keep_out,
            "the verifiers' rooms: no random stream joins them, and no "
            "attacker chats in them",
            RoomRangeText());
  flags.Add("--chat-rooms", f->chat_rooms,
            "verifiers' chat rooms, where churners only listen",
            RoomRangeText());
  flags.Add("--move-rooms", f->move_rooms,
            "verifiers' move rooms, where churners move validly",
            RoomRangeText());
  flags
      .Add("--kinds", f->kinds,
           "attack kinds to run (all): fuzz,split,storm,slowloris,"
           "flood,churn,typed",
           game::OneOf({"fuzz", "split", "storm", "slowloris", "flood", "churn",
                        "typed"}))
      .Delimiter(',');
  if (auto exit_code = flags.Parse(argc, argv)) {
    return exit_code;
  }
  ParseRange(f->attack_rooms, &o.attack_rooms);
  if (!f->keep_out.empty()) ParseRange(f->keep_out, &o.keep_out);
  if (!f->chat_rooms.empty()) ParseRange(f->chat_rooms, &o.chat_rooms);
  if (!f->move_rooms.empty()) ParseRange(f->move_rooms, &o.move_rooms);
  return std::nullopt;
}

bool Wanted(const Flags& f, Kind kind) {
  if (f.kinds.empty()) return true;
  for (const std::string& name : f.kinds) {
    if (name == chaos::KindName(kind)) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (auto exit_code = Parse(argc, argv, &flags)) return *exit_code;
  const auto start = chaos::Clock::now();
  flags.options.deadline =
      start + std::chrono::duration_cast<chaos::Clock::duration>(
                  std::chrono::duration<double>(flags.duration));
  chaos::Chaos chaos(flags.options);
  using Attack = void (*)(chaos::Chaos&);
  static constexpr std::pair<Kind, Attack> kAttacks[] = {
      {Kind::kFuzz, chaos::RunFuzz},   {Kind::kSplit, chaos::RunSplit},
      {Kind::kStorm, chaos::RunStorm}, {Kind::kSlowloris, chaos::RunSlowloris},
      {Kind::kFlood, chaos::RunFlood}, {Kind::kChurn, chaos::RunChurn},
      {Kind::kTyped, chaos::RunTyped}};
  std::vector<std::thread> threads;
  for (const auto& [kind, attack] : kAttacks) {
    if (Wanted(flags, kind)) threads.emplace_back(attack, std::ref(chaos));
  }
  for (std::thread& t : threads) t.join();
  chaos.PrintSummary(
      std::chrono::duration<double>(chaos::Clock::now() - start).count());
  const bool ok = chaos.Failures() == 0;
  std::printf("chaos: %s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
