// megrez-bench: headless benchmark of the engine, llama-bench style.
//
//   megrez-bench --model models/megrez2-tiny --type q4_0 -p 128 -n 32 --stages
//   megrez-bench --synthetic megrez2 --type q4_0 -p 16 -n 4 -r 1
//   megrez-bench --model models/megrez2-tiny --perplexity models/megrez2-tiny/heldout.txt
//
// Prints a markdown table (or JSON with --json) of prompt processing (ppN) and text generation
// (tgN) speed, mean +- sample standard deviation over the repetitions, the time to first
// token, load time and device memory; --stages adds the GPU time of each forward-pass stage
// per token and the rate at which it reads its weights. Methods: apps/tools/bench_run.h and
// apps/tools/perplexity.h; synthetic shapes: apps/tools/bench_synthetic.h.
#include <algorithm>
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

#include "apps/tools/bench_run.h"
#include "apps/tools/bench_synthetic.h"
#include "apps/tools/engine_flags.h"
#include "apps/tools/perplexity.h"
#include "loader/error.h"
#include "loader/formats/gguf_export.h"
#include "loader/formats/model.h"
#include "loader/formats/weight_layout.h"
#include "runtime/engine/engine.h"
#include "runtime/vk/memory.h"

namespace {

using namespace megrez;
using nlohmann::json;

std::string usage() {
  return R"(usage: megrez-bench [options]
  --model PATH          Hugging Face directory or .gguf (default: the bundled tiny model)
  --synthetic NAME      random-weight model instead: megrez2 (the real shape), megrez2-half, tiny
  --type T              weight type f32|f16|bf16|q8_0|q4_0: the synthetic model's matrices, or
                        convert --model to it first (temporary GGUF); default q4_0 synthetic, as
                        stored for --model
  --seed S              synthetic weights seed (default 1)
  --save-gguf PATH      keep the synthetic / converted GGUF at PATH (else a temporary file)
  -p N                  prompt tokens of the pp test (default 512; 0 = no pp test)
  -n N                  generated tokens of the tg test (default 128; 0 = no tg test)
  -r N                  repetitions (default 3)
)" + engine_flags_usage("max(p, n); with --perplexity the window: 256") +
         R"(  --stages              per-stage GPU time per token from timestamps
  --stream-sweep        load the model once per expert configuration: resident, then prefetch
                        and ondemand at each of --budgets; one table of tg speed (and its ratio
                        to resident), stall, hit rate and upload per token (and pp with -p)
  --budgets 100,50,25   expert budgets of --stream-sweep, percent of the routed experts
  --json                print JSON instead of markdown
  --load N              load time instead of pp/tg: N pairs of a cold start (an empty pipeline
                        cache) and a warm one (the cache the cold start wrote), alternating
  --perplexity FILE     perplexity of the text instead of pp/tg (non-overlapping --ctx windows)
  --max-tokens N        use only the first N tokens of the --perplexity text
  --help                this text
)";
}

struct Args {
  std::string model = default_model_path();
  std::string synthetic;
  std::optional<DType> type;
  uint64_t seed = 1;
  std::string save_gguf;
  uint32_t p = 512, n = 128, reps = 3;
  EngineOptions engine;
  bool stream_sweep = false;
  std::vector<uint32_t> budgets = {100, 50, 25};  // percent
  bool budgets_given = false;
  bool json = false;
  std::string perplexity;
  uint64_t max_tokens = 0;
  uint32_t load_pairs = 0;  // --load
  bool help = false;
};

// "100,50,25" (a "%" after each is allowed): percents in 1..100.
std::vector<uint32_t> parse_budgets(const std::string& text) {
  std::vector<uint32_t> budgets;
  for (std::string item : split_flag_list(text)) {
    if (!item.empty() && item.back() == '%') item.pop_back();
    const uint32_t percent = parse_flag_number<uint32_t>("--budgets", item);
    if (percent == 0 || percent > 100) throw UsageError("--budgets expects percents in 1..100, got '" + item + "'");
    budgets.push_back(percent);
  }
  return budgets;
}

