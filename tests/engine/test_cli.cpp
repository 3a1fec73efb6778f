// megrez-run and megrez-bench as a user runs them (a child process): --dump-logits writes one
// row per evaluated position in the documented order, sampling with a seed is reproducible,
// --stats / --stream-sweep report expert streaming that adds up, and user errors print one
// line and exit 2 (bad arguments) or 1 (what the engine refuses). Also the shared engine
// flags (apps/tools/engine_flags.h) parsed directly.
#include <doctest/doctest.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sys/wait.h>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "apps/tools/engine_flags.h"
#include "engine/engine_test_util.h"
#include "loader/reference/reference_forward.h"
#include "runtime/engine/sampler.h"
#include "runtime/stream/expert_streamer.h"

using namespace megrez;
using namespace megrez::test;

namespace {

struct Run {
  int status = -1;
  std::string output;  // stdout and stderr
};

Run run_binary(const std::string& binary, const std::string& args) {
  const std::string command = binary + " " + args + " 2>&1 </dev/null";
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

Run run_cli(const std::string& args) { return run_binary(MEGREZ_RUN_BINARY, args); }
Run run_bench(const std::string& args) { return run_binary(MEGREZ_BENCH_BINARY, args); }
Run run_convert(const std::string& args) { return run_binary(MEGREZ_CONVERT_BINARY, args); }

// Lines the tool wrote as its own ("megrez-run: ...", "megrez-bench: ..."); the loader's
// warnings about the model (a config key absent) are not the tool's.
size_t error_lines(const std::string& output) {
  std::istringstream in(output);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) n += line.rfind("megrez-", 0) == 0 ? 1 : 0;
  return n;
}

// Routed expert lookups of one decode token: top_k for each MoE layer.
uint64_t decode_lookups(const Model& model) {
  uint64_t moe_layers = 0;
  for (const LayerWeights& layer : model.weights().layers) moe_layers += layer.pool >= 0 ? 1 : 0;
  return moe_layers * uint64_t(model.config().num_experts_per_tok);
}

// Parses the engine flags of `args` into options (the first argument is the program name).
EngineOptions parse_flags(std::vector<std::string> args) {
  args.insert(args.begin(), "megrez-test");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  FlagCursor cursor(int(argv.size()), argv.data());
  EngineOptions options;
  while (cursor.next()) {
    if (!parse_engine_flag(cursor, options)) throw UsageError("not an engine flag: " + cursor.flag());
  }
  return options;
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

TEST_CASE("engine flags fill EngineOptions; bad values are usage errors naming the flag") {
  const EngineOptions o = parse_flags({"--ctx", "96", "--kv", "f32", "--chunk", "4", "--device", "llvm", "--profile",
                                       "minimum", "--validation", "--expert-budget", "1.5GB", "--stream", "ondemand",
                                       "--storage-bw", "4.2", "--eviction", "lru", "--expert-upload", "host"});
  CHECK(o.ctx_len == 96);
  CHECK(o.kv_type == KvCacheType::F32);
  CHECK(o.chunk == 4);
  CHECK(o.device == "llvm");
  CHECK(o.profile == "minimum");
  CHECK(o.validation == true);
  CHECK(o.expert_budget == "1.5GB");
  CHECK(o.stream == StreamMode::OnDemand);
  CHECK(o.storage_bw == 4.2);
  CHECK(o.eviction == "lru");
  CHECK(o.expert_upload == "host");
  CHECK(parse_flags({"--stream", "prefetch", "--expert-budget", "25%"}).stream == StreamMode::Prefetch);
  CHECK(parse_flags({"--stream", "resident"}).stream == StreamMode::Resident);
  CHECK(parse_flags({"--storage-bw", "0"}).storage_bw == 0);  // 0: unthrottled, the default

  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"--stream", "sometimes"}, "--stream expects auto, resident, prefetch or ondemand, got 'sometimes'"},
      {{"--storage-bw", "fast"}, "--storage-bw expects a number, got 'fast'"},
      {{"--storage-bw", "-1"}, "--storage-bw expects a bandwidth in GB/s, 0 (unthrottled) or at least 0.001, got '-1'"},
      {{"--expert-budget", "half"}, "--expert-budget: expert budget 'half': expected a share"},
      {{"--expert-budget", "150%"}, "--expert-budget: expert budget 150% is more than 100%"},
      {{"--expert-budget", "12parsecs"}, "expected a share of the routed experts"},
      {{"--eviction", "fifo"}, "--eviction expects pool or lru, got 'fifo'"},
      {{"--expert-upload", "dma"}, "--expert-upload expects queue or host, got 'dma'"},
      {{"--kv", "f8"}, "--kv expects f16 or f32, got 'f8'"},
      {{"--ctx", "12k"}, "--ctx expects a number, got '12k'"},
      {{"--stream"}, "--stream needs a value"},
  };
  for (const auto& [args, message] : bad) {
    CAPTURE(args.front());
    CHECK_THROWS_WITH_AS(parse_flags(args), doctest::Contains(message.c_str()), UsageError);
  }
  // Not an engine flag: left for the tool.
  std::string program = "x", flag = "--prompt";
  std::array<char*, 2> argv = {program.data(), flag.data()};
  FlagCursor cursor(2, argv.data());
  REQUIRE(cursor.next());
  EngineOptions untouched;
  CHECK_FALSE(parse_engine_flag(cursor, untouched));
  CHECK(cursor.flag() == "--prompt");
  // The tools' exit statuses: 2 for usage errors, 1 for the rest.
  CHECK(run_tool("t", [] { return 7; }) == 7);
  CHECK(run_tool("t", []() -> int { throw UsageError("bad flag"); }) == 2);
  CHECK(run_tool("t", []() -> int { throw Error("no model"); }) == 1);
  CHECK(run_tool("t", []() -> int { throw std::runtime_error("oops"); }) == 1);
  CHECK(split_flag_list("100,50%,,7") == std::vector<std::string>{"100", "50%", "", "7"});
  CHECK(split_flag_list("") == std::vector<std::string>{""});
  CHECK(engine_flags_usage("X").find("--ctx N               context length in tokens (default X)") != std::string::npos);
}

