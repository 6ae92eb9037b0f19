#include "flags.h"

#include <charconv>
#include <cstdio>

namespace game {
namespace {

template <typename T>
bool ParseNumber(std::string_view text, T* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

}  // namespace

void Flags::Add(std::string name, std::string* target, std::string help) {
  Add(
      std::move(name),
      [target](std::string_view v) {
        *target = std::string(v);
        return true;
      },
      "TEXT", std::move(help));
}

void Flags::Add(std::string name, int* target, std::string help) {
  Add(
      std::move(name),
      [target](std::string_view v) { return ParseNumber(v, target); }, "N",
      std::move(help));
}

void Flags::Add(std::string name, uint64_t* target, std::string help) {
  Add(
      std::move(name),
      [target](std::string_view v) { return ParseNumber(v, target); }, "N",
      std::move(help));
}

void Flags::Add(std::string name, double* target, std::string help) {
  Add(
      std::move(name),
      [target](std::string_view v) { return ParseNumber(v, target); }, "X",
      std::move(help));
}

void Flags::Add(std::string name, std::function<bool(std::string_view)> parse,
                std::string value_name, std::string help) {
  flags_.push_back(Flag{std::move(name), std::move(value_name), std::move(help),
                        std::move(parse)});
}

bool Flags::Parse(int argc, char** argv, bool* help_shown) {
  *help_shown = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      PrintUsage();
      *help_shown = true;
      return false;
    }
    if (!arg.starts_with("--")) {
      std::fprintf(stderr, "%s: unexpected argument '%s'\n", program_.c_str(),
                   argv[i]);
      PrintUsage();
      return false;
    }
    arg.remove_prefix(2);
    std::string_view value;
    bool has_value = false;
    if (const size_t eq = arg.find('='); eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    const Flag* flag = nullptr;
    for (const Flag& f : flags_) {
      if (f.name == arg) flag = &f;
    }
    if (flag == nullptr) {
      std::fprintf(stderr, "%s: unknown flag --%.*s\n", program_.c_str(),
                   static_cast<int>(arg.size()), arg.data());
      PrintUsage();
      return false;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s: --%s needs a value\n", program_.c_str(),
                     flag->name.c_str());
        return false;
      }
      value = argv[++i];
    }
    if (!flag->parse(value)) {
      std::fprintf(stderr, "%s: bad value '%.*s' for --%s\n", program_.c_str(),
                   static_cast<int>(value.size()), value.data(),
                   flag->name.c_str());
      return false;
    }
  }
  return true;
}

void Flags::PrintUsage() const {
  std::fprintf(stderr, "usage: %s [flags]\n", program_.c_str());
  for (const Flag& f : flags_) {
    std::fprintf(stderr, "  --%-14s %-6s %s\n", f.name.c_str(),
                 f.value_name.c_str(), f.help.c_str());
  }
}

}  // namespace game
