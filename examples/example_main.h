// What every example's main does besides its session type: read --port and
// --threads, start a ServerService on 127.0.0.1, say "listening on
// 127.0.0.1:PORT", and run until SIGINT or SIGTERM. Written, like the
// examples, only against the installed package's public headers.
#ifndef SERVERCORE_EXAMPLES_EXAMPLE_MAIN_H_
#define SERVERCORE_EXAMPLES_EXAMPLE_MAIN_H_

#include <servercore/service.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace example {

// The number after `name` on the command line, or `fallback`.
inline int Flag(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

// Serves sessions from `factory` on 127.0.0.1:--port (7000; 0 picks a free
// one) with --threads workers (1) until SIGINT or SIGTERM; main's exit code.
inline int Serve(const char* program, int argc, char** argv,
                 servercore::Service::SessionFactory factory) {
  const int port = Flag(argc, argv, "--port", 7000);
  const int threads = Flag(argc, argv, "--threads", 1);

  // Block the stop signals in every thread (workers inherit the mask); main
  // takes them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  servercore::ServerService server(
      servercore::ServiceOptions{.worker_threads = threads},
      std::move(factory));
  std::error_code error = server.Start();
  if (!error) error = server.Listen("127.0.0.1", static_cast<uint16_t>(port));
  if (error) {
    std::fprintf(stderr, "%s: %s\n", program, error.message().c_str());
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u\n", unsigned{server.port()});
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server.Stop();
  return 0;
}

}  // namespace example

#endif  // SERVERCORE_EXAMPLES_EXAMPLE_MAIN_H_
