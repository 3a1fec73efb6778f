#pragma once
// The command-line flags every front end (megrez-run, megrez-bench) shares: they fill
// EngineOptions, so both tools spell, check and document them the same way. A bad value is a
// UsageError (the tools exit 2 with one line); values only the loaded model can judge (an
// expert budget below top_k + 1 experts, a host upload path on a discrete GPU) stay the
// engine's megrez::Error from Engine::load.
#include <charconv>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "loader/error.h"
#include "runtime/engine/engine.h"

namespace megrez {

// A malformed command line (as opposed to a failure while running).
struct UsageError : Error {
  using Error::Error;
};

// `text` as a T, the whole of it; UsageError naming `flag` otherwise.
template <class T>
T parse_flag_number(std::string_view flag, const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) {
    throw UsageError(std::string(flag) + " expects a number, got '" + text + "'");
  }
  return value;
}

// The bundled tiny model the tools load without --model: the installed copy beside the
// program (<prefix>/share/megrez/models/megrez2-tiny for <prefix>/bin/megrez-run), else the
// source tree's (a program run from its build directory).
std::string default_model_path();

// The comma-separated items of a list value ("1,2,3"); empty items are kept (and rejected
// by whatever parses them).
std::vector<std::string> split_flag_list(const std::string& text);

// Walks argv: the flag at `index`, and its value (advancing `index`).
class FlagCursor {
 public:
  FlagCursor(int argc, char** argv) : argc_(argc), argv_(argv) {}
  bool next() { return ++index_ < argc_; }
  std::string flag() const { return argv_[index_]; }
  std::string value();  // UsageError "--flag needs a value" at the end of argv

 private:
  int argc_;
  char** argv_;
  int index_ = 0;
};

// When cursor.flag() is an engine flag, consumes it (and its value) into `options` and
// returns true; false (nothing consumed) for any other flag.
//   --ctx N  --kv f16|f32  --chunk N  --device N|NAME  --profile NAME|FILE  --validation
//   --expert-budget SIZE|PCT  --stream auto|resident|prefetch|ondemand  --storage-bw GB/s
//   --eviction pool|lru  --expert-upload queue|host  --layer-breaks
bool parse_engine_flag(FlagCursor& cursor, EngineOptions& options);

// A tool's main: runs `body` and returns its exit status, or prints one line "tool: message"
// to stderr and returns 2 for a UsageError, 1 for any other error.
int run_tool(const char* tool, const std::function<int()>& body);

// The --help lines of those flags, aligned for a column of 24; `ctx_default` says what
// --ctx 0 (not given) means for the tool.
std::string engine_flags_usage(std::string_view ctx_default);

}  // namespace megrez
