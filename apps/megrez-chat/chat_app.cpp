#include "apps/megrez-chat/chat_app.h"

#define GLFW_INCLUDE_NONE
#include <GLFW/glfw3.h>
#include <imgui.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "apps/megrez-chat/export.h"

namespace megrez::chat {

namespace {

using Clock = std::chrono::steady_clock;

constexpr double kAnimationFps = 40;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A title from the first message: its first line, at most ~48 bytes, cut between characters.
std::string title_from(const std::string& text) {
  std::string t;
  for (char c : text) {
    if (c == '\n' || c == '\r') {
      if (!t.empty()) break;
      continue;
    }
    t += c;
  }
  if (t.size() > 48) {
    size_t cut = 48;
    while (cut > 0 && (static_cast<unsigned char>(t[cut]) & 0xC0) == 0x80) --cut;
    t = t.substr(0, cut) + "\u2026";
  }
  return t.empty() ? std::string("New chat") : t;
}

// The line under a reply, from its stored figures.
std::string stats_line(const std::string& stats_json) {
  nlohmann::json j = nlohmann::json::parse(stats_json, nullptr, false);
  if (!j.is_object() || j.empty()) return "";
  char buf[256];
  const double tps = j.value("reply_tps", 0.0), ttft = j.value("ttft_ms", 0.0), prompt = j.value("prompt_tps", 0.0);
  std::snprintf(buf, sizeof buf, "%d tokens \u00b7 %.1f tok/s \u00b7 first token %.0f ms \u00b7 prompt %.0f tok/s",
                j.value("tokens", 0), tps, ttft, prompt);
  std::string line = buf;
  const std::string finish = j.value("finish", std::string("stop"));
  if (finish == "cancelled") line += " \u00b7 stopped";
  if (finish == "length") line += " \u00b7 max tokens reached";
  if (finish == "context") line += " \u00b7 context full";
  return line;
}

std::string stats_json(const TextResult& r) {
  nlohmann::json j = {
      {"tokens", r.completion_tokens},
      {"prompt_tokens", r.prompt_tokens},
      {"reply_tps", r.decode_seconds > 0 ? r.completion_tokens / r.decode_seconds : 0.0},
      {"prompt_tps", r.prefill_seconds > 0 ? r.prompt_tokens_fed / r.prefill_seconds : 0.0},
      {"ttft_ms", r.time_to_first_token * 1000.0},
      {"finish", finish_reason_name(r.finish)},
  };
  return j.dump();
}

}  // namespace

// ---- the app --------------------------------------------------------------------------------

ChatApp::ChatApp(const AppOptions& options)
    : options_(options),
      window_(options.window),
      store_(options.database.empty() ? ChatStore::default_path() : options.database) {
  worker_ = std::make_unique<EngineWorker>(window_.context(), [] { glfwPostEmptyEvent(); });
  dark_ = (options.theme.empty() ? store_.setting("theme", "dark") : options.theme) != "light";
  show_settings_ = store_.setting("show_settings", "1") == "1";
  show_experts_ = store_.setting("show_experts", "1") == "1";
  settings_ = options.defaults;
  budget_ = options.engine.expert_budget;
  ctx_ = int(options.engine.ctx_len);
  stream_mode_ = int(options.engine.stream);
  fonts_.build(window_.content_scale());
  window_.upload_fonts();
  apply_theme();
  if (!store_.notice().empty()) notify(store_.notice(), true), store_.clear_notice();
  recent_models_ = store_.recent_models();
  refresh_list();
  load_model(options.model);
}

ChatApp::~ChatApp() {
  worker_.reset();  // joins the engine thread before the window and its context go
  write_frame_stats();
}

int ChatApp::run() {
  last_frame_ = Clock::now();
  while (!quit_ && !window_.should_close()) {
    const bool animating = generating() || status_.state == ModelState::Loading;
    if (animating) {
      // A steady frame rate while text streams in or a model loads; not more, since on a CPU
      // device (lavapipe) every frame is drawn by the cores the engine computes on.
      // The engine wakes the loop at every token: those wake-ups wait for the frame's turn too.
      glfwPollEvents();
      for (double wait; (wait = 1.0 / kAnimationFps - seconds_since(last_frame_)) > 0;) glfwWaitEventsTimeout(wait);
    } else if (extra_frames_ > 0) {
      glfwPollEvents();
      --extra_frames_;
    } else {
      glfwWaitEvents();  // idle: no frames, no CPU, until input or the engine wakes us
      extra_frames_ = 2; // ImGui settles hover and focus within a frame or two of an event
    }
    frame();
    // A keyboard focus request takes effect over the next two frames: draw them now, or the
    // first key typed later would arrive while the box is being focused, and be lost.
    extra_frames_ = std::max(extra_frames_, settle_frames_);
    settle_frames_ = 0;
  }
  // Quitting during a reply keeps what was shown, as Stop would (the engine stops at its next
  // token).
  if (generating()) {
    stop();
    while (!worker_->idle()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    poll_worker();
  }
  // Under the validation layer any message is a failure (the tests rely on the exit status).
  if (const uint32_t n = window_.context().validation_message_count()) {
    std::fprintf(stderr, "megrez-chat: %u Vulkan validation message(s)\n", n);
    return 3;
  }
  return 0;
}

void ChatApp::frame() {
  const auto now = Clock::now();
  const double dt = std::chrono::duration<double>(now - last_frame_).count();
  last_frame_ = now;
  poll_worker();
  if (generating()) {
    ++stream_frames_;
    stream_seconds_ += dt;
  }
  const float scale = window_.content_scale();
  if (fonts_.rebuild_needed() || scale != fonts_.scale()) {
    fonts_.build(scale);
    window_.upload_fonts();
    apply_theme();
  }

  window_.begin_frame();
  handle_shortcuts();
  const ImGuiViewport* view = ImGui::GetMainViewport();
  ImGui::SetNextWindowPos(view->WorkPos);
  ImGui::SetNextWindowSize(view->WorkSize);
  const ImGuiWindowFlags flags = ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove |
                                 ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_MenuBar |
                                 ImGuiWindowFlags_NoBringToFrontOnFocus;
  ImGui::Begin("##main", nullptr, flags);
  draw_menu();
  const float s = fonts_.scale();
  const float status_h = ImGui::GetFrameHeightWithSpacing();
  const float body_h = ImGui::GetContentRegionAvail().y - status_h;
  // Side columns keep their size on a wide window and give way on a narrow one.
  const float width = ImGui::GetContentRegionAvail().x;
  const float sidebar_w = std::min(240 * s, 0.22f * width);
  const float panel_w = std::min(320 * s, 0.3f * width);

  ImGui::BeginChild("sidebar", ImVec2(sidebar_w, body_h), true);
  draw_sidebar();
  ImGui::EndChild();
  ImGui::SameLine();
  const float center_w = ImGui::GetContentRegionAvail().x - (panel_w > 0 ? panel_w + ImGui::GetStyle().ItemSpacing.x : 0);
  ImGui::BeginChild("center", ImVec2(center_w, body_h), false);
  const float composer_h = ImGui::GetTextLineHeight() * 5 + ImGui::GetFrameHeightWithSpacing() * 1.5f;
  draw_conversation(ImGui::GetContentRegionAvail().y - composer_h);
  draw_composer();
  ImGui::EndChild();
  if (panel_w > 0) {
    ImGui::SameLine();
    ImGui::BeginChild("panels", ImVec2(panel_w, body_h), true);
    if (show_settings_) draw_settings();
    draw_model_panel();
    if (show_experts_) draw_expert_panel();
    ImGui::EndChild();
  }
  draw_status_bar();
  draw_popups();
  ImGui::End();

  const float dark_bg[4] = {0.06f, 0.06f, 0.07f, 1}, light_bg[4] = {0.94f, 0.94f, 0.94f, 1};
  window_.end_frame(dark_ ? dark_bg : light_bg);
}

void ChatApp::handle_shortcuts() {
  const ImGuiIO& io = ImGui::GetIO();
  if (io.KeyCtrl && ImGui::IsKeyPressed(GLFW_KEY_Q, false)) quit_ = true;
  if (io.KeyCtrl && ImGui::IsKeyPressed(GLFW_KEY_N, false)) new_conversation();
  if (io.KeyCtrl && ImGui::IsKeyPressed(GLFW_KEY_F, false)) focus_search_ = true;
  if (ImGui::IsKeyPressed(GLFW_KEY_ESCAPE, false) && generating()) stop();
}

void ChatApp::poll_worker() {
  const ModelState before = status_.state;
  status_ = worker_->status();
  progress_ = worker_->progress();
  if (before == ModelState::Loading && status_.state == ModelState::Ready) {
    store_.remember_model(status_.model_path);
    recent_models_ = store_.recent_models();
    std::printf("megrez-chat: loaded %s on %s\n", status_.model_path.c_str(), status_.device.c_str());
    std::fflush(stdout);
    notify("loaded " + status_.model_path + " in " + std::to_string(int(status_.load_seconds * 1000)) + " ms on " +
           status_.device);
    focus_input_ = true;
  }
  if (before == ModelState::Loading && status_.state == ModelState::Failed) notify(status_.error, true);
  if (generating() && progress_.id == reply_id_) fonts_.notice(progress_.text);
  if (!generating() || progress_.id != reply_id_ || !progress_.done) return;

  reply_id_ = 0;
  focus_input_ = true;
  if (!progress_.error.empty()) {
    notify(progress_.error, true);
    return;
  }
  if (progress_.text.empty() && progress_.result.finish == FinishReason::Cancelled) return;  // nothing was shown
  if (progress_.dropped) {
    notify("the conversation outgrew the context (" + std::to_string(status_.context_length) + " tokens): its first " +
           std::to_string(progress_.dropped) + " message(s) were left out of the model's view");
  }
  ++replies_;
  write_frame_stats();
  UiMessage m;
  m.role = "assistant";
  m.content = progress_.text;
  m.stats = stats_json(progress_.result);
  m.stats_line = stats_line(m.stats);
  m.id = store_.append(reply_conversation_, m.role, m.content, m.stats);
  if (!store_.notice().empty()) notify(store_.notice(), true), store_.clear_notice();
  if (reply_conversation_ == current_) messages_.push_back(std::move(m));
  else refresh_list();
}

void ChatApp::apply_theme() {
  ImGuiStyle& style = ImGui::GetStyle();
  style = ImGuiStyle();
  if (dark_) ImGui::StyleColorsDark();
  else ImGui::StyleColorsLight();
  style.WindowRounding = 4;
  style.ChildRounding = 4;
  style.FrameRounding = 3;
  style.ScaleAllSizes(fonts_.scale());
  ImGui::GetIO().ConfigInputTextCursorBlink = false;  // a blinking caret would keep an idle window drawing
}

void ChatApp::write_frame_stats() const {
  if (options_.frame_stats.empty()) return;
  const nlohmann::json j = {{"replies", replies_},
                            {"streaming_frames", stream_frames_},
                            {"streaming_seconds", stream_seconds_},
                            {"streaming_fps", stream_seconds_ > 0 ? double(stream_frames_) / stream_seconds_ : 0.0}};
  const std::string error = write_file_atomically(options_.frame_stats, j.dump() + "\n");
  if (!error.empty()) std::fprintf(stderr, "megrez-chat: %s\n", error.c_str());
}

// ---- conversations --------------------------------------------------------------------------

void ChatApp::notify(const std::string& text, bool error) {
  if (error) std::fprintf(stderr, "megrez-chat: %s\n", text.c_str());  // for a terminal, and the tests
  notice_ = text;
  notice_error_ = error;
  notice_time_ = Clock::now();
  fonts_.notice(text);
}

void ChatApp::refresh_list() {
  list_ = store_.list(search_);
  for (const ConversationSummary& c : list_) fonts_.notice(c.title);
}

void ChatApp::open_conversation(int64_t id) {
  if (generating()) stop();  // the reply still lands in its own conversation when it ends
  Conversation c = store_.load(id);
  if (c.id == 0) {
    notify("that conversation is gone", true);
    refresh_list();
    return;
  }
  current_ = c.id;
  title_ = c.title;
  settings_ = ChatSettings::from_json(c.settings, options_.defaults);
  messages_.clear();
  for (StoredMessage& s : c.messages) {
    fonts_.notice(s.content);
    messages_.push_back({s.id, s.role, std::move(s.content), s.stats, stats_line(s.stats)});
  }
  editing_ = -1;
  focus_input_ = true;
  scroll_to_bottom_ = true;
}

void ChatApp::new_conversation() {
  if (generating()) stop();
  current_ = 0;
  title_.clear();
  settings_ = options_.defaults;
  messages_.clear();
  editing_ = -1;
  focus_input_ = true;
}

void ChatApp::send(const std::string& text) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos || generating() || !model_ready()) return;
  if (current_ == 0) {
    title_ = title_from(text);
    current_ = store_.create(title_, settings_.to_json());
    if (current_ == 0 && store_.persistent()) notify(store_.notice(), true);
    if (current_ == 0) current_ = -1;  // not saved: a conversation of this session only
    refresh_list();
  }
  UiMessage m{0, "user", text, "", ""};
  m.id = store_.append(current_, m.role, m.content);
  fonts_.notice(text);
  messages_.push_back(std::move(m));
  start_reply();
}