// Combinations that have no meaning, found before anything is loaded.
void check_args(const Args& a, bool model_given) {
  if (model_given && !a.synthetic.empty()) throw UsageError("give --model or --synthetic, not both");
  if (a.reps == 0) throw UsageError("-r must be at least 1");
  if (a.perplexity.empty() && a.p == 0 && a.n == 0) throw UsageError("nothing to run: -p 0 and -n 0");
  if (!a.perplexity.empty() && a.engine.profile_stages) throw UsageError("--stages applies to pp/tg, not --perplexity");
  if (a.max_tokens && a.perplexity.empty()) throw UsageError("--max-tokens applies to --perplexity");
  if (a.budgets_given && !a.stream_sweep) throw UsageError("--budgets applies to --stream-sweep");
  if (a.load_pairs && (a.stream_sweep || !a.perplexity.empty())) {
    throw UsageError("--load cannot be combined with --stream-sweep or --perplexity");
  }
  if (!a.stream_sweep) return;
  if (!a.perplexity.empty()) throw UsageError("--stream-sweep measures pp/tg, not --perplexity");
  if (a.n == 0) throw UsageError("--stream-sweep measures text generation: give -n above 0");
  if (a.engine.profile_stages) throw UsageError("--stages cannot be combined with --stream-sweep");
  if (a.engine.stream != StreamMode::Auto || !a.engine.expert_budget.empty()) {
    throw UsageError("--stream-sweep chooses --stream and --expert-budget itself (use --budgets)");
  }
}

Args parse_args(int argc, char** argv) {
  Args a;
  bool model_given = false;
  FlagCursor args(argc, argv);
  while (args.next()) {
    const std::string flag = args.flag();
    if (parse_engine_flag(args, a.engine)) continue;
    if (flag == "--model") {
      a.model = args.value();
      model_given = true;
    } else if (flag == "--synthetic") a.synthetic = args.value();
    else if (flag == "--type") {
      const std::string t = args.value();
      DType d;
      if (!dtype_from_name(t, d)) throw UsageError("--type expects f32, f16, bf16, q8_0 or q4_0, got '" + t + "'");
      a.type = d;
    } else if (flag == "--seed") a.seed = parse_flag_number<uint64_t>(flag, args.value());
    else if (flag == "--save-gguf") a.save_gguf = args.value();
    else if (flag == "-p") a.p = parse_flag_number<uint32_t>(flag, args.value());
    else if (flag == "-n") a.n = parse_flag_number<uint32_t>(flag, args.value());
    else if (flag == "-r") a.reps = parse_flag_number<uint32_t>(flag, args.value());
    else if (flag == "--stages") a.engine.profile_stages = true;
    else if (flag == "--stream-sweep") a.stream_sweep = true;
    else if (flag == "--budgets") {
      a.budgets = parse_budgets(args.value());
      a.budgets_given = true;
    } else if (flag == "--json") a.json = true;
    else if (flag == "--perplexity") a.perplexity = args.value();
    else if (flag == "--max-tokens") a.max_tokens = parse_flag_number<uint64_t>(flag, args.value());
    else if (flag == "--load") {
      a.load_pairs = parse_flag_number<uint32_t>(flag, args.value());
      if (a.load_pairs == 0) throw UsageError("--load expects at least 1 pair");
    }
    else if (flag == "--help" || flag == "-h") a.help = true;
    else throw UsageError("unknown option '" + flag + "' (see --help)");
  }
  check_args(a, model_given);
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
  std::string streaming;  // Engine::streaming_summary()
  bool streamed = false;  // experts stream through a cache: stream columns
};

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string params_text(uint64_t n) {
  return n >= 1000000000ull ? fixed(double(n) / 1e9, 2) + " B" : fixed(double(n) / 1e6, 2) + " M";
}

// Expert streaming per timed token of a test: what the cache cost each token.
double mb_uploaded_per_token(const BenchTest& t) {
  return t.timed_tokens() ? double(t.stream.bytes_uploaded) / 1e6 / double(t.timed_tokens()) : 0;
}
double stall_ms_per_token(const BenchTest& t) {
  return t.timed_tokens() ? t.stream.stall_ms / double(t.timed_tokens()) : 0;
}
std::string stall_cell(const BenchTest& t) {
  return t.stream.stall_measured ? fixed(stall_ms_per_token(t), 3) : "n/a";
}
std::string hit_rate_cell(const BenchTest& t) { return fixed(100 * t.stream.hit_rate(), 1) + " %"; }

