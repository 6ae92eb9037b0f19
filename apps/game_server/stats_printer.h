// StatsPrinter: GameServer's periodic stats lines (rates since the previous
// ones) and its closing summary, from the service's NetStats and the rooms'
// WorldStats. The [world] lines appear once some session entered a world;
// the [cluster] lines on a node of a cluster.
#ifndef SERVERCORE_APPS_GAME_SERVER_STATS_PRINTER_H_
#define SERVERCORE_APPS_GAME_SERVER_STATS_PRINTER_H_

#include <chrono>

#include "cluster_link.h"
#include "room_directory.h"
#include "servercore/net_stats.h"
#include "servercore/service.h"
#include "world_stats.h"

namespace game {

class StatsPrinter {
 public:
  // `cluster` may be null (a standalone node); it must outlive the printer.
  StatsPrinter(const servercore::Service& service, const RoomDirectory& rooms,
               const ClusterLink* cluster = nullptr);
  // One line: sessions, rooms, packets in/out per second, MB/s out, writes
  // per second, iovecs per write, chunk pool, memory counted against
  // --max-memory (with OVERLOAD while not accepting) and the kicks it made,
  // kicks, protocol errors; then the world's: members, ticks, snapshots,
  // entity updates and tick lateness; then the cluster's: broker messages
  // in/out per second, dropped, reconnects, nodes, remote members per room.
  void Print();
  void PrintSummary() const;

 private:
  const servercore::Service& service_;
  void PrintWorld(double seconds);
  void PrintWorldSummary() const;
  void PrintCluster(double seconds);
  void PrintClusterSummary() const;

  const RoomDirectory& rooms_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_time_;
  servercore::NetStats last_;
  struct WorldCounts {
    uint64_t ticks = 0;
    uint64_t snapshots = 0;
    uint64_t full_snapshots = 0;
    uint64_t snapshot_bytes = 0;
    uint64_t entity_updates = 0;
    LatenessHistogram::Counts lateness;
  };
  static WorldCounts Read(const WorldStats& stats);
  WorldCounts last_world_;
  const ClusterLink* cluster_;
  ClusterStats last_cluster_;
};

}  // namespace game

#endif  // SERVERCORE_APPS_GAME_SERVER_STATS_PRINTER_H_
