// The conversation and the message box.
#include "apps/megrez-chat/chat_app.h"

#define GLFW_INCLUDE_NONE
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_stdlib.h>

namespace megrez::chat {

namespace {

const ImVec4 kErrorColor(0.95f, 0.35f, 0.3f, 1);

void wrapped(const std::string& text) {
  ImGui::PushTextWrapPos(0);
  ImGui::TextUnformatted(text.data(), text.data() + text.size());
  ImGui::PopTextWrapPos();
}

}  // namespace

void ChatApp::draw_conversation(float height) {
  if (!notice_.empty()) {
    const bool fresh = std::chrono::steady_clock::now() - notice_time_ < std::chrono::seconds(8);
    if (notice_error_ || fresh) {
      if (notice_error_) ImGui::PushStyleColor(ImGuiCol_Text, kErrorColor);
      ImGui::PushTextWrapPos(ImGui::GetContentRegionAvail().x - 30 * fonts_.scale());
      ImGui::TextUnformatted(notice_.c_str());
      ImGui::PopTextWrapPos();
      if (notice_error_) ImGui::PopStyleColor();
      ImGui::SameLine();
      if (ImGui::SmallButton("x##notice")) notice_.clear();
      height -= ImGui::GetItemRectSize().y + ImGui::GetStyle().ItemSpacing.y;
    }
  }
  ImGui::BeginChild("messages", ImVec2(0, std::max(height, 50.0f)), true);
  const bool at_bottom = ImGui::GetScrollY() >= ImGui::GetScrollMaxY() - 4;
  if (status_.state == ModelState::Loading) {
    ImGui::TextDisabled("Loading %s: %s", status_.model_path.c_str(), status_.load_stage.c_str());
    ImGui::ProgressBar(status_.load_fraction, ImVec2(-1, 0));
  } else if (status_.state != ModelState::Ready) {
    ImGui::TextDisabled("No model is loaded: choose one in the Model panel.");
  }
  if (messages_.empty() && !generating() && model_ready()) {
    ImGui::TextDisabled("Ask something. Enter sends, Shift+Enter starts a new line, Esc stops a reply.");
  }
  for (size_t i = 0; i < messages_.size(); ++i) draw_message(i, messages_[i]);
  if (generating() && reply_conversation_ == current_) {
    ImGui::TextColored(ImVec4(0.45f, 0.75f, 1, 1), "Megrez");
    wrapped(progress_.text + "\u258c");
    ImGui::TextDisabled("%u tokens \u00b7 Esc stops", progress_.tokens);
  }
  if (scroll_to_bottom_ || (generating() && at_bottom)) ImGui::SetScrollHereY(1.0f);
  scroll_to_bottom_ = false;
  ImGui::EndChild();
}

void ChatApp::draw_message(size_t index, const UiMessage& m) {
  ImGui::PushID(int(index));
  const bool user = m.role == "user";
  ImGui::TextColored(user ? ImVec4(0.95f, 0.75f, 0.35f, 1) : ImVec4(0.45f, 0.75f, 1, 1), user ? "You" : "Megrez");
  if (editing_ == int(index)) {
    ImGui::InputTextMultiline("##edit", &edit_text_, ImVec2(-1, ImGui::GetTextLineHeight() * 4));
    if (ImGui::Button("Resend") && !generating()) resend_edited(index, edit_text_);
    ImGui::SameLine();
    if (ImGui::Button("Cancel")) editing_ = -1;
  } else {
    wrapped(m.content);
    if (!m.stats_line.empty()) ImGui::TextDisabled("%s", m.stats_line.c_str());
    if (ImGui::SmallButton("Copy")) {
      ImGui::SetClipboardText(m.content.c_str());
      notify("copied");
    }
    if (!generating()) {
      if (user) {
        ImGui::SameLine();
        if (ImGui::SmallButton("Edit")) {
          editing_ = int(index);
          edit_text_ = m.content;
        }
      } else if (index + 1 == messages_.size()) {
        ImGui::SameLine();
        if (ImGui::SmallButton("Regenerate")) regenerate();
      }
    }
  }
  ImGui::Spacing();
  ImGui::PopID();
}

void ChatApp::draw_composer() {
  ImGuiIO& io = ImGui::GetIO();
  const bool can_send = model_ready() && !generating();
  const float button_w = 90 * fonts_.scale();
  if (focus_input_ && editing_ < 0 && !ImGui::IsPopupOpen("", ImGuiPopupFlags_AnyPopup)) {
    ImGui::SetKeyboardFocusHere();
    focus_input_ = false;
    settle_frames_ = 3;
  }
  // Enter sends and Shift+Enter starts a line: ImGui's CtrlEnterForNewLine with Ctrl standing
  // in for Shift for the one key press. Esc stops a reply and must not undo the typing, which
  // is what ImGui's text box does on Esc.
  const bool esc = ImGui::IsKeyPressed(GLFW_KEY_ESCAPE, false);
  const std::string before_esc = esc ? input_ : std::string();
  const bool shift_enter = io.KeyShift && (ImGui::IsKeyPressed(GLFW_KEY_ENTER) || ImGui::IsKeyPressed(GLFW_KEY_KP_ENTER));
  const ImGuiKeyModFlags mods = io.KeyMods;
  if (shift_enter) {
    io.KeyCtrl = true;
    io.KeyMods |= ImGuiKeyModFlags_Ctrl;  // ImGui checks the two agree
  }
  const ImGuiInputTextFlags flags = ImGuiInputTextFlags_EnterReturnsTrue | ImGuiInputTextFlags_CtrlEnterForNewLine;
  const float box_h = ImGui::GetTextLineHeight() * 5;
  const bool entered = ImGui::InputTextMultiline("##message", &input_,
                                                 ImVec2(ImGui::GetContentRegionAvail().x - button_w, box_h), flags);
  if (shift_enter) {
    io.KeyCtrl = false;
    io.KeyMods = mods;
  }
  if (esc) {
    input_ = before_esc;
    focus_input_ = true;
  }
  fonts_.notice(input_);
  if (entered) {
    if (can_send) {
      send(input_);
      input_.clear();
      scroll_to_bottom_ = true;
    }
    focus_input_ = true;
  }
  ImGui::SameLine();
  if (generating()) {
    if (ImGui::Button("Stop", ImVec2(button_w - ImGui::GetStyle().ItemSpacing.x, box_h))) stop();
  } else {
    ImGui::BeginDisabled(!can_send);
    if (ImGui::Button("Send", ImVec2(button_w - ImGui::GetStyle().ItemSpacing.x, box_h))) {
      send(input_);
      input_.clear();
      scroll_to_bottom_ = true;
      focus_input_ = true;
    }
    ImGui::EndDisabled();
  }
  ImGui::TextDisabled("Enter sends \u00b7 Shift+Enter new line \u00b7 Esc stops \u00b7 Ctrl+N new chat \u00b7 Ctrl+F search \u00b7 Ctrl+Q quit");
}

}  // namespace megrez::chat