json stream_json(const BenchTest& t) {
  return {{"lookups", t.stream.lookups}, {"hits", t.stream.hits}, {"misses", t.stream.misses},
          {"hit_rate", t.stream.hit_rate()}, {"bytes_uploaded", t.stream.bytes_uploaded},
          {"uploads", t.stream.uploads}, {"rounds", t.stream.rounds},
          {"mb_uploaded_per_token", mb_uploaded_per_token(t)},
          {"stall_ms_per_token", t.stream.stall_measured ? json(stall_ms_per_token(t)) : json(nullptr)},
          {"slots", t.stream.slots}, {"occupied", t.stream.occupied}};
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

// Wall time per token and the host's share of it: wall minus the GPU time of the passes
// (timestamps at each tg pass's start and end, else the sum of the stages, which cover a pass
// end to end), i.e. recording, submitting, waking up and reading results while the GPU does
// nothing for this token. gpu_ms 0: not measured.
struct HostShare {
  double wall_ms = 0, gpu_ms = 0;
  double share() const { return wall_ms > 0 ? std::max(0.0, wall_ms - gpu_ms) / wall_ms : 0; }
};
HostShare host_share(const BenchTest& t) {
  HostShare h;
  const double tokens = double(t.timed_tokens());
  if (tokens == 0) return h;
  for (double s : t.seconds) h.wall_ms += s * 1e3 / tokens;
  if (t.gpu_seconds > 0) {
    h.gpu_ms = t.gpu_seconds * 1e3 / tokens;
  } else {
    for (const StageTiming& s : t.stages) h.gpu_ms += s.ms / tokens;
  }
  return h;
}

// The device's idle time between a chained pass and the one before it, ms per such pass.
double chained_gap_ms(const BenchTest& t) {
  return t.chained_passes ? t.chained_gap_seconds * 1e3 / double(t.chained_passes) : 0;
}

void print_host_share(const BenchTest& t, bool stages) {
  const HostShare h = host_share(t);
  if (h.gpu_ms <= 0) return;
  std::printf("\n%s: wall %s ms/token, GPU %s ms/token: host share %s %% (wall - GPU: recording, submission, "
              "wake-up, read-back%s)\n",
              t.name.c_str(), fixed(h.wall_ms, 3).c_str(), fixed(h.gpu_ms, 3).c_str(), fixed(100 * h.share(), 1).c_str(),
              stages ? "; --stages passes are not chained" : "");
  if (t.chained_passes > 0) {
    std::printf("%s: %llu passes were submitted before the previous one ended; the device still idled %s ms "
                "between each and the previous (timestamps): the driver's own cost per submission\n",
                t.name.c_str(), static_cast<unsigned long long>(t.chained_passes), fixed(chained_gap_ms(t), 3).c_str());
  }
}

json to_json(const Report& r, uint32_t reps) {
  json tests = json::array();
  for (const BenchTest& t : r.tests) {
    json j = {{"test", t.name}, {"tokens", t.tokens}, {"reps", reps}, {"seconds", t.seconds},
              {"tokens_per_second", t.mean_tokens_per_second()}, {"stddev", t.stddev_tokens_per_second()}};
    if (!t.first_token.empty()) j["time_to_first_token_ms"] = t.mean_first_token_seconds() * 1e3;
    if (!t.stages.empty()) j["stages"] = stage_rows(t, reps);
    if (const HostShare h = host_share(t); h.gpu_ms > 0) {
      j["wall_ms_per_token"] = h.wall_ms;
      j["gpu_ms_per_token"] = h.gpu_ms;
      j["host_share"] = h.share();
    }
    if (t.chained_passes > 0) {
      j["chained_passes"] = t.chained_passes;
      j["chained_gap_ms_per_pass"] = chained_gap_ms(t);
    }
    if (r.streamed) j["stream"] = stream_json(t);
    tests.push_back(j);
  }
  const EngineStats& s = r.stats;
  return {{"model", r.model}, {"type", r.type}, {"device", r.device}, {"params", r.params},
          {"weight_bytes", s.weight_bytes}, {"kv_cache_bytes", s.kv_cache_bytes},
          {"activation_bytes", s.activation_bytes},
          {"expert_cache_bytes", s.expert_cache_bytes},
          {"device_bytes", s.weight_bytes + s.expert_cache_bytes + s.kv_cache_bytes + s.activation_bytes},
          {"streaming", r.streaming},
          {"decode_pass", {{"dispatches", s.decode_pass.dispatches}, {"barriers", s.decode_pass.barriers},
                           {"submissions", s.decode_pass.submissions}}},
          {"load_seconds", s.load_seconds}, {"tests", tests}};
}

void print_markdown(const Report& r, uint32_t reps) {
  const EngineStats& s = r.stats;
  std::printf("| model | type | size | params | test | t/s | TTFT ms |%s\n",
              r.streamed ? " hit rate | MB/token | stall ms/token |" : "");
  std::printf("|---|---|---:|---:|---|---:|---:|%s\n", r.streamed ? "---:|---:|---:|" : "");
  for (const BenchTest& t : r.tests) {
    std::printf("| %s | %s | %s | %s | %s | %s ± %s | %s |", r.model.c_str(), r.type.c_str(),
                format_bytes(s.weight_bytes).c_str(), params_text(r.params).c_str(), t.name.c_str(),
                fixed(t.mean_tokens_per_second(), 2).c_str(), fixed(t.stddev_tokens_per_second(), 2).c_str(),
                t.first_token.empty() ? "" : fixed(t.mean_first_token_seconds() * 1e3, 1).c_str());
    if (r.streamed) {
      std::printf(" %s | %s | %s |", hit_rate_cell(t).c_str(), fixed(mb_uploaded_per_token(t), 3).c_str(),
                  stall_cell(t).c_str());
    }
    std::printf("\n");
  }
  std::printf("\n%s; %u reps; load %.2f s; device memory %s (weights %s%s + KV cache %s + activations %s)\n",
              r.device.c_str(), reps, s.load_seconds,
              format_bytes(s.weight_bytes + s.expert_cache_bytes + s.kv_cache_bytes + s.activation_bytes).c_str(),
              format_bytes(s.weight_bytes).c_str(),
              r.streamed ? (" + expert cache " + format_bytes(s.expert_cache_bytes)).c_str() : "",
              format_bytes(s.kv_cache_bytes).c_str(), format_bytes(s.activation_bytes).c_str());
  std::printf("experts: %s\n", r.streaming.c_str());
  if (s.decode_pass.dispatches) {
    std::printf("per decoded token: %u dispatches, %u barriers, %u submission(s)\n", s.decode_pass.dispatches,
                s.decode_pass.barriers, s.decode_pass.submissions);
  }
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
  for (const BenchTest& t : r.tests) print_host_share(t, !t.stages.empty());
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

// ---- --stream-sweep ---------------------------------------------------------------------------

// One expert configuration of the sweep, loaded from the same model file as the others.
struct SweepRow {
  StreamMode mode = StreamMode::Resident;
  uint32_t budget = 100;  // percent of the routed experts
  std::optional<BenchTest> pp, tg;
  std::string error;      // why it could not be loaded or run (the other rows still are)
};

SweepRow measure_configuration(const Args& a, const std::string& path, EngineOptions options, StreamMode mode,
                               uint32_t budget) {
  SweepRow row{mode, budget, {}, {}, {}};
  options.stream = mode;
  options.expert_budget = mode == StreamMode::Resident ? "" : std::to_string(budget) + "%";
  try {
    auto engine = Engine::load(path, options);
    std::fprintf(stderr, "megrez-bench: %s\n", engine->streaming_summary().c_str());
    if (a.p) row.pp = bench_prompt_processing(*engine, a.p, a.reps);
    row.tg = bench_text_generation(*engine, a.n, a.reps);
  } catch (const Error& e) {
    row.error = e.what();
    std::fprintf(stderr, "megrez-bench: %s at %u%%: %s\n", stream_mode_name(mode), budget, e.what());
  }
  return row;
}

// tg speed of `row` over the resident row's; 0 when either is missing.
double ratio_to_resident(const SweepRow& row, const SweepRow& resident) {
  if (!row.tg || !resident.tg || resident.tg->mean_tokens_per_second() <= 0) return 0;
  return row.tg->mean_tokens_per_second() / resident.tg->mean_tokens_per_second();
}

json sweep_json(const std::vector<SweepRow>& rows) {
  json out = json::array();
  for (const SweepRow& row : rows) {
    json j = {{"mode", stream_mode_name(row.mode)}, {"budget_percent", row.budget}};
    if (!row.error.empty()) j["error"] = row.error;
    if (row.tg) {
      j["tg"] = {{"test", row.tg->name}, {"tokens_per_second", row.tg->mean_tokens_per_second()},
                 {"stddev", row.tg->stddev_tokens_per_second()}, {"stream", stream_json(*row.tg)}};
      j["ratio_to_resident"] = ratio_to_resident(row, rows.front());
    }
    if (row.pp) {
      j["pp"] = {{"test", row.pp->name}, {"tokens_per_second", row.pp->mean_tokens_per_second()},
                 {"stddev", row.pp->stddev_tokens_per_second()}, {"stream", stream_json(*row.pp)}};
    }
    out.push_back(j);
  }
  return out;
}

void print_sweep_markdown(const std::vector<SweepRow>& rows, bool with_pp) {
  std::printf("| mode | budget | tg t/s | vs resident | stall ms/token | hit rate | MB/token |%s\n",
              with_pp ? " pp t/s |" : "");
  std::printf("|---|---:|---:|---:|---:|---:|---:|%s\n", with_pp ? "---:|" : "");
  for (const SweepRow& row : rows) {
    std::printf("| %s | %u %% |", stream_mode_name(row.mode), row.budget);
    if (!row.tg) {
      std::printf(" failed | | | | |%s\n", with_pp ? " |" : "");
      continue;
    }
    const BenchTest& tg = *row.tg;
    const double ratio = ratio_to_resident(row, rows.front());
    std::printf(" %s ± %s | %s |", fixed(tg.mean_tokens_per_second(), 2).c_str(),
                fixed(tg.stddev_tokens_per_second(), 2).c_str(), ratio > 0 ? fixed(ratio, 2).c_str() : "n/a");
    if (row.mode == StreamMode::Resident) std::printf(" - | - | - |");
    else std::printf(" %s | %s | %s |", stall_cell(tg).c_str(), hit_rate_cell(tg).c_str(), fixed(mb_uploaded_per_token(tg), 3).c_str());
    if (with_pp) {
      std::printf(" %s |", row.pp ? (fixed(row.pp->mean_tokens_per_second(), 2) + " ± " +
                                     fixed(row.pp->stddev_tokens_per_second(), 2)).c_str() : "");
    }
    std::printf("\n");
  }
}

// Resident at 100%, then prefetch and on-demand at each budget, every one a fresh engine on
// the same file; the ratio compares with the resident run of this process. Exit 1 when a
// configuration failed (its row says so; the others are still measured).
int run_stream_sweep(const Args& a, const std::string& path, const EngineOptions& options, const std::string& label,
                     const std::string& type) {
  std::vector<SweepRow> rows;
  rows.push_back(measure_configuration(a, path, options, StreamMode::Resident, 100));
  for (StreamMode mode : {StreamMode::Prefetch, StreamMode::OnDemand}) {
    for (uint32_t budget : a.budgets) rows.push_back(measure_configuration(a, path, options, mode, budget));
  }
  const bool failed = std::any_of(rows.begin(), rows.end(), [](const SweepRow& r) { return !r.error.empty(); });
  if (a.json) {
    const json j = {{"model", label}, {"type", type}, {"reps", a.reps}, {"storage_bw_gb_per_s", options.storage_bw},
                    {"eviction", options.eviction}, {"rows", sweep_json(rows)}};
    std::printf("%s\n", j.dump(2).c_str());
    return failed ? 1 : 0;
  }
  std::printf("%s (%s); %u reps; storage %s; eviction %s\n\n", label.c_str(), type.c_str(), a.reps,
              options.storage_bw > 0 ? (fixed(options.storage_bw, 2) + " GB/s").c_str() : "unthrottled",
              options.eviction.c_str());
  print_sweep_markdown(rows, a.p > 0);
  return failed ? 1 : 0;
}

// ---- --load -----------------------------------------------------------------------------------

// Cold and warm starts, alternating so drift hits both alike. Cold: a new, empty pipeline cache
// directory (every pipeline compiled); warm: the directory the cold start just wrote. Each start
// is timed to its first token too (a two-token prefill, one decode): drivers that compile
// lazily (lavapipe) pay at the first dispatch, not in vkCreateComputePipelines. Driver caches of
// their own (Mesa's disk cache, NVIDIA's) are outside this and may warm both: for a cold driver,
// run with its cache off (MESA_SHADER_CACHE_DISABLE=true).
int run_load(const Args& a, const std::string& path, EngineOptions options, const std::string& label,
             const std::string& type) {
  struct Start {
    double load = 0, pipelines = 0, ready = 0;  // ready: load + the first token
  };
  std::vector<Start> cold, warm;
  std::string device;
  for (uint32_t pair = 0; pair < a.load_pairs; ++pair) {
    const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                      ("megrez-bench-cache-" + std::to_string(getpid()) + "-" + std::to_string(pair));
    std::filesystem::create_directories(dir);
    options.pipeline_cache = dir.string() + "/";
    for (std::vector<Start>* run : {&cold, &warm}) {
      const auto start = std::chrono::steady_clock::now();
      auto engine = Engine::load(path, options);  // its destructor writes the cache
      const std::vector<int32_t> two = {0, 0};
      engine->prefill(two);      // a prefill pass (matmul kernels)
      engine->decode_greedy(0);  // and a decode (matvec kernels)
      run->push_back({engine->stats().load_seconds, engine->stats().pipeline_seconds, seconds_since(start)});
      device = engine->device_name();
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  auto mean = [](const std::vector<Start>& v, double Start::*field) {
    double sum = 0;
    for (const Start& s : v) sum += s.*field;
    return sum / double(v.size());
  };
  const double cold_load = mean(cold, &Start::load), warm_load = mean(warm, &Start::load);
  const double cold_pipes = mean(cold, &Start::pipelines), warm_pipes = mean(warm, &Start::pipelines);
  const double cold_ready = mean(cold, &Start::ready), warm_ready = mean(warm, &Start::ready);
  if (a.json) {
    const json j = {{"model", label}, {"type", type}, {"device", device}, {"pairs", a.load_pairs},
                    {"cold", {{"load_seconds", cold_load}, {"pipeline_seconds", cold_pipes},
                              {"first_token_seconds", cold_ready}}},
                    {"warm", {{"load_seconds", warm_load}, {"pipeline_seconds", warm_pipes},
                              {"first_token_seconds", warm_ready}}},
                    {"first_token_speedup", warm_ready > 0 ? cold_ready / warm_ready : 0},
                    {"load_speedup", warm_load > 0 ? cold_load / warm_load : 0},
                    {"pipeline_speedup", warm_pipes > 0 ? cold_pipes / warm_pipes : 0}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("| model | type | start | load s | pipelines s | to first token s |\n|---|---|---|---:|---:|---:|\n");
  std::printf("| %s | %s | cold | %.3f | %.3f | %.3f |\n", label.c_str(), type.c_str(), cold_load, cold_pipes, cold_ready);
  std::printf("| %s | %s | warm | %.3f | %.3f | %.3f |\n", label.c_str(), type.c_str(), warm_load, warm_pipes, warm_ready);
  std::printf("\n%s; mean of %u pairs; warm/cold: load %.2fx, pipelines %.2fx, to first token %.2fx faster\n",
              device.c_str(), a.load_pairs, warm_load > 0 ? cold_load / warm_load : 0,
              warm_pipes > 0 ? cold_pipes / warm_pipes : 0, warm_ready > 0 ? cold_ready / warm_ready : 0);
  return 0;
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
  if (!options.ctx_len) options.ctx_len = !a.perplexity.empty() ? 256 : std::max({a.p, a.n, 1u});
  if (a.stream_sweep) return run_stream_sweep(a, path, options, label, type);
  if (a.load_pairs) return run_load(a, path, options, label, type);
  auto engine = Engine::load(path, options);
  if (!a.perplexity.empty()) {
    run_perplexity(*engine, a, label, type);
    return 0;
  }
  Report report{label, type, engine->device_name(), stored_weight_count(engine->config()).value_or(0), {}, {},
                engine->streaming_summary(), engine->stream_mode() != StreamMode::Resident};
  if (a.p) report.tests.push_back(bench_prompt_processing(*engine, a.p, a.reps));
  if (a.n) report.tests.push_back(bench_text_generation(*engine, a.n, a.reps));
  report.stats = engine->stats();
  if (a.json) std::printf("%s\n", to_json(report, a.reps).dump(2).c_str());
  else print_markdown(report, a.reps);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return megrez::run_tool("megrez-bench", [&] {
    const Args args = parse_args(argc, argv);
    if (args.help) {
      std::fputs(usage().c_str(), stdout);
      return 0;
    }
    return run(args);
  });
}