namespace {

// Each (arguments, message, exit status): the tool prints the message in its one line.
using ErrorCases = std::vector<std::tuple<std::string, std::string, int>>;
void check_errors(Run (*run)(const std::string&), const ErrorCases& cases) {
  for (const auto& [args, message, status] : cases) {
    CAPTURE(args);
    const Run r = run(args);
    INFO(r.output);
    CHECK(r.status == status);
    CHECK(r.output.find(message) != std::string::npos);
    CHECK(error_lines(r.output) == 1);
    if (status == 2) CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);  // before any loading
  }
}

}  // namespace

TEST_CASE("megrez-run and megrez-bench: bad streaming flags exit 2, a budget below the minimum exits 1, one line each") {
  const ErrorCases cases = {
      {"--prompt hi --stream sometimes", "megrez-run: --stream expects auto, resident, prefetch or ondemand", 2},
      {"--prompt hi --storage-bw fast", "megrez-run: --storage-bw expects a number, got 'fast'", 2},
      {"--prompt hi --expert-budget lots", "megrez-run: --expert-budget: expert budget 'lots'", 2},
      {"--prompt hi --eviction fifo", "megrez-run: --eviction expects pool or lru", 2},
      {"--prompt hi --ctx 64 --expert-budget 1KB", "streaming needs at least top_k + 1", 1},
      {"--prompt hi --ctx 64 --stream resident --expert-budget 50%", "--stream resident needs every expert", 1},
  };
  check_errors(run_cli, cases);
  check_errors(run_bench, {
      {"--stream fast", "megrez-bench: --stream expects auto, resident, prefetch or ondemand", 2},
      {"--storage-bw -3", "megrez-bench: --storage-bw expects a bandwidth in GB/s", 2},
      {"--storage-bw 1e-300", "megrez-bench: --storage-bw expects a bandwidth in GB/s, 0 (unthrottled) or at least 0.001", 2},
      {"--expert-budget 0%", "megrez-bench: --expert-budget: expert budget '0%'", 2},
      {"--budgets 50", "--budgets applies to --stream-sweep", 2},
      {"--stream-sweep --budgets 50,0", "--budgets expects percents in 1..100, got '0'", 2},
      {"--stream-sweep --budgets 50,", "--budgets expects a number, got ''", 2},
      {"--stream-sweep --stream prefetch", "--stream-sweep chooses --stream and --expert-budget itself", 2},
      {"--stream-sweep -n 0 -p 4", "give -n above 0", 2},
      {"-p 0 -n 1 -r 1 --expert-budget 1KB", "streaming needs at least top_k + 1", 1},
  });
}

