#!/usr/bin/env bash
# tests/jni/run.sh LIB_DIR MEGREZ_RUN MODEL_DIR: compiles the Android app's Java bridge classes
# and JniSmokeTest with javac and runs them on the desktop JVM against LIB_DIR/libmegrez_jni.so.
set -euo pipefail
lib="$1"; run="$2"; model="$3"
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$run" --model "$model" --ctx 256 --chat --prompt "Who was the father of Solomon?" -n 20 </dev/null 2>/dev/null >"$work/expected.txt"
javac -d "$work/classes" "$root"/apps/android/app/src/main/java/org/megrez/chat/MegrezNative.java \
      "$root"/apps/android/app/src/main/java/org/megrez/chat/MegrezException.java "$root/tests/jni/JniSmokeTest.java"
mkdir -p "$work/cache"
java -Xcheck:jni -Djava.library.path="$lib" -cp "$work/classes" JniSmokeTest "$model" "$work/expected.txt" "$work/cache"
