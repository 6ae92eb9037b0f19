// StatsPrinter: GameServer's periodic stats line (rates since the previous
// line) and its closing summary, from the service's NetStats.
#ifndef SERVERCORE_APPS_GAME_SERVER_STATS_PRINTER_H_
#define SERVERCORE_APPS_GAME_SERVER_STATS_PRINTER_H_

#include <chrono>

#include "room_manager.h"
#include "servercore/net_stats.h"
#include "servercore/service.h"

namespace game {

class StatsPrinter {
 public:
  StatsPrinter(const servercore::Service& service, const RoomManager& rooms);
  // One line: sessions, rooms, packets in/out per second, MB/s out, writes
  // per second, iovecs per write, chunk pool, memory counted against
  // --max-memory (with OVERLOAD while not accepting) and the kicks it made,
  // kicks, protocol errors.
  void Print();
  void PrintSummary() const;

 private:
  const servercore::Service& service_;
  const RoomManager& rooms_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_time_;
  servercore::NetStats last_;
};

}  // namespace game

#endif  // SERVERCORE_APPS_GAME_SERVER_STATS_PRINTER_H_
