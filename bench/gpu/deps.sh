# Sourced by the GPU machine's scripts (bench/gpu/run.sh, bench/ml/run.sh). The GPU image has CUDA
# and CMake but not this project's Debian -dev packages, and no network: they are carried as .deb
# files in .gpudeps and unpacked beside the system, never over it; fetch them here once with
#   mkdir -p .gpudeps && cd .gpudeps && apt-get download libfmt-dev libfmt9 libtbb-dev libtbb12 \
#     libtbbmalloc2 libtbbbind-2-5 libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev libcli11-dev \
#     libhiredis-dev libhiredis0.14 libxxhash-dev libxxhash0 libbenchmark-dev libbenchmark1debian zlib1g-dev
# and carry `.gpudeps` in the device call. Sets EXTRA to the CMake arguments that point at them.
EXTRA=()
if [[ -d .gpudeps ]]; then
  DEPS=/tmp/gt-deps
  for deb in .gpudeps/*.deb; do dpkg -x "$deb" "$DEPS"; done
  export CMAKE_PREFIX_PATH="$DEPS/usr" PKG_CONFIG_SYSROOT_DIR="$DEPS"
  export PKG_CONFIG_PATH="$DEPS/usr/lib/x86_64-linux-gnu/pkgconfig:$DEPS/usr/share/pkgconfig"
  export LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  EXTRA=(-DCMAKE_CXX_FLAGS="-isystem $DEPS/usr/include")
fi
