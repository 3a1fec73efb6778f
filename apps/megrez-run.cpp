// megrez-run: generate text with a Megrez2 model on a Vulkan device, or chat with it.
//
//   megrez-run --prompt "In the beginning" -n 32
//   megrez-run --model model.gguf --chat --temp 0.7 --top-p 0.9
//   megrez-run --prompt-ids 1027,264,2037 -n 8 --dump-logits logits.f32
//
// Text streams to stdout as it is generated; speeds go to stderr at the end. Every user error
// prints one line "megrez-run: ..." and exits non-zero (2 for bad arguments, 1 otherwise).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "apps/tools/engine_flags.h"
#include "loader/error.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/generate.h"
#include "runtime/engine/text_stream.h"
#include "runtime/vk/context.h"

namespace {

using namespace megrez;

std::string usage() {
  return R"(usage: megrez-run [options]
  --model PATH          Hugging Face directory or .gguf file (default: the bundled tiny model)
  --prompt TEXT         prompt text (tokenized with the model's tokenizer); with --chat the first turn
  --prompt-ids 1,2,3    prompt as token ids
  -n N                  tokens to generate (default 64; in --chat, per reply: 512)
  --temp T              temperature; 0 = greedy (default 0; Megrez2 recommends 0.7)
  --top-k K             keep the K most likely tokens (default 0 = off)
  --top-p P             nucleus sampling (default 1 = off; Megrez2 recommends 0.9)
  --seed S              sampler seed (default 0)
  --repeat-penalty R    penalty for tokens of the last 64 (default 1 = off)
)" + engine_flags_usage("min(model maximum, 4096)") +
         R"(  --chat                interactive chat (reads user turns from stdin; the KV cache is reused)
  --dump-logits FILE    write float32 logits: one row per evaluated position (prompt, then each
                        generated token as it is fed back: row P-1+t produced generated token t)
  --stats               expert streaming statistics on stderr: per decoded token and in total
  --list-devices        list Vulkan devices and exit
  --help                this text
)";
}

struct Args {
  std::string model = default_model_path();
  std::optional<std::string> prompt;
  std::optional<std::vector<int32_t>> prompt_ids;
  std::optional<uint32_t> n;
  SamplerOptions sampler;
  EngineOptions engine;
  bool chat = false;
  std::string dump_logits;
  bool stats = false;
  bool list_devices = false;
  bool help = false;
};

// ---- Argument parsing ------------------------------------------------------------------------

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  for (const std::string& item : split_flag_list(text)) ids.push_back(parse_flag_number<int32_t>("--prompt-ids", item));
  return ids;
}

Args parse_args(int argc, char** argv) {
  Args a;
  FlagCursor args(argc, argv);
  while (args.next()) {
    const std::string flag = args.flag();
    if (parse_engine_flag(args, a.engine)) continue;
    if (flag == "--model") a.model = args.value();
    else if (flag == "--prompt") a.prompt = args.value();
    else if (flag == "--prompt-ids") a.prompt_ids = parse_ids(args.value());
    else if (flag == "-n") a.n = parse_flag_number<uint32_t>(flag, args.value());
    else if (flag == "--temp") a.sampler.temperature = parse_flag_number<float>(flag, args.value());
    else if (flag == "--top-k") a.sampler.top_k = parse_flag_number<int32_t>(flag, args.value());
    else if (flag == "--top-p") a.sampler.top_p = parse_flag_number<float>(flag, args.value());
    else if (flag == "--seed") a.sampler.seed = parse_flag_number<uint64_t>(flag, args.value());
    else if (flag == "--repeat-penalty") a.sampler.repeat_penalty = parse_flag_number<float>(flag, args.value());
    else if (flag == "--chat") a.chat = true;
    else if (flag == "--dump-logits") a.dump_logits = args.value();
    else if (flag == "--stats") a.stats = true;
    else if (flag == "--list-devices") a.list_devices = true;
    else if (flag == "--help" || flag == "-h") a.help = true;
    else throw UsageError("unknown option '" + flag + "' (see --help)");
  }
  if (a.prompt && a.prompt_ids) throw UsageError("give --prompt or --prompt-ids, not both");
  if (a.chat && a.prompt_ids) throw UsageError("--chat takes text turns, not --prompt-ids");
  if (a.chat && !a.dump_logits.empty()) throw UsageError("--dump-logits cannot be combined with --chat");
  if (!a.chat && !a.prompt && !a.prompt_ids && !a.help && !a.list_devices) {
    throw UsageError("give a prompt (--prompt TEXT or --prompt-ids 1,2,3) or --chat");
  }
  validate(a.sampler);
  return a;
}

