{
  # XNNPACK as a benchmark peer (bench/xnnpack-peer.ts), built apart from the product addon so that Whittle
  # itself never links XNNPACK. Needs Debian's libxnnpack-dev and libpthreadpool-dev, whose pthreadpool.h
  # xnnpack.h includes (scripts/setup.sh installs both and builds this when /usr/include/xnnpack.h is there).
  "targets": [
    {
      "target_name": "whittle_xnnpack_peer",
      "sources": ["peer.cc"],
      "libraries": ["-lXNNPACK"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++14", "-std=gnu++1y"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "cflags_cc": ["-std=c++17"]
    }
  ]
}
