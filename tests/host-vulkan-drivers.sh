# Sourced by run-all.sh. The ARM64 cross build installs arm64 Mesa, whose ICD files
# (*.aarch64.json) sit beside the host's in /usr/share/vulkan/icd.d; the loader then prints
# an error for each library it cannot load, which the tests count as Vulkan messages. Where
# such files exist, point the loader at the host's own ICD files only (a real GPU's included).
host_arch="$(uname -m)"
foreign=0
drivers=()
for dir in /etc/vulkan/icd.d /usr/share/vulkan/icd.d; do
  [ -d "$dir" ] || continue
  for json in "$dir"/*.json; do
    [ -e "$json" ] || continue
    case "$json" in
      *.aarch64.json|*.armhf.json|*.i686.json|*.x86_64.json)
        case "$json" in *."$host_arch".json) drivers+=("$json") ;; *) foreign=1 ;; esac ;;
      *) drivers+=("$json") ;;
    esac
  done
done
if [ "$foreign" = 1 ] && [ -z "${VK_DRIVER_FILES:-}" ] && [ ${#drivers[@]} -gt 0 ]; then
  VK_DRIVER_FILES="$(IFS=:; echo "${drivers[*]}")"
  export VK_DRIVER_FILES
fi
