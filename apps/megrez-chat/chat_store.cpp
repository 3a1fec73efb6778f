#include "apps/megrez-chat/chat_store.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <system_error>

namespace megrez::chat {

namespace {

namespace fs = std::filesystem;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// One prepared statement; steps report failure as false and leave the message to the store.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  Statement& bind(int i, int64_t v) {
    if (stmt_) sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& bind(int i, double v) {
    if (stmt_) sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  Statement& bind(int i, std::string_view v) {
    if (stmt_) sqlite3_bind_text(stmt_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // True while a row is ready; false at the end or on an error (done() tells which).
  bool row() {
    if (!stmt_) return false;
    rc_ = sqlite3_step(stmt_);
    return rc_ == SQLITE_ROW;
  }
  bool run() {
    while (row()) {
    }
    return done();
  }
  bool done() const { return stmt_ && rc_ == SQLITE_DONE; }
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, size_t(sqlite3_column_bytes(stmt_, col))) : std::string();
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

// Version 1. Message text is indexed by trigrams, so a search finds any part of a word and
// Chinese text (which has no spaces between words) as well as English.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE conversations(
  id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  settings TEXT NOT NULL DEFAULT '{}',
  created REAL NOT NULL,
  updated REAL NOT NULL);
CREATE TABLE messages(
  id INTEGER PRIMARY KEY,
  conversation INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  role TEXT NOT NULL,
  content TEXT NOT NULL,
  stats TEXT NOT NULL DEFAULT '{}',
  created REAL NOT NULL);
CREATE INDEX messages_by_conversation ON messages(conversation, id);
CREATE VIRTUAL TABLE message_text USING fts5(content, content='messages', content_rowid='id', tokenize='trigram');
CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
  INSERT INTO message_text(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
  INSERT INTO message_text(message_text, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TABLE recent_models(path TEXT PRIMARY KEY, used REAL NOT NULL);
CREATE TABLE app_settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
PRAGMA user_version = 1;
)sql";

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// `text` as one FTS5 phrase: in double quotes, its own quotes doubled.
std::string fts_phrase(std::string_view text) {
  std::string q = "\"";
  for (char c : text) {
    q += c;
    if (c == '"') q += '"';
  }
  return q + "\"";
}

// `text` as a LIKE pattern matching it anywhere ('\' escapes % and _).
std::string like_pattern(std::string_view text) {
  std::string p = "%";
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\') p += '\\';
    p += c;
  }
  return p + "%";
}

std::string timestamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

}  // namespace

std::string ChatStore::default_path() {
  const char* xdg = std::getenv("XDG_DATA_HOME");
  const char* home = std::getenv("HOME");
  fs::path base = xdg && *xdg ? fs::path(xdg) : fs::path(home && *home ? home : ".") / ".local" / "share";
  return (base / "megrez" / "chats.db").string();
}

ChatStore::ChatStore(const std::string& path) : path_(path) {
  if (path == ":memory:") {
    fall_back_to_memory("");
    return;
  }
  std::error_code ec;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) {
    fall_back_to_memory("cannot create " + parent.string() + " (" + ec.message() + ")");
    return;
  }
  if (open_file(path) != Opened::Damaged) return;
  // Unreadable: move it aside (with its journal files) and start again, unless the folder
  // does not let us (then nothing is saved, and the file stays as it was).
  const std::string aside = path + ".corrupt-" + timestamp();
  fs::rename(path, aside, ec);
  if (ec) {
    fall_back_to_memory("the conversation database " + path + " is damaged and cannot be moved aside (" +
                        ec.message() + ")");
    return;
  }
  for (const char* suffix : {"-wal", "-shm"}) {
    std::error_code ignored;
    if (fs::exists(path + suffix, ignored)) fs::rename(path + suffix, aside + suffix, ignored);
  }
  const std::string moved = "the conversation database was damaged; it was moved to " + aside + " and a new one started";
  if (open_file(path) == Opened::Yes) note(moved);
}

ChatStore::~ChatStore() { sqlite3_close(db_); }

bool ChatStore::exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) == SQLITE_OK) return true;
  note(std::string("database: ") + (error ? error : sqlite3_errmsg(db_)));
  sqlite3_free(error);
  return false;
}

