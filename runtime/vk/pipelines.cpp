#include "runtime/vk/pipelines.h"

#include <algorithm>

#include "runtime/vk/context.h"
#include "runtime/vk/embedded_shaders.h"
#include "runtime/vk/spirv_reflect.h"

namespace megrez {

const EmbeddedShader* find_embedded_shader(std::string_view name) {
  for (const EmbeddedShader& shader : embedded_shaders()) {
    if (name == shader.name) return &shader;
  }
  return nullptr;
}

PipelineRegistry::PipelineRegistry(Context& ctx, const std::string& cache_path) : ctx_(ctx) {
  cache_path_ = resolve_pipeline_cache_path(cache_path, ctx.info().props);
  load_cache();
}

PipelineRegistry::~PipelineRegistry() {
  if (cache_dirty_) save_cache();
  for (auto& [key, p] : pipelines_) {
    vkDestroyPipeline(ctx_.device(), p->pipeline, nullptr);
    vkDestroyPipelineLayout(ctx_.device(), p->layout, nullptr);
  }
  for (auto& [key, layout] : set_layouts_) vkDestroyDescriptorSetLayout(ctx_.device(), layout, nullptr);
  vkDestroyPipelineCache(ctx_.device(), cache_, nullptr);
}

bool PipelineRegistry::contains(std::string_view name) const { return find_embedded_shader(name) != nullptr; }

std::vector<std::string> PipelineRegistry::names() const {
  std::vector<std::string> out;
  for (const EmbeddedShader& shader : embedded_shaders()) out.emplace_back(shader.name);
  return out;
}

const Pipeline& PipelineRegistry::get(std::string_view name, const Specialization& spec) {
  std::lock_guard guard(mutex_);
  auto it = pipelines_.find(std::pair{std::string(name), spec});
  if (it != pipelines_.end()) return *it->second;
  const EmbeddedShader* shader = find_embedded_shader(name);
  if (!shader) {
    std::string known;
    for (const EmbeddedShader& s : embedded_shaders()) known += (known.empty() ? "" : ", ") + std::string(s.name);
    throw Error("no shader variant named '" + std::string(name) + "' (known: " + known + ")");
  }
  auto pipeline = build(*shader, spec);
  const Pipeline& result = *pipeline;
  pipelines_.emplace(std::pair{std::string(name), spec}, std::move(pipeline));
  cache_dirty_ = true;
  return result;
}

VkDescriptorSetLayout PipelineRegistry::set_layout(uint32_t bindings, uint32_t uniform_bindings, bool push) {
  auto it = set_layouts_.find({bindings, uniform_bindings, push});
  if (it != set_layouts_.end()) return it->second;
  std::vector<VkDescriptorSetLayoutBinding> entries(bindings);
  for (uint32_t i = 0; i < bindings; ++i) {
    entries[i] = {i, binding_descriptor_type(uniform_bindings, i), 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
  }
  auto info = vk_struct<VkDescriptorSetLayoutCreateInfo>(VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO);
  info.flags = push ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR : 0;
  info.bindingCount = bindings;
  info.pBindings = entries.data();
  VkDescriptorSetLayout layout = VK_NULL_HANDLE;
  vk_check(vkCreateDescriptorSetLayout(ctx_.device(), &info, nullptr, &layout), "vkCreateDescriptorSetLayout");
  set_layouts_[{bindings, uniform_bindings, push}] = layout;
  return layout;
}

// Returns the module's uniform-buffer bindings (a mask).
static uint32_t check_against_reflection(const EmbeddedShader& shader) {
  const ShaderReflection r = reflect_spirv({shader.words, shader.word_count}, shader.name);
  for (uint32_t i = 0; i < r.bindings.size(); ++i) {
    if (r.bindings[i] != i) {
      throw Error("shader " + std::string(shader.name) + ": bindings must be 0..N-1 without gaps");
    }
  }
  if (r.bindings.size() != shader.bindings) {
    throw Error("shader " + std::string(shader.name) + ": variants.cmake declares BINDINGS " +
                std::to_string(shader.bindings) + " but " + shader.source + " uses " +
                std::to_string(r.bindings.size()));
  }
  if (r.push_size != shader.push_size) {
    throw Error("shader " + std::string(shader.name) + ": the C++ push-constant struct is " +
                std::to_string(shader.push_size) + " bytes but " + shader.source + "'s block is " +
                std::to_string(r.push_size));
  }
  return r.uniform_bindings;
}

static void check_workgroup(const DeviceCaps& caps, const std::string& name, const Specialization& spec) {
  uint64_t invocations = 1;
  for (int i = 0; i < 3; ++i) {
    const uint32_t size = spec.workgroup[i];
    if (size == 0 || size > caps.max_workgroup_size[i]) {
      throw Error("pipeline " + name + ": workgroup size[" + std::to_string(i) + "] = " + std::to_string(size) +
                  " outside 1.." + std::to_string(caps.max_workgroup_size[i]));
    }
    invocations *= size;
  }
  if (invocations > caps.max_workgroup_invocations) {
    throw Error("pipeline " + name + ": workgroup of " + std::to_string(invocations) +
                " invocations exceeds maxComputeWorkGroupInvocations " +
                std::to_string(caps.max_workgroup_invocations));
  }
}

std::unique_ptr<Pipeline> PipelineRegistry::build(const EmbeddedShader& shader, const Specialization& spec) {
  const DeviceCaps& caps = ctx_.caps();
  const uint32_t uniform_bindings = check_against_reflection(shader);
  check_workgroup(caps, shader.name, spec);
  if (shader.push_size > caps.max_push_constants) {
    throw Error("shader " + std::string(shader.name) + ": " + std::to_string(shader.push_size) +
                " bytes of push constants exceed maxPushConstantsSize " + std::to_string(caps.max_push_constants));
  }
  auto p = std::make_unique<Pipeline>();
  p->name = shader.name;
  p->spec = spec;
  p->bindings = shader.bindings;
  p->push_size = shader.push_size;
  p->push_descriptors = caps.push_descriptors && shader.bindings <= caps.max_push_descriptors;
  p->uniform_bindings = uniform_bindings;
  p->set_layout = set_layout(shader.bindings, uniform_bindings, p->push_descriptors);

  VkPushConstantRange push{VK_SHADER_STAGE_COMPUTE_BIT, 0, shader.push_size};
  auto layout_info = vk_struct<VkPipelineLayoutCreateInfo>(VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO);
  layout_info.setLayoutCount = 1;
  layout_info.pSetLayouts = &p->set_layout;
  layout_info.pushConstantRangeCount = shader.push_size ? 1 : 0;
  layout_info.pPushConstantRanges = &push;
  vk_check(vkCreatePipelineLayout(ctx_.device(), &layout_info, nullptr, &p->layout), "vkCreatePipelineLayout");

  VkShaderModule module = VK_NULL_HANDLE;
  auto module_info = vk_struct<VkShaderModuleCreateInfo>(VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO);
  module_info.codeSize = shader.word_count * sizeof(uint32_t);
  module_info.pCode = shader.words;
  VkResult result = vkCreateShaderModule(ctx_.device(), &module_info, nullptr, &module);
  if (result != VK_SUCCESS) {
    vkDestroyPipelineLayout(ctx_.device(), p->layout, nullptr);
    throw_vk_error(result, ("vkCreateShaderModule(" + p->name + ")").c_str());
  }

  // Specialization constants: ids 0..2 workgroup size, then 3, 4, ... from spec.constants.
  std::vector<uint32_t> values(spec.workgroup.begin(), spec.workgroup.end());
  values.insert(values.end(), spec.constants.begin(), spec.constants.end());
  std::vector<VkSpecializationMapEntry> entries(values.size());
  for (uint32_t i = 0; i < values.size(); ++i) entries[i] = {i, i * 4u, 4};
  VkSpecializationInfo spec_info{static_cast<uint32_t>(entries.size()), entries.data(),
                                 values.size() * sizeof(uint32_t), values.data()};

  auto info = vk_struct<VkComputePipelineCreateInfo>(VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO);
  info.stage = vk_struct<VkPipelineShaderStageCreateInfo>(VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO);
  info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  info.stage.module = module;
  info.stage.pName = "main";
  info.stage.pSpecializationInfo = &spec_info;
  info.layout = p->layout;
  result = vkCreateComputePipelines(ctx_.device(), cache_, 1, &info, nullptr, &p->pipeline);
  vkDestroyShaderModule(ctx_.device(), module, nullptr);
  if (result != VK_SUCCESS) {
    vkDestroyPipelineLayout(ctx_.device(), p->layout, nullptr);
    throw_vk_error(result, ("vkCreateComputePipelines(" + p->name + ")").c_str());
  }
  return p;
}

}  // namespace megrez
