#pragma once
// The window: GLFW, and Dear ImGui drawn with Vulkan on the engine's own instance and device
// (one megrez::Context), so the model and the interface share one device: the device chosen
// is one whose compute queue can also draw and present to the window. Drawing and the
// engine's work go to the same queue; the Context's queue lock keeps them apart.
#include <memory>
#include <string>
#include <vector>

#include "runtime/vk/context.h"

struct GLFWwindow;
struct ImGui_ImplVulkanH_Window;

namespace megrez::chat {

struct WindowOptions {
  int width = 1280, height = 800;  // in screen coordinates (scaled by the monitor's content scale)
  std::string title = "megrez-chat";
  ContextOptions context;          // device, profile, validation; the window's needs are added
};

class GpuWindow {
 public:
  // Opens the window and the Vulkan context; megrez::Error with one line when there is no
  // display or no device that can both compute and present to it.
  explicit GpuWindow(const WindowOptions& options);
  ~GpuWindow();
  GpuWindow(const GpuWindow&) = delete;
  GpuWindow& operator=(const GpuWindow&) = delete;

  GLFWwindow* handle() const { return window_; }
  Context& context() { return *context_; }
  bool should_close() const;
  float content_scale() const;  // the monitor's content scale (1 on a 96-dpi screen)

  // One frame: begin_frame() starts ImGui's frame (after a swapchain rebuild if the window
  // changed size); the caller builds the UI; end_frame() draws it and presents.
  void begin_frame();
  void end_frame(const float clear_rgba[4]);

  // Uploads ImGui's font atlas again after the caller rebuilt it (new glyphs, a new scale).
  void upload_fonts();

 private:
  void release();
  static void on_key(GLFWwindow* window, int key, int scancode, int action, int mods);
  void apply_deferred_releases();
  void create_swapchain(int width, int height);
  void init_imgui_renderer();

  GLFWwindow* window_ = nullptr;
  std::unique_ptr<Context> context_;
  VkSurfaceKHR surface_ = VK_NULL_HANDLE;
  VkDescriptorPool pool_ = VK_NULL_HANDLE;
  std::unique_ptr<ImGui_ImplVulkanH_Window> wd_;
  uint32_t min_images_ = 2;
  bool rebuild_ = false;
  bool imgui_glfw_ = false, imgui_vulkan_ = false;
  // ImGui 1.86 samples key state once per frame, so a key pressed and released between two
  // frames (a quick tap, xdotool) would never be seen: releases after a press the UI has not
  // seen yet wait for the end of the next frame.
  struct KeyEvent {
    int key, scancode, mods;
  };
  std::vector<int> pressed_since_frame_;
  std::vector<KeyEvent> deferred_releases_;
};

}  // namespace megrez::chat
