// megrez-run: generate text with a Megrez2 model on a Vulkan device, or chat with it.
//
//   megrez-run --prompt "In the beginning" -n 32
//   megrez-run --model model.gguf --chat --temp 0.7 --top-p 0.9
//   megrez-run --prompt-ids 1027,264,2037 -n 8 --dump-logits logits.f32
//
// Text streams to stdout as it is generated; speeds go to stderr at the end. Every user error
// prints one line "megrez-run: ..." and exits non-zero (2 for bad arguments, 1 otherwise).
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "loader/error.h"
#include "runtime/context.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/text_stream.h"

namespace {

using namespace megrez;

struct UsageError : Error {
  using Error::Error;
};

const char* const kUsage = R"(usage: megrez-run [options]
  --model PATH          Hugging Face directory or .gguf file (default: the bundled tiny model)
  --prompt TEXT         prompt text (tokenized with the model's tokenizer); with --chat the first turn
  --prompt-ids 1,2,3    prompt as token ids
  -n N                  tokens to generate (default 64; in --chat, per reply: 512)
  --temp T              temperature; 0 = greedy (default 0; Megrez2 recommends 0.7)
  --top-k K             keep the K most likely tokens (default 0 = off)
  --top-p P             nucleus sampling (default 1 = off; Megrez2 recommends 0.9)
  --seed S              sampler seed (default 0)
  --repeat-penalty R    penalty for tokens of the last 64 (default 1 = off)
  --ctx N               context length in tokens (default min(model maximum, 4096))
  --kv f16|f32          KV cache type (default f16)
  --chunk N             prefill tokens per GPU pass (default from the device)
  --device N|NAME       Vulkan device by index or name substring (see --list-devices)
  --profile NAME|FILE   emulate a weaker device (minimum, adreno-7xx, mali-g7xx, or a .json)
  --validation          enable the Vulkan validation layer
  --chat                interactive chat (reads user turns from stdin; the KV cache is reused)
  --dump-logits FILE    write float32 logits: one row per evaluated position (prompt, then each
                        generated token as it is fed back: row P-1+t produced generated token t)
  --list-devices        list Vulkan devices and exit
  --help                this text
)";

struct Args {
  std::string model = std::string(MEGREZ_SOURCE_DIR) + "/models/megrez2-tiny";
  std::optional<std::string> prompt;
  std::optional<std::vector<int32_t>> prompt_ids;
  std::optional<uint32_t> n;
  SamplerOptions sampler;
  EngineOptions engine;
  bool chat = false;
  std::string dump_logits;
  bool list_devices = false;
  bool help = false;
};

// ---- Argument parsing ------------------------------------------------------------------------

template <class T>
T parse_number(const std::string& flag, const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) throw UsageError(flag + " expects a number, got '" + text + "'");
  return value;
}

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    ids.push_back(parse_number<int32_t>("--prompt-ids", text.substr(start, comma - start)));
    start = comma + 1;
  }
  return ids;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--model") a.model = value();
    else if (flag == "--prompt") a.prompt = value();
    else if (flag == "--prompt-ids") a.prompt_ids = parse_ids(value());
    else if (flag == "-n") a.n = parse_number<uint32_t>(flag, value());
    else if (flag == "--temp") a.sampler.temperature = parse_number<float>(flag, value());
    else if (flag == "--top-k") a.sampler.top_k = parse_number<int32_t>(flag, value());
    else if (flag == "--top-p") a.sampler.top_p = parse_number<float>(flag, value());
    else if (flag == "--seed") a.sampler.seed = parse_number<uint64_t>(flag, value());
    else if (flag == "--repeat-penalty") a.sampler.repeat_penalty = parse_number<float>(flag, value());
    else if (flag == "--ctx") a.engine.ctx_len = parse_number<uint32_t>(flag, value());
    else if (flag == "--chunk") a.engine.chunk = parse_number<uint32_t>(flag, value());
    else if (flag == "--kv") {
      const std::string kv = value();
      if (!kv_cache_type_from_name(kv, a.engine.kv_type)) throw UsageError("--kv expects f16 or f32, got '" + kv + "'");
    } else if (flag == "--device") a.engine.device = value();
    else if (flag == "--profile") a.engine.profile = value();
    else if (flag == "--validation") a.engine.validation = true;
    else if (flag == "--chat") a.chat = true;
    else if (flag == "--dump-logits") a.dump_logits = value();
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

void write_text(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

// ---- Modes ------------------------------------------------------------------------------------

void run_prompt(Engine& engine, const Args& a) {
  const std::vector<int32_t> prompt = a.prompt_ids ? *a.prompt_ids : engine.tokenize(*a.prompt);
  if (prompt.empty()) throw Error("the prompt has no tokens");
  LogitsFile dump(a.dump_logits);
  std::vector<float> logits = engine.prefill(prompt, dump.enabled());
  if (dump.enabled()) {
    dump.write(logits);
    logits.erase(logits.begin(), logits.end() - engine.config().vocab_size);
  }
  if (a.prompt) write_text(*a.prompt);

  GenerateOptions options;
  options.sampler = a.sampler;
  options.max_tokens = a.n.value_or(64);
  options.stop_ids = default_stop_ids(engine);
  if (dump.enabled()) options.on_logits = [&](std::span<const float> row) { dump.write(row); };
  Utf8Stream utf8;
  options.on_token = [&](int32_t id) {
    if (!engine.has_tokenizer()) write_text(std::to_string(id) + " ");
    else if (!engine.tokenizer().is_special(id)) write_text(utf8.push(engine.tokenizer().token_text(id)));
  };
  std::vector<int32_t> history = prompt;
  generate(engine, std::move(logits), options, history);
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
  try {
    const Args args = parse_args(argc, argv);
    if (args.help) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (args.list_devices) {
      for (const std::string& line : megrez::list_devices()) std::printf("%s\n", line.c_str());
      return 0;
    }
    auto engine = megrez::Engine::load(args.model, args.engine);
    if (args.chat) {
      run_chat(*engine, args);
    } else {
      run_prompt(*engine, args);
    }
    print_stats(*engine);
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "megrez-run: %s\n", e.what());
    return 2;
  } catch (const megrez::Error& e) {
    std::fprintf(stderr, "megrez-run: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "megrez-run: internal error: %s\n", e.what());
    return 1;
  }
}
