# servercore_add_protocol(<target> <file.proto>... SESSION <NS::Type>
#                         [ROLE server|client])
#
# Typed packets for <target>: for each .proto, runs protoc (--cpp_out) and the
# servercore plugin (protoc-gen-servercore) into
# ${CMAKE_CURRENT_BINARY_DIR}/<target>_protocol/ and adds to <target>:
#   <name>.pb.h/.pb.cc            protoc's message classes;
#   <name>.packets.h/.packets.cc  the ids (ns::ids::C_X, PacketIdOf<C_X>),
#                                 Dispatch(session, id, payload), the
#                                 declarations of Handle_C_X(Session&,
#                                 const C_X&) that <target> must define, and
#                                 MakeSendBuffer(const S_X&);
# the output directory as an include directory (#include "<name>.packets.h"),
# and protobuf::libprotobuf and servercore::servercore as link libraries. The
# schema's conventions (enum PacketId, C_/S_ prefixes) are described in
# tools/protoc-gen-servercore/main.cc; docs/DESIGN.md has an overview.
#
# SESSION names the class, at namespace scope, that the handlers take.
# ROLE client (default server) generates the client's side of the schema:
# Handle_S_X and Dispatch for the server's messages, MakeSendBuffer(const C_X&)
# for the client's own.
# Each .proto is compiled with its own directory as the import path.
#
# Works in servercore's build tree (the plugin is built there) and for users
# of the installed package (servercoreConfig.cmake includes this file; the
# plugin is the imported executable servercore::protoc-gen-servercore).
include_guard(GLOBAL)

if(NOT TARGET protobuf::libprotobuf OR NOT TARGET protobuf::protoc)
  find_package(Protobuf QUIET)
endif()

function(servercore_add_protocol target)
  cmake_parse_arguments(PARSE_ARGV 1 _sc "" "SESSION;ROLE" "")
  set(_sc_protos ${_sc_UNPARSED_ARGUMENTS})
  if(NOT TARGET ${target})
    message(FATAL_ERROR "servercore_add_protocol: no target '${target}'")
  endif()
  if(NOT _sc_protos)
    message(FATAL_ERROR "servercore_add_protocol(${target}): no .proto file")
  endif()
  if(NOT _sc_SESSION)
    message(FATAL_ERROR "servercore_add_protocol(${target}): SESSION <NS::Type> "
                        "(the session class the C_* handlers take) is required")
  endif()
  if(NOT _sc_ROLE)
    set(_sc_ROLE server)
  endif()
  if(NOT _sc_ROLE MATCHES "^(server|client)$")
    message(FATAL_ERROR "servercore_add_protocol(${target}): ROLE is server "
                        "or client, not '${_sc_ROLE}'")
  endif()
  if(NOT TARGET protobuf::libprotobuf OR NOT TARGET protobuf::protoc)
    message(FATAL_ERROR "servercore_add_protocol needs protobuf's library and "
                        "protoc (Debian: libprotobuf-dev protobuf-compiler)")
  endif()
  set(_sc_plugin servercore::protoc-gen-servercore)
  if(NOT TARGET ${_sc_plugin})
    message(FATAL_ERROR "servercore_add_protocol: the target ${_sc_plugin} "
                        "(servercore's protoc plugin) is missing")
  endif()
  # DEPENDS wants the real name of a target built here, not its alias.
  get_target_property(_sc_real ${_sc_plugin} ALIASED_TARGET)
  if(_sc_real)
    set(_sc_plugin ${_sc_real})
  endif()

  set(_sc_out ${CMAKE_CURRENT_BINARY_DIR}/${target}_protocol)
  file(MAKE_DIRECTORY ${_sc_out})
  foreach(_sc_proto IN LISTS _sc_protos)
    get_filename_component(_sc_abs ${_sc_proto} ABSOLUTE)
    get_filename_component(_sc_dir ${_sc_abs} DIRECTORY)
    get_filename_component(_sc_name ${_sc_abs} NAME_WLE)
    set(_sc_pb_cc ${_sc_out}/${_sc_name}.pb.cc)
    set(_sc_outputs ${_sc_out}/${_sc_name}.pb.h ${_sc_pb_cc}
                    ${_sc_out}/${_sc_name}.packets.h
                    ${_sc_out}/${_sc_name}.packets.cc)
    add_custom_command(
      OUTPUT ${_sc_outputs}
      COMMAND protobuf::protoc --proto_path=${_sc_dir} --cpp_out=${_sc_out}
              --plugin=protoc-gen-servercore=$<TARGET_FILE:${_sc_plugin}>
              --servercore_opt=session=${_sc_SESSION},role=${_sc_ROLE}
              --servercore_out=${_sc_out} ${_sc_abs}
      DEPENDS ${_sc_abs} protobuf::protoc ${_sc_plugin}
      COMMENT "Generating typed packets from ${_sc_proto}"
      VERBATIM)
    target_sources(${target} PRIVATE ${_sc_outputs})
    # protoc's code is not held to the project's warning flags (it trips
    # -Wshadow and -Wconversion); the plugin's .packets.cc is.
    set_source_files_properties(${_sc_pb_cc} PROPERTIES COMPILE_OPTIONS -w)
  endforeach()
  # SYSTEM: the .pb.h headers are protoc's too.
  target_include_directories(${target} SYSTEM PUBLIC ${_sc_out})
  target_link_libraries(${target} PUBLIC protobuf::libprotobuf
                                         servercore::servercore)
endfunction()