TEST_CASE("megrez-run --stats: per-token and total expert cache lines add up; stdout text unchanged") {
  const Run r = run_cli("--prompt \"In the beginning\" -n 4 --ctx 64 --expert-budget 50% --stats");
  INFO(r.output);
  REQUIRE(r.status == 0);
  auto model = Model::open(kTinyModelDir);
  const uint64_t stride = expert_slot_stride(model->weights());
  CHECK(r.output.find("[stream] prefetch: ") != std::string::npos);  // the summary: auto -> prefetch

  // prefill, then one line per decoded token: the 4th token is generated, not fed back.
  const std::regex pass_line(R"(\[stream\] (prefill|token (\d+)): lookups (\d+), hits (\d+), misses (\d+), uploaded ([0-9.]+) MB, (stall [0-9.]+ ms|stall n/a \(no GPU timestamps\)))");
  uint64_t lookups = 0, hits = 0, misses = 0, tokens = 0;
  for (auto it = std::sregex_iterator(r.output.begin(), r.output.end(), pass_line); it != std::sregex_iterator(); ++it) {
    const std::smatch& m = *it;
    const uint64_t l = std::stoull(m[3]), h = std::stoull(m[4]), x = std::stoull(m[5]);
    CAPTURE(m[0].str());
    CHECK(h + x == l);
    CHECK(std::stod(m[6]) == doctest::Approx(double(x * stride) / 1e6).epsilon(1e-3));
    if (m[1] != "prefill") {
      CHECK(std::stoull(m[2]) == ++tokens);
      CHECK(l == decode_lookups(*model));
    }
    lookups += l;
    hits += h;
    misses += x;
  }
  CHECK(tokens == 3);

  const std::regex total_line(R"(\[stream\] total: lookups (\d+), hits (\d+), misses (\d+), hit rate ([0-9.]+)%, uploaded [0-9.]+ MB \((\d+) bytes\), uploads (\d+), rounds (\d+), stall[^,]*, occupancy (\d+)/(\d+) slots)");
  std::smatch total;
  REQUIRE(std::regex_search(r.output, total, total_line));
  CHECK(std::stoull(total[1]) == lookups);
  CHECK(std::stoull(total[2]) == hits);
  CHECK(std::stoull(total[3]) == misses);
  CHECK(std::stoull(total[2]) + std::stoull(total[3]) == std::stoull(total[1]));
  CHECK(std::stod(total[4]) == doctest::Approx(100.0 * double(hits) / double(lookups)).epsilon(1e-3));
  CHECK(std::stoull(total[5]) == misses * stride);
  CHECK(std::stoull(total[8]) <= std::stoull(total[9]));
  uint64_t experts = 0;
  for (const auto& pool : model->weights().pools) experts += pool.size();
  CHECK(std::stoull(total[9]) == experts / 2);  // 50% of the routed experts' bytes

  // Streaming changes neither the text nor stdout's layout: the resident run prints the same.
  const Run resident = run_cli("--prompt \"In the beginning\" -n 4 --ctx 64 --stats");
  REQUIRE(resident.status == 0);
  CHECK(resident.output.substr(0, resident.output.find("\n[")) == r.output.substr(0, r.output.find("\n[")));
  CHECK(resident.output.find("[stream] experts are resident") != std::string::npos);
  CHECK(resident.output.find("[stream] total") == std::string::npos);
}

