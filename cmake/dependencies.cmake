# Every dependency, found the way its platform offers it, behind the same target names:
#   Vulkan::Headers, megrez_volk_source (VOLK_SOURCE + its include dir), nlohmann_json::nlohmann_json,
#   megrez_pcre2, and (MEGREZ_WITH_SENTENCEPIECE) megrez_sentencepiece.
# Debian: packages (config files, pkg-config). Android's NDK has none of them: the Vulkan
# headers come with the NDK, the rest from cache variables naming sources or prefixes built
# for the ABI (README "Android"); no path under /usr is ever searched there.

if(ANDROID)
  set(sentencepiece_default OFF)  # libsentencepiece is not built for Android here
else()
  set(sentencepiece_default ON)
endif()
# Off: SentencePiece BPE models go through the native encoder (loader/tokenizer/spm_bpe.cpp).
option(MEGREZ_WITH_SENTENCEPIECE "SentencePiece models through libsentencepiece" ${sentencepiece_default})
set(MEGREZ_VOLK_DIR "" CACHE PATH "Directory with volk.c and volk.h; empty: Debian's /usr/include/volk.c")
set(MEGREZ_PCRE2_ROOT "" CACHE PATH "Prefix of a PCRE2 (8-bit) built for the target; empty: pkg-config")
set(MEGREZ_NLOHMANN_JSON_INCLUDE_DIR "" CACHE PATH "Directory containing nlohmann/json.hpp; empty: find_package")

find_package(Vulkan REQUIRED)  # headers only: the loader library is reached through volk

# volk: compiled from source (Debian's libvulkan-volk-dev ships volk.c in /usr/include).
if(MEGREZ_VOLK_DIR)
  find_file(VOLK_SOURCE volk.c PATHS ${MEGREZ_VOLK_DIR} REQUIRED NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
  set(VOLK_INCLUDE_DIR ${MEGREZ_VOLK_DIR})
elseif(ANDROID)
  message(FATAL_ERROR "Android: set MEGREZ_VOLK_DIR to a directory with volk.c and volk.h")
else()
  find_file(VOLK_SOURCE volk.c PATHS /usr/include REQUIRED NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
  set(VOLK_INCLUDE_DIR "")  # /usr/include: a system directory already
endif()

if(MEGREZ_NLOHMANN_JSON_INCLUDE_DIR)
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  set_target_properties(nlohmann_json::nlohmann_json PROPERTIES
                        INTERFACE_INCLUDE_DIRECTORIES ${MEGREZ_NLOHMANN_JSON_INCLUDE_DIR})
elseif(ANDROID)
  message(FATAL_ERROR "Android: set MEGREZ_NLOHMANN_JSON_INCLUDE_DIR to a directory containing nlohmann/json.hpp")
else()
  find_package(nlohmann_json CONFIG REQUIRED)
endif()

add_library(megrez_pcre2 INTERFACE)
if(MEGREZ_PCRE2_ROOT)
  find_library(PCRE2_LIBRARY NAMES pcre2-8 PATHS ${MEGREZ_PCRE2_ROOT}/lib PATH_SUFFIXES ${CMAKE_LIBRARY_ARCHITECTURE}
               REQUIRED NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
  target_include_directories(megrez_pcre2 INTERFACE ${MEGREZ_PCRE2_ROOT}/include)
  target_link_libraries(megrez_pcre2 INTERFACE ${PCRE2_LIBRARY})
  target_compile_definitions(megrez_pcre2 INTERFACE PCRE2_STATIC)  # harmless for a shared one
elseif(ANDROID)
  message(FATAL_ERROR "Android: set MEGREZ_PCRE2_ROOT to a PCRE2 built with this NDK (README \"Android\")")
else()
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
  target_link_libraries(megrez_pcre2 INTERFACE PkgConfig::PCRE2)
endif()

if(MEGREZ_WITH_SENTENCEPIECE)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
  add_library(megrez_sentencepiece INTERFACE)
  target_link_libraries(megrez_sentencepiece INTERFACE PkgConfig::SENTENCEPIECE)
endif()

if(MEGREZ_BUILD_TESTS)
  find_package(doctest CONFIG REQUIRED)
endif()

# megrez-server: Debian's libcpp-httplib-dev ships the library compiled, with the defines its
# header must see (TLS and compression support) in its pkg-config file.
if(MEGREZ_BUILD_SERVER)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
endif()

# megrez-chat: GLFW, Dear ImGui 1.86 and SQLite from Debian. libimgui.a's Vulkan backend calls
# vk* prototypes, which volk replaces with its own pointers, so the backend is compiled from the
# source Debian ships beside it with IMGUI_IMPL_VULKAN_NO_PROTOTYPES (apps/megrez-chat).
if(MEGREZ_BUILD_CHAT)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(GLFW REQUIRED IMPORTED_TARGET glfw3)
  pkg_check_modules(IMGUI REQUIRED IMPORTED_TARGET imgui)
  pkg_check_modules(SQLITE REQUIRED IMPORTED_TARGET sqlite3)
  find_file(IMGUI_VULKAN_BACKEND_SOURCE imgui_impl_vulkan.cpp
            PATHS /usr/share/doc/libimgui-dev/examples/backends REQUIRED NO_DEFAULT_PATH)
endif()

# Build-time tools are the host's, also in a cross build (-DGLSLANG_VALIDATOR=... elsewhere).
find_program(GLSLANG_VALIDATOR glslangValidator REQUIRED NO_CMAKE_FIND_ROOT_PATH)
find_program(SPIRV_DIS spirv-dis REQUIRED NO_CMAKE_FIND_ROOT_PATH)
find_program(SPIRV_VAL spirv-val REQUIRED NO_CMAKE_FIND_ROOT_PATH)
