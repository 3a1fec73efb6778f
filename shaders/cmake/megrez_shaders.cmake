# The declarative shader table API used by shaders/variants.cmake.
#
#   megrez_variant(NAME <name> SOURCE <file.comp> BINDINGS <n> [PUSH <Struct>] [ABI <header>]
#                  [DEFINES <D> <D=V> ...])
#     One compiled SPIR-V module, looked up at run time by NAME. BINDINGS is the number of
#     storage buffers (set 0, bindings 0..n-1). PUSH names the push-constant struct (in
#     namespace megrez::abi) declared in ABI (default: abi/<source stem>.h); the runtime
#     checks both against the module's own reflection when it builds the pipeline.
#
#   megrez_self_test(<name>)
#     megrez-info runs `megrez::self_tests::<name>(Context&)` (defined by the kernel's own
#     runtime/*.cpp) after the copy check; see apps/tools/self_test.h.
#
# Rows are collected in global properties; shaders/CMakeLists.txt turns them into build rules.

function(megrez_variant)
  cmake_parse_arguments(V "" "NAME;SOURCE;BINDINGS;PUSH;ABI" "DEFINES" ${ARGN})
  if(V_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "megrez_variant(${V_NAME}): unexpected arguments '${V_UNPARSED_ARGUMENTS}'")
  endif()
  if(NOT V_NAME MATCHES "^[a-z][a-z0-9_]*$")
    message(FATAL_ERROR "megrez_variant: NAME '${V_NAME}' must match [a-z][a-z0-9_]*")
  endif()
  if(NOT V_SOURCE OR NOT EXISTS ${MEGREZ_SHADER_DIR}/${V_SOURCE})
    message(FATAL_ERROR "megrez_variant(${V_NAME}): SOURCE '${V_SOURCE}' not found in ${MEGREZ_SHADER_DIR}")
  endif()
  if(NOT V_BINDINGS MATCHES "^[0-9]+$")
    message(FATAL_ERROR "megrez_variant(${V_NAME}): BINDINGS must be a number, got '${V_BINDINGS}'")
  endif()
  get_property(existing GLOBAL PROPERTY MEGREZ_VARIANTS)
  if(V_NAME IN_LIST existing)
    message(FATAL_ERROR "megrez_variant: NAME '${V_NAME}' declared twice")
  endif()
  if(V_PUSH)
    if(NOT V_ABI)
      get_filename_component(stem ${V_SOURCE} NAME_WE)
      set(V_ABI abi/${stem}.h)
    endif()
    if(NOT EXISTS ${MEGREZ_SHADER_DIR}/${V_ABI})
      message(FATAL_ERROR "megrez_variant(${V_NAME}): push-constant header ${V_ABI} not found")
    endif()
  endif()
  set_property(GLOBAL APPEND PROPERTY MEGREZ_VARIANTS ${V_NAME})
  set_property(GLOBAL PROPERTY MEGREZ_VARIANT_${V_NAME}_SOURCE "${V_SOURCE}")
  set_property(GLOBAL PROPERTY MEGREZ_VARIANT_${V_NAME}_BINDINGS "${V_BINDINGS}")
  set_property(GLOBAL PROPERTY MEGREZ_VARIANT_${V_NAME}_PUSH "${V_PUSH}")
  set_property(GLOBAL PROPERTY MEGREZ_VARIANT_${V_NAME}_ABI "${V_ABI}")
  set_property(GLOBAL PROPERTY MEGREZ_VARIANT_${V_NAME}_DEFINES "${V_DEFINES}")
endfunction()

function(megrez_self_test name)
  if(NOT name MATCHES "^[a-z][a-z0-9_]*$")
    message(FATAL_ERROR "megrez_self_test: '${name}' must match [a-z][a-z0-9_]*")
  endif()
  set_property(GLOBAL APPEND PROPERTY MEGREZ_SELF_TESTS ${name})
endfunction()
