# cmake -DLOADER_DIR=... -P check_no_vulkan.cmake: fails if any loader source or header
# includes a Vulkan or volk header. The loader is the Vulkan-free layer (design.md); the
# linker alone cannot tell, because those headers sit in /usr/include.
file(GLOB_RECURSE sources ${LOADER_DIR}/*.h ${LOADER_DIR}/*.hpp ${LOADER_DIR}/*.cpp ${LOADER_DIR}/*.c)
set(offenders "")
foreach(source ${sources})
  file(STRINGS ${source} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"](vulkan/|volk\\.h|vk_)")
  if(lines)
    list(APPEND offenders "${source}: ${lines}")
  endif()
endforeach()
if(offenders)
  list(JOIN offenders "\n  " text)
  message(FATAL_ERROR "loader sources include Vulkan or volk headers:\n  ${text}")
endif()
list(LENGTH sources count)
message(STATUS "loader: ${count} files, no Vulkan or volk include")
