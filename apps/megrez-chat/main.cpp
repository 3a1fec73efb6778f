// megrez-chat: a desktop chat with a Megrez2 model on a Vulkan device (README "The chat app").
//
//   megrez-chat                                   the bundled tiny model
//   megrez-chat --model DIR_OR_GGUF --expert-budget 25%
//
// Conversations are kept in $XDG_DATA_HOME/megrez/chats.db (or ~/.local/share). Without a
// display or a device that can both compute and present, it prints one line and exits 1.
#include <cstdio>
#include <string>

#include "apps/megrez-chat/chat_app.h"
#include "apps/tools/engine_flags.h"
#include "loader/error.h"

namespace {

using namespace megrez;
using namespace megrez::chat;

std::string usage() {
  return R"(usage: megrez-chat [options]
  --model PATH          Hugging Face directory or .gguf file (default: the bundled tiny model)
)" + engine_flags_usage("min(model maximum, 4096)") +
         R"(Defaults for new conversations (each conversation keeps its own, in its Settings panel):
  --system TEXT         system prompt (default none)
  --temp T              temperature; 0 = greedy (default 0.7)
  --top-k K             (default 40; 0 = all)    --top-p P   (default 0.9)
  --repeat-penalty R    (default 1.1)            --seed N    (default -1: a new one per reply)
  -n, --max-tokens N    longest reply (default 512)
The app:
  --db PATH             conversation database (default $XDG_DATA_HOME/megrez/chats.db)
  --theme dark|light    (default: the last one chosen, else dark)
  --size WxH            window size (default 1280x800, times the monitor's scale)
  --frame-stats FILE    after each reply and at exit, write the replies so far and the frame
                        rate while they streamed (JSON)
  --help                this text
Keys: Enter sends, Shift+Enter new line, Esc stops a reply, Ctrl+N new chat, Ctrl+F search, Ctrl+Q quit
)";
}

AppOptions parse_args(int argc, char** argv, bool& help) {
  AppOptions a;
  a.model = default_model_path();
  FlagCursor args(argc, argv);
  while (args.next()) {
    const std::string flag = args.flag();
    if (parse_engine_flag(args, a.engine)) continue;
    if (flag == "--model") a.model = args.value();
    else if (flag == "--system") a.defaults.system_prompt = args.value();
    else if (flag == "--temp") a.defaults.temperature = parse_flag_number<float>(flag, args.value());
    else if (flag == "--top-k") a.defaults.top_k = parse_flag_number<int>(flag, args.value());
    else if (flag == "--top-p") a.defaults.top_p = parse_flag_number<float>(flag, args.value());
    else if (flag == "--repeat-penalty") a.defaults.repeat_penalty = parse_flag_number<float>(flag, args.value());
    else if (flag == "--seed") a.defaults.seed = parse_flag_number<int64_t>(flag, args.value());
    else if (flag == "-n" || flag == "--max-tokens") a.defaults.max_tokens = parse_flag_number<int>(flag, args.value());
    else if (flag == "--db") a.database = args.value();
    else if (flag == "--theme") a.theme = args.value();
    else if (flag == "--frame-stats") a.frame_stats = args.value();
    else if (flag == "--size") {
      const std::string v = args.value();
      const size_t x = v.find('x');
      if (x == std::string::npos) throw UsageError("--size expects WxH, got '" + v + "'");
      a.window.width = parse_flag_number<int>(flag, v.substr(0, x));
      a.window.height = parse_flag_number<int>(flag, v.substr(x + 1));
      if (a.window.width < 320 || a.window.height < 240) throw UsageError("--size must be at least 320x240");
    } else if (flag == "--help" || flag == "-h") help = true;
    else throw UsageError("unknown option '" + flag + "' (see --help)");
  }
  if (!a.theme.empty() && a.theme != "dark" && a.theme != "light") throw UsageError("--theme must be dark or light");
  const ChatSettings& d = a.defaults;
  if (!(d.temperature >= 0 && d.temperature <= 5)) throw UsageError("--temp must be 0 to 5");
  if (d.top_k < 0) throw UsageError("--top-k must be 0 or more");
  if (!(d.top_p >= 0 && d.top_p <= 1)) throw UsageError("--top-p must be 0 to 1");
  if (!(d.repeat_penalty >= 1 && d.repeat_penalty <= 3)) throw UsageError("--repeat-penalty must be 1 to 3");
  if (d.seed < -1) throw UsageError("--seed must be -1 (a new one per reply) or more");
  if (d.max_tokens < 1 || d.max_tokens > 32768) throw UsageError("--max-tokens must be 1 to 32768");
  // The device, the profile, validation and the pipeline cache belong to the window's context.
  a.window.context.device = a.engine.device;
  a.window.context.profile = a.engine.profile;
  a.window.context.validation = a.engine.validation;
  a.window.context.pipeline_cache = a.engine.pipeline_cache;
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  return run_tool("megrez-chat", [&] {
    bool help = false;
    AppOptions options = parse_args(argc, argv, help);
    if (help) {
      std::fputs(usage().c_str(), stdout);
      return 0;
    }
    ChatApp app(options);
    const int status = app.run();
    // Under the validation layer every message is a failure (the tests rely on it).
    return status;
  });
}