// Yes: the file holds a usable database. No: the store fell back to memory (a folder we cannot
// write). Damaged: nothing is open; the caller moves the file aside.
ChatStore::Opened ChatStore::open_file(const std::string& path) {
  sqlite3_close(db_);
  db_ = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    fall_back_to_memory("cannot open " + path + " (" + why + ")");
    return Opened::No;
  }
  sqlite3_busy_timeout(db_, 2000);
  // A damaged file fails here: not a database, or a failed integrity check.
  bool damaged = false;
  {
    Statement check(db_, "PRAGMA quick_check");
    if (!check.ok()) {
      damaged = sqlite3_errcode(db_) == SQLITE_NOTADB || sqlite3_errcode(db_) == SQLITE_CORRUPT;
      if (!damaged) {
        fall_back_to_memory("cannot read " + path + " (" + sqlite3_errmsg(db_) + ")");
        return Opened::No;
      }
    } else if (check.row()) {
      damaged = check.text(0) != "ok";
    } else {
      const int rc = sqlite3_errcode(db_);
      damaged = rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT;
      if (!damaged) {
        fall_back_to_memory("cannot read " + path + " (" + sqlite3_errmsg(db_) + ")");
        return Opened::No;
      }
    }
  }
  if (damaged) {
    sqlite3_close(db_);
    db_ = nullptr;
    return Opened::Damaged;
  }
  if (!exec("PRAGMA journal_mode = WAL") || !exec("PRAGMA foreign_keys = ON") || !migrate()) {
    const std::string why = notice_;
    fall_back_to_memory("cannot use " + path + " (" + why + ")");
    return Opened::No;
  }
  persistent_ = writable_;
  return Opened::Yes;
}

// Schema migrations, one step per version, each in its own transaction.
bool ChatStore::migrate() {
  Statement version(db_, "PRAGMA user_version");
  if (!version.row()) {
    note(std::string("database: ") + sqlite3_errmsg(db_));
    return false;
  }
  const int64_t found = version.integer(0);
  if (found > kSchemaVersion) {
    // A newer app wrote it: read what we can, write nothing.
    writable_ = false;
    note("the conversation database " + path_ + " is from a newer megrez-chat (schema " + std::to_string(found) +
         "); it is shown but nothing new is saved");
    return true;
  }
  if (found < 1) {
    if (!exec("BEGIN")) return false;
    if (!exec(kSchemaV1)) {
      exec("ROLLBACK");
      return false;
    }
    if (!exec("COMMIT")) return false;
  }
  return true;
}

void ChatStore::fall_back_to_memory(const std::string& why) {
  sqlite3_close(db_);
  db_ = nullptr;
  persistent_ = false;
  writable_ = true;
  if (sqlite3_open(":memory:", &db_) != SQLITE_OK) {
    note("cannot open an in-memory database");
    return;
  }
  exec("PRAGMA foreign_keys = ON");
  migrate();
  if (!why.empty()) note(why + "; conversations will not be saved");
}

std::vector<ConversationSummary> ChatStore::list(std::string_view search) {
  std::vector<ConversationSummary> out;
  if (!db_) return out;
  const bool any = search.find_first_not_of(" \t\r\n") != std::string_view::npos;
  const bool trigram = utf8_length(search) >= 3;  // shorter text has no trigram to look up
  const char* sql = !any ? "SELECT id, title, updated FROM conversations ORDER BY updated DESC, id DESC"
                    : trigram
                        ? "SELECT id, title, updated FROM conversations WHERE title LIKE ?2 ESCAPE '\\' OR id IN "
                          "(SELECT conversation FROM messages WHERE id IN "
                          "(SELECT rowid FROM message_text WHERE message_text MATCH ?1)) "
                          "ORDER BY updated DESC, id DESC"
                        : "SELECT id, title, updated FROM conversations WHERE title LIKE ?2 ESCAPE '\\' OR id IN "
                          "(SELECT conversation FROM messages WHERE content LIKE ?2 ESCAPE '\\') "
                          "ORDER BY updated DESC, id DESC";
  Statement q(db_, sql);
  if (any) {
    if (trigram) q.bind(1, fts_phrase(search));
    q.bind(2, like_pattern(search));
  }
  while (q.row()) out.push_back({q.integer(0), q.text(1), q.real(2)});
  if (!q.done()) note(std::string("database: search failed: ") + sqlite3_errmsg(db_));
  return out;
}