void ChatApp::start_reply() {
  ReplyRequest request;
  request.id = next_reply_id_++;
  if (!settings_.system_prompt.empty()) request.messages.push_back({"system", settings_.system_prompt});
  for (const UiMessage& m : messages_) request.messages.push_back({m.role, m.content});
  request.sampler.temperature = settings_.temperature;
  request.sampler.top_k = settings_.top_k;
  request.sampler.top_p = settings_.top_p;
  request.sampler.repeat_penalty = settings_.repeat_penalty;
  request.sampler.seed = settings_.seed >= 0 ? uint64_t(settings_.seed) : std::random_device{}();
  request.max_tokens = uint32_t(settings_.max_tokens);
  reply_id_ = request.id;
  reply_conversation_ = current_;
  reply_error_.clear();
  worker_->reply(std::move(request));
}

void ChatApp::regenerate() {
  if (generating() || messages_.empty() || messages_.back().role != "assistant") return;
  messages_.pop_back();
  store_.truncate(current_, messages_.size());
  start_reply();
}

void ChatApp::resend_edited(size_t index, const std::string& text) {
  if (generating() || index >= messages_.size()) return;
  messages_.resize(index);
  store_.truncate(current_, index);
  editing_ = -1;
  send(text);
}

void ChatApp::stop() { worker_->stop(); }

