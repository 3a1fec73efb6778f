#pragma once
// Conversations kept across restarts: one SQLite database (WAL) with the conversations, their
// messages (full-text searchable), their settings and the recently used models. Every message
// is written as it completes, so a crash loses at most the reply being generated.
//
// The database is the user's file and is not trusted: a file SQLite cannot read is moved
// aside (never deleted) and a fresh one started; a database from a newer version of the app is
// left untouched; a folder that cannot be written leaves the app chatting without saving. Each
// case leaves one line in notice(); no call throws for them afterwards either (a failed write
// becomes the notice too).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;

namespace megrez::chat {

struct StoredMessage {
  int64_t id = 0;
  std::string role;     // "user" or "assistant" (the system prompt is a setting)
  std::string content;
  std::string stats;    // JSON: tokens/s, time to first token, finish reason (assistant)
};

struct ConversationSummary {
  int64_t id = 0;
  std::string title;
  double updated = 0;   // seconds since the epoch
};

struct Conversation {
  int64_t id = 0;
  std::string title;
  std::string settings;  // JSON (ChatSettings)
  std::vector<StoredMessage> messages;
};

class ChatStore {
 public:
  static constexpr int kSchemaVersion = 1;

  // Opens (or creates) the database at `path`; ":memory:" for one that is not kept.
  explicit ChatStore(const std::string& path);
  ~ChatStore();
  ChatStore(const ChatStore&) = delete;
  ChatStore& operator=(const ChatStore&) = delete;

  // The default place: $XDG_DATA_HOME (or ~/.local/share)/megrez/chats.db.
  static std::string default_path();

  bool persistent() const { return persistent_; }  // false: conversations are not saved
  const std::string& path() const { return path_; }
  // What went wrong, one line for the user ("" when nothing did); the latest problem wins.
  const std::string& notice() const { return notice_; }
  void clear_notice() { notice_.clear(); }

  // Newest first; `search` (any text) matches titles and message contents.
  std::vector<ConversationSummary> list(std::string_view search = {});
  int64_t create(const std::string& title, const std::string& settings);
  Conversation load(int64_t id);
  void rename(int64_t id, const std::string& title);
  void save_settings(int64_t id, const std::string& settings);
  void remove(int64_t id);
  // Adds a message at the end; returns its id (0 when it could not be written).
  int64_t append(int64_t conversation, const std::string& role, const std::string& content,
                 const std::string& stats = "{}");
  // Deletes the messages from the `keep`-th on (an edited message and what followed it).
  void truncate(int64_t conversation, size_t keep);

  // The app's own settings (theme, panels, the last conversation).
  std::string setting(const std::string& key, const std::string& fallback = {});
  void set_setting(const std::string& key, const std::string& value);

  void remember_model(const std::string& path);
  std::vector<std::string> recent_models(size_t limit = 8);

 private:
  enum class Opened { Yes, No, Damaged };
  Opened open_file(const std::string& path);
  bool migrate();
  void fall_back_to_memory(const std::string& why);
  void note(const std::string& text) { notice_ = text; }
  bool exec(const char* sql);

  sqlite3* db_ = nullptr;
  std::string path_;
  bool persistent_ = false;
  bool writable_ = true;
  std::string notice_;
};

}  // namespace megrez::chat