TEST_CASE("megrez-bench --stream-sweep: every configuration's row; --json rows add up") {
  const Run r = run_bench("--stream-sweep -p 0 -n 2 -r 1");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("| mode | budget | tg t/s | vs resident | stall ms/token | hit rate | MB/token |\n") != std::string::npos);
  CHECK(r.output.find("pp t/s") == std::string::npos);  // -p 0
  const std::regex resident_row(R"(\| resident \| 100 % \| [0-9.]+ ± [0-9.]+ \| 1\.00 \| - \| - \| - \|)");
  CHECK(std::regex_search(r.output, resident_row));
  for (const char* mode : {"prefetch", "ondemand"}) {
    for (const char* budget : {"100", "50", "25"}) {
      CAPTURE(mode);
      CAPTURE(budget);
      const std::regex row(std::string(R"(\| )") + mode + " \\| " + budget +
                           R"( % \| [0-9.]+ ± [0-9.]+ \| [0-9.]+ \| ([0-9.]+|n/a) \| [0-9.]+ % \| [0-9.]+ \|)");
      CHECK(std::regex_search(r.output, row));
    }
  }
  CHECK(r.output.find("failed") == std::string::npos);

  const Run j = run_bench("--stream-sweep -p 3 -n 2 -r 1 --budgets 50 --eviction lru --json");
  INFO(j.output);
  REQUIRE(j.status == 0);
  const nlohmann::json sweep = nlohmann::json::parse(j.output.substr(j.output.find("{\n")));
  CHECK(sweep["eviction"] == "lru");
  REQUIRE(sweep["rows"].size() == 3);
  CHECK(sweep["rows"][0]["mode"] == "resident");
  CHECK(sweep["rows"][1]["mode"] == "prefetch");
  CHECK(sweep["rows"][2]["mode"] == "ondemand");
  auto model = Model::open(kTinyModelDir);
  for (const nlohmann::json& row : sweep["rows"]) {
    CAPTURE(row.dump());
    REQUIRE(row.contains("pp"));
    const nlohmann::json& tg = row["tg"]["stream"];
    CHECK(tg["hits"].get<uint64_t>() + tg["misses"].get<uint64_t>() == tg["lookups"].get<uint64_t>());
    const uint64_t expected = row["mode"] == "resident" ? 0 : 2 * decode_lookups(*model);
    CHECK(tg["lookups"].get<uint64_t>() == expected);
    CHECK(tg["bytes_uploaded"].get<uint64_t>() == tg["misses"].get<uint64_t>() * expert_slot_stride(model->weights()));
  }
}

TEST_CASE("megrez-bench pp/tg: the work per token, and the host's share from the passes' GPU time") {
  const Run j = run_bench("-p 4 -n 3 -r 2 --json");
  INFO(j.output);
  REQUIRE(j.status == 0);
  const nlohmann::json report = nlohmann::json::parse(j.output.substr(j.output.find("{\n")));
  CHECK(report["decode_pass"]["dispatches"].get<uint32_t>() > 0);
  CHECK(report["decode_pass"]["submissions"] == 1);  // resident: one submission per token
  REQUIRE(report["tests"].size() == 2);
  const nlohmann::json& pp = report["tests"][0];
  const nlohmann::json& tg = report["tests"][1];
  CHECK(pp["test"] == "pp4");
  CHECK_FALSE(pp.contains("host_share"));  // only decode passes are timed
  CHECK(tg["test"] == "tg3");
  REQUIRE(tg.contains("host_share"));  // lavapipe writes timestamps
  double wall_ms = 0;
  for (const nlohmann::json& s : tg["seconds"]) wall_ms += s.get<double>() * 1e3 / 6;
  const double gpu_ms = tg["gpu_ms_per_token"].get<double>();
  CHECK(tg["wall_ms_per_token"].get<double>() == doctest::Approx(wall_ms));
  CHECK(gpu_ms > 0);
  CHECK(gpu_ms < wall_ms);
  CHECK(tg["host_share"].get<double>() == doctest::Approx((wall_ms - gpu_ms) / wall_ms));
  // Greedy passes chain: each repetition's first pass starts afresh, the other two were
  // submitted while the one before ran. The device's idle time between them lies within the
  // wall time the passes leave (one clock on lavapipe).
  CHECK(tg["chained_passes"] == 4);
  const double gap_ms = tg["chained_gap_ms_per_pass"].get<double>();
  CHECK(gap_ms >= 0);
  CHECK(gap_ms * 4 <= (wall_ms - gpu_ms) * 6 * 1.01);

  const Run m = run_bench("-p 0 -n 3 -r 1");
  INFO(m.output);
  REQUIRE(m.status == 0);
  CHECK(std::regex_search(m.output, std::regex(R"(per decoded token: [0-9]+ dispatches, [0-9]+ barriers, 1 submission\(s\))")));
  CHECK(std::regex_search(m.output, std::regex(R"(\ntg3: wall [0-9.]+ ms/token, GPU [0-9.]+ ms/token: host share [0-9.]+ %)")));
  CHECK(std::regex_search(m.output, std::regex(R"(\ntg3: 2 passes were submitted before the previous one ended; the device still idled [0-9.]+ ms)")));
}