void ChatApp::save_settings() {
  if (current_ > 0) store_.save_settings(current_, settings_.to_json());
}

void ChatApp::export_conversation(int64_t id, const std::string& path, bool json) {
  Conversation c = store_.load(id);
  if (c.id == 0) {
    notify("nothing to export: the conversation is not saved", true);
    return;
  }
  const std::string system = ChatSettings::from_json(c.settings, options_.defaults).system_prompt;
  const std::string error =
      write_file_atomically(path, json ? conversation_json(c, system) : conversation_markdown(c, system));
  if (error.empty()) notify("exported to " + path);
  else notify(error, true);
}

void ChatApp::load_model(const std::string& path) {
  if (path.empty()) return;
  model_path_ = path;
  EngineOptions engine = options_.engine;
  engine.expert_budget = budget_;
  engine.stream = StreamMode(stream_mode_);
  engine.ctx_len = uint32_t(std::max(ctx_, 0));
  engine.layer_breaks = true;  // the window draws on the engine's queue: let frames in between layers
  worker_->load(path, engine);
  status_ = worker_->status();
  // The worker may have finished already (a bad path fails at once): poll_worker reports the
  // outcome by its change from Loading, so that is the state this side starts from.
  status_.state = ModelState::Loading;
}

}  // namespace megrez::chat