int64_t ChatStore::create(const std::string& title, const std::string& settings) {
  if (!writable_) return 0;
  const double t = now_seconds();
  Statement q(db_, "INSERT INTO conversations(title, settings, created, updated) VALUES (?, ?, ?, ?)");
  q.bind(1, title).bind(2, settings).bind(3, t).bind(4, t);
  if (!q.run()) {
    note(std::string("cannot save the conversation: ") + sqlite3_errmsg(db_));
    return 0;
  }
  return sqlite3_last_insert_rowid(db_);
}

Conversation ChatStore::load(int64_t id) {
  Conversation c;
  Statement head(db_, "SELECT id, title, settings FROM conversations WHERE id = ?");
  head.bind(1, id);
  if (!head.row()) return c;
  c.id = head.integer(0);
  c.title = head.text(1);
  c.settings = head.text(2);
  Statement rows(db_, "SELECT id, role, content, stats FROM messages WHERE conversation = ? ORDER BY id");
  rows.bind(1, id);
  while (rows.row()) c.messages.push_back({rows.integer(0), rows.text(1), rows.text(2), rows.text(3)});
  return c;
}

void ChatStore::rename(int64_t id, const std::string& title) {
  if (!writable_) return;
  Statement q(db_, "UPDATE conversations SET title = ? WHERE id = ?");
  if (!q.bind(1, title).bind(2, id).run()) note(std::string("cannot rename: ") + sqlite3_errmsg(db_));
}

void ChatStore::save_settings(int64_t id, const std::string& settings) {
  if (!writable_) return;
  Statement q(db_, "UPDATE conversations SET settings = ? WHERE id = ?");
  if (!q.bind(1, settings).bind(2, id).run()) note(std::string("cannot save settings: ") + sqlite3_errmsg(db_));
}

void ChatStore::remove(int64_t id) {
  if (!writable_) return;
  Statement q(db_, "DELETE FROM conversations WHERE id = ?");
  if (!q.bind(1, id).run()) note(std::string("cannot delete: ") + sqlite3_errmsg(db_));
}

int64_t ChatStore::append(int64_t conversation, const std::string& role, const std::string& content,
                          const std::string& stats) {
  if (!writable_ || conversation <= 0) return 0;
  const double t = now_seconds();
  Statement q(db_, "INSERT INTO messages(conversation, role, content, stats, created) VALUES (?, ?, ?, ?, ?)");
  q.bind(1, conversation).bind(2, role).bind(3, content).bind(4, stats).bind(5, t);
  if (!q.run()) {
    note(std::string("cannot save the message: ") + sqlite3_errmsg(db_));
    return 0;
  }
  const int64_t id = sqlite3_last_insert_rowid(db_);
  Statement touch(db_, "UPDATE conversations SET updated = ? WHERE id = ?");
  touch.bind(1, t).bind(2, conversation).run();
  return id;
}

void ChatStore::truncate(int64_t conversation, size_t keep) {
  if (!writable_) return;
  Statement q(db_,
              "DELETE FROM messages WHERE conversation = ?1 AND id NOT IN "
              "(SELECT id FROM messages WHERE conversation = ?1 ORDER BY id LIMIT ?2)");
  if (!q.bind(1, conversation).bind(2, int64_t(keep)).run()) {
    note(std::string("cannot change the conversation: ") + sqlite3_errmsg(db_));
  }
}

void ChatStore::remember_model(const std::string& path) {
  if (!writable_) return;
  Statement q(db_, "INSERT INTO recent_models(path, used) VALUES (?, ?) ON CONFLICT(path) DO UPDATE SET used = excluded.used");
  q.bind(1, path).bind(2, now_seconds()).run();
}

std::vector<std::string> ChatStore::recent_models(size_t limit) {
  std::vector<std::string> out;
  Statement q(db_, "SELECT path FROM recent_models ORDER BY used DESC LIMIT ?");
  q.bind(1, int64_t(limit));
  while (q.row()) out.push_back(q.text(0));
  return out;
}

std::string ChatStore::setting(const std::string& key, const std::string& fallback) {
  Statement q(db_, "SELECT value FROM app_settings WHERE key = ?");
  q.bind(1, key);
  return q.row() ? q.text(0) : fallback;
}

void ChatStore::set_setting(const std::string& key, const std::string& value) {
  if (!writable_) return;
  Statement q(db_, "INSERT INTO app_settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  if (!q.bind(1, key).bind(2, value).run()) note(std::string("cannot save a setting: ") + sqlite3_errmsg(db_));
}

}  // namespace megrez::chat