// ---- Output -----------------------------------------------------------------------------------

class LogitsFile {
 public:
  explicit LogitsFile(const std::string& path) : path_(path) {
    if (path.empty()) return;
    out_.open(path, std::ios::binary | std::ios::trunc);
    if (!out_) throw Error("cannot write --dump-logits file " + path);
  }
  bool enabled() const { return out_.is_open(); }
  void write(std::span<const float> rows) {
    if (!enabled()) return;
    out_.write(reinterpret_cast<const char*>(rows.data()), std::streamsize(rows.size() * sizeof(float)));
    if (!out_) throw Error("writing " + path_ + " failed (disk full?)");
  }

 private:
  std::string path_;
  std::ofstream out_;
};

void print_stats(const Engine& engine) {
  const EngineStats& s = engine.stats();
  std::fprintf(stderr,
               "\n[%s] load %.2f s; prefill %llu tokens, %.1f tokens/s; decode %llu tokens, %.1f tokens/s\n",
               engine.device_name().c_str(), s.load_seconds, static_cast<unsigned long long>(s.prefill_tokens),
               s.prefill_tokens_per_second(), static_cast<unsigned long long>(s.decode_tokens),
               s.decode_tokens_per_second());
}

// --stats: the expert cache's work, read after the prefill and after every decode pass, so the
// per-token lines show what each generated token cost (hits, misses, upload, stall).
class StreamLog {
 public:
  explicit StreamLog(const Engine& engine) : engine_(engine) {}
  void after_prefill() {
    prefill_ = engine_.stats().stream;
    seen_decodes_ = engine_.stats().decode_tokens;
  }
  // Records the last pass when it was a decode not seen yet.
  void poll() {
    if (engine_.stats().decode_tokens == seen_decodes_) return;
    seen_decodes_ = engine_.stats().decode_tokens;
    tokens_.push_back(engine_.last_pass_stream_stats());
  }
  void print(bool per_token) const;

 private:
  const Engine& engine_;
  StreamStats prefill_;
  uint64_t seen_decodes_ = 0;
  std::vector<StreamStats> tokens_;
};

std::string megabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f MB", double(bytes) / 1e6);
  return buf;
}

std::string stall_text(const StreamStats& s) {
  if (!s.stall_measured) return "stall n/a (no GPU timestamps)";
  char buf[48];
  std::snprintf(buf, sizeof buf, "stall %.3f ms", s.stall_ms);
  return buf;
}

// lookups, hits, misses, upload and stall of one pass or a sum of passes.
std::string pass_text(const StreamStats& s) {
  return "lookups " + std::to_string(s.lookups) + ", hits " + std::to_string(s.hits) + ", misses " +
         std::to_string(s.misses) + ", uploaded " + megabytes(s.bytes_uploaded) + ", " + stall_text(s);
}

