# Which suite runs how. Every GPU entry gets MEGREZ_VALIDATION=1 (validation layer plus
# synchronisation validation; any message fails the run).
if(TARGET test-loader)
  add_test(NAME loader COMMAND test-loader)
endif()

if(TARGET test-chat)
  add_test(NAME chat-store COMMAND test-chat)
endif()
# megrez-chat in a real window on Xvfb, driven by xdotool (tests/chat/run.sh); screenshots are
# kept in build/test-artifacts/chat.
if(TARGET megrez-chat)
  add_test(NAME chat-gui COMMAND bash ${PROJECT_SOURCE_DIR}/tests/chat/run.sh $<TARGET_FILE_DIR:megrez-chat>
                                      ${PROJECT_SOURCE_DIR}/models/megrez2-tiny ${PROJECT_BINARY_DIR}/test-artifacts/chat)
  set_tests_properties(chat-gui PROPERTIES TIMEOUT 900 LABELS "gpu;default")
endif()

# GPU suites share the validated test context (tests/common/gpu_fixture.cpp).
# The matrix runs each suite on lavapipe under the device caps mobile GPUs impose:
#   default     subgroup 8, real lavapipe limits
#   subgroup4   LP_NATIVE_VECTOR_WIDTH=128 -> subgroup size 4
#   subgroup16  LP_NATIVE_VECTOR_WIDTH=512 -> subgroup size 16
#   minimum     MEGREZ_PROFILE=minimum: 16 KiB shared memory, no fp16 / subgroup arithmetic,
#               128 invocations per workgroup, descriptor pools instead of push descriptors
set(MEGREZ_GPU_TEST_ENV MEGREZ_VALIDATION=1)
set(MEGREZ_GPU_MATRIX
    "default|"
    "subgroup4|LP_NATIVE_VECTOR_WIDTH=128"
    "subgroup16|LP_NATIVE_VECTOR_WIDTH=512"
    "minimum|MEGREZ_PROFILE=minimum")
foreach(suite runtime kernels)
  if(NOT TARGET test-${suite})
    continue()
  endif()
  target_sources(test-${suite} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/common/gpu_fixture.cpp)
  foreach(entry ${MEGREZ_GPU_MATRIX})
    string(REPLACE "|" ";" parts "${entry}")
    list(GET parts 0 variant)
    list(LENGTH parts n)
    set(env ${MEGREZ_GPU_TEST_ENV})
    if(n GREATER 1)
      list(GET parts 1 extra)
      if(extra)
        list(APPEND env ${extra})
      endif()
    endif()
    if(variant STREQUAL "default")
      set(test_name ${suite})
    else()
      set(test_name ${suite}-${variant})
    endif()
    add_test(NAME ${test_name} COMMAND test-${suite})
    set_tests_properties(${test_name} PROPERTIES ENVIRONMENT "${env}" LABELS "gpu;${variant}")
  endforeach()
endforeach()

# spirv-val passes on every embedded module (the build checks each one too; this test keeps
# the promise visible and re-checks the files the library actually embedded).
add_test(NAME spirv-val
         COMMAND ${CMAKE_COMMAND} -DSPIRV_VAL=${SPIRV_VAL} -DSPIRV_DIR=${MEGREZ_SPIRV_DIR}
                 -P ${PROJECT_SOURCE_DIR}/shaders/cmake/validate_spirv.cmake)

# The engine suite (end to end: Vulkan engine vs the CPU reference on the tiny and synthetic
# models) under validation + sync validation, and again under the minimum profile. It is the
# slowest GPU suite, so it runs in two entries rather than the whole matrix.
if(TARGET test-engine)
  target_sources(test-engine PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/common/gpu_fixture.cpp)
  # test_cli.cpp runs the CLI as a user would.
  if(TARGET megrez-run)
    add_dependencies(test-engine megrez-run)
    target_compile_definitions(test-engine PRIVATE MEGREZ_RUN_BINARY="$<TARGET_FILE:megrez-run>")
  endif()
  if(TARGET megrez-convert)
    add_dependencies(test-engine megrez-convert)
    target_compile_definitions(test-engine PRIVATE MEGREZ_CONVERT_BINARY="$<TARGET_FILE:megrez-convert>")
  endif()
  # test_bench.cpp runs megrez-bench the same way (--stream-sweep, usage errors).
  if(TARGET megrez-bench)
    add_dependencies(test-engine megrez-bench)
    target_compile_definitions(test-engine PRIVATE MEGREZ_BENCH_BINARY="$<TARGET_FILE:megrez-bench>")
  endif()
  add_test(NAME engine COMMAND test-engine)
  set_tests_properties(engine PROPERTIES ENVIRONMENT "${MEGREZ_GPU_TEST_ENV}" LABELS "gpu;default")
  add_test(NAME engine-minimum COMMAND test-engine)
  set_tests_properties(engine-minimum PROPERTIES ENVIRONMENT "${MEGREZ_GPU_TEST_ENV};MEGREZ_PROFILE=minimum"
                       LABELS "gpu;minimum")
endif()

# The loader stays Vulkan-free (also checked at configure time; this keeps it visible).
add_test(NAME loader-no-vulkan
         COMMAND ${CMAKE_COMMAND} -DLOADER_DIR=${PROJECT_SOURCE_DIR}/loader
                 -P ${PROJECT_SOURCE_DIR}/loader/check_no_vulkan.cmake)

# megrez-server over loopback: the openai npm client, every error case, API keys, 8 clients at
# once (tests/server/run.sh; it installs the pinned client with npm at test time).
if(TARGET megrez-server)
  add_test(NAME server COMMAND bash ${PROJECT_SOURCE_DIR}/tests/server/run.sh $<TARGET_FILE_DIR:megrez-server>
                                    ${PROJECT_SOURCE_DIR}/models/megrez2-tiny)
  set_tests_properties(server PROPERTIES FAIL_REGULAR_EXPRESSION "vulkan (error|warning)" TIMEOUT 900
                       LABELS "gpu;default")
endif()
