// megrez-run as a user runs it (a child process): --dump-logits writes one row per evaluated
// position in the documented order, sampling with a seed is reproducible, and user errors
// print one line and exit non-zero.
#include <doctest/doctest.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <sys/wait.h>
#include <fstream>
#include <sstream>

#include "engine/engine_test_util.h"
#include "loader/reference_forward.h"
#include "runtime/sampler.h"

using namespace megrez;
using namespace megrez::test;

namespace {

struct Run {
  int status = -1;
  std::string output;  // stdout and stderr
};

Run run_cli(const std::string& args) {
  const std::string command = std::string(MEGREZ_RUN_BINARY) + " " + args + " 2>&1 </dev/null";
  Run r;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) r.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  // Under MEGREZ_VALIDATION=1 (the ctest entries) the child validates too and prints messages.
  CHECK(r.output.find("vulkan error") == std::string::npos);
  CHECK(r.output.find("vulkan warning") == std::string::npos);
  return r;
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string raw = ss.str();
  std::vector<float> v(raw.size() / 4);
  std::memcpy(v.data(), raw.data(), v.size() * 4);
  return v;
}

}  // namespace

TEST_CASE("megrez-run --dump-logits: prompt rows, then one row per generated token fed back") {
  TempDir tmp("cli");
  const std::vector<int32_t> prompt = {1027, 264, 2037};
  const size_t n = 5;
  const Run r = run_cli("--prompt-ids 1027,264,2037 -n 5 --ctx 64 --kv f32 --dump-logits " + tmp.path("d.f32"));
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("tokens/s") != std::string::npos);

  auto model = Model::open(kTinyModelDir);
  const size_t V = size_t(model->config().vocab_size);
  const std::vector<float> dump = read_floats(tmp.path("d.f32"));
  REQUIRE(dump.size() == (prompt.size() + n - 1) * V);  // the last generated token is not fed back
  // Greedy: generated token t is the argmax of row P-1+t; the reference fed the same tokens
  // gives the same rows.
  std::vector<int32_t> sequence = prompt;
  for (size_t t = 1; t < n; ++t) sequence.push_back(argmax(row(dump, V, prompt.size() - 1 + t - 1)));
  ReferenceForward ref(model->config(), model->weights());
  const LogitComparison c = compare_logits(dump, ref.forward(sequence), V);
  CHECK(c.relative() <= 1e-3);
  CHECK(c.argmax_mismatches == 0);
}

TEST_CASE("megrez-run: seeded sampling is reproducible; chat answers a first turn") {
  const std::string args = "--prompt \"In the beginning\" -n 12 --temp 0.8 --top-k 40 --top-p 0.9 --seed 5 --ctx 64";
  const Run a = run_cli(args), b = run_cli(args);
  REQUIRE(a.status == 0);
  CHECK(a.output.substr(0, a.output.find("load")) == b.output.substr(0, b.output.find("load")));
  const Run chat = run_cli("--chat --prompt \"Who is God?\" -n 8 --ctx 128");
  INFO(chat.output);
  CHECK(chat.status == 0);
  CHECK(chat.output.find("> Who is God?") != std::string::npos);
}

TEST_CASE("megrez-run: user errors print one line and exit non-zero") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--model /nonexistent/model --prompt hi", "megrez-run: /nonexistent/model"},
      {"--prompt-ids 1,2,3 --ctx 2", "do not fit the context of 2 tokens"},
      {"--prompt hi --ctx 100000", "exceeds the model's max_position_embeddings"},
      {"--prompt-ids 1,x", "--prompt-ids expects a number, got 'x'"},
      {"--prompt hi --kv f8", "--kv expects f16 or f32"},
      {"--prompt hi --top-p 0", "top-p must be in (0, 1]"},
      {"--prompt hi --device no-such-gpu", "megrez-run: "},
      {"--frobnicate", "unknown option '--frobnicate'"},
      {"", "give a prompt"},
  };
  for (const auto& [args, message] : cases) {
    CAPTURE(args);
    const Run r = run_cli(args);
    INFO(r.output);
    CHECK(r.status != 0);
    CHECK(r.output.find(message) != std::string::npos);
  }
}
