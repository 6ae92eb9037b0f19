// protoc-gen-servercore: a protoc plugin that turns a proto3 file of typed
// packets (docs/PROTOCOL.md "Typed packets") into <name>.packets.h/.cc next
// to protoc's own <name>.pb.h/.cc. servercore_add_protocol
// (cmake/ServercoreProtocol.cmake) runs it; by hand:
//
//   protoc --plugin=protoc-gen-servercore=PATH --cpp_out=OUT
//          --servercore_opt=session=game::GameSession --servercore_out=OUT
//          game.proto
// (--servercore_opt, not --servercore_out=PARAM:OUT: protoc would take the
// first ':' of "::" for the end of the parameter.)
//
// The schema's conventions:
//   - The wire ids live in one top-level `enum PacketId`: the value
//     PACKET_ID_<Message> = N gives message <Message> the id N (1..65535).
//     Value 0 (proto3's required default) names no packet.
//   - A message named C_* is sent by clients: the output declares
//     `void Handle_C_X(Session& session, const C_X& message);`, which the
//     application defines (a missing handler is a link error), and
//     Dispatch(session, id, payload) parses the payload of a C_* id and calls
//     that handler.
//   - A message named S_* is sent by the server: the output has
//     `SendBufferRef MakeSendBuffer(const S_X& message)`, one packet built
//     in place by servercore::SerializePacket (null if it would exceed 65535
//     bytes).
//   - Every C_* and S_* message needs an id; every id names a message of the
//     file; other messages (say, Entity) are plain protobuf.
//
// The parameter session=NS::Type names the session type the handlers take;
// it must be a class at namespace scope (the output forward-declares it).
// role=client (after a comma; protoc joins repeated --servercore_opt so)
// generates the other side of the same schema, for a client program: the
// handlers and Dispatch are for the S_* messages, MakeSendBuffer for the C_*
// ones. role=server is the default.
#include <google/protobuf/compiler/code_generator.h>
#include <google/protobuf/compiler/plugin.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/printer.h>
#include <google/protobuf/io/zero_copy_stream.h>

#include <cctype>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FileDescriptor;
using google::protobuf::compiler::CodeGenerator;
using google::protobuf::compiler::GeneratorContext;
using google::protobuf::io::Printer;
using google::protobuf::io::ZeroCopyOutputStream;

constexpr const char* kIdEnum = "PacketId";
constexpr const char* kIdPrefix = "PACKET_ID_";

enum class Role { kServer, kClient };

// The prefix of the messages a role receives (handlers, Dispatch) and of
// those it sends (MakeSendBuffer).
const char* ReceivedPrefix(Role role) {
  return role == Role::kServer ? "C_" : "S_";
}
const char* SentPrefix(Role role) {
  return role == Role::kServer ? "S_" : "C_";
}

struct Packet {
  const Descriptor* message;
  int id;
};

// "game.proto" -> "game"; "dir/game.proto" -> "dir/game".
std::string StripProto(const std::string& name) {
  const std::string ext = ".proto";
  if (name.size() > ext.size() &&
      name.compare(name.size() - ext.size(), ext.size(), ext) == 0) {
    return name.substr(0, name.size() - ext.size());
  }
  return name;
}

// "dir/game" -> "dir_game" upper-cased, for the include guard.
std::string GuardOf(const std::string& base) {
  std::string guard = "SERVERCORE_GENERATED_";
  for (char c : base) {
    guard +=
        std::isalnum(static_cast<unsigned char>(c))
            ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
            : '_';
  }
  return guard + "_PACKETS_H_";
}

