#pragma once
// The interface's fonts: a Latin font with a CJK font merged into it (Megrez2 writes Chinese
// and English), sized for the monitor's content scale. ImGui 1.86 builds its atlas up front,
// so it starts with the common Chinese characters, and characters met later in the text
// (rarer CJK, other scripts) are added by rebuilding the atlas between frames.
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <imgui.h>

namespace megrez::chat {

class FontSet {
 public:
  // Builds ImGui's atlas at `scale` (1 = 16 px text). Call before the first frame and after
  // rebuild_needed(); the window then uploads it again.
  void build(float scale);
  // Notes the characters of `text` the atlas lacks; true when any are new (rebuild_needed()).
  bool notice(std::string_view text);
  bool rebuild_needed() const { return !pending_.empty(); }
  float scale() const { return scale_; }
  // The font files in use ("" when ImGui's built-in font is), for the About box and tests.
  const std::string& latin_file() const { return latin_file_; }
  const std::string& cjk_file() const { return cjk_file_; }

 private:
  float scale_ = 1;
  std::string latin_file_, cjk_file_;
  std::set<ImWchar> extra_;    // characters added beyond the built-in ranges
  std::set<ImWchar> pending_;  // met in text, not yet in the atlas
  std::set<ImWchar> tried_;    // added once; if the fonts lack them they stay missing
  ImVector<ImWchar> ranges_;   // must outlive the atlas build
};

}  // namespace megrez::chat