TEST_CASE("megrez-bench --load: cold and warm starts to the first token; bad uses are usage errors") {
  const Run j = run_bench("--load 1 --json");
  INFO(j.output);
  REQUIRE(j.status == 0);
  const nlohmann::json load = nlohmann::json::parse(j.output.substr(j.output.find("{\n")));
  CHECK(load["pairs"] == 1);
  for (const char* start : {"cold", "warm"}) {
    CAPTURE(start);
    const double total = load[start]["load_seconds"].get<double>();
    CHECK(total > 0);
    CHECK(load[start]["pipeline_seconds"].get<double>() <= total);
    CHECK(load[start]["first_token_seconds"].get<double>() >= total);
  }
  CHECK(run_bench("--load 0").status == 2);
  CHECK(run_bench("--load 1 --stream-sweep").status == 2);
}

namespace {

// A copy of the tiny model (files linked) with `file` replaced by `text`.
std::string hostile_model(const TempDir& dir, const std::string& file, const std::string& text) {
  for (const auto& entry : std::filesystem::directory_iterator(kTinyModelDir)) {
    const std::string name = entry.path().filename().string();
    if (name != file) std::filesystem::create_symlink(entry.path(), dir.path(name));
  }
  std::ofstream(dir.path(file)) << text;
  return dir.path();
}

}  // namespace

TEST_CASE("hostile model files end every tool with one line and exit 1, never a crash") {
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  {
    TempDir dir("deep-config");
    const std::string model = hostile_model(dir, "config.json", "{\"hidden_size\": " + deep + "}");
    const std::string out = dir.path("out.gguf");
    for (Run r : {run_cli("--model " + model + " --prompt hi -n 1"), run_bench("--model " + model + " -p 4 -n 1"),
                  run_convert(model + " " + out + " --type q8_0")}) {
      INFO(r.output);
      CHECK(r.status == 1);
      CHECK(r.output.find("nested deeper than 64 levels") != std::string::npos);
      CHECK(error_lines(r.output) == 1);
    }
  }
  {
    // A chat template of 100,000 chained `or`s reaches megrez-run --chat from
    // tokenizer_config.json: refused with a warning, and the built-in Megrez format serves.
    TempDir dir("chain-template");
    std::string chain = "{{ x";
    for (int i = 0; i < 100000; ++i) chain += " or x";
    chain += " }}";
    const std::string config = "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"chat_template\": \"" + chain + "\"}";
    const Run r = run_cli("--model " + hostile_model(dir, "tokenizer_config.json", config) + " --chat -n 4");
    INFO(r.output.substr(0, 2000));
    CHECK(r.status == 0);
    CHECK(r.output.find("chat template is not supported (template expression nests too deeply)") != std::string::npos);
  }
}
