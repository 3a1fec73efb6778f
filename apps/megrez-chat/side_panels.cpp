// Around the conversation: the menu, the conversation list, the settings, the model, the
// expert cache, the status bar and the popups.
#define GLFW_INCLUDE_NONE
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "apps/megrez-chat/chat_app.h"
#include "apps/megrez-chat/export.h"

namespace megrez::chat {

namespace {

const ImVec4 kErrorColor(0.95f, 0.35f, 0.3f, 1);

std::string megabytes(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", bytes / (1024.0 * 1024.0));
  return buf;
}

std::string home_folder() {
  const char* home = std::getenv("HOME");
  return home && *home ? home : ".";
}

}  // namespace

// Opens the export popup for conversation `id`, proposing ~/<title>.md or .json.
void ChatApp::ask_export(int64_t id, const std::string& title, bool json) {
  export_id_ = id;
  export_json_ = json;
  export_path_ = home_folder() + "/" + file_stem(title) + (json ? ".json" : ".md");
  open_export_ = true;
}

void ChatApp::draw_menu() {
  if (!ImGui::BeginMenuBar()) return;
  if (ImGui::BeginMenu("Chat")) {
    if (ImGui::MenuItem("New chat", "Ctrl+N")) new_conversation();
    ImGui::BeginDisabled(current_ <= 0);
    if (ImGui::MenuItem("Export as Markdown...")) ask_export(current_, title_, false);
    if (ImGui::MenuItem("Export as JSON...")) ask_export(current_, title_, true);
    ImGui::EndDisabled();
    ImGui::Separator();
    if (ImGui::MenuItem("Quit", "Ctrl+Q")) quit_ = true;
    ImGui::EndMenu();
  }
  if (ImGui::BeginMenu("View")) {
    if (ImGui::MenuItem("Dark theme", nullptr, dark_)) {
      dark_ = !dark_;
      apply_theme();
      store_.set_setting("theme", dark_ ? "dark" : "light");
    }
    if (ImGui::MenuItem("Settings", nullptr, show_settings_)) {
      show_settings_ = !show_settings_;
      store_.set_setting("show_settings", show_settings_ ? "1" : "0");
    }
    if (ImGui::MenuItem("Expert cache", nullptr, show_experts_)) {
      show_experts_ = !show_experts_;
      store_.set_setting("show_experts", show_experts_ ? "1" : "0");
    }
    ImGui::EndMenu();
  }
  ImGui::EndMenuBar();
}

void ChatApp::draw_sidebar() {
  if (ImGui::Button("New chat", ImVec2(-1, 0))) new_conversation();
  if (focus_search_) {
    ImGui::SetKeyboardFocusHere();
    focus_search_ = false;
    settle_frames_ = 3;
  }
  ImGui::SetNextItemWidth(-1);
  if (ImGui::InputTextWithHint("##search", "Search (Ctrl+F)", &search_)) {
    fonts_.notice(search_);
    refresh_list();
  }
  if (!store_.persistent()) ImGui::TextColored(kErrorColor, "Conversations are not being saved");
  ImGui::Separator();
  ImGui::BeginChild("list");
  if (list_.empty()) ImGui::TextDisabled(search_.empty() ? "No conversations yet" : "Nothing found");
  for (const ConversationSummary& c : list_) {
    ImGui::PushID(static_cast<int>(c.id));
    if (ImGui::Selectable(c.title.c_str(), c.id == current_)) open_conversation(c.id);
    if (ImGui::BeginPopupContextItem("actions")) {
      if (ImGui::MenuItem("Rename")) {
        rename_id_ = c.id;
        rename_text_ = c.title;
        open_rename_ = true;
      }
      if (ImGui::MenuItem("Export as Markdown...")) ask_export(c.id, c.title, false);
      if (ImGui::MenuItem("Export as JSON...")) ask_export(c.id, c.title, true);
      if (ImGui::MenuItem("Delete")) {
        delete_id_ = c.id;
        open_delete_ = true;
      }
      ImGui::EndPopup();
    }
    ImGui::PopID();
  }
  ImGui::EndChild();
}

void ChatApp::draw_settings() {
  if (!ImGui::CollapsingHeader("Settings", ImGuiTreeNodeFlags_DefaultOpen)) return;
  bool changed = false;
  ImGui::TextUnformatted("System prompt");
  ImGui::InputTextMultiline("##system", &settings_.system_prompt, ImVec2(-1, ImGui::GetTextLineHeight() * 3));
  changed |= ImGui::IsItemDeactivatedAfterEdit();
  ImGui::PushItemWidth(-110 * fonts_.scale());
  ImGui::SliderFloat("temperature", &settings_.temperature, 0.0f, 2.0f, "%.2f");
  changed |= ImGui::IsItemDeactivatedAfterEdit();
  ImGui::SliderInt("top-k", &settings_.top_k, 0, 200);
  changed |= ImGui::IsItemDeactivatedAfterEdit();
  ImGui::SliderFloat("top-p", &settings_.top_p, 0.0f, 1.0f, "%.2f");
  changed |= ImGui::IsItemDeactivatedAfterEdit();
  ImGui::SliderFloat("repeat penalty", &settings_.repeat_penalty, 1.0f, 2.0f, "%.2f");
  changed |= ImGui::IsItemDeactivatedAfterEdit();
  ImGui::InputScalar("seed", ImGuiDataType_S64, &settings_.seed);
  changed |= ImGui::IsItemDeactivatedAfterEdit();
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("-1: a new seed for every reply");
  ImGui::InputInt("max tokens", &settings_.max_tokens);
  changed |= ImGui::IsItemDeactivatedAfterEdit();
  ImGui::PopItemWidth();
  if (changed) {
    settings_ = ChatSettings::from_json(settings_.to_json(), options_.defaults);  // clamps
    save_settings();
    fonts_.notice(settings_.system_prompt);
  }
  ImGui::TextDisabled(settings_.temperature <= 0 ? "temperature 0: greedy" : "sampling");
}

void ChatApp::draw_model_panel() {
  if (!ImGui::CollapsingHeader("Model", ImGuiTreeNodeFlags_DefaultOpen)) return;
  const bool loading = status_.state == ModelState::Loading;
  ImGui::SetNextItemWidth(-1);
  ImGui::InputTextWithHint("##model", "model folder or .gguf file", &model_path_);
  if (!recent_models_.empty()) {
    ImGui::SetNextItemWidth(-1);
    if (ImGui::BeginCombo("##recent", "Recent models")) {
      for (const std::string& path : recent_models_) {
        if (ImGui::Selectable(path.c_str())) model_path_ = path;
      }
      ImGui::EndCombo();
    }
  }
  ImGui::PushItemWidth(-110 * fonts_.scale());
  ImGui::InputTextWithHint("expert budget", "all, 25%, 512MB", &budget_);
  const char* modes[] = {"auto", "resident", "prefetch", "on demand"};
  ImGui::Combo("streaming", &stream_mode_, modes, 4);
  ImGui::InputInt("context", &ctx_);
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("tokens; 0: the model's maximum, at most 4096");
  ImGui::PopItemWidth();
  ImGui::BeginDisabled(loading || model_path_.empty());
  if (ImGui::Button(status_.state == ModelState::Ready && model_path_ == status_.model_path ? "Reload" : "Load")) {
    if (generating()) stop();
    load_model(model_path_);
  }
  ImGui::EndDisabled();
  if (loading) {
    ImGui::ProgressBar(status_.load_fraction, ImVec2(-1, 0), status_.load_stage.c_str());
  } else if (status_.state == ModelState::Failed) {
    ImGui::PushStyleColor(ImGuiCol_Text, kErrorColor);
    ImGui::PushTextWrapPos(0);
    ImGui::TextUnformatted(status_.error.c_str());
    ImGui::PopTextWrapPos();
    ImGui::PopStyleColor();
  } else if (status_.state == ModelState::Ready) {
    ImGui::PushTextWrapPos(0);
    ImGui::TextDisabled("%s, loaded in %.2f s", status_.model_path.c_str(), status_.load_seconds);
    ImGui::PopTextWrapPos();
  }
}

void ChatApp::draw_expert_panel() {
  if (!ImGui::CollapsingHeader("Expert cache", ImGuiTreeNodeFlags_DefaultOpen)) return;
  if (status_.state != ModelState::Ready) {
    ImGui::TextDisabled("no model loaded");
    return;
  }
  const float s = fonts_.scale();
  ImGui::PushTextWrapPos(0);
  ImGui::TextDisabled("%s", status_.streaming.c_str());
  ImGui::PopTextWrapPos();
  const ExpertMap& map = status_.experts;
  if (map.usage_known) {
    const StreamStats& t = status_.last_token;
    const StreamStats& all = status_.stats.stream;
    ImGui::Text("last token: %.0f%% hits, %llu misses", t.hit_rate() * 100, static_cast<unsigned long long>(t.misses));
    if (t.stall_measured) ImGui::Text("  %s uploaded, stall %.2f ms", megabytes(double(t.bytes_uploaded)).c_str(), t.stall_ms);
    else ImGui::Text("  %s uploaded, stall not measured", megabytes(double(t.bytes_uploaded)).c_str());
    const double tokens = double(std::max<uint64_t>(1, status_.stats.decode_tokens));
    ImGui::Text("all: %.1f%% hits, %s uploaded", all.hit_rate() * 100, megabytes(double(all.bytes_uploaded)).c_str());
    ImGui::Text("  per token: %.1f misses, %.1f ms stall", double(all.misses) / tokens, all.stall_ms / tokens);
    ImGui::Text("slots: %u of %u hold an expert", t.occupied, t.slots);
  } else {
    ImGui::PushTextWrapPos(0);
    ImGui::TextDisabled("Resident: every expert stays in device memory, so nothing is streamed. Set an expert "
                        "budget below 100%% (e.g. 25%%) and reload to see the cache at work.");
    ImGui::PopTextWrapPos();
  }

  // The grid: one row of cells per pool (wrapping), one cell per expert.
  const float cell = 9 * s, gap = 2 * s;
  ImDrawList* draw = ImGui::GetWindowDrawList();
  const ImU32 used_color = IM_COL32(80, 220, 120, 255), resident_color = IM_COL32(70, 110, 190, 255),
              absent_color = dark_ ? IM_COL32(60, 60, 66, 255) : IM_COL32(200, 200, 205, 255);
  for (size_t p = 0; p < map.resident.size(); ++p) {
    ImGui::Text("pool %zu", p);
    const size_t n = map.resident[p].size();
    const int per_row = std::max(1, int((ImGui::GetContentRegionAvail().x + gap) / (cell + gap)));
    const int rows = int((n + size_t(per_row) - 1) / size_t(per_row));
    const ImVec2 origin = ImGui::GetCursorScreenPos();
    for (size_t e = 0; e < n; ++e) {
      const int r = int(e) / per_row, c = int(e) % per_row;
      const ImVec2 a(origin.x + float(c) * (cell + gap), origin.y + float(r) * (cell + gap));
      const ImVec2 b(a.x + cell, a.y + cell);
      const bool used = map.usage_known && p < map.used.size() && map.used[p][e] > 0;
      const ImU32 color = used ? used_color : map.resident[p][e] ? resident_color : absent_color;
      draw->AddRectFilled(a, b, color, 2 * s);
      if (ImGui::IsMouseHoveringRect(a, b)) {
        ImGui::SetTooltip("pool %zu, expert %zu: %s%s", p, e, map.resident[p][e] ? "in device memory" : "not loaded",
                          used ? (", chosen by " + std::to_string(map.used[p][e]) + " layer(s) for the last token").c_str() : "");
      }
    }
    ImGui::Dummy(ImVec2(float(per_row) * (cell + gap), float(rows) * (cell + gap)));
  }
  ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(used_color), "\u25cf");
  ImGui::SameLine();
  ImGui::TextDisabled("used for the last token");
  ImGui::SameLine();
  ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(resident_color), "\u25cf");
  ImGui::SameLine();
  ImGui::TextDisabled("in memory");
}

