#pragma once
// megrez-chat's state and its frame loop: the window, the conversations (ChatStore), the
// engine (EngineWorker) and what the user sees. The drawing of each part is in its own file:
// chat_view.cpp (the conversation and the message box), side_panels.cpp (the conversation
// list, the settings, the model, the expert cache and the status bar).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "apps/megrez-chat/chat_settings.h"
#include "apps/megrez-chat/chat_store.h"
#include "apps/megrez-chat/engine_worker.h"
#include "apps/megrez-chat/fonts.h"
#include "apps/megrez-chat/gpu_window.h"

namespace megrez::chat {

struct AppOptions {
  std::string model;              // loaded at start
  EngineOptions engine;           // --ctx, --expert-budget, --stream ...
  WindowOptions window;           // device, profile, validation
  ChatSettings defaults;          // for new conversations (--temp, --system ...)
  std::string database;           // "" : ChatStore::default_path()
  std::string theme;              // "dark", "light", "" : the saved choice
  std::string frame_stats;        // frame-rate figures, written after each reply and at exit (tests, README)
};

struct UiMessage {
  int64_t id = 0;                 // in the database (0: not saved)
  std::string role, content;
  std::string stats;              // JSON as stored
  std::string stats_line;         // shown under a reply
};

class ChatApp {
 public:
  explicit ChatApp(const AppOptions& options);
  ~ChatApp();
  int run();  // the frame loop; returns the exit status

 private:
  // ---- frame loop (chat_app.cpp)
  void frame();
  void handle_shortcuts();
  void poll_worker();
  void apply_theme();
  void write_frame_stats() const;

  // ---- conversations (chat_app.cpp)
  void refresh_list();
  void open_conversation(int64_t id);
  void new_conversation();
  void send(const std::string& text);
  void start_reply();
  void regenerate();
  void resend_edited(size_t index, const std::string& text);
  void stop();
  void save_settings();
  void load_model(const std::string& path);
  void notify(const std::string& text, bool error = false);
  void export_conversation(int64_t id, const std::string& path, bool json);
  bool generating() const { return reply_id_ != 0; }
  bool model_ready() const { return status_.state == ModelState::Ready; }

  // ---- drawing (chat_view.cpp)
  void draw_conversation(float height);
  void draw_message(size_t index, const UiMessage& m);
  void draw_composer();
  // ---- drawing (side_panels.cpp)
  void draw_menu();
  void draw_sidebar();
  void draw_settings();
  void draw_model_panel();
  void draw_expert_panel();
  void draw_status_bar();
  void draw_popups();
  void ask_export(int64_t id, const std::string& title, bool json);

  AppOptions options_;
  GpuWindow window_;
  FontSet fonts_;
  ChatStore store_;
  std::unique_ptr<EngineWorker> worker_;  // after window_: stopped before the window goes

  // engine, as of this frame
  EngineStatus status_;
  ReplyProgress progress_;

  // conversations
  std::vector<ConversationSummary> list_;
  std::string search_;
  int64_t current_ = 0;           // 0: a new conversation not yet saved
  std::string title_;
  ChatSettings settings_;
  std::vector<UiMessage> messages_;

  // the reply being generated
  uint64_t next_reply_id_ = 1;
  uint64_t reply_id_ = 0;         // 0: none
  int64_t reply_conversation_ = 0;
  std::string reply_error_;

  // the message box and edits
  std::string input_;
  bool focus_input_ = true;
  bool focus_search_ = false;
  bool scroll_to_bottom_ = false;
  int editing_ = -1;              // index of the user message being edited
  std::string edit_text_;

  // model panel
  std::string model_path_;
  std::string budget_;
  int stream_mode_ = 0;           // auto, resident, prefetch, ondemand
  int ctx_ = 0;
  std::vector<std::string> recent_models_;

  // popups and panels
  int64_t rename_id_ = 0, delete_id_ = 0, export_id_ = 0;
  std::string rename_text_;
  std::string export_path_;
  bool export_json_ = false;
  bool open_rename_ = false, open_delete_ = false, open_export_ = false;
  bool show_settings_ = true, show_experts_ = true;
  bool dark_ = true;
  bool quit_ = false;

  // a line at the top of the chat: what just happened or went wrong
  std::string notice_;
  bool notice_error_ = false;
  std::chrono::steady_clock::time_point notice_time_;

  // frame pacing and the figures the README quotes
  int extra_frames_ = 2;
  int settle_frames_ = 0;         // frames a focus request made this frame still needs
  uint64_t replies_ = 0;         // finished in this session
  uint64_t stream_frames_ = 0;
  double stream_seconds_ = 0;
  std::chrono::steady_clock::time_point last_frame_;
};

}  // namespace megrez::chat