void StreamLog::print(bool per_token) const {
  std::fprintf(stderr, "[stream] %s\n", engine_.streaming_summary().c_str());
  if (engine_.stream_mode() == StreamMode::Resident) {
    std::fprintf(stderr, "[stream] experts are resident: no expert cache statistics\n");
    return;
  }
  if (per_token) {
    std::fprintf(stderr, "[stream] prefill: %s\n", pass_text(prefill_).c_str());
    for (size_t t = 0; t < tokens_.size(); ++t) {
      std::fprintf(stderr, "[stream] token %zu: %s\n", t + 1, pass_text(tokens_[t]).c_str());
    }
  }
  const StreamStats& s = engine_.stats().stream;
  std::fprintf(stderr,
               "[stream] total: lookups %llu, hits %llu, misses %llu, hit rate %.1f%%, uploaded %s (%llu bytes), "
               "uploads %llu, rounds %llu, %s, occupancy %u/%u slots\n",
               static_cast<unsigned long long>(s.lookups), static_cast<unsigned long long>(s.hits),
               static_cast<unsigned long long>(s.misses), 100 * s.hit_rate(), megabytes(s.bytes_uploaded).c_str(),
               static_cast<unsigned long long>(s.bytes_uploaded), static_cast<unsigned long long>(s.uploads),
               static_cast<unsigned long long>(s.rounds), stall_text(s).c_str(), s.occupied, s.slots);
}

void write_text(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

// ---- Modes ------------------------------------------------------------------------------------

void run_prompt(Engine& engine, const Args& a, StreamLog& log) {
  const std::vector<int32_t> prompt = a.prompt_ids ? *a.prompt_ids : engine.tokenize(*a.prompt);
  if (prompt.empty()) throw Error("the prompt has no tokens");
  LogitsFile dump(a.dump_logits);
  std::vector<float> logits = engine.prefill(prompt, dump.enabled());
  if (dump.enabled()) {
    dump.write(logits);
    logits.erase(logits.begin(), logits.end() - engine.config().vocab_size);
  }
  log.after_prefill();
  if (a.prompt) write_text(*a.prompt);

  GenerateOptions options;
  options.sampler = a.sampler;
  options.max_tokens = a.n.value_or(64);
  options.stop_ids = default_stop_ids(engine);
  if (dump.enabled()) options.on_logits = [&](std::span<const float> row) { dump.write(row); };
  Utf8Stream utf8;
  options.on_token = [&](int32_t id) {
    log.poll();
    if (!engine.has_tokenizer()) write_text(std::to_string(id) + " ");
    else if (!engine.tokenizer().is_special(id)) write_text(utf8.push(engine.tokenizer().token_text(id)));
  };
  std::vector<int32_t> history = prompt;
  generate(engine, std::move(logits), options, history);
  log.poll();  // the decode that produced a stop id
  write_text(utf8.flush() + "\n");
}

// Multi-turn chat on stdin/stdout; the KV cache keeps earlier turns (ChatSession).
void run_chat(Engine& engine, const Args& a) {
  ChatSession chat(engine);
  std::optional<std::string> first = a.prompt;
  std::fprintf(stderr, "chat with %s on %s; an empty line or end of input quits\n", a.model.c_str(),
               engine.device_name().c_str());
  while (true) {
    std::string user;
    if (first) {
      user = *first;
      first.reset();
      std::fprintf(stderr, "> %s\n", user.c_str());
    } else {
      std::fprintf(stderr, "> ");
      if (!std::getline(std::cin, user) || user.empty()) break;
    }
    chat.reply(user, a.sampler, a.n.value_or(512), write_text);
    write_text("\n");
    if (chat.restarted()) std::fprintf(stderr, "(the context was full: earlier turns were dropped)\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  return megrez::run_tool("megrez-run", [&] {
    const Args args = parse_args(argc, argv);
    if (args.help) {
      std::fputs(usage().c_str(), stdout);
      return 0;
    }
    if (args.list_devices) {
      for (const std::string& line : megrez::list_devices()) std::printf("%s\n", line.c_str());
      return 0;
    }
    auto engine = megrez::Engine::load(args.model, args.engine);
    StreamLog log(*engine);
    if (args.chat) {
      run_chat(*engine, args);
    } else {
      run_prompt(*engine, args, log);
    }
    print_stats(*engine);
    if (args.stats) log.print(!args.chat);
    return 0;
  });
}
