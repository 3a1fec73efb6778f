// megrez-bench: headless benchmark of the engine, llama-bench style.
//
//   megrez-bench --model models/megrez2-tiny --type q4_0 -p 128 -n 32 --stages
//   megrez-bench --synthetic megrez2 --type q4_0 -p 16 -n 4 -r 1
//   megrez-bench --model models/megrez2-tiny --perplexity models/megrez2-tiny/heldout.txt
//
// Prints a markdown table (or JSON with --json) of prompt processing (ppN) and text generation
// (tgN) speed, mean +- sample standard deviation over the repetitions, the time to first
// token, load time and device memory; --stages adds the GPU time of each forward-pass stage
// per token and the rate at which it reads its weights. Methods: runtime/bench_run.h and
// runtime/perplexity.h; synthetic shapes: runtime/bench_synthetic.h.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "loader/error.h"
#include "loader/gguf_export.h"
#include "loader/model.h"
#include "loader/weight_layout.h"
#include "runtime/bench_run.h"
#include "runtime/bench_synthetic.h"
#include "runtime/engine.h"
#include "runtime/perplexity.h"
#include "runtime/vk_check.h"

namespace {

using namespace megrez;
using nlohmann::json;

struct UsageError : Error {
  using Error::Error;
};

const char* const kUsage = R"(usage: megrez-bench [options]
  --model PATH           Hugging Face directory or .gguf (default: the bundled tiny model)
  --synthetic NAME       random-weight model instead: megrez2 (the real shape), megrez2-half, tiny
  --type T               weight type f32|f16|bf16|q8_0|q4_0: the synthetic model's matrices, or
                         convert --model to it first (temporary GGUF); default q4_0 synthetic, as
                         stored for --model
  --seed S               synthetic weights seed (default 1)
  --save-gguf PATH       keep the synthetic / converted GGUF at PATH (else a temporary file)
  -p N                   prompt tokens of the pp test (default 512; 0 = no pp test)
  -n N                   generated tokens of the tg test (default 128; 0 = no tg test)
  -r N                   repetitions (default 3)
  --ctx N                context length (default max(p, n); with --perplexity the window: 256)
  --chunk N              prefill tokens per GPU pass (default from the device; 1 = decode kernels)
  --device N|NAME        Vulkan device (index or name substring)
  --profile NAME|FILE    emulate a weaker device's limits
  --stages               per-stage GPU time per token from timestamps
  --json                 print JSON instead of markdown
  --perplexity FILE      perplexity of the text instead of pp/tg (non-overlapping --ctx windows)
  --max-tokens N         use only the first N tokens of the --perplexity text
  --help                 this text
)";

struct Args {
  std::string model = std::string(MEGREZ_SOURCE_DIR) + "/models/megrez2-tiny";
  std::string synthetic;
  std::optional<DType> type;
  uint64_t seed = 1;
  std::string save_gguf;
  uint32_t p = 512, n = 128, reps = 3, ctx = 0;
  EngineOptions engine;
  bool json = false;
  std::string perplexity;
  uint64_t max_tokens = 0;
  bool help = false;
};

template <class T>
T parse_number(const std::string& flag, const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) throw UsageError(flag + " expects a number, got '" + text + "'");
  return value;
}

Args parse_args(int argc, char** argv) {
  Args a;
  bool model_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--model") {
      a.model = value();
      model_given = true;
    } else if (flag == "--synthetic") a.synthetic = value();
    else if (flag == "--type") {
      const std::string t = value();
      DType d;
      if (!dtype_from_name(t, d)) throw UsageError("--type expects f32, f16, bf16, q8_0 or q4_0, got '" + t + "'");
      a.type = d;
    } else if (flag == "--seed") a.seed = parse_number<uint64_t>(flag, value());
    else if (flag == "--save-gguf") a.save_gguf = value();
    else if (flag == "-p") a.p = parse_number<uint32_t>(flag, value());
    else if (flag == "-n") a.n = parse_number<uint32_t>(flag, value());
    else if (flag == "-r") a.reps = parse_number<uint32_t>(flag, value());
    else if (flag == "--ctx") a.ctx = parse_number<uint32_t>(flag, value());
    else if (flag == "--chunk") a.engine.chunk = parse_number<uint32_t>(flag, value());
    else if (flag == "--device") a.engine.device = value();
    else if (flag == "--profile") a.engine.profile = value();
    else if (flag == "--stages") a.engine.profile_stages = true;
    else if (flag == "--json") a.json = true;
    else if (flag == "--perplexity") a.perplexity = value();
    else if (flag == "--max-tokens") a.max_tokens = parse_number<uint64_t>(flag, value());
    else if (flag == "--help" || flag == "-h") a.help = true;
    else throw UsageError("unknown option '" + flag + "' (see --help)");
  }
  if (model_given && !a.synthetic.empty()) throw UsageError("give --model or --synthetic, not both");
  if (a.reps == 0) throw UsageError("-r must be at least 1");
  if (a.perplexity.empty() && a.p == 0 && a.n == 0) throw UsageError("nothing to run: -p 0 and -n 0");
  if (!a.perplexity.empty() && a.engine.profile_stages) throw UsageError("--stages applies to pp/tg, not --perplexity");
  if (a.max_tokens && a.perplexity.empty()) throw UsageError("--max-tokens applies to --perplexity");
  return a;
}