// "game.pb" -> "game::pb".
std::string NamespaceOf(const std::string& package) {
  std::string ns;
  for (char c : package) {
    if (c == '.') {
      ns += "::";
    } else {
      ns += c;
    }
  }
  return ns;
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

class Generator final : public CodeGenerator {
 public:
  bool Generate(const FileDescriptor* file, const std::string& parameter,
                GeneratorContext* context, std::string* error) const override {
    std::string session;
    Role role = Role::kServer;
    if (!ParseParameter(parameter, &session, &role, error)) return false;
    std::vector<Packet> packets;
    if (!CollectPackets(file, &packets, error)) return false;

    const std::string base = StripProto(file->name());
    std::map<std::string, std::string> vars = {
        {"proto", file->name()},     {"base", base},
        {"guard", GuardOf(base)},    {"ns", NamespaceOf(file->package())},
        {"session", "::" + session},
    };
    const size_t split = session.rfind("::");
    vars["session_ns"] =
        split == std::string::npos ? "" : session.substr(0, split);
    vars["session_class"] =
        split == std::string::npos ? session : session.substr(split + 2);

    {
      std::unique_ptr<ZeroCopyOutputStream> out(
          context->Open(base + ".packets.h"));
      Printer p(out.get(), '$');
      EmitHeader(p, vars, packets, role);
    }
    {
      std::unique_ptr<ZeroCopyOutputStream> out(
          context->Open(base + ".packets.cc"));
      Printer p(out.get(), '$');
      EmitSource(p, vars, packets, role);
    }
    return true;
  }

 private:
  // "session=NS::Type" or "session=NS::Type,role=server|client".
  static bool ParseParameter(const std::string& parameter, std::string* session,
                             Role* role, std::string* error) {
    const std::string key = "session=";
    const std::string role_key = ",role=";
    std::string rest = parameter;
    const size_t comma = rest.find(',');
    if (comma != std::string::npos) {
      const std::string value = rest.substr(comma);
      rest.resize(comma);
      if (value == role_key + "client") {
        *role = Role::kClient;
      } else if (value != role_key + "server") {
        rest.clear();  // reported below
      }
    }
    if (!StartsWith(rest, key) || rest.size() == key.size()) {
      *error =
          "protoc-gen-servercore takes session=NS::Type (the session class "
          "the handlers take), optionally followed by ,role=server or "
          ",role=client; not '" +
          parameter + "'";
      return false;
    }
    *session = rest.substr(key.size());
    if (StartsWith(*session, "::")) *session = session->substr(2);
    return true;
  }

  // The (message, id) pairs of the file's C_* and S_* messages, checked
  // against the PacketId enum both ways.
  static bool CollectPackets(const FileDescriptor* file,
                             std::vector<Packet>* packets, std::string* error) {
    const EnumDescriptor* ids = file->FindEnumTypeByName(kIdEnum);
    std::map<std::string, int> id_of;
    if (ids != nullptr) {
      for (int i = 0; i < ids->value_count(); ++i) {
        const EnumValueDescriptor* value = ids->value(i);
        if (value->number() == 0) continue;
        const std::string name = value->name();
        if (!StartsWith(name, kIdPrefix)) {
          *error = name + ": a PacketId value is PACKET_ID_<Message>";
          return false;
        }
        const std::string message = name.substr(std::string(kIdPrefix).size());
        if (file->FindMessageTypeByName(message) == nullptr) {
          *error = name + ": no message " + message + " in " + file->name();
          return false;
        }
        if (value->number() < 1 || value->number() > 65535) {
          *error = name + ": a packet id is 1..65535, not " +
                   std::to_string(value->number());
          return false;
        }
        id_of[message] = value->number();
      }
    }
    for (int i = 0; i < file->message_type_count(); ++i) {
      const Descriptor* message = file->message_type(i);
      const std::string& name = message->name();
      if (!StartsWith(name, "C_") && !StartsWith(name, "S_")) continue;
      auto it = id_of.find(name);
      if (it == id_of.end()) {
        *error = "message " + name + " has no id: add " + kIdPrefix + name +
                 " = <id> to enum " + kIdEnum + " in " + file->name();
        return false;
      }
      packets->push_back({message, it->second});
    }
    return true;
  }

  static void EmitHeader(Printer& p, std::map<std::string, std::string> vars,
                         const std::vector<Packet>& packets, Role role) {
    vars["received"] = role == Role::kServer ? "client" : "server";
    vars["sent"] = role == Role::kServer ? "server" : "client";
    p.Print(vars,
            "// Generated by protoc-gen-servercore from $proto$. Do not edit.\n"
            "// Packet ids, dispatch of $received$ messages to their handlers, "
            "and $sent$\n"
            "// messages built into SendBuffers; see "
            "servercore/typed_packet.h.\n"
            "#ifndef $guard$\n"
            "#define $guard$\n"
            "\n"
            "#include <cstddef>\n"
            "#include <cstdint>\n"
            "#include <span>\n"
            "\n"
            "#include \"$base$.pb.h\"\n"
            "#include \"servercore/send_buffer.h\"\n"
            "#include \"servercore/typed_packet.h\"\n"
            "\n");
    if (vars["session_ns"].empty()) {
      p.Print(vars, "class $session_class$;\n\n");
    } else {
      p.Print(vars,
              "namespace $session_ns$ {\nclass $session_class$;\n}  // "
              "namespace $session_ns$\n\n");
    }
    p.Print(vars,
            "namespace $ns$ {\n"
            "\n"
            "// The wire ids (enum PacketId in $proto$), by name and by "
            "message type.\n"
            "namespace ids {\n");
    for (const Packet& packet : packets) {
      vars["name"] = packet.message->name();
      vars["id"] = std::to_string(packet.id);
      p.Print(vars, "inline constexpr uint16_t $name$ = $id$;\n");
    }
    p.Print(vars,
            "}  // namespace ids\n"
            "\n"
            "template <typename Message>\n"
            "struct PacketIdOf;\n");
    for (const Packet& packet : packets) {
      vars["name"] = packet.message->name();
      p.Print(vars,
              "template <>\n"
              "struct PacketIdOf<$name$> {\n"
              "  static constexpr uint16_t value = ids::$name$;\n"
              "};\n");
    }
    p.Print(vars,
            "\n"
            "// Parses `payload` as the $received$ message of packet `id` and "
            "calls its\n"
            "// handler. kUnknownId for any id that is not such a message's, "
            "kParseError\n"
            "// when protobuf rejects the payload; the handler is not called "
            "then.\n"
            "servercore::DispatchResult Dispatch($session$& session, uint16_t "
            "id,\n"
            "                                    std::span<const std::byte> "
            "payload);\n"
            "\n"
            "// One handler per $received$ message, defined by the "
            "application.\n");
    for (const Packet& packet : packets) {
      if (!StartsWith(packet.message->name(), ReceivedPrefix(role))) continue;
      vars["name"] = packet.message->name();
      p.Print(vars,
              "void Handle_$name$($session$& session, const $name$& "
              "message);\n");
    }
    p.Print(vars,
            "\n"
            "// One packet per $sent$ message, serialized in place; null when "
            "the packet\n"
            "// would exceed 65535 bytes (never truncated).\n");
    for (const Packet& packet : packets) {
      if (!StartsWith(packet.message->name(), SentPrefix(role))) continue;
      vars["name"] = packet.message->name();
      p.Print(vars,
              "[[nodiscard]] inline servercore::SendBufferRef "
              "MakeSendBuffer(\n"
              "    const $name$& message) {\n"
              "  return servercore::SerializePacket(ids::$name$, message);\n"
              "}\n");
    }
    p.Print(vars,
            "\n"
            "}  // namespace $ns$\n"
            "\n"
            "#endif  // $guard$\n");
  }

  static void EmitSource(Printer& p, std::map<std::string, std::string> vars,
                         const std::vector<Packet>& packets, Role role) {
    p.Print(vars,
            "// Generated by protoc-gen-servercore from $proto$. Do not edit.\n"
            "#include \"$base$.packets.h\"\n"
            "\n"
            "namespace $ns$ {\n"
            "\n"
            "servercore::DispatchResult Dispatch($session$& session, uint16_t "
            "id,\n"
            "                                    std::span<const std::byte> "
            "payload) {\n");
    bool any_received = false;
    for (const Packet& packet : packets) {
      any_received = any_received ||
                     StartsWith(packet.message->name(), ReceivedPrefix(role));
    }
    if (!any_received) p.Print("  (void)session;\n  (void)payload;\n");
    p.Print("  switch (id) {\n");
    for (const Packet& packet : packets) {
      if (!StartsWith(packet.message->name(), ReceivedPrefix(role))) continue;
      vars["name"] = packet.message->name();
      p.Print(vars,
              "    case ids::$name$: {\n"
              "      $name$ message;\n"
              "      if (!message.ParseFromArray(payload.data(),\n"
              "                                  "
              "static_cast<int>(payload.size()))) {\n"
              "        return servercore::DispatchResult::kParseError;\n"
              "      }\n"
              "      Handle_$name$(session, message);\n"
              "      return servercore::DispatchResult::kHandled;\n"
              "    }\n");
    }
    p.Print(vars,
            "    default:\n"
            "      return servercore::DispatchResult::kUnknownId;\n"
            "  }\n");
    p.Print(vars,
            "}\n"
            "\n"
            "}  // namespace $ns$\n");
  }
};

}  // namespace

int main(int argc, char* argv[]) {
  Generator generator;
  return google::protobuf::compiler::PluginMain(argc, argv, &generator);
}
