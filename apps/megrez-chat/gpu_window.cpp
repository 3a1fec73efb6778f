#include "apps/megrez-chat/gpu_window.h"

#define GLFW_INCLUDE_NONE
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_impl_glfw.h>
#include <imgui_impl_vulkan.h>

#include <string>

#include "loader/error.h"

namespace megrez::chat {

namespace {

std::string glfw_error() {
  const char* text = nullptr;
  const int code = glfwGetError(&text);
  return code == GLFW_NO_ERROR ? std::string("unknown error") : std::string(text ? text : "GLFW error");
}

void check_vk(VkResult result) {
  if (result < 0) throw Error("Vulkan error " + std::to_string(int(result)) + " while drawing the window");
}

// ImGui's backend loads every Vulkan function through this (IMGUI_IMPL_VULKAN_NO_PROTOTYPES).
PFN_vkVoidFunction load_vulkan_function(const char* name, void* instance) {
  return vkGetInstanceProcAddr(static_cast<VkInstance>(instance), name);
}

}  // namespace

GpuWindow::GpuWindow(const WindowOptions& options) {
  if (!glfwInit()) throw Error("cannot open a window: " + glfw_error() + " (is there a display? DISPLAY=" +
                               std::string(std::getenv("DISPLAY") ? std::getenv("DISPLAY") : "") + ")");
  try {
    if (!glfwVulkanSupported()) throw Error("cannot open a window: GLFW finds no Vulkan loader with surface support");
    glfwWindowHint(GLFW_CLIENT_API, GLFW_NO_API);
    glfwWindowHint(GLFW_SCALE_TO_MONITOR, GLFW_TRUE);
    window_ = glfwCreateWindow(options.width, options.height, options.title.c_str(), nullptr, nullptr);
    if (!window_) throw Error("cannot open a window: " + glfw_error());

    ContextOptions context = options.context;
    uint32_t count = 0;
    const char** names = glfwGetRequiredInstanceExtensions(&count);
    if (!names) throw Error("cannot open a window: " + glfw_error());
    for (uint32_t i = 0; i < count; ++i) context.instance_extensions.emplace_back(names[i]);
    context.can_present = [](VkInstance instance, VkPhysicalDevice device, uint32_t family) {
      return glfwGetPhysicalDevicePresentationSupport(instance, device, family) == GLFW_TRUE;
    };
    context_ = std::make_unique<Context>(context);

    if (glfwCreateWindowSurface(context_->instance(), window_, nullptr, &surface_) != VK_SUCCESS) {
      throw Error("cannot draw in the window: " + glfw_error());
    }
    if (!ImGui_ImplVulkan_LoadFunctions(load_vulkan_function, context_->instance())) {
      throw Error("cannot load the Vulkan functions the interface draws with");
    }
    VkBool32 supported = VK_FALSE;
    const QueueInfo& queue = context_->queue(QueueRole::Compute);
    check_vk(vkGetPhysicalDeviceSurfaceSupportKHR(context_->physical_device(), queue.family, surface_, &supported));
    if (!supported) throw Error("the device " + context_->info().name() + " cannot present to this window");

    const VkDescriptorPoolSize sizes[] = {{VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, 16}};
    VkDescriptorPoolCreateInfo pool_info{};
    pool_info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
    pool_info.flags = VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT;
    pool_info.maxSets = 16;
    pool_info.poolSizeCount = 1;
    pool_info.pPoolSizes = sizes;
    check_vk(vkCreateDescriptorPool(context_->device(), &pool_info, nullptr, &pool_));

    wd_ = std::make_unique<ImGui_ImplVulkanH_Window>();
    wd_->Surface = surface_;
    const VkFormat formats[] = {VK_FORMAT_B8G8R8A8_UNORM, VK_FORMAT_R8G8B8A8_UNORM};
    wd_->SurfaceFormat = ImGui_ImplVulkanH_SelectSurfaceFormat(context_->physical_device(), surface_, formats, 2,
                                                               VK_COLORSPACE_SRGB_NONLINEAR_KHR);
    // The frame rate is paced by the app (it sleeps when idle), not by the display.
    const VkPresentModeKHR modes[] = {VK_PRESENT_MODE_MAILBOX_KHR, VK_PRESENT_MODE_IMMEDIATE_KHR, VK_PRESENT_MODE_FIFO_KHR};
    wd_->PresentMode = ImGui_ImplVulkanH_SelectPresentMode(context_->physical_device(), surface_, modes, 3);
    min_images_ = uint32_t(ImGui_ImplVulkanH_GetMinImageCountFromPresentMode(wd_->PresentMode));
    int w = 0, h = 0;
    glfwGetFramebufferSize(window_, &w, &h);
    create_swapchain(w, h);

    IMGUI_CHECKVERSION();
    ImGui::CreateContext();
    ImGui::GetIO().IniFilename = nullptr;  // the app keeps its own settings
    if (!ImGui_ImplGlfw_InitForVulkan(window_, true)) throw Error("cannot attach the interface to the window");
    imgui_glfw_ = true;
    glfwSetWindowUserPointer(window_, this);
    glfwSetKeyCallback(window_, &GpuWindow::on_key);  // in front of ImGui's, which it calls
    init_imgui_renderer();
  } catch (...) {
    release();
    throw;
  }
}

GpuWindow::~GpuWindow() { release(); }

void GpuWindow::release() {
  if (context_) context_->wait_idle();
  if (imgui_vulkan_) ImGui_ImplVulkan_Shutdown();
  imgui_vulkan_ = false;
  if (imgui_glfw_) ImGui_ImplGlfw_Shutdown();
  imgui_glfw_ = false;
  if (ImGui::GetCurrentContext()) ImGui::DestroyContext();
  if (context_) {
    if (wd_) ImGui_ImplVulkanH_DestroyWindow(context_->instance(), context_->device(), wd_.get(), nullptr);
    else if (surface_) vkDestroySurfaceKHR(context_->instance(), surface_, nullptr);
    if (pool_) vkDestroyDescriptorPool(context_->device(), pool_, nullptr);
  }
  wd_.reset();
  surface_ = VK_NULL_HANDLE;
  pool_ = VK_NULL_HANDLE;
  context_.reset();
  if (window_) glfwDestroyWindow(window_);
  window_ = nullptr;
  glfwTerminate();
}

void GpuWindow::create_swapchain(int width, int height) {
  // The helper waits for the device to be idle, which needs every queue locked.
  context_->with_queues_locked([&] {
    ImGui_ImplVulkanH_CreateOrResizeWindow(context_->instance(), context_->physical_device(), context_->device(),
                                           wd_.get(), context_->queue(QueueRole::Compute).family, nullptr, width,
                                           height, min_images_);
  });
  wd_->FrameIndex = 0;
  wd_->SemaphoreIndex = 0;
}

void GpuWindow::init_imgui_renderer() {
  ImGui_ImplVulkan_InitInfo info{};
  info.Instance = context_->instance();
  info.PhysicalDevice = context_->physical_device();
  info.Device = context_->device();
  info.QueueFamily = context_->queue(QueueRole::Compute).family;
  info.Queue = context_->queue(QueueRole::Compute).queue;
  info.DescriptorPool = pool_;
  info.MinImageCount = min_images_;
  info.ImageCount = wd_->ImageCount;
  info.MSAASamples = VK_SAMPLE_COUNT_1_BIT;
  info.CheckVkResultFn = [](VkResult r) {
    if (r < 0) throw Error("Vulkan error " + std::to_string(int(r)) + " in the interface renderer");
  };
  if (!ImGui_ImplVulkan_Init(&info, wd_->RenderPass)) throw Error("cannot set up the interface renderer");
  imgui_vulkan_ = true;
}

void GpuWindow::on_key(GLFWwindow* window, int key, int scancode, int action, int mods) {
  auto* self = static_cast<GpuWindow*>(glfwGetWindowUserPointer(window));
  // Once a press waits for a frame, every release after it waits too (in order): a Ctrl
  // released in the same batch as the Q of Ctrl+Q must still be down when the frame looks.
  if (self && action == GLFW_RELEASE && !(self->pressed_since_frame_.empty() && self->deferred_releases_.empty())) {
    self->deferred_releases_.push_back({key, scancode, mods});
    return;
  }
  if (self && action == GLFW_PRESS) self->pressed_since_frame_.push_back(key);
  ImGui_ImplGlfw_KeyCallback(window, key, scancode, action, mods);
}

void GpuWindow::apply_deferred_releases() {
  pressed_since_frame_.clear();
  std::vector<KeyEvent> releases;
  releases.swap(deferred_releases_);
  for (const KeyEvent& e : releases) ImGui_ImplGlfw_KeyCallback(window_, e.key, e.scancode, GLFW_RELEASE, e.mods);
}

bool GpuWindow::should_close() const { return glfwWindowShouldClose(window_); }

float GpuWindow::content_scale() const {
  float x = 1, y = 1;
  glfwGetWindowContentScale(window_, &x, &y);
  return x > 0 ? x : 1.0f;
}

void GpuWindow::upload_fonts() {
  // A new atlas needs new device objects: restart the renderer (rare: new glyphs or scale).
  context_->wait_idle();
  if (imgui_vulkan_) {
    ImGui_ImplVulkan_Shutdown();
    imgui_vulkan_ = false;
    check_vk(vkResetDescriptorPool(context_->device(), pool_, 0));
  }
  init_imgui_renderer();

  VkCommandPool pool = VK_NULL_HANDLE;
  VkCommandPoolCreateInfo pool_info{};
  pool_info.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
  pool_info.flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT;
  pool_info.queueFamilyIndex = context_->queue(QueueRole::Compute).family;
  check_vk(vkCreateCommandPool(context_->device(), &pool_info, nullptr, &pool));
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  VkFence fence = VK_NULL_HANDLE;
  try {
    VkCommandBufferAllocateInfo alloc{};
    alloc.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
    alloc.commandPool = pool;
    alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    alloc.commandBufferCount = 1;
    check_vk(vkAllocateCommandBuffers(context_->device(), &alloc, &cmd));
    VkCommandBufferBeginInfo begin{};
    begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
    begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    check_vk(vkBeginCommandBuffer(cmd, &begin));
    ImGui_ImplVulkan_CreateFontsTexture(cmd);
    check_vk(vkEndCommandBuffer(cmd));
    VkFenceCreateInfo fence_info{};
    fence_info.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
    check_vk(vkCreateFence(context_->device(), &fence_info, nullptr, &fence));
    VkSubmitInfo submit{};
    submit.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
    submit.commandBufferCount = 1;
    submit.pCommandBuffers = &cmd;
    context_->submit(QueueRole::Compute, submit, fence);
    check_vk(vkWaitForFences(context_->device(), 1, &fence, VK_TRUE, UINT64_MAX));
  } catch (...) {
    context_->wait_idle();
    if (fence) vkDestroyFence(context_->device(), fence, nullptr);
    vkDestroyCommandPool(context_->device(), pool, nullptr);
    throw;
  }
  vkDestroyFence(context_->device(), fence, nullptr);
  vkDestroyCommandPool(context_->device(), pool, nullptr);
  ImGui_ImplVulkan_DestroyFontUploadObjects();
}

void GpuWindow::begin_frame() {
  int w = 0, h = 0;
  glfwGetFramebufferSize(window_, &w, &h);
  if (w > 0 && h > 0 && (rebuild_ || w != wd_->Width || h != wd_->Height)) {
    ImGui_ImplVulkan_SetMinImageCount(min_images_);
    create_swapchain(w, h);
    rebuild_ = false;
  }
  ImGui_ImplVulkan_NewFrame();
  ImGui_ImplGlfw_NewFrame();
  ImGui::NewFrame();
}

void GpuWindow::end_frame(const float clear_rgba[4]) {
  ImGui::Render();
  apply_deferred_releases();  // this frame saw those keys down
  ImDrawData* draw = ImGui::GetDrawData();
  if (draw->DisplaySize.x <= 0 || draw->DisplaySize.y <= 0 || wd_->Width <= 0) return;  // minimised
  const VkDevice device = context_->device();
  VkSemaphore acquired = wd_->FrameSemaphores[wd_->SemaphoreIndex].ImageAcquiredSemaphore;
  VkSemaphore rendered = wd_->FrameSemaphores[wd_->SemaphoreIndex].RenderCompleteSemaphore;
  VkResult r = vkAcquireNextImageKHR(device, wd_->Swapchain, UINT64_MAX, acquired, VK_NULL_HANDLE, &wd_->FrameIndex);
  if (r == VK_ERROR_OUT_OF_DATE_KHR || r == VK_SUBOPTIMAL_KHR) {
    // A suboptimal acquire still signals the semaphore; rebuilding idles the device first.
    rebuild_ = true;
    if (r == VK_ERROR_OUT_OF_DATE_KHR) return;
  }
  check_vk(r);
  ImGui_ImplVulkanH_Frame* fd = &wd_->Frames[wd_->FrameIndex];
  check_vk(vkWaitForFences(device, 1, &fd->Fence, VK_TRUE, UINT64_MAX));
  check_vk(vkResetFences(device, 1, &fd->Fence));
  check_vk(vkResetCommandPool(device, fd->CommandPool, 0));
  VkCommandBufferBeginInfo begin{};
  begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check_vk(vkBeginCommandBuffer(fd->CommandBuffer, &begin));
  VkClearValue clear{};
  for (int i = 0; i < 4; ++i) clear.color.float32[i] = clear_rgba[i];
  VkRenderPassBeginInfo pass{};
  pass.sType = VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO;
  pass.renderPass = wd_->RenderPass;
  pass.framebuffer = fd->Framebuffer;
  pass.renderArea.extent = {uint32_t(wd_->Width), uint32_t(wd_->Height)};
  pass.clearValueCount = 1;
  pass.pClearValues = &clear;
  vkCmdBeginRenderPass(fd->CommandBuffer, &pass, VK_SUBPASS_CONTENTS_INLINE);
  ImGui_ImplVulkan_RenderDrawData(draw, fd->CommandBuffer);
  vkCmdEndRenderPass(fd->CommandBuffer);
  check_vk(vkEndCommandBuffer(fd->CommandBuffer));

  const VkPipelineStageFlags wait_stage = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT;
  VkSubmitInfo submit{};
  submit.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  submit.waitSemaphoreCount = 1;
  submit.pWaitSemaphores = &acquired;
  submit.pWaitDstStageMask = &wait_stage;
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &fd->CommandBuffer;
  submit.signalSemaphoreCount = 1;
  submit.pSignalSemaphores = &rendered;
  context_->submit(QueueRole::Compute, submit, fd->Fence);

  VkPresentInfoKHR present{};
  present.sType = VK_STRUCTURE_TYPE_PRESENT_INFO_KHR;
  present.waitSemaphoreCount = 1;
  present.pWaitSemaphores = &rendered;
  present.swapchainCount = 1;
  present.pSwapchains = &wd_->Swapchain;
  present.pImageIndices = &wd_->FrameIndex;
  r = context_->present(present);
  if (r == VK_ERROR_OUT_OF_DATE_KHR || r == VK_SUBOPTIMAL_KHR) {
    rebuild_ = true;
  } else {
    check_vk(r);
  }
  wd_->SemaphoreIndex = (wd_->SemaphoreIndex + 1) % wd_->ImageCount;
}

}  // namespace megrez::chat
