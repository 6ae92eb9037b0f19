// ChaosClient's attack kinds, one thread each, all until the deadline
// (chaos.h). Rates are at --scale 1; --scale multiplies them.
//
//   fuzz       random and mutated byte streams: valid packets of every
//              accepted id, then bit flips, truncation, a size field set to
//              a value of every class (0-3, 4, 5, 8, max-1, max, max+1,
//              32767, 32768, 65535, random), an id of every class, random
//              insertions, or plain random bytes; sent whole, byte by byte
//              or in random pieces; the answers' framing is checked.
//   split      two echoes sent in two writes, split at every byte offset in
//              turn (and byte by byte): both answers must come back exact.
//   storm      connect/close bursts: RST or FIN at once (before or after
//              the handshake), RST mid-packet, FIN mid-packet, RST right
//              after a chat or a C_JOIN.
//   slowloris  a pool of slow connections: half-sent packets, a partial
//              header, packets dripped too slowly (each must be closed
//              within --packet-timeout plus slack, and not before half
//              of it), idle ones (--idle-timeout), and drips fast enough
//              (never closed, every echo answered).
//   flood      readers chatting 3,000-byte messages into an attack room
//              while non-readers (4 KiB receive buffer) sit in it: every
//              reader must get every reader's chats, in order; the
//              non-readers read again after 5-10 s and count whether the
//              server had cut them (counted only: whether --max-pending
//              was reached by then depends on the kernel's buffers).
//   churn      sessions joining and leaving rooms during broadcasts: the
//              attack rooms, the verifiers' chat rooms (listening only) and
//              move rooms (valid C_MOVE, seq increasing), RST or FIN at any
//              point; each S_JOIN must name the room asked for.
//   typed      ids 1000 and 1002: C_PING answered, valid C_MOVE (also at
//              ±10000 and -0.0) answered with a snapshot, invalid C_MOVE
//              positions (NaN, ±inf, past ±10000), payloads protobuf
//              rejects, server-only typed ids, an echo then a bad packet in
//              one write: each bad one must end with S_ECHO first (if any),
//              then S_BYE reason 1, then the close.
#ifndef SERVERCORE_TOOLS_CHAOS_CLIENT_ATTACKS_H_
#define SERVERCORE_TOOLS_CHAOS_CLIENT_ATTACKS_H_

#include "chaos.h"

namespace chaos {

void RunFuzz(Chaos& chaos);
void RunSplit(Chaos& chaos);
void RunStorm(Chaos& chaos);
void RunSlowloris(Chaos& chaos);
void RunFlood(Chaos& chaos);
void RunChurn(Chaos& chaos);
void RunTyped(Chaos& chaos);

// A random stream of 1-6 valid packets, mutated one way (or not), with
// every C_JOIN into options.keep_out moved to room 0 (packets.h).
Bytes MutatedStream(Rng& rng, const ChaosOptions& options);

}  // namespace chaos

#endif  // SERVERCORE_TOOLS_CHAOS_CLIENT_ATTACKS_H_