// ---- The model file ---------------------------------------------------------------------------

// A GGUF written for this run: removed at exit unless the user asked to keep it.
class BenchFile {
 public:
  BenchFile(const std::string& keep_as, const std::string& tag) {
    if (!keep_as.empty()) {
      path_ = keep_as;
    } else {
      path_ = (std::filesystem::temp_directory_path() /
               ("megrez-bench-" + std::to_string(getpid()) + "-" + tag + ".gguf")).string();
      temporary_ = true;
    }
  }
  ~BenchFile() {
    std::error_code ec;
    if (temporary_) std::filesystem::remove(path_, ec);
  }
  BenchFile(const BenchFile&) = delete;
  BenchFile& operator=(const BenchFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool temporary_ = false;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The path the engine loads, writing a synthetic model or a converted copy first when asked.
std::string prepare_model(const Args& a, std::unique_ptr<BenchFile>& file, std::string& label) {
  const auto start = std::chrono::steady_clock::now();
  if (!a.synthetic.empty()) {
    const ModelConfig config = bench_model_config(a.synthetic);
    const DType type = a.type.value_or(DType::Q4_0);
    label = "synthetic " + a.synthetic;
    file = std::make_unique<BenchFile>(a.save_gguf, a.synthetic + "-" + dtype_name(type));
    std::fprintf(stderr, "megrez-bench: writing %s (%s, seed %llu) to %s ...\n", label.c_str(), dtype_name(type),
                 static_cast<unsigned long long>(a.seed), file->path().c_str());
    const BenchModelSummary s = write_bench_gguf(file->path(), config, type, a.seed);
    std::fprintf(stderr, "megrez-bench: %s weights, %s in %.1f s\n", std::to_string(s.weights).c_str(),
                 format_bytes(s.file_bytes).c_str(), seconds_since(start));
    return file->path();
  }
  label = std::filesystem::path(a.model).filename().string();
  if (label.empty()) label = a.model;
  if (!a.type) {
    if (!a.save_gguf.empty()) throw UsageError("--save-gguf needs --synthetic or --type");
    return a.model;
  }
  const std::unique_ptr<Model> model = Model::open(a.model);
  file = std::make_unique<BenchFile>(a.save_gguf, label + "-" + dtype_name(*a.type));
  GgufExportOptions options;
  options.matrix_type = *a.type;
  options.name = label;
  const TokenizerData tokenizer = model->tokenizer() ? model->tokenizer()->data() : TokenizerData{};
  export_gguf(model->config(), model->weights(), model->tokenizer() ? &tokenizer : nullptr, file->path(), options);
  std::fprintf(stderr, "megrez-bench: converted %s to %s in %.1f s\n", a.model.c_str(), dtype_name(*a.type),
               seconds_since(start));
  return file->path();
}

// ---- Reports ----------------------------------------------------------------------------------

struct Report {
  std::string model, type, device;
  uint64_t params = 0;
  EngineStats stats;
  std::vector<BenchTest> tests;
};

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string params_text(uint64_t n) {
  return n >= 1000000000ull ? fixed(double(n) / 1e9, 2) + " B" : fixed(double(n) / 1e6, 2) + " M";
}

// Per-stage rows of one test: ms per token, share of the measured GPU time, weight GB/s.
json stage_rows(const BenchTest& t, uint32_t reps) {
  json rows = json::array();
  double total = 0;
  for (const StageTiming& s : t.stages) total += s.ms;
  const double tokens = double(t.tokens) * reps;
  for (const StageTiming& s : t.stages) {
    rows.push_back({{"stage", s.stage},
                    {"ms_per_token", s.ms / tokens},
                    {"share", total > 0 ? s.ms / total : 0},
                    {"weight_gb_per_s", s.ms > 0 ? double(s.weight_bytes) / (s.ms * 1e-3) / 1e9 : 0}});
  }
  return rows;
}

json to_json(const Report& r, uint32_t reps) {
  json tests = json::array();
  for (const BenchTest& t : r.tests) {
    json j = {{"test", t.name}, {"tokens", t.tokens}, {"reps", reps}, {"seconds", t.seconds},
              {"tokens_per_second", t.mean_tokens_per_second()}, {"stddev", t.stddev_tokens_per_second()}};
    if (!t.first_token.empty()) j["time_to_first_token_ms"] = t.mean_first_token_seconds() * 1e3;
    if (!t.stages.empty()) j["stages"] = stage_rows(t, reps);
    tests.push_back(j);
  }
  const EngineStats& s = r.stats;
  return {{"model", r.model}, {"type", r.type}, {"device", r.device}, {"params", r.params},
          {"weight_bytes", s.weight_bytes}, {"kv_cache_bytes", s.kv_cache_bytes},
          {"activation_bytes", s.activation_bytes},
          {"device_bytes", s.weight_bytes + s.kv_cache_bytes + s.activation_bytes},
          {"load_seconds", s.load_seconds}, {"tests", tests}};
}

void print_markdown(const Report& r, uint32_t reps) {
  const EngineStats& s = r.stats;
  std::printf("| model | type | size | params | test | t/s | TTFT ms |\n");
  std::printf("|---|---|---:|---:|---|---:|---:|\n");
  for (const BenchTest& t : r.tests) {
    std::printf("| %s | %s | %s | %s | %s | %s ± %s | %s |\n", r.model.c_str(), r.type.c_str(),
                format_bytes(s.weight_bytes).c_str(), params_text(r.params).c_str(), t.name.c_str(),
                fixed(t.mean_tokens_per_second(), 2).c_str(), fixed(t.stddev_tokens_per_second(), 2).c_str(),
                t.first_token.empty() ? "" : fixed(t.mean_first_token_seconds() * 1e3, 1).c_str());
  }
  std::printf("\n%s; %u reps; load %.2f s; device memory %s (weights %s + KV cache %s + activations %s)\n",
              r.device.c_str(), reps, s.load_seconds,
              format_bytes(s.weight_bytes + s.kv_cache_bytes + s.activation_bytes).c_str(),
              format_bytes(s.weight_bytes).c_str(), format_bytes(s.kv_cache_bytes).c_str(),
              format_bytes(s.activation_bytes).c_str());
  for (const BenchTest& t : r.tests) {
    if (t.stages.empty()) continue;
    std::printf("\n%s stages (GPU timestamps):\n\n| stage | ms/token | share | weights GB/s |\n|---|---:|---:|---:|\n",
                t.name.c_str());
    double total = 0;
    for (const json& row : stage_rows(t, reps)) {
      total += row["ms_per_token"].get<double>();
      std::printf("| %s | %s | %s %% | %s |\n", row["stage"].get<std::string>().c_str(),
                  fixed(row["ms_per_token"].get<double>(), 3).c_str(), fixed(100 * row["share"].get<double>(), 1).c_str(),
                  fixed(row["weight_gb_per_s"].get<double>(), 2).c_str());
    }
    std::printf("| total | %s | 100 %% | |\n", fixed(total, 3).c_str());
  }
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read --perplexity file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void run_perplexity(Engine& engine, const Args& a, const std::string& label, const std::string& type) {
  std::vector<int32_t> ids = engine.tokenize(read_text(a.perplexity), false);  // plain text: no special tokens
  if (a.max_tokens && ids.size() > a.max_tokens) ids.resize(a.max_tokens);
  const PerplexityResult r = evaluate_perplexity(engine, ids, engine.context_length());
  if (a.json) {
    const json j = {{"model", label}, {"type", type}, {"device", engine.device_name()}, {"text", a.perplexity},
                    {"tokens", ids.size()}, {"window", engine.context_length()}, {"windows", r.windows},
                    {"predicted_tokens", r.predicted}, {"mean_nll", r.mean_nll}, {"perplexity", r.perplexity},
                    {"seconds", r.seconds}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("| model | type | text | tokens | window | predicted | perplexity | s |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|---:|\n");
  std::printf("| %s | %s | %s | %zu | %u | %llu | %.4f | %.1f |\n", label.c_str(), type.c_str(),
              std::filesystem::path(a.perplexity).filename().string().c_str(), ids.size(), engine.context_length(),
              static_cast<unsigned long long>(r.predicted), r.perplexity, r.seconds);
}

// The weight type a loaded model mostly stores its matrices in (the attention q matrix's).
std::string stored_type_of(const std::string& path, const Args& a) {
  if (a.type) return dtype_name(*a.type);
  return dtype_name(Model::open(path)->weights().layers.at(0).wq.dtype);
}

int run(const Args& a) {
  std::unique_ptr<BenchFile> file;
  std::string label;
  const std::string path = prepare_model(a, file, label);
  const std::string type = a.synthetic.empty() ? stored_type_of(path, a) : dtype_name(a.type.value_or(DType::Q4_0));
  EngineOptions options = a.engine;
  options.ctx_len = a.ctx ? a.ctx : !a.perplexity.empty() ? 256 : std::max({a.p, a.n, 1u});
  auto engine = Engine::load(path, options);
  if (!a.perplexity.empty()) {
    run_perplexity(*engine, a, label, type);
    return 0;
  }
  Report report{label, type, engine->device_name(), stored_weight_count(engine->config()).value_or(0), {}, {}};
  if (a.p) report.tests.push_back(bench_prompt_processing(*engine, a.p, a.reps));
  if (a.n) report.tests.push_back(bench_text_generation(*engine, a.n, a.reps));
  report.stats = engine->stats();
  if (a.json) std::printf("%s\n", to_json(report, a.reps).dump(2).c_str());
  else print_markdown(report, a.reps);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse_args(argc, argv);
    if (args.help) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    return run(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "megrez-bench: %s\n", e.what());
    return 2;
  } catch (const megrez::Error& e) {
    std::fprintf(stderr, "megrez-bench: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "megrez-bench: internal error: %s\n", e.what());
    return 1;
  }
}