void ChatApp::draw_status_bar() {
  ImGui::Separator();
  std::string line;
  char buf[160];
  if (status_.state == ModelState::Ready) {
    std::snprintf(buf, sizeof buf, "context %u / %u", status_.context_used, status_.context_length);
    line += buf;
  }
  if (generating()) {
    std::snprintf(buf, sizeof buf, " | generating: %u tokens", progress_.tokens);
    line += buf;
  } else {
    for (auto it = messages_.rbegin(); it != messages_.rend(); ++it) {
      if (!it->stats_line.empty()) {
        line += " | " + it->stats_line;
        break;
      }
    }
  }
  if (!status_.device.empty()) line += " | " + status_.device + ", " + megabytes(double(status_.device_bytes)) + " in use";
  ImGui::TextUnformatted(line.c_str());
}

void ChatApp::draw_popups() {
  if (open_rename_) ImGui::OpenPopup("Rename conversation");
  if (open_delete_) ImGui::OpenPopup("Delete conversation?");
  if (open_export_) ImGui::OpenPopup("Export conversation");
  open_rename_ = open_delete_ = open_export_ = false;

  if (ImGui::BeginPopupModal("Rename conversation", nullptr, ImGuiWindowFlags_AlwaysAutoResize)) {
    if (ImGui::IsWindowAppearing()) ImGui::SetKeyboardFocusHere();
    ImGui::SetNextItemWidth(360 * fonts_.scale());
    const bool enter = ImGui::InputText("##title", &rename_text_, ImGuiInputTextFlags_EnterReturnsTrue);
    if ((ImGui::Button("Rename") || enter) && !rename_text_.empty()) {
      store_.rename(rename_id_, rename_text_);
      if (rename_id_ == current_) title_ = rename_text_;
      refresh_list();
      ImGui::CloseCurrentPopup();
    }
    ImGui::SameLine();
    if (ImGui::Button("Cancel") || ImGui::IsKeyPressed(GLFW_KEY_ESCAPE, false)) ImGui::CloseCurrentPopup();
    ImGui::EndPopup();
  }
  if (ImGui::BeginPopupModal("Delete conversation?", nullptr, ImGuiWindowFlags_AlwaysAutoResize)) {
    ImGui::TextUnformatted("The conversation and its messages will be deleted.");
    if (ImGui::Button("Delete")) {
      if (delete_id_ == reply_conversation_ && generating()) {
        stop();
        reply_conversation_ = -2;  // the reply is dropped when it ends
      }
      store_.remove(delete_id_);
      if (delete_id_ == current_) new_conversation();
      refresh_list();
      ImGui::CloseCurrentPopup();
    }
    ImGui::SameLine();
    if (ImGui::Button("Cancel") || ImGui::IsKeyPressed(GLFW_KEY_ESCAPE, false)) ImGui::CloseCurrentPopup();
    ImGui::EndPopup();
  }
  if (ImGui::BeginPopupModal("Export conversation", nullptr, ImGuiWindowFlags_AlwaysAutoResize)) {
    ImGui::TextUnformatted(export_json_ ? "Save as JSON to:" : "Save as Markdown to:");
    ImGui::SetNextItemWidth(480 * fonts_.scale());
    if (ImGui::IsWindowAppearing()) ImGui::SetKeyboardFocusHere();
    const bool enter = ImGui::InputText("##path", &export_path_, ImGuiInputTextFlags_EnterReturnsTrue);
    if (ImGui::Button("Save") || enter) {
      export_conversation(export_id_, export_path_, export_json_);
      ImGui::CloseCurrentPopup();
    }
    ImGui::SameLine();
    if (ImGui::Button("Cancel") || ImGui::IsKeyPressed(GLFW_KEY_ESCAPE, false)) ImGui::CloseCurrentPopup();
    ImGui::EndPopup();
  }
}

}  // namespace megrez::chat
