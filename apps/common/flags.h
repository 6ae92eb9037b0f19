// A small command-line parser for the two programs: `--name value` or
// `--name=value`, each flag declared with its target and help text. Unknown
// flags, missing values and values that do not parse are reported, with the
// usage, by Parse returning false.
#ifndef SERVERCORE_APPS_COMMON_FLAGS_H_
#define SERVERCORE_APPS_COMMON_FLAGS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace game {

class Flags {
 public:
  explicit Flags(std::string program) : program_(std::move(program)) {}

  void Add(std::string name, std::string* target, std::string help);
  void Add(std::string name, int* target, std::string help);
  void Add(std::string name, uint64_t* target, std::string help);
  void Add(std::string name, double* target, std::string help);
  // A flag whose value is checked by `parse` (returns false to reject).
  void Add(std::string name, std::function<bool(std::string_view)> parse,
           std::string value_name, std::string help);

  // False (after printing why and the usage to stderr) on a bad command line;
  // false with *help_shown set for --help.
  bool Parse(int argc, char** argv, bool* help_shown);
  void PrintUsage() const;

 private:
  struct Flag {
    std::string name;
    std::string value_name;
    std::string help;
    std::function<bool(std::string_view)> parse;
  };
  std::string program_;
  std::vector<Flag> flags_;
};

}  // namespace game

#endif  // SERVERCORE_APPS_COMMON_FLAGS_H_
